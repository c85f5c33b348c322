import { BINARY_OPS, REDUCE_OPS, UNARY_OPS, type Backend, type BinaryOp, type MatmulSpec, type StridedLayout, type UnaryOp } from '@needle/ndarray';
import { CpuBackend } from '@needle/ndarray-cpu';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { WebGPUBackend } from '../src/index';
import { testBackend } from './gpu';
import { expectClose, randomArray, withSpecials } from './helpers';

const cpu = new CpuBackend();
let gpu: WebGPUBackend | null = null;

beforeAll(async () => {
  gpu = await testBackend();
});

afterAll(async () => {
  if (gpu) await gpu.sync();
});

/** Upload host data to a fresh buffer of a backend. */
function up(be: Backend, data: Float32Array, capacity = data.length) {
  const b = be.alloc(capacity);
  be.write(b, data);
  return b;
}

/** Run the same kernel on CPU and GPU with the same inputs; return both outputs. */
async function both(inputs: Float32Array[], outSize: number, run: (be: Backend, ins: ReturnType<typeof up>[], out: ReturnType<typeof up>) => void) {
  const g = gpu!;
  const results: Float32Array[] = [];
  for (const be of [cpu, g] as Backend[]) {
    const ins = inputs.map((x) => up(be, x));
    const out = be.alloc(outSize);
    run(be, ins, out);
    results.push(await be.read(out));
    for (const b of ins) be.free(b);
    be.free(out);
  }
  return { expected: results[0], actual: results[1] };
}

const SIZES = [1, 3, 4, 7, 64, 1001, 4100];
const TOL: Partial<Record<BinaryOp | UnaryOp, number>> = { pow: 2e-5, exp: 2e-5, log: 2e-5, tanh: 2e-5 };

