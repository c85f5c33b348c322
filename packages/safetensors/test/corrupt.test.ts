// Bad files: each gets an error naming the source and the problem, and nothing is created.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { array } from '@needle/ndarray';
import { decode, decodeHeader, load, loadCheckpoint, save } from '../src/index';
import { expectThrowsMessage, liveBuffers, makeFile } from './helpers';

const f32 = (name: string, shape: number[], offsets: [number, number]) => ({ [name]: { dtype: 'F32', shape, data_offsets: offsets } });

/** Expect both the NDArray loader and the host decoder to refuse `bytes` with these message parts. */
async function refuses(bytes: Uint8Array, ...parts: (string | RegExp)[]) {
  await expectThrowsMessage(() => load(bytes, { source: 'model.safetensors' }), 'safetensors.load: model.safetensors: ', ...parts);
  await expectThrowsMessage(() => decode(bytes), 'safetensors.decode: buffer: ', ...parts);
  await expectThrowsMessage(() => loadCheckpoint(bytes, {}), 'loadCheckpoint: buffer: ', ...parts);
}

describe('corrupt files', () => {
  let before = 0;
  beforeEach(() => {
    before = liveBuffers();
  });
  afterEach(() => {
    expect(liveBuffers(), 'no array may be left behind').toBe(before);
  });

  it('a valid file made by the helper loads (so the cases below fail for their one defect)', async () => {
    const { tensors } = await load(makeFile({ ...f32('a', [2], [0, 8]), ...f32('b', [], [8, 12]) }, 12));
    expect(Object.keys(tensors).sort()).toEqual(['a', 'b']);
    for (const a of Object.values(tensors)) a.dispose();
  });

  it('shorter than the 8-byte header length', async () => {
    await refuses(new Uint8Array(5), '5 bytes is too short');
    await refuses(new Uint8Array(0), '0 bytes is too short');
  });

  it('header length past the end of the file', async () => {
    const file = makeFile(f32('a', [2], [0, 8]), 8);
    new DataView(file.buffer).setUint32(0, file.length, true);
    await refuses(file, `header length ${file.length} bytes runs past the end of the file (${file.length} bytes`);
  });

  it('header length over 100 MB is refused before anything is read or allocated', async () => {
    const file = new Uint8Array(16);
    new DataView(file.buffer).setUint32(0, 100_000_001, true);
    await refuses(file, 'header length 100000001 bytes is over the 100 MB limit');
    // A 64-bit length with high bits set.
    new DataView(file.buffer).setUint32(4, 1, true);
    await refuses(file, `header length ${2 ** 32 + 100_000_001} bytes is over the 100 MB limit`);
  });

  it('header not UTF-8, not JSON, not an object', async () => {
    const notUtf8 = makeFile('{"a":1}');
    notUtf8[9] = 0xff;
    await refuses(notUtf8, 'the header is not valid UTF-8');
    await refuses(makeFile('{"a": {"dtype": "F32",'), 'the header is not valid JSON');
    await refuses(makeFile('[1, 2]'), 'the header must be a JSON object, got an array');
    await refuses(makeFile('null'), 'the header must be a JSON object, got null');
    await refuses(makeFile('"text"'), 'the header must be a JSON object, got string');
    await refuses(makeFile({ a: 5 }), "tensor 'a' must be an object with dtype, shape and data_offsets, got number 5");
  });

  it('a dtype that is unknown, or known and not supported, is named', async () => {
    await refuses(makeFile({ w: { dtype: 'F8_E4M3', shape: [1], data_offsets: [0, 1] } }, 1), "tensor 'w' has dtype 'F8_E4M3', which is not supported (supported: BOOL, U8");
    await refuses(makeFile({ w: { dtype: 'float32', shape: [1], data_offsets: [0, 4] } }, 4), `tensor 'w' has dtype "float32", which is not a safetensors dtype`);
    await refuses(makeFile({ w: { shape: [1], data_offsets: [0, 4] } }, 4), "tensor 'w' has dtype undefined");
  });

  it('a shape that is not a list of non-negative integers', async () => {
    for (const shape of [[-1], [1.5], ['2'], 3, null, [2 ** 53]]) {
      await refuses(makeFile({ w: { dtype: 'F32', shape, data_offsets: [0, 4] } }, 4), `tensor 'w' has shape ${JSON.stringify(shape)}, expected a list of non-negative integers`);
    }
  });

  it('data_offsets that are not [begin, end] non-negative integers, or end before begin', async () => {
    for (const offsets of [[0], [0, 4, 8], [0, '4'], [-4, 0], [0.5, 4.5], 'x', undefined]) {
      await refuses(makeFile({ w: { dtype: 'F32', shape: [1], data_offsets: offsets } }, 4), `tensor 'w' has data_offsets ${JSON.stringify(offsets) ?? 'undefined'}, expected [begin, end]`);
    }
    await refuses(makeFile(f32('w', [0], [4, 0]), 4), "tensor 'w' has data_offsets [4, 0]: end before begin");
  });

  it('offsets that disagree with shape x dtype size', async () => {
    await refuses(makeFile(f32('w', [2, 3], [0, 20]), 20), "tensor 'w' has data_offsets [0, 20] (20 bytes), but shape [2,3] of F32 needs 24 bytes");
    await refuses(makeFile({ w: { dtype: 'F16', shape: [3], data_offsets: [0, 4] } }, 4), 'shape [3] of F16 needs 6 bytes');
  });

  it('overlapping tensors', async () => {
    await refuses(makeFile({ ...f32('a', [2], [0, 8]), ...f32('b', [2], [4, 12]) }, 12), "tensor 'b' has data_offsets [4, 12], overlapping 'a' [0, 8]");
    // The same bytes claimed twice.
    await refuses(makeFile({ ...f32('a', [2], [0, 8]), ...f32('b', [2], [0, 8]) }, 8), /overlapping/);
  });

  it('offsets past the data, and truncated data', async () => {
    await refuses(makeFile(f32('a', [2], [0, 8]), 4), "tensor 'a' has data_offsets [0, 8], past the end of the data section (4 bytes): the file is truncated");
    const w = array([1, 2, 3]);
    const whole = await save({ w });
    w.dispose();
    await refuses(whole.subarray(0, whole.length - 1), "tensor 'w' has data_offsets [0, 12], past the end of the data section (11 bytes)");
  });

  it('gaps: bytes not covered by any tensor (the format requires tightly packed data)', async () => {
    await refuses(makeFile({ ...f32('a', [1], [0, 4]), ...f32('b', [1], [8, 12]) }, 12), "tensor 'b' has data_offsets [8, 12], leaving 4 bytes not covered by any tensor before it (at 4)");
    await refuses(makeFile(f32('a', [1], [4, 8]), 8), "leaving 4 bytes not covered", 'tightly packed');
  });

  it('trailing bytes after the last tensor', async () => {
    await refuses(makeFile(f32('a', [1], [0, 4]), 7), '3 trailing bytes after the last tensor (the data section is 7 bytes, the tensors cover 4)');
    await refuses(makeFile({}, 1), '1 trailing bytes');
  });

  it('a tensor named twice (JSON.parse would silently keep the last)', async () => {
    const text = '{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"w":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}';
    await refuses(makeFile(text, 8), 'the header has the key "w" twice');
    // Keys are compared after unescaping: "\u0077" is "w".
    await refuses(makeFile(text.replace('"w":{"dtype":"F32","shape":[1],"data_offsets":[4', '"\\u0077":{"dtype":"F32","shape":[1],"data_offsets":[4'), 8), 'the key "w" twice');
    await refuses(makeFile('{"__metadata__":{"k":"1","k":"2"}}'), 'the header has the key "k" twice inside "__metadata__"');
    await refuses(makeFile('{"w":{"dtype":"F32","dtype":"F16","shape":[1],"data_offsets":[0,4]}}', 4), 'the key "dtype" twice inside "w"');
    // The same string inside a value is no key, and escaped quotes do not end strings.
    const ok = await load(makeFile('{"__metadata__":{"a":"\\"w\\":","b":"w"},"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}', 4));
    expect(ok.metadata).toEqual({ a: '"w":', b: 'w' });
    ok.tensors.w.dispose();
  });

  it('__metadata__ that is not an object of strings', async () => {
    await refuses(makeFile({ __metadata__: { epoch: 3 } }), '"__metadata__" value for key "epoch" must be a string, got number 3');
    await refuses(makeFile({ __metadata__: ['a'] }), '"__metadata__" must be an object of strings, got an array');
    await refuses(makeFile({ __metadata__: 'a' }), '"__metadata__" must be an object of strings, got string "a"');
    // null is what the reference reader takes for "no metadata".
    expect(decode(makeFile({ __metadata__: null })).metadata).toBeUndefined();
  });

  it('nothing is created when a later tensor is bad, and decodeHeader reads only the header', async () => {
    const file = makeFile({ ...f32('a', [1], [0, 4]), b: { dtype: 'I32', shape: [1], data_offsets: [4, 8] } }, new Uint8Array([0, 0, 128, 63, 1, 0, 0, 1]));
    await expectThrowsMessage(() => load(file), "tensor 'b' (I32) holds 16777217");
    const header = decodeHeader(file);
    expect(header.tensors.map((t) => [t.name, t.dtype, t.shape, t.dataOffsets])).toEqual([['a', 'F32', [1], [0, 4]], ['b', 'I32', [1], [4, 8]]]);
    expect(header.dataStart).toBe(file.length - 8);
  });

  it('a source that is not bytes', async () => {
    await expectThrowsMessage(() => load('model.safetensors' as never), 'safetensors.load: expected a Uint8Array, ArrayBuffer, Blob, File or Response, got String');
    await expectThrowsMessage(() => decode(new ArrayBuffer(8) as never), 'safetensors.decode: expected the file\'s bytes as a Uint8Array, got ArrayBuffer');
  });
});

