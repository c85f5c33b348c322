// Every kernel that is split between threads gives the same bits as on one thread, at sizes just
// below and just above its split threshold (src/split.ts), with uneven parts (3 threads), and cut
// into many more parts than threads, which the threads claim one after another (partMicros).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BINARY_OPS, REDUCE_OPS, UNARY_OPS, NDArray, defineProgram, elementwise, type DeviceBuffer, type MatmulSpec, type StridedLayout } from '@needle/ndarray';
import { createWasmBackend, type WasmBackend } from '../src';
import { binaryCode } from '../src/codes';
import { compileKernels, instantiateKernels } from '../src/module';
import { costNs, depthBlocks, MATMUL_TILE, matmulPlan, SPLIT_NS, SUM_CHUNK } from '../src/split';
import { WorkerPool, type Job } from '../src/threads';
import { cpu, download, expectClose, randomFloats, SPECIAL, upload } from './helpers';

let one: WasmBackend;
let many: WasmBackend[];

beforeAll(async () => {
  // The block interpreter for elementwise programs (test/compiled-programs.test.ts splits compiled
  // ones and compares the two).
  one = await createWasmBackend({ threads: 1, compilePrograms: false });
  many = [
    await createWasmBackend({ threads: 2, compilePrograms: false }),
    await createWasmBackend({ threads: 3, spinMicros: 0, compilePrograms: false }),
    // Parts of ~3 us: a kernel just above the split threshold is cut into ~20 parts.
    await createWasmBackend({ threads: 2, compilePrograms: false, partMicros: 3 }),
    await createWasmBackend({ threads: 3, compilePrograms: false, partMicros: 3 }),
  ];
});
afterAll(() => [one, ...many].forEach((b) => b.destroy()));

function data(n: number, seed: number): Float32Array {
  const d = randomFloats(n, seed, -3, 3);
  for (let i = 0; i < n; i += 97) d[i] = SPECIAL[(i / 97 + seed) % SPECIAL.length];
  return d;
}

/** The first element whose bits differ, or -1. */
function firstDifference(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) return 0;
  const x = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const y = new Uint32Array(b.buffer, b.byteOffset, b.length);
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return i;
  return -1;
}

/**
 * Run `kernel` on every backend over fresh copies of `inputs` (`outSize` elements of output, filled
 * with NaN first, or a copy of the last input when `inPlace`) and expect the multi-thread outputs
 * to equal the one-thread output bit for bit; `split` says whether the kernel must have been split.
 * Returns the one-thread output.
 */
function same(what: string, inputs: Float32Array[], outSize: number, split: boolean | ((threads: number) => boolean), kernel: (b: WasmBackend, ins: DeviceBuffer[], out: DeviceBuffer) => void, inPlace = false): Float32Array {
  const run = (b: WasmBackend) => {
    const ins = inputs.map((d) => upload(b, d));
    const out = inPlace ? ins[ins.length - 1] : b.alloc(outSize);
    if (!inPlace) b.fill(out, NaN, outSize);
    const before = b.splitLaunches;
    kernel(b, ins, out);
    const result = download(b, out, outSize);
    const wasSplit = b.splitLaunches > before;
    ins.forEach((x) => b.free(x));
    if (!inPlace) b.free(out);
    return { result, wasSplit };
  };
  const reference = run(one);
  expect(reference.wasSplit).toBe(false);
  for (const b of many) {
    const { result, wasSplit } = run(b);
    expect(wasSplit, `${what} on ${b.threads} threads: split`).toBe(typeof split === 'boolean' ? split : split(b.threads));
    expect(firstDifference(result, reference.result), `${what} on ${b.threads} threads: first differing element`).toBe(-1);
  }
  return reference.result;
}

/** The smallest size whose cost reaches the split threshold (cost increasing in size). */
function threshold(cost: (n: number) => number): number {
  let lo = 0;
  let hi = 1;
  while (cost(hi) < SPLIT_NS) hi *= 2;
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (cost(mid) >= SPLIT_NS) hi = mid;
    else lo = mid;
  }
  return hi;
}

