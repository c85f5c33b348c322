import type { Tensor } from '@needle/autograd';
import { checkBoolean, checkNumber, describeValue, fail, type NDArray } from '@needle/ndarray';
import { adamStep } from './fused';
import { Optimizer, type GroupOptions, type ParamGroup, type ParamsInput, type ParamState } from './optimizer';

export interface AdamOptions extends GroupOptions {
  /** Decay rates of the first and second moment averages. */
  betas: readonly [number, number];
  /** Added to the denominator for numerical stability. */
  eps: number;
  /** Adam: L2 penalty added to the gradient. AdamW: decoupled decay, `p *= 1 - lr * weightDecay`. */
  weightDecay: number;
  /** Use the running maximum of the second moment (AMSGrad). */
  amsgrad: boolean;
}

/**
 * Adam (torch.optim.Adam), with bias correction:
 * ```
 * t += 1;  g = grad + weightDecay * p
 * m = beta1 * m + (1 - beta1) * g;   v = beta2 * v + (1 - beta2) * g^2   (m, v start at 0)
 * vmax = max(vmax, v)                                                     (amsgrad)
 * p = p - lr / (1 - beta1^t) * m / (sqrt(v or vmax) / sqrt(1 - beta2^t) + eps)
 * ```
 * State per parameter: `step` (a host number, so bias corrections need no device read), `expAvg`,
 * `expAvgSq` and, with amsgrad, `maxExpAvgSq`. One fused kernel per parameter updates the
 * parameter and its moments in place (bit for bit the values of the unfused ops in this order).
 */
export class Adam extends Optimizer<AdamOptions> {
  /** AdamW's decoupled weight decay instead of the L2 term in the gradient. */
  protected readonly decoupledWeightDecay: boolean = false;

  constructor(params: ParamsInput<AdamOptions>, options: Partial<AdamOptions> = {}) {
    super(params, { lr: 1e-3, betas: [0.9, 0.999], eps: 1e-8, weightDecay: 0, amsgrad: false, ...options });
  }

  protected override validateOptions(o: AdamOptions, op: string): void {
    super.validateOptions(o, op);
    if (!Array.isArray(o.betas) || o.betas.length !== 2) fail(op, `betas must be a pair [beta1, beta2], got ${describeValue(o.betas)}`);
    const [b1, b2] = o.betas;
    if (typeof b1 !== 'number' || typeof b2 !== 'number' || !(b1 >= 0 && b1 < 1) || !(b2 >= 0 && b2 < 1)) {
      fail(op, `betas must lie in [0, 1), got [${describeValue(b1)}, ${describeValue(b2)}]`);
    }
    checkNumber(op, 'eps', o.eps, { min: 0 });
    checkNumber(op, 'weightDecay', o.weightDecay, { min: 0 });
    checkBoolean(op, 'amsgrad', o.amsgrad);
  }

  protected update(param: Tensor, grad: NDArray, state: Readonly<ParamState>, o: ParamGroup<AdamOptions>): ParamState {
    const [beta1, beta2] = o.betas;
    const step = ((state.step as number | undefined) ?? 0) + 1;
    const m = state.expAvg as NDArray | undefined;
    const v = state.expAvgSq as NDArray | undefined;
    const max = state.maxExpAvgSq as NDArray | undefined;
    if ((m === undefined) !== (v === undefined)) {
      fail(`${this.constructor.name}.step`, `state of a parameter of shape [${param.shape.join(', ')}] has ${m ? 'expAvg' : 'expAvgSq'} without ${m ? 'expAvgSq' : 'expAvg'}`);
    }
    const biasCorrection1 = 1 - beta1 ** step;
    const biasCorrection2 = 1 - beta2 ** step;
    const flags = { weightDecay: o.weightDecay !== 0, decoupled: this.decoupledWeightDecay, hasMoments: m !== undefined, amsgrad: o.amsgrad, hasMax: max !== undefined };
    const wd = this.decoupledWeightDecay ? 1 - o.lr * o.weightDecay : o.weightDecay;
    const scalars = [wd, beta1, 1 - beta1, beta2, 1 - beta2, Math.sqrt(biasCorrection2), o.eps, o.lr / biasCorrection1];
    const [expAvg, expAvgSq, maxExpAvgSq] = adamStep(flags, param.data, grad, { m, v, max }, scalars);
    return o.amsgrad ? { step, expAvg, expAvgSq, maxExpAvgSq } : { step, expAvg, expAvgSq };
  }
}

/**
 * AdamW (torch.optim.AdamW): Adam with decoupled weight decay, `p *= 1 - lr * weightDecay` before
 * the Adam step, instead of adding `weightDecay * p` to the gradient. Default weightDecay 0.01.
 */
export class AdamW extends Adam {
  protected override readonly decoupledWeightDecay: boolean = true;

  constructor(params: ParamsInput<AdamOptions>, options: Partial<AdamOptions> = {}) {
    super(params, { weightDecay: 1e-2, ...options });
  }
}
