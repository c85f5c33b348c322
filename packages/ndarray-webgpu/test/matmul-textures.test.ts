import { defineProgram, type Backend, type DeviceBuffer, type MatmulSpec } from '@needle/ndarray';
import { CpuBackend } from '@needle/ndarray-cpu';
import { afterAll, describe, expect, test } from 'vitest';
import { testBackend } from './gpu';
import { expectClose, randomArray } from './helpers';

// The matmul kernel reading A and B through texture mirrors of their buffers (taken on llvmpipe by
// large products only): forced on small shapes here, so the shaders stay small and fast to compile.
// It runs the same arithmetic in the same order as the storage-load kernel, so the two must agree
// bit for bit, and both with the CPU reference; so must both ways of binding the mirrors (sampled
// textures, read-only storage textures where the device allows them).
const gpu = await testBackend();
const cpu = new CpuBackend();
const relu = defineProgram(2, 0, ([y, b]) => y.add(b).maximum(0));

const spec = (m: number, k: number, n: number, o: Partial<MatmulSpec> = {}): MatmulSpec => ({ batch: 1, m, k, n, aBatchStride: 0, bBatchStride: 0, transA: false, transB: false, ...o });

describe.runIf(gpu)('webgpu matmul through texture mirrors', () => {
  const g = gpu!;
  const policy = g.matmulTextures;
  afterAll(() => {
    g.matmulTextures = policy;
  });

  test('the policy is on for llvmpipe and off elsewhere', () => {
    const info = g.device.adapterInfo;
    expect(policy !== null).toBe(/llvmpipe/i.test(`${info?.device ?? ''} ${info?.description ?? ''}`));
  });

  // The mirror kinds this device can bind (llvmpipe: both; its policy takes storage textures).
  const kinds = policy?.storage ? [false, true] : [false];
  /** Mirrors forced on for every product, bound as storage textures where the device allows it. */
  const forced = { minMacs: 0, minReuse: 0, storage: policy?.storage ?? false };

  test.runIf(policy !== null)('llvmpipe reads the mirrors as storage textures', () => {
    expect(policy!.storage).toBe(true);
  });

  const cases: { name: string; s: MatmulSpec; same?: boolean }[] = [
    { name: 'plain, mirrors with a partial last row', s: spec(20, 36, 40) },
    { name: 'transposed A, k % 4 != 0 (the remainder loop reads texels too; k > 16, past the small-k kernel)', s: spec(24, 19, 36, { transA: true }) },
    { name: 'transposed B', s: spec(12, 16, 44, { transB: true }) },
    { name: 'both transposed, batched with strides', s: spec(16, 12, 24, { batch: 3, transA: true, transB: true, aBatchStride: 200, bBatchStride: 300 }) },
    { name: 'offsets (A and B slices of bigger buffers, out at an offset)', s: spec(9, 8, 20, { aOffset: 4, bOffset: 260, outOffset: 12 }) },
    { name: 'A and B the same buffer (one mirror)', s: spec(20, 16, 20, { transB: true }), same: true },
    { name: 'A and B the same buffer, B past the end of A (the mirror reaches both)', s: spec(8, 12, 20, { bOffset: 400 }), same: true },
  ];

  test.each(cases)('$name', async ({ s, same }) => {
    const aSize = (s.aOffset ?? 0) + (s.batch - 1) * s.aBatchStride + s.m * s.k;
    const bSize = (s.bOffset ?? 0) + (s.batch - 1) * s.bBatchStride + s.k * s.n;
    const outSize = (s.outOffset ?? 0) + s.batch * s.m * s.n;
    const a = randomArray(same ? Math.max(aSize, bSize) : aSize, 11 + aSize, -2, 2);
    const b = same ? a : randomArray(bSize, 12 + bSize, -2, 2);
    const bias = randomArray(s.n, 13, -1, 1);
    const run = async (be: Backend, fused: boolean): Promise<{ out: Float32Array; copies: number }> => {
      const bufs = [a, ...(same ? [] : [b]), bias].map((d) => {
        const x = be.alloc(d.length);
        be.write(x, d);
        return x;
      });
      const [ab, bb] = same ? [bufs[0], bufs[0]] : bufs;
      const eb = bufs[bufs.length - 1];
      const out = be.alloc(outSize);
      be.fill(out, -7, outSize);
      const before = be === g ? g.stats().copies : 0;
      if (fused) be.matmulProgram!(ab, bb, out, s, { program: relu, inputs: [eb], scalars: [], layouts: [{ strides: [0, 0, 1], offset: 0 }] });
      else be.matmul(ab, bb, out, s);
      const copies = be === g ? g.stats().copies - before : 0;
      const r = await be.read(out);
      for (const x of [...bufs, out] as DeviceBuffer[]) be.free(x);
      return { out: r, copies };
    };
    for (const fused of [false, true]) {
      g.matmulTextures = null;
      const storage = await run(g, fused);
      const want = (await run(cpu, fused)).out;
      expect(storage.copies, 'copies without mirrors').toBe(0);
      for (const kind of kinds) {
        g.matmulTextures = { minMacs: 0, minReuse: 0, storage: kind };
        const tex = await run(g, fused);
        // One copy into each mirror (a single one when A and B are the same buffer); none without.
        expect(tex.copies, 'copies into texture mirrors').toBe(same ? 1 : 2);
        expect(Array.from(tex.out), `mirrors (storage textures: ${kind}) equal the storage-buffer path bit for bit`).toEqual(Array.from(storage.out));
        expectClose(tex.out, want, 2e-5, 2e-5, fused ? 'matmulProgram' : 'matmul');
      }
    }
  });

  // The narrow-output (n <= 16) and small-k (k <= 16, k % 4 != 0) kernels read storage-texture
  // mirrors too (policy.narrowMinMacs), with and without an epilogue.
  const narrowCases: { name: string; s: MatmulSpec }[] = [
    { name: 'narrow: 8 rows a lane', s: spec(128, 24, 10) },
    { name: 'narrow: transposed A, k % 4 != 0 (the remainder loop reads texels too)', s: spec(24, 13, 7, { transA: true }) },
    { name: 'narrow: transposed B, batched', s: spec(12, 16, 5, { transB: true, batch: 2, aBatchStride: 192, bBatchStride: 80 }) },
    { name: 'small k: B transposed (k = 10)', s: spec(20, 10, 40, { transB: true }) },
    { name: 'small k: A transposed (k = 6)', s: spec(16, 6, 36, { transA: true }) },
    { name: 'small k: odd k (k = 9), offsets', s: spec(8, 9, 32, { aOffset: 4, bOffset: 8, outOffset: 4 }) },
  ];
  test.runIf(policy?.storage === true).each(narrowCases)('$name', async ({ s }) => {
    const aSize = (s.aOffset ?? 0) + (s.batch - 1) * s.aBatchStride + s.m * s.k;
    const bSize = (s.bOffset ?? 0) + (s.batch - 1) * s.bBatchStride + s.k * s.n;
    const outSize = (s.outOffset ?? 0) + s.batch * s.m * s.n;
    const a = randomArray(aSize, 41 + aSize, -2, 2);
    const b = randomArray(bSize, 42 + bSize, -2, 2);
    const bias = randomArray(s.n, 43, -1, 1);
    const run = async (be: Backend, fused: boolean): Promise<{ out: Float32Array; copies: number }> => {
      const [ab, bb, eb] = [a, b, bias].map((d) => {
        const x = be.alloc(d.length);
        be.write(x, d);
        return x;
      });
      const out = be.alloc(outSize);
      be.fill(out, -7, outSize);
      const before = be === g ? g.stats().copies : 0;
      if (fused) be.matmulProgram!(ab, bb, out, s, { program: relu, inputs: [eb], scalars: [], layouts: [{ strides: [0, 0, 1], offset: 0 }] });
      else be.matmul(ab, bb, out, s);
      const copies = be === g ? g.stats().copies - before : 0;
      const r = await be.read(out);
      for (const x of [ab, bb, eb, out]) be.free(x);
      return { out: r, copies };
    };
    for (const fused of [false, true]) {
      g.matmulTextures = null;
      const storage = await run(g, fused);
      // The narrow kernels take mirrors from narrowMinMacs only (the big-product policy alone: none).
      g.matmulTextures = { ...forced, storage: true };
      expect((await run(g, fused)).copies, 'no narrowMinMacs: no mirrors').toBe(0);
      g.matmulTextures = { ...forced, storage: true, narrowMinMacs: 0 };
      const tex = await run(g, fused);
      expect(tex.copies, 'copies into texture mirrors').toBe(2);
      expect(Array.from(tex.out), 'mirrors equal the storage-buffer path bit for bit').toEqual(Array.from(storage.out));
      expectClose(tex.out, (await run(cpu, fused)).out, 2e-5, 2e-5, fused ? 'matmulProgram' : 'matmul');
    }
  });

  test.runIf(policy?.storage === true)('a mirror is found in either slot: B of one product is A of the next without a copy; a column reduce fetches a held mirror', async () => {
    g.matmulTextures = { ...forced, storage: true, narrowMinMacs: 0 };
    // y = x @ w (w is B: slot 1), then z = w @ v (w is A: slot 0, same shape), then the sums of
    // w's columns as a transposed view (the bias-gradient reduce) read w's mirror too.
    const x = randomArray(8 * 32, 51, -1, 1);
    const w = randomArray(32 * 32, 52, -1, 1);
    const v = randomArray(32 * 12, 53, -1, 1);
    const results: Float32Array[][] = [];
    const copies: number[][] = [];
    for (const be of [g, cpu] as Backend[]) {
      const [xb, wb, vb] = [x, w, v].map((d) => {
        const t = be.alloc(d.length);
        be.write(t, d);
        return t;
      });
      const [yb, zb, sb] = [8 * 32, 32 * 12, 32].map((n) => be.alloc(n));
      const counts: number[] = [];
      const count = (f: () => void) => {
        const before = be === g ? g.stats().copies : 0;
        f();
        counts.push(be === g ? g.stats().copies - before : 0);
      };
      count(() => be.matmul(xb, wb, yb, spec(8, 32, 32)));
      count(() => be.matmul(wb, vb, zb, spec(32, 32, 12)));
      count(() => be.reduce('sum', wb, sb, 32, 32, { shape: [32, 32], strides: [1, 32], offset: 0 }));
      results.push([await be.read(yb), await be.read(zb), await be.read(sb)]);
      copies.push(counts);
      for (const t of [xb, wb, vb, yb, zb, sb]) be.free(t);
    }
    expect(copies[0], 'copies per call').toEqual([2, 1, 0]);
    g.matmulTextures = null;
    const wb = g.alloc(w.length);
    const sb = g.alloc(32);
    g.write(wb, w);
    g.reduce('sum', wb, sb, 32, 32, { shape: [32, 32], strides: [1, 32], offset: 0 });
    expect(Array.from(results[0][2]), 'the reduce through the mirror equals the buffer path bit for bit').toEqual(Array.from(await g.read(sb)));
    g.free(wb);
    g.free(sb);
    results[0].forEach((r, i) => expectClose(r, results[1][i], 2e-5, 2e-5, ['x @ w', 'w @ v', 'column sums of w'][i]));
  });

  test('a mirror is refilled by later matmuls of the same batch', async () => {
    g.matmulTextures = forced;
    // 20 x 20: 100 texels, two mirror rows; the three products share the two mirrors of that height.
    const s = spec(20, 20, 20);
    const x = g.alloc(400);
    const y = g.alloc(400);
    const z = g.alloc(400);
    g.write(x, randomArray(400, 21, -1, 1));
    g.write(y, randomArray(400, 22, -1, 1));
    // z = x @ y, then y = z @ x, then z = y @ y: each copy into a mirror is ordered after the
    // dispatch that read the mirror's previous contents.
    g.matmul(x, y, z, s);
    g.matmul(z, x, y, s);
    g.matmul(y, y, z, s);
    const got = await g.read(z);
    const ref = async (): Promise<Float32Array> => {
      const [cx, cy, cz] = [cpu.alloc(400), cpu.alloc(400), cpu.alloc(400)];
      cpu.write(cx, randomArray(400, 21, -1, 1));
      cpu.write(cy, randomArray(400, 22, -1, 1));
      cpu.matmul(cx, cy, cz, s);
      cpu.matmul(cz, cx, cy, s);
      cpu.matmul(cy, cy, cz, s);
      const r = await cpu.read(cz);
      for (const b of [cx, cy, cz]) cpu.free(b);
      return r;
    };
    expectClose(got, await ref(), 1e-4, 1e-4, 'chained matmuls');
    for (const b of [x, y, z]) g.free(b);
  });

  test('an operand unchanged since its copy is not copied again; an upload, a dispatch or a copy into it is', async () => {
    g.matmulTextures = forced;
    // x (20 x 36) is A of x @ w and, as 36 x 20 transposed, of x^T @ y: both read the same mirror.
    const [sx, sw] = [spec(20, 36, 24), spec(36, 20, 24, { transA: true })];
    const data = { x: randomArray(720, 91, -1, 1), w: randomArray(864, 92, -1, 1), y: randomArray(480, 93, -1, 1) };
    const setup = (be: Backend) => {
      const [x, w, y, out, out2] = [be.alloc(720), be.alloc(864), be.alloc(480), be.alloc(480), be.alloc(864)];
      be.write(x, data.x);
      be.write(w, data.w);
      be.write(y, data.y);
      return { x, w, y, out, out2 };
    };
    const cb = setup(cpu);
    const gb = setup(g);
    const copies = () => g.stats().copies;
    const check = async (what: string, cpuOut: DeviceBuffer, gpuOut: DeviceBuffer) => expectClose(await g.read(gpuOut), await cpu.read(cpuOut), 2e-5, 2e-5, what);
    // Each step: the product on both backends, then the copies into mirrors it recorded.
    const step = (a: 'x' | 'out', b: 'w' | 'y', s: MatmulSpec, out: 'out' | 'out2') => {
      cpu.matmul(cb[a], cb[b], cb[out], s);
      const c0 = copies();
      g.matmul(gb[a], gb[b], gb[out], s);
      return copies() - c0;
    };
    expect(step('x', 'w', sx, 'out'), 'first product: both operands copied').toBe(2);
    expect(step('x', 'w', sx, 'out'), 'the same product again: nothing copied').toBe(0);
    await check('x @ w', cb.out, gb.out);
    expect(step('x', 'y', sw, 'out2'), 'x^T @ y: y copied, x not').toBe(1);
    await check('x^T @ y', cb.out2, gb.out2);
    // An upload into x (the same data: the count of writes decides, not the contents).
    g.write(gb.x, data.x);
    expect(step('x', 'w', sx, 'out'), 'after an upload into x').toBe(1);
    // A dispatch writing w (w = w @ ... is not a product shape here: fill it instead).
    g.fill(gb.w, 0.5, 864);
    cpu.fill(cb.w, 0.5, 864);
    expect(step('x', 'w', sx, 'out'), 'after a dispatch wrote w').toBe(1);
    await check('x @ filled w', cb.out, gb.out);
    // A copy into x (a contiguous view assigned from y's floats: a buffer-to-buffer copy).
    for (const be of [g, cpu] as Backend[]) {
      const bufs = be === g ? gb : cb;
      be.ewiseSetitem(bufs.y, bufs.x, { shape: [480], strides: [1], offset: 100 });
    }
    expect(step('x', 'w', sx, 'out'), 'after a copy into x').toBe(1);
    await check('x @ w after the copy', cb.out, gb.out);
    for (const be of [g, cpu] as Backend[]) for (const b of Object.values(be === g ? gb : cb)) be.free(b);
  });

  test('more mirror heights than the cache keeps: the oldest go, results stay right', async () => {
    // k = 64i: mirrors of 5i rows for A (20 x k) and B (k x 20), twenty heights for a cache of eight.
    const results: Float32Array[][] = [];
    for (const p of [forced, null]) {
      g.matmulTextures = p;
      const outs: Float32Array[] = [];
      for (let i = 1; i <= 10; i++) {
        const s = spec(20, 64 * i, 20);
        const a = g.alloc(20 * s.k);
        const b = g.alloc(20 * s.k);
        const c = g.alloc(400);
        g.write(a, randomArray(20 * s.k, 30 + i, -1, 1));
        g.write(b, randomArray(20 * s.k, 50 + i, -1, 1));
        g.matmul(a, b, c, s);
        outs.push(await g.read(c));
        for (const x of [a, b, c]) g.free(x);
      }
      results.push(outs);
    }
    results[0].forEach((r, i) => expect(Array.from(r), `k = ${64 * (i + 1)}`).toEqual(Array.from(results[1][i])));
  });

  test('operands past the texture height take wider mirror rows, or storage loads when even those are too short', async () => {
    // 128x784 @ 784x64 with at most 256 mirror rows: A (25088 texels) takes 128-texel rows, B
    // (12544) 64-texel rows; with at most 64 rows (and so at most 64-texel rows) A fits no mirror.
    const s = spec(128, 784, 64);
    const a = randomArray(128 * 784, 61, -1, 1);
    const b = randomArray(784 * 64, 62, -1, 1);
    const run = async (p: typeof policy): Promise<{ out: Float32Array; copies: number }> => {
      g.matmulTextures = p;
      const [ab, bb, out] = [g.alloc(a.length), g.alloc(b.length), g.alloc(128 * 64)];
      g.write(ab, a);
      g.write(bb, b);
      const before = g.stats().copies;
      g.matmul(ab, bb, out, s);
      const copies = g.stats().copies - before;
      const r = await g.read(out);
      for (const x of [ab, bb, out]) g.free(x);
      return { out: r, copies };
    };
    const wide = await run({ ...forced, maxRows: 256 });
    const tooShort = await run({ ...forced, maxRows: 64 });
    const storage = await run(null);
    expect([wide.copies, tooShort.copies, storage.copies], 'copies into mirrors').toEqual([2, 0, 0]);
    expect(Array.from(wide.out), 'wide mirrors equal the storage path bit for bit').toEqual(Array.from(storage.out));
    expect(Array.from(tooShort.out)).toEqual(Array.from(storage.out));
  });

  test('a byte cap below one mirror: every new mirror evicts the others but never the product\'s other operand', async () => {
    const results: Float32Array[][] = [];
    for (const p of [{ ...forced, mirrorBytes: 1 }, null]) {
      g.matmulTextures = p;
      const outs: Float32Array[] = [];
      const bufs: DeviceBuffer[] = [];
      // Products of three shapes recorded in one batch, then read: later mirrors evict earlier ones.
      for (const [i, k] of [[0, 32], [1, 96], [2, 32], [3, 160]]) {
        const a = g.alloc(20 * k);
        const b = g.alloc(k * 24);
        const c = g.alloc(20 * 24);
        g.write(a, randomArray(20 * k, 70 + i, -1, 1));
        g.write(b, randomArray(k * 24, 80 + i, -1, 1));
        g.matmul(a, b, c, spec(20, k, 24));
        bufs.push(a, b, c);
      }
      for (let i = 2; i < bufs.length; i += 3) outs.push(await g.read(bufs[i]));
      for (const x of bufs) g.free(x);
      results.push(outs);
    }
    results[0].forEach((r, i) => expect(Array.from(r), `product ${i}`).toEqual(Array.from(results[1][i])));
  });
});
