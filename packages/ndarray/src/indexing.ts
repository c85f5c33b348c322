import { describeValue } from './check';
import { fail, formatShape } from './errors';
import type { Shape } from './shape';

/** A Python-style slice; missing fields take their defaults for the step's direction. */
export interface Slice {
  start?: number | null;
  stop?: number | null;
  step?: number | null;
}

/**
 * One index entry: an integer (selects and drops the axis), a slice object or string
 * ('a:b:c', ':', '::-1'), null (inserts a new axis) or '...' (as many full slices as needed).
 */
export type Index = number | Slice | string | null;

/** Build a slice object: slice(1, 5, 2) is the same as '1:5:2'. */
export function slice(start?: number | null, stop?: number | null, step?: number | null): Slice {
  return { start, stop, step };
}

export interface ParsedView {
  shape: number[];
  strides: number[];
  offset: number;
}

/** Apply an index list to a strided layout, producing the layout of the selected view. */
export function parseIndex(op: string, shape: Shape, strides: readonly number[], offset: number, index: readonly Index[]): ParsedView {
  if (index.length <= shape.length && index.every(Number.isInteger)) return integerIndex(op, shape, strides, offset, index as readonly number[]);
  index.forEach((e) => checkIndexEntry(op, e, shape));
  const entries = index.map((e) => (typeof e === 'string' && e.trim() !== '...' ? parseSliceString(op, e) : e));
  const ellipses = entries.filter((e) => typeof e === 'string').length;
  if (ellipses > 1) fail(op, `an index can hold at most one '...'`);
  const consuming = entries.filter((e) => e !== null && typeof e !== 'string').length;
  if (consuming > shape.length) {
    fail(op, `too many indices (${consuming}) for an array of shape ${formatShape(shape)}`);
  }
  const expanded: (number | Slice | null)[] = [];
  for (const e of entries) {
    if (typeof e === 'string') {
      for (let i = 0; i < shape.length - consuming; i++) expanded.push({});
    } else {
      expanded.push(e);
    }
  }
  while (expanded.filter((e) => e !== null).length < shape.length) expanded.push({});

  const outShape: number[] = [];
  const outStrides: number[] = [];
  let off = offset;
  let axis = 0;
  for (const e of expanded) {
    if (e === null) {
      outShape.push(1);
      outStrides.push(0);
      continue;
    }
    const n = shape[axis];
    const st = strides[axis];
    if (typeof e === 'number') {
      if (e < -n || e >= n) {
        fail(op, `index ${e} is out of bounds for axis ${axis} with size ${n} (array of shape ${formatShape(shape)})`);
      }
      off += (e < 0 ? e + n : e) * st;
    } else {
      const { start, length, step } = resolveSlice(op, e, n);
      if (length > 0) off += start * st;
      outShape.push(length);
      outStrides.push(st * step);
    }
    axis++;
  }
  return { shape: outShape, strides: outStrides, offset: off };
}

/**
 * Leading integer entries only (`x.get(t)`, `x.get(i, j)`: what loops over time steps or rows do on
 * every iteration): the same view and errors as the general path, without its intermediate lists.
 */
function integerIndex(op: string, shape: Shape, strides: readonly number[], offset: number, index: readonly number[]): ParsedView {
  let off = offset;
  for (let axis = 0; axis < index.length; axis++) {
    const e = index[axis];
    const n = shape[axis];
    if (e < -n || e >= n) {
      fail(op, `index ${e} is out of bounds for axis ${axis} with size ${n} (array of shape ${formatShape(shape)})`);
    }
    off += (e < 0 ? e + n : e) * strides[axis];
  }
  return { shape: shape.slice(index.length), strides: strides.slice(index.length), offset: off };
}

const SLICE_KEYS = new Set(['start', 'stop', 'step']);

/**
 * Basic indexing only: every entry selects a view. Integer arrays, boolean masks and tensors would
 * need a copy (NumPy's advanced indexing) and are refused rather than read as a full slice; the
 * message points to the ops that do those selections.
 */
function checkIndexEntry(op: string, e: unknown, shape: Shape): void {
  if (e === null || typeof e === 'string') return;
  if (typeof e === 'number') {
    if (!Number.isInteger(e)) fail(op, `index ${describeValue(e)} must be an integer (array of shape ${formatShape(shape)})`);
    return;
  }
  const advanced = 'indexing selects views only (integers, slices, null, \'...\'); for integer-array indexing use indexSelect or gather, for a boolean mask use where';
  if (typeof e === 'boolean' || Array.isArray(e) || ArrayBuffer.isView(e)) {
    fail(op, `got ${describeValue(e)} as an index of an array of shape ${formatShape(shape)}: ${advanced}`);
  }
  if (typeof e !== 'object' || Object.getPrototypeOf(e) !== Object.prototype || Object.keys(e).some((k) => !SLICE_KEYS.has(k))) {
    fail(op, `got ${describeValue(e)} as an index of an array of shape ${formatShape(shape)}: expected an integer, a slice ({ start, stop, step } or 'a:b:c'), null or '...'; ${advanced}`);
  }
  for (const k of SLICE_KEYS) {
    const v = (e as Record<string, unknown>)[k];
    if (v !== undefined && v !== null && !Number.isInteger(v)) fail(op, `slice ${k} must be an integer, null or undefined, got ${describeValue(v)}`);
  }
}

/** Python's slice.indices: normalised start, length and step for an axis of size n. */
export function resolveSlice(op: string, s: Slice, n: number): { start: number; length: number; step: number } {
  const step = s.step ?? 1;
  if (!Number.isInteger(step) || step === 0) fail(op, `slice step must be a non-zero integer, got ${step}`);
  const norm = (v: number | null | undefined, dflt: number, lo: number, hi: number) => {
    if (v === null || v === undefined) return dflt;
    if (!Number.isInteger(v)) fail(op, `slice bounds must be integers, got ${v}`);
    const x = v < 0 ? v + n : v;
    return Math.min(Math.max(x, lo), hi);
  };
  if (step > 0) {
    const start = norm(s.start, 0, 0, n);
    const stop = norm(s.stop, n, 0, n);
    return { start, step, length: Math.max(0, Math.ceil((stop - start) / step)) };
  }
  const start = norm(s.start, n - 1, -1, n - 1);
  const stop = norm(s.stop, -1, -1, n - 1);
  // An explicit negative stop that normalises below 0 means "through element 0".
  return { start, step, length: Math.max(0, Math.ceil((start - stop) / -step)) };
}

function parseSliceString(op: string, text: string): Slice | number {
  const t = text.trim();
  if (/^-?\d+$/.test(t)) return Number(t);
  const parts = t.split(':');
  if (parts.length < 2 || parts.length > 3) fail(op, `cannot parse index '${text}' (expected 'start:stop:step', ':' or '...')`);
  const num = (p: string | undefined) => {
    if (p === undefined || p.trim() === '') return undefined;
    if (!/^\s*-?\d+\s*$/.test(p)) fail(op, `cannot parse index '${text}': '${p}' is not an integer`);
    return Number(p);
  };
  return { start: num(parts[0]), stop: num(parts[1]), step: num(parts[2]) };
}
