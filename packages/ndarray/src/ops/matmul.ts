import type { MatmulSpec } from '../backend';
import { fail, formatShape } from '../errors';
import { NDArray, broadcastShapes, sameBackend } from '../ndarray';
import { shapeSize } from '../shape';

/** How one operand reaches the kernel (always a fresh view or copy the caller disposes). */
interface Operand {
  array: NDArray;
  batchStride: number;
  trans: boolean;
}

/**
 * Matrix product with NumPy semantics: 1-D operands are promoted (and the added axis removed),
 * leading batch axes broadcast. Transposed views and operands shared over the batch reach the
 * kernel with no copy (transA/transB, batch stride 0).
 */
export function matmul(a: NDArray, b: NDArray): NDArray {
  const backend = sameBackend('matmul', a, b);
  if (a.ndim === 0 || b.ndim === 0) fail('matmul', `expected arrays of at least 1 dimension, got shapes ${formatShape(a.shape)} and ${formatShape(b.shape)}`);
  const a2 = a.ndim === 1 ? a.expandDims(0) : a;
  const b2 = b.ndim === 1 ? b.expandDims(1) : b;
  try {
    const [m, k] = a2.shape.slice(-2);
    const [k2, n] = b2.shape.slice(-2);
    if (k !== k2) {
      fail('matmul', `inner dimensions differ: ${formatShape(a.shape)} @ ${formatShape(b.shape)} (${k} vs ${k2}); expected a[..., m, k] @ b[..., k, n]`);
    }
    const batchShape = matmulBatchShape(a.shape, b.shape);
    const batch = shapeSize(batchShape);
    const out = NDArray.empty([...batchShape, m, n], backend);
    if (out.size > 0) {
      if (k === 0) {
        backend.fill(out.buffer, 0, out.size);
      } else {
        const A = operand(a2, batchShape);
        const B = operand(b2, batchShape);
        try {
          const spec: MatmulSpec = {
            batch, m, k, n,
            aBatchStride: A.batchStride, bBatchStride: B.batchStride,
            transA: A.trans, transB: B.trans,
          };
          backend.matmul(A.array.buffer, B.array.buffer, out.buffer, spec);
        } finally {
          A.array.dispose();
          B.array.dispose();
        }
      }
    }
    let result = out;
    if (a.ndim === 1 || b.ndim === 1) {
      const squeezeAxes = [...(a.ndim === 1 ? [-2] : []), ...(b.ndim === 1 ? [-1] : [])];
      result = out.squeeze(squeezeAxes.map((ax) => ax + out.ndim));
      out.dispose();
    }
    return result;
  } finally {
    if (a2 !== a) a2.dispose();
    if (b2 !== b) b2.dispose();
  }
}

/**
 * The broadcast batch shape of a[..., m, k] @ b[..., k, n] (1-D operands have none). Errors name the
 * full operand shapes, not only their batch parts. Shared with autograd's matmul.
 */
export function matmulBatchShape(a: readonly number[], b: readonly number[]): number[] {
  const ba = a.length > 2 ? a.slice(0, -2) : [];
  const bb = b.length > 2 ? b.slice(0, -2) : [];
  try {
    return broadcastShapes('matmul', ba, bb);
  } catch {
    return fail('matmul', `batch dimensions do not broadcast: ${formatShape(a)} @ ${formatShape(b)} (batch ${formatShape(ba)} vs ${formatShape(bb)}); expected a[..., m, k] @ b[..., k, n] with broadcastable leading axes`);
  }
}

function operand(x: NDArray, batchShape: number[]): Operand {
  const [r, c] = x.shape.slice(-2);
  const ownBatch = shapeSize(x.shape.slice(0, -2));
  // Shared over the batch: view it as one matrix, batch stride 0.
  const shared = ownBatch === 1;
  const view = shared ? x.reshape([r, c]) : x.broadcastTo([...batchShape, r, c]);
  const batchStride = shared ? 0 : r * c;
  if (view.isKernelReady) return { array: view, batchStride, trans: false };
  const t = view.transpose(-2, -1);
  if (t.isKernelReady) {
    view.dispose();
    return { array: t, batchStride, trans: true };
  }
  t.dispose();
  const c2 = view.compact();
  view.dispose();
  return { array: c2, batchStride, trans: false };
}
