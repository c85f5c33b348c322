/**
 * ResNet9 and LanguageModel against PyTorch (scripts/gen_model_fixtures.py writes
 * ./fixtures/resnet9.json and ./fixtures/language_model.json), plus their errors, names and a
 * leak-free training loop of each.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { Generator, array, arange, manualSeed, tidy, type NDArray } from '@needle/ndarray';
import { batchify, getBatch } from '@needle/data';
import { Adam } from '@needle/optim';
import { add, mul, noGrad, randn, sub, sum, tensor, type Tensor } from '@needle/autograd';
import { CrossEntropyLoss, LanguageModel, ResNet9, type LanguageModelState, type Module, type SeqModel } from '../src/index';
import { expectValues, liveBuffers } from './helpers';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Json = any;

const fixture = (name: string): Json => JSON.parse(readFileSync(new URL(`./fixtures/${name}.json`, import.meta.url), 'utf8'));

/** PyTorch's names in needle: seq_model.weight_ih_l0 -> seqModel.weightIhL0, running_mean -> runningMean. */
function needleName(torchName: string): string {
  return torchName.replace(/_([a-z0-9])/g, (_m, ch: string) => ch.toUpperCase());
}

/** The generator's recipe: value[i] = offset + scale * 2 (frac(sin(12.9898 i + phase) * 43758.5453) - 0.5), rounded to float32. */
function fromRecipe(r: { offset: number; scale: number; phase: number; shape: number[] }): NDArray {
  const n = r.shape.reduce((p, d) => p * d, 1);
  const data = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const v = Math.sin(i * 12.9898 + r.phase) * 43758.5453;
    data[i] = r.offset + r.scale * 2 * (v - Math.floor(v) - 0.5);
  }
  return array(data, { shape: r.shape });
}

function load(m: Module, arrays: Record<string, NDArray>): void {
  const sd: Record<string, NDArray> = {};
  for (const [k, v] of Object.entries(arrays)) sd[needleName(k)] = v;
  // Strict for parameters; the BatchNorm buffers keep their initial values, as torch's did.
  const r = m.loadStateDict(sd, { strict: false });
  expect(r.unexpectedKeys).toEqual([]);
  expect(r.missingKeys.filter((k) => !/running|numBatchesTracked/.test(k))).toEqual([]);
  Object.values(sd).forEach((a) => a.dispose());
}

/**
 * Sampled elements against the float64 reference, normwise: |got - want| <= tol * max(1, max |want|).
 * A gradient summed over many terms (a conv weight's) cancels, so float32 is accurate relative to
 * the gradient's scale, not to each small element (torch's float32 result behaves the same).
 */
async function expectSampled(t: Tensor, s: { index: number[]; values: number[] }, tol: number, what: string): Promise<void> {
  const got = await t.toArray();
  const scale = Math.max(1, ...s.values.map(Math.abs));
  s.index.forEach((i, k) => {
    const want = s.values[k];
    expect(Math.abs(got[i] - want), `${what}[${i}]: got ${got[i]}, PyTorch (float64) ${want}`).toBeLessThanOrEqual(tol * scale);
  });
}

// float32 through 8 convolutions and batch norms, or a few recurrent steps; torch and needle sum in
// different orders.
const TOL = 1e-5;