describe('kernels split between threads equal one thread bit for bit', () => {
  it('ewise and scalar ops, just below and above the threshold, odd sizes', () => {
    for (const op of BINARY_OPS) {
      const t = threshold((n) => costNs.binary(op, n));
      for (const n of [t - 1, t, t + 17]) {
        same(`ewise ${op} n=${n}`, [data(n, 1), data(n, 2)], n, n >= t, (b, [x, y], o) => b.ewise(op, x, y, o, n));
        same(`scalar ${op} n=${n}`, [data(n, 3)], n, n >= t, (b, [x], o) => b.scalar(op, x, 1.5, o, n));
      }
    }
  });

  it('unary ops and where', () => {
    for (const op of UNARY_OPS) {
      const t = threshold((n) => costNs.unary(op, n));
      for (const n of [t - 1, t + 3]) same(`unary ${op} n=${n}`, [data(n, 4)], n, n >= t, (b, [x], o) => b.unary(op, x, o, n));
    }
    const t = threshold(costNs.where);
    for (const n of [t - 1, t + 5]) same(`where n=${n}`, [data(n, 5), data(n, 6), data(n, 7)], n, n >= t, (b, [c, x, y], o) => b.where(c, x, y, o, n));
  });

  it('fill', () => {
    const t = threshold(costNs.fill);
    for (const n of [t - 1, t + 9]) {
      const got = same(`fill n=${n}`, [], n, n >= t, (b, _, o) => b.fill(o, -2.5, n));
      expect(got.every((v) => v === -2.5)).toBe(true);
    }
  });

  // Views of a source of `size` elements: the im2col gather of a 3x3 convolution over a padded
  // [5, 3, 34, 34] image (an odd outer axis: uneven slabs), a transpose (16-row tiles), a strided
  // and a contiguous 1-D run, a broadcast and a 4-D permute, each big enough to split; and a small
  // transpose that is not split.
  const views: { name: string; size: number; layout: StridedLayout }[] = [
    { name: 'im2col', size: 5 * 3 * 34 * 34, layout: { shape: [5, 32, 32, 3, 3, 3], strides: [3468, 34, 1, 1156, 34, 1], offset: 0 } },
    { name: 'transpose', size: 333 * 517, layout: { shape: [517, 333], strides: [1, 517], offset: 0 } },
    { name: 'strided 1-D', size: 2 * 30_001 + 5, layout: { shape: [30_001], strides: [2], offset: 3 } },
    { name: 'contiguous slice', size: 200_011, layout: { shape: [200_003], strides: [1], offset: 7 } },
    { name: 'broadcast rows', size: 50_021, layout: { shape: [9, 50_021], strides: [0, 1], offset: 0 } },
    { name: 'permute 4-D', size: 7 * 9 * 11 * 13 * 3, layout: { shape: [13, 9, 3, 11, 7], strides: [1, 11 * 13, 7 * 9 * 11 * 13, 13, 9 * 11 * 13], offset: 0 } },
    { name: 'small transpose', size: 40 * 41, layout: { shape: [41, 40], strides: [1, 41], offset: 0 } },
  ];
  const total = (l: StridedLayout) => l.shape.reduce((p, d) => p * d, 1);
  // (None of these views has axes the backend merges, so its innermost run is the last axis's.)
  const run = (l: StridedLayout) => (l.strides[l.strides.length - 1] === 1 ? l.shape[l.shape.length - 1] : 1);
  const splits = (l: StridedLayout) => costNs.strided(total(l), run(l)) >= SPLIT_NS;

  it('compact (the im2col gather among them) and its views', () => {
    for (const { name, size, layout } of views) {
      const n = total(layout);
      const got = same(`compact ${name}`, [data(size, 8)], n, splits(layout), (b, [x], o) => b.compact(x, o, layout));
      // Against the CPU reference too: a split that skipped or repeated a slab would show here.
      const src = upload(cpu, data(size, 8));
      const out = cpu.alloc(n);
      cpu.compact(src, out, layout);
      expectClose(got, download(cpu, out), 0, 0, `compact ${name} vs cpu`);
      cpu.free(src);
      cpu.free(out);
    }
  });

  it('ewiseSetitem and scalarSetitem into the same views (broadcasts excluded)', () => {
    for (const { name, size, layout } of views.filter((v) => !v.layout.strides.includes(0))) {
      const n = total(layout);
      same(`ewiseSetitem ${name}`, [data(n, 9), data(size, 10)], size, splits(layout), (b, [x, o]) => b.ewiseSetitem(x, o, layout), true);
      same(`scalarSetitem ${name}`, [data(size, 11)], size, splits(layout), (b, [o]) => b.scalarSetitem(0.25, o, layout), true);
    }
  });

  it('reductions split across output rows, compact and strided', () => {
    for (const op of REDUCE_OPS) {
      const rows = threshold((r) => costNs.reduce(op, r, 31));
      for (const outSize of [rows - 1, rows + 2]) {
        const n = outSize * 31;
        same(`reduce ${op} ${outSize}x31`, [data(n, 12)], outSize, outSize >= rows, (b, [x], o) => b.reduce(op, x, o, outSize, 31));
      }
      // 2x2 max-pooling windows of a [3, 9, 66, 66] image: outSize 3 * 9 * 33 * 33, odd.
      const layout: StridedLayout = { shape: [3, 9, 33, 33, 2, 2], strides: [9 * 66 * 66, 66 * 66, 132, 2, 66, 1], offset: 0 };
      same(`reduce ${op} over pooling windows`, [data(3 * 9 * 66 * 66, 13)], 3 * 9 * 33 * 33, true, (b, [x], o) => b.reduce(op, x, o, 3 * 9 * 33 * 33, 4, layout));
    }
  });

  it('long sums: the same chunked float64 sum on any number of threads, close to the float64 reference', () => {
    for (const [outSize, reduceSize] of [[1, SUM_CHUNK + 1], [1, 5 * SUM_CHUNK - 3], [3, 2 * SUM_CHUNK + 7], [2, SUM_CHUNK]]) {
      const d = data(outSize * reduceSize, outSize + reduceSize);
      for (let i = 0; i < d.length; i += 97) if (!Number.isFinite(d[i])) d[i] = 1; // finite sums
      const splitNeeded = costNs.reduce('sum', outSize, reduceSize) >= SPLIT_NS;
      const got = same(`sum ${outSize}x${reduceSize}`, [d], outSize, splitNeeded, (b, [x], o) => b.reduce('sum', x, o, outSize, reduceSize));
      for (let j = 0; j < outSize; j++) {
        let s = 0;
        for (let i = 0; i < reduceSize; i++) s += d[j * reduceSize + i];
        expect(Math.abs(got[j] - s)).toBeLessThanOrEqual(Math.abs(s) * 2 ** -23 + 1e-6);
      }
    }
  });

  it('elementwise programs split on whole blocks, compact and strided', () => {
    const prog = defineProgram(2, 1, ([x, y], [s]) => [x.exp().mul(s).add(y), y.gt(0).select(x, y.neg())]);
    const t = threshold((n) => costNs.program(n, prog.steps.length, 0));
    for (const n of [t - 1, t + 13]) {
      same(`program n=${n}`, [data(n, 14), data(n, 15)], 2 * n, n >= t, (b, [x, y], o) => {
        const [p, q] = [NDArray.fromData(download(b, x, n), [n], b), NDArray.fromData(download(b, y, n), [n], b)];
        const [r0, r1] = elementwise(prog, [p, q], [0.5]);
        b.write(o, r0.toArraySync());
        b.write(o, r1.toArraySync(), n);
        [p, q, r0, r1].forEach((a) => a.dispose());
      });
    }
    // A transposed input and a strided output: 2 strided operands.
    same('strided program', [data(301 * 457, 16), data(457, 17)], 301 * 457, true, (b, [x, y], o) => {
      const xt = NDArray.fromData(download(b, x, 301 * 457), [301, 457], b).transpose();
      const row = NDArray.fromData(download(b, y, 457), [457, 1], b).broadcastTo([457, 301]);
      const out = NDArray.fromData(new Float32Array(301 * 457), [301, 457], b);
      elementwise(defineProgram(2, 0, ([p, q]) => p.mul(q).add(p)), [xt, row], [], { out: [out.transpose()] });
      b.write(o, out.toArraySync());
      [xt, row, out].forEach((a) => a.dispose());
    });
  });

  it('matmul by batch, columns and rows, around the threshold, ragged tiles', () => {
    const shapes: [number, number, number, number, boolean, boolean][] = [
      [1, 128, 512, 10, false, false], // the MLP's small products: by rows
      [1, 512, 128, 10, true, false],
      [1, 128, 10, 512, false, true], // by columns
      [1, 27, 3000, 16, true, false], // few rows, long k
      [1, 131, 67, 93, false, false],
      [3, 37, 41, 43, false, true], // an odd batch: by rows or columns
      [6, 20, 30, 40, true, true],
      [4, 60, 100, 80, true, true], // by batch
      [1, 40, 300, 400, false, false], // by columns
      [1, 300, 200, 90, true, false], // by rows
      [3, 100, 90, 120, false, true], // an odd batch, by rows
    ];
    for (const [batch, m, k, n, transA, transB] of shapes) {
      const spec: MatmulSpec = { batch, m, k, n, aBatchStride: m * k, bBatchStride: k * n, transA, transB };
      same(`matmul ${batch}x${m}x${k}x${n}`, [data(batch * m * k, m), data(batch * k * n, n)], batch * m * n, (T) => matmulPlan(T, batch, m, k, n).threads > 1, (b, [x, y], o) => b.matmul(x, y, o, spec));
    }
    // Just below and above the smallest m split on two threads.
    let t = 1;
    while (matmulPlan(2, 1, t, 64, 48).threads === 1) t++;
    for (const m of [t - 1, t + 1]) {
      const spec: MatmulSpec = { batch: 1, m, k: 64, n: 48, aBatchStride: 0, bBatchStride: 0, transA: false, transB: false };
      same(`matmul ${m}x64x48`, [data(m * 64, 1), data(64 * 48, 2)], m * 48, (T) => matmulPlan(T, 1, m, 64, 48).threads > 1, (b, [x, y], o) => b.matmul(x, y, o, spec));
    }
  });
});

