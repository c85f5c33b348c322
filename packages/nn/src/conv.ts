/** Convolution, pooling and embedding layers over @needle/autograd's conv2d, pools and indexSelect. */
import { Tensor, avgPool2d, conv2d, embedding, maxPool2d, type LinearActivation } from '@needle/autograd';
import { describeValue, NDArray, type Backend, type Generator } from '@needle/ndarray';
import { checkModuleOptions, checkPositiveInt, fail, fmt, isHostIndices, uploadIndices, type HostIndices } from './errors';
import * as init from './init';
import { Module, type Parameter } from './module';

/** A size for both spatial axes, or [height, width]. */
export type Size2 = number | readonly [number, number];

function pair(op: string, name: string, v: Size2, min: number): [number, number] {
  const p = typeof v === 'number' ? [v, v] : Array.isArray(v as unknown) && v.length === 2 ? [v[0], v[1]] : null;
  if (p === null || p.some((d) => !Number.isInteger(d) || d < min)) {
    fail(op, `${name} must be an integer >= ${min} or a pair of them, got ${describeValue(v)}`);
  }
  return p as [number, number];
}

export interface Conv2dOptions {
  stride?: Size2;
  /** Zero padding on both sides of each spatial axis (default 0). */
  padding?: Size2;
  dilation?: Size2;
  /** Channel groups convolved independently; inChannels and outChannels must be divisible by it. */
  groups?: number;
  /** Learnable bias (default true). */
  bias?: boolean;
  generator?: Generator;
  backend?: Backend | string;
}

/**
 * 2-D convolution (cross-correlation) with PyTorch's layout and initialisation: input [N, C, H, W],
 * weight [outChannels, inChannels / groups, kh, kw], weight and bias uniform on ±1/sqrt(fanIn) with
 * fanIn = inChannels / groups * kh * kw (torch's kaiming_uniform_ with a = sqrt(5)).
 */
export class Conv2d extends Module {
  readonly inChannels: number;
  readonly outChannels: number;
  readonly kernelSize: [number, number];
  readonly stride: [number, number];
  readonly padding: [number, number];
  readonly dilation: [number, number];
  readonly groups: number;
  weight: Parameter;
  bias: Parameter | null;

  constructor(inChannels: number, outChannels: number, kernelSize: Size2, options: Conv2dOptions = {}) {
    super();
    checkModuleOptions('Conv2d', options, ['bias']);
    checkPositiveInt('Conv2d', 'inChannels', inChannels);
    checkPositiveInt('Conv2d', 'outChannels', outChannels);
    this.inChannels = inChannels;
    this.outChannels = outChannels;
    this.kernelSize = pair('Conv2d', 'kernelSize', kernelSize, 1);
    this.stride = pair('Conv2d', 'stride', options.stride ?? 1, 1);
    this.padding = pair('Conv2d', 'padding', options.padding ?? 0, 0);
    this.dilation = pair('Conv2d', 'dilation', options.dilation ?? 1, 1);
    this.groups = options.groups ?? 1;
    checkPositiveInt('Conv2d', 'groups', this.groups);
    if (inChannels % this.groups !== 0 || outChannels % this.groups !== 0) {
      fail('Conv2d', `inChannels=${inChannels} and outChannels=${outChannels} must both be divisible by groups=${this.groups}`);
    }
    const [kh, kw] = this.kernelSize;
    const fanIn = (inChannels / this.groups) * kh * kw;
    const bound = 1 / Math.sqrt(fanIn);
    const opts = { generator: options.generator, backend: options.backend };
    this.weight = init.uniform([outChannels, inChannels / this.groups, kh, kw], -bound, bound, opts);
    this.bias = options.bias ?? true ? init.uniform([outChannels], -bound, bound, opts) : null;
  }

  /** Sequential fuses a following ReLU, Tanh or Sigmoid into this layer (see forwardActivated). */
  static readonly fusesActivation = true;

  forward(x: Tensor): Tensor {
    return this.forwardActivated(x, 'none');
  }

  /** act(conv(x) + b) with the bias and activation in the im2col matmul's epilogue (groups = 1). */
  forwardActivated(x: Tensor, activation: LinearActivation): Tensor {
    if (!(x instanceof Tensor)) fail('Conv2d', `expected a Tensor input, got ${typeof x}`);
    if (x.ndim !== 4 || x.shape[1] !== this.inChannels) {
      fail('Conv2d', `input of shape ${fmt(x.shape)} does not fit inChannels=${this.inChannels}; expected [N, ${this.inChannels}, H, W]`);
    }
    return conv2d(x, this.weight, { bias: this.bias, stride: this.stride, padding: this.padding, dilation: this.dilation, groups: this.groups, activation });
  }