describe.runIf(await testBackend())('webgpu kernels vs the CPU reference', () => {
  test.each(BINARY_OPS)('ewise %s', async (op) => {
    for (const n of SIZES) {
      let a = withSpecials(randomArray(n, 1 + n, -3, 3), 2 + n);
      let b = withSpecials(randomArray(n, 3 + n, -3, 3), 4 + n);
      if (op === 'pow') {
        // Integer exponents half of the time, so negative bases are exercised.
        b = b.map((y, i) => (i % 2 ? Math.round(y) : y));
      }
      if (op === 'eq' || op === 'ne') a = a.map((x, i) => (i % 3 ? x : b[i]));
      const { expected, actual } = await both([a, b], n, (be, [x, y], o) => be.ewise(op, x, y, o, n));
      expectClose(actual, expected, TOL[op] ?? 1e-6, 1e-6, `ewise ${op} n=${n}`);
    }
  });

  test.each(BINARY_OPS)('scalar %s', async (op) => {
    for (const s of [2, -1.5, 0, 3, 0.5, NaN, -Infinity]) {
      for (const n of [5, 4100]) {
        const a = withSpecials(randomArray(n, 7 + n, -3, 3), 8 + n);
        const { expected, actual } = await both([a], n, (be, [x], o) => be.scalar(op, x, s, o, n));
        expectClose(actual, expected, TOL[op] ?? 1e-6, 1e-6, `scalar ${op} ${s} n=${n}`);
      }
    }
  });

  test.each(UNARY_OPS)('unary %s', async (op) => {
    for (const n of SIZES) {
      const lo = op === 'exp' ? -100 : op === 'tanh' ? -12 : -3;
      const hi = op === 'exp' ? 100 : op === 'tanh' ? 12 : 3;
      let a = withSpecials(randomArray(n, 11 + n, lo, hi), 12 + n);
      if (op === 'tanh' || op === 'log') a = a.map((x, i) => (i % 4 === 0 ? x * 1e-3 : x));
      if (op === 'log') a = a.map((x, i) => (i % 2 ? Math.abs(x) : x));
      const { expected, actual } = await both([a], n, (be, [x], o) => be.unary(op, x, o, n));
      expectClose(actual, expected, TOL[op] ?? 1e-6, 1e-6, `unary ${op} n=${n}`);
    }
  });

  test('where (NaN counts as true), fill', async () => {
    for (const n of SIZES) {
      const c = withSpecials(randomArray(n, 21 + n).map((x) => (x > 0 ? 1 : 0)), 22 + n, 0.3);
      const x = randomArray(n, 23 + n);
      const y = randomArray(n, 24 + n);
      const w = await both([c, x, y], n, (be, [cb, xb, yb], o) => be.where(cb, xb, yb, o, n));
      expectClose(w.actual, w.expected, 0, 0, `where n=${n}`);
      const f = await both([], n, (be, _, o) => be.fill(o, -2.5, n));
      expectClose(f.actual, f.expected, 0, 0, `fill n=${n}`);
    }
  });

  test('kernels write only the first `size` elements of a larger out buffer', async () => {
    const g = gpu!;
    const out = up(g, new Float32Array(12).fill(7));
    const a = up(g, Float32Array.from([1, 2, 3, 4, 5, 6]));
    g.unary('neg', a, out, 5);
    g.fill(out, 9, 1);
    expect([...(await g.read(out))]).toEqual([9, -2, -3, -4, -5, 7, 7, 7, 7, 7, 7, 7]);
    g.free(out);
    g.free(a);
  });

  test('elementwise kernels may write into an input (out aliases a and b)', async () => {
    const g = gpu!;
    const a = up(g, Float32Array.from([1, 2, 3, 4, 5, 6, 7]));
    const b = up(g, Float32Array.from([10, 20, 30, 40, 50, 60, 70]));
    g.ewise('add', a, b, a, 7);
    g.ewise('mul', b, a, a, 7);
    g.scalar('sub', a, 1, a, 7);
    g.ewise('add', a, a, a, 4);
    expect([...(await g.read(a))]).toEqual([(110 - 1) * 2, (440 - 1) * 2, (990 - 1) * 2, (1760 - 1) * 2, 2749, 3959, 5389]);
    g.free(a);
    g.free(b);
  });

  const layouts: [string, number, StridedLayout][] = [
    ['transpose 3x5', 15, { shape: [5, 3], strides: [1, 5], offset: 0 }],
    ['slice with steps', 60, { shape: [3, 4], strides: [20, 3], offset: 2 }],
    ['negative strides (flip)', 24, { shape: [2, 3, 4], strides: [-12, 4, -1], offset: 15 }],
    ['broadcast (stride 0)', 6, { shape: [4, 2, 3], strides: [0, 3, 1], offset: 0 }],
    ['contiguous with offset', 40, { shape: [2, 10], strides: [10, 1], offset: 17 }],
    ['5-D permutation', 2 * 3 * 4 * 5 * 2, { shape: [2, 5, 3, 4, 2], strides: [120, 1, 40, 10, 5], offset: 0 }],
    ['scalar view', 10, { shape: [], strides: [], offset: 6 }],
    // 4x4-block transpose kernel: plain, with an offset and padded columns, a 3-D view that coalesces
    // to 2-D; then near misses that must take the general kernel (odd offset, rows not a multiple of 4).
    ['transpose 128x512 (vec4 blocks)', 65536, { shape: [512, 128], strides: [1, 512], offset: 0 }],
    ['transpose with offset and padded columns', 4 + 12 * 20, { shape: [8, 12], strides: [1, 20], offset: 4 }],
    ['transpose coalescing from 3-D', 96, { shape: [4, 2, 12], strides: [1, 48, 4], offset: 0 }],
    ['transpose, odd offset', 1 + 12 * 8, { shape: [8, 12], strides: [1, 8], offset: 1 }],
    ['transpose 6x8', 48, { shape: [6, 8], strides: [1, 6], offset: 0 }],
    // Contiguous-row kernel: a broadcast bias row, rows of a wider matrix with an offset; near miss
    // with an odd row stride.
    ['broadcast row 128x512 (vec4 rows)', 512, { shape: [128, 512], strides: [0, 1], offset: 0 }],
    ['row slice with offset', 4 + 5 * 16, { shape: [5, 8], strides: [16, 1], offset: 4 }],
    ['row slice, odd row stride', 3 + 4 * 9, { shape: [4, 8], strides: [9, 1], offset: 3 }],
  ];

  test.each(layouts)('compact: %s', async (_name, size, layout) => {
    const n = layout.shape.reduce((x, y) => x * y, 1);
    const a = randomArray(size, 31 + size);
    const { expected, actual } = await both([a], n, (be, [x], o) => be.compact(x, o, layout));
    expectClose(actual, expected, 0, 0, 'compact');
  });

  test.each(layouts.filter(([name]) => !name.startsWith('broadcast')))('ewiseSetitem and scalarSetitem: %s', async (_name, size, layout) => {
    const n = layout.shape.reduce((x, y) => x * y, 1);
    const base = randomArray(size, 41 + size);
    const src = randomArray(n, 42 + size);
    const s = await both([src, base], size, (be, [x, b], o) => {
      be.compact(b, o, { shape: [size], strides: [1], offset: 0 });
      be.ewiseSetitem(x, o, layout);
    });
    expectClose(s.actual, s.expected, 0, 0, 'ewiseSetitem');
    const f = await both([base], size, (be, [b], o) => {
      be.compact(b, o, { shape: [size], strides: [1], offset: 0 });
      be.scalarSetitem(-7, o, layout);
    });
    expectClose(f.actual, f.expected, 0, 0, 'scalarSetitem');
  });

  test('ewiseSetitem from a buffer into itself', async () => {
    const base = Float32Array.from({ length: 10 }, (_, i) => i);
    const r = await both([base], 10, (be, [b], o) => {
      be.compact(b, o, { shape: [10], strides: [1], offset: 0 });
      be.ewiseSetitem(o, o, { shape: [5], strides: [-1], offset: 9 });
    });
    expectClose(r.actual, r.expected, 0, 0, 'self setitem');
    expect([...r.actual]).toEqual([0, 1, 2, 3, 4, 4, 3, 2, 1, 0]);
  });

  // [33, 64], [4, 8], [512, 128], [300, 1024] take the vec4 per-invocation path for sum/max/min.
  const reduceShapes: [number, number][] = [[1, 1], [7, 3], [33, 64], [4, 8], [5, 65], [3, 1000], [2, 5000], [1, 20000], [20000, 3], [17000, 70], [512, 128], [300, 1024]];
  test.each(REDUCE_OPS)('reduce %s', async (op) => {
    for (const [outSize, r] of reduceShapes) {
      let a = randomArray(outSize * r, 51 + r);
      // Ties (argmax must pick the first) and NaN in a few blocks.
      a = a.map((x) => Math.round(x * 4) / 4);
      if (outSize > 2) a = withSpecials(a, 52 + r, 0.3 / r);
      const { expected, actual } = await both([a], outSize, (be, [x], o) => be.reduce(op, x, o, outSize, r));
      expectClose(actual, expected, op === 'sum' ? 2e-5 : 0, op === 'sum' ? 2e-4 : 0, `reduce ${op} ${outSize}x${r}`);
    }
  });

  const mm: [string, MatmulSpec][] = [];
  // [128, 20, 10], [35, 12, 16] and [136, 12, 6] take the narrow-output kernel (8 rows a lane from m = 128,
  // with a partial last workgroup at 136, else 4); the last five the
  // wider tiles (2, 4 and 8 vec4 column groups per invocation), with partial row and column blocks,
  // n % 4 != 0, and k % 4 != 0 tails.
  for (const [m, k, n] of [[1, 1, 1], [3, 5, 7], [4, 8, 12], [17, 33, 9], [64, 64, 64], [33, 4, 65], [128, 20, 10], [35, 12, 16], [136, 12, 6],
    [33, 37, 70], [20, 16, 130], [40, 12, 300], [17, 9, 256], [4, 8, 256]]) {
    for (const transA of [false, true]) {
      for (const transB of [false, true]) {
        mm.push([`${m}x${k}x${n} tA=${transA} tB=${transB}`, { batch: 1, m, k, n, aBatchStride: 0, bBatchStride: 0, transA, transB }]);
      }
    }
  }
  mm.push(['batched, shared B', { batch: 3, m: 5, k: 6, n: 7, aBatchStride: 30, bBatchStride: 0, transA: false, transB: false }]);
  mm.push(['batched, shared A, transB', { batch: 4, m: 8, k: 4, n: 12, aBatchStride: 0, bBatchStride: 48, transA: true, transB: true }]);
  mm.push(['batched, odd strides', { batch: 2, m: 3, k: 3, n: 5, aBatchStride: 9, bBatchStride: 15, transA: false, transB: true }]);

  test.each(mm)('matmul %s', async (_name, spec) => {
    const aSize = (spec.batch - 1) * spec.aBatchStride + spec.m * spec.k;
    const bSize = (spec.batch - 1) * spec.bBatchStride + spec.k * spec.n;
    const a = randomArray(aSize, 61 + aSize);
    const b = randomArray(bSize, 62 + bSize);
    const { expected, actual } = await both([a, b], spec.batch * spec.m * spec.n, (be, [x, y], o) => be.matmul(x, y, o, spec));
    expectClose(actual, expected, 1e-5, 1e-5, 'matmul');
  });
});
