import type { Backend } from './backend';
import { checkDType, checkNumber, checkOptions, describeValue } from './check';
import { fail, formatShape } from './errors';
import { NDArray, type NestedArray } from './ndarray';
import { defaultGenerator, Generator } from './random';
import { checkShape, shapeSize, type Shape } from './shape';

export interface CreationOptions {
  /** Backend instance or registered name (default: the default backend). */
  backend?: Backend | string;
  /** Only 'float32' for now: any other dtype is refused, not silently stored as float32. */
  dtype?: 'float32';
}

export interface RandomOptions extends CreationOptions {
  /** Generator to draw from (default: the global one, seeded with manualSeed). */
  generator?: Generator;
}

type NumericArray = ArrayLike<number> & { readonly length: number };

/**
 * Create an array from nested JS arrays, a typed array (optionally with a shape) or a number
 * (a 0-d array).
 */
export function array(data: NestedArray | NumericArray, options: CreationOptions & { shape?: Shape } = {}): NDArray {
  const opts = creationOptions('array', options);
  if (typeof data === 'number') return filled('array', opts.shape ?? [], data, opts);
  if (ArrayBuffer.isView(data)) {
    if (data instanceof DataView || data instanceof BigInt64Array || data instanceof BigUint64Array) {
      fail('array', `expected a typed array of numbers, got ${describeValue(data)}`);
    }
    const flat = Float32Array.from(data as NumericArray);
    return NDArray.fromData(flat, opts.shape ?? [flat.length], opts.backend, 'array');
  }
  if (!Array.isArray(data)) fail('array', `expected nested arrays, a typed array or a number, got ${describeValue(data)}`);
  const shape = nestedShape(data as NestedArray[]);
  const flat = hostData('array', shape);
  let i = 0;
  const walk = (v: NestedArray, depth: number) => {
    if (depth === shape.length) {
      if (typeof v !== 'number') fail('array', `expected a number at depth ${depth} of a nested array of shape ${formatShape(shape)}, got ${describeValue(v)}`);
      flat[i++] = v;
      return;
    }
    if (!Array.isArray(v) || v.length !== shape[depth]) {
      fail('array', `ragged nested array: expected ${shape[depth]} elements at depth ${depth} (shape ${formatShape(shape)})`);
    }
    for (const x of v) walk(x, depth + 1);
  };
  walk(data as NestedArray, 0);
  const arr = NDArray.fromData(flat, shape, opts.backend, 'array');
  if (opts.shape !== undefined && opts.shape !== null) {
    try {
      return arr.reshape(opts.shape);
    } finally {
      arr.dispose();
    }
  }
  return arr;
}

function nestedShape(data: NestedArray[]): number[] {
  const shape: number[] = [];
  let v: NestedArray = data;
  while (Array.isArray(v)) {
    shape.push(v.length);
    if (v.length === 0) break;
    v = v[0];
  }
  return shape;
}

/** Validate the options every creation function takes (the dtype one included). */
function creationOptions<T extends CreationOptions>(op: string, options: T | undefined): T {
  const opts = checkOptions(op, options);
  checkDType(op, opts.dtype);
  return opts;
}

/**
 * A host Float32Array for `shape`, or a NeedleError when the host cannot hold it (the engine's own
 * RangeError would name neither the op nor the shape).
 */
function hostData(op: string, shape: Shape): Float32Array {
  const n = shapeSize(shape);
  try {
    return new Float32Array(n);
  } catch (error) {
    return fail(op, `cannot allocate ${n} float32 elements on the host for shape ${formatShape(shape)}: ${(error as Error).message}`);
  }
}

function filled(op: string, shape: Shape, value: number, options: CreationOptions): NDArray {
  const s = checkShape(op, shape);
  checkNumber(op, 'the fill value', value, { finite: false });
  const out = NDArray.empty(s, options.backend, op);
  if (out.size > 0) out.backend.fill(out.buffer, value, out.size);
  return out;
}

