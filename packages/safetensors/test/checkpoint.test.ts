// Whole-run checkpoints with hand-made Stateful parts shaped like a Module (borrowed live arrays),
// an Optimizer (copies), an RNG (typed arrays, undefined) and plain counters.
import { describe, expect, it } from 'vitest';
import { NDArray, array, fail } from '@needle/ndarray';
import { decode, loadCheckpoint, save, saveCheckpoint } from '../src/index';
import { bitsOf, expectThrowsMessage, fromBits, liveBuffers, makeFile } from './helpers';

/** Like a Module: stateDict() lends its live arrays; loadStateDict copies values in, checked first. */
class FakeModule {
  params: Record<string, NDArray>;
  constructor(seed: number) {
    this.params = {
      'layers.0.weight': NDArray.fromData(Float32Array.from({ length: 6 }, (_, i) => Math.sin(seed + i)), [2, 3]),
      'layers.0.bias': NDArray.fromData(Float32Array.from([seed, -0]), [2]),
      'norm.runningMean': NDArray.fromData(new Float32Array(new Uint32Array([0x7fc12345, 1, 0x80000001]).buffer), [3]),
    };
  }
  stateDict() {
    return { ...this.params };
  }
  checkStateDict(state: Record<string, NDArray>) {
    for (const [k, p] of Object.entries(this.params)) {
      if (!(state[k] instanceof NDArray) || state[k].shape.join() !== p.shape.join()) fail('FakeModule.loadStateDict', `bad '${k}'`);
    }
  }
  loadStateDict(state: Record<string, NDArray>) {
    this.checkStateDict(state);
    for (const [k, p] of Object.entries(this.params)) p.set(':', state[k]);
  }
  dispose() {
    for (const p of Object.values(this.params)) p.dispose();
  }
}

/** Like an Optimizer: stateDict() returns copies (the caller's to dispose); loadStateDict clones. */
class FakeOptimizer {
  state = new Map<number, { step: number; expAvg: NDArray }>();
  lr = 0.01;
  constructor(seed: number) {
    this.state.set(0, { step: seed, expAvg: NDArray.fromData(Float32Array.from([seed / 3, 1e-40]), [2]) });
    this.state.set(3, { step: seed + 1, expAvg: NDArray.fromData(Float32Array.from([Infinity]), [1]) });
  }
  stateDict() {
    const state: Record<number, { step: number; expAvg: NDArray }> = {};
    for (const [k, v] of this.state) state[k] = { step: v.step, expAvg: v.expAvg.clone() };
    return { state, paramGroups: [{ lr: this.lr, betas: [0.9, 0.999], params: [0, 3] }] };
  }
  loadStateDict(dict: ReturnType<FakeOptimizer['stateDict']>) {
    this.dispose();
    for (const [k, v] of Object.entries(dict.state)) this.state.set(Number(k), { step: v.step, expAvg: v.expAvg.clone() });
    this.lr = dict.paramGroups[0].lr;
  }
  dispose() {
    for (const v of this.state.values()) v.expAvg.dispose();
    this.state.clear();
  }
}

/** Like a random Generator: no arrays at all. */
class FakeRng {
  s = new Uint32Array([1, 2, 3, 0xffffffff]);
  spare: number | undefined = undefined;
  stateDict() {
    return { s: this.s.slice(), spare: this.spare };
  }
  loadStateDict(state: { s: Uint32Array; spare: number | undefined }) {
    this.s = state.s.slice();
    this.spare = state.spare;
  }
}

async function snapshot(m: FakeModule, o: FakeOptimizer) {
  const out: Record<string, number[]> = {};
  for (const [k, p] of Object.entries(m.params)) out[`m.${k}`] = await bitsOf(p);
  for (const [k, v] of o.state) out[`o.${k}`] = [v.step, ...(await bitsOf(v.expAvg))];
  return out;
}

