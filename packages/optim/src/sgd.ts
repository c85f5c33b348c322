import type { Tensor } from '@needle/autograd';
import { checkBoolean, checkNumber, fail, type NDArray } from '@needle/ndarray';
import { sgdStep } from './fused';
import { Optimizer, type GroupOptions, type ParamGroup, type ParamsInput, type ParamState } from './optimizer';

export interface SGDOptions extends GroupOptions {
  /** Momentum factor (0: plain SGD). */
  momentum: number;
  /** Dampening of the gradient's contribution to the momentum buffer (not applied on the first step). */
  dampening: number;
  /** L2 penalty: `weightDecay * param` is added to the gradient. */
  weightDecay: number;
  /** Nesterov momentum (needs momentum > 0 and dampening 0). */
  nesterov: boolean;
}

/**
 * Stochastic gradient descent with PyTorch's exact rules (torch.optim.SGD):
 * ```
 * d = grad + weightDecay * p
 * buf = d                                         (first step)
 * buf = momentum * buf + (1 - dampening) * d      (later steps)
 * d = nesterov ? d + momentum * buf : buf         (when momentum != 0)
 * p = p - lr * d
 * ```
 * State per parameter: `momentumBuffer` (when momentum != 0). One fused kernel per parameter
 * updates the parameter and the buffer in place (bit for bit the values of the unfused ops).
 */
export class SGD extends Optimizer<SGDOptions> {
  constructor(params: ParamsInput<SGDOptions>, options: Partial<SGDOptions> & { lr: number }) {
    super(params, { momentum: 0, dampening: 0, weightDecay: 0, nesterov: false, ...options });
  }

  protected override validateOptions(o: SGDOptions, op: string): void {
    super.validateOptions(o, op);
    checkNumber(op, 'momentum', o.momentum, { min: 0 });
    checkNumber(op, 'weightDecay', o.weightDecay, { min: 0 });
    checkNumber(op, 'dampening', o.dampening);
    checkBoolean(op, 'nesterov', o.nesterov);
    if (o.nesterov && (o.momentum <= 0 || o.dampening !== 0)) {
      fail(op, `nesterov momentum requires momentum > 0 and dampening 0, got momentum ${o.momentum}, dampening ${o.dampening}`);
    }
  }

  protected update(param: Tensor, grad: NDArray, state: Readonly<ParamState>, o: ParamGroup<SGDOptions>): ParamState {
    const old = state.momentumBuffer as NDArray | undefined;
    const flags = { weightDecay: o.weightDecay !== 0, momentum: o.momentum !== 0, hasBuffer: old !== undefined, nesterov: o.nesterov };
    const [buf] = sgdStep(flags, param.data, grad, old, [o.lr, o.weightDecay, o.momentum, 1 - o.dampening]);
    return o.momentum !== 0 ? { momentumBuffer: buf } : {};
  }
}
