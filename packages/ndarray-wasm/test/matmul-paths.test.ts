// One-thread matmul paths of NOTES.md sections 25-27, 40, 45, 61 and 62, against exact models: a transposed A packed
// along its rows (every full 5-row panel of a row block at once), narrow products computed as their
// transpose, and matmulProgram's epilogue run as compiled code after the product (on one thread,
// products up to 2^17 elements), which must equal the matmul followed by the same program, bit for
// bit, on 1 and 2 threads.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defineProgram, type MatmulSpec } from '@needle/ndarray';
import { createWasmBackend, type WasmBackend } from '../src';
import { download, randomFloats, upload } from './helpers';

let backends: WasmBackend[];

beforeAll(async () => {
  backends = [await createWasmBackend({ threads: 1, simd: 'baseline' }), await createWasmBackend({ threads: 2, simd: 'baseline' })];
});
afterAll(() => backends.forEach((b) => b.destroy()));

/** The first element whose bits differ (any NaN matching any NaN: WebAssembly leaves a NaN's sign and payload open), or -1. */
function firstDifference(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) return 0;
  const x = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const y = new Uint32Array(b.buffer, b.byteOffset, b.length);
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i] && !(Number.isNaN(a[i]) && Number.isNaN(b[i]))) return i;
  return -1;
}

/**
 * opA(A) @ opB(B) (A from `aOffset`; A stored [k, m] when transA, B stored [n, k] when transB) for
 * each batch (A and B `aBatch`, `bBatch` apart), in the baseline kernel's order: per depth block (k
 * in equal blocks of at most 256) a float32 chain s = s + a*b from 0, each product and sum rounded,
 * the blocks' sums added in order.
 */
function model(A: Float32Array, B: Float32Array, spec: MatmulSpec): Float32Array {
  const { batch, m, k, n, transA, transB, aBatchStride, bBatchStride, aOffset = 0 } = spec;
  const f = Math.fround;
  const kb = Math.ceil(k / 256);
  const kc = Math.ceil(k / kb);
  const C = new Float32Array(batch * m * n);
  for (let t = 0; t < batch; t++) {
    const a = (i: number, p: number) => A[aOffset + t * aBatchStride + (transA ? p * m + i : i * k + p)];
    const b = (p: number, j: number) => B[t * bBatchStride + (transB ? j * k + p : p * n + j)];
    for (let i = 0; i < m; i++) {
      for (let j = 0; j < n; j++) {
        let c = 0;
        for (let p0 = 0; p0 < k; p0 += kc) {
          let s = 0;
          for (let p = p0; p < Math.min(k, p0 + kc); p++) s = f(s + f(a(i, p) * b(p, j)));
          c = p0 === 0 ? s : f(c + s);
        }
        C[(t * m + i) * n + j] = c;
      }
    }
  }
  return C;
}

/** The product on every backend (operands as `spec` lays them out) against the model. */
function expectModel(spec: MatmulSpec, seed: number): void {
  const { batch, m, k, n, aBatchStride, bBatchStride, aOffset = 0 } = spec;
  const A = randomFloats(aOffset + (batch - 1) * aBatchStride + m * k, seed);
  const B = randomFloats((batch - 1) * bBatchStride + k * n, seed + 1);
  const want = model(A, B, spec);
  for (const b of backends) {
    const [a, bb, c] = [upload(b, A), upload(b, B), b.alloc(batch * m * n)];
    b.fill(c, NaN, batch * m * n);
    b.matmul(a, bb, c, spec);
    expect(firstDifference(download(b, c), want), `${b.threads} thread(s): first differing element`).toBe(-1);
    [a, bb, c].forEach((x) => b.free(x));
  }
}

describe('matmul with a transposed A, packed along its rows', () => {
  // m around the 5-row panels and the 120-row blocks (a last panel of 1-4 rows takes the column
  // walk), k around the depth blocks, n narrow and wide; an operand offset.
  const shapes: [m: number, k: number, n: number, aOffset: number][] = [
    [4, 9, 10, 0], [5, 1, 3, 0], [6, 33, 10, 3], [9, 128, 10, 0], [10, 7, 17, 1], [121, 300, 10, 0], [124, 257, 9, 5], [512, 128, 10, 0], [37, 513, 12, 2],
  ];
  for (const [m, k, n, aOffset] of shapes) {
    it(`${m}x${k}x${n}, A from offset ${aOffset}: the exact model's bits on 1 and 2 threads`, () => {
      expectModel({ batch: 1, m, k, n, aBatchStride: 0, bBatchStride: 0, transA: true, transB: false, aOffset }, m * 3 + k);
    });
  }
});

