import { afterEach, describe, expect, it } from 'vitest';
import { canReadSync, initBackend, NDArray } from '@needle/ndarray';
import { createWasmBackend, registerWasmBackend, threadsSupported, type WasmBackend } from '../src';
import { FreeListAllocator } from '../src/allocator';
import { download, randomFloats, upload } from './helpers';

const MiB = 1024 * 1024;

describe('FreeListAllocator', () => {
  it('reuses freed blocks, merges neighbours and lowers the top', () => {
    const heap = new FreeListAllocator(1024, 64);
    const a = heap.allocate(64);
    const b = heap.allocate(128);
    const c = heap.allocate(64);
    expect([a, b, c]).toEqual([1024, 1088, 1216]);
    expect(heap.top).toBe(1280);
    heap.release(b, 128);
    expect(heap.freeBlocks).toBe(1);
    // Best fit: a 64-byte request takes the front of the 128-byte hole, not the top.
    expect(heap.allocate(64)).toBe(1088);
    heap.release(1088, 64);
    heap.release(a, 64);
    expect(heap.freeBlocks).toBe(1); // a and b merged into [1024, 1216)
    heap.release(c, 64);
    expect(heap.freeBlocks).toBe(0);
    expect(heap.top).toBe(1024);
  });

  it('rounds sizes to the alignment, never to zero', () => {
    const heap = new FreeListAllocator(0, 64);
    expect(heap.blockSize(0)).toBe(64);
    expect(heap.blockSize(65)).toBe(128);
  });
});

describe('WASM heap', () => {
  let backend: WasmBackend | undefined;
  afterEach(() => backend?.destroy());

  it('counts live buffers and bytes, and frees them', async () => {
    backend = await createWasmBackend();
    expect(backend.memory()).toEqual({ buffers: 0, bytes: 0 });
    const a = backend.alloc(10);
    const b = backend.alloc(0);
    expect(backend.memory()).toEqual({ buffers: 2, bytes: 40 });
    backend.free(a);
    backend.free(b);
    expect(backend.memory()).toEqual({ buffers: 0, bytes: 0 });
  });

  it('hands a freed block to the next allocation of that size', async () => {
    backend = await createWasmBackend();
    const a = backend.alloc(1000);
    const top = backend.heapInfo().topBytes;
    backend.free(a);
    const b = backend.alloc(1000);
    expect(backend.heapInfo().topBytes).toBe(top);
    backend.free(b);
  });

  for (const threads of [1, 2]) {
    it(`grows the memory and keeps earlier data (${threads} thread(s))`, async () => {
      backend = await createWasmBackend({ threads, initialMemoryMiB: 2 });
      const before = backend.heapInfo().memoryBytes;
      const small = upload(backend, randomFloats(100, 1));
      // Both larger than the initial memory: forces at least one grow.
      const big1 = backend.alloc(3 * MiB);
      const big2 = backend.alloc(2 * MiB);
      expect(backend.heapInfo().memoryBytes).toBeGreaterThan(before);
      backend.fill(big2, 1.5, 2 * MiB);
      expect(Array.from(download(backend, small))).toEqual(Array.from(randomFloats(100, 1)));
      const tail = download(backend, big2).subarray(2 * MiB - 3);
      expect(Array.from(tail)).toEqual([1.5, 1.5, 1.5]);
      // Kernels (threaded ones too) see the grown memory.
      backend.scalar('mul', big2, 2, big1, 2 * MiB);
      expect(download(backend, big1, 2 * MiB)[2 * MiB - 1]).toBe(3);
      backend.free(small); backend.free(big1); backend.free(big2);
      expect(backend.memory()).toEqual({ buffers: 0, bytes: 0 });
    });
  }

  it('reports running out of its maximum with the op and sizes', async () => {
    backend = await createWasmBackend({ initialMemoryMiB: 1, maxMemoryMiB: 4 });
    expect(() => backend!.alloc(2 * MiB)).toThrow(/wasm\.alloc: out of memory: 8388608 bytes requested.*maximum 4194304/);
    expect(backend.memory()).toEqual({ buffers: 0, bytes: 0 });
    // The failed request left nothing behind: a fitting one still succeeds.
    backend.free(backend.alloc(MiB / 2));
  });

  it('does not leak over a long loop of NDArray work', async () => {
    backend = await createWasmBackend({ threads: 2 });
    const w = backend;
    const x = NDArray.fromData(randomFloats(64 * 48, 3), [64, 48], w);
    const step = () => {
      // Transposed matmul, a broadcast op, a reduction over a permuted axis and a read: every
      // kind of temporary the frontend makes.
      const t = x.transpose();
      const y = x.matmul(t);
      const z = y.maximum(0);
      const s = z.sum(0);
      const r = s.toArraySync();
      for (const a of [t, y, z, s]) a.dispose();
      return r;
    };
    step();
    const after1 = w.memory();
    const heap1 = w.heapInfo();
    for (let i = 0; i < 300; i++) step();
    expect(w.memory()).toEqual(after1);
    expect(w.heapInfo().topBytes).toBe(heap1.topBytes);
    expect(w.heapInfo().memoryBytes).toBe(heap1.memoryBytes);
    x.dispose();
    expect(w.memory()).toEqual({ buffers: 0, bytes: 0 });
  });
});