  override extraRepr(): string {
    const extra = [
      this.stride.some((s) => s !== 1) ? `, stride=${fmt(this.stride)}` : '',
      this.padding.some((s) => s !== 0) ? `, padding=${fmt(this.padding)}` : '',
      this.dilation.some((s) => s !== 1) ? `, dilation=${fmt(this.dilation)}` : '',
      this.groups !== 1 ? `, groups=${this.groups}` : '',
      this.bias ? '' : ', bias=false',
    ].join('');
    return `${this.inChannels}, ${this.outChannels}, kernelSize=${fmt(this.kernelSize)}${extra}`;
  }
}

export interface Pool2dOptions {
  /** Default: the kernel size. */
  stride?: Size2;
  /** Padding on both sides (at most half the kernel): -Inf for max pooling, zeros counted by average pooling. */
  padding?: Size2;
}

/** Max over kh x kw windows of [N, C, H, W]; tied maxima share the gradient. */
export class MaxPool2d extends Module {
  readonly kernelSize: [number, number];
  readonly stride: [number, number];
  readonly padding: [number, number];
  readonly dilation: [number, number];

  constructor(kernelSize: Size2, options: Pool2dOptions & { dilation?: Size2 } = {}) {
    super();
    checkModuleOptions('MaxPool2d', options);
    this.kernelSize = pair('MaxPool2d', 'kernelSize', kernelSize, 1);
    this.stride = pair('MaxPool2d', 'stride', options.stride ?? this.kernelSize, 1);
    this.padding = pair('MaxPool2d', 'padding', options.padding ?? 0, 0);
    this.dilation = pair('MaxPool2d', 'dilation', options.dilation ?? 1, 1);
  }

  forward(x: Tensor): Tensor {
    if (!(x instanceof Tensor)) fail('MaxPool2d', `expected a Tensor input, got ${typeof x}`);
    return maxPool2d(x, this.kernelSize, { stride: this.stride, padding: this.padding, dilation: this.dilation });
  }

  override extraRepr(): string {
    return `kernelSize=${fmt(this.kernelSize)}, stride=${fmt(this.stride)}, padding=${fmt(this.padding)}`;
  }
}

/** Mean over kh x kw windows of [N, C, H, W] (zero padding counts, PyTorch's count_include_pad). */
export class AvgPool2d extends Module {
  readonly kernelSize: [number, number];
  readonly stride: [number, number];
  readonly padding: [number, number];

  constructor(kernelSize: Size2, options: Pool2dOptions = {}) {
    super();
    this.kernelSize = pair('AvgPool2d', 'kernelSize', kernelSize, 1);
    this.stride = pair('AvgPool2d', 'stride', options.stride ?? this.kernelSize, 1);
    this.padding = pair('AvgPool2d', 'padding', options.padding ?? 0, 0);
  }

  forward(x: Tensor): Tensor {
    if (!(x instanceof Tensor)) fail('AvgPool2d', `expected a Tensor input, got ${typeof x}`);
    return avgPool2d(x, this.kernelSize, { stride: this.stride, padding: this.padding });
  }

  override extraRepr(): string {
    return `kernelSize=${fmt(this.kernelSize)}, stride=${fmt(this.stride)}, padding=${fmt(this.padding)}`;
  }
}

/**
 * A lookup table: ids [...] (integer values stored as float32, Tensor or NDArray) -> [..., dim].
 * Initialised N(0, 1) like torch.nn.Embedding. Repeated ids accumulate their gradients; ids outside
 * [0, numEmbeddings) cannot be checked without a read-back and give rows of zeros.
 */
export class Embedding extends Module {
  readonly numEmbeddings: number;
  readonly embeddingDim: number;
  weight: Parameter;

  constructor(numEmbeddings: number, embeddingDim: number, options: { generator?: Generator; backend?: Backend | string } = {}) {
    super();
    checkModuleOptions('Embedding', options);
    checkPositiveInt('Embedding', 'numEmbeddings', numEmbeddings);
    checkPositiveInt('Embedding', 'embeddingDim', embeddingDim);
    this.numEmbeddings = numEmbeddings;
    this.embeddingDim = embeddingDim;
    this.weight = init.normal([numEmbeddings, embeddingDim], 0, 1, options);
  }

  /** ids as a Tensor or NDArray (an out-of-range id gives a NaN row), or on the host (checked). */
  forward(ids: Tensor | NDArray | HostIndices): Tensor {
    if (isHostIndices(ids)) {
      const uploaded = uploadIndices('Embedding', 'id', ids, this.numEmbeddings, this.weight.backend);
      try {
        return embedding(this.weight, uploaded);
      } finally {
        uploaded.dispose();
      }
    }
    if (!(ids instanceof Tensor) && !(ids instanceof NDArray)) fail('Embedding', `expected ids as a Tensor, an NDArray or an array of integers, got ${describeValue(ids)}`);
    return embedding(this.weight, ids);
  }

  override extraRepr(): string {
    return `${this.numEmbeddings}, ${this.embeddingDim}`;
  }
}
