/**
 * The invalid-call fuzz of @needle/ndarray's public API, run by every backend's test suite:
 *
 *   runBackendFuzz('wasm', () => createWasmBackend(), { foreign: () => createCpuBackend() });
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Backend } from '../backend';
import { NDArray } from '../ndarray';
import { arange, array, eye, full, fullLike, ones, rand, randn, zeros } from '../creation';
import { add, div, matmul, maximum, minimum, pow, sub, where } from '../functions';
import { concatenate, dilate, pad, split, stack, undilate, unstack } from '../ops/join';
import { gather, indexAddInto, indexSelect, oneHot } from '../ops/rows';
import { BINARY_OPS, UNARY_OPS } from '../backend';
import {
  INVALID,
  fuzzInvalidCalls,
  formatFindings,
  formatFuzzReport,
  type BadKind,
  type FuzzCase,
  type FuzzContext,
  type FuzzSlot,
} from './fuzz';

/** An array argument that must match another array argument (so a foreign or mismatched one is invalid too). */
const arr = (shape: readonly number[] = [2, 3]): FuzzSlot => ({ valid: (c) => c.make(shape), invalid: INVALID.array, shape });
/** An array argument on its own. */
const lone = (shape: readonly number[] = [2, 3]): FuzzSlot => ({ valid: (c) => c.make(shape), invalid: INVALID.lone, shape });
const receiver = (shape: readonly number[] = [2, 3]): FuzzSlot => ({ valid: (c) => c.make(shape), invalid: INVALID.receiver, shape });
const value = (v: unknown, invalid: readonly BadKind[]): FuzzSlot => ({ valid: () => v, invalid });
const fixed = (v: unknown): FuzzSlot => ({ valid: () => v, invalid: [] });
const fixedArray = (shape: readonly number[]): FuzzSlot => ({ valid: (c) => c.make(shape), invalid: [], shape });
/** An array argument whose shape is free (a foreign backend is still invalid). */
const anyShape = (shape: readonly number[]): FuzzSlot => ({ valid: (c) => c.make(shape), invalid: INVALID.array.filter((k) => k !== 'mismatched'), shape });

/** A number operand: anything else (NaN and infinities are valid numbers here). */
const OPERAND: readonly BadKind[] = [...INVALID.array, 'bigint'];
/** An axis of a 2-D array: any non-integer, or out of range. */
const AXIS: readonly BadKind[] = ['string', 'numericString', 'null', 'NaN', 'Infinity', 'negative', 'fraction', 'huge', 'boolean', 'object', 'function', 'nestedArray', 'symbol'];
/** An optional axis list of a 2-D array ([] reduces over nothing, which is valid). */
const AXES: readonly BadKind[] = AXIS;
const SHAPE: readonly BadKind[] = [...INVALID.shape, 'undefined', 'negative', 'fraction', 'Infinity', 'huge'];
const INDEX: readonly BadKind[] = ['string', 'NaN', 'Infinity', 'fraction', 'huge', 'boolean', 'object', 'function', 'emptyArray', 'nestedArray', 'symbol', 'bigint', 'undefined', 'disposed', 'foreign', 'mismatched'];
const OPTIONS: readonly BadKind[] = INVALID.options;
/** A numeric options field (null, like undefined, selects the default). */
const NUMBER_FIELD: readonly BadKind[] = INVALID.finite.filter((k) => k !== 'null');

type Arr = NDArray;

