// Thousands of seeded invalid calls over autograd's public API: each must be a NeedleError that
// leaves no buffer behind (on cpu here; the wasm re-run of this suite covers wasm).
import { describe, expect, it } from 'vitest';
import { tidy } from '@needle/ndarray';
import { INVALID, formatFindings, formatFuzzReport, fuzzInvalidCalls, ndarrayFuzzContext, type BadKind, type FuzzCase, type FuzzSlot } from '@needle/ndarray/testing';
import { createCpuBackend } from '@needle/ndarray-cpu';
import * as A from '../src/index';
import { Tensor } from '../src/index';
import { backend } from './helpers';

const foreignBackend = createCpuBackend({ name: 'cpu-autograd-foreign' });

type T = Tensor;
const OPERAND: readonly BadKind[] = [...INVALID.array, 'bigint'];
const AXIS: readonly BadKind[] = ['string', 'numericString', 'null', 'NaN', 'Infinity', 'negative', 'fraction', 'huge', 'boolean', 'object', 'function', 'nestedArray', 'symbol'];
const SHAPE: readonly BadKind[] = [...INVALID.shape, 'undefined', 'negative', 'fraction', 'Infinity', 'huge'];
/** [] is a valid shape (a scalar) for creation, but not one a [2, 3] tensor can be viewed as. */
const VIEW_SHAPE: readonly BadKind[] = [...SHAPE, 'emptyArray'];
const tns = (shape: readonly number[] = [2, 3], invalid: readonly BadKind[] = INVALID.array): FuzzSlot => ({ valid: (c) => c.make(shape), invalid, shape });
const lone = (shape: readonly number[] = [2, 3]) => tns(shape, INVALID.lone);
const recv = (shape: readonly number[] = [2, 3]) => tns(shape, INVALID.receiver);
const value = (v: unknown, invalid: readonly BadKind[]): FuzzSlot => ({ valid: () => v, invalid });
const indices = (v: number[]): FuzzSlot => ({ valid: () => A.tensor(v), invalid: ['string', 'null', 'undefined', 'boolean', 'object', 'function', 'emptyArray', 'symbol', 'disposed', 'foreign'], shape: [v.length] });

/**
 * Run `fn` on a small recorded graph, sum(x * x), inside a tidy: the graph is this case's own
 * scaffolding, so only what the call itself leaves behind counts.
 */
function graph(fn: (y: Tensor) => unknown): unknown {
  return tidy(() => {
    const x = A.tensor([1, 2], { requiresGrad: true });
    fn(A.sum(A.mul(x, x)));
  });
}