describe('ResNet9 vs PyTorch', () => {
  const c = fixture('resnet9');

  it('has needle hw4\'s architecture: output shape, parameter names and count', () => {
    const m = new ResNet9();
    const names = [...m.namedParameters()].map(([n]) => n);
    expect(names).toEqual(Object.keys(c.recipes).map(needleName));
    expect(m.numParameters()).toBe(431_946);
    expect(names.slice(0, 4)).toEqual(['model.0.conv.weight', 'model.0.conv.bias', 'model.0.bn.weight', 'model.0.bn.bias']);
    expect([...m.namedParameters()].find(([n]) => n === 'model.2.fn.1.conv.weight')![1].shape).toEqual([32, 32, 3, 3]);
    const small = randn([2, 3, 28, 28]);
    expect(() => m.call(small)).toThrow(/ResNet9: input of shape \[2, 3, 28, 28\]: expected \[N, 3, 32, 32\]/);
    small.dispose();
    m.dispose();
  });

  it('training-mode forward and backward (outputs, input and parameter gradients), running stats, eval output', async () => {
    const before = liveBuffers();
    const m = new ResNet9();
    const arrays: Record<string, NDArray> = {};
    for (const [name, r] of Object.entries(c.recipes as Record<string, Json>)) arrays[name] = fromRecipe(r);
    load(m, arrays);
    const xd = fromRecipe(c.x);
    const x = tensor(xd, { requiresGrad: true });
    xd.dispose();
    const out = m.call(x);
    const seen = out.detach();
    const g = tensor(c.g);
    const loss = sum(mul(out, g));
    loss.backward();
    await expectValues(seen, c.out, TOL, [8, 10]);
    await expectSampled(x.grad!, c.dx, TOL, 'dx');
    const params = Object.fromEntries(m.namedParameters());
    for (const [name, s] of Object.entries(c.grads as Record<string, Json>)) await expectSampled(params[needleName(name)].grad!, s, TOL, `${name}.grad`);
    const buffers = Object.fromEntries(m.namedBuffers());
    for (const [name, v] of Object.entries(c.buffers as Record<string, Json>)) await expectValues(buffers[needleName(name)], v, TOL);
    m.eval();
    const evalOut = tidy(() => noGrad(() => m.call(x)));
    await expectValues(evalOut, c.evalOut, TOL);
    [x, g, loss, seen, evalOut].forEach((t) => t.dispose());
    m.dispose();
    expect(liveBuffers()).toBe(before);
  });
});

function lmLabel(c: Json): string {
  return `${c.seqModel}${c.seqModel === 'transformer' ? ` (${c.activation})` : ''}, ${c.numLayers} layer(s)${c.state.length ? ', initial state' : ''}`;
}

