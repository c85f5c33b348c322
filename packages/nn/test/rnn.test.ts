/**
 * Recurrent layers against PyTorch (scripts/gen_fixtures.py writes ./fixtures/rnn.json), plus
 * gradcheck, shape errors, parameter names, and a leak-free training loop. Each fixture's loss is
 * sum(out * g) + sum(hN * gh) (+ sum(cN * gc)), so the final states' gradient paths are checked too.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { Generator, array, tidy, type NDArray } from '@needle/ndarray';
import { Tensor, add, concat, getitem, gradcheck, mul, noGrad, randn, sub, sum, tensor } from '@needle/autograd';
import { GRU, GRUCell, LSTM, LSTMCell, Linear, MSELoss, Module, RNN, RNNCell } from '../src/index';
import { expectValues, flat, liveBuffers } from './helpers';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Json = any;

const fixtures: Json[] = JSON.parse(readFileSync(new URL('./fixtures/rnn.json', import.meta.url), 'utf8'));

/** PyTorch's parameter names in needle: weight_ih_l0 -> weightIhL0, bias_hh -> biasHh. */
function needleName(torchName: string): string {
  return torchName.replace(/_([a-z0-9])/g, (_m, ch: string) => ch.toUpperCase());
}

function build(c: Json): Module {
  const opts = { bias: c.bias as boolean };
  switch (c.kind) {
    case 'RNNCell': return new RNNCell(c.inputSize, c.hiddenSize, { ...opts, nonlinearity: c.nonlinearity });
    case 'LSTMCell': return new LSTMCell(c.inputSize, c.hiddenSize, opts);
    case 'GRUCell': return new GRUCell(c.inputSize, c.hiddenSize, opts);
    case 'RNN': return new RNN(c.inputSize, c.hiddenSize, { ...opts, numLayers: c.numLayers, batchFirst: c.batchFirst, nonlinearity: c.nonlinearity });
    case 'LSTM': return new LSTM(c.inputSize, c.hiddenSize, { ...opts, numLayers: c.numLayers, batchFirst: c.batchFirst });
    case 'GRU': return new GRU(c.inputSize, c.hiddenSize, { ...opts, numLayers: c.numLayers, batchFirst: c.batchFirst });
    default: throw new Error(`unknown kind ${c.kind}`);
  }
}

/** Run the module the way its kind is called; returns [output | null, h, c | null]. */
function run(m: Module, c: Json, x: Tensor, h0: Tensor | undefined, c0: Tensor | undefined): [Tensor | null, Tensor, Tensor | null] {
  const isLstm = c.kind.startsWith('LSTM');
  if (c.kind.endsWith('Cell')) {
    if (isLstm) {
      const [h, cc] = (m as LSTMCell).call(x, h0 && c0 ? [h0, c0] : undefined);
      return [null, h, cc];
    }
    return [null, (m as RNNCell | GRUCell).call(x, h0), null];
  }
  if (isLstm) {
    const [out, [h, cc]] = (m as LSTM).call(x, h0 && c0 ? [h0, c0] : undefined);
    return [out, h, cc];
  }
  const [out, h] = (m as RNN | GRU).call(x, h0);
  return [out, h, null];
}

function label(c: Json): string {
  const parts = [c.kind, `${c.inputSize}->${c.hiddenSize}`];
  if (!c.kind.endsWith('Cell')) parts.push(`numLayers=${c.numLayers}`);
  if (c.kind.startsWith('RNN')) parts.push(c.nonlinearity);
  if (!c.bias) parts.push('no bias');
  if (c.batchFirst) parts.push('batchFirst');
  parts.push(c.h0 === null ? 'zero state' : 'initial state');
  return parts.join(', ');
}

// float32 through a few recurrent steps; PyTorch and needle sum in different orders.
const TOL = 1e-5;

