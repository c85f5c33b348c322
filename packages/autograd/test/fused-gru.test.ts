/**
 * The fused GRU and plain RNN layers (gruSequence, rnnSequence) against the composition of autograd
 * ops they replace in nn (the composed cell, step by step): forward values bit for bit, gradients of
 * the array backward and of the Tensor-op backward (createGraph), gradcheck, Hessian-vector
 * products, launch counts and live buffers.
 */
import { describe, expect, it } from 'vitest';
import { Generator } from '@needle/ndarray';
import * as A from '../src/index';
import { Tensor, gradcheck, gradients, gruSequence, noGrad, randn, rnnSequence } from '../src/index';
import { backend, expectSameGradients, expectSameHvp, liveBuffers } from './helpers';

type Kind = 'gru' | 'rnn-tanh' | 'rnn-relu';

/** nn's composed cells over a sequence (x W_ih^T given as xw): [T, B, H] of h_t. */
function composed(kind: Kind, xw: Tensor, whh: Tensor, bih: Tensor | null, bhh: Tensor | null, h0: Tensor | null): Tensor {
  const xp = bih ? A.add(xw, bih) : xw;
  const T = xp.shape[0];
  const H = whh.shape[1];
  const gate = (t: Tensor, k: number) => A.getitem(t, '...', { start: k * H, stop: (k + 1) * H });
  let h = h0;
  const outs: Tensor[] = [];
  for (let t = 0; t < T; t++) {
    const xt = A.getitem(xp, t);
    let hp: Tensor | null = h ? A.matmul(h, A.transpose(whh)) : null;
    if (bhh) hp = hp ? A.add(hp, bhh) : bhh;
    if (kind === 'gru') {
      let z: Tensor;
      let n: Tensor;
      if (hp) {
        const [xr, xz, xn] = A.split(xt, H, -1);
        const [hr, hz, hn] = A.split(hp, H, -1);
        const r = A.sigmoid(A.add(xr, hr));
        z = A.sigmoid(A.add(xz, hz));
        n = A.tanh(A.add(xn, A.mul(r, hn)));
      } else {
        z = A.sigmoid(gate(xt, 1));
        n = A.tanh(gate(xt, 2));
      }
      h = h ? A.add(n, A.mul(z, A.sub(h, n))) : A.sub(n, A.mul(z, n));
    } else {
      const pre = hp ? A.add(xt, hp) : xt;
      h = kind === 'rnn-relu' ? A.relu(pre) : A.tanh(pre);
    }
    outs.push(h);
  }
  return A.stack(outs, 0);
}

/** The fused op's h sequence [T, B, H]. */
function fused(kind: Kind, xw: Tensor, whh: Tensor, bih: Tensor | null, bhh: Tensor | null, h0: Tensor | null): Tensor {
  if (kind === 'gru') return A.getitem(gruSequence(xw, whh, bih, bhh, h0), 0);
  return rnnSequence(xw, whh, bih, bhh, h0, kind === 'rnn-relu' ? 'relu' : 'tanh');
}

interface Case {
  kind: Kind;
  T: number;
  bias: boolean;
  biasIh: boolean;
  state: boolean;
}

const B = 2;
const H = 3;

function inputs(c: Case, seed: number) {
  const g = new Generator(seed);
  const G = (c.kind === 'gru' ? 3 : 1) * H;
  const xw = randn([c.T, B, G], { generator: g, requiresGrad: true });
  const whh = randn([G, H], { generator: g, requiresGrad: true, std: 0.5 });
  const bih = c.biasIh ? randn([G], { generator: g, requiresGrad: true }) : null;
  const bhh = c.bias ? randn([G], { generator: g, requiresGrad: true }) : null;
  const h0 = c.state ? randn([B, H], { generator: g, requiresGrad: true }) : null;
  const all = [xw, whh, bih, bhh, h0].filter((t): t is Tensor => t !== null);
  return { xw, whh, bih, bhh, h0, all };
}