describe('LanguageModel vs PyTorch', () => {
  const cases = fixture('language_model') as Json[];

  it.each(cases.map((c): [string, Json] => [lmLabel(c), c]))('%s: logits, state, gradients', async (_name, c: Json) => {
    const before = liveBuffers();
    const m = new LanguageModel({
      embeddingSize: c.embeddingSize, outputSize: c.vocab, hiddenSize: c.hiddenSize, numLayers: c.numLayers,
      seqModel: c.seqModel, seqLen: c.seqLen, nhead: c.nhead, activation: c.activation,
    });
    const arrays: Record<string, NDArray> = {};
    for (const [k, v] of Object.entries(c.params as Record<string, Json>)) arrays[k] = array(v);
    load(m, arrays);
    expect([...m.namedParameters()].map(([n]) => n).sort()).toEqual(Object.keys(c.params).map(needleName).sort());
    const ids = array(c.ids);
    const states = (c.state as Json[]).map((s) => tensor(s, { requiresGrad: true }));
    const state: LanguageModelState = states.length === 0 ? null : c.seqModel === 'lstm' ? [states[0], states[1]] : states[0];
    const [logits, next] = m.call(ids, state);
    const outs = next === null ? [] : next instanceof Array ? [...next] : [next as Tensor];
    expect(outs.length).toBe(c.newState.length);
    const seen = [logits, ...outs].map((t) => t.detach());
    const ups = [tensor(c.g), ...(c.gs as Json[]).map((w) => tensor(w))];
    let loss = sum(mul(logits, ups[0]));
    outs.forEach((s, i) => (loss = add(loss, sum(mul(s, ups[i + 1])))));
    loss.backward();
    await expectValues(seen[0], c.logits, TOL, [ids.shape[0] * ids.shape[1], c.vocab]);
    for (let i = 0; i < outs.length; i++) await expectValues(seen[i + 1], c.newState[i], TOL);
    for (let i = 0; i < states.length; i++) await expectValues(states[i].grad!, c.dState[i], TOL);
    const params = Object.fromEntries(m.namedParameters());
    for (const [k, g] of Object.entries(c.grads as Record<string, Json>)) {
      const got = params[needleName(k)].grad;
      expect(got, `${k}.grad`).not.toBeNull();
      await expectValues(got!, g, TOL);
    }
    [...seen, ...states, ...ups, loss].forEach((t) => t.dispose());
    ids.dispose();
    m.dispose();
    expect(liveBuffers()).toBe(before);
  });

  it('checks its options and inputs', () => {
    expect(() => new LanguageModel({ embeddingSize: 6, outputSize: 5, hiddenSize: 4, seqModel: 'transformer', nhead: 4 })).toThrow(/LanguageModel: embeddingSize=6 must be divisible by nhead=4/);
    expect(() => new LanguageModel({ embeddingSize: 6, outputSize: 5, hiddenSize: 4, seqModel: 'cnn' as SeqModel })).toThrow(/LanguageModel: seqModel must be 'rnn', 'lstm', 'gru' or 'transformer', got cnn/);
    expect(() => new LanguageModel({ embeddingSize: 0, outputSize: 5, hiddenSize: 4 })).toThrow(/LanguageModel: embeddingSize must be a positive integer, got 0/);
    const t = new LanguageModel({ embeddingSize: 4, outputSize: 5, hiddenSize: 4, seqModel: 'transformer', seqLen: 3, nhead: 2 });
    const long = arange(8).reshape([4, 2]);
    expect(() => t.call(long)).toThrow(/LanguageModel: ids of shape \[4, 2\] are longer than seqLen=3/);
    const flat = arange(4);
    expect(() => t.call(flat)).toThrow(/LanguageModel: ids of shape \[4\]: expected \[seqLen, batch\] word ids/);
    const l = new LanguageModel({ embeddingSize: 4, outputSize: 5, hiddenSize: 3, seqModel: 'lstm' });
    expect(() => l.call(arange(4).reshape([2, 2]), randn([1, 2, 3]))).toThrow(/LanguageModel: the LSTM state must be a pair \[h, c\]/);
    [long, flat].forEach((a) => a.dispose());
    t.dispose();
    l.dispose();
  });
});

describe('README example (Models)', () => {
  it('a LanguageModel (LSTM) learns a cyclic corpus with truncated BPTT, loss falls, no leak', async () => {
    const start = liveBuffers();
    const losses: number[] = [];
    let afterFirst = -1;

    // ---- README code starts here ----
    manualSeed(0);
    // A corpus of word ids (the cycle 0 1 ... 9 0 1 ...) arranged in 4 streams of 50 rows.
    const source = batchify(Array.from({ length: 200 }, (_, i) => i % 10), 4);
    const model = new LanguageModel({ embeddingSize: 16, outputSize: 10, hiddenSize: 32, seqModel: 'lstm' });
    const lossFn = new CrossEntropyLoss();
    const opt = new Adam(model.parameters(), { lr: 0.02 });
    const bptt = 10;
    let state: LanguageModelState = null;
    for (let epoch = 0; epoch < 3; epoch++) for (let i = 0; i < source.shape[0] - 1; i += bptt) {
      const [data, target] = getBatch(source, i, bptt); // ids [10, 4] and the next ids [40]
      const [logits, h] = model.call(data, state); // logits [40, 10], h = [hN, cN]
      const loss = lossFn.call(logits, target);
      loss.backward();
      opt.step();
      opt.zeroGrad();
      // Truncated BPTT: the next window starts from this one's state, detached from its graph.
      const [hN, cN] = h as [Tensor, Tensor];
      state = [hN.detach(), cN.detach()];
      if (i === 0) console.log(epoch, await loss.item());
      losses.push(await loss.item()); // (test only)
      [loss, data, target].forEach((t) => t.dispose());
      if (losses.length === 1) afterFirst = liveBuffers(); // (test only)
      else expect(liveBuffers(), `live buffers after window ${losses.length}`).toBe(afterFirst); // (test only)
    }
    (state as [Tensor, Tensor]).forEach((t) => t.dispose());
    source.dispose();
    opt.dispose();
    model.dispose();
    // ---- README code ends here ----

    expect(losses).toHaveLength(15);
    expect(losses[14]).toBeLessThan(losses[0] * 0.3);
    expect(liveBuffers()).toBe(start);
  });
});