describe('recurrent layers vs PyTorch', () => {
  it.each(fixtures.map((c): [string, Json] => [label(c), c]))('%s: output, final state, gradients', async (_name, c: Json) => {
    const before = liveBuffers();
    const m = build(c);
    const sd: Record<string, NDArray> = {};
    for (const [k, v] of Object.entries(c.params)) sd[needleName(k)] = array(v as number[][]);
    m.loadStateDict(sd);
    Object.values(sd).forEach((a) => a.dispose());

    const x = tensor(c.x, { requiresGrad: true });
    const h0 = c.h0 === null ? undefined : tensor(c.h0, { requiresGrad: true });
    const c0 = c.c0 === null ? undefined : tensor(c.c0, { requiresGrad: true });
    const [out, hN, cN] = run(m, c, x, h0, c0);
    // detach before backward: backward releases the graph's intermediates
    const seen = [out, hN, cN].map((t) => t?.detach() ?? null);
    const ups: Tensor[] = [];
    const term = (t: Tensor | null, g: Json): Tensor[] => {
      if (t === null) return [];
      const gt = tensor(g);
      ups.push(gt);
      return [sum(mul(t, gt))];
    };
    const terms = [...term(out, c.g), ...term(hN, c.gh), ...term(cN, c.gc)];
    const loss = terms.reduce((a, b) => add(a, b));
    loss.backward();

    if (c.out !== null) await expectValues(seen[0]!, c.out, TOL);
    await expectValues(seen[1]!, c.hN, TOL);
    if (c.cN !== null) await expectValues(seen[2]!, c.cN, TOL);
    await expectValues(x.grad!, c.dx, TOL);
    if (h0) await expectValues(h0.grad!, c.dh0, TOL);
    if (c0) await expectValues(c0.grad!, c.dc0, TOL);
    const params = Object.fromEntries(m.namedParameters());
    expect(Object.keys(params)).toEqual(Object.keys(c.grads).map(needleName));
    for (const [k, g] of Object.entries(c.grads)) {
      const got = params[needleName(k)].grad;
      // A cell run from a zero state never uses weightHh: needle leaves .grad null, PyTorch has zeros.
      if (got === null && c.kind.endsWith('Cell') && c.h0 === null && k === 'weight_hh') {
        expect(flat(g as number[][]).every((v) => v === 0)).toBe(true);
        continue;
      }
      expect(got, `${k}.grad`).not.toBeNull();
      await expectValues(got!, g as number[], TOL);
    }

    [loss, x, h0, c0, ...ups, ...seen].forEach((t) => t?.dispose());
    m.dispose();
    expect(liveBuffers()).toBe(before);
  });
});

describe('parameters and state dict', () => {
  it('uses PyTorch names in camelCase and PyTorch shapes', () => {
    const lstm = new LSTM(3, 5, { numLayers: 2 });
    const shapes = Object.fromEntries([...lstm.namedParameters()].map(([k, p]) => [k, [...p.shape]]));
    expect(shapes).toEqual({
      weightIhL0: [20, 3], weightHhL0: [20, 5], biasIhL0: [20], biasHhL0: [20],
      weightIhL1: [20, 5], weightHhL1: [20, 5], biasIhL1: [20], biasHhL1: [20],
    });
    expect(Object.keys(lstm.stateDict())).toEqual(Object.keys(shapes));
    expect(lstm.allWeights[1].weightHh).toBe(lstm.parameters()[5]);
    lstm.dispose();

    const gru = new GRU(2, 4, { bias: false });
    expect([...gru.namedParameters()].map(([k, p]) => `${k}${JSON.stringify(p.shape)}`)).toEqual(['weightIhL0[12,2]', 'weightHhL0[12,4]']);
    gru.dispose();
    const cell = new RNNCell(2, 3);
    expect([...cell.namedParameters()].map(([k]) => k)).toEqual(['weightIh', 'weightHh', 'biasIh', 'biasHh']);
    cell.dispose();
  });

  it('initialises uniformly on ±1/sqrt(hidden), reproducibly from a generator', async () => {
    const a = new GRU(3, 16, { numLayers: 2, generator: new Generator(3) });
    const b = new GRU(3, 16, { numLayers: 2, generator: new Generator(3) });
    for (const [pa, pb] of a.parameters().map((p, i) => [p, b.parameters()[i]])) {
      const va = await pa.toArray();
      expect(Array.from(await pb.toArray())).toEqual(Array.from(va));
      expect(va.every((v) => Math.abs(v) <= 0.25)).toBe(true);
      expect(va.some((v) => Math.abs(v) > 0.2)).toBe(true);
    }
    a.dispose();
    b.dispose();
  });

  it('describes itself', () => {
    const m = new RNN(3, 4, { numLayers: 2, nonlinearity: 'relu', batchFirst: true, dropout: 0.1 });
    expect(m.toString()).toBe('RNN(3, 4, numLayers=2, batchFirst=true, dropout=0.1, nonlinearity=relu)');
    m.dispose();
    const c = new LSTMCell(3, 4, { bias: false });
    expect(c.toString()).toBe('LSTMCell(3, 4, bias=false)');
    c.dispose();
  });
});

