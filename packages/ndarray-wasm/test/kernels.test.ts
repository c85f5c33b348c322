import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BINARY_OPS, REDUCE_OPS, UNARY_OPS, NDArray, defineProgram, elementwise, type MatmulSpec, type StridedLayout } from '@needle/ndarray';
import { createWasmBackend, type WasmBackend } from '../src';
import { matmulPlan } from '../src/split';
import { cpu, download, expectClose, randomFloats, SPECIAL, upload } from './helpers';

// Sizes straddle the 4-lane vectors, the 16-element thread chunks and the thread split threshold.
const SIZES = [0, 1, 3, 4, 5, 17, 1023, 40_001, 270_001];

/** Three-element inputs (all in the scalar tail loop) cycling through every special value. */
function tailCases(): Float32Array[] {
  return SPECIAL.map((_, s) => Float32Array.from([0, 1, 2], (j) => SPECIAL[(s + j) % SPECIAL.length]));
}

function withSpecials(n: number, seed: number): Float32Array {
  const data = randomFloats(n, seed, -3, 3);
  for (let i = 0; i < n; i += 7) data[i] = SPECIAL[(i / 7 + seed) % SPECIAL.length];
  // The last elements run through the scalar tail loops rather than the vector loops: give them
  // every special value too.
  for (let j = 0; j < Math.min(n, SPECIAL.length); j++) data[n - 1 - j] = SPECIAL[(j + seed) % SPECIAL.length];
  return data;
}

// exp/log/tanh are f32x4 polynomials within 2 ulps of the exact value (test/accuracy.test.ts), the
// reference is within 0.5 ulp: 2.5 ulps apart at most, i.e. 2.5 * 2^-23 relative.
const UNARY_RTOL: Record<string, number> = { log: 3e-7, exp: 3e-7, tanh: 3e-7 };