describe('checkpoints', () => {
  it('round trip: every part comes back bit for bit, and nothing leaks', async () => {
    const before = liveBuffers();
    const model = new FakeModule(1);
    const optimizer = new FakeOptimizer(5);
    const rng = new FakeRng();
    rng.spare = -0.123456789012345;
    const afterSetup = liveBuffers();
    const plain = { epoch: 3, history: [1.5, NaN, -0, Infinity, -Infinity], config: { $tensor: 'not a marker', nested: new Map<unknown, unknown>([[1, 'one'], ['k', [true, null]]]) }, big: 2n ** 70n, nothing: undefined };
    const bytes = await saveCheckpoint({ model, optimizer, rng, ...plain }, { note: 'run 7' });
    expect(liveBuffers(), "the optimizer's copies are disposed after saving").toBe(afterSetup);
    const want = await snapshot(model, optimizer);

    const model2 = new FakeModule(2);
    const optimizer2 = new FakeOptimizer(9);
    optimizer2.lr = 1;
    const rng2 = new FakeRng();
    const loaded = await loadCheckpoint(bytes, { model: model2, optimizer: optimizer2, rng: rng2, epoch: 0 });
    expect(await snapshot(model2, optimizer2)).toEqual(want);
    expect(optimizer2.lr).toBe(0.01);
    expect(rng2.s).toEqual(new Uint32Array([1, 2, 3, 0xffffffff]));
    expect(Object.is(rng2.spare, -0.123456789012345)).toBe(true);
    expect(loaded.metadata).toEqual({ note: 'run 7' });
    expect(loaded.data).toEqual(plain);
    expect(Object.is((loaded.data.history as number[])[2], -0)).toBe(true);
    expect(loaded.data.config).toEqual({ $tensor: 'not a marker', nested: new Map<unknown, unknown>([[1, 'one'], ['k', [true, null]]]) });
    expect(Object.keys(loaded.data)).toContain('nothing');

    for (const p of [model, model2, optimizer, optimizer2]) p.dispose();
    expect(liveBuffers()).toBe(before);
  });

  it('the file is a plain safetensors file: tensors by dotted path, the rest as JSON metadata', async () => {
    const model = new FakeModule(1);
    const optimizer = new FakeOptimizer(5);
    const bytes = await saveCheckpoint({ model, optimizer, step: 120 });
    const { tensors, metadata } = decode(bytes);
    expect(Object.keys(tensors).sort()).toEqual([
      'model.layers.0.bias', 'model.layers.0.weight', 'model.norm.runningMean', 'optimizer.state.0.expAvg', 'optimizer.state.3.expAvg',
    ]);
    expect(tensors['model.layers.0.weight'].shape).toEqual([2, 3]);
    expect(JSON.parse(metadata!['needle.checkpoint'])).toEqual({
      format: 'needle-checkpoint', version: 1,
      parts: [{ name: 'model', stateful: true }, { name: 'optimizer', stateful: true }, { name: 'step', stateful: false }],
    });
    expect(JSON.parse(metadata!['needle.part.optimizer'])).toEqual({
      state: { 0: { step: 5, expAvg: { $tensor: 'optimizer.state.0.expAvg' } }, 3: { step: 6, expAvg: { $tensor: 'optimizer.state.3.expAvg' } } },
      paramGroups: [{ lr: 0.01, betas: [0.9, 0.999], params: [0, 3] }],
    });
    expect(metadata!['needle.part.step']).toBe('120');
    model.dispose();
    optimizer.dispose();
  });

  it('a part whose checkStateDict refuses changes nothing in any part', async () => {
    const model = new FakeModule(1);
    const optimizer = new FakeOptimizer(5);
    const bytes = await saveCheckpoint({ optimizer, model });
    const optimizer2 = new FakeOptimizer(9);
    const wrong = new FakeModule(2);
    wrong.params['layers.0.bias'].dispose();
    wrong.params['layers.0.bias'] = NDArray.fromData(new Float32Array(5), [5]);
    const before = await snapshot(wrong, optimizer2);
    const live = liveBuffers();
    await expectThrowsMessage(() => loadCheckpoint(bytes, { optimizer: optimizer2, model: wrong }), "FakeModule.loadStateDict: bad 'layers.0.bias'");
    expect(await snapshot(wrong, optimizer2)).toEqual(before);
    expect(liveBuffers()).toBe(live);
    for (const p of [model, optimizer, optimizer2, wrong]) p.dispose();
  });

  it('parts must match: missing, extra, or of the wrong kind (strict: false skips the first two)', async () => {
    const model = new FakeModule(1);
    const rng = new FakeRng();
    const bytes = await saveCheckpoint({ model, rng, epoch: 1 }, undefined);
    const live = liveBuffers();
    await expectThrowsMessage(() => loadCheckpoint(bytes, { model }), "loadCheckpoint: buffer: part 'rng' is in the checkpoint but not given");
    await expectThrowsMessage(() => loadCheckpoint(bytes, { model, rng, extra: new FakeRng() }), "part 'extra' is not in the checkpoint (it holds 'model', 'rng', 'epoch'");
    await expectThrowsMessage(() => loadCheckpoint(bytes, { model, rng: { seed: 1 } }), "part 'rng' was saved from a Stateful object, but the given one has no stateDict()/loadStateDict()");
    await expectThrowsMessage(() => loadCheckpoint(bytes, { model, rng, epoch: new FakeRng() }), "part 'epoch' was saved as plain data, but a Stateful object is given");
    expect(liveBuffers()).toBe(live);
    rng.s[0] = 99;
    const loaded = await loadCheckpoint(bytes, { rng, extra: new FakeRng() }, { strict: false });
    expect(rng.s[0]).toBe(1);
    expect(loaded.data).toEqual({ epoch: 1 });
    expect(liveBuffers()).toBe(live);
    model.dispose();
  });

  it("keys named '__proto__' stay ordinary keys, in state and in metadata", async () => {
    const cfg = { ['__proto__']: { polluted: true }, ok: 1 };
    const { data, metadata } = await loadCheckpoint(await saveCheckpoint({ cfg }, { ['__proto__']: 'x' }), {});
    const got = data.cfg as Record<string, unknown>;
    expect(Object.getPrototypeOf(got)).toBe(Object.prototype);
    expect(Object.keys(got)).toEqual(['__proto__', 'ok']);
    expect(Object.getOwnPropertyDescriptor(got, '__proto__')?.value).toEqual({ polluted: true });
    expect(({} as { polluted?: boolean }).polluted).toBeUndefined();
    expect(Object.getOwnPropertyDescriptor(metadata, '__proto__')?.value).toBe('x');
  });

  it('plain-data parts may hold arrays: they come back as new arrays, the caller\'s to dispose', async () => {
    const best = array([1, 2, 3]);
    const bytes = await saveCheckpoint({ best: { loss: 0.5, weights: best } });
    const live = liveBuffers();
    const { data } = await loadCheckpoint(bytes, {});
    const got = data.best as { loss: number; weights: NDArray };
    expect(got.loss).toBe(0.5);
    expect(await got.weights.toNested()).toEqual([1, 2, 3]);
    expect(liveBuffers()).toBe(live + 1);
    got.weights.dispose();
    best.dispose();
  });

  it('bad checkpoints: not a checkpoint, a tensor missing or not referred to, bad index', async () => {
    const x = array([1]);
    const plainFile = await save({ x });
    await expectThrowsMessage(() => loadCheckpoint(plainFile, {}), "loadCheckpoint: buffer: not a needle checkpoint (no 'needle.checkpoint' in __metadata__)");
    const index = JSON.stringify({ format: 'needle-checkpoint', version: 1, parts: [{ name: 'p', stateful: false }] });
    const missing = await save({ x }, { 'needle.checkpoint': index, 'needle.part.p': '{"a":{"$tensor":"p.a"}}' });
    await expectThrowsMessage(() => loadCheckpoint(missing, {}, { source: 'ckpt' }), "ckpt: part 'p' refers to a tensor 'p.a' that the file does not hold");
    const extra = await save({ x }, { 'needle.checkpoint': index, 'needle.part.p': '3' });
    await expectThrowsMessage(() => loadCheckpoint(extra, {}), "the file holds tensors no part refers to: 'x'");
    const twice = await save({ x }, { 'needle.checkpoint': index, 'needle.part.p': '[{"$tensor":"x"},{"$tensor":"x"}]' });
    await expectThrowsMessage(() => loadCheckpoint(twice, {}), "the tensor 'x' is referred to twice");
    const noPart = makeFile({ __metadata__: { 'needle.checkpoint': index } });
    await expectThrowsMessage(() => loadCheckpoint(noPart, {}), "the metadata has no 'needle.part.p' for part 'p'");
    const badJson = makeFile({ __metadata__: { 'needle.checkpoint': index, 'needle.part.p': '{' } });
    await expectThrowsMessage(() => loadCheckpoint(badJson, {}), "the state of part 'p' is not valid JSON");
    const future = makeFile({ __metadata__: { 'needle.checkpoint': index.replace('"version":1', '"version":2') } });
    await expectThrowsMessage(() => loadCheckpoint(future, {}), 'checkpoint format version 2; this version of @needle/safetensors reads version 1');
    const badMarker = makeFile({ __metadata__: { 'needle.checkpoint': index, 'needle.part.p': '{"$number":"five"}' } });
    await expectThrowsMessage(() => loadCheckpoint(badMarker, {}), "part 'p': a $number marker for \"five\"");
    x.dispose();
  });

  it('what cannot be saved is refused before anything is read', async () => {
    const live = liveBuffers();
    class Opaque { }
    await expectThrowsMessage(() => saveCheckpoint({ p: { a: { b: new Opaque() } } }), "saveCheckpoint: 'p.a.b' of part 'p' is a Opaque, which a checkpoint cannot store");
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    await expectThrowsMessage(() => saveCheckpoint({ p: cyclic }), "'p.self' of part 'p' refers back to an object that contains it");
    const x = array([1]);
    await expectThrowsMessage(() => saveCheckpoint({ p: { 'a.b': x, a: { b: x } } }), "two arrays would both be saved as 'p.a.b'");
    await expectThrowsMessage(() => saveCheckpoint({ p: 1 }, { 'needle.x': 'y' }), "metadata key \"needle.x\": keys starting with 'needle.' are reserved");
    await expectThrowsMessage(() => saveCheckpoint({ p: () => 1 }), "part 'p' is a function");
    await expectThrowsMessage(() => saveCheckpoint([] as never), 'expected the parts as an object of named parts');
    // A stateDict that throws: copies made so far are disposed.
    const throwing = { stateDict: () => { array([1, 2]); throw new Error('no state'); }, loadStateDict: () => undefined };
    await expectThrowsMessage(() => saveCheckpoint({ throwing }), 'no state');
    x.dispose();
    expect(liveBuffers()).toBe(live);
  });

  it('class instances wrapping an NDArray as .data (Tensors) save as it and load back as NDArrays; plain objects are walked', async () => {
    const w = fromBits([0x3f800000, 0xff800000], [2]);
    let received: unknown;
    const part = { stateDict: () => ({ weight: { data: w, requiresGrad: true } }), loadStateDict: (s: unknown) => { received = s; } };
    // A class instance (like a Tensor) wrapping the array, not a plain object.
    class TensorLike { constructor(readonly data: NDArray) { } }
    const part2 = { stateDict: () => ({ weight: new TensorLike(w) }), loadStateDict: (s: { weight: NDArray }) => { received = s.weight.shape; } };
    const bytes = await saveCheckpoint({ part, part2 });
    expect(Object.keys(decode(bytes).tensors).sort()).toEqual(['part.weight.data', 'part2.weight']);
    let first: unknown;
    const part1 = { ...part, loadStateDict: (s: { weight: { data: NDArray; requiresGrad: boolean } }) => { first = [s.weight.requiresGrad, s.weight.data.shape]; } };
    await loadCheckpoint(bytes, { part: part1, part2 });
    expect(first).toEqual([true, [2]]);
    expect(received).toEqual([2]);
    w.dispose();
  });
});