describe('gradcheck (central differences)', () => {
  it('LSTMCell and GRUCell: input and both states', async () => {
    const g = new Generator(11);
    const lstm = new LSTMCell(2, 3, { generator: g });
    const gru = new GRUCell(2, 3, { generator: g });
    const x = randn([2, 2], { generator: g, requiresGrad: true });
    const h = randn([2, 3], { generator: g, requiresGrad: true });
    const c = randn([2, 3], { generator: g, requiresGrad: true });
    const r1 = await gradcheck((xi, hi, ci) => concat(lstm.call(xi, [hi, ci]), 1), [x, h, c]);
    expect(r1.ok).toBe(true);
    const r2 = await gradcheck((xi, hi) => gru.call(xi, hi), [x, h]);
    expect(r2.ok).toBe(true);
    [x, h, c].forEach((t) => t.dispose());
    lstm.zeroGrad();
    gru.zeroGrad();
    lstm.dispose();
    gru.dispose();
  });

  it('a 2-layer RNN through time (BPTT into the input and h0)', async () => {
    const g = new Generator(12);
    const rnn = new RNN(2, 3, { numLayers: 2, generator: g });
    const x = randn([4, 2, 2], { generator: g, requiresGrad: true });
    const h0 = randn([2, 2, 3], { generator: g, requiresGrad: true });
    const r = await gradcheck((xi, hi) => rnn.call(xi, hi)[0], [x, h0]);
    expect(r.ok).toBe(true);
    [x, h0].forEach((t) => t.dispose());
    rnn.zeroGrad();
    rnn.dispose();
  });
});

describe('shapes', () => {
  it('errors name the layer and the shapes', () => {
    const lstm = new LSTM(3, 4, { numLayers: 2 });
    const x = randn([5, 2, 7]);
    expect(() => lstm.call(x)).toThrow(/LSTM.*\[5, 2, 7\].*inputSize=3.*\[seq, batch, 3\]/);
    const good = randn([5, 2, 3]);
    const h0 = randn([1, 2, 4]);
    expect(() => lstm.call(good, [h0, h0])).toThrow(/LSTM.*h0 has shape \[1, 2, 4\], expected \[2, 2, 4\]/);
    const gru = new GRU(3, 4, { batchFirst: true });
    expect(() => gru.call(randn([2]))).toThrow(/GRU.*\[2\].*\[batch, seq, 3\]/);
    const cell = new LSTMCell(3, 4);
    const hx = randn([3, 4]);
    expect(() => cell.call(getitem(good, 0), [hx, hx])).toThrow(/LSTMCell.*hx has shape \[3, 4\], expected \[2, 4\]/);
    expect(() => new RNN(3, 4, { numLayers: 0 })).toThrow(/RNN.*numLayers/);
    expect(() => new GRU(3, 4, { dropout: 1 })).toThrow(/GRU.*dropout/);
    [x, good, h0, hx].forEach((t) => t.dispose());
    [lstm, gru, cell].forEach((m) => m.dispose());
  });

  it('unbatched input gives the batch-1 result without the batch axis; batchFirst transposes', async () => {
    const g = new Generator(4);
    const lstm = new LSTM(3, 4, { numLayers: 2, generator: g });
    const x = randn([5, 3], { generator: g });
    const h0 = randn([2, 4], { generator: g });
    const c0 = randn([2, 4], { generator: g });
    const diffs = noGrad(() => tidy(() => {
      const [out, [h, c]] = lstm.call(x, [h0, c0]);
      const [out1, [h1, c1]] = lstm.call(x.reshape([5, 1, 3]), [h0.reshape([2, 1, 4]), c0.reshape([2, 1, 4])]);
      expect([out.shape, h.shape, c.shape]).toEqual([[5, 4], [2, 4], [2, 4]]);
      return concat([sub(out, out1.reshape([5, 4])), sub(h, h1.reshape([2, 4])), sub(c, c1.reshape([2, 4]))], 0);
    }));
    await expectValues(diffs, Array(36).fill(0), 0);
    diffs.dispose();

    const bf = new GRU(3, 4, { batchFirst: true, generator: g });
    const sf = new GRU(3, 4, { generator: g });
    sf.loadStateDict(bf.stateDict());
    const xb = randn([2, 5, 3], { generator: g });
    const d = noGrad(() => tidy(() => {
      const [ob, hb] = bf.call(xb);
      const [os, hs] = sf.call(xb.permute([1, 0, 2]));
      expect([ob.shape, hb.shape]).toEqual([[2, 5, 4], [1, 2, 4]]);
      return concat([sub(ob, os.permute([1, 0, 2])).reshape([-1]), sub(hb, hs).reshape([-1])], 0);
    }));
    await expectValues(d, Array(48).fill(0), 0);
    [d, xb].forEach((t) => t.dispose());
    [bf, sf].forEach((m) => m.dispose());
    [x, h0, c0].forEach((t) => t.dispose());
    lstm.dispose();
  });
});

