import { checkInteger, checkNumber, describeValue } from '../check';
import { fail, formatShape } from '../errors';
import { NDArray, sameBackend } from '../ndarray';
import { normalizeAxes, normalizeAxis } from '../shape';
import type { Slice } from '../indexing';

/** Join arrays along an existing axis. */
export function concatenate(arrays: readonly NDArray[], axis = 0): NDArray {
  if (!Array.isArray(arrays as unknown) || arrays.length === 0) fail('concatenate', `expected a non-empty array of NDArrays, got ${describeValue(arrays)}`);
  const backend = sameBackend('concatenate', ...arrays);
  const first = arrays[0];
  const ax = normalizeAxis('concatenate', axis, first.ndim);
  for (const a of arrays) {
    if (a.ndim !== first.ndim || a.shape.some((d, i) => i !== ax && d !== first.shape[i])) {
      fail('concatenate', `shapes ${arrays.map((x) => formatShape(x.shape)).join(', ')} differ outside axis ${ax}`);
    }
  }
  const shape = [...first.shape];
  shape[ax] = arrays.reduce((s, a) => s + a.shape[ax], 0);
  const out = NDArray.empty(shape, backend);
  let start = 0;
  for (const a of arrays) {
    const len = a.shape[ax];
    out.set(axisSlice(ax, { start, stop: start + len }), a);
    start += len;
  }
  return out;
}

/** Join arrays of one shape along a new axis. */
export function stack(arrays: readonly NDArray[], axis = 0): NDArray {
  if (!Array.isArray(arrays as unknown) || arrays.length === 0) fail('stack', `expected a non-empty array of NDArrays, got ${describeValue(arrays)}`);
  sameBackend('stack', ...arrays);
  const first = arrays[0];
  for (const a of arrays) {
    if (a.shape.length !== first.shape.length || a.shape.some((d, i) => d !== first.shape[i])) {
      fail('stack', `all arrays must have one shape, got ${arrays.map((x) => formatShape(x.shape)).join(', ')}`);
    }
  }
  const ax = normalizeAxis('stack', axis, first.ndim + 1);
  const expanded = arrays.map((a) => a.expandDims(ax));
  try {
    return concatenate(expanded, ax);
  } finally {
    expanded.forEach((e) => e.dispose());
  }
}

/**
 * Split into views along an axis, like torch.split: a number is the size of each piece (the last may
 * be smaller), a list gives every piece's size and must add up to the axis length.
 */
export function split(a: NDArray, sizes: number | readonly number[], axis = 0): NDArray[] {
  sameBackend('split', a);
  const ax = normalizeAxis('split', axis, a.ndim);
  const pieces = splitSizes('split', sizes, a.shape, ax);
  let start = 0;
  return pieces.map((len) => {
    const v = a.get(...axisSlice(ax, { start, stop: start + len }));
    start += len;
    return v;
  });
}

/**
 * The size of each piece when splitting axis `ax` of `shape`: a number is every piece's size (the last
 * may be smaller), a list is checked to hold non-negative integers adding up to the axis length.
 * Shared with autograd's split, so both accept and reject the same arguments.
 */
export function splitSizes(op: string, sizes: number | readonly number[], shape: readonly number[], ax: number): number[] {
  const n = shape[ax];
  if (typeof sizes !== 'number' && !Array.isArray(sizes)) fail(op, `sizes must be an integer or an array of integers, got ${describeValue(sizes)}`);
  if (typeof sizes === 'number') {
    if (!Number.isInteger(sizes) || sizes <= 0) fail(op, `split size must be a positive integer, got ${sizes}`);
    const pieces: number[] = [];
    for (let s = 0; s < n; s += sizes) pieces.push(Math.min(sizes, n - s));
    return pieces;
  }
  const pieces = [...sizes];
  if (pieces.some((p) => !Number.isInteger(p) || p < 0) || pieces.reduce((x, y) => x + y, 0) !== n) {
    fail(op, `sizes ${JSON.stringify(sizes)} must be non-negative integers adding up to ${n} (axis ${ax} of shape ${formatShape(shape)})`);
  }
  return pieces;
}

/** The inverse of stack: views of each index along `axis`, with that axis removed. */
export function unstack(a: NDArray, axis = 0): NDArray[] {
  sameBackend('unstack', a);
  const ax = normalizeAxis('unstack', axis, a.ndim);
  return Array.from({ length: a.shape[ax] }, (_, i) => a.get(...axisSlice(ax, i)));
}

/** Constant padding: padWidth[i] = [before, after] for axis i (missing trailing axes get [0, 0]). */
export function pad(a: NDArray, padWidth: ReadonlyArray<readonly [number, number]>, value = 0): NDArray {
  sameBackend('pad', a);
  checkPadWidth('pad', padWidth, a.shape);
  checkNumber('pad', 'the pad value', value, { finite: false });
  const pw = a.shape.map((_, i) => padWidth[i] ?? [0, 0]);
  const out = NDArray.empty(a.shape.map((d, i) => d + pw[i][0] + pw[i][1]), a.backend, 'pad');
  out.backend.fill(out.buffer, value, out.size);
  out.set(a.shape.map((d, i) => ({ start: pw[i][0], stop: pw[i][0] + d })), a);
  return out;
}

/** Pad widths as [before, after] pairs of non-negative integers, one pair per leading axis at most. Shared with autograd. */
export function checkPadWidth(op: string, padWidth: unknown, shape: readonly number[]): asserts padWidth is ReadonlyArray<readonly [number, number]> {
  const ok = Array.isArray(padWidth) && padWidth.every((p) => Array.isArray(p) && p.length === 2 && p.every((w) => Number.isInteger(w) && w >= 0));
  if (!ok) fail(op, `padWidth must be an array of [before, after] pairs of non-negative integers, got ${describeValue(padWidth)}`);
  if (padWidth.length > shape.length) fail(op, `got ${padWidth.length} pad pairs for an array of shape ${formatShape(shape)}`);
}

/** Insert `dilation` zeros between consecutive elements along the axes (needle's dilate). */
export function dilate(a: NDArray, axes: number | readonly number[], dilation: number): NDArray {
  sameBackend('dilate', a);
  checkInteger('dilate', 'dilation', dilation);
  const list = normalizeAxes('dilate', axes, a.ndim);
  const shape = a.shape.map((d, i) => (list.includes(i) ? d * (dilation + 1) : d));
  const out = NDArray.empty(shape, a.backend);
  out.backend.fill(out.buffer, 0, out.size);
  out.set(a.shape.map((_, i) => (list.includes(i) ? { step: dilation + 1 } : {})), a);
  return out;
}

/** The inverse of dilate: a strided view keeping every (dilation+1)-th element along the axes. */
export function undilate(a: NDArray, axes: number | readonly number[], dilation: number): NDArray {
  sameBackend('undilate', a);
  checkInteger('undilate', 'dilation', dilation);
  const list = normalizeAxes('undilate', axes, a.ndim);
  return a.get(...a.shape.map((_, i): Slice => (list.includes(i) ? { step: dilation + 1 } : {})));
}

/** An index list selecting `sel` on axis `ax` and everything on the axes before it. */
function axisSlice(ax: number, sel: Slice | number): (Slice | number)[] {
  return [...Array.from({ length: ax }, (): Slice => ({})), sel];
}
