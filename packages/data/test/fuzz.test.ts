// Seeded invalid calls over data's public API (loaders, datasets, parsers, transforms, text): each
// must be a NeedleError that leaves no buffer behind (cpu here; the wasm re-run covers wasm).
import { describe, expect, it } from 'vitest';
import { NDArray } from '@needle/ndarray';
import { INVALID, formatFindings, formatFuzzReport, fuzzInvalidCalls, ndarrayFuzzContext, type BadKind, type FuzzCase, type FuzzSlot } from '@needle/ndarray/testing';
import { createCpuBackend } from '@needle/ndarray-cpu';
import * as D from '../src/index';

const backend = createCpuBackend({ name: 'cpu-data-fuzz' });
const foreignBackend = createCpuBackend({ name: 'cpu-data-foreign' });

const value = (v: unknown, invalid: readonly BadKind[]): FuzzSlot => ({ valid: () => v, invalid });
const FIELD: readonly BadKind[] = INVALID.finite.filter((k) => k !== 'null');
const BYTES: readonly BadKind[] = ['string', 'numericString', 'null', 'undefined', 'NaN', 'object', 'function', 'emptyArray', 'nestedArray', 'boolean', 'symbol'];
const dataset = () => new D.TensorDataset(NDArray.fromData(new Float32Array([1, 2, 3, 4, 5, 6]), [3, 2], backend), NDArray.fromData(new Float32Array([0, 1, 2]), [3], backend));

/** Drain a loader (each batch is disposed by the loader). */
async function drain(loader: D.DataLoader<D.Sample>): Promise<void> {
  for await (const batch of loader) void batch;
}

function withDataset(fn: (d: D.TensorDataset) => unknown): unknown {
  const d = dataset();
  const done = () => d.arrays.forEach((a) => a.dispose());
  try {
    const r = fn(d);
    if (r instanceof Promise) return r.finally(done);
    done();
    return r;
  } catch (e) {
    done();
    throw e;
  }
}