describe('bad input to save', () => {
  it('names that are not strings or are empty, arrays that are disposed, metadata that is not strings', async () => {
    const a = array([1, 2]);
    await expectThrowsMessage(() => save({ '': a }), 'safetensors.save: tensor names must be non-empty strings, got an empty string');
    await expectThrowsMessage(() => save(new Map([[3 as unknown as string, a]])), 'tensor names must be non-empty strings, got number');
    await expectThrowsMessage(() => save({ __metadata__: a }), "'__metadata__' is reserved");
    await expectThrowsMessage(() => save({ w: [1, 2] as never }), "tensor 'w' is a Array, expected an NDArray");
    await expectThrowsMessage(() => save({ w: a }, { epoch: 3 } as never), 'metadata value for key "epoch" must be a string, got number');
    await expectThrowsMessage(() => save({ w: a }, 'x' as never), 'metadata must be an object of string values, got string');
    const gone = array([1]);
    gone.dispose();
    await expectThrowsMessage(() => save({ w: a, v: gone }), "tensor 'v' (shape [1]) was disposed");
    // NDArrays are float32 today; a future dtype must not be written as F32 bytes by mistake.
    const ints = array([1]);
    Object.defineProperty(ints, 'dtype', { value: 'int32' });
    await expectThrowsMessage(() => save({ i: ints }), "tensor 'i' has dtype int32; only float32 arrays are saved");
    ints.dispose();
    a.dispose();
  });
});
