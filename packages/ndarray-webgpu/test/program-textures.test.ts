import { defineProgram, type Backend, type DeviceBuffer, type ElementwiseProgram, type ProgramLayouts } from '@needle/ndarray';
import { CpuBackend } from '@needle/ndarray-cpu';
import { afterAll, describe, expect, test } from 'vitest';
import { testBackend } from './gpu';
import { expectClose, randomArray } from './helpers';

// Elementwise programs reading their compact inputs through texture mirrors (taken on llvmpipe,
// where a storage-texture fetch is a gather and a storage-buffer load a loop over the lanes, by
// calls of at least 128k elements): forced on small sizes here. The kernel evaluates the same
// expressions on the same floats, so it must agree with the buffer kernel bit for bit.
const gpu = await testBackend();
const cpu = new CpuBackend();
const sgd = defineProgram(2, 1, ([p, g], [lr]) => p.sub(g.mul(lr)));
const mixed = defineProgram(4, 0, ([a, b, c, d]) => a.mul(b).add(c).sub(d.mul(a)));
const five = defineProgram(5, 0, ([a, b, c, d, e]) => a.add(b.mul(c)).sub(d.mul(e)));

describe.runIf(gpu)('webgpu elementwise programs through texture mirrors', () => {
  const g = gpu!;
  const policy = g.programTextures;
  const products = g.matmulTextures;
  afterAll(() => {
    g.programTextures = policy;
    g.matmulTextures = products;
  });
  const forced = { minElements: 0 };
  // Mirrors are read-only storage textures; a device without them never takes this path.
  const storage = g.matmulTextures?.storage === true;

  test('the policy is on for llvmpipe with storage-texture mirrors, off elsewhere', () => {
    const info = g.device.adapterInfo;
    const llvmpipe = /llvmpipe/i.test(`${info?.device ?? ''} ${info?.description ?? ''}`);
    expect(policy !== null).toBe(llvmpipe && storage);
  });

  interface Call { program: ElementwiseProgram; inputs: Float32Array[]; same?: [number, number][]; scalars: number[]; size: number; layouts?: ProgramLayouts; inPlace?: boolean }
  /** One call on `be`: returns its output and the copies it recorded (WebGPU only). */
  const run = async (be: Backend, c: Call): Promise<{ out: Float32Array; copies: number }> => {
    const bufs = c.inputs.map((d) => {
      const x = be.alloc(d.length);
      be.write(x, d);
      return x;
    });
    for (const [q, r] of c.same ?? []) bufs[q] = bufs[r];
    const out = c.inPlace ? bufs[0] : be.alloc(c.size);
    if (be === g) await g.sync();
    const before = be === g ? g.stats().copies : 0;
    be.elementwise!(c.program, bufs, c.scalars, [out], c.size, c.layouts);
    const copies = be === g ? g.stats().copies - before : 0;
    const r = await be.read(out, c.size);
    for (const x of new Set<DeviceBuffer>([...bufs, out])) be.free(x);
    return { out: r, copies };
  };

  const R = 6;
  const C = 100; // 600 elements: 150 texels, mirror rows of 64, the last one partial
  const cases: { name: string; c: Call; copies: number }[] = [
    { name: 'an in-place update (p = p - lr * g), partial last mirror row', c: { program: sgd, inputs: [randomArray(600, 1, -1, 1), randomArray(600, 2, -1, 1)], scalars: [0.1], size: 600, inPlace: true }, copies: 2 },
    { name: 'one buffer as two inputs (one mirror)', c: { program: sgd, inputs: [randomArray(520, 3, -1, 1), randomArray(520, 3, -1, 1)], same: [[1, 0]], scalars: [0.5], size: 520 }, copies: 1 },
    {
      // Only the compact inputs (a, d) are mirrored; b is a broadcast row and c a transposed view.
      name: 'compact inputs mirrored beside a broadcast row and a transposed view',
      c: {
        program: mixed,
        inputs: [randomArray(R * C, 4, -1, 1), randomArray(C, 5, -1, 1), randomArray(R * C, 6, -1, 1), randomArray(R * C, 7, -1, 1)],
        scalars: [],
        size: R * C,
        layouts: { shape: [R, C], inputs: [undefined, { strides: [0, 1], offset: 0 }, { strides: [1, R], offset: 0 }, undefined], outputs: [] },
      },
      copies: 2,
    },
    { name: 'five compact inputs: four mirrored (the storage textures a stage allows), one read from its buffer', c: { program: five, inputs: [1, 2, 3, 4, 5].map((s) => randomArray(400, 10 + s, -1, 1)), scalars: [], size: 400 }, copies: 4 },
  ];

  test.runIf(storage).each(cases)('$name', async ({ c, copies }) => {
    g.programTextures = null;
    const plain = await run(g, c);
    expect(plain.copies, 'no copies without mirrors').toBe(0);
    g.programTextures = forced;
    const tex = await run(g, c);
    expect(tex.copies, 'copies into mirrors').toBe(copies);
    expect(Array.from(tex.out), 'mirrors equal the buffer kernel bit for bit').toEqual(Array.from(plain.out));
    expectClose(tex.out, (await run(cpu, c)).out, 1e-6, 1e-6, 'against the CPU reference');
  });

  test.runIf(storage)('sizes the policy leaves to buffers: below minElements, or not a multiple of 4', async () => {
    g.programTextures = { minElements: 1000 };
    expect((await run(g, { program: sgd, inputs: [randomArray(600, 1, -1, 1), randomArray(600, 2, -1, 1)], scalars: [0.1], size: 600 })).copies).toBe(0);
    g.programTextures = forced;
    expect((await run(g, { program: sgd, inputs: [randomArray(602, 1, -1, 1), randomArray(602, 2, -1, 1)], scalars: [0.1], size: 602 })).copies).toBe(0);
  });

  test.runIf(storage)('a mirror is reused while its buffer is unchanged: a product\'s mirror of a weight, then the weight\'s update', async () => {
    g.programTextures = forced;
    g.matmulTextures = { minMacs: 0, minReuse: 0, storage: true };
    const x = randomArray(8 * 24, 21, -1, 1);
    const w = randomArray(24 * 40, 22, -1, 1);
    const grad = randomArray(24 * 40, 23, -1, 1);
    const spec = { batch: 1, m: 8, k: 24, n: 40, aBatchStride: 0, bBatchStride: 0, transA: false, transB: false };
    const results: Float32Array[][] = [];
    const copies: number[][] = [];
    for (const be of [g, cpu] as Backend[]) {
      const [xb, wb, gb, yb] = [x, w, grad, null].map((d) => {
        const b = be.alloc(d ? d.length : 8 * 40);
        if (d) be.write(b, d);
        return b;
      });
      const counts: number[] = [];
      const count = (f: () => void) => {
        const before = be === g ? g.stats().copies : 0;
        f();
        counts.push(be === g ? g.stats().copies - before : 0);
      };
      if (be === g) await g.sync();
      // The product mirrors x and w; w's update finds w's mirror and copies only the gradient;
      // a second update copies w again (the first wrote it) but not the gradient.
      count(() => be.matmul(xb, wb, yb, spec));
      count(() => be.elementwise!(sgd, [wb, gb], [0.25], [wb], 24 * 40));
      count(() => be.elementwise!(sgd, [wb, gb], [0.25], [wb], 24 * 40));
      // An upload into the gradient (a staged copy: the open batch reads it) makes the next update copy it again.
      count(() => be.write(gb, w));
      count(() => be.elementwise!(sgd, [wb, gb], [0.25], [wb], 24 * 40));
      results.push([await be.read(yb), await be.read(wb)]);
      copies.push(counts);
      for (const b of [xb, wb, gb, yb]) be.free(b);
    }
    expect(copies[0], 'copies per call').toEqual([2, 1, 1, 1, 2]);
    results[0].forEach((r, i) => expectClose(r, results[1][i], 1e-5, 1e-5, ['product', 'updated weight'][i]));
  });

  test.runIf(storage)('below minElements a program still fetches an input whose mirror a product holds (no copy); the others load from buffers', async () => {
    g.programTextures = { minElements: 2 ** 30 };
    g.matmulTextures = { minMacs: 0, minReuse: 0, storage: true };
    const x = randomArray(8 * 24, 31, -1, 1);
    const w = randomArray(24 * 40, 32, -1, 1);
    const d = randomArray(24 * 40, 33, -1, 1);
    const spec = { batch: 1, m: 8, k: 24, n: 40, aBatchStride: 0, bBatchStride: 0, transA: false, transB: false };
    const outs: Float32Array[] = [];
    for (const be of [g, cpu] as Backend[]) {
      const [xb, wb, db, yb, ob] = [x, w, d, null, null].map((v, i) => {
        const b = be.alloc(v ? v.length : i === 3 ? 8 * 40 : 24 * 40);
        if (v) be.write(b, v);
        return b;
      });
      if (be === g) await g.sync();
      be.matmul(xb, wb, yb, spec);
      const before = be === g ? g.stats().copies : 0;
      be.elementwise!(sgd, [db, wb], [0.5], [ob], 24 * 40);
      if (be === g) expect(g.stats().copies - before, 'copies for the program').toBe(0);
      outs.push(await be.read(ob));
      for (const b of [xb, wb, db, yb, ob]) be.free(b);
    }
    g.programTextures = null;
    const plain = await run(g, { program: sgd, inputs: [d, w], scalars: [0.5], size: 24 * 40 });
    expect(Array.from(outs[0]), 'equals the buffer kernel bit for bit').toEqual(Array.from(plain.out));
    expectClose(outs[0], outs[1], 1e-6, 1e-6, 'against the CPU reference');
  });

  test.runIf(storage)('program mirrors past the byte cap: older ones go, results stay right, nothing leaks', async () => {
    const live = g.memory().buffers;
    const results: Float32Array[][] = [];
    for (const p of [{ minElements: 0, mirrorBytes: 1 }, null]) {
      g.programTextures = p;
      const bufs: DeviceBuffer[] = [];
      const outs: DeviceBuffer[] = [];
      // Calls of four sizes (four mirror shapes) recorded in one batch, then read.
      for (const [i, n] of [[0, 256], [1, 1024], [2, 256], [3, 2048]]) {
        const a = g.alloc(n);
        const b = g.alloc(n);
        const o = g.alloc(n);
        g.write(a, randomArray(n, 90 + i, -1, 1));
        g.write(b, randomArray(n, 95 + i, -1, 1));
        g.elementwise!(sgd, [a, b], [0.5], [o], n);
        bufs.push(a, b, o);
        outs.push(o);
      }
      const r: Float32Array[] = [];
      for (const o of outs) r.push(await g.read(o));
      for (const x of bufs) g.free(x);
      results.push(r);
    }
    results[0].forEach((r, i) => expect(Array.from(r), `call ${i}`).toEqual(Array.from(results[1][i])));
    expect(g.memory().buffers).toBe(live);
  });
});
