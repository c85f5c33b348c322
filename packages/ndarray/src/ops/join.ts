import { fail, formatShape } from '../errors';
import { NDArray, sameBackend } from '../ndarray';
import { normalizeAxes, normalizeAxis } from '../shape';
import type { Slice } from '../indexing';

/** Join arrays along an existing axis. */
export function concatenate(arrays: readonly NDArray[], axis = 0): NDArray {
  if (arrays.length === 0) fail('concatenate', 'expected at least one array');
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
  if (arrays.length === 0) fail('stack', 'expected at least one array');
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
  a.assertLive('split');
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
  a.assertLive('unstack');
  const ax = normalizeAxis('unstack', axis, a.ndim);
  return Array.from({ length: a.shape[ax] }, (_, i) => a.get(...axisSlice(ax, i)));
}

/** Constant padding: padWidth[i] = [before, after] for axis i (missing trailing axes get [0, 0]). */
export function pad(a: NDArray, padWidth: ReadonlyArray<readonly [number, number]>, value = 0): NDArray {
  a.assertLive('pad');
  if (padWidth.length > a.ndim) fail('pad', `got ${padWidth.length} pad pairs for an array of shape ${formatShape(a.shape)}`);
  const pw = a.shape.map((_, i) => padWidth[i] ?? [0, 0]);
  for (const [lo, hi] of pw) {
    if (!Number.isInteger(lo) || !Number.isInteger(hi) || lo < 0 || hi < 0) {
      fail('pad', `pad widths must be non-negative integers, got ${JSON.stringify(padWidth)}`);
    }
  }
  const out = NDArray.empty(a.shape.map((d, i) => d + pw[i][0] + pw[i][1]), a.backend);
  out.backend.fill(out.buffer, value, out.size);
  out.set(a.shape.map((d, i) => ({ start: pw[i][0], stop: pw[i][0] + d })), a);
  return out;
}

/** Insert `dilation` zeros between consecutive elements along the axes (needle's dilate). */
export function dilate(a: NDArray, axes: number | readonly number[], dilation: number): NDArray {
  a.assertLive('dilate');
  if (!Number.isInteger(dilation) || dilation < 0) fail('dilate', `dilation must be a non-negative integer, got ${dilation}`);
  const list = normalizeAxes('dilate', axes, a.ndim);
  const shape = a.shape.map((d, i) => (list.includes(i) ? d * (dilation + 1) : d));
  const out = NDArray.empty(shape, a.backend);
  out.backend.fill(out.buffer, 0, out.size);
  out.set(a.shape.map((_, i) => (list.includes(i) ? { step: dilation + 1 } : {})), a);
  return out;
}

/** The inverse of dilate: a strided view keeping every (dilation+1)-th element along the axes. */
export function undilate(a: NDArray, axes: number | readonly number[], dilation: number): NDArray {
  a.assertLive('undilate');
  if (!Number.isInteger(dilation) || dilation < 0) fail('undilate', `dilation must be a non-negative integer, got ${dilation}`);
  const list = normalizeAxes('undilate', axes, a.ndim);
  return a.get(...a.shape.map((_, i): Slice => (list.includes(i) ? { step: dilation + 1 } : {})));
}

/** An index list selecting `sel` on axis `ax` and everything on the axes before it. */
function axisSlice(ax: number, sel: Slice | number): (Slice | number)[] {
  return [...Array.from({ length: ax }, (): Slice => ({})), sel];
}
