/**
 * Host-side reference computations for the conformance suite: plain loops over Float32Array, written
 * independently of any backend, so a backend is checked against values computed here.
 */
import { applyBinary, applyUnary, type BinaryOp, type MatmulSpec, type ReduceOp, type UnaryOp } from '../backend';
import { compactStrides, shapeSize, type Shape } from '../shape';
import type { Generator } from '../random';

/** Round to float32, as every backend stores. */
export const f32 = Math.fround;

export function randomData(g: Generator, size: number, low = -2, high = 2): Float32Array {
  return g.fillUniform(new Float32Array(size), low, high);
}

export function refBinary(op: BinaryOp, a: Float32Array, b: Float32Array): Float32Array {
  return a.map((x, i) => f32(applyBinary(op, x, b[i])));
}

export function refUnary(op: UnaryOp, a: Float32Array): Float32Array {
  return a.map((x) => f32(applyUnary(op, x)));
}

/** Element at a multi-index of a compact array. */
export function at(data: Float32Array, shape: Shape, idx: readonly number[]): number {
  const st = compactStrides(shape);
  return data[idx.reduce((s, i, d) => s + i * st[d], 0)];
}

/** Build a compact array of `shape` whose element at idx is fn(idx). */
export function generate(shape: Shape, fn: (idx: number[]) => number): Float32Array {
  const out = new Float32Array(shapeSize(shape));
  const idx = new Array<number>(shape.length).fill(0);
  for (let i = 0; i < out.length; i++) {
    out[i] = fn(idx);
    for (let d = shape.length - 1; d >= 0; d--) {
      if (++idx[d] < shape[d]) break;
      idx[d] = 0;
    }
  }
  return out;
}

/** Gather a strided view of raw data (the semantics of the `compact` kernel). */
export function refStrided(data: Float32Array, shape: Shape, strides: readonly number[], offset: number): Float32Array {
  return generate(shape, (idx) => data[offset + idx.reduce((s, i, d) => s + i * strides[d], 0)]);
}

export function refReduce(op: ReduceOp, a: Float32Array, outSize: number, reduceSize: number): Float32Array {
  const out = new Float32Array(outSize);
  for (let j = 0; j < outSize; j++) {
    const block = a.subarray(j * reduceSize, (j + 1) * reduceSize);
    let r: number;
    switch (op) {
      case 'sum': r = block.reduce((s, x) => s + x, 0); break;
      case 'max':
      case 'min': {
        r = op === 'max' ? -Infinity : Infinity;
        for (const x of block) {
          if (Number.isNaN(x)) {
            r = NaN;
            break;
          }
          if (op === 'max' ? x > r : x < r) r = x;
        }
        break;
      }
      case 'argmax':
      case 'argmin': {
        let best = 0;
        for (let i = 1; i < block.length; i++) {
          if (Number.isNaN(block[best])) break;
          if (Number.isNaN(block[i]) || (op === 'argmax' ? block[i] > block[best] : block[i] < block[best])) best = i;
        }
        r = best;
        break;
      }
      default: r = op satisfies never;
    }
    out[j] = r;
  }
  return out;
}

export function refMatmul(a: Float32Array, b: Float32Array, s: MatmulSpec): Float32Array {
  const out = new Float32Array(s.batch * s.m * s.n);
  for (let t = 0; t < s.batch; t++) {
    for (let i = 0; i < s.m; i++) {
      for (let j = 0; j < s.n; j++) {
        let acc = 0;
        for (let p = 0; p < s.k; p++) {
          const av = a[t * s.aBatchStride + (s.transA ? p * s.m + i : i * s.k + p)];
          const bv = b[t * s.bBatchStride + (s.transB ? j * s.k + p : p * s.n + j)];
          acc += av * bv;
        }
        out[t * s.m * s.n + i * s.n + j] = acc;
      }
    }
  }
  return out;
}

export interface Tolerance {
  rtol: number;
  atol: number;
}

/** Index and values of the first mismatch, or undefined when all close (NaN matches NaN). */
export function firstMismatch(actual: ArrayLike<number>, expected: ArrayLike<number>, tol: Tolerance): string | undefined {
  if (actual.length !== expected.length) return `length ${actual.length} vs expected ${expected.length}`;
  for (let i = 0; i < actual.length; i++) {
    const x = actual[i];
    const y = expected[i];
    if (Number.isNaN(y) ? Number.isNaN(x) : x === y || Math.abs(x - y) <= tol.atol + tol.rtol * Math.abs(y)) continue;
    return `element ${i}: got ${x}, expected ${y} (rtol ${tol.rtol}, atol ${tol.atol})`;
  }
  return undefined;
}
