/** Normalisation layers: BatchNorm1d/2d (running statistics as buffers) and LayerNorm. */
import { checkNumber, defineProgram, describeValue, elementwise, tidy, type Backend, type NDArray } from '@needle/ndarray';
import { Tensor, activate, add, batchNorm, batchNormStatistics, full, layerNorm, mul, noGrad, pow, reshape, sub, zeros, type LinearActivation } from '@needle/autograd';
import { checkModuleOptions, checkPositiveInt, fail, fmt } from './errors';
import * as init from './init';
import { Module, type Parameter } from './module';

export interface BatchNormOptions {
  /** Added to the variance before the square root (default 1e-5). */
  eps?: number;
  /**
   * Weight of the current batch in the running statistics (default 0.1):
   * running = (1 - momentum) * running + momentum * batch. null: a cumulative average over all
   * batches seen (PyTorch's momentum=None).
   */
  momentum?: number | null;
  /** Learnable per-channel weight and bias (default true). */
  affine?: boolean;
  /** Keep running statistics and use them in eval mode (default true); otherwise batch statistics always. */
  trackRunningStats?: boolean;
  backend?: Backend | string;
}

/**
 * Batch normalisation over every axis but the channel axis 1, with PyTorch's semantics: training
 * normalises with the batch mean and biased variance and updates the running mean and the *unbiased*
 * running variance (needle's homework uses the biased one there); eval mode normalises with the
 * running statistics.
 *
 * The running statistics are buffers (`runningMean`, `runningVar`, `numBatchesTracked`, in the state
 * dict). They are updated in place under noGrad from the batch statistics' values, so the update
 * neither enters the graph nor allocates a buffer that outlives the step.
 */
/** running = (1 - k) running + k batch, for the mean and the unbiased variance at once. */
const RUNNING_UPDATE = defineProgram(4, 3, ([rm, rv, m, v], [keep, k, unbias]) => [rm.mul(keep).add(m.mul(k)), rv.mul(keep).add(v.mul(unbias).mul(k))]);

const INCREMENT = defineProgram(1, 0, ([n]) => n.add(1));

abstract class BatchNorm extends Module {
  readonly numFeatures: number;
  readonly eps: number;
  readonly momentum: number | null;
  readonly affine: boolean;
  readonly trackRunningStats: boolean;
  weight: Parameter | null;
  bias: Parameter | null;
  runningMean: Tensor | null;
  runningVar: Tensor | null;
  numBatchesTracked: Tensor | null;

  /** Input ranks accepted, for the error message and the check. */
  protected abstract readonly ranks: readonly number[];

  constructor(numFeatures: number, options: BatchNormOptions = {}) {
    super();
    const name = this.constructor.name;
    checkModuleOptions(name, options, ['affine', 'trackRunningStats']);
    checkPositiveInt(name, 'numFeatures', numFeatures);
    this.numFeatures = numFeatures;
    this.eps = checkNumber(name, 'eps', options.eps ?? 1e-5, { min: 0 });
    // null: a cumulative average, as in PyTorch.
    this.momentum = options.momentum === undefined ? 0.1 : options.momentum === null ? null : checkNumber(name, 'momentum', options.momentum, { min: 0, max: 1 });
    this.affine = options.affine ?? true;
    this.trackRunningStats = options.trackRunningStats ?? true;
    const backend = options.backend;
    this.weight = this.affine ? init.ones([numFeatures], { backend }) : null;
    this.bias = this.affine ? init.zeros([numFeatures], { backend }) : null;
    const track = this.trackRunningStats;
    this.runningMean = this.registerBuffer('runningMean', track ? zeros([numFeatures], { backend }) : null);
    this.runningVar = this.registerBuffer('runningVar', track ? full([numFeatures], 1, { backend }) : null);
    this.numBatchesTracked = this.registerBuffer('numBatchesTracked', track ? zeros([], { backend }) : null);
  }