/** Every public entry point of @needle/ndarray, as slots; creation functions allocate on `b`. */
export function ndarrayFuzzCases(b: Backend): FuzzCase[] {
  const cases: FuzzCase[] = [];
  for (const op of BINARY_OPS) {
    cases.push({
      name: `NDArray.${op}`,
      slots: [receiver(), { valid: (c) => c.make([2, 3]), invalid: OPERAND }],
      call: (a: Arr, b: Arr) => (a[op] as (x: unknown) => NDArray)(b),
    });
  }
  const free = { add, sub, div, pow, maximum, minimum } as const;
  for (const [name, fn] of Object.entries(free)) {
    cases.push({ name, slots: [lone(), { valid: () => 2, invalid: INVALID.notNumber }], call: (a: Arr, b: Arr) => fn(a, b) });
    cases.push({ name: `${name}(arrays)`, slots: [arr(), arr()], call: (a: Arr, b: Arr) => fn(a, b) });
  }
  for (const op of UNARY_OPS) {
    cases.push({ name: `NDArray.${op}`, slots: [receiver()], call: (a: Arr) => (a[op] as () => NDArray)() });
  }
  for (const op of ['sum', 'max', 'min', 'mean'] as const) {
    cases.push({
      name: `NDArray.${op}`,
      slots: [receiver(), value(1, AXES), value(false, INVALID.flag)],
      call: (a: Arr, axis: number, keep: boolean) => a[op](axis, keep),
    });
  }
  for (const op of ['argmax', 'argmin'] as const) {
    cases.push({
      name: `NDArray.${op}`,
      slots: [receiver(), value(1, [...AXIS, 'emptyArray']), value(false, INVALID.flag)],
      call: (a: Arr, axis: number, keep: boolean) => a[op](axis, keep),
    });
  }
  cases.push(
    { name: 'NDArray.reshape', slots: [receiver(), value([3, 2], [...SHAPE, 'emptyArray'])], call: (a: Arr, s: number[]) => a.reshape(s) },
    { name: 'NDArray.reshape(entry)', slots: [receiver(), value(3, ['string', 'null', 'NaN', 'fraction', 'negative', 'huge', 'boolean', 'object', 'undefined'])], call: (a: Arr, d: number) => a.reshape([d, 2]) },
    { name: 'NDArray.permute', slots: [receiver(), value([1, 0], [...SHAPE, 'emptyArray'])], call: (a: Arr, p: number[]) => a.permute(p) },
    { name: 'NDArray.transpose', slots: [receiver(), value(0, AXIS), value(1, AXIS)], call: (a: Arr, x: number, y: number) => a.transpose(x, y) },
    { name: 'NDArray.broadcastTo', slots: [receiver(), value([4, 2, 3], [...SHAPE, 'emptyArray'])], call: (a: Arr, s: number[]) => a.broadcastTo(s) },
    { name: 'NDArray.get', slots: [receiver(), value(1, INDEX), value('0:2', INDEX)], call: (a: Arr, i: unknown, j: unknown) => a.get(i as number, j as number) },
    { name: 'NDArray.set', slots: [receiver(), value([0], INDEX.filter((k) => k !== 'emptyArray')), { valid: () => 5, invalid: [...OPERAND.filter((k) => k !== 'mismatched'), 'rank3'] }], call: (a: Arr, i: number[], v: number) => a.set(i, v) },
    { name: 'NDArray.flip', slots: [receiver(), value(0, AXES)], call: (a: Arr, ax: number) => a.flip(ax) },
    { name: 'NDArray.expandDims', slots: [receiver(), value(0, AXIS.filter((k) => k !== 'negative'))], call: (a: Arr, ax: number) => a.expandDims(ax) },
    { name: 'NDArray.squeeze', slots: [receiver([2, 1, 3]), value(1, [...AXES, 'negative'])], call: (a: Arr, ax: number) => a.squeeze(ax) },
    { name: 'NDArray.asStrided', slots: [receiver(), value([3, 2], SHAPE), value([1, 3], [...INVALID.shape, 'fraction', 'emptyArray', 'undefined']), value(0, ['string', 'null', 'NaN', 'fraction', 'negative', 'huge', 'boolean', 'object', 'Infinity'])], call: (a: Arr, s: number[], st: number[], o: number) => a.asStrided(s, st, o) },
    { name: 'NDArray.asStrided(stride)', slots: [receiver(), value(1, ['fraction', 'NaN', 'string', 'null', 'huge', 'Infinity'])], call: (a: Arr, st: number) => a.asStrided([3, 2], [st, 3], 0) },
    { name: 'NDArray.pad', slots: [receiver(), value([[1, 1]], [...INVALID.shape, 'undefined']), value(0, INVALID.notNumber)], call: (a: Arr, p: [number, number][], v: number) => a.pad(p, v) },
    { name: 'NDArray.pad(width)', slots: [receiver(), value(1, ['negative', 'fraction', 'NaN', 'string', 'null', 'Infinity', 'object'])], call: (a: Arr, w: number) => a.pad([[w, 0]]) },
    { name: 'NDArray.dilate', slots: [receiver(), value(0, AXES), value(1, INVALID.int)], call: (a: Arr, ax: number, d: number) => a.dilate(ax, d) },
    { name: 'NDArray.undilate', slots: [receiver(), value(0, AXES), value(1, INVALID.int)], call: (a: Arr, ax: number, d: number) => a.undilate(ax, d) },
    { name: 'NDArray.split', slots: [receiver(), value(1, [...INVALID.positiveInt, 'nestedArray']), value(0, AXIS)], call: (a: Arr, s: number, ax: number) => a.split(s, ax) },
    { name: 'NDArray.unstack', slots: [receiver(), value(0, AXIS)], call: (a: Arr, ax: number) => a.unstack(ax) },
    { name: 'NDArray.matmul', slots: [receiver(), { valid: (c) => c.make([3, 4]), invalid: [...INVALID.array, 'rank3'], shape: [3, 4] }], call: (a: Arr, b: Arr) => a.matmul(b) },
    { name: 'matmul(batch)', slots: [{ valid: (c) => c.make([2, 2, 3]), invalid: [] }, { valid: (c) => c.make([2, 3, 4]), invalid: [...INVALID.array, 'rank3'], shape: [3, 2, 3, 4] }], call: (a: Arr, b: Arr) => matmul(a, b) },
    { name: 'NDArray.where', slots: [receiver(), { valid: () => 1, invalid: OPERAND }, { valid: (c) => c.make([2, 3]), invalid: OPERAND }], call: (c: Arr, x: number, y: number) => c.where(x, y) },
    { name: 'where', slots: [lone(), fixed(1), fixed(0)], call: (c: Arr, x: number, y: number) => where(c, x, y) },
    // Arrays and indices of any shape are valid (and any index values: an invalid one selects NaN).
    { name: 'indexSelect', slots: [anyShape([3, 2]), value(0, AXIS), anyShape([4]), value(undefined, OPTIONS)], call: (x: Arr, ax: number, i: Arr, o: object) => indexSelect(x, ax, i, o) },
    { name: 'indexSelect(missing)', slots: [fixedArray([3, 2]), fixedArray([4]), value(NaN, INVALID.notNumber)], call: (x: Arr, i: Arr, m: number) => indexSelect(x, 0, i, { missing: m }) },
    { name: 'gather', slots: [arr([2, 3]), value(1, AXIS), { valid: (c) => c.make([2, 2]), invalid: [...INVALID.array, 'rank3'], shape: [2, 2] }], call: (x: Arr, ax: number, i: Arr) => gather(x, ax, i) },
    { name: 'oneHot', slots: [lone([3]), value(4, [...INVALID.notNumber, 'NaN', 'fraction', 'negative'])], call: (i: Arr, n: number) => oneHot(i, n) },
    { name: 'indexAddInto', slots: [arr([3, 2]), value(0, AXIS), anyShape([4]), { valid: (c) => c.make([4, 2]), invalid: INVALID.array, shape: [4, 2] }], call: (t: Arr, ax: number, i: Arr, src: Arr) => indexAddInto(t, ax, i, src) },
    { name: 'NDArray.compact', slots: [receiver()], call: (a: Arr) => a.compact() },
    { name: 'NDArray.clone', slots: [receiver()], call: (a: Arr) => a.clone() },
    { name: 'NDArray.toArray', slots: [receiver()], call: (a: Arr) => a.toArray() },
    { name: 'NDArray.item', slots: [{ valid: (c) => c.make([1]), invalid: ['disposed', 'mismatched'], shape: [1] }], call: (a: Arr) => a.item() },
    { name: 'NDArray.to', slots: [receiver(), value(undefined, ['string', 'null', 'NaN', 'object', 'function', 'boolean', 'emptyArray'])], call: async (a: Arr, b: string | undefined) => a.to(b === undefined ? a.backend : b) },
    { name: 'NDArray.dispose', slots: [receiver()], call: (a: Arr) => a.dispose() },
    { name: 'concatenate', slots: [value(undefined, ['string', 'null', 'object', 'function', 'emptyArray', 'NaN', 'numericString']), value(0, AXIS)], call: (list: unknown, ax: number) => concatenate((list as Arr[]) ?? [], ax) },
    { name: 'concatenate(entry)', slots: [arr(), arr(), value(0, AXIS)], call: (a: Arr, b: Arr, ax: number) => concatenate([a, b], ax) },
    // -3 is a valid axis here: stacking two rank-2 arrays gives rank 3.
    { name: 'stack(entry)', slots: [arr(), arr(), value(0, ['string', 'null', 'NaN', 'fraction', 'huge', 'object'])], call: (a: Arr, b: Arr, ax: number) => stack([a, b], ax) },
    { name: 'split', slots: [lone(), value([1, 1], ['string', 'null', 'object', 'nestedArray', 'NaN', 'negative', 'fraction', 'emptyArray', 'boolean']), value(0, AXIS)], call: (a: Arr, s: number[], ax: number) => split(a, s, ax) },
    { name: 'unstack', slots: [lone(), value(0, AXIS)], call: (a: Arr, ax: number) => unstack(a, ax) },
    { name: 'pad', slots: [lone(), value([[0, 1]], [...INVALID.shape, 'undefined'])], call: (a: Arr, p: [number, number][]) => pad(a, p) },
    { name: 'dilate', slots: [lone(), value(1, AXES), value(1, INVALID.int)], call: (a: Arr, ax: number, d: number) => dilate(a, ax, d) },
    { name: 'undilate', slots: [lone(), value(1, AXES), value(1, INVALID.int)], call: (a: Arr, ax: number, d: number) => undilate(a, ax, d) },
  );
  // Creation functions, on backend `b` (an invalid options object replaces it).
  const opts = (bk: Backend) => ({ valid: () => ({ backend: bk }), invalid: OPTIONS }) satisfies FuzzSlot;
  const withBackend = (o: unknown, bk: Backend) => (o !== null && typeof o === 'object' && !Array.isArray(o) ? { ...o, backend: bk } : o);
  cases.push(
    { name: 'array', slots: [value([[1, 2], [3, 4]], ['string', 'null', 'undefined', 'boolean', 'object', 'function', 'nestedArray', 'symbol', 'bigint']), opts(b)], call: (d: number[][], o: object) => array(d, o as never) },
    { name: 'array(element)', slots: [value(1, ['string', 'numericString', 'null', 'undefined', 'boolean', 'object', 'function', 'symbol', 'bigint', 'emptyArray', 'disposed'])], call: (x: number) => array([x, 2], { backend: b }) },
    { name: 'array(shape)', slots: [value([2, 2], SHAPE.filter((k) => k !== 'undefined' && k !== 'null'))], call: (s: number[]) => array([1, 2, 3, 4], { backend: b, shape: s }) },
    { name: 'array(dtype)', slots: [value('float32', ['string', 'numericString', 'null', 'NaN', 'object', 'function', 'boolean'])], call: (dtype: string) => array([1, 2], { backend: b, dtype: dtype as 'float32' }) },
    { name: 'array(backend)', slots: [value(b, ['string', 'numericString', 'null', 'NaN', 'object', 'function', 'boolean', 'emptyArray'])], call: (bk: Backend) => array([1, 2], { backend: bk }) },
    { name: 'full', slots: [value([2, 3], SHAPE), value(1, INVALID.notNumber), opts(b)], call: (s: number[], v: number, o: object) => full(s, v, withBackend(o, b) as never) },
    { name: 'full(dtype)', slots: [value('float32', ['string', 'null', 'NaN', 'object'])], call: (dtype: string) => full([2], 0, { backend: b, dtype: dtype as 'float32' }) },
    { name: 'zeros', slots: [value([2, 3], SHAPE), opts(b)], call: (s: number[], o: object) => zeros(s, withBackend(o, b) as never) },
    { name: 'zeros(huge)', slots: [value(2, ['huge', 'negative', 'fraction', 'NaN'])], call: (n: number) => zeros([n, 1e6], { backend: b }) },
    { name: 'ones', slots: [value([2, 3], SHAPE), opts(b)], call: (s: number[], o: object) => ones(s, withBackend(o, b) as never) },
    { name: 'fullLike', slots: [lone(), value(1, INVALID.notNumber)], call: (a: Arr, v: number) => fullLike(a, v) },
    { name: 'arange', slots: [value(0, INVALID.finite), value(5, INVALID.finite), value(1, INVALID.finite)], call: (s: number, e: number, st: number) => arange(s, e, st, { backend: b }) },
    { name: 'eye', slots: [value(2, INVALID.int), value(3, INVALID.int)], call: (n: number, m: number) => eye(n, m, { backend: b }) },
    // null in an options field means "the default", as undefined does.
    { name: 'rand', slots: [value([2, 2], SHAPE), value(0, NUMBER_FIELD), value(1, NUMBER_FIELD)], call: (s: number[], low: number, high: number) => rand(s, { backend: b, low, high }) },
    { name: 'rand(low > high)', slots: [value(0, [...NUMBER_FIELD, 'huge'])], call: (low: number) => rand([2], { backend: b, low, high: low === 0 ? 1 : -1e13 }) },
    { name: 'randn', slots: [value([2, 2], SHAPE), value(0, NUMBER_FIELD), value(1, [...NUMBER_FIELD, 'negative'])], call: (s: number[], mean: number, std: number) => randn(s, { backend: b, mean, std }) },
    { name: 'randn(generator)', slots: [value(undefined, ['string', 'null', 'object', 'function', 'NaN'])], call: (g: never) => randn([2], { backend: b, generator: g }) },
  );
  return cases;
}

