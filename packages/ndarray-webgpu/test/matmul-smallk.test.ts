import { defineProgram, type Backend, type DeviceBuffer, type MatmulSpec } from '@needle/ndarray';
import { CpuBackend } from '@needle/ndarray-cpu';
import { describe, expect, test } from 'vitest';
import { matmulSmallKApplies, SMALL_K_MAX } from '../src/kernels/matmul';
import { testBackend } from './gpu';
import { expectClose, randomArray } from './helpers';

// The small-k kernel (k unrolled in the shader, every operand read as aligned vec4 blocks): each
// k % 4 (row groups of 4, 2 and 1 rows of A), both transpositions, partial row and column blocks,
// batches with strides, offsets, and an epilogue, against the CPU reference; and the shapes just
// outside it, which keep the other kernels.
const gpu = await testBackend();
const cpu = new CpuBackend();
const biasRelu = defineProgram(2, 0, ([y, b]) => y.add(b).maximum(0));
const spec = (m: number, k: number, n: number, o: Partial<MatmulSpec> = {}): MatmulSpec => ({ batch: 1, m, k, n, aBatchStride: 0, bBatchStride: 0, transA: false, transB: false, ...o });

describe('which products take the small-k kernel', () => {
  test('k % 4 != 0 up to SMALL_K_MAX, n >= 32 and a multiple of 4, aligned operands', () => {
    expect(matmulSmallKApplies(spec(128, 10, 512, { transB: true }))).toBe(true);
    expect(matmulSmallKApplies(spec(6, 9, 32))).toBe(false); // k odd: rows in fours, m % 4 != 0
    expect(matmulSmallKApplies(spec(8, 9, 32))).toBe(true);
    expect(matmulSmallKApplies(spec(6, 10, 32))).toBe(true); // k even: rows in pairs
    expect(matmulSmallKApplies(spec(6, 10, 32, { transA: true }))).toBe(false); // A^T: four rows a vec4
    expect(matmulSmallKApplies(spec(16, 12, 64))).toBe(false); // k % 4 == 0: the column-lane kernel reads vec4s
    expect(matmulSmallKApplies(spec(16, SMALL_K_MAX + 1, 64))).toBe(false);
    expect(matmulSmallKApplies(spec(16, 10, 28))).toBe(false); // narrow: the rows kernel or the column-lane one
    expect(matmulSmallKApplies(spec(16, 10, 34))).toBe(false); // n % 4 != 0
    expect(matmulSmallKApplies(spec(16, 10, 64, { bOffset: 2 }))).toBe(false);
    expect(matmulSmallKApplies(spec(16, 10, 64, { batch: 2, aBatchStride: 162 }))).toBe(false);
  });
});

describe.runIf(gpu)('webgpu small-k matmul against the CPU reference', () => {
  const g = gpu!;
  // [name, spec, with an epilogue too]. Each shader is compiled fresh (seconds for the larger
  // tiles), so the tiles with 2 and 4 column groups get small k.
  const cases: [string, MatmulSpec, boolean][] = [];
  for (const k of [3, 6, 9]) {
    for (const transA of [false, true]) {
      for (const transB of [false, true]) {
        // m = 20: a partial row block (16 + 4); n = 36: a partial column block.
        cases.push([`20x${k}x36 tA=${transA} tB=${transB}`, spec(20, k, 36, { transA, transB }), k === 6 && transA && transB]);
      }
    }
  }
  cases.push(['2 column groups: 16x6x128', spec(16, 6, 128), false]);
  cases.push(['4 column groups: 16x3x256 tB', spec(16, 3, 256, { transB: true }), true]);
  cases.push(['k even, rows in pairs, m = 6', spec(6, 6, 64), false]);
  cases.push(['batched with strides and offsets', spec(12, 7, 40, { batch: 3, aBatchStride: 88, bBatchStride: 284, aOffset: 4, bOffset: 8, outOffset: 12 }), true]);
  cases.push(['batched, shared B transposed', spec(8, 5, 32, { batch: 2, aBatchStride: 40, transB: true }), false]);

  const run = async (be: Backend, s: MatmulSpec, fused: boolean): Promise<Float32Array> => {
    const aSize = (s.aOffset ?? 0) + (s.batch - 1) * s.aBatchStride + s.m * s.k;
    const bSize = (s.bOffset ?? 0) + (s.batch - 1) * s.bBatchStride + s.k * s.n;
    const outSize = (s.outOffset ?? 0) + s.batch * s.m * s.n;
    const data = [randomArray(aSize, 3 + aSize, -2, 2), randomArray(bSize, 5 + bSize, -2, 2), randomArray(s.n, 7, -1, 1)];
    const [a, b, bias] = data.map((d) => {
      const x = be.alloc(d.length);
      be.write(x, d);
      return x;
    });
    const out = be.alloc(outSize);
    be.fill(out, -7, outSize);
    if (fused) be.matmulProgram!(a, b, out, s, { program: biasRelu, inputs: [bias], scalars: [], layouts: [{ strides: [0, 0, 1], offset: 0 }] });
    else be.matmul(a, b, out, s);
    const r = await be.read(out);
    for (const x of [a, b, bias, out] as DeviceBuffer[]) be.free(x);
    return r;
  };

  test.each(cases)('%s', async (_name, s, withEpilogue) => {
    expect(matmulSmallKApplies(s), 'takes the small-k kernel').toBe(true);
    const pipelines = (g as unknown as { pipelines: Map<string, unknown> }).pipelines;
    for (const fused of withEpilogue ? [false, true] : [false]) {
      const got = await run(g, s, fused);
      expectClose(got, await run(cpu, s, fused), 1e-5, 1e-5, fused ? 'matmulProgram' : 'matmul');
      const key = `matmul-smallk:${s.k}:${s.transA ? 1 : 0}${s.transB ? 1 : 0}:`;
      expect([...pipelines.keys()].some((p) => p.startsWith(key) && p.includes(':epi:') === fused), 'the small-k pipeline ran').toBe(true);
    }
  });
});
