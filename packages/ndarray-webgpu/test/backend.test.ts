import { array, defineProgram, elementwise, type NDArray } from '@needle/ndarray';
import { CpuBackend } from '@needle/ndarray-cpu';
import { describe, expect, test } from 'vitest';
import { nodeGPU } from '../src/node';
import { createWebGPUBackend } from '../src/index';
import { testBackend } from './gpu';

const gpu = await testBackend();

describe.runIf(gpu)('WebGPU backend behaviour', () => {
  const g = gpu!;

  test('has no readSync, so toArraySync fails clearly', async () => {
    expect('readSync' in g).toBe(false);
    const a = array([1, 2, 3], { backend: g });
    expect(() => a.toArraySync()).toThrow(/sync/i);
    expect([...(await a.toArray())]).toEqual([1, 2, 3]);
    a.dispose();
  });

  test('a buffer freed while a kernel that reads it is pending can be reused at once', async () => {
    const a = g.alloc(6);
    g.write(a, Float32Array.from([1, 2, 3, 4, 5, 6]));
    const out = g.alloc(6);
    g.unary('neg', a, out, 6);
    g.free(a);
    const b = g.alloc(6); // the pool hands back a's GPU buffer
    g.write(b, Float32Array.from([9, 9, 9, 9, 9, 9]));
    g.scalar('mul', b, 2, b, 6);
    expect([...(await g.read(out))]).toEqual([-1, -2, -3, -4, -5, -6]);
    expect([...(await g.read(b))]).toEqual([18, 18, 18, 18, 18, 18]);
    g.free(out);
    g.free(b);
  });

  test('writes are ordered with the kernels recorded before them', async () => {
    const a = g.alloc(5);
    const o1 = g.alloc(5);
    const o2 = g.alloc(5);
    g.write(a, Float32Array.from([1, 2, 3, 4, 5]));
    g.scalar('add', a, 1, o1, 5);
    const submits = g.stats().submits;
    // Into a buffer the open batch reads: staged and copied in order, without submitting the batch.
    g.write(a, Float32Array.from([10, 20, 30, 40, 50]), 0);
    g.write(a, Float32Array.from([7]), 4);
    expect(g.stats().submits, 'no submit for a write into a buffer of the open batch').toBe(submits);
    g.ewise('add', a, o1, o2, 5);
    expect([...(await g.read(o2))]).toEqual([12, 23, 34, 45, 13]);
    expect([...(await g.read(o2, 2))]).toEqual([12, 23]);
    for (const b of [a, o1, o2]) g.free(b);
  });

  test('memory(): live buffers and bytes; the pool reuses GPU buffers', async () => {
    const m0 = g.memory();
    const bufs = [g.alloc(10), g.alloc(1000), g.alloc(0)];
    expect(g.memory()).toEqual({ buffers: m0.buffers + 3, bytes: m0.bytes + 4040 });
    for (const b of bufs) g.free(b);
    expect(g.memory()).toEqual(m0);
    const total = g.poolMemory().totalBytes;
    for (let i = 0; i < 20; i++) {
      const b = g.alloc(1000);
      g.fill(b, i, 1000);
      g.free(b);
    }
    expect(g.poolMemory().totalBytes).toBe(total);
    await g.sync();
  });

  test('one pipeline per kernel shape, whatever the scalar; many dispatches per submit', async () => {
    const a = g.alloc(64);
    g.fill(a, 1, 64);
    await g.sync();
    const s0 = g.stats();
    for (let i = 0; i < 50; i++) g.scalar('mul', a, 1 + i / 100, a, 64);
    const r = await g.read(a);
    const s1 = g.stats();
    expect(s1.pipelines - s0.pipelines).toBeLessThanOrEqual(1);
    expect(s1.dispatches - s0.dispatches).toBe(50);
    expect(s1.submits - s0.submits).toBe(1);
    let expected = 1;
    for (let i = 0; i < 50; i++) expected = Math.fround(expected * Math.fround(1 + i / 100));
    expect(r[63]).toBeCloseTo(expected, 2);
    g.free(a);
  });

  test('strided elementwise programs: one pipeline for every layout of a rank and access kind, layouts as data', async () => {
    const p = defineProgram(2, 1, ([x, y], [s]) => x.mul(s).add(y));
    const base = array(Array.from({ length: 48 }, (_, i) => i), { backend: g }).reshape([6, 8]);
    const run = (x: NDArray, y: NDArray) => elementwise(p, [x, y], [2])[0];
    // Warm up the rank-2 kernel with both inputs strided, four elements per invocation (a last axis
    // of 4): x by four scalar loads (stride 2), y by one vec4 (contiguous, aligned).
    const first = run(base.get('0:3', '0:8:2'), base.get('3:6', '0:4'));
    expect(await first.toNested()).toEqual([[24, 29, 34, 39], [48, 53, 58, 63], [72, 77, 82, 87]]);
    let s0 = g.stats();
    // Other strides and offsets read the same ways: the same pipeline, different uniform words.
    const views = [[base.get('1:6:2', '7:0:-2'), base.get('0:3', '4:8')], [base.get('3:', '1:5').transpose().get(':3'), base.get(':3', '0:3')], [base.get('0:3', '1:4'), base.get('2:5', '0:6:2')]] as const;
    const a = run(...views[0]);
    expect(g.stats().pipelines).toBe(s0.pipelines);
    // x = 8r + c of the base; the expected values follow from the views' index arithmetic.
    expect(await a.toNested()).toEqual([0, 1, 2].map((i) => [0, 1, 2, 3].map((j) => 2 * (8 * (1 + 2 * i) + 7 - 2 * j) + 8 * i + 4 + j)));
    // A last axis of 3: one element per invocation, one more pipeline for every such layout.
    const b = run(...views[1]);
    s0 = g.stats();
    const c = run(...views[2]);
    expect(g.stats().pipelines).toBe(s0.pipelines);
    expect(await b.toNested()).toEqual([0, 1, 2].map((i) => [0, 1, 2].map((j) => 2 * (8 * (3 + j) + 1 + i) + 8 * i + j)));
    expect(await c.toNested()).toEqual([0, 1, 2].map((i) => [0, 1, 2].map((j) => 24 * i + 4 * j + 18)));
    [base, first, a, b, c, ...views.flat()].forEach((t) => t.dispose());
  });

  test('launches beyond 65535 workgroups fold into a 2-D grid', async () => {
    const n = 65536 * g.limits.workgroupSize + 3; // odd: the scalar (one element per invocation) path
    const a = g.alloc(n);
    g.fill(a, 0, n);
    const stride = Math.floor((n - 2) / 2);
    g.scalarSetitem(5, a, { shape: [3], strides: [stride], offset: 1 });
    g.scalar('add', a, 1, a, n);
    const r = await g.read(a);
    expect(r[0]).toBe(1);
    expect(r[n - 1]).toBe(1);
    expect(r[1]).toBe(6);
    expect(r[1 + stride]).toBe(6);
    expect(r[1 + 2 * stride]).toBe(6);
    expect(r.reduce((s, x) => s + x, 0)).toBe(n + 15);
    g.free(a);
  });

  test('bad arguments throw errors naming the op', () => {
    const cpuBuf = new CpuBackend().alloc(4);
    const a = g.alloc(4);
    expect(() => g.unary('exp', cpuBuf, a, 4)).toThrow(/webgpu\.unary\(exp\).*another backend/);
    expect(() => g.ewise('add', a, a, a, 5)).toThrow(/webgpu\.ewise\(add\).*holds 4 elements, the kernel needs 5/);
    expect(() => g.write(a, new Float32Array(5))).toThrow(/webgpu\.write/);
    expect(() => g.compact(a, a, { shape: [3], strides: [2], offset: 0 })).toThrow(/webgpu\.compact.*reaches elements 0\.\.4/);
    expect(() => g.matmul(a, a, a, { batch: 1, m: 2, k: 3, n: 2, aBatchStride: 0, bBatchStride: 0, transA: false, transB: false }))
      .toThrow(/webgpu\.matmul.*needs 6/);
    expect(() => g.alloc(g.limits.maxBufferBytes)).toThrow(/webgpu\.alloc.*largest bindable buffer/);
    g.free(a);
    expect(() => g.fill(a, 0, 1)).toThrow(/already freed/);
  });

  test('a validation error surfaces at the next call, then the backend carries on', async () => {
    const a = g.alloc(4);
    g.fill(a, 3, 4); // opens a batch, whose error scope catches the bad call below
    g.device.createBuffer({ size: 4, usage: 0x1 | 0x80 }); // MAP_READ | STORAGE is invalid
    await expect(g.sync()).rejects.toThrow(/webgpu: the device reported a GPUValidationError/);
    expect([...(await g.read(a))]).toEqual([3, 3, 3, 3]);
    g.free(a);
  });

  test('device loss is reported by every later call', async () => {
    const own = await createWebGPUBackend({ gpu: await nodeGPU() });
    const a = own.alloc(4);
    own.device.destroy();
    await own.device.lost;
    expect(() => own.fill(a, 1, 4)).toThrow(/device was lost/);
    await expect(own.read(a)).rejects.toThrow(/device was lost/);
    own.destroy();
    expect(() => own.alloc(1)).toThrow(/destroyed/);
  });

  test('NDArray views, matmul of a transposed view and reductions run on it end to end', async () => {
    const x = array([[1, -2, 3], [4, 5, -6]], { backend: g });
    const xt = x.transpose();
    const gram = xt.matmul(x); // [[17, 18, -21], [18, 29, -36], [-21, -36, 45]]
    const rows = gram.sum(1);
    const flipped = x.flip(1).compact();
    expect([...(await rows.toArray())]).toEqual([14, 11, -12]);
    expect([...(await flipped.toArray())]).toEqual([3, -2, 1, -6, 5, 4]);
    for (const t of [x, xt, gram, rows, flipped]) t.dispose();
  });
});
