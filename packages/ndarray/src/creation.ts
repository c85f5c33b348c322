import type { Backend } from './backend';
import { fail, formatShape } from './errors';
import { NDArray, type NestedArray } from './ndarray';
import { defaultGenerator, type Generator } from './random';
import { checkShape, shapeSize, type Shape } from './shape';

export interface CreationOptions {
  /** Backend instance or registered name (default: the default backend). */
  backend?: Backend | string;
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
  if (typeof data === 'number') return full(options.shape ?? [], data, options);
  if (ArrayBuffer.isView(data)) {
    const flat = Float32Array.from(data as NumericArray);
    return NDArray.fromData(flat, options.shape ?? [flat.length], options.backend);
  }
  if (!Array.isArray(data)) fail('array', `expected nested arrays, a typed array or a number, got ${typeof data}`);
  const shape = nestedShape(data as NestedArray[]);
  const flat = new Float32Array(shapeSize(shape));
  let i = 0;
  const walk = (v: NestedArray, depth: number) => {
    if (depth === shape.length) {
      if (typeof v !== 'number') fail('array', `ragged nested array: expected a number at depth ${depth}, shape ${formatShape(shape)}`);
      flat[i++] = v;
      return;
    }
    if (!Array.isArray(v) || v.length !== shape[depth]) {
      fail('array', `ragged nested array: expected ${shape[depth]} elements at depth ${depth} (shape ${formatShape(shape)})`);
    }
    for (const x of v) walk(x, depth + 1);
  };
  walk(data as NestedArray, 0);
  const arr = NDArray.fromData(flat, shape, options.backend);
  if (options.shape) {
    try {
      return arr.reshape(options.shape);
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

/** An array of `shape` filled with `value`. */
export function full(shape: Shape, value: number, options: CreationOptions = {}): NDArray {
  const out = NDArray.empty(checkShape('full', shape), options.backend);
  if (out.size > 0) out.backend.fill(out.buffer, value, out.size);
  return out;
}

export function zeros(shape: Shape, options: CreationOptions = {}): NDArray {
  return full(shape, 0, options);
}

export function ones(shape: Shape, options: CreationOptions = {}): NDArray {
  return full(shape, 1, options);
}

export function fullLike(a: NDArray, value: number): NDArray {
  return full(a.shape, value, { backend: a.backend });
}

export function zerosLike(a: NDArray): NDArray {
  return fullLike(a, 0);
}

export function onesLike(a: NDArray): NDArray {
  return fullLike(a, 1);
}

/** Evenly spaced values in [start, stop): arange(n), arange(start, stop), arange(start, stop, step). */
export function arange(start: number, stop?: number, step = 1, options: CreationOptions = {}): NDArray {
  const [lo, hi] = stop === undefined ? [0, start] : [start, stop];
  if (step === 0 || !Number.isFinite(step)) fail('arange', `step must be a finite non-zero number, got ${step}`);
  const n = Math.max(0, Math.ceil((hi - lo) / step));
  const data = new Float32Array(n);
  for (let i = 0; i < n; i++) data[i] = lo + i * step;
  return NDArray.fromData(data, [n], options.backend);
}

/** Identity matrix n x m (m defaults to n). */
export function eye(n: number, m = n, options: CreationOptions = {}): NDArray {
  checkShape('eye', [n, m]);
  const data = new Float32Array(n * m);
  for (let i = 0; i < Math.min(n, m); i++) data[i * m + i] = 1;
  return NDArray.fromData(data, [n, m], options.backend);
}

/** Uniform random values in [low, high), drawn on the host so every backend gets the same numbers. */
export function rand(shape: Shape, options: RandomOptions & { low?: number; high?: number } = {}): NDArray {
  const s = checkShape('rand', shape);
  const g = options.generator ?? defaultGenerator();
  const data = g.fillUniform(new Float32Array(shapeSize(s)), options.low ?? 0, options.high ?? 1);
  return NDArray.fromData(data, s, options.backend);
}

/** Normal random values, drawn on the host. */
export function randn(shape: Shape, options: RandomOptions & { mean?: number; std?: number } = {}): NDArray {
  const s = checkShape('randn', shape);
  const g = options.generator ?? defaultGenerator();
  const data = g.fillNormal(new Float32Array(shapeSize(s)), options.mean ?? 0, options.std ?? 1);
  return NDArray.fromData(data, s, options.backend);
}