/** An array of `shape` filled with `value`. */
export function full(shape: Shape, value: number, options: CreationOptions = {}): NDArray {
  return filled('full', shape, value, creationOptions('full', options));
}

export function zeros(shape: Shape, options: CreationOptions = {}): NDArray {
  return filled('zeros', shape, 0, creationOptions('zeros', options));
}

export function ones(shape: Shape, options: CreationOptions = {}): NDArray {
  return filled('ones', shape, 1, creationOptions('ones', options));
}

function likeArray(op: string, a: NDArray): NDArray {
  if (!(a instanceof NDArray)) fail(op, `expected an NDArray, got ${describeValue(a)}`);
  a.assertLive(op);
  return a;
}

export function fullLike(a: NDArray, value: number): NDArray {
  return filled('fullLike', likeArray('fullLike', a).shape, value, { backend: a.backend });
}

export function zerosLike(a: NDArray): NDArray {
  return filled('zerosLike', likeArray('zerosLike', a).shape, 0, { backend: a.backend });
}

export function onesLike(a: NDArray): NDArray {
  return filled('onesLike', likeArray('onesLike', a).shape, 1, { backend: a.backend });
}

/** Evenly spaced values in [start, stop): arange(n), arange(start, stop), arange(start, stop, step). */
export function arange(start: number, stop?: number, step = 1, options: CreationOptions = {}): NDArray {
  const opts = creationOptions('arange', options);
  checkNumber('arange', 'start', start);
  if (stop !== undefined) checkNumber('arange', 'stop', stop);
  checkNumber('arange', 'step', step);
  const [lo, hi] = stop === undefined ? [0, start] : [start, stop];
  if (step === 0) fail('arange', `step must be a finite non-zero number, got ${step}`);
  const n = Math.max(0, Math.ceil((hi - lo) / step));
  const data = hostData('arange', [n]);
  for (let i = 0; i < n; i++) data[i] = lo + i * step;
  return NDArray.fromData(data, [n], opts.backend, 'arange');
}

/** Identity matrix n x m (m defaults to n). */
export function eye(n: number, m = n, options: CreationOptions = {}): NDArray {
  const opts = creationOptions('eye', options);
  checkShape('eye', [n, m]);
  const data = hostData('eye', [n, m]);
  for (let i = 0; i < Math.min(n, m); i++) data[i * m + i] = 1;
  return NDArray.fromData(data, [n, m], opts.backend, 'eye');
}

function generatorOption(op: string, g: Generator | undefined): Generator {
  if (g === undefined) return defaultGenerator();
  if (!(g instanceof Generator)) fail(op, `generator must be a Generator, got ${describeValue(g)}`);
  return g;
}

/** Uniform random values in [low, high), drawn on the host so every backend gets the same numbers. */
export function rand(shape: Shape, options: RandomOptions & { low?: number; high?: number } = {}): NDArray {
  const opts = creationOptions('rand', options);
  const s = checkShape('rand', shape);
  const low = checkNumber('rand', 'low', opts.low ?? 0);
  const high = checkNumber('rand', 'high', opts.high ?? 1);
  if (low > high) fail('rand', `low must be <= high, got low ${low} and high ${high}`);
  const g = generatorOption('rand', opts.generator);
  const data = g.fillUniform(hostData('rand', s), low, high);
  return NDArray.fromData(data, s, opts.backend, 'rand');
}

/** Normal random values, drawn on the host. */
export function randn(shape: Shape, options: RandomOptions & { mean?: number; std?: number } = {}): NDArray {
  const opts = creationOptions('randn', options);
  const s = checkShape('randn', shape);
  const mean = checkNumber('randn', 'mean', opts.mean ?? 0);
  const std = checkNumber('randn', 'std', opts.std ?? 1, { min: 0 });
  const g = generatorOption('randn', opts.generator);
  const data = g.fillNormal(hostData('randn', s), mean, std);
  return NDArray.fromData(data, s, opts.backend, 'randn');
}