describe('products split along their depth equal one thread bit for bit', () => {
  // Runs of the kernel's depth blocks into slabs, added in block order (NOTES.md section 50): a
  // convolution's weight gradient (computed as its transpose), plain products with edge tiles of
  // every micro-kernel (rows ending in a 3-row panel, last column panels of 5 and 4), a last depth
  // block shorter than the others, every transposition; data with NaN, infinities and signed zeros.
  const shapes: [m: number, k: number, n: number, transA: boolean, transB: boolean][] = [
    [16, 32768, 27, true, false],
    [23, 2999, 37, false, false],
    [23, 2999, 36, false, true],
    [20, 3000, 37, true, true],
    [16, 3000, 27, false, false],
  ];
  it.each(shapes)('%ix%ix%i transA=%s transB=%s', (m, k, n, transA, transB) => {
    expect(matmulPlan(2, 1, m, k, n).by).toBe('depth');
    const spec: MatmulSpec = { batch: 1, m, k, n, aBatchStride: 0, bBatchStride: 0, transA, transB };
    same(`matmul ${m}x${k}x${n}`, [data(m * k, m + 1), data(k * n, n + 2)], m * n, true, (b, [x, y], o) => b.matmul(x, y, o, spec));
  });

  it('with an epilogue program (matmulProgram), and the blocks the kernel runs a depth in', () => {
    const [m, k, n] = [23, 2999, 37];
    const spec: MatmulSpec = { batch: 1, m, k, n, aBatchStride: 0, bBatchStride: 0, transA: false, transB: false };
    const biasRelu = defineProgram(2, 1, ([y, bias], [s]) => y.add(bias).mul(s).maximum(0));
    same('matmulProgram by depth', [data(m * k, 5), data(k * n, 6), data(n, 7)], m * n, true, (b, [x, y, bias], o) =>
      b.matmulProgram(x, y, o, spec, { program: biasRelu, inputs: [bias], scalars: [0.75], layouts: [{ strides: [0, 0, 1], offset: 0 }] }));
    // The kernel's equal blocks of at most 256: 784 as 4 x 196, 2999 as 11 x 250 + 249.
    expect(depthBlocks(784)).toEqual({ count: 4, size: 196 });
    expect(depthBlocks(2999)).toEqual({ count: 12, size: 250 });
    expect(depthBlocks(256)).toEqual({ count: 1, size: 256 });
    expect(depthBlocks(257)).toEqual({ count: 2, size: 129 });
  });
});