describe('dropout between layers', () => {
  it('changes outputs in training only; eval is deterministic', async () => {
    const g = new Generator(8);
    const rnn = new GRU(3, 8, { numLayers: 2, dropout: 0.5, generator: g });
    const x = randn([4, 2, 3], { generator: g });
    const read = async (): Promise<number[]> => {
      const out = noGrad(() => tidy(() => rnn.call(x)[0]));
      const v = Array.from(await out.toArray());
      out.dispose();
      return v;
    };
    const t1 = await read();
    const t2 = await read();
    expect(t1).not.toEqual(t2);
    rnn.eval();
    const e1 = await read();
    const e2 = await read();
    expect(e1).toEqual(e2);
    x.dispose();
    rnn.dispose();
  });
});

describe('training', () => {
  it("README example (Recurrent layers): a tiny LSTM learns to sum a sequence, loss falls every step, no leak", async () => {
    const start = liveBuffers();
    const losses: number[] = [];
    let afterFirst = -1;

    // ---- README code starts here ----
    // Learn the sum of a short sequence: x [seq, batch, 1] -> sum over time [batch, 1].
    const g = new Generator(1);
    const lstm = new LSTM(1, 16, { generator: g });
    const head = new Linear(16, 1, { generator: g });
    const params = [...lstm.parameters(), ...head.parameters()];
    const lossFn = new MSELoss();
    const x = randn([3, 16, 1], { generator: g, std: 0.5 });
    const y = noGrad(() => sum(x, 0));

    for (let step = 0; step < 20; step++) {
      // The loss reads only hN; `output` and `cN` are results no backward reaches, so the tidy frees
      // them (parameter gradients and the returned loss survive it).
      const loss = tidy(() => {
        const [, [hN]] = lstm.call(x); // output [3, 16, 16], hN and cN [1, 16, 16]
        const l = lossFn.call(head.call(getitem(hN, 0)), y);
        l.backward();
        return l;
      });
      noGrad(() => tidy(() => {
        for (const p of params) p.assign(sub(p, mul(p.grad!, 0.5)));
      }));
      lstm.zeroGrad();
      head.zeroGrad();
      if (step % 5 === 0) console.log(step, await loss.item());
      losses.push(await loss.item()); // (test only)
      loss.dispose();
      if (step === 0) afterFirst = liveBuffers(); // (test only)
      else expect(liveBuffers(), `live buffers after step ${step + 1}`).toBe(afterFirst); // (test only)
    }
    [x, y].forEach((t) => t.dispose());
    lstm.dispose();
    head.dispose();
    // ---- README code ends here ----

    // 0.53 -> 0.13 with this seed
    expect(losses[19]).toBeLessThan(losses[0] * 0.4);
    losses.slice(1).forEach((l, i) => expect(l).toBeLessThan(losses[i]));
    expect(liveBuffers()).toBe(start);
  });

  it('truncated BPTT: a 2-layer GRU carries its detached state between batches without leaking', async () => {
    const start = liveBuffers();
    const g = new Generator(2);
    const gru = new GRU(2, 6, { numLayers: 2, generator: g });
    const head = new Linear(6, 2, { generator: g });
    const params = [...gru.parameters(), ...head.parameters()];
    const lossFn = new MSELoss();
    const x = randn([4, 3, 2], { generator: g });
    const target = noGrad(() => mul(x, 0.5)); // learnable whatever state is carried in
    let state: Tensor | undefined;
    let afterFirst = -1;
    const losses: number[] = [];
    for (let step = 0; step < 10; step++) {
      // hN is not reached by backward (the loss reads only `out`), so the tidy frees it; its detached
      // copy, the state for the next batch, is returned so that it outlives the graph's release.
      const [loss, next] = tidy(() => {
        const [out, hN] = gru.call(x, state);
        const l = lossFn.call(head.call(out), target);
        const h = hN.detach();
        l.backward();
        return [l, h];
      });
      state?.dispose();
      state = next;
      noGrad(() => tidy(() => {
        for (const p of params) p.assign(sub(p, mul(p.grad!, 0.2)));
      }));
      gru.zeroGrad();
      head.zeroGrad();
      losses.push(await loss.item());
      loss.dispose();
      if (step === 0) afterFirst = liveBuffers();
      else expect(liveBuffers(), `live buffers after step ${step + 1}`).toBe(afterFirst);
    }
    expect(losses[9]).toBeLessThan(losses[0]);
    [x, target, state!].forEach((t) => t.dispose());
    gru.dispose();
    head.dispose();
    expect(liveBuffers()).toBe(start);
  });
});