describe('errors and lifecycle', () => {
  it('names the op and what was expected', async () => {
    const w = await createWasmBackend();
    const other = await createWasmBackend();
    const a = w.alloc(4);
    const b = w.alloc(8);
    expect(() => w.ewise('add', a, b, b, 8)).toThrow('wasm.ewise(add): a holds 4 elements, expected at least 8');
    expect(() => w.free(other.alloc(1))).toThrow('wasm.free: buffer belongs to another backend');
    expect(() => w.write(a, new Float32Array(5))).toThrow('wasm.write: 5 elements at offset 0 do not fit a buffer of 4');
    expect(() => w.compact(b, a, { shape: [2, 3], strides: [3, 1], offset: 4 })).toThrow(/wasm\.compact: view .* reaches elements 4\.\.9, outside a buffer of 8/);
    expect(() => w.matmul(a, b, b, { batch: 1, m: 2, k: 3, n: 2, aBatchStride: 0, bBatchStride: 0, transA: false, transB: false }))
      .toThrow('wasm.matmul: a holds 4 elements, expected at least 6 for batch 1 of 2x3, batch stride 0');
    expect(() => w.alloc(-1)).toThrow('wasm.alloc: size must be a non-negative integer, got -1');
    w.free(a);
    expect(() => w.free(a)).toThrow('wasm.free: buffer was already freed');
    expect(() => w.readSync!(a)).toThrow('wasm.readSync: buffer was already freed');
    await expect(w.read(a)).rejects.toThrow('wasm.read: buffer was already freed');
    const late = w.alloc(3);
    w.destroy();
    other.destroy();
    expect(() => w.alloc(1)).toThrow('wasm.alloc: the backend was destroyed');
    expect(() => w.fill(late, 0, 3)).toThrow('wasm.fill: the backend was destroyed');
    // Freeing after destroy is quiet (NDArray's finalizers may do it) and still counted.
    w.free(late);
    w.free(b);
    expect(w.memory()).toEqual({ buffers: 0, bytes: 0 });
    await expect(createWasmBackend({ threads: 0 })).rejects.toThrow('createWasmBackend: threads must be a positive integer, got 0');
  });

  it('runs a threaded kernel right after creation, and destroy stops the workers', async () => {
    // The first job can be published the instant the workers report ready: they must not miss it.
    for (let round = 0; round < 5; round++) {
      const w = await createWasmBackend({ threads: 2 });
      const a = upload(w, new Float32Array(1 << 16).fill(1));
      w.unary('exp', a, a, 1 << 16);
      const r = download(w, a);
      expect(r[0]).toBe(Math.fround(Math.E));
      expect(r[(1 << 16) - 1]).toBe(Math.fround(Math.E));
      w.destroy();
      w.destroy(); // idempotent
    }
  });

  it('falls back to one thread where SharedArrayBuffer is missing', async () => {
    const g = globalThis as { SharedArrayBuffer?: unknown };
    const saved = g.SharedArrayBuffer;
    delete g.SharedArrayBuffer;
    try {
      expect(threadsSupported()).toBe(false);
      const w = await createWasmBackend({ threads: 2 });
      expect(w.threads).toBe(1);
      const a = upload(w, Float32Array.from([1, 2, 3, 4, 5]));
      w.scalar('mul', a, 3, a, 5);
      expect(Array.from(download(w, a))).toEqual([3, 6, 9, 12, 15]);
      w.destroy();
    } finally {
      g.SharedArrayBuffer = saved;
    }
    expect(threadsSupported()).toBe(true);
  });

  it('reads asynchronously and synchronously', async () => {
    const w = await createWasmBackend();
    const a = upload(w, Float32Array.from([1, 2, 3]));
    expect(Array.from(await w.read(a))).toEqual([1, 2, 3]);
    expect(Array.from(await w.read(a, 2))).toEqual([1, 2]);
    expect(Array.from(w.readSync!(a, 1))).toEqual([1]);
    w.destroy();
  });

  it('can hide readSync, reading like WebGPU', async () => {
    const w = await createWasmBackend({ readSync: false });
    expect(canReadSync(w)).toBe(false);
    const x = NDArray.fromData(Float32Array.from([1, 2, 3]), [3], w);
    expect(Array.from(await x.toArray())).toEqual([1, 2, 3]);
    expect(() => x.toArraySync()).toThrow(/cannot read synchronously/);
    x.dispose();
    w.destroy();
  });

  it('registers an async factory under wasm', async () => {
    const name = registerWasmBackend({ name: 'wasm-test', threads: 2 });
    const backend = (await initBackend(name)) as WasmBackend;
    expect(backend.name).toBe('wasm-test');
    expect(backend.threads).toBe(2);
    const x = NDArray.fromData(Float32Array.from([1, 2, 3, 4]), [2, 2], backend);
    const y = x.matmul(x);
    expect(y.toNestedSync()).toEqual([[7, 10], [15, 22]]);
    x.dispose();
    y.dispose();
    backend.destroy();
  });
});