export interface BackendFuzzOptions {
  /** Skip, with this reason printed loudly (e.g. no WebGPU adapter). */
  skip?: string | false;
  /** A second backend, for the "array from another backend" kind. */
  foreign: () => Backend | Promise<Backend>;
  rounds?: number;
  seed?: number;
}

export interface FuzzContextOptions {
  /** Turns a fresh NDArray into the API's kind (e.g. an autograd Tensor); default: the NDArray. */
  wrap?: (array: NDArray) => { dispose(): void };
  /** The value at flat index i of a made array; default small positive numbers (0.5 .. 1.5). */
  value?: (i: number) => number;
}

/** A fuzz context over arrays on `backend` (NDArrays, or what `wrap` makes of them). */
export function ndarrayFuzzContext(backend: Backend, foreign: Backend, options: FuzzContextOptions = {}): FuzzContext {
  const wrap = options.wrap ?? ((a: NDArray) => a);
  const value = options.value ?? ((i: number) => 0.5 + (i % 5) * 0.25);
  const make = (shape: readonly number[], b: Backend) => {
    const n = shape.reduce((p, d) => p * d, 1);
    return wrap(NDArray.fromData(Float32Array.from({ length: n }, (_, i) => value(i)), shape, b));
  };
  return {
    make: (shape) => make(shape, backend),
    disposed: (shape) => {
      const a = make(shape, backend);
      a.dispose();
      return a;
    },
    foreign: (shape) => make(shape, foreign),
  };
}

