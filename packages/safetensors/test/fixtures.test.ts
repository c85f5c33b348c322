// Files written by Python's safetensors (scripts/gen_fixtures.py): needle loads them to exactly the
// values torch has, and writes the same bytes for the same tensors and metadata.
import { describe, expect, it } from 'vitest';
import { NDArray } from '@needle/ndarray';
import { decode, encode, load, save } from '../src/index';
import { bitsOf, expected, fixture, fromBits, liveBuffers, expectThrowsMessage } from './helpers';

const FLOAT32_FILES = ['f32.safetensors', 'f32_metadata.safetensors', 'escapes.safetensors', 'empty_metadata.safetensors', 'no_tensors.safetensors'];

describe('loading files written by Python', () => {
  for (const file of [...FLOAT32_FILES, 'many_metadata.safetensors', 'dtypes.safetensors', 'unsigned.safetensors']) {
    it(`${file}: every tensor loads to torch's float32 values, bit for bit`, async () => {
      const before = liveBuffers();
      const want = expected[file];
      const { tensors, metadata } = await load(fixture(file));
      expect(metadata).toEqual(want.metadata ?? undefined);
      expect(Object.keys(tensors).sort()).toEqual(Object.keys(want.tensors).sort());
      for (const [name, t] of Object.entries(want.tensors)) {
        expect([...tensors[name].shape], name).toEqual(t.shape);
        if (t.bits) expect(await bitsOf(tensors[name]), name).toEqual(t.bits);
      }
      for (const a of Object.values(tensors)) a.dispose();
      expect(liveBuffers()).toBe(before);
    });
  }

  for (const dtype of ['f16', 'bf16']) {
    it(`${dtype.toUpperCase()} converts exactly: a spread of bit patterns equals the float32 values torch computes`, async () => {
      const { tensors } = await load(fixture('dtypes.safetensors'));
      const got = await bitsOf(tensors[`${dtype}_spread`]);
      const want = await bitsOf(tensors[`${dtype}_spread_f32`]);
      expect(got.length).toBe(want.length);
      expect(got.length).toBeGreaterThan(5000);
      expect(got).toEqual(want);
      for (const a of Object.values(tensors)) a.dispose();
    });
  }

  it('F64 rounds to nearest, ties to even, like Math.fround (and torch)', async () => {
    const { tensors } = await load(fixture('dtypes.safetensors'));
    const values = Array.from(await tensors.f64.toArray());
    const f64 = [1.0, 0.1, 1 / 3, 1e-300, -1e-300, 1e300, -1e300, 16777217.0, 1.0000000596046448, 1.0000001788139343, -0.0, NaN, Infinity];
    expect(values).toEqual(f64.map(Math.fround));
    // 16777217 = 2^24 + 1 is a tie: it rounds to the even neighbour 2^24.
    expect(values[7]).toBe(16777216);
    for (const a of Object.values(tensors)) a.dispose();
  });

  it('integers float32 cannot hold refuse the whole file, naming tensor, index and value', async () => {
    const before = liveBuffers();
    await expectThrowsMessage(() => load(fixture('i64_inexact.safetensors')), "buffer: tensor 'ids' (I64) holds 16777217 at flat index 1", 'float32 cannot represent');
    await expectThrowsMessage(() => load(fixture('i32_inexact.safetensors'), { source: 'ids.safetensors' }), "ids.safetensors: tensor 'ids' (I32) holds -16777217 at flat index 3");
    await expectThrowsMessage(() => load(fixture('i64_huge_inexact.safetensors')), `holds ${2n ** 62n + 1n} at flat index 0`);
    // 'ok' came first in the file: nothing was created.
    expect(liveBuffers()).toBe(before);
  });
});

describe('writing the bytes Python writes', () => {
  for (const file of FLOAT32_FILES) {
    it(`${file}: save() of the same float32 arrays and metadata gives identical bytes`, async () => {
      const want = expected[file];
      const arrays: Record<string, NDArray> = {};
      for (const [name, t] of Object.entries(want.tensors)) arrays[name] = fromBits(t.bits!, t.shape);
      const bytes = await save(arrays, want.metadata ?? undefined);
      expect(Buffer.from(bytes).equals(Buffer.from(fixture(file)))).toBe(true);
      for (const a of Object.values(arrays)) a.dispose();
    });
  }

  it('save() takes a Map too, in any insertion order', async () => {
    const want = expected['f32.safetensors'];
    const arrays = new Map(Object.entries(want.tensors).reverse().map(([name, t]) => [name, fromBits(t.bits!, t.shape)]));
    const bytes = await save(arrays);
    expect(Buffer.from(bytes).equals(Buffer.from(fixture('f32.safetensors')))).toBe(true);
    for (const a of arrays.values()) a.dispose();
  });

  for (const file of ['dtypes.safetensors', 'unsigned.safetensors', 'f32.safetensors', 'escapes.safetensors']) {
    it(`${file}: encode(decode(bytes)) is the same bytes (the dtype-then-name layout of the reference writer)`, () => {
      const bytes = fixture(file);
      const { tensors, metadata } = decode(bytes);
      expect(Buffer.from(encode(tensors, metadata)).equals(Buffer.from(bytes))).toBe(true);
    });
  }

  it('with several metadata keys (Python orders them by a hash map) the files agree once parsed', async () => {
    const want = expected['many_metadata.safetensors'];
    const x = fromBits(want.tensors['x\ty'].bits!, [2]);
    const mine = await save({ 'x\ty': x }, want.metadata!);
    const theirs = fixture('many_metadata.safetensors');
    expect(mine.length).toBe(theirs.length);
    const a = decode(mine);
    const b = decode(theirs);
    expect(a.metadata).toEqual(b.metadata);
    expect(a.tensors).toEqual(b.tensors);
    // Ours are sorted by key, so the output is deterministic.
    expect(Object.keys(a.metadata!)).toEqual(['alpha', 'beta', 'mid', 'zeta']);
    x.dispose();
  });

  it('decode gives raw typed arrays of each dtype, copied out of the input', () => {
    const bytes = fixture('dtypes.safetensors');
    const { tensors } = decode(bytes);
    expect(tensors.i64.dtype).toBe('I64');
    expect(tensors.i64.data).toEqual(BigInt64Array.from([0n, -1n, 1n, 16777216n, -16777216n, 2n ** 40n, -(2n ** 40n), 123456n]));
    expect(tensors.bool.data).toEqual(Uint8Array.from([1, 0, 1, 1]));
    expect(tensors.bf16.shape).toEqual([3, 3]);
    expect(tensors.bf16.data[2]).toBe(0x3f80); // bfloat16 1.0
    expect(tensors.f16.data[2]).toBe(0x3c00); // half 1.0
    expect(tensors.f32_scalar).toEqual({ dtype: 'F32', shape: [], data: Float32Array.from([7]) });
    expect(tensors.i8.data.buffer).not.toBe(bytes.buffer);
  });
});