describe.each([1, 2])('wasm kernels vs cpu, %i thread(s)', (threads) => {
  let w: WasmBackend;
  beforeAll(async () => {
    w = await createWasmBackend({ threads });
  });
  afterAll(() => w.destroy());

  it('reports the thread count it runs with', () => {
    expect(w.threads).toBe(threads);
    expect(w.name).toBe('wasm');
  });

  it('fill writes exactly size elements', () => {
    const buf = upload(w, new Float32Array(9).fill(7));
    w.fill(buf, -1.5, 6);
    expect(Array.from(download(w, buf))).toEqual([-1.5, -1.5, -1.5, -1.5, -1.5, -1.5, 7, 7, 7]);
    w.free(buf);
  });

  for (const op of BINARY_OPS) {
    it(`ewise ${op} and scalar ${op} match the reference`, () => {
      for (const n of SIZES) {
        const x = withSpecials(n, n + 1);
        const y = withSpecials(n, n + 2);
        if (n > 10) y.set(x.subarray(0, 5), 0); // equal pairs for comparisons
        const rtol = op === 'pow' ? 1.2e-7 : 0;
        const [ca, cb, co] = [upload(cpu, x), upload(cpu, y), cpu.alloc(n)];
        const [wa, wb, wo] = [upload(w, x), upload(w, y), w.alloc(n)];
        cpu.ewise(op, ca, cb, co, n);
        w.ewise(op, wa, wb, wo, n);
        expectClose(download(w, wo), download(cpu, co), rtol, 0, `ewise ${op} n=${n}`);
        for (const s of [2, -0.5, 0, NaN, Infinity, 0.1]) {
          cpu.scalar(op, ca, s, co, n);
          w.scalar(op, wa, s, wo, n);
          expectClose(download(w, wo), download(cpu, co), rtol, 0, `scalar ${op} ${s} n=${n}`);
        }
        for (const b of [ca, cb, co]) cpu.free(b);
        for (const b of [wa, wb, wo]) w.free(b);
      }
      const tails = tailCases();
      for (const x of tails) {
        for (const y of tails) {
          const [ca, cb, co] = [upload(cpu, x), upload(cpu, y), cpu.alloc(3)];
          const [wa, wb, wo] = [upload(w, x), upload(w, y), w.alloc(3)];
          cpu.ewise(op, ca, cb, co, 3);
          w.ewise(op, wa, wb, wo, 3);
          expectClose(download(w, wo), download(cpu, co), op === 'pow' ? 1.2e-7 : 0, 0, `ewise ${op} tail [${Array.from(x).join(', ')}] [${Array.from(y).join(', ')}]`);
          for (const b of [ca, cb, co]) cpu.free(b);
          for (const b of [wa, wb, wo]) w.free(b);
        }
      }
    });
  }

  it('ewise writes in place when out aliases an input', () => {
    const x = randomFloats(37, 5);
    const buf = upload(w, x);
    w.ewise('mul', buf, buf, buf, 37);
    expectClose(download(w, buf), x.map((v) => Math.fround(v * v)), 0, 0, 'aliased mul');
    w.free(buf);
  });

  for (const op of UNARY_OPS) {
    it(`unary ${op} matches the reference`, () => {
      for (const n of SIZES) {
        const x = withSpecials(n, 3 * n + 7);
        const [ca, co] = [upload(cpu, x), cpu.alloc(n)];
        const [wa, wo] = [upload(w, x), w.alloc(n)];
        cpu.unary(op, ca, co, n);
        w.unary(op, wa, wo, n);
        expectClose(download(w, wo), download(cpu, co), UNARY_RTOL[op] ?? 0, 0, `unary ${op} n=${n}`);
        cpu.free(ca); cpu.free(co); w.free(wa); w.free(wo);
      }
      for (const x of tailCases()) {
        const [ca, co] = [upload(cpu, x), cpu.alloc(3)];
        const [wa, wo] = [upload(w, x), w.alloc(3)];
        cpu.unary(op, ca, co, 3);
        w.unary(op, wa, wo, 3);
        expectClose(download(w, wo), download(cpu, co), UNARY_RTOL[op] ?? 0, 0, `unary ${op} tail [${Array.from(x).join(', ')}]`);
        cpu.free(ca); cpu.free(co); w.free(wa); w.free(wo);
      }
    });
  }

  it('where selects x where cond != 0 (NaN counts as true)', () => {
    for (const n of SIZES) {
      const cond = randomFloats(n, 11).map((v) => (v > 0 ? 0 : v < -1 ? NaN : v));
      const x = randomFloats(n, 12);
      const y = randomFloats(n, 13);
      const c = [upload(cpu, cond), upload(cpu, x), upload(cpu, y), cpu.alloc(n)];
      const g = [upload(w, cond), upload(w, x), upload(w, y), w.alloc(n)];
      cpu.where(c[0], c[1], c[2], c[3], n);
      w.where(g[0], g[1], g[2], g[3], n);
      expectClose(download(w, g[3]), download(cpu, c[3]), 0, 0, `where n=${n}`);
      c.forEach((b) => cpu.free(b));
      g.forEach((b) => w.free(b));
    }
  });

  for (const op of REDUCE_OPS) {
    it(`reduce ${op} matches the reference, NaN rows included`, () => {
      const shapes: [number, number][] = [[1, 1], [3, 7], [5, 16], [2, 1001], [70, 1000], [300, 1001], [1, 300_001], [1, 1_000_003], [4, 0], [0, 5]];
      for (const [outSize, reduceSize] of shapes) {
        const x = randomFloats(outSize * reduceSize, outSize + reduceSize);
        // A NaN late in row 1, ties in row 2 (first index wins), and in rows 3 and 4 signed zeros
        // where the first zero sits in a later vector lane than the second (max picks +0, min -0).
        const row = (r: number) => x.subarray(r * reduceSize, (r + 1) * reduceSize);
        if (outSize > 1 && reduceSize > 3) x[reduceSize + reduceSize - 2] = NaN;
        if (outSize > 2 && reduceSize > 3) row(2).fill(5, 0, 3).fill(-5, 3);
        if (outSize > 4 && reduceSize > 5) {
          row(3).fill(-1).set([0, -0], 3);
          row(4).fill(1).set([-0, 0], 3);
        }
        const [ca, co] = [upload(cpu, x), cpu.alloc(outSize)];
        const [wa, wo] = [upload(w, x), w.alloc(outSize)];
        cpu.reduce(op, ca, co, outSize, reduceSize);
        w.reduce(op, wa, wo, outSize, reduceSize);
        // Sums accumulate in float64 on both sides but in a different order.
        expectClose(download(w, wo), download(cpu, co), op === 'sum' ? 1e-6 : 0, op === 'sum' ? 1e-5 : 0, `reduce ${op} ${outSize}x${reduceSize}`);
        cpu.free(ca); cpu.free(co); w.free(wa); w.free(wo);
      }
    });
  }

  it('max, min, argmax, argmin of rows of 4 (the four-rows-at-a-time path) match the reference for every row of special values', () => {
    // All 13^4 rows over SPECIAL (NaN anywhere, +-0 ties in either order, infinities), then 3 more
    // rows so the last ones run through the per-row loop.
    const rows = SPECIAL.length ** 4 + 3;
    const x = new Float32Array(rows * 4);
    for (let r = 0; r < rows; r++) {
      for (let e = 0, q = r; e < 4; e++, q = Math.floor(q / SPECIAL.length)) x[r * 4 + e] = SPECIAL[q % SPECIAL.length];
    }
    const [ca, co] = [upload(cpu, x), cpu.alloc(rows)];
    const [wa, wo] = [upload(w, x), w.alloc(rows)];
    for (const op of ['max', 'min', 'argmax', 'argmin'] as const) {
      cpu.reduce(op, ca, co, rows, 4);
      w.reduce(op, wa, wo, rows, 4);
      const got = download(w, wo);
      const want = download(cpu, co);
      // Bit for bit, signed zeros included.
      const bad = got.findIndex((v, i) => !Object.is(v, want[i]));
      expect(bad, `reduce ${op}: row ${bad} [${x.subarray(bad * 4, bad * 4 + 4).join(', ')}] gave ${got[bad]}, expected ${want[bad]}`).toBe(-1);
    }
    cpu.free(ca); cpu.free(co); w.free(wa); w.free(wo);
  });

  const layouts: [string, number, StridedLayout][] = [
    ['transpose 5x7', 35, { shape: [7, 5], strides: [1, 7], offset: 0 }],
    ['transpose 37x21, several ragged 16x16 tiles', 37 * 21, { shape: [21, 37], strides: [1, 21], offset: 0 }],
    ['flipped transpose with offset', 40 * 18, { shape: [18, 40], strides: [-1, 18], offset: 17 }],
    ['flip with offset', 20, { shape: [4, 5], strides: [-5, -1], offset: 19 }],
    ['broadcast row', 6, { shape: [4, 3, 6], strides: [0, 0, 1], offset: 0 }],
    ['stepped slice', 60, { shape: [3, 4], strides: [20, 3], offset: 2 }],
    ['contiguous tail', 24, { shape: [2, 12], strides: [12, 1], offset: 0 }],
    ['contiguous with offset', 30, { shape: [10], strides: [1], offset: 17 }],
    ['unit axes and merge', 48, { shape: [1, 2, 1, 3, 8], strides: [99, 24, 5, 8, 1], offset: 0 }],
    ['scalar view', 5, { shape: [], strides: [], offset: 3 }],
    ['5-d permute', 2 * 3 * 4 * 5 * 3, { shape: [3, 5, 4, 3, 2], strides: [1, 3, 15, 60, 180], offset: 0 }],
    ['empty', 4, { shape: [0, 3], strides: [3, 1], offset: 0 }],
    // The copy kernel moves the last two axes as one block per step of the leading axes:
    ['batched transposes (NCHW to NHWC)', 2 * 3 * 20, { shape: [2, 20, 3], strides: [60, 1, 20], offset: 0 }],
    ['im2col windows: short contiguous runs', 2 * 6 * 6 * 2, { shape: [2, 4, 4, 3, 6], strides: [72, 12, 2, 12, 1], offset: 0 }],
    ['2 x 2 pooling windows', 2 * 3 * 8 * 8, { shape: [2, 3, 4, 4, 2, 2], strides: [192, 64, 16, 2, 8, 1], offset: 0 }],
    // ...or, when the view is densest along an earlier axis, that axis and the last one:
    ['2 x 2 pooling windows of NHWC data (channels innermost in memory)', 2 * 8 * 8 * 3, { shape: [2, 4, 4, 3, 2, 2], strides: [192, 48, 6, 1, 24, 3], offset: 0 }],
    ['densest axis first, negative strides', 5 * 4 * 3, { shape: [4, 5, 3], strides: [-1, 4, 20], offset: 3 }],
    ['long contiguous rows under leading axes', 3 * 2 * 150, { shape: [3, 2, 140], strides: [300, 150, 1], offset: 5 }],
    ['negative strides in both block axes', 7 * 9, { shape: [7, 9], strides: [-9, -1], offset: 62 }],
  ];
  for (const [label, size, layout] of layouts) {
    it(`compact, ewiseSetitem, scalarSetitem: ${label}`, () => {
      const n = layout.shape.reduce((p, d) => p * d, 1);
      const src = randomFloats(size, size);
      const c = [upload(cpu, src), cpu.alloc(n)];
      const g = [upload(w, src), w.alloc(n)];
      cpu.compact(c[0], c[1], layout);
      w.compact(g[0], g[1], layout);
      expectClose(download(w, g[1]), download(cpu, c[1]), 0, 0, `compact ${label}`);
      const values = randomFloats(n, 99);
      cpu.write(c[1], values);
      w.write(g[1], values);
      if (!layout.strides.includes(0)) {
        // Scattering through a broadcast view writes one element many times: order-dependent, skipped.
        cpu.ewiseSetitem(c[1], c[0], layout);
        w.ewiseSetitem(g[1], g[0], layout);
        expectClose(download(w, g[0]), download(cpu, c[0]), 0, 0, `ewiseSetitem ${label}`);
      }
      cpu.scalarSetitem(-9, c[0], layout);
      w.scalarSetitem(-9, g[0], layout);
      expectClose(download(w, g[0]), download(cpu, c[0]), 0, 0, `scalarSetitem ${label}`);
      c.forEach((b) => cpu.free(b));
      g.forEach((b) => w.free(b));
    });
  }

  const specs: [number, number, number, number, number, number, boolean, boolean][] = [
    // batch, m, k, n, aBatchStride factor (1 own, 0 shared), bBatchStride factor, transA, transB
    [1, 1, 1, 1, 1, 1, false, false],
    [1, 3, 5, 7, 1, 1, false, false],
    [1, 4, 8, 8, 1, 1, false, false],
    [1, 67, 300, 600, 1, 1, false, false], // k > KC, n > NC, ragged tiles
    [1, 61, 33, 45, 1, 1, true, false],
    [1, 29, 70, 19, 1, 1, false, true],
    [1, 130, 257, 9, 1, 1, true, true], // m > MC
    [5, 6, 7, 9, 1, 1, false, false],
    [3, 17, 12, 33, 1, 0, false, true], // shared weight
    [4, 9, 31, 10, 0, 1, true, false], // shared left operand
    [2, 200, 64, 3, 1, 1, false, false], // tall and thin: split by rows
    [1, 1, 500, 1000, 1, 1, false, false], // vector-matrix
    [1, 12, 300, 12, 1, 1, false, false], // 4-column last panel, accumulated over two k blocks
    // Large enough to be split between threads (src/split.ts matmulPlan):
    [6, 40, 200, 60, 1, 1, true, false], // by batch
    [3, 40, 256, 140, 1, 0, false, true], // by columns, across an odd batch with a shared B
    [2, 600, 100, 20, 0, 1, false, false], // by rows, shared A
  ];
  for (const [batch, m, k, n, sa, sb, transA, transB] of specs) {
    it(`matmul batch=${batch} ${m}x${k}x${n} transA=${transA} transB=${transB} strides ${sa},${sb}`, () => {
      const spec: MatmulSpec = { batch, m, k, n, aBatchStride: sa * m * k, bBatchStride: sb * k * n, transA, transB };
      const aSize = sa ? batch * m * k : m * k;
      const bSize = sb ? batch * k * n : k * n;
      const A = randomFloats(aSize, m * 7 + k);
      const B = randomFloats(bSize, n * 13 + k);
      const c = [upload(cpu, A), upload(cpu, B), cpu.alloc(batch * m * n)];
      const g = [upload(w, A), upload(w, B), w.alloc(batch * m * n)];
      w.fill(g[2], NaN, batch * m * n); // every element must be overwritten, not accumulated
      cpu.matmul(c[0], c[1], c[2], spec);
      const before = w.splitLaunches;
      w.matmul(g[0], g[1], g[2], spec);
      expect(w.splitLaunches - before).toBe(matmulPlan(threads, batch, m, k, n).threads > 1 ? 1 : 0);
      expectClose(download(w, g[2]), download(cpu, c[2]), 1e-5, 1e-5 * Math.sqrt(k) * 4, 'matmul');
      c.forEach((b) => cpu.free(b));
      g.forEach((b) => w.free(b));
    });
  }

  it('strided programs above the thread split equal the compact-input run bit for bit', () => {
    // [600, 700] x 3 steps is past the split, so with 2 threads each job gathers its own rows.
    const prog = defineProgram(3, 1, ([x, y, z], [s]) => [x.exp().mul(s).add(y), z.gt(0).select(x, y.neg())]);
    const shape = [600, 700];
    const xt = NDArray.fromData(withSpecials(700 * 600, 1), [700, 600], w).transpose();
    const row = NDArray.fromData(withSpecials(700, 2), [700], w);
    const zf = NDArray.fromData(withSpecials(601 * 703, 3), [601, 703], w).get('1:', '703:2:-1').get(':', ':700');
    const outBase = NDArray.fromData(new Float32Array(600 * 1401).fill(7), [600, 1401], w);
    const other = NDArray.fromData(new Float32Array(600 * 1400).fill(7), [600, 1400], w);
    const outs = [outBase.get(':', '1::2'), other.get(':', '0:1400:2').flip(0)];
    const inputs = [xt, row, zf];
    elementwise(prog, inputs, [0.5], { out: outs });
    const compact = inputs.map((a) => a.broadcastTo(shape).compact());
    const expected = elementwise(prog, compact, [0.5]);
    for (let k = 0; k < 2; k++) {
      const got = outs[k].toArraySync();
      const want = expected[k].toArraySync();
      const bad = got.findIndex((v, i) => !Object.is(v, want[i]) && !(Number.isNaN(v) && Number.isNaN(want[i])));
      expect(bad, `output ${k} element ${bad}`).toBe(-1);
    }
    // The columns between the outputs' are untouched.
    expect(Array.from(outBase.get(':', '0::2').toArraySync()).every((v) => v === 7)).toBe(true);
    expect(Array.from(other.get(':', '1::2').toArraySync()).every((v) => v === 7)).toBe(true);
    [xt, row, zf, outBase, other, ...outs, ...compact, ...expected].forEach((a) => a.dispose());
  });

  it('matmul with k = 0 writes zeros', () => {
    const out = upload(w, new Float32Array(6).fill(3));
    const a = w.alloc(0);
    w.matmul(a, a, out, { batch: 1, m: 2, k: 0, n: 3, aBatchStride: 0, bBatchStride: 0, transA: false, transB: false });
    expect(Array.from(download(w, out))).toEqual([0, 0, 0, 0, 0, 0]);
    w.free(out); w.free(a);
  });
});