describe('training loops keep the live buffer count flat', () => {
  it('ResNet9: SGD steps with batch norm on 4 images', async () => {
    const start = liveBuffers();
    const g = new Generator(3);
    const m = new ResNet9({ generator: g });
    const x = randn([4, 3, 32, 32], { generator: g });
    const y = array([0, 3, 7, 9]);
    const lossFn = new CrossEntropyLoss();
    let afterFirst = -1;
    const losses: number[] = [];
    for (let step = 0; step < 4; step++) {
      const loss = lossFn.call(m.call(x), y);
      loss.backward();
      noGrad(() => tidy(() => {
        for (const p of m.parameters()) p.assign(sub(p, mul(p.grad!, 0.05)));
      }));
      m.zeroGrad();
      losses.push(await loss.item());
      loss.dispose();
      if (step === 0) afterFirst = liveBuffers();
      else expect(liveBuffers(), `live buffers after step ${step + 1}`).toBe(afterFirst);
    }
    expect(losses[3]).toBeLessThan(losses[0]);
    x.dispose();
    y.dispose();
    m.dispose();
    expect(liveBuffers()).toBe(start);
  });

  it.each([['lstm', 1, 3], ['transformer', 2, 0.3]] as const)('LanguageModel (%s): truncated BPTT with the detached state carried over', async (kind, numLayers, lr) => {
    const start = liveBuffers();
    const g = new Generator(4);
    const m = new LanguageModel({ embeddingSize: 8, outputSize: 7, hiddenSize: 8, numLayers, seqModel: kind, seqLen: 4, nhead: 2, generator: g });
    const lossFn = new CrossEntropyLoss();
    // Two columns of the cycle 0 1 2 ... 6 0 1 ... (offset by 3): the next token is predictable.
    const data = array(Float32Array.from({ length: 40 }, (_, k) => (Math.floor(k / 2) + 3 * (k % 2)) % 7), { shape: [20, 2] });
    let state: LanguageModelState = null;
    let afterFirst = -1;
    const losses: number[] = [];
    for (let step = 0; step < 12; step++) {
      const i = (step * 4) % 16;
      const [xb, yb] = tidy(() => [data.get(`${i}:${i + 4}`).clone(), data.get(`${i + 1}:${i + 5}`).reshape([8]).clone()]);
      const [loss, next] = tidy(() => {
        const [logits, h] = m.call(xb, state);
        const l = lossFn.call(logits, yb);
        const detached: LanguageModelState = h === null ? null : h instanceof Array ? [h[0].detach(), h[1].detach()] : (h as Tensor).detach();
        l.backward();
        return [l, detached] as const;
      });
      if (state !== null) (state instanceof Array ? [...state] : [state as Tensor]).forEach((t) => t.dispose());
      state = next;
      noGrad(() => tidy(() => {
        for (const p of m.parameters()) p.assign(sub(p, mul(p.grad!, lr)));
      }));
      m.zeroGrad();
      losses.push(await loss.item());
      loss.dispose();
      [xb, yb].forEach((a) => a.dispose());
      if (step === 0) afterFirst = liveBuffers();
      else expect(liveBuffers(), `live buffers after step ${step + 1}`).toBe(afterFirst);
    }
    expect(losses[11]).toBeLessThan(losses[0] * 0.8);
    if (state !== null) (state instanceof Array ? [...state] : [state as Tensor]).forEach((t) => t.dispose());
    data.dispose();
    m.dispose();
    expect(liveBuffers()).toBe(start);
  });
});
