/**
 * Stride arithmetic for the strided forms of `elementwise` and `reduce` (Backend.layouts): the
 * frontend describes each operand over one iteration shape, merges axes that are contiguous in every
 * operand, and decides which views may be read or written directly and which need a copy first.
 */
import type { OperandLayout, StridedLayout } from './backend';
import { isCompactLayout } from './shape';

/** Strides of `shape`-shaped view of an array of `own` shape and strides, broadcast NumPy-style. */
export function broadcastStrides(ownShape: readonly number[], ownStrides: readonly number[], shape: readonly number[]): number[] {
  const lead = shape.length - ownShape.length;
  return shape.map((d, i) => (i < lead || ownShape[i - lead] !== d ? 0 : ownStrides[i - lead]));
}

/** The lowest and highest element a view touches (undefined for an empty view). */
export function viewExtent(shape: readonly number[], strides: readonly number[], offset: number): [number, number] | undefined {
  let lo = offset;
  let hi = offset;
  for (let d = 0; d < shape.length; d++) {
    if (shape[d] === 0) return undefined;
    const reach = (shape[d] - 1) * strides[d];
    if (reach < 0) lo += reach;
    else hi += reach;
  }
  return [lo, hi];
}

/**
 * Whether two different index tuples of the view reach one element (a broadcast view, or an
 * as_strided window), so writing through it would write some element twice. Exact: a quick
 * sufficient test (strides sorted by size, each longer than the reach of the smaller ones) decides
 * every view that slicing, transposes and flips make; anything else is enumerated.
 */
export function viewOverlapsItself(shape: readonly number[], strides: readonly number[]): boolean {
  // Compact views (the common case, e.g. every kernel output) answer without allocating.
  if (isCompactLayout(shape, strides)) return false;
  const axes = shape.map((d, i) => ({ d, s: Math.abs(strides[i]) })).filter((a) => a.d > 1);
  if (axes.some((a) => a.s === 0)) return true;
  axes.sort((x, y) => x.s - y.s);
  let reach = 0;
  let quick = true;
  for (const a of axes) {
    if (a.s <= reach) {
      quick = false;
      break;
    }
    reach += (a.d - 1) * a.s;
  }
  if (quick) return false;
  const span = axes.reduce((r, a) => r + (a.d - 1) * a.s, 0) + 1;
  // Too large to enumerate: counted as overlapping (the caller refuses to write through it).
  if (span > 1 << 26) return true;
  const seen = new Uint8Array(span);
  let hit = false;
  const visit = (k: number, pos: number): void => {
    if (hit) return;
    if (k === axes.length) {
      if (seen[pos]) hit = true;
      seen[pos] = 1;
      return;
    }
    for (let i = 0; i < axes[k].d && !hit; i++) visit(k + 1, pos + i * axes[k].s);
  };
  visit(0, 0);
  return hit;
}

/**
 * Merge the axes of `shape` that every operand walks contiguously (stride of an axis = stride of the
 * next times its length), dropping size-1 axes: a compact program becomes one axis, a bias add over
 * a row-major matrix two. A scalar shape becomes [1]. Returns the shape and each operand's strides.
 */
export function coalesceLayouts(shape: readonly number[], operands: readonly OperandLayout[]): { shape: number[]; layouts: OperandLayout[] } {
  const outShape: number[] = [];
  const outStrides: number[][] = operands.map(() => []);
  shape.forEach((d, axis) => {
    if (d === 1) return;
    const last = outShape.length - 1;
    if (last >= 0 && operands.every((o, k) => outStrides[k][last] === o.strides[axis] * d)) {
      outShape[last] *= d;
      operands.forEach((o, k) => (outStrides[k][last] = o.strides[axis]));
      return;
    }
    outShape.push(d);
    operands.forEach((o, k) => outStrides[k].push(o.strides[axis]));
  });
  if (outShape.length === 0) {
    return { shape: [1], layouts: operands.map((o) => ({ strides: [1], offset: o.offset })) };
  }
  return { shape: outShape, layouts: operands.map((o, k) => ({ strides: outStrides[k], offset: o.offset })) };
}

/** Whether `layout` over `shape` is the compact order from element 0 (what no layout means). */
export function isCompactOperand(shape: readonly number[], layout: OperandLayout): boolean {
  return layout.offset === 0 && isCompactLayout(shape, layout.strides);
}

/** Whether two operands over one iteration shape address the same element at every index. */
export function sameOperandLayout(shape: readonly number[], a: OperandLayout, b: OperandLayout): boolean {
  return a.offset === b.offset && shape.every((d, i) => d === 1 || a.strides[i] === b.strides[i]);
}

/** One view coalesced on its own (for a strided reduce input), keeping its row-major order. */
export function coalesceView(layout: StridedLayout): StridedLayout {
  const c = coalesceLayouts(layout.shape, [layout]);
  return { shape: c.shape, strides: c.layouts[0].strides, offset: layout.offset };
}
