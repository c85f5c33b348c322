import { defineProgram, type Backend, type DeviceBuffer, type MatmulSpec, type OperandLayout, type ProgramLayouts, type ProgramReduceOp } from '@needle/ndarray';
import { CpuBackend } from '@needle/ndarray-cpu';
import { describe, expect, test } from 'vitest';
import { matmulRowsApplies, matmulVariant } from '../src/kernels/matmul';
import { testBackend } from './gpu';
import { expectClose, randomArray, withSpecials } from './helpers';

// The kernel variants the conformance kit's small cases do not reach: the column-lane tiles with
// vec4 epilogue inputs read every way, the narrow-output (row-lane) kernel with an epilogue and with
// offsets, and reduce programs on each strategy (vec4 loads, one thread or a workgroup per block).
const gpu = await testBackend();
const cpu = new CpuBackend();

/** Upload each array to a fresh buffer of `be`, run `call`, read `out`, free everything. */
async function on(be: Backend, data: Float32Array[], outSize: number, call: (bufs: DeviceBuffer[], out: DeviceBuffer) => void): Promise<Float32Array> {
  const bufs = data.map((d) => {
    const b = be.alloc(d.length);
    be.write(b, d);
    return b;
  });
  const out = be.alloc(outSize);
  be.fill(out, -7, outSize);
  call(bufs, out);
  const r = await be.read(out);
  for (const b of [...bufs, out]) be.free(b);
  return r;
}

const biasTanh = defineProgram(3, 1, ([y, b, r], [s]) => y.mul(s).add(b).tanh().add(r));
const relu = defineProgram(2, 0, ([y, b]) => y.add(b).maximum(0));