describe('narrow products (5, 9, 10, 14 or 15 columns) computed as their transpose', () => {
  // Widths around the 5-row panels, heights around the 8-column panels and the 32-row threshold,
  // every transposition, two depth blocks, a batch with a shared B, an offset, and one large
  // enough to be split between two threads.
  const specs: [batch: number, m: number, k: number, n: number, transA: boolean, transB: boolean, aOffset: number][] = [
    [1, 31, 20, 10, false, false, 0], [1, 32, 20, 10, false, false, 0], [1, 128, 512, 10, false, false, 0], [1, 512, 128, 10, true, false, 0],
    [1, 40, 33, 5, false, true, 3], [1, 67, 300, 9, true, true, 0], [1, 45, 17, 14, false, false, 1], [1, 100, 9, 15, true, false, 0],
    [1, 36, 50, 4, false, false, 0], [1, 36, 50, 16, false, false, 0], [1, 36, 50, 11, false, false, 0], [3, 50, 40, 10, false, true, 0],
    [1, 4000, 64, 10, false, false, 0],
  ];
  for (const [batch, m, k, n, transA, transB, aOffset] of specs) {
    it(`${batch}x${m}x${k}x${n} transA=${transA} transB=${transB}: the exact model's bits on 1 and 2 threads`, () => {
      expectModel({ batch, m, k, n, aBatchStride: m * k, bBatchStride: batch === 3 ? 0 : k * n, transA, transB, aOffset }, m + k + n);
    });
  }
});

describe('last row panels of 1-3 rows (the 3-row micro-kernel)', () => {
  // Rows ending 1-3 into a 5-row panel (in the first and a second 120-row block), full and edge
  // column panels, every transposition, several depth blocks (accumulated), a batch.
  const specs: [batch: number, m: number, k: number, n: number, transA: boolean, transB: boolean][] = [
    [1, 3, 7, 8, false, false], [1, 8, 100, 512, false, false], [1, 13, 33, 21, true, false], [1, 128, 200, 40, false, true],
    [1, 122, 250, 16, true, true], [2, 9, 60, 12, false, false], [1, 128, 600, 64, false, false], [1, 1, 5, 9, false, false],
  ];
  for (const [batch, m, k, n, transA, transB] of specs) {
    it(`${batch}x${m}x${k}x${n} transA=${transA} transB=${transB}: the exact model's bits on 1 and 2 threads`, () => {
      expectModel({ batch, m, k, n, aBatchStride: m * k, bBatchStride: k * n, transA, transB }, m + 2 * k + n);
    });
  }
});

describe('products whose transpose computes fewer padded micro-tiles, computed as their transpose', () => {
  // At least one depth block deep (k >= 256): convolution weight gradients (16 x 27 and 32 x 144,
  // transposed A), rows and columns around the panels, several depth blocks, a batch with a shared
  // B, an offset, and one large enough to be split between two threads.
  const specs: [batch: number, m: number, k: number, n: number, transA: boolean, transB: boolean, aOffset: number][] = [
    [1, 16, 300, 27, true, false, 0], [1, 32, 600, 144, true, false, 0], [1, 16, 256, 27, false, false, 2], [1, 11, 513, 24, false, true, 0],
    [1, 6, 1000, 40, true, true, 1], [2, 16, 300, 27, true, false, 0], [1, 32, 3000, 144, true, false, 0],
  ];
  for (const [batch, m, k, n, transA, transB, aOffset] of specs) {
    it(`${batch}x${m}x${k}x${n} transA=${transA} transB=${transB}: the exact model's bits on 1 and 2 threads`, () => {
      expectModel({ batch, m, k, n, aBatchStride: m * k, bBatchStride: batch === 2 ? 0 : k * n, transA, transB, aOffset }, m + k + n);
    });
  }
});

describe('a plain A read in place against at most 4 column panels (no packed A)', () => {
  // A convolution's forward product (col @ W^T: n = 16 or 32, B transposed) and neighbours: a last
  // row panel of 1-4 rows (packed), several 120-row blocks, an edge column panel (13, 27) and one of
  // at most 4 columns, several depth blocks (accumulated), offsets, a batch with a shared B, one
  // large enough to be split between two threads; 40 columns keep the packed path.
  const specs: [batch: number, m: number, k: number, n: number, transA: boolean, transB: boolean, aOffset: number][] = [
    [1, 7, 27, 16, false, true, 0], [1, 125, 144, 32, false, true, 0], [1, 243, 27, 13, false, false, 1], [1, 64, 300, 24, false, false, 0],
    [1, 20, 50, 4, false, true, 0], [1, 36, 513, 27, false, true, 3], [2, 60, 40, 32, false, true, 0], [1, 2400, 144, 32, false, true, 0],
    [1, 30, 20, 40, false, false, 0],
  ];
  for (const [batch, m, k, n, transA, transB, aOffset] of specs) {
    it(`${batch}x${m}x${k}x${n} transA=${transA} transB=${transB}: the exact model's bits on 1 and 2 threads`, () => {
      expectModel({ batch, m, k, n, aBatchStride: m * k, bBatchStride: batch === 2 ? 0 : k * n, transA, transB, aOffset }, 2 * m + k + n);
    });
  }
});