/** The ndarray fuzz as one vitest test: prints its counts and asserts zero bad outcomes. */
export function runBackendFuzz(name: string, factory: () => Backend | Promise<Backend>, options: BackendFuzzOptions): void {
  if (options.skip) {
    console.warn(`\n!!! invalid-call fuzz for backend '${name}' SKIPPED: ${options.skip}\n`);
    describe.skip(`invalid-call fuzz: ${name}`, () => {
      it('skipped', () => undefined);
    });
    return;
  }
  describe(`invalid-call fuzz: ${name}`, () => {
    let backend: Backend;
    let foreign: Backend;
    beforeAll(async () => {
      backend = await factory();
      foreign = await options.foreign();
    });
    afterAll(() => {
      foreign.destroy?.();
    });
    it('every invalid call of the ndarray API gets a NeedleError and leaves no buffer behind', async () => {
      const liveBefore = backend.memory().buffers + foreign.memory().buffers;
      const report = await fuzzInvalidCalls({
        cases: ndarrayFuzzCases(backend),
        ctx: ndarrayFuzzContext(backend, foreign),
        liveBuffers: () => backend.memory().buffers + foreign.memory().buffers,
        rounds: options.rounds ?? 2000,
        seed: options.seed,
      });
      console.log(formatFuzzReport(`ndarray on ${name}`, report));
      expect(report.raw + report.silent + report.leaked, `bad outcomes:\n${formatFindings(report)}`).toBe(0);
      expect(report.clear).toBe(report.calls);
      // The fuzz itself disposes everything it made.
      expect(backend.memory().buffers + foreign.memory().buffers).toBe(liveBefore);
    });
  });
}
