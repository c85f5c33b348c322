import { describeValue } from './check';
import { fail, formatShape } from './errors';

export type Shape = readonly number[];

/** Number of elements of a shape (1 for a scalar shape []). */
export function shapeSize(shape: Shape): number {
  // Indexed, not for-of: called on every launch, and a frozen shape's iterator is not optimised away.
  let n = 1;
  for (let i = 0; i < shape.length; i++) n *= shape[i];
  return n;
}

/** Row-major (C-order) strides of a compact array of this shape. */
export function compactStrides(shape: Shape): number[] {
  const strides = new Array<number>(shape.length);
  let s = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    strides[i] = s;
    s *= shape[i];
  }
  return strides;
}

/** True when the strides are those of a compact row-major array (size-1 axes may have any stride). */
export function isCompactLayout(shape: Shape, strides: readonly number[]): boolean {
  let expected = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    if (shape[i] !== 1 && strides[i] !== expected) return false;
    expected *= shape[i];
  }
  return true;
}

/** Validate a shape given by a user: non-negative integers. */
export function checkShape(op: string, shape: Shape): number[] {
  if (!Array.isArray(shape)) fail(op, `expected a shape (an array of non-negative integers), got ${describeValue(shape)}`);
  for (const d of shape) {
    if (!Number.isInteger(d) || d < 0) fail(op, `shape ${describeShape(shape)} must hold non-negative integers, got ${describeValue(d)}`);
  }
  return [...shape];
}

/** A shape as given by a caller, printed even when it holds non-numbers. */
export function describeShape(shape: readonly unknown[]): string {
  return `[${shape.map((d) => (typeof d === 'number' ? String(d) : describeValue(d))).join(', ')}]`;
}

/** NumPy broadcasting of two shapes. */
export function broadcastShapes(op: string, a: Shape, b: Shape): number[] {
  const n = Math.max(a.length, b.length);
  const out = new Array<number>(n);
  for (let i = 0; i < n; i++) {
    const da = a[a.length - n + i] ?? 1;
    const db = b[b.length - n + i] ?? 1;
    if (da !== db && da !== 1 && db !== 1) {
      fail(op, `shapes ${formatShape(a)} and ${formatShape(b)} cannot be broadcast together (axis ${i - n}: ${da} vs ${db})`);
    }
    out[i] = da === 1 ? db : da;
  }
  return out;
}

/** Normalise one axis (negative counts from the end) and check its range. */
export function normalizeAxis(op: string, axis: number, ndim: number): number {
  if (!Number.isInteger(axis)) fail(op, `axis must be an integer, got ${describeValue(axis)}`);
  if (axis < -ndim || axis >= ndim) {
    fail(op, `axis ${axis} is out of range for an array of ${ndim} dimension${ndim === 1 ? '' : 's'} (expected ${-ndim} <= axis < ${ndim})`);
  }
  return axis < 0 ? axis + ndim : axis;
}

/** Normalise a list of axes (or all axes when undefined); rejects repeats. Returns them sorted. */
export function normalizeAxes(op: string, axes: number | readonly number[] | undefined, ndim: number): number[] {
  if (axes === undefined) return Array.from({ length: ndim }, (_, i) => i);
  if (typeof axes !== 'number' && !Array.isArray(axes)) {
    fail(op, `axes must be an integer, an array of integers or undefined (all axes), got ${describeValue(axes)}`);
  }
  const list: number[] = typeof axes === 'number' ? [axes] : [...axes];
  const out = list.map((a) => normalizeAxis(op, a, ndim));
  if (new Set(out).size !== out.length) fail(op, `repeated axis in ${JSON.stringify(list)}`);
  return out.sort((x, y) => x - y);
}

export function shapesEqual(a: Shape, b: Shape): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