describe('thread options', () => {
  it('rejects a negative spinMicros', async () => {
    await expect(createWasmBackend({ threads: 2, spinMicros: -1 })).rejects.toThrow('createWasmBackend: spinMicros must be a non-negative number, got -1');
  });

  it('counts no split launches on one thread', () => {
    expect(one.splitLaunches).toBe(0);
    expect(many[0].splitLaunches).toBeGreaterThan(0);
  });

  it('cuts split kernels into parts of about partMicros, at least one per thread', async () => {
    // The tests above ran on these backends: the default parts (100 us) leave kernels just above
    // the split threshold at one part per thread; 3 us parts cut them into many more.
    for (const b of many) expect(b.splitParts, `${b.threads} threads, parts per launch`).toBeGreaterThanOrEqual(b.threads * b.splitLaunches);
    expect(many[2].splitParts / many[2].splitLaunches).toBeGreaterThan(8);
    expect(many[3].splitParts / many[3].splitLaunches).toBeGreaterThan(8);
    expect(one.splitParts).toBe(0);
    await expect(createWasmBackend({ threads: 2, partMicros: 0 })).rejects.toThrow('createWasmBackend: partMicros must be a positive number, got 0');
  });
});

describe('the matmul split plan', () => {
  it('keeps the narrow products of the MLP on one thread, splits its large ones and the convolutions', async () => {
    // The 10-wide products repeat the packing of their large operand in every part and save less
    // than the hand-over is worth (NOTES.md section 21).
    for (const [m, k, n] of [[128, 512, 10], [512, 128, 10], [128, 10, 512]]) expect(matmulPlan(2, 1, m, k, n).threads, `${m}x${k}x${n}`).toBe(1);
    // Parts as many as the packing each part repeats (all of A by columns, all of B by rows)
    // allows: the MLP's big products one per thread, a convolution's tall product many.
    expect(matmulPlan(2, 1, 128, 784, 512)).toEqual({ threads: 2, by: 'columns', parts: 2 });
    expect(matmulPlan(2, 1, 784, 128, 512)).toEqual({ threads: 2, by: 'rows', parts: 2 });
    expect(matmulPlan(2, 1, 8192, 144, 32)).toEqual({ threads: 2, by: 'rows', parts: 12 });
    expect(matmulPlan(2, 4, 60, 100, 80)).toEqual({ threads: 2, by: 'batch', parts: 2 });
    expect(matmulPlan(2, 1, 40, 300, 400)).toEqual({ threads: 2, by: 'columns', parts: 2 });
    expect(matmulPlan(2, 3, 100, 90, 120)).toEqual({ threads: 2, by: 'rows', parts: 2 });
    // The ConvNet's first weight gradient, 128 depth blocks: by depth, in runs of whole blocks.
    expect(matmulPlan(2, 1, 16, 32768, 27)).toEqual({ threads: 2, by: 'depth', parts: 9 });
    expect(matmulPlan(1, 1, 1024, 1024, 1024).threads).toBe(1);
    // The plan's tile is the kernel's.
    const kernels = instantiateKernels(await compileKernels(false), new WebAssembly.Memory({ initial: 1, maximum: 4 }));
    expect([kernels.MR.value, kernels.NR.value, kernels.KC.value]).toEqual([MATMUL_TILE.MR, MATMUL_TILE.NR, MATMUL_TILE.KC]);
  });
});