function cases(): FuzzCase[] {
  const out: FuzzCase[] = [];
  const binary = { add: A.add, sub: A.sub, mul: A.mul, div: A.div, pow: A.pow, maximum: A.maximum, minimum: A.minimum } as const;
  for (const [name, fn] of Object.entries(binary)) {
    out.push({ name, slots: [tns(), tns()], call: (a: T, b: T) => fn(a, b) });
    out.push({ name: `${name}(scalar)`, slots: [lone(), value(2, [...INVALID.notNumber, 'undefined', 'disposed'])], call: (a: T, b: number) => fn(a, b) });
  }
  for (const name of ['add', 'sub', 'mul', 'div', 'pow', 'maximum'] as const) {
    out.push({ name: `Tensor.${name}`, slots: [recv(), { valid: () => 2, invalid: OPERAND }], call: (a: T, b: T) => a[name](b) });
  }
  const unary = { neg: A.neg, exp: A.exp, log: A.log, sqrt: A.sqrt, tanh: A.tanh, abs: A.abs, relu: A.relu, sigmoid: A.sigmoid, gelu: A.gelu } as const;
  for (const [name, fn] of Object.entries(unary)) out.push({ name, slots: [lone()], call: (a: T) => fn(a) });
  for (const name of ['sum', 'mean', 'max', 'min', 'logsumexp'] as const) {
    out.push({ name, slots: [lone(), value(1, AXIS), value(false, INVALID.flag)], call: (a: T, ax: number, k: boolean) => A[name](a, ax, k) });
  }
  for (const name of ['softmax', 'logSoftmax'] as const) out.push({ name, slots: [lone(), value(1, AXIS)], call: (a: T, ax: number) => A[name](a, ax) });
  out.push(
    { name: 'reshape', slots: [lone(), value([3, 2], VIEW_SHAPE)], call: (a: T, s: number[]) => A.reshape(a, s) },
    { name: 'permute', slots: [lone(), value([1, 0], VIEW_SHAPE)], call: (a: T, p: number[]) => A.permute(a, p) },
    { name: 'transpose', slots: [lone(), value(0, AXIS), value(1, AXIS)], call: (a: T, x: number, y: number) => A.transpose(a, x, y) },
    { name: 'broadcastTo', slots: [lone(), value([4, 2, 3], VIEW_SHAPE)], call: (a: T, s: number[]) => A.broadcastTo(a, s) },
    { name: 'getitem', slots: [lone(), value(1, ['string', 'NaN', 'Infinity', 'fraction', 'huge', 'boolean', 'object', 'function', 'emptyArray', 'nestedArray', 'symbol', 'undefined', 'disposed', 'mismatched'])], call: (a: T, i: number) => A.getitem(a, i) },
    { name: 'flip', slots: [lone(), value(0, AXIS)], call: (a: T, ax: number) => A.flip(a, ax) },
    { name: 'squeeze', slots: [lone([2, 1, 3]), value(1, [...AXIS])], call: (a: T, ax: number) => A.squeeze(a, ax) },
    { name: 'expandDims', slots: [lone(), value(0, AXIS.filter((k) => k !== 'negative'))], call: (a: T, ax: number) => A.expandDims(a, ax) },
    { name: 'flatten', slots: [lone(), value(0, AXIS), value(-1, AXIS.filter((k) => k !== 'negative'))], call: (a: T, s: number, e: number) => A.flatten(a, s, e) },
    { name: 'concat', slots: [tns(), tns(), value(0, AXIS)], call: (a: T, b: T, ax: number) => A.concat([a, b], ax) },
    { name: 'concat(list)', slots: [value(undefined, ['string', 'null', 'object', 'function', 'emptyArray', 'NaN'])], call: (l: T[]) => A.concat(l ?? []) },
    { name: 'stack', slots: [tns(), tns(), value(0, AXIS.filter((k) => k !== 'negative'))], call: (a: T, b: T, ax: number) => A.stack([a, b], ax) },
    { name: 'split', slots: [lone(), value(1, [...INVALID.positiveInt, 'nestedArray']), value(0, AXIS)], call: (a: T, s: number, ax: number) => A.split(a, s, ax) },
    { name: 'pad', slots: [lone(), value([[1, 1]], [...INVALID.shape, 'undefined']), value(0, INVALID.notNumber)], call: (a: T, p: [number, number][], v: number) => A.pad(a, p, v) },
    { name: 'dilate', slots: [lone(), value(0, AXIS), value(1, INVALID.int)], call: (a: T, ax: number, d: number) => A.dilate(a, ax, d) },
    { name: 'undilate', slots: [lone(), value(0, AXIS), value(1, INVALID.int)], call: (a: T, ax: number, d: number) => A.undilate(a, ax, d) },
    { name: 'where', slots: [lone(), value(1, [...INVALID.notNumber, 'undefined', 'disposed']), value(0, [...INVALID.notNumber, 'undefined', 'disposed'])], call: (c: T, x: number, y: number) => A.where(c, x, y) },
    { name: 'where(tensors)', slots: [tns(), tns(), tns()], call: (c: T, x: T, y: T) => A.where(c, x, y) },
    { name: 'matmul', slots: [tns([2, 3]), tns([3, 4], [...INVALID.array, 'rank3'])], call: (a: T, b: T) => A.matmul(a, b) },
    { name: 'conv2d', slots: [tns([1, 2, 4, 4]), tns([3, 2, 2, 2]), value({ stride: 1 }, INVALID.options)], call: (x: T, w: T, o: A.Conv2dOptions) => A.conv2d(x, w, o) },
    { name: 'conv2d(stride)', slots: [value(1, [...INVALID.positiveInt.filter((k) => k !== 'null'), 'nestedArray'])], call: (s: number) => { const x = A.zeros([1, 1, 3, 3]); const w = A.zeros([1, 1, 2, 2]); try { return A.conv2d(x, w, { stride: s }); } finally { x.dispose(); w.dispose(); } } },
    { name: 'maxPool2d', slots: [lone([1, 2, 4, 4]), value(2, [...INVALID.positiveInt, 'nestedArray']), value({}, INVALID.options)], call: (x: T, k: number, o: A.Pool2dOptions) => A.maxPool2d(x, k, o) },
    { name: 'avgPool2d', slots: [lone([1, 2, 4, 4]), value(2, [...INVALID.positiveInt, 'nestedArray'])], call: (x: T, k: number) => A.avgPool2d(x, k) },
    { name: 'oneHot', slots: [{ ...indices([0, 2]), invalid: indices([0]).invalid.filter((k) => k !== 'foreign') }, value(3, INVALID.positiveInt)], call: (i: T, n: number) => A.oneHot(i, n) },
    { name: 'gather', slots: [lone(), value(1, AXIS), { valid: () => A.tensor([[0], [2]]), invalid: ['string', 'null', 'undefined', 'object', 'function', 'disposed', 'foreign', 'mismatched'], shape: [2, 1] }], call: (x: T, ax: number, i: T) => A.gather(x, ax, i) },
    { name: 'indexSelect', slots: [lone(), value(0, AXIS), indices([1, 0])], call: (x: T, ax: number, i: T) => A.indexSelect(x, ax, i) },
    { name: 'embedding', slots: [lone([4, 3]), indices([1, 3])], call: (w: T, i: T) => A.embedding(w, i) },
    { name: 'indexAdd', slots: [lone([3, 2]), value(0, AXIS), indices([2, 0, 2]), tns([3, 2], INVALID.array)], call: (x: T, ax: number, i: T, s: T) => A.indexAdd(x, ax, i, s) },
    { name: 'dropout', slots: [lone(), value(0.5, [...INVALID.finite, 'negative', 'huge'])], call: (x: T, p: number) => A.dropout(x, p) },
    { name: 'Tensor.backward', slots: [value(undefined, ['string', 'numericString', 'null', 'boolean', 'object', 'function', 'emptyArray', 'symbol', 'disposed', 'foreign', 'mismatched']), value({}, INVALID.options)], call: (g: T, o: A.BackwardOptions) => graph((y) => y.backward(g, o)) },
    { name: 'Tensor.backward(createGraph)', slots: [value(false, INVALID.flag)], call: (f: boolean) => graph((y) => y.backward(undefined, { createGraph: f })) },
    { name: 'gradients', slots: [value(undefined, ['string', 'null', 'object', 'function', 'NaN']), value({}, INVALID.options)], call: (inputs: T[] | undefined, o: A.GradientsOptions) => graph((y) => A.gradients(y, inputs ?? (null as never), o)) },
    { name: 'tensor', slots: [value([1, 2], ['string', 'null', 'undefined', 'boolean', 'object', 'function', 'nestedArray', 'symbol']), value({}, INVALID.options)], call: (d: number[], o: A.TensorOptions) => A.tensor(d, o) },
    { name: 'tensor(requiresGrad)', slots: [value(true, ['string', 'numericString', 'null', 'NaN', 'object', 'function'])], call: (r: boolean) => A.tensor([1, 2], { requiresGrad: r }) },
    { name: 'tensor(dtype)', slots: [value('float32', ['string', 'null', 'NaN', 'object'])], call: (d: string) => A.tensor([1, 2], { dtype: d } as never) },
    { name: 'zeros', slots: [value([2], SHAPE), value({}, INVALID.options)], call: (s: number[], o: A.TensorOptions) => A.zeros(s, o) },
    { name: 'full', slots: [value([2], SHAPE), value(1, INVALID.notNumber)], call: (s: number[], v: number) => A.full(s, v) },
    { name: 'randn', slots: [value(1, ([...INVALID.finite, 'negative'] as BadKind[]).filter((k) => k !== 'null'))], call: (std: number) => A.randn([2], { std }) },
    { name: 'Tensor.requiresGrad=', slots: [value(true, ['string', 'null', 'NaN', 'object', 'function', 'undefined'])], call: (r: boolean) => { const t = A.tensor([1]); try { t.requiresGrad = r; } finally { t.dispose(); } } },
    { name: 'Tensor.grad=', slots: [recv(), tns([2, 3], ['string', 'numericString', 'boolean', 'object', 'function', 'emptyArray', 'disposed', 'foreign', 'mismatched'])], call: (t: T, g: T) => { t.grad = g; } },
    { name: 'Tensor.assign', slots: [{ valid: (c) => c.make([2, 3]), invalid: ['disposed'] }, { valid: () => 1, invalid: [...OPERAND.filter((k) => k !== 'mismatched'), 'rank3'] }], call: (t: T, v: number) => A.noGrad(() => t.assign(v)) },
    { name: 'Tensor.item', slots: [tns([1], ['disposed', 'mismatched'])], call: (t: T) => t.item() },
    { name: 'Tensor.to', slots: [recv(), value(undefined, ['string', 'null', 'NaN', 'object', 'function', 'boolean'])], call: (t: T, b: string | undefined) => t.to(b === undefined ? t.backend : b) },
  );
  return out;
}

describe('invalid-call fuzz: autograd', () => {
  it('every invalid call gets a NeedleError and leaves no buffer behind', async () => {
    const live = () => backend.memory().buffers + foreignBackend.memory().buffers;
    const before = live();
    const report = await fuzzInvalidCalls({ cases: cases(), ctx: ndarrayFuzzContext(backend, foreignBackend, { wrap: (a) => new Tensor(a, { requiresGrad: true }) }), liveBuffers: live, rounds: 2500, seed: 7 });
    console.log(formatFuzzReport(`autograd on ${backend.name}`, report));
    expect(report.raw + report.silent + report.leaked, `bad outcomes:\n${formatFindings(report)}`).toBe(0);
    expect(live()).toBe(before);
  });
});