function name(c: Case): string {
  return `${c.kind} T=${c.T}${c.biasIh ? ', biasIh' : ''}${c.bias ? ', biasHh' : ''}${c.state ? ', initial state' : ', zero state'}`;
}

const CASES: Case[] = (['gru', 'rnn-tanh', 'rnn-relu'] as const).flatMap((kind) => [
  { kind, T: 3, bias: true, biasIh: true, state: true },
  { kind, T: 3, bias: true, biasIh: false, state: false },
  { kind, T: 2, bias: false, biasIh: true, state: true },
  { kind, T: 2, bias: false, biasIh: false, state: false },
  { kind, T: 1, bias: false, biasIh: false, state: false },
]);

describe('gruSequence and rnnSequence (fused layers)', () => {
  for (const c of CASES) {
    it(`${name(c)}: forward bit for bit the composition; gradients of both backwards match it; no leak`, async () => {
      const before = liveBuffers();
      const { xw, whh, bih, bhh, h0, all } = inputs(c, 3 + c.T);
      // From a zero state over one step the composition never reads weightHh: no gradient there, the fused op zeros.
      await expectSameGradients(() => composed(c.kind, xw, whh, bih, bhh, h0), () => fused(c.kind, xw, whh, bih, bhh, h0), all, [c.T, B, H]);
      all.forEach((t) => t.dispose());
      expect(liveBuffers()).toBe(before);
    });
  }

  for (const kind of ['gru', 'rnn-tanh'] as const) {
    it(`${kind}: gradcheck through every input; double backward equals the composition's`, async () => {
      const before = liveBuffers();
      const { all } = inputs({ kind, T: 3, bias: true, biasIh: true, state: true }, 21);
      const f = (xw: Tensor, whh: Tensor, bih: Tensor, bhh: Tensor, h0: Tensor) => fused(kind, xw, whh, bih, bhh, h0);
      expect((await gradcheck(f, all)).ok).toBe(true);
      await expectSameHvp((...xs) => composed(kind, xs[0], xs[1], xs[2], xs[3], xs[4]), (...xs) => fused(kind, xs[0], xs[1], xs[2], xs[3], xs[4]), all, [3, B, H]);
      all.forEach((t) => t.dispose());
      expect(liveBuffers()).toBe(before);
    });
  }

  it('relu RNN: gradcheck (away from the kink)', async () => {
    const { all } = inputs({ kind: 'rnn-relu', T: 3, bias: true, biasIh: false, state: true }, 2);
    const f = (xw: Tensor, whh: Tensor, bhh: Tensor, h0: Tensor) => rnnSequence(xw, whh, null, bhh, h0, 'relu');
    expect((await gradcheck(f, all)).ok).toBe(true);
    all.forEach((t) => t.dispose());
  });

  // Where matmul takes no offset operands, h_{t-1} (read from the output) is compacted first, except
  // h_0's row at the buffer's start; likewise the recurrent gradient's operand d_t for t > 0.
  const offsets = !!(backend.layouts as { matmulOffsets?: boolean } | undefined)?.matmulOffsets;
  const none = { fill: 0, compact: 0, ewiseSetitem: 0, scalarSetitem: 0, ewise: 0, scalar: 0, unary: 0, where: 0, reduce: 0, matmul: 0, elementwise: 0 };
  const counted = (k: Record<string, number>) => Object.fromEntries(Object.keys(none).map((f) => [f, k[f] ?? 0]));

  it('GRU launches one matmul and two programs per step forward (a copy more without sharedOutputs), one matmul and two programs backward; no leak', () => {
    const before = liveBuffers();
    const T = 5;
    const { xw, whh, bih, bhh, h0, all } = inputs({ kind: 'gru', T, bias: true, biasIh: true, state: true }, 4);
    backend.resetStats();
    const packed = gruSequence(xw, whh, bih, bhh, h0);
    // W_hh^T compacted once; per step h_{t-1} W_hh^T, then the r z hn program and one for n and h
    // (two blocks of one buffer: h through a copy where outputs may not share it).
    const shared = !!(backend.layouts as { sharedOutputs?: boolean } | undefined)?.sharedOutputs;
    expect(counted(backend.stats().kernels)).toEqual({ ...none, matmul: T, elementwise: 2 * T, ewiseSetitem: shared ? 0 : T, compact: 1 + (offsets ? 0 : T - 2) });
    const g = A.tensor(new Float32Array(packed.size).fill(1, 0, packed.size / 5), { shape: packed.shape });
    backend.resetStats();
    const grads = gradients(packed, all, { gradOutput: g });
    // Per step two programs and the recurrent matmul; then dh0 (an add), dW_hh as one matmul over
    // all steps (h0 and the h block concatenated: two copies), b_hh's and b_ih's gradients as
    // sums over the steps and batch (two reductions) and one copy of da into the n columns.
    expect(counted(backend.stats().kernels)).toEqual({ ...none, matmul: T + 1, reduce: 2, elementwise: 2 * T + 2, ewiseSetitem: 2, compact: offsets ? 0 : T - 1 });
    for (const t of grads) expect(t, 'every input has a gradient').not.toBeNull();
    noGrad(() => gruSequence(xw, whh, null, null, null).dispose());
    [...all, packed, g, ...grads].forEach((t) => t!.dispose());
    expect(liveBuffers()).toBe(before);
  });

  it('RNN launches one matmul and one program per step forward and backward; no leak', () => {
    const before = liveBuffers();
    const T = 5;
    const { xw, whh, bih, bhh, h0, all } = inputs({ kind: 'rnn-tanh', T, bias: true, biasIh: true, state: true }, 4);
    backend.resetStats();
    const out = rnnSequence(xw, whh, bih, bhh, h0);
    expect(counted(backend.stats().kernels)).toEqual({ ...none, matmul: T, elementwise: T, compact: 1 + (offsets ? 0 : T - 2) });
    const g = A.tensor(new Float32Array(out.size).fill(1), { shape: out.shape });
    backend.resetStats();
    const grads = gradients(out, all, { gradOutput: g });
    // dW_hh over all steps (two copies to concatenate h0), both biases as one sum over the steps and
    // batch and a copy
    expect(counted(backend.stats().kernels)).toEqual({ ...none, matmul: T + 1, reduce: 1, elementwise: T + 1, ewiseSetitem: 2, compact: offsets ? 0 : T - 1 });
    for (const t of grads) expect(t, 'every input has a gradient').not.toBeNull();
    [...all, out, g, ...grads].forEach((t) => t!.dispose());
    expect(liveBuffers()).toBe(before);
  });

  it('errors name the op and the shapes', () => {
    const { xw, whh, all } = inputs({ kind: 'gru', T: 2, bias: false, biasIh: false, state: false }, 1);
    expect(() => gruSequence(A.reshape(xw, [2, 18]), whh, null, null, null)).toThrow(/gruSequence: input projection of shape \[2, 18\]: expected \[seq > 0, batch, 3 \* hidden\]/);
    expect(() => gruSequence(xw, A.transpose(whh), null, null, null)).toThrow(/gruSequence: weightHh has shape \[3, 9\], expected \[9, 3\]/);
    const bad = randn([4]);
    const h = randn([3, 3]);
    expect(() => gruSequence(xw, whh, bad, null, null)).toThrow(/gruSequence: biasIh has shape \[4\], expected \[9\]/);
    expect(() => gruSequence(xw, whh, null, null, h)).toThrow(/gruSequence: h0 has shape \[3, 3\], expected \[2, 3\]/);
    expect(() => rnnSequence(xw, whh, null, null, null)).toThrow(/rnnSequence: weightHh has shape \[9, 3\], expected \[9, 9\]/);
    // @ts-expect-error: not a nonlinearity
    expect(() => rnnSequence(xw, whh, null, null, null, 'sigmoid')).toThrow(/rnnSequence: nonlinearity must be 'tanh' or 'relu', got sigmoid/);
    [...all, bad, h].forEach((t) => t.dispose());
  });
});