  forward(x: Tensor): Tensor {
    return this.forwardActivated(x, 'none');
  }

  /**
   * act(batchNorm(x)): in training mode a ReLU runs in the normalising program (and its backward
   * in the batch norm's); other activations, and eval mode, apply it afterwards. Sequential and
   * ConvBN call it for a BatchNorm followed by a ReLU.
   */
  forwardActivated(x: Tensor, activation: LinearActivation): Tensor {
    const name = this.constructor.name;
    if (!(x instanceof Tensor)) fail(name, `expected a Tensor input, got ${typeof x}`);
    if (!this.ranks.includes(x.ndim) || x.shape[1] !== this.numFeatures) {
      const layouts: Record<number, string> = { 2: '', 3: ', L', 4: ', H, W' };
      const want = this.ranks.map((r) => `[N, ${this.numFeatures}${layouts[r]}]`).join(' or ');
      fail(name, `input of shape ${fmt(x.shape)} does not fit numFeatures=${this.numFeatures}; expected ${want}`);
    }
    const axes = x.shape.map((_, i) => i).filter((i) => i !== 1);
    const statShape = x.shape.map((d, i) => (i === 1 ? d : 1));
    let y: Tensor;
    if (this.training || !this.trackRunningStats) {
      const count = axes.reduce((p, a) => p * x.shape[a], 1);
      if (this.training && count <= 1) {
        fail(name, `expected more than 1 value per channel when training, got input of shape ${fmt(x.shape)}`);
      }
      // One fused op: the batch mean and biased variance, then the normalised, scaled output.
      const affine = this.weight && this.bias ? [reshape(this.weight, statShape), reshape(this.bias, statShape)] : [null, null];
      y = batchNorm(x, affine[0], affine[1], { axes, eps: this.eps, activation: activation === 'relu' ? 'relu' : 'none' });
      if (this.training && this.trackRunningStats) {
        const { mean: mu, variance } = batchNormStatistics(y);
        try {
          this.updateRunningStats(mu, variance, count);
        } finally {
          mu.dispose();
          variance.dispose();
        }
      }
      return activation === 'relu' ? y : activate(y, activation);
    }
    const rm = reshape(this.runningMean!, statShape);
    const rv = reshape(this.runningVar!, statShape);
    y = mul(sub(x, rm), pow(add(rv, this.eps), -0.5));
    if (this.weight && this.bias) y = add(mul(y, reshape(this.weight, statShape)), reshape(this.bias, statShape));
    return activate(y, activation);
  }

  /** In-place update from the batch statistics' values: no graph, no buffer left behind. */
  private updateRunningStats(batchMean: NDArray, batchVar: NDArray, count: number): void {
    const rm = this.runningMean!;
    const rv = this.runningVar!;
    const nbt = this.numBatchesTracked!;
    noGrad(() => tidy(() => {
      const c = this.numFeatures;
      const m = batchMean.reshape([c]);
      const unbias = count / (count - 1); // the running variance is unbiased, like PyTorch's
      elementwise(INCREMENT, [nbt.data], [], { out: [nbt.data], writer: 'assign' }); // in place: one launch
      if (this.momentum !== null) {
        // Both running statistics in one launch, written in place.
        const k = this.momentum;
        elementwise(RUNNING_UPDATE, [rm.data, rv.data, m, batchVar.reshape([c])], [1 - k, k, unbias], { out: [rm.data, rv.data], writer: 'assign' });
        return;
      }
      // Cumulative average: running += (batch - running) / batches seen (computed on the device,
      // so no read-back of the counter is needed).
      const v = batchVar.reshape([c]).mul(unbias);
      const factor = nbt.data.pow(-1);
      rm.assign(rm.data.add(m.sub(rm.data).mul(factor)));
      rv.assign(rv.data.add(v.sub(rv.data).mul(factor)));
    }));
  }

