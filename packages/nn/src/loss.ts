/** Losses: cross-entropy over logits (SoftmaxLoss in needle) and mean squared error. */
import { describeValue, NDArray } from '@needle/ndarray';
import { Tensor, crossEntropy, mean, mul, sub, sum } from '@needle/autograd';
import { fail, fmt, isHostIndices, sameShape, uploadIndices, type HostIndices } from './errors';
import { Module } from './module';

export type Reduction = 'mean' | 'sum' | 'none';

function reduce(op: string, x: Tensor, reduction: Reduction): Tensor {
  switch (reduction) {
    case 'mean':
      return mean(x);
    case 'sum':
      return sum(x);
    case 'none':
      return x;
    default:
      return fail(op, `reduction must be 'mean', 'sum' or 'none', got ${String(reduction satisfies never)}`);
  }
}

/**
 * Cross-entropy of logits [N, C] against integer class labels [N] (class indices stored as float32
 * in a Tensor or NDArray, as @needle/data produces them): logsumexp(z_i) - z_i[y_i], averaged over
 * the batch by default.
 *
 * Computed as logsumexp (stable) minus the true class's logit, never from log(softmax), so large
 * logits neither overflow nor lose the loss to rounding; the gradient is softmax - onehot. One fused
 * autograd op (`crossEntropy`, the reduction included): two kernel launches forward, one backward
 * on a backend with `reduceProgram`. Labels on the device outside [0, C) cannot be checked without
 * reading back: they give a NaN loss.
 */
export class CrossEntropyLoss extends Module {
  readonly reduction: Reduction;

  constructor(options: { reduction?: Reduction } = {}) {
    super();
    this.reduction = options.reduction ?? 'mean';
    if (!['mean', 'sum', 'none'].includes(this.reduction)) {
      fail(this.constructor.name, `reduction must be 'mean', 'sum' or 'none', got ${String(this.reduction)}`);
    }
  }

  forward(logits: Tensor, labels: Tensor | NDArray | HostIndices): Tensor {
    const op = this.constructor.name;
    if (!(logits instanceof Tensor)) fail(op, `expected logits as a Tensor, got ${describeValue(logits)}`);
    if (logits.ndim !== 2) fail(op, `expected logits of shape [N, C], got ${fmt(logits.shape)}`);
    // Host labels are checked against [0, C) before the upload; labels already on the device give
    // NaN where out of range (see gather).
    const host = isHostIndices(labels) ? uploadIndices(op, 'label', labels, logits.shape[1], logits.backend) : null;
    const y = host ?? (labels instanceof Tensor ? labels.data : labels);
    let loss: Tensor;
    const n = logits.shape[0];
    try {
      if (!(y instanceof NDArray)) fail(op, `expected labels as a Tensor, an NDArray or an array of class indices, got ${describeValue(labels)}`);
      if (y.ndim !== 1 || y.shape[0] !== n) {
        fail(op, `labels of shape ${fmt(y.shape)} do not match logits ${fmt(logits.shape)}; expected class indices of shape [${n}]`);
      }
      loss = crossEntropy(logits, y, { reduction: this.reduction });
    } finally {
      host?.dispose(); // the op holds its own view of the labels
    }
    return loss;
  }

  override extraRepr(): string {
    return `reduction=${this.reduction}`;
  }
}

/** needle's name for CrossEntropyLoss (softmax + negative log-likelihood over logits). */
export class SoftmaxLoss extends CrossEntropyLoss {}

/** Mean squared error: mean((prediction - target)^2); shapes must match exactly. */
export class MSELoss extends Module {
  readonly reduction: Reduction;

  constructor(options: { reduction?: Reduction } = {}) {
    super();
    this.reduction = options.reduction ?? 'mean';
    if (!['mean', 'sum', 'none'].includes(this.reduction)) fail('MSELoss', `reduction must be 'mean', 'sum' or 'none', got ${String(this.reduction)}`);
  }

  forward(prediction: Tensor, target: Tensor): Tensor {
    if (!(prediction instanceof Tensor) || !(target instanceof Tensor)) fail('MSELoss', 'expected prediction and target Tensors');
    // Broadcasting here would silently average over a wrong outer product (PyTorch only warns).
    if (!sameShape(prediction.shape, target.shape)) {
      fail('MSELoss', `prediction of shape ${fmt(prediction.shape)} and target of shape ${fmt(target.shape)} differ; expected equal shapes`);
    }
    const d = sub(prediction, target);
    return reduce('MSELoss', mul(d, d), this.reduction);
  }

  override extraRepr(): string {
    return `reduction=${this.reduction}`;
  }
}