describe('a transposed product whose opA rows (the product\'s opB columns) are read in place', () => {
  // Computed as C^T with opB^T's rows of at most 64 floats against at most 32 columns: conv1's
  // weight gradient (16 x 27 over a long depth) and neighbours: 25 columns (no packed last panel),
  // 4 rows (a 4-column panel), rows of 64, a batch with a shared B, one split between two threads;
  // the section-40 cases above run it too.
  const specs: [batch: number, m: number, k: number, n: number, transA: boolean, transB: boolean][] = [
    [1, 16, 600, 25, true, false], [1, 4, 600, 27, true, false], [1, 32, 300, 64, true, false], [2, 16, 520, 27, false, false], [1, 16, 9000, 27, true, false],
  ];
  for (const [batch, m, k, n, transA, transB] of specs) {
    it(`${batch}x${m}x${k}x${n} transA=${transA} transB=${transB}: the exact model's bits on 1 and 2 threads`, () => {
      expectModel({ batch, m, k, n, aBatchStride: m * k, bBatchStride: batch === 2 ? 0 : k * n, transA, transB }, m + 3 * k + n);
    });
  }
});

describe('matmulProgram epilogue as compiled code after the product', () => {
  // Products just below and above 2^17 elements (above: on one thread in blocks of rows, each
  // followed by the compiled epilogue, section 43; on two, split, the epilogue in the kernel), a
  // narrow one with a gathered bias (n = 10: no whole-vector rows; computed as its transpose), a
  // batch of two, a narrow one split between two threads (the epilogue then in the transposed
  // kernel), two deep ones computed as their transpose (section 40), the larger split, and larger
  // ones in blocks of rows: a convolution's 16 columns, a batch of two, a narrow one.
  const shapes: [batch: number, m: number, k: number, n: number][] = [
    [1, 256, 37, 512], [1, 257, 37, 512], [1, 128, 64, 10], [2, 33, 20, 24], [1, 4000, 64, 10], [1, 16, 300, 27], [1, 32, 3000, 144],
    [1, 9000, 27, 16], [2, 300, 20, 250], [1, 14000, 20, 10],
  ];
  for (const [batch, m, k, n] of shapes) {
    it(`${batch}x${m}x${k}x${n}: the matmul and then the program, bit for bit, at every launch, on 1 and 2 threads`, () => {
      const A = randomFloats(batch * m * k, m + k);
      const B = randomFloats(k * n, n + k);
      const bias = randomFloats(n, n, -1, 1);
      const spec: MatmulSpec = { batch, m, k, n, aBatchStride: m * k, bBatchStride: 0, transA: false, transB: false };
      const size = batch * m * n;
      for (const b of backends) {
        // A program new to this backend: its first launch runs the interpreter inside the kernel,
        // the next ones compiled code (where the product is small enough and on one thread).
        const biasRelu = defineProgram(2, 1, ([y, bias], [s]) => y.add(bias).mul(s).maximum(0));
        const [a, bb, bi, c, ref] = [upload(b, A), upload(b, B), upload(b, bias), b.alloc(size), b.alloc(size)];
        const got: Float32Array[] = [];
        for (let launch = 0; launch < 3; launch++) {
          b.fill(c, NaN, size);
          b.matmulProgram(a, bb, c, spec, { program: biasRelu, inputs: [bi], scalars: [0.75], layouts: [{ strides: [0, 0, 1], offset: 0 }] });
          got.push(download(b, c));
        }
        b.matmul(a, bb, ref, spec);
        b.elementwise(biasRelu, [ref, bi], [0.75], [ref], size, { shape: [batch, m, n], inputs: [undefined, { strides: [0, 0, 1], offset: 0 }], outputs: [undefined] });
        const want = download(b, ref);
        got.forEach((r, launch) => expect(firstDifference(r, want), `${b.threads} thread(s), launch ${launch}: first differing element`).toBe(-1));
        [a, bb, bi, c, ref].forEach((x) => b.free(x));
      }
    });
  }
});
