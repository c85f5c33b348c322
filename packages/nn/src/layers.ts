/** Basic layers: Identity, Linear, Flatten, activations, Softmax, Sequential, Residual, Dropout. */
import { Tensor, add, dropout, flatten, gelu, linear, logSoftmax, relu, sigmoid, softmax, tanh, type GeluApproximate, type LinearActivation } from '@needle/autograd';
import type { Backend, Generator } from '@needle/ndarray';
import { checkModuleOptions, checkPositiveInt, checkProbability, fail, fmt } from './errors';
import * as init from './init';
import { Module, type Parameter } from './module';

function checkInput(op: string, x: unknown): asserts x is Tensor {
  if (!(x instanceof Tensor)) fail(op, `expected a Tensor input, got ${x === null ? 'null' : typeof x}`);
}

/** Returns its input unchanged. */
export class Identity extends Module {
  forward(x: Tensor): Tensor {
    return x;
  }
}

export interface LinearOptions {
  /** Add a learnable bias (default true). */
  bias?: boolean;
  /** Generator for the initial weights (default: the global one). */
  generator?: Generator;
  backend?: Backend | string;
}

/**
 * y = x W^T + b over the last axis: x [..., inFeatures] -> [..., outFeatures].
 *
 * Layout and initialisation are PyTorch's, so weights load from and compare with torch.nn.Linear:
 * weight [outFeatures, inFeatures], and weight and bias uniform on (-1/sqrt(inFeatures),
 * 1/sqrt(inFeatures)) (torch's kaiming_uniform_ with a = sqrt(5), which reduces to that bound).
 * (needle's homework uses [in, out] and kaiming_uniform with the ReLU gain instead.)
 */
export class Linear extends Module {
  readonly inFeatures: number;
  readonly outFeatures: number;
  weight: Parameter;
  bias: Parameter | null;

  constructor(inFeatures: number, outFeatures: number, options: LinearOptions = {}) {
    super();
    checkModuleOptions('Linear', options, ['bias']);
    checkPositiveInt('Linear', 'inFeatures', inFeatures);
    checkPositiveInt('Linear', 'outFeatures', outFeatures);
    this.inFeatures = inFeatures;
    this.outFeatures = outFeatures;
    const bound = 1 / Math.sqrt(inFeatures);
    const opts = { generator: options.generator, backend: options.backend };
    this.weight = init.uniform([outFeatures, inFeatures], -bound, bound, opts);
    this.bias = options.bias ?? true ? init.uniform([outFeatures], -bound, bound, opts) : null;
  }

  forward(x: Tensor): Tensor {
    return this.forwardActivated(x, 'none');
  }

  /**
   * act(x W^T + b) as one fused autograd op (`linear`: bias and activation in the matmul's
   * epilogue). Sequential calls it for a Linear followed by a ReLU, Tanh or Sigmoid; the values
   * are those of the two layers run one after the other, bit for bit.
   */
  /** Sequential fuses a following ReLU, Tanh or Sigmoid into this layer. */
  static readonly fusesActivation = true;

  forwardActivated(x: Tensor, activation: LinearActivation): Tensor {
    checkInput('Linear', x);
    if (x.ndim === 0 || x.shape[x.ndim - 1] !== this.inFeatures) {
      fail('Linear', `input of shape ${fmt(x.shape)} does not end in inFeatures=${this.inFeatures}; expected [..., ${this.inFeatures}]`);
    }
    return linear(x, this.weight, this.bias, { activation });
  }

  override extraRepr(): string {
    return `inFeatures=${this.inFeatures}, outFeatures=${this.outFeatures}, bias=${this.bias !== null}`;
  }
}

/** A layer whose class (not a subclass, which may override forward) runs act(layer(x)) fused. */
interface ActivationFusing {
  forwardActivated(x: Tensor, activation: LinearActivation): Tensor;
}

function fusesActivation(layer: Module): layer is Module & ActivationFusing {
  return Object.hasOwn(layer.constructor, 'fusesActivation');
}

/** The activation a Sequential fuses into `layer` (a plain Linear or Conv2d) from the layer after it, if any. */
function fusedActivation(layer: Module, next: Module | undefined): LinearActivation | undefined {
  if (!fusesActivation(layer) || next === undefined) return undefined;
  if (next.constructor === ReLU) return 'relu';
  if (next.constructor === Tanh) return 'tanh';
  if (next.constructor === Sigmoid) return 'sigmoid';
  return undefined;
}

/** Merge axes startAxis..endAxis (default 1..-1: [N, ...] -> [N, prod(...)], as torch.nn.Flatten). */
export class Flatten extends Module {
  constructor(readonly startAxis = 1, readonly endAxis = -1) {
    super();
  }

  forward(x: Tensor): Tensor {
    checkInput('Flatten', x);
    return flatten(x, this.startAxis, this.endAxis);
  }

  override extraRepr(): string {
    return `startAxis=${this.startAxis}, endAxis=${this.endAxis}`;
  }
}

export class ReLU extends Module {
  forward(x: Tensor): Tensor {
    checkInput('ReLU', x);
    return relu(x);
  }
}

export class Tanh extends Module {
  forward(x: Tensor): Tensor {
    checkInput('Tanh', x);
    return tanh(x);
  }
}

