// Seeded invalid calls over nn's public API (constructors, forward calls, state dicts): each must be
// a NeedleError that leaves no buffer behind (cpu here; the wasm re-run of this suite covers wasm).
import { describe, expect, it } from 'vitest';
import { tidy } from '@needle/ndarray';
import { INVALID, formatFindings, formatFuzzReport, fuzzInvalidCalls, ndarrayFuzzContext, type BadKind, type FuzzCase, type FuzzSlot } from '@needle/ndarray/testing';
import { createCpuBackend } from '@needle/ndarray-cpu';
import { Tensor, tensor } from '@needle/autograd';
import * as nn from '../src/index';
import { backend } from './helpers';

const foreignBackend = createCpuBackend({ name: 'cpu-nn-foreign' });

const value = (v: unknown, invalid: readonly BadKind[]): FuzzSlot => ({ valid: () => v, invalid });
const input = (shape: readonly number[], extra: readonly BadKind[] = []): FuzzSlot => ({ valid: (c) => c.make(shape), invalid: [...INVALID.array, ...extra], shape });
const SIZE = INVALID.positiveInt;
/** A numeric option field (undefined and null select the default). */
const NUMBER_FIELD: readonly BadKind[] = INVALID.finite.filter((k) => k !== 'null');

/** Build a module, run `fn` on it in a tidy (the module is the case's scaffolding), dispose it. */
function withModule<M extends nn.Module>(make: () => M, fn: (m: M) => unknown): unknown {
  const m = make();
  try {
    return tidy(() => {
      fn(m);
    });
  } finally {
    m.dispose();
  }
}

