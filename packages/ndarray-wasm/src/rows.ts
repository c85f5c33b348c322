/**
 * The row-lookup kernels (gatherRows, scatterAddRows) on the heap's float view, on the calling
 * thread. A lookup moves count * rowSize floats with no arithmetic (gather: one typed-array copy a
 * row, which V8 does as a memmove) and its adjoint adds them (one add a float, in ascending row
 * order as the contract fixes): memory-bound work that a worker split or a SIMD loop would not
 * change much at the sizes embeddings have. `a`, `idx`, `out` are element offsets into `heap`.
 */
import { isRowIndex } from '@needle/ndarray';

export function gatherRowsOnHeap(heap: Float32Array, a: number, idx: number, out: number, rows: number, rowSize: number, count: number, missing: number): void {
  for (let i = 0; i < count; i++) {
    const r = heap[idx + i];
    const dst = out + i * rowSize;
    if (isRowIndex(r, rows)) heap.copyWithin(dst, a + r * rowSize, a + (r + 1) * rowSize);
    else heap.fill(missing, dst, dst + rowSize);
  }
}

export function scatterAddRowsOnHeap(heap: Float32Array, a: number, idx: number, out: number, rows: number, rowSize: number, count: number): void {
  for (let i = 0; i < count; i++) {
    const r = heap[idx + i];
    if (!isRowIndex(r, rows)) continue;
    const src = a + i * rowSize;
    const dst = out + r * rowSize;
    for (let j = 0; j < rowSize; j++) heap[dst + j] += heap[src + j];
  }
}