export class Sigmoid extends Module {
  forward(x: Tensor): Tensor {
    checkInput('Sigmoid', x);
    return sigmoid(x);
  }
}

/**
 * GELU(x) = x Phi(x) (torch.nn.GELU): by default the exact form 0.5 x (1 + erf(x / sqrt 2)),
 * PyTorch's default; `{ approximate: 'tanh' }` gives torch.nn.GELU(approximate='tanh').
 */
export class GELU extends Module {
  readonly approximate: GeluApproximate;

  constructor(options: { approximate?: GeluApproximate } = {}) {
    super();
    const a = options.approximate ?? 'none';
    if (a !== 'none' && a !== 'tanh') fail('GELU', `approximate must be 'none' or 'tanh', got ${String(a)}`);
    this.approximate = a;
  }

  forward(x: Tensor): Tensor {
    checkInput('GELU', x);
    return gelu(x, { approximate: this.approximate });
  }

  override extraRepr(): string {
    return this.approximate === 'none' ? '' : `approximate=${this.approximate}`;
  }
}

/** softmax along `axis` (default the last). */
export class Softmax extends Module {
  constructor(readonly axis = -1) {
    super();
  }

  forward(x: Tensor): Tensor {
    checkInput('Softmax', x);
    return softmax(x, this.axis);
  }

  override extraRepr(): string {
    return `axis=${this.axis}`;
  }
}

/** log(softmax) along `axis` (default the last), computed stably. */
export class LogSoftmax extends Module {
  constructor(readonly axis = -1) {
    super();
  }

  forward(x: Tensor): Tensor {
    checkInput('LogSoftmax', x);
    return logSoftmax(x, this.axis);
  }

  override extraRepr(): string {
    return `axis=${this.axis}`;
  }
}

/** Applies its layers in order; their parameters are named '0.weight', '1.bias', ... as in PyTorch. */
export class Sequential extends Module {
  readonly layers: Module[];

  constructor(...layers: Module[]) {
    super();
    layers.forEach((m, i) => {
      if (!(m instanceof Module)) fail('Sequential', `layer ${i} is not a Module (got ${m === null ? 'null' : typeof m})`);
    });
    this.layers = layers;
  }

  protected override namedMembers(): Iterable<[string, unknown]> {
    return this.layers.map((m, i): [string, unknown] => [String(i), m]);
  }

  /**
   * Each layer in turn. A Linear or Conv2d directly followed by a ReLU, Tanh or Sigmoid (those
   * exact classes, not subclasses that may override forward) runs as one fused op, the activation
   * in the matmul's epilogue: the same values and gradients, fewer kernel launches.
   */
  forward(x: Tensor): Tensor {
    let y = x;
    for (let i = 0; i < this.layers.length; i++) {
      const layer = this.layers[i];
      const activation = fusedActivation(layer, this.layers[i + 1]);
      const out = activation ? (layer as Module & ActivationFusing).forwardActivated(y, activation) : layer.forward(y);
      if (!(out instanceof Tensor)) fail('Sequential', `layer ${i} (${layer.constructor.name}) returned ${typeof out}, expected a Tensor`);
      y = out;
      if (activation) i++;
    }
    return y;
  }

  get length(): number {
    return this.layers.length;
  }

  /** The layer at `index` (negative counts from the end). */
  at(index: number): Module {
    const m = this.layers.at(index);
    if (!m) fail('Sequential.at', `index ${index} is out of range for ${this.layers.length} layers`);
    return m;
  }

  append(layer: Module): this {
    if (!(layer instanceof Module)) fail('Sequential.append', `expected a Module, got ${typeof layer}`);
    this.layers.push(layer);
    return this;
  }

  [Symbol.iterator](): Iterator<Module> {
    return this.layers[Symbol.iterator]();
  }
}

/** fn(x) + x (needle's Residual); fn must keep the shape. */
export class Residual extends Module {
  constructor(readonly fn: Module) {
    super();
    if (!(fn instanceof Module)) fail('Residual', `expected a Module, got ${typeof fn}`);
  }

  forward(x: Tensor): Tensor {
    checkInput('Residual', x);
    const y = this.fn.forward(x);
    if (!(y instanceof Tensor) || y.shape.join() !== x.shape.join()) {
      fail('Residual', `fn (${this.fn.constructor.name}) must return a Tensor of the input's shape ${fmt(x.shape)}, got ${y instanceof Tensor ? fmt(y.shape) : typeof y}`);
    }
    return add(y, x);
  }
}

/**
 * Inverted dropout: in training, zero each element with probability p and scale the rest by
 * 1 / (1 - p); in eval mode (and for p = 0) the identity. Masks come from `generator` (default: the
 * global generator at call time).
 */
export class Dropout extends Module {
  readonly p: number;
  private readonly generator: Generator | undefined;

  constructor(p = 0.5, options: { generator?: Generator } = {}) {
    super();
    checkProbability('Dropout', 'p', p);
    checkModuleOptions('Dropout', options);
    this.p = p;
    this.generator = options.generator;
  }

  forward(x: Tensor): Tensor {
    checkInput('Dropout', x);
    if (!this.training || this.p === 0) return x;
    return dropout(x, this.p, { generator: this.generator });
  }

  override extraRepr(): string {
    return `p=${this.p}`;
  }
}