describe('the worker pool hand-over', () => {
  // Polling is only enabled on a quiet machine; this pool polls regardless, so the polling path is
  // tested however busy the machine running the tests is.
  it('runs every job exactly once per launch, polling or asleep, with errors reported', async () => {
    const module = await compileKernels(true);
    const memory = new WebAssembly.Memory({ initial: 2, maximum: 4, shared: true });
    const kernels = instantiateKernels(module, memory);
    const base = kernels.heapBase();
    const pool = await WorkerPool.create(2, module, memory, 300, () => false);
    try {
      const heap = new Float32Array(memory.buffer);
      const region = (t: number) => base + 4 * 64 * t;
      // Counters incremented in place by every launch (out = out + 1): a part run twice, or
      // skipped, shows in the count.
      const counter = (t: number) => base + 4 * 64 * (3 + t);
      const ones = base + 4 * 64 * 6;
      heap.fill(1, ones >>> 2, (ones >>> 2) + 4);
      for (const t of [0, 1, 2]) heap.fill(0, counter(t) >>> 2, (counter(t) >>> 2) + 64);
      const run = (job: Job) => (job.kernel === 'fill' ? kernels.fill(job.args[0], job.args[1], job.args[2]) : kernels.binary(job.args[0], job.args[1], job.args[2], job.args[3], job.args[4], job.args[5]));
      for (let i = 0; i < 400; i++) {
        // Gaps shorter and longer than the poll time: some launches find the workers polling,
        // others asleep; and in every eighth launch a long gap through which the caller keeps
        // touching the pool (a training step's unsplit kernels), so the workers keep polling.
        const gap = i % 8 === 7 ? 900 : (i % 4) * 150;
        const t0 = performance.now();
        while (performance.now() - t0 < gap / 1000) if (i % 8 === 7) pool.touch();
        const jobs: Job[] = [0, 1, 2].map((t) => ({ kernel: 'fill', args: [region(t), i + t, 64] }));
        pool.run(jobs, run);
        for (const t of [0, 1, 2]) {
          const at = region(t) >>> 2;
          expect(heap[at], `launch ${i}, thread ${t}, first`).toBe(i + t);
          expect(heap[at + 63], `launch ${i}, thread ${t}, last`).toBe(i + t);
        }
        pool.run([0, 1, 2].map((t) => ({ kernel: 'binary', args: [binaryCode('add'), counter(t), ones, 15, counter(t), 64] })), run);
      }
      for (const t of [0, 1, 2]) {
        const c = heap.subarray(counter(t) >>> 2, (counter(t) >>> 2) + 64);
        expect([c[0], c[63]], `part ${t}: runs`).toEqual([400, 400]);
      }
      // More jobs than threads: each runs exactly once per launch, whichever thread claims it, with
      // that thread's own value of the per-thread argument (here the fill value).
      const parts = 23;
      const slot = (p: number) => base + 4 * 64 * 8 + 4 * 16 * p;
      const tally = base + 4 * 64 * 16;
      heap.fill(0, tally >>> 2, (tally >>> 2) + 16 * parts);
      const who = { at: [1], values: [[100], [101], [102]] };
      const ran = [0, 0, 0];
      for (let i = 0; i < 200; i++) {
        const gap = (i % 4) * 150;
        const t0 = performance.now();
        while (performance.now() - t0 < gap / 1000);
        pool.run(Array.from({ length: parts }, (_, p) => ({ kernel: 'fill', args: [slot(p), -1, 16] })), run, who);
        pool.run(Array.from({ length: parts }, (_, p) => ({ kernel: 'binary', args: [binaryCode('add'), tally + 64 * p, ones, 15, tally + 64 * p, 16] })), run);
        for (let p = 0; p < parts; p++) {
          const v = heap[slot(p) >>> 2];
          expect([100, 101, 102], `launch ${i}, part ${p}: ran by`).toContain(v);
          expect(heap[(slot(p) >>> 2) + 15], `launch ${i}, part ${p}: one thread's value`).toBe(v);
          ran[v - 100]++;
        }
      }
      for (let p = 0; p < parts; p++) expect(heap[(tally >>> 2) + 16 * p], `part ${p}: runs`).toBe(200);
      expect(ran[0] + ran[1] + ran[2]).toBe(200 * parts);
      // A job that traps (a write past the end of the memory) fails the launch, naming the part,
      // whichever thread ran it (a worker, or the caller taking back a part no worker had claimed).
      const fill = (job: Job) => kernels.fill(job.args[0], job.args[1], job.args[2]);
      for (let i = 0; i < 20; i++) {
        expect(() => pool.run([undefined, undefined, { kernel: 'fill', args: [memory.buffer.byteLength - 8, 1, 64] }], fill)).toThrow('ndarray-wasm: kernel fill failed in part 2');
      }
      // ... and the pool keeps working afterwards.
      pool.run([undefined, { kernel: 'fill', args: [region(1), 5, 64] }], fill);
      expect(heap[region(1) >>> 2]).toBe(5);
      expect(() => pool.run(new Array<undefined>(65).fill(undefined), fill)).toThrow('ndarray-wasm: 65 jobs, at most 64 a launch');
    } finally {
      pool.destroy();
    }
  });

  it('fails a launch whose part a worker claimed and never finished, naming the kernel, and every later one', async () => {
    const module = await compileKernels(true);
    const memory = new WebAssembly.Memory({ initial: 2, maximum: 4, shared: true });
    const base = instantiateKernels(module, memory).heapBase();
    // A compiled program (the 'jit' kernel) whose code never returns: the worker that claims its
    // part hangs, as a worker that died would never report it done.
    const forever = [0, 0x61, 0x73, 0x6d, 1, 0, 0, 0, 1, 4, 1, 0x60, 0, 0, 3, 2, 1, 0, 7, 7, 1, 3, 0x72, 0x75, 0x6e, 0, 0, 10, 9, 1, 7, 0, 3, 0x40, 0x0c, 0, 0x0b, 0x0b];
    new Uint8Array(memory.buffer).set(forever, base);
    const pool = await WorkerPool.create(1, module, memory, 300, () => false, 200);
    try {
      // The caller's own part keeps it busy long enough for the polling worker to claim the other;
      // should the caller get there first after all, it says so, and the launch is tried again.
      const local = (job: Job) => {
        if (job.kernel === 'jit') throw new Error('claimed by the caller');
        const t0 = performance.now();
        while (performance.now() - t0 < 20);
      };
      let message = '';
      for (let attempt = 0; attempt < 50 && !message.includes('did not finish'); attempt++) {
        pool.run([{ kernel: 'fill', args: [base + 256, 0, 1] }], local);
        try {
          pool.run([{ kernel: 'fill', args: [base + 256, 0, 1] }, { kernel: 'jit', args: [7, base, forever.length, 1, 0, 0, 0, 0, 0, 0] }], local);
        } catch (error) {
          message = (error as Error).message;
        }
      }
      expect(message).toBe('ndarray-wasm: kernel jit: a worker claimed part 1 of 2 and did not finish it in 200 ms (it died or hangs); this backend\'s worker pool cannot be used any more, create a new backend');
      expect(() => pool.run([{ kernel: 'fill', args: [base + 256, 0, 1] }], local)).toThrow(message);
    } finally {
      pool.destroy();
    }
  });
});