  override extraRepr(): string {
    return `${this.numFeatures}, eps=${this.eps}, momentum=${this.momentum}, affine=${this.affine}, trackRunningStats=${this.trackRunningStats}`;
  }
}

/** BatchNorm over [N, C] (per feature) or [N, C, L] (per channel, over N and L). */
export class BatchNorm1d extends BatchNorm {
  /** Sequential fuses a following ReLU (see forwardActivated). */
  static readonly fusesActivation = true;
  protected readonly ranks = [2, 3] as const;
}

/** BatchNorm over [N, C, H, W], per channel over N, H and W. */
export class BatchNorm2d extends BatchNorm {
  /** Sequential fuses a following ReLU (see forwardActivated). */
  static readonly fusesActivation = true;
  protected readonly ranks = [4] as const;
}

export interface LayerNormOptions {
  /** Added to the variance before the square root (default 1e-5). */
  eps?: number;
  /** Learnable weight (ones) and bias (zeros) of normalizedShape (default true). */
  elementwiseAffine?: boolean;
  /** With elementwiseAffine: also a bias (default true). */
  bias?: boolean;
  backend?: Backend | string;
}

/**
 * Layer normalisation over the trailing axes given by `normalizedShape` (torch.nn.LayerNorm): each
 * sample is normalised with its own mean and biased variance over those axes, then scaled and shifted
 * elementwise. The variance is the mean of squared deviations (two passes), which stays accurate when
 * the mean is large compared with the spread. Runs as autograd's fused `layerNorm`.
 */
export class LayerNorm extends Module {
  readonly normalizedShape: readonly number[];
  readonly eps: number;
  weight: Parameter | null;
  bias: Parameter | null;

  constructor(normalizedShape: number | readonly number[], options: LayerNormOptions = {}) {
    super();
    const name = this.constructor.name;
    checkModuleOptions(name, options, ['elementwiseAffine', 'bias']);
    if (typeof normalizedShape !== 'number' && !Array.isArray(normalizedShape as unknown)) {
      fail(name, `normalizedShape must be a positive integer or an array of them, got ${describeValue(normalizedShape)}`);
    }
    const shape = typeof normalizedShape === 'number' ? [normalizedShape] : [...normalizedShape];
    if (shape.length === 0) fail(name, 'normalizedShape must have at least one axis');
    shape.forEach((d) => checkPositiveInt(name, 'normalizedShape entries', d));
    this.normalizedShape = shape;
    this.eps = checkNumber(name, 'eps', options.eps ?? 1e-5, { min: 0 });
    const affine = options.elementwiseAffine ?? true;
    this.weight = affine ? init.ones(shape, { backend: options.backend }) : null;
    this.bias = affine && (options.bias ?? true) ? init.zeros(shape, { backend: options.backend }) : null;
  }

  forward(x: Tensor): Tensor {
    const name = this.constructor.name;
    if (!(x instanceof Tensor)) fail(name, `expected a Tensor input, got ${typeof x}`);
    const k = this.normalizedShape.length;
    const tail = x.shape.slice(x.ndim - k);
    if (x.ndim < k || tail.some((d, i) => d !== this.normalizedShape[i])) {
      fail(name, `input of shape ${fmt(x.shape)} does not end in normalizedShape ${fmt(this.normalizedShape)}`);
    }
    // One fused op (autograd's layerNorm): three launches forward on a backend with reduceProgram.
    return layerNorm(x, this.normalizedShape, this.weight, this.bias, { eps: this.eps });
  }

  override extraRepr(): string {
    return `${fmt(this.normalizedShape)}, eps=${this.eps}, elementwiseAffine=${this.weight !== null}`;
  }
}

/** needle's LayerNorm1d: LayerNorm over the last axis of size `dim`. */
export class LayerNorm1d extends LayerNorm {
  constructor(dim: number, options: LayerNormOptions = {}) {
    super(dim, options);
  }
}
