import type { Tensor } from '@needle/autograd';
import { checkBoolean, checkNumber, describeValue, fail, type NDArray } from '@needle/ndarray';
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
 * `expAvgSq` and, with amsgrad, `maxExpAvgSq`.
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
    let p = param.data;
    let g = grad;
    if (o.weightDecay !== 0) {
      if (this.decoupledWeightDecay) p = p.mul(1 - o.lr * o.weightDecay);
      else g = g.add(p.mul(o.weightDecay));
    }
    const oldM = state.expAvg as NDArray | undefined;
    const oldV = state.expAvgSq as NDArray | undefined;
    // With zero-initialised moments the first step reduces to the scaled gradient: skip the zeros.
    const m = oldM ? oldM.mul(beta1).add(g.mul(1 - beta1)) : g.mul(1 - beta1);
    const gg = g.mul(g);
    const v = oldV ? oldV.mul(beta2).add(gg.mul(1 - beta2)) : gg.mul(1 - beta2);
    const next: ParamState = { step, expAvg: m, expAvgSq: v };
    let vhat = v;
    if (o.amsgrad) {
      const oldMax = state.maxExpAvgSq as NDArray | undefined;
      // max(0, v) = v on the first step. A copy, not v itself, so the live buffer count after the
      // first step is the steady one (what leak checks compare against).
      vhat = oldMax ? oldMax.maximum(v) : v.clone();
      next.maxExpAvgSq = vhat;
    }
    const biasCorrection1 = 1 - beta1 ** step;
    const biasCorrection2 = 1 - beta2 ** step;
    const denom = vhat.sqrt().div(Math.sqrt(biasCorrection2)).add(o.eps);
    param.assign(p.sub(m.div(denom).mul(o.lr / biasCorrection1)));
    return next;
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
