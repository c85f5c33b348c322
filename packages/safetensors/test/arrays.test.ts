// NDArray save/load: bit-exact round trips, views, backends, sources (Blob, File, Response), OPFS,
// Node files, and no leaks.
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { NDArray, arange, array, type Backend } from '@needle/ndarray';
import { createCpuBackend } from '@needle/ndarray-cpu';
import { createWasmBackend } from '@needle/ndarray-wasm';
import { load, readFromOPFS, removeFromOPFS, save, toBlob, writeToOPFS } from '../src/index';
import { loadFile, saveFile } from '../src/node';
import { backend, bitsOf, expectThrowsMessage, fromBits, headerText, liveBuffers, makeFile } from './helpers';

// -0, the smallest subnormal, a subnormal, Infinity, -Infinity, the canonical NaN, a NaN with a
// payload, a negative NaN, the largest float32.
const SPECIAL_BITS = [0x80000000, 0x00000001, 0x00400000, 0x7f800000, 0xff800000, 0x7fc00000, 0x7fc12345, 0xffc00001, 0x7f7fffff];

describe('save and load NDArrays', () => {
  it('round trips are bit-exact, shapes included (scalars and empty arrays too)', async () => {
    const before = liveBuffers();
    const arrays = {
      special: fromBits(SPECIAL_BITS, [3, 3]),
      scalar: array(-0.125),
      empty: NDArray.fromData(new Float32Array(0), [2, 0, 5]),
      big: NDArray.fromData(Float32Array.from({ length: 1000 }, (_, i) => Math.sin(i)), [10, 10, 10]),
    };
    const bytes = await save(arrays, { note: 'hi' });
    const { tensors, metadata } = await load(bytes);
    expect(metadata).toEqual({ note: 'hi' });
    for (const [name, a] of Object.entries(arrays)) {
      expect([...tensors[name].shape]).toEqual([...a.shape]);
      expect(await bitsOf(tensors[name]), name).toEqual(await bitsOf(a));
    }
    expect(tensors.scalar.shape).toEqual([]);
    for (const a of [...Object.values(arrays), ...Object.values(tensors)]) a.dispose();
    expect(liveBuffers()).toBe(before);
  });

  it('views (transposed, sliced, broadcast) are saved as their row-major values', async () => {
    const base = arange(6).reshape([2, 3]);
    const t = base.transpose();
    const s = base.get(':', '::2');
    const b = array([1, 2]).reshape([2, 1]).broadcastTo([2, 3]);
    const { tensors } = await load(await save({ t, s, b }));
    expect(await tensors.t.toNested()).toEqual([[0, 3], [1, 4], [2, 5]]);
    expect(await tensors.s.toNested()).toEqual([[0, 2], [3, 5]]);
    expect(await tensors.b.toNested()).toEqual([[1, 1, 1], [2, 2, 2]]);
    for (const a of [base, t, s, b, ...Object.values(tensors)]) a.dispose();
  });

  it('objects wrapping an NDArray as .data (autograd Tensors) save as that array; nothing saved is disposed', async () => {
    const w = array([[1, 2], [3, 4]]);
    const bytes = await save(new Map([['layer.weight', { data: w }]]));
    expect(w.disposed).toBe(false);
    expect(headerText(bytes).trim()).toBe('{"layer.weight":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]}}');
    const { tensors } = await load(bytes);
    expect(await tensors['layer.weight'].toNested()).toEqual([[1, 2], [3, 4]]);
    tensors['layer.weight'].dispose();
    w.dispose();
  });

  it('loads onto the backend asked for, by instance or name, and moves arrays between backends bit-exactly', async () => {
    const wasm = await createWasmBackend({ readSync: false });
    const other = createCpuBackend({ name: 'cpu-safetensors-other', readSync: false });
    const onWasm = fromBits(SPECIAL_BITS, [9]);
    const source = await onWasm.to(wasm);
    onWasm.dispose();
    const bytes = await save({ x: source });
    for (const target of [other, wasm, backend] as Backend[]) {
      const { tensors } = await load(bytes, { backend: target });
      expect(tensors.x.backend).toBe(target);
      expect(await bitsOf(tensors.x)).toEqual(SPECIAL_BITS);
      tensors.x.dispose();
    }
    source.dispose();
    expect(wasm.memory().buffers).toBe(0);
    expect(other.memory().buffers).toBe(0);
  });

  it('unaligned data (an odd byte offset, or an F32 tensor after a U8 one) is copied, not misread', async () => {
    const x = fromBits(SPECIAL_BITS, [9]);
    const bytes = await save({ x });
    x.dispose();
    const shifted = new Uint8Array(bytes.length + 1);
    shifted.set(bytes, 1);
    const { tensors } = await load(shifted.subarray(1));
    expect(await bitsOf(tensors.x)).toEqual(SPECIAL_BITS);
    tensors.x.dispose();
    // Not what the reference writer makes (it puts wide dtypes first), but a valid file.
    const data = new Uint8Array([7, 0, 0, 0xc0, 0x3f, 0, 0, 0, 0x40, 0, 0x3c]);
    const file = makeFile({
      a: { dtype: 'U8', shape: [1], data_offsets: [0, 1] },
      b: { dtype: 'F32', shape: [2], data_offsets: [1, 9] },
      c: { dtype: 'F16', shape: [1], data_offsets: [9, 11] },
    }, data);
    const mixed = await load(file);
    expect(Array.from(await mixed.tensors.a.toArray())).toEqual([7]);
    expect(Array.from(await mixed.tensors.b.toArray())).toEqual([1.5, 2]);
    expect(Array.from(await mixed.tensors.c.toArray())).toEqual([1]);
    for (const a of Object.values(mixed.tensors)) a.dispose();
  });

  it('an unpadded header loads (readers must not require the padding), and __proto__ is an ordinary name', async () => {
    const text = '{"__proto__":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}';
    const file = makeFile(text, new Uint8Array([0, 0, 0x80, 0x3f]), { pad: false });
    expect(new DataView(file.buffer).getUint32(0, true) % 8).not.toBe(0);
    const { tensors } = await load(file);
    expect(Object.keys(tensors)).toEqual(['__proto__']);
    expect(Object.getPrototypeOf(tensors)).toBe(Object.prototype);
    expect(Array.from(await tensors['__proto__'].toArray())).toEqual([1]);
    tensors['__proto__'].dispose();
  });

  it('an allocation failing midway disposes the arrays already made', async () => {
    const cpu = createCpuBackend({ name: 'cpu-safetensors-failing', readSync: false });
    let allocations = 0;
    const failing = new Proxy(cpu, {
      get(target, prop) {
        if (prop === 'alloc') return (size: number) => { if (++allocations === 3) throw new Error('out of memory'); return target.alloc(size); };
        const v = Reflect.get(target, prop);
        return typeof v === 'function' ? v.bind(target) : v;
      },
    });
    const a = array([1]);
    const bytes = await save({ a, b: a, c: a, d: a });
    a.dispose();
    await expectThrowsMessage(() => load(bytes, { backend: failing }), 'out of memory');
    expect(cpu.memory().buffers).toBe(0);
  });

  it('reads from ArrayBuffer, DataView, Blob, File and Response; errors name File and URL', async () => {
    const x = array([1.5, -2]);
    const bytes = await save({ x });
    x.dispose();
    const sources = [
      bytes.buffer,
      new DataView(bytes.buffer),
      toBlob(bytes),
      new File([bytes], 'weights.safetensors'),
      new Response(bytes),
    ];
    for (const src of sources) {
      const { tensors } = await load(src);
      expect(Array.from(await tensors.x.toArray())).toEqual([1.5, -2]);
      tensors.x.dispose();
    }
    expect(toBlob(bytes).type).toBe('application/octet-stream');
    const broken = bytes.slice(0, 20);
    await expectThrowsMessage(() => load(new File([broken], 'weights.safetensors')), 'safetensors.load: weights.safetensors: header length');
    await expectThrowsMessage(() => load(new Response(broken)), 'safetensors.load: response: header length');
    await expectThrowsMessage(() => load(new Response('missing', { status: 404, statusText: 'Not Found' })), 'response: the response has status 404 Not Found');
    await expectThrowsMessage(() => load(toBlob(broken), { source: 'upload' }), 'safetensors.load: upload: header length');
  });
});