function cases(): FuzzCase[] {
  return [
    { name: 'DataLoader(batchSize)', slots: [value(2, INVALID.positiveInt.filter((k) => k !== 'null'))], call: (batchSize: number) => withDataset((d) => drain(new D.DataLoader(d, { batchSize, backend }))) },
    { name: 'DataLoader(options)', slots: [value({}, INVALID.options)], call: (o: D.DataLoaderOptions) => withDataset((d) => drain(new D.DataLoader(d, o === null || typeof o !== 'object' || Array.isArray(o) ? o : { ...o, backend }))) },
    { name: 'DataLoader(flags)', slots: [value(false, INVALID.flag.filter((k) => k !== 'null')), value(false, INVALID.flag.filter((k) => k !== 'null')), value(true, INVALID.flag.filter((k) => k !== 'null'))], call: (shuffle: boolean, dropLast: boolean, autoDispose: boolean) => withDataset((d) => drain(new D.DataLoader(d, { shuffle, dropLast, autoDispose, backend }))) },
    { name: 'DataLoader(numClasses)', slots: [value(3, INVALID.positiveInt.filter((k) => k !== 'null'))], call: (numClasses: number) => withDataset((d) => drain(new D.DataLoader(d, { numClasses, backend }))) },
    // Labels 0, 1, 2 against too few classes: refused on the host, before the upload.
    { name: 'DataLoader(labels)', slots: [value(3, ['negative', 'fraction'])], call: (n: number) => withDataset((d) => drain(new D.DataLoader(d, { numClasses: n === 3 ? 3 : 2, backend }))) },
    { name: 'DataLoader(seed)', slots: [value(3, [...FIELD, 'fraction'])], call: (seed: number) => withDataset((d) => drain(new D.DataLoader(d, { shuffle: true, seed, backend }))) },
    { name: 'DataLoader(dataset)', slots: [value(undefined, ['string', 'null', 'NaN', 'object', 'function', 'emptyArray', 'boolean'])], call: (ds: never) => (ds === undefined ? withDataset((d) => drain(new D.DataLoader(d, { backend }))) : drain(new D.DataLoader(ds, { backend }))) },
    { name: 'TensorDataset', slots: [{ valid: (c) => c.make([3, 2]), invalid: ['string', 'null', 'undefined', 'NaN', 'object', 'function', 'emptyArray', 'boolean', 'disposed', 'mismatched'], shape: [3, 2] }, { valid: (c) => c.make([3]), invalid: ['string', 'null', 'object', 'function', 'disposed', 'mismatched'], shape: [3] }], call: (a: NDArray, b: NDArray) => new D.TensorDataset(a, b) },
    { name: 'TensorDataset.get', slots: [value(1, [...INVALID.int, 'huge'])], call: (i: number) => withDataset((d) => d.get(i)) },
    { name: 'randomSplit', slots: [value([2, 1], ['string', 'null', 'NaN', 'object', 'function', 'emptyArray', 'nestedArray', 'boolean'])], call: (lengths: number[]) => withDataset((d) => D.randomSplit(d, lengths)) },
    { name: 'Subset', slots: [value([0, 2], ['string', 'null', 'NaN', 'object', 'function', 'nestedArray', 'boolean'])], call: (idx: number[]) => withDataset((d) => new D.Subset(d, idx)) },
    { name: 'hostArray', slots: [value(new Float32Array(6), ['string', 'null', 'undefined', 'NaN', 'object', 'function', 'emptyArray', 'boolean']), value([2, 3], [...INVALID.shape, 'undefined', 'emptyArray'])], call: (data: Float32Array, shape: number[]) => D.hostArray(data, shape) },
    { name: 'collate', slots: [value([[1, 2], [3, 4]], ['string', 'null', 'undefined', 'NaN', 'object', 'function', 'emptyArray', 'nestedArray', 'boolean'])], call: (samples: D.Sample[]) => D.collate(samples, [0, 1], backend) },
    { name: 'parseIdx', slots: [value(new Uint8Array([0, 0, 8, 1, 0, 0, 0, 1, 7]), BYTES)], call: (b: Uint8Array) => D.parseIdx(b) },
    { name: 'parseMnistLabels', slots: [value(new Uint8Array([0, 0, 8, 1, 0, 0, 0, 1, 7]), BYTES)], call: (b: Uint8Array) => D.parseMnistLabels(b) },
    { name: 'parseMnistImages', slots: [value(new Uint8Array([0, 0, 8, 3, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 9]), BYTES)], call: (b: Uint8Array) => D.parseMnistImages(b) },
    { name: 'parseCifar10Batch', slots: [value(new Uint8Array(3073), BYTES)], call: (b: Uint8Array) => D.parseCifar10Batch(b) },
    { name: 'Normalize', slots: [value(0.5, ['string', 'null', 'undefined', 'NaN', 'Infinity', 'object', 'function', 'emptyArray', 'nestedArray', 'boolean']), value(0.25, ['string', 'null', 'undefined', 'NaN', 'Infinity', 'negative', 'object', 'function', 'emptyArray', 'nestedArray', 'boolean'])], call: (m: number, s: number) => new D.Normalize(m, s) },
    { name: 'RandomCrop', slots: [value(2, [...INVALID.positiveInt, 'nestedArray']), value(0, INVALID.int.filter((k) => k !== 'null'))], call: (size: number, padding: number) => new D.RandomCrop(size, padding) },
    { name: 'RandomFlipHorizontal', slots: [value(0.5, [...FIELD, 'negative', 'huge'])], call: (p: number) => new D.RandomFlipHorizontal(p) },
    { name: 'Corpus.tokenize', slots: [value('a b\n', ['null', 'undefined', 'NaN', 'object', 'function', 'emptyArray', 'boolean', 'symbol']), value(undefined, INVALID.int.filter((k) => k !== 'null'))], call: (text: string, maxLines: number) => new D.Corpus().tokenize(text, maxLines) },
    { name: 'batchify', slots: [value([1, 2, 3, 4], ['string', 'null', 'undefined', 'NaN', 'object', 'function', 'boolean']), value(2, INVALID.positiveInt)], call: (data: number[], bs: number) => D.batchify(data, bs, { backend }) },
    { name: 'getBatch', slots: [{ valid: (c) => c.make([4, 2]), invalid: ['string', 'null', 'undefined', 'object', 'function', 'disposed', 'mismatched'], shape: [4, 2] }, value(0, [...INVALID.int, 'huge']), value(2, INVALID.positiveInt)], call: (src: NDArray, i: number, bptt: number) => D.getBatch(src, i, bptt) },
    { name: 'decodeUtf8', slots: [value(new Uint8Array([0x61]), BYTES)], call: (b: Uint8Array) => D.decodeUtf8('decodeUtf8', b) },
  ];
}

describe('invalid-call fuzz: data', () => {
  it('every invalid call gets a NeedleError and leaves no buffer behind', async () => {
    const live = () => backend.memory().buffers + foreignBackend.memory().buffers;
    const before = live();
    const report = await fuzzInvalidCalls({ cases: cases(), ctx: ndarrayFuzzContext(backend, foreignBackend, { value: (i) => i % 3 }), liveBuffers: live, rounds: 1500, seed: 17 });
    console.log(formatFuzzReport('data on cpu', report));
    expect(report.raw + report.silent + report.leaked, `bad outcomes:\n${formatFindings(report)}`).toBe(0);
    expect(live()).toBe(before);
  });
});
