/**
 * Parameter initialisers (PyTorch's torch.nn.init, needle's init.py). Each takes a shape and returns a
 * new Parameter; random ones draw on the host from a seeded Generator (default: the global one that
 * `manualSeed` resets), so one seed gives the same weights on every backend.
 *
 * Fans follow PyTorch's weight layout: for a shape [out, in, ...kernel], fanIn = in * prod(kernel)
 * and fanOut = out * prod(kernel). Pass `fanIn`/`fanOut` to override them (needle's style).
 */
import { full as ndFull, type NDArray, rand as ndRand, randn as ndRandn, type Backend, type Generator, type Shape } from '@needle/ndarray';
import { fail, fmt } from './errors';
import { Parameter } from './module';

export interface InitOptions {
  /** Backend instance or registered name (default: the default backend). */
  backend?: Backend | string;
  /** Default true. */
  requiresGrad?: boolean;
}

export interface RandomInitOptions extends InitOptions {
  /** Default: the global generator (see `manualSeed` in @needle/ndarray). */
  generator?: Generator;
}

export interface FanOptions extends RandomInitOptions {
  /** Override the fan-in computed from the shape. */
  fanIn?: number;
  /** Override the fan-out computed from the shape. */
  fanOut?: number;
}

export type Nonlinearity =
  | 'linear' | 'identity' | 'conv1d' | 'conv2d' | 'conv3d' | 'sigmoid' | 'tanh' | 'relu' | 'leakyRelu' | 'selu';

/** The recommended gain for a nonlinearity (torch.nn.init.calculate_gain); `param` is leaky ReLU's slope. */
export function calculateGain(nonlinearity: Nonlinearity, param?: number): number {
  switch (nonlinearity) {
    case 'linear':
    case 'identity':
    case 'conv1d':
    case 'conv2d':
    case 'conv3d':
    case 'sigmoid':
      return 1;
    case 'tanh':
      return 5 / 3;
    case 'relu':
      return Math.SQRT2;
    case 'leakyRelu': {
      const slope = param ?? 0.01;
      return Math.sqrt(2 / (1 + slope * slope));
    }
    case 'selu':
      return 3 / 4;
    default:
      return nonlinearity satisfies never;
  }
}

/** fanIn and fanOut of a weight shape [out, in, ...kernel] (PyTorch's rule; needs at least 2 axes). */
export function computeFans(shape: Shape): { fanIn: number; fanOut: number } {
  if (shape.length < 2) {
    fail('init', `fan in and fan out cannot be computed for a shape with fewer than 2 axes, got ${fmt(shape)}; pass fanIn/fanOut`);
  }
  const receptive = shape.slice(2).reduce((p, d) => p * d, 1);
  return { fanIn: shape[1] * receptive, fanOut: shape[0] * receptive };
}

function fans(op: string, shape: Shape, options: FanOptions): { fanIn: number; fanOut: number } {
  if (options.fanIn !== undefined && options.fanOut !== undefined) return { fanIn: options.fanIn, fanOut: options.fanOut };
  if (shape.length < 2) fail(op, `cannot compute fans for shape ${fmt(shape)} (fewer than 2 axes); pass fanIn and fanOut`);
  const computed = computeFans(shape);
  return { fanIn: options.fanIn ?? computed.fanIn, fanOut: options.fanOut ?? computed.fanOut };
}

function make(data: NDArray, options: InitOptions): Parameter {
  return new Parameter(data, { requiresGrad: options.requiresGrad ?? true });
}

/** Uniform on [low, high). */
export function uniform(shape: Shape, low = 0, high = 1, options: RandomInitOptions = {}): Parameter {
  if (!(high >= low)) fail('init.uniform', `expected low <= high, got low=${low}, high=${high}`);
  return make(ndRand(shape, { backend: options.backend, generator: options.generator, low, high }), options);
}

/** Normal with the given mean and standard deviation. */
export function normal(shape: Shape, mean = 0, std = 1, options: RandomInitOptions = {}): Parameter {
  if (!(std >= 0)) fail('init.normal', `std must be >= 0, got ${std}`);
  return make(ndRandn(shape, { backend: options.backend, generator: options.generator, mean, std }), options);
}

/** Every element `value`. */
export function constant(shape: Shape, value: number, options: InitOptions = {}): Parameter {
  return make(ndFull(shape, value, { backend: options.backend }), options);
}

export function zeros(shape: Shape, options: InitOptions = {}): Parameter {
  return constant(shape, 0, options);
}

export function ones(shape: Shape, options: InitOptions = {}): Parameter {
  return constant(shape, 1, options);
}

/** Glorot uniform: U(-a, a) with a = gain * sqrt(6 / (fanIn + fanOut)). */
export function xavierUniform(shape: Shape, options: FanOptions & { gain?: number } = {}): Parameter {
  const { fanIn, fanOut } = fans('xavierUniform', shape, options);
  const a = (options.gain ?? 1) * Math.sqrt(6 / (fanIn + fanOut));
  return uniform(shape, -a, a, options);
}

/** Glorot normal: N(0, std^2) with std = gain * sqrt(2 / (fanIn + fanOut)). */
export function xavierNormal(shape: Shape, options: FanOptions & { gain?: number } = {}): Parameter {
  const { fanIn, fanOut } = fans('xavierNormal', shape, options);
  const std = (options.gain ?? 1) * Math.sqrt(2 / (fanIn + fanOut));
  return normal(shape, 0, std, options);
}

export interface KaimingOptions extends FanOptions {
  /** Negative slope of the leaky ReLU that follows (default 0, i.e. plain ReLU). */
  a?: number;
  /** Preserve the variance of the forward pass ('fanIn', default) or of the backward pass ('fanOut'). */
  mode?: 'fanIn' | 'fanOut';
  /** Default 'leakyRelu' (with a = 0 its gain is ReLU's sqrt(2)), as in PyTorch. */
  nonlinearity?: Nonlinearity;
}

function kaimingStd(op: string, shape: Shape, options: KaimingOptions): number {
  const mode = options.mode ?? 'fanIn';
  if (mode !== 'fanIn' && mode !== 'fanOut') fail(op, `mode must be 'fanIn' or 'fanOut', got ${String(mode)}`);
  const given = mode === 'fanIn' ? options.fanIn : options.fanOut;
  const fan = given ?? fans(op, shape, options)[mode];
  if (!(fan > 0)) fail(op, `the ${mode} of shape ${fmt(shape)} is ${fan}; expected a positive number`);
  const gain = calculateGain(options.nonlinearity ?? 'leakyRelu', options.a ?? 0);
  return gain / Math.sqrt(fan);
}

/** He uniform: U(-b, b) with b = gain * sqrt(3 / fan). */
export function kaimingUniform(shape: Shape, options: KaimingOptions = {}): Parameter {
  const bound = Math.sqrt(3) * kaimingStd('kaimingUniform', shape, options);
  return uniform(shape, -bound, bound, options);
}

/** He normal: N(0, std^2) with std = gain / sqrt(fan). */
export function kaimingNormal(shape: Shape, options: KaimingOptions = {}): Parameter {
  return normal(shape, 0, kaimingStd('kaimingNormal', shape, options), options);
}