describe('Origin Private File System', () => {
  /** A stand-in for navigator.storage.getDirectory(): an in-memory root directory. */
  function fakeOPFS() {
    const files = new Map<string, Blob>();
    const notFound = () => new DOMException('A requested file or directory could not be found', 'NotFoundError');
    const root = {
      async getFileHandle(name: string, options: { create?: boolean } = {}) {
        if (!files.has(name) && !options.create) throw notFound();
        return {
          async createWritable() {
            const parts: BlobPart[] = [];
            return {
              async write(data: BlobPart) { parts.push(data); },
              async close() { files.set(name, new Blob(parts)); },
              async abort() {},
            };
          },
          async getFile() { return new File([files.get(name) ?? new Blob([])], name); },
        };
      },
      async removeEntry(name: string) {
        if (!files.delete(name)) throw notFound();
      },
    };
    return { files, storage: { getDirectory: async () => root } };
  }

  it('without OPFS the helpers say so', async () => {
    await expectThrowsMessage(() => writeToOPFS('a.safetensors', new Uint8Array(8)), 'writeToOPFS: the Origin Private File System is not available here');
    await expectThrowsMessage(() => readFromOPFS('a.safetensors'), 'readFromOPFS: the Origin Private File System is not available');
  });

  it('write, read back, load, remove (against an in-memory stand-in)', async () => {
    const fake = fakeOPFS();
    const nav = Object.getOwnPropertyDescriptor(globalThis, 'navigator');
    Object.defineProperty(globalThis, 'navigator', { value: { storage: fake.storage }, configurable: true });
    try {
      const x = array([3, 4]);
      await writeToOPFS('ckpt.safetensors', await save({ x }));
      x.dispose();
      expect(fake.files.has('ckpt.safetensors')).toBe(true);
      const file = await readFromOPFS('ckpt.safetensors');
      expect(file?.name).toBe('ckpt.safetensors');
      const { tensors } = await load(file!);
      expect(Array.from(await tensors.x.toArray())).toEqual([3, 4]);
      tensors.x.dispose();
      expect(await readFromOPFS('other.safetensors')).toBeUndefined();
      expect(await removeFromOPFS('ckpt.safetensors')).toBe(true);
      expect(await removeFromOPFS('ckpt.safetensors')).toBe(false);
      await expectThrowsMessage(() => writeToOPFS('dir/x', new Uint8Array(1)), "writeToOPFS: expected a file name without '/'");
      const noWritable = { getDirectory: async () => ({ getFileHandle: async () => ({}) }) };
      Object.defineProperty(globalThis, 'navigator', { value: { storage: noWritable }, configurable: true });
      await expectThrowsMessage(() => writeToOPFS('a', new Uint8Array(1)), 'createWritable is missing');
    } finally {
      if (nav) Object.defineProperty(globalThis, 'navigator', nav);
      else delete (globalThis as { navigator?: unknown }).navigator;
    }
  });
});

describe('Node files (@needle/safetensors/node)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'needle-safetensors-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('saveFile then loadFile; the write is atomic (no temporary file left)', async () => {
    const path = join(dir, 'model.safetensors');
    const w = arange(12).reshape([3, 4]);
    await saveFile(path, { w }, { epoch: '1' });
    await saveFile(path, { w }, { epoch: '2' }); // replaces
    await Promise.all([saveFile(path, { w }, { epoch: '3' }), saveFile(path, { w }, { epoch: '3' })]); // concurrent saves do not collide
    w.dispose();
    expect(readdirSync(dir)).toEqual(['model.safetensors']);
    const { tensors, metadata } = await loadFile(path);
    expect(metadata).toEqual({ epoch: '3' });
    expect(await tensors.w.toNested()).toEqual([[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11]]);
    tensors.w.dispose();
  });

  it('errors name the path', async () => {
    const path = join(dir, 'broken.safetensors');
    writeFileSync(path, new Uint8Array([1, 2, 3]));
    await expectThrowsMessage(() => loadFile(path), `safetensors.load: ${path}: 3 bytes is too short`);
    await expectThrowsMessage(() => loadFile(join(dir, 'missing.safetensors')), 'ENOENT');
  });
});
