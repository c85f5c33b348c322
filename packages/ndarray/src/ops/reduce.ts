import type { ReduceOp } from '../backend';
import { checkBoolean } from '../check';
import { fail, formatShape } from '../errors';
import { coalesceView } from '../layouts';
import { NDArray, withKernelReady } from '../ndarray';
import { normalizeAxes, normalizeAxis, shapeSize } from '../shape';

/**
 * Reduce over `axis` (one, several, or all when undefined). The reduced axes are permuted to the
 * end and compacted, so the kernel reduces contiguous blocks (needle's reduce_view_out).
 */
export function reduceOp(op: ReduceOp, a: NDArray, axis: number | readonly number[] | undefined, keepdims: boolean): NDArray {
  a.assertLive(op);
  const axes = normalizeAxes(op, axis, a.ndim);
  checkBoolean(op, 'keepdims', keepdims);
  const kept = a.shape.map((_, i) => i).filter((i) => !axes.includes(i));
  const reduceSize = shapeSize(axes.map((i) => a.shape[i]));
  const outShape = keepdims ? a.shape.map((d, i) => (axes.includes(i) ? 1 : d)) : kept.map((i) => a.shape[i]);
  const outSize = shapeSize(outShape);
  if (reduceSize === 0 && op !== 'sum' && outSize > 0) {
    fail(op, `cannot reduce over zero elements (shape ${formatShape(a.shape)}, axes ${JSON.stringify(axes)}): the result would have no identity`);
  }
  const out = NDArray.empty(outShape, a.backend, op);
  if (outSize === 0) return out;
  if (reduceSize === 0) {
    a.backend.fill(out.buffer, 0, outSize);
    return out;
  }
  const perm = a.permute([...kept, ...axes]);
  try {
    // A backend that reads strided reduce inputs gets the permuted view itself (no compact launch).
    const caps = a.backend.layouts;
    const view = !perm.isKernelReady && caps?.reduce ? coalesceView(perm.layout) : undefined;
    if (view && view.shape.length <= caps!.maxDims) a.backend.reduce(op, perm.buffer, out.buffer, outSize, reduceSize, view);
    else withKernelReady(perm, (x) => a.backend.reduce(op, x.buffer, out.buffer, outSize, reduceSize));
  } catch (e) {
    out.dispose();
    throw e;
  } finally {
    perm.dispose();
  }
  return out;
}

/** Arithmetic mean over axes. */
export function mean(a: NDArray, axis: number | readonly number[] | undefined, keepdims: boolean): NDArray {
  a.assertLive('mean');
  checkBoolean('mean', 'keepdims', keepdims);
  const axes = normalizeAxes('mean', axis, a.ndim);
  const count = shapeSize(axes.map((i) => a.shape[i]));
  const s = reduceOp('sum', a, axes, keepdims);
  try {
    return s.mul(1 / count);
  } finally {
    s.dispose();
  }
}

/** Index of the first maximum/minimum along one axis, or over the flattened array when undefined. */
export function argReduce(op: 'argmax' | 'argmin', a: NDArray, axis: number | undefined, keepdims: boolean): NDArray {
  a.assertLive(op);
  checkBoolean(op, 'keepdims', keepdims);
  // Over every axis, the row-major order of the view is the flattened order: no reshape (which
  // would copy a strided view).
  if (axis === undefined) return reduceOp(op, a, undefined, keepdims);
  if (Array.isArray(axis)) fail(op, `expected a single axis, got ${JSON.stringify(axis)}`);
  return reduceOp(op, a, normalizeAxis(op, axis, a.ndim), keepdims);
}