function cases(): FuzzCase[] {
  return [
    { name: 'Linear', slots: [value(3, SIZE), value(4, SIZE), value({}, INVALID.options)], call: (i: number, o: number, opt: nn.LinearOptions) => new nn.Linear(i, o, opt) },
    { name: 'Linear(bias)', slots: [value(true, ['string', 'numericString', 'NaN', 'object', 'function'])], call: (bias: boolean) => new nn.Linear(2, 2, { bias }) },
    { name: 'Linear.call', slots: [input([2, 3], ['rank3'])], call: (x: Tensor) => withModule(() => new nn.Linear(3, 4), (m) => m.call(x)) },
    { name: 'Conv2d', slots: [value(2, SIZE), value(3, SIZE), value(2, [...SIZE, 'nestedArray']), value({}, INVALID.options)], call: (i: number, o: number, k: number, opt: nn.Conv2dOptions) => new nn.Conv2d(i, o, k, opt) },
    { name: 'Conv2d(stride)', slots: [value(1, [...SIZE.filter((k) => k !== 'null'), 'nestedArray'])], call: (stride: number) => new nn.Conv2d(1, 1, 2, { stride }) },
    { name: 'Conv2d.call', slots: [input([1, 2, 4, 4], ['rank3'])], call: (x: Tensor) => withModule(() => new nn.Conv2d(2, 3, 2), (m) => m.call(x)) },
    { name: 'MaxPool2d', slots: [value(2, [...SIZE, 'nestedArray'])], call: (k: number) => new nn.MaxPool2d(k) },
    { name: 'Embedding', slots: [value(5, SIZE), value(2, SIZE)], call: (n: number, d: number) => new nn.Embedding(n, d) },
    { name: 'Embedding.call', slots: [{ valid: () => tensor([1, 2]), invalid: ['string', 'null', 'undefined', 'boolean', 'object', 'function', 'nestedArray', 'symbol', 'disposed', 'foreign'], shape: [2] }], call: (ids: Tensor) => withModule(() => new nn.Embedding(5, 2), (m) => m.call(ids)) },
    { name: 'BatchNorm1d', slots: [value(3, SIZE), value({}, INVALID.options)], call: (n: number, o: nn.BatchNormOptions) => new nn.BatchNorm1d(n, o) },
    { name: 'BatchNorm1d(eps)', slots: [value(1e-5, [...NUMBER_FIELD, 'negative'])], call: (eps: number) => new nn.BatchNorm1d(3, { eps }) },
    { name: 'BatchNorm1d(momentum)', slots: [value(0.1, [...NUMBER_FIELD, 'negative', 'huge'])], call: (momentum: number) => new nn.BatchNorm1d(3, { momentum }) },
    { name: 'BatchNorm1d.call', slots: [input([2, 3], ['rank3'])], call: (x: Tensor) => withModule(() => new nn.BatchNorm1d(3), (m) => m.call(x)) },
    { name: 'LayerNorm', slots: [value(3, [...SIZE, 'nestedArray'])], call: (n: number) => new nn.LayerNorm(n) },
    { name: 'LayerNorm.call', slots: [input([2, 3], ['rank3'])], call: (x: Tensor) => withModule(() => new nn.LayerNorm(3), (m) => m.call(x)) },
    { name: 'Dropout', slots: [value(0.5, [...NUMBER_FIELD, 'negative', 'huge'])], call: (p: number) => new nn.Dropout(p) },
    { name: 'Flatten', slots: [value(1, [...INVALID.int.filter((k) => k !== 'negative'), 'huge'])], call: (s: number) => withModule(() => new nn.Flatten(s), (m) => m.call(tensor([[1, 2]]))) },
    { name: 'Softmax.call', slots: [value(-1, ['string', 'null', 'NaN', 'fraction', 'huge', 'object'])], call: (ax: number) => withModule(() => new nn.Softmax(ax), (m) => m.call(tensor([[1, 2]]))) },
    { name: 'Sequential', slots: [value(undefined, ['string', 'null', 'NaN', 'object', 'function', 'emptyArray', 'disposed'])], call: (m: nn.Module | undefined) => new nn.Sequential(...(m === undefined ? [] : [m])) },
    { name: 'CrossEntropyLoss', slots: [value('mean', ['string', 'NaN', 'object', 'function', 'emptyArray'])], call: (reduction: nn.Reduction) => new nn.CrossEntropyLoss({ reduction }) },
    { name: 'CrossEntropyLoss.call', slots: [input([2, 3], ['rank3']), { valid: () => tensor([0, 2]), invalid: ['string', 'null', 'undefined', 'boolean', 'object', 'function', 'emptyArray', 'symbol', 'disposed', 'foreign', 'mismatched'], shape: [2] }], call: (x: Tensor, y: Tensor) => withModule(() => new nn.CrossEntropyLoss(), (m) => m.call(x, y)) },
    { name: 'MSELoss.call', slots: [input([2, 3]), { ...input([2, 3]), invalid: INVALID.array.filter((k) => k !== 'mismatched') }], call: (x: Tensor, y: Tensor) => withModule(() => new nn.MSELoss(), (m) => m.call(x, y)) },
    { name: 'RNN', slots: [value(3, SIZE), value(4, SIZE), value({}, INVALID.options)], call: (i: number, h: number, o: nn.RNNOptions) => new nn.RNN(i, h, o) },
    { name: 'LSTM(numLayers)', slots: [value(1, SIZE.filter((k) => k !== 'null'))], call: (numLayers: number) => new nn.LSTM(2, 2, { numLayers }) },
    { name: 'LSTM.call', slots: [input([3, 2, 2])], call: (x: Tensor) => withModule(() => new nn.LSTM(2, 2), (m) => m.call(x)) },
    { name: 'MultiHeadAttention', slots: [value(4, SIZE), value(2, SIZE)], call: (d: number, h: number) => new nn.MultiHeadAttention(d, h) },
    { name: 'Module.loadStateDict', slots: [value(undefined, ['string', 'null', 'NaN', 'function', 'emptyArray', 'symbol'])], call: (s: nn.StateDict | undefined) => withModule(() => new nn.Linear(2, 1), (m) => m.loadStateDict(s === undefined ? m.stateDict() : s)) },
    { name: 'Module.loadStateDict(value)', slots: [{ valid: (c) => c.make([1, 2]), invalid: ['string', 'null', 'undefined', 'boolean', 'object', 'function', 'emptyArray', 'disposed', 'foreign', 'mismatched'], shape: [1, 2] }], call: (w: Tensor) => withModule(() => new nn.Linear(2, 1, { bias: false }), (m) => m.loadStateDict({ weight: w } as never)) },
  ];
}

describe('invalid-call fuzz: nn', () => {
  it('every invalid call gets a NeedleError and leaves no buffer behind', async () => {
    const live = () => backend.memory().buffers + foreignBackend.memory().buffers;
    const before = live();
    const report = await fuzzInvalidCalls({ cases: cases(), ctx: ndarrayFuzzContext(backend, foreignBackend, { wrap: (a) => new Tensor(a) }), liveBuffers: live, rounds: 1500, seed: 11 });
    console.log(formatFuzzReport(`nn on ${backend.name}`, report));
    expect(report.raw + report.silent + report.leaked, `bad outcomes:\n${formatFindings(report)}`).toBe(0);
    expect(live()).toBe(before);
  });
});