describe.runIf(gpu)('webgpu matmulProgram and offsets against the CPU reference', () => {
  const g = gpu!;
  const cases: { name: string; spec: MatmulSpec; layouts: OperandLayout[]; rows: boolean; vecC?: boolean }[] = [];
  const spec = (m: number, k: number, n: number, o: Partial<MatmulSpec> = {}): MatmulSpec => ({ batch: 1, m, k, n, aBatchStride: 0, bBatchStride: 0, transA: false, transB: false, ...o });
  // 16 rows x 4 vec4 column groups per invocation (n >= 128; the 8-group tile of n >= 256 is the
  // same code with more groups and compiles for several seconds); inputs read as vec4 ('v'),
  // broadcast ('b', a per-row value) and element by element ('s', a transposed view).
  const wide = spec(40, 20, 132, { batch: 2, aBatchStride: 800, bBatchStride: 0 });
  cases.push({ name: 'wide tile, v/b/s epilogue inputs', spec: wide, rows: false, vecC: true, layouts: [
    { strides: [0, 0, 1], offset: 8 },
    { strides: [40, 1, 0], offset: 0 },
  ] });
  cases.push({ name: 'wide tile, strided 3-D input', spec: wide, rows: false, vecC: true, layouts: [
    { strides: [132 * 40, 132, 1], offset: 0 },
    { strides: [1, 2, 80], offset: 3 },
  ] });
  cases.push({ name: 'scalar output (n % 4 != 0), transposed operands', spec: spec(33, 12, 70, { transA: true, transB: true }), rows: false, vecC: false, layouts: [
    { strides: [0, 0, 1], offset: 0 },
    { strides: [0, 1, 33], offset: 2 },
  ] });
  for (const [transA, transB] of [[false, false], [true, false], [false, true], [true, true]]) {
    cases.push({ name: `narrow output tA=${transA} tB=${transB}`, spec: spec(40, 24, 10, { transA, transB }), rows: true, layouts: [
      { strides: [0, 0, 1], offset: 0 },
      { strides: [0, 10, 1], offset: 0 },
    ] });
  }
  cases.push({ name: 'narrow output, k % 4 != 0 (tail), batched', spec: spec(12, 7, 3, { batch: 3, transA: true, aBatchStride: 84, bBatchStride: 24 }), rows: true, layouts: [
    { strides: [0, 0, 1], offset: 1 },
    { strides: [36, 3, 1], offset: 0 },
  ] });
  cases.push({ name: 'offsets on the column-lane tile', spec: spec(9, 8, 20, { aOffset: 4, bOffset: 8, outOffset: 12 }), rows: false, vecC: true, layouts: [
    { strides: [0, 0, 1], offset: 0 },
    { strides: [0, 0, 0], offset: 5 },
  ] });
  cases.push({ name: 'unaligned offsets (scalar loads and stores)', spec: spec(9, 8, 20, { aOffset: 3, bOffset: 1, outOffset: 5 }), rows: false, vecC: false, layouts: [
    { strides: [0, 0, 1], offset: 0 },
    { strides: [0, 0, 0], offset: 5 },
  ] });
  cases.push({ name: 'offsets on the narrow-output kernel', spec: spec(16, 12, 6, { aOffset: 8, bOffset: 4, outOffset: 3 }), rows: true, layouts: [
    { strides: [0, 0, 1], offset: 0 },
    { strides: [0, 6, 1], offset: 0 },
  ] });

  test.each(cases)('$name', async ({ spec: s, layouts, rows, vecC }) => {
    expect(matmulRowsApplies(s), 'kernel').toBe(rows);
    if (vecC !== undefined) expect(matmulVariant(s, 256).vecC, 'vec4 output').toBe(vecC);
    const aSize = (s.aOffset ?? 0) + (s.batch - 1) * s.aBatchStride + s.m * s.k;
    const bSize = (s.bOffset ?? 0) + (s.batch - 1) * s.bBatchStride + s.k * s.n;
    const outSize = (s.outOffset ?? 0) + s.batch * s.m * s.n;
    const extents = layouts.map((l) => l.offset + l.strides.reduce((acc, st, d) => acc + st * ([s.batch, s.m, s.n][d] - 1), 0) + 1);
    const data = [randomArray(aSize, 1 + aSize, -2, 2), randomArray(bSize, 2 + bSize, -2, 2), ...extents.map((n, i) => withSpecials(randomArray(n, 3 + i, -1, 1), 5 + i, 0.05))];
    for (const [program, inputs, scalars] of [[biasTanh, 2, [0.75]], [relu, 1, []]] as const) {
      const run = (be: Backend) => on(be, data, outSize, ([a, b, ...e], out) => be.matmulProgram!(a, b, out, s, {
        program, inputs: e.slice(0, inputs), scalars, layouts: layouts.slice(0, inputs),
      }));
      expectClose(await run(g), await run(cpu), 2e-5, 2e-5, `${program === relu ? 'relu' : 'tanh'} epilogue`);
    }
    // The plain matmul honours the offsets too (rows before outOffset keep the fill value).
    const plain = (be: Backend) => on(be, data, outSize, ([a, b], out) => be.matmul(a, b, out, s));
    expectClose(await plain(g), await plain(cpu), 1e-5, 1e-5, 'matmul');
  });

  test('k = 0: the epilogue sees a product of zeros', async () => {
    const s = spec(8, 0, 12);
    const data = [new Float32Array(0), new Float32Array(0), randomArray(12, 9, -1, 1)];
    const run = (be: Backend) => on(be, data, 96, ([a, b, e], out) => be.matmulProgram!(a, b, out, s, { program: relu, inputs: [e], scalars: [], layouts: [{ strides: [0, 0, 1], offset: 0 }] }));
    expect(await run(g)).toEqual(await run(cpu));
  });

  test('bad epilogues get clear errors', () => {
    const a = g.alloc(4);
    const e = g.alloc(4);
    const s = spec(2, 2, 2);
    expect(() => g.matmulProgram(a, a, e, s, { program: relu, inputs: [], scalars: [], layouts: [] })).toThrow(/matmulProgram: the epilogue program takes 2 inputs/);
    expect(() => g.matmulProgram(a, a, e, s, { program: relu, inputs: [e], scalars: [], layouts: [undefined] })).toThrow(/matmulProgram: an epilogue input is the out buffer/);
    expect(() => g.matmulProgram(a, a, e, s, { program: relu, inputs: [a], scalars: [], layouts: [{ strides: [0, 0, 4], offset: 0 }] })).toThrow(/matmulProgram: epilogue input 0's view .* outside a buffer of 4/);
    g.free(a);
    g.free(e);
  });
});

describe.runIf(gpu)('webgpu reduceProgram strategies against the CPU reference', () => {
  const g = gpu!;
  const square = defineProgram(2, 1, ([x, y], [s]) => x.sub(y).mul(x).mul(s));
  // [outSize, reduceSize, layouts]: vec4 loads (r % 4 == 0, 'v' and 'b' inputs), one thread per
  // block (r <= 64), a workgroup per block (few long blocks), and strided inputs on each.
  const shapes: [string, number, number, ProgramLayouts | undefined][] = [
    ['vec4, compact', 300, 8, undefined],
    ['vec4, a row and a broadcast column', 6, 64, { shape: [6, 64], inputs: [{ strides: [68, 1], offset: 4 }, { strides: [1, 0], offset: 2 }], outputs: [] }],
    ['one thread per block, strided', 20, 9, { shape: [20, 9], inputs: [{ strides: [1, 20], offset: 0 }, undefined], outputs: [] }],
    ['a workgroup per block', 3, 1000, undefined],
    ['a workgroup per block, strided', 2, 301, { shape: [2, 301], inputs: [{ strides: [1, 2], offset: 0 }, { strides: [0, 1], offset: 0 }], outputs: [] }],
  ];
  const ops: ProgramReduceOp[] = ['sum', 'max', 'min', 'argmax', 'argmin', 'logsumexp'];
  test.each(shapes)('%s', async (_name, outSize, reduceSize, layouts) => {
    const n = outSize * reduceSize;
    const sizes = layouts ? [700, 700] : [n, n];
    let x = withSpecials(randomArray(Math.max(...sizes) + 2, outSize + reduceSize, -3, 3), 11, 0.01);
    // Ties for arg*; one block all -Infinity (logsumexp's non-finite max), another with +Infinity.
    x = x.map((v) => Math.round(v * 8) / 8);
    const y = randomArray(Math.max(...sizes) + 2, 5, -1, 1);
    for (const op of ops) {
      const run = (be: Backend) => on(be, [x, y], outSize + 3, ([a, b], out) => be.reduceProgram!(op, square, [a, b], [0.5], out, outSize, reduceSize, layouts, 2));
      const [got, want] = [await run(g), await run(cpu)];
      const tol = op === 'sum' || op === 'logsumexp' ? 3e-5 : 0;
      expectClose(got, want, tol, tol * 10, `${op}`);
    }
  });

  test('logsumexp of blocks with -Infinity, +Infinity and NaN maxima', async () => {
    const ident = defineProgram(1, 0, ([v]) => v);
    const x = Float32Array.from([-Infinity, -Infinity, -Infinity, -Infinity, 1, Infinity, 2, 3, NaN, 0, 1, 2, 1000, 1000, 0, -Infinity]);
    for (const [outSize, r] of [[4, 4], [2, 8]]) {
      const run = (be: Backend) => on(be, [x], outSize, ([a], out) => be.reduceProgram!('logsumexp', ident, [a], [], out, outSize, r));
      expectClose(await run(g), await run(cpu), 2e-6, 0, `${outSize}x${r}`);
    }
    const big = new Float32Array(2000).fill(-Infinity);
    big[1500] = 5;
    const run = (be: Backend) => on(be, [big], 2, ([a], out) => be.reduceProgram!('logsumexp', ident, [a], [], out, 2, 1000));
    expect([...(await run(g))]).toEqual([-Infinity, 5]);
  });
});

describe.runIf(gpu)('webgpu strided reduce in one pass', () => {
  const g = gpu!;
  // [outSize, reduceSize, view over a buffer]: each strategy (four partial sums, one thread, a
  // workgroup per block), transposed and broadcast views; the order of the sum is the compact
  // input's, so the result is bit for bit that of compacting first.
  const views: [number, number, { shape: number[]; strides: number[]; offset: number }][] = [
    [512, 128, { shape: [512, 128], strides: [1, 512], offset: 0 }],
    [10, 128, { shape: [10, 128], strides: [1, 10], offset: 0 }],
    [20, 9, { shape: [20, 9], strides: [1, 20], offset: 3 }],
    [3, 1000, { shape: [3, 1000], strides: [1, 3], offset: 0 }],
    [6, 64, { shape: [6, 64], strides: [0, 1], offset: 5 }],
    [4, 12, { shape: [4, 3, 4], strides: [1, 16, 4], offset: 0 }],
    // Down the columns of a row-major matrix ('cols4': vec4 rows of four columns): a column slice
    // at an offset, and a 3-D view that coalesces to [16, 20] with strides [1, 16].
    [8, 16, { shape: [8, 16], strides: [1, 24], offset: 4 }],
    [16, 20, { shape: [16, 4, 5], strides: [1, 80, 16], offset: 8 }],
  ];
  test.each(views)('%i blocks of %i', async (outSize, reduceSize, layout) => {
    const x = withSpecials(randomArray(70000, outSize, -3, 3), 2, 0.001).map((v) => Math.round(v * 16) / 16);
    const a = g.alloc(x.length);
    g.write(a, x);
    const n = outSize * reduceSize;
    for (const op of ['sum', 'max', 'min', 'argmax', 'argmin'] as const) {
      const want = g.alloc(outSize);
      const compact = g.alloc(n);
      g.compact(a, compact, layout);
      g.reduce(op, compact, want, outSize, reduceSize);
      const got = g.alloc(outSize);
      const s0 = g.stats();
      g.reduce(op, a, got, outSize, reduceSize, layout);
      expect(g.stats().dispatches - s0.dispatches, `${op}: dispatches`).toBe(1);
      expect(await g.read(got), op).toEqual(await g.read(want));
      for (const b of [want, compact, got]) g.free(b);
    }
    g.free(a);
  });

  test('column sums of unrounded values equal compact + reduce bit for bit (the same order)', async () => {
    const pipelines = (g as unknown as { pipelines: Map<string, unknown> }).pipelines;
    for (const [rows, cols, offset] of [[128, 512, 0], [36, 20, 8], [256, 8, 4]]) {
      const x = randomArray(offset + rows * cols, rows + cols, -3, 3);
      const a = g.alloc(x.length);
      g.write(a, x);
      const layout = { shape: [cols, rows], strides: [1, cols], offset };
      for (const op of ['sum', 'max', 'min'] as const) {
        const want = g.alloc(cols);
        const compact = g.alloc(rows * cols);
        g.compact(a, compact, layout);
        g.reduce(op, compact, want, cols, rows);
        const got = g.alloc(cols);
        g.reduce(op, a, got, cols, rows, layout);
        const [w, r] = [await g.read(want), await g.read(got)];
        expect(Array.from(r), `${op} ${rows}x${cols}`).toEqual(Array.from(w));
        if (op === 'sum') expectClose(r, columnSums(x, rows, cols, offset), 1e-5, 1e-4, `column sums ${rows}x${cols}`);
        for (const b of [want, compact, got]) g.free(b);
      }
      g.free(a);
      expect([...pipelines.keys()], 'the column kernel ran').toContain('reduce:sum:cols4:64');
    }
  });

  test('a view of the out buffer itself is gathered first', async () => {
    const a = g.alloc(16);
    g.write(a, Float32Array.from({ length: 16 }, (_, i) => i));
    g.reduce('sum', a, a, 4, 4, { shape: [4, 4], strides: [1, 4], offset: 0 });
    expect([...(await g.read(a, 4))]).toEqual([24, 28, 32, 36]);
    g.free(a);
  });
});

/** Float64 sums of the columns of a rows x cols row-major matrix starting at `offset`. */
function columnSums(x: Float32Array, rows: number, cols: number, offset: number): Float32Array {
  const out = new Float32Array(cols);
  for (let c = 0; c < cols; c++) {
    let s = 0;
    for (let r = 0; r < rows; r++) s += x[offset + r * cols + c];
    out[c] = s;
  }
  return out;
}
