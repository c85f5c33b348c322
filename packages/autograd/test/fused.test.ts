/**
 * Fused primitives against the composition of autograd ops they replace: forward values, gradients
 * from the array backward (the usual pass) and from the Tensor-op backward (createGraph), gradcheck,
 * double backward, launch counts and live buffers.
 */
import { describe, expect, it } from 'vitest';
import { Generator, type Backend } from '@needle/ndarray';
import * as A from '../src/index';
import { Tensor, gradcheck, gradients, lstmSequence, noGrad, randn } from '../src/index';
import { backend, expectSameGradients, expectSameHvp, liveBuffers } from './helpers';

/** The composed LSTM layer (what nn.LSTM ran before the fused op): [T, B, 2H] of h_t and c_t. */
function lstmComposed(xw: Tensor, whh: Tensor, bhh: Tensor | null, h0: Tensor | null, c0: Tensor | null, bih: Tensor | null = null): Tensor {
  const xp = bih ? A.add(xw, bih) : xw;
  const [T, , G] = xp.shape;
  const H = G / 4;
  const gate = (t: Tensor, k: number) => A.getitem(t, '...', { start: k * H, stop: (k + 1) * H });
  let h = h0;
  let c = c0;
  const rows: Tensor[] = [];
  for (let t = 0; t < T; t++) {
    let hp: Tensor | null = h ? A.matmul(h, A.transpose(whh)) : null;
    if (bhh) hp = hp ? A.add(hp, bhh) : bhh;
    const xt = A.getitem(xp, t);
    const gates = hp ? A.add(xt, hp) : xt;
    const ig = A.mul(A.sigmoid(gate(gates, 0)), A.tanh(gate(gates, 2)));
    const cn = c ? A.add(A.mul(A.sigmoid(gate(gates, 1)), c), ig) : ig;
    h = A.mul(A.sigmoid(gate(gates, 3)), A.tanh(cn));
    c = cn;
    rows.push(A.concat([h, c], -1));
  }
  return A.stack(rows, 0);
}

/** The h and c blocks of the fused op's packed output, as [T, B, 2H]. */
function fusedHC(xp: Tensor, whh: Tensor, bhh: Tensor | null, h0: Tensor | null, c0: Tensor | null, bih: Tensor | null = null): Tensor {
  const packed = lstmSequence(xp, whh, bhh, h0, c0, bih);
  // [2, T, B, H] -> [T, B, 2H], the layout lstmComposed returns
  return A.reshape(A.permute(A.getitem(packed, { stop: 2 }), [1, 2, 0, 3]), [packed.shape[1], packed.shape[2], 2 * packed.shape[3]]);
}

interface Case {
  T: number;
  bias: boolean;
  state: boolean;
  /** b_ih passed to the op (added to xp inside it) */
  biasIh?: boolean;
}

const CASES: Case[] = [
  { T: 3, bias: true, state: true, biasIh: true },
  { T: 3, bias: true, state: false },
  { T: 2, bias: false, state: true },
  { T: 2, bias: false, state: false, biasIh: true },
  { T: 1, bias: false, state: false },
];

function inputs(c: Case, seed: number): { xp: Tensor; whh: Tensor; bhh: Tensor | null; h0: Tensor | null; c0: Tensor | null; bih: Tensor | null; all: Tensor[] } {
  const g = new Generator(seed);
  const B = 2;
  const H = 3;
  const xp = randn([c.T, B, 4 * H], { generator: g, requiresGrad: true });
  const whh = randn([4 * H, H], { generator: g, requiresGrad: true, std: 0.5 });
  const bhh = c.bias ? randn([4 * H], { generator: g, requiresGrad: true }) : null;
  const h0 = c.state ? randn([B, H], { generator: g, requiresGrad: true }) : null;
  const c0 = c.state ? randn([B, H], { generator: g, requiresGrad: true }) : null;
  const bih = c.biasIh ? randn([4 * H], { generator: g, requiresGrad: true }) : null;
  const all = [xp, whh, bhh, h0, c0, bih].filter((t): t is Tensor => t !== null);
  return { xp, whh, bhh, h0, c0, bih, all };
}

function name(c: Case): string {
  return `T=${c.T}${c.bias ? ', bias' : ''}${c.biasIh ? ', biasIh' : ''}${c.state ? ', initial state' : ', zero state'}`;
}

describe('lstmSequence (fused LSTM layer)', () => {
  for (const c of CASES) {
    it(`${name(c)}: forward bit for bit the composition; gradients of both backwards match it`, async () => {
      const before = liveBuffers();
      const { xp, whh, bhh, h0, c0, bih, all } = inputs(c, 3 + c.T);
      // T=1 from a zero state never reads weightHh: the composition has no gradient for it, the fused op zeros.
      await expectSameGradients(() => lstmComposed(xp, whh, bhh, h0, c0, bih), () => fusedHC(xp, whh, bhh, h0, c0, bih), all, [c.T, 2, 6]);
      all.forEach((t) => t.dispose());
      expect(liveBuffers()).toBe(before);
    });
  }

  it('gradcheck through every input; double backward equals the composition\'s', async () => {
    const before = liveBuffers();
    const { all } = inputs({ T: 3, bias: true, state: true, biasIh: true }, 21);
    const f = (xp: Tensor, whh: Tensor, b: Tensor, h0: Tensor, c0: Tensor, bih: Tensor) => fusedHC(xp, whh, b, h0, c0, bih);
    expect((await gradcheck(f, all)).ok).toBe(true);
    // Hessian-vector products: d/dinputs of sum_i <dL/dinput_i, v_i>, L = sum(tanh(hc) * w).
    await expectSameHvp((...xs) => lstmComposed(xs[0], xs[1], xs[2], xs[3], xs[4], xs[5]), (...xs) => fusedHC(xs[0], xs[1], xs[2], xs[3], xs[4], xs[5]), all, [3, 2, 6]);
    all.forEach((t) => t.dispose());
    expect(liveBuffers()).toBe(before);
  });

  it('launches one matmul and two programs per step forward (a copy more without sharedOutputs), one matmul and two programs backward, and leaves no buffer behind', () => {
    const before = liveBuffers();
    const T = 5;
    const { xp, whh, bhh, h0, c0, all } = inputs({ T, bias: true, state: true }, 4);
    const bih = randn([bhh!.shape[0]], { generator: new Generator(8), requiresGrad: true });
    // Where matmul takes no offset operands, h_{t-1} (read from block 0 of the output) is compacted
    // first, except h_0's row at the buffer's start; likewise dxp_t for the recurrent gradient.
    const offsets = !!(backend.layouts as { matmulOffsets?: boolean } | undefined)?.matmulOffsets;
    const none = { fill: 0, compact: 0, ewiseSetitem: 0, scalarSetitem: 0, ewise: 0, scalar: 0, unary: 0, where: 0, reduce: 0, matmul: 0, elementwise: 0 };
    const counted = (k: Record<string, number>) => Object.fromEntries(Object.keys(none).map((f) => [f, k[f] ?? 0]));
    backend.resetStats();
    const packed = lstmSequence(xp, whh, bhh, h0, c0, bih);
    // W_hh^T compacted once; per step h_{t-1} W_hh^T, then the activations program and one program
    // for c_t and h_t (blocks 1 and 0 of one buffer: h_t through a copy where outputs may not share it).
    const shared = !!(backend.layouts as { sharedOutputs?: boolean } | undefined)?.sharedOutputs;
    expect(counted(backend.stats().kernels)).toEqual({ ...none, matmul: T, elementwise: 2 * T, ewiseSetitem: shared ? 0 : T, compact: 1 + (offsets ? 0 : T - 2) });
    // The gradient arriving at the op (ones in blocks 0 and 1, zeros in the workspace), made before counting.
    const g = A.tensor(new Float32Array(packed.size).fill(1, 0, (2 * packed.size) / 6), { shape: packed.shape });
    backend.resetStats();
    const grads = gradients(packed, [...all, bih], { gradOutput: g });
    // Per step BW_OUT and BW_GATES and the recurrent gradient (the last one into h0); then dc_0
    // through f_0 into c0, dW_hh as one matmul over all steps (h0 and the h block concatenated: two
    // copies), both biases' gradient as one reduction over the steps and batch and a copy for the second.
    expect(counted(backend.stats().kernels)).toEqual({ ...none, matmul: T + 1, reduce: 1, elementwise: 2 * T + 2, ewiseSetitem: 2, compact: offsets ? 0 : T - 1 });
    for (const t of grads) expect(t, 'every input has a gradient').not.toBeNull();
    noGrad(() => lstmSequence(xp, whh, null, null, null).dispose());
    [...all, bih, packed, g, ...grads].forEach((t) => t!.dispose());
    expect(liveBuffers()).toBe(before);
  });

  it('errors name the op and the shapes', () => {
    const { xp, whh, all } = inputs({ T: 2, bias: false, state: false }, 1);
    expect(() => lstmSequence(A.reshape(xp, [2, 24]), whh, null, null, null)).toThrow(/lstmSequence: input projection of shape \[2, 24\]: expected \[seq > 0, batch, 4 \* hidden\]/);
    expect(() => lstmSequence(xp, A.transpose(whh), null, null, null)).toThrow(/lstmSequence: weightHh has shape \[3, 12\], expected \[12, 3\]/);
    expect(() => lstmSequence(xp, whh, null, randn([3, 3]), null)).toThrow(/lstmSequence: h0 has shape \[3, 3\], expected \[2, 3\]/);
    expect(() => lstmSequence(xp, whh, null, null, null, randn([5]))).toThrow(/lstmSequence: biasIh has shape \[5\], expected \[12\]/);
    all.forEach((t) => t.dispose());
  });
});

/** The composed forms the fused softmax family replaced (shift by a finite max, as the library does). */
function shiftConst(x: Tensor, axis: number, keepPlusInf: boolean): Tensor {
  const m = x.data.max([axis], true);
  const magnitude = keepPlusInf ? m.abs() : m.neg();
  const finite = magnitude.lt(Infinity);
  const shift = finite.where(m, 0);
  [m, magnitude, finite].forEach((a) => a.dispose());
  return A.constant(shift);
}
const composed = {
  logSoftmax: (x: Tensor, ax: number) => {
    const shifted = A.sub(x, shiftConst(x, ax, false));
    return A.sub(shifted, A.log(A.sum(A.exp(shifted), ax, true)));
  },
  softmax: (x: Tensor, ax: number) => {
    const e = A.exp(A.sub(x, shiftConst(x, ax, false)));
    return A.div(e, A.sum(e, ax, true));
  },
};

describe('softmax, logSoftmax, crossEntropy (fused)', () => {
  const data = [3, -1, 0.5, 2, 80, 79, -80, 0, 1e-3, -2, 4, 4];

  for (const name of ['logSoftmax', 'softmax'] as const) {
    for (const axis of [1, 0]) {
      it(`${name} over axis ${axis}: forward bit for bit; both backwards match the composition; double backward too`, async () => {
        const before = liveBuffers();
        const x = A.tensor(data, { shape: [3, 4], requiresGrad: true });
        const w = randn([3, 4], { generator: new Generator(2) });
        const fused = A[name](x, axis);
        const ref = composed[name](x, axis);
        expect(Array.from(await fused.toArray())).toEqual(Array.from(await ref.toArray()));
        const losses = [A.sum(A.mul(fused, w)), A.sum(A.mul(ref, w)), A.sum(A.mul(A[name](x, axis), w))];
        const [gf] = gradients(losses[0], [x]);
        const [gr] = gradients(losses[1], [x]);
        const [gs] = gradients(losses[2], [x], { createGraph: true });
        const r = await gr!.toArray();
        for (const g of [gf!, gs!]) (await g.toArray()).forEach((v, j) => expect(Math.abs(v - r[j]), `element ${j}`).toBeLessThanOrEqual(1e-6 * Math.max(1, Math.abs(r[j]))));
        // d/dx sum(grad * v): Hessian-vector products through the Tensor-op backward
        const v = randn([3, 4], { generator: new Generator(3) });
        const hvp = (f: (t: Tensor, ax: number) => Tensor) => {
          const l = A.sum(A.mul(A.tanh(f(x, axis)), w));
          const [g] = gradients(l, [x], { createGraph: true });
          const s = A.sum(A.mul(g!, v));
          const [h] = gradients(s, [x]);
          [l, g!, s].forEach((t) => t.dispose());
          return h!;
        };
        const hf = hvp(A[name]);
        const hr = hvp(composed[name]);
        const hrv = await hr.toArray();
        (await hf.toArray()).forEach((val, j) => expect(Math.abs(val - hrv[j]), `hvp element ${j}`).toBeLessThanOrEqual(1e-5 * Math.max(1, Math.abs(hrv[j]))));
        [x, w, v, fused, ref, ...losses, gf!, gr!, gs!, hf, hr].forEach((t) => t.dispose());
        expect(liveBuffers()).toBe(before);
      });
    }
  }

  it('gradcheck of logSoftmax, softmax and crossEntropy', async () => {
    const g = new Generator(8);
    const x = randn([3, 5], { generator: g, requiresGrad: true });
    const labels = A.tensor([4, 0, 2]);
    expect((await gradcheck((t) => A.logSoftmax(t, 1), [x])).ok).toBe(true);
    expect((await gradcheck((t) => A.softmax(t, 0), [x])).ok).toBe(true);
    expect((await gradcheck((t) => A.crossEntropy(t, labels), [x])).ok).toBe(true);
    [x, labels].forEach((t) => t.dispose());
  });

  it('crossEntropy: the values of logsumexp - gather bit for bit, NaN for a label matching no class, gradients and launches', async () => {
    const before = liveBuffers();
    const x = A.tensor(data, { shape: [4, 3], requiresGrad: true });
    const labels = A.tensor([2, 0, 1, 2]);
    const column = labels.data.reshape([4, 1]);
    const ref = A.reshape(A.sub(A.logsumexp(x, 1, true), A.gather(x, 1, column)), [4]);
    column.dispose();
    backend.resetStats();
    const ce = A.crossEntropy(x, labels);
    const fwd = backend.stats();
    // The row logsumexps, then the losses from them: one reduceProgram each where the backend has it.
    if ((backend as Backend).reduceProgram) expect([fwd.kernels.reduceProgram, fwd.launches]).toEqual([2, 2]);
    expect(Array.from(await ce.toArray())).toEqual(Array.from(await ref.toArray()));
    const w = A.tensor([1, -2, 0.5, 3]);
    const losses = [A.sum(A.mul(ce, w)), A.sum(A.mul(ref, w))];
    backend.resetStats();
    const [gf] = gradients(losses[0], [x]);
    // The rule's one program, plus (where the backend takes strided layouts) one op on a broadcast
    // view run as a one-step program instead of compact + kernel.
    expect(backend.stats().kernels.elementwise).toBe(backend.layouts?.elementwise ? 2 : 1);
    const [gr] = gradients(losses[1], [x]);
    const r = await gr!.toArray();
    // The fused rule's softmax is exp(x - lse), the composition's exp(x - m) / s: a few float32
    // ulps apart (the rounding of lse, ~1e-7 * |lse|, moves x - lse).
    (await gf!.toArray()).forEach((v, j) => expect(Math.abs(v - r[j]), `element ${j}`).toBeLessThanOrEqual(4e-6 * Math.max(1, Math.abs(r[j]))));
    const odd = A.tensor([0, 3, -1, 1.5]);
    const bad = A.crossEntropy(x, odd.data);
    expect(Array.from(await bad.toArray()).map(Number.isNaN)).toEqual([false, true, true, true]);
    const badMean = A.crossEntropy(x, odd.data, { reduction: 'mean' });
    expect(Number.isNaN(await badMean.item())).toBe(true);
    badMean.dispose();
    const short = A.tensor([0, 1]);
    expect(() => A.crossEntropy(x, short)).toThrow(/crossEntropy: labels of shape \[2\] do not match logits \[4, 3\]; expected class indices of shape \[4\]/);
    [x, labels, ref, ce, w, ...losses, gf!, gr!, bad, odd, short].forEach((t) => t.dispose());
    expect(liveBuffers()).toBe(before);
  });

  it('crossEntropy over 200 classes (labelled logits picked by a row lookup): logsumexp - gather, NaN for bad labels, every reduction, gradients', async () => {
    const before = liveBuffers();
    const [n, c] = [6, 200];
    const x = randn([n, c], { generator: new Generator(11), requiresGrad: true });
    const labels = A.tensor([199, 0, 57, 57, 3, 128]);
    const column = labels.data.reshape([n, 1]);
    const ref = A.reshape(A.sub(A.logsumexp(x, 1, true), A.gather(x, 1, column)), [n]);
    column.dispose();
    backend.resetStats();
    const ce = A.crossEntropy(x, labels);
    const fwd = backend.stats();
    // The row logsumexps, the labels' positions, the lookup, the losses.
    if ((backend as Backend).reduceProgram && (backend as Backend).gatherRows) expect([fwd.kernels.reduceProgram, fwd.kernels.gatherRows, fwd.launches]).toEqual([2, 1, 4]);
    const want = await ref.toArray();
    expect(Array.from(await ce.toArray())).toEqual(Array.from(want));
    const total = want.reduce((a, b) => a + b, 0);
    for (const [reduction, expected] of [['sum', total], ['mean', total / n]] as const) {
      const l = A.crossEntropy(x, labels, { reduction });
      expect(Math.abs((await l.item()) - expected), reduction).toBeLessThanOrEqual(2e-6 * Math.abs(expected));
      const [g] = gradients(l, [x]);
      const column2 = labels.data.reshape([n, 1]);
      const r = A.sub(A.logsumexp(x, 1, true), A.gather(x, 1, column2));
      column2.dispose();
      const reduced = reduction === 'mean' ? A.mean(r) : A.sum(r);
      const [gr] = gradients(reduced, [x]);
      const rv = await gr!.toArray();
      (await g!.toArray()).forEach((v, j) => expect(Math.abs(v - rv[j]), `${reduction} element ${j}`).toBeLessThanOrEqual(4e-6 * Math.max(1, Math.abs(rv[j]))));
      [l, g!, r, reduced, gr!].forEach((t) => t.dispose());
    }
    const odd = A.tensor([0, 200, -1, 1.5, NaN, 7]);
    const bad = A.crossEntropy(x, odd.data);
    expect(Array.from(await bad.toArray()).map(Number.isNaN)).toEqual([false, true, true, true, true, false]);
    const badMean = A.crossEntropy(x, odd.data, { reduction: 'mean' });
    expect(Number.isNaN(await badMean.item())).toBe(true);
    [x, labels, ref, ce, odd, bad, badMean].forEach((t) => t.dispose());
    expect(liveBuffers()).toBe(before);
  });

  it("crossEntropy with reduction 'mean' and 'sum': the per-sample losses' mean and sum, two launches forward and one backward, gradcheck and double backward", async () => {
    const before = liveBuffers();
    const x = randn([5, 4], { generator: new Generator(7), requiresGrad: true });
    const labels = A.tensor([3, 0, 1, 1, 2]);
    const perSampleLoss = A.crossEntropy(x, labels);
    const perSample = await perSampleLoss.toArray();
    perSampleLoss.dispose();
    const sum = perSample.reduce((a, b) => a + b, 0);
    for (const [reduction, expected] of [['sum', sum], ['mean', sum / 5]] as const) {
      backend.resetStats();
      const l = A.crossEntropy(x, labels, { reduction });
      const f = backend.stats();
      if ((backend as Backend).reduceProgram) expect([f.kernels.reduceProgram, f.launches], `${reduction}: forward launches`).toEqual([2, 2]);
      expect(l.shape).toEqual([]);
      expect(Math.abs((await l.item()) - expected)).toBeLessThanOrEqual(2e-6 * Math.abs(expected));
      backend.resetStats();
      const [g] = gradients(l, [x]);
      const b = backend.stats();
      expect([b.kernels.elementwise, b.kernels.reduceProgram, b.kernels.reduce], `${reduction}: backward launches`).toEqual([1, 0, 0]);
      // Against the composition mean/sum(logsumexp - gather).
      const column = labels.data.reshape([5, 1]);
      const ref = A.sub(A.logsumexp(x, 1, true), A.gather(x, 1, column));
      column.dispose();
      const reduced = reduction === 'mean' ? A.mean(ref) : A.sum(ref);
      const [gr] = gradients(reduced, [x]);
      const r = await gr!.toArray();
      (await g!.toArray()).forEach((v, j) => expect(Math.abs(v - r[j]), `${reduction} element ${j}`).toBeLessThanOrEqual(4e-6 * Math.max(1, Math.abs(r[j]))));
      [l, g!, ref, reduced, gr!].forEach((t) => t.dispose());
      expect((await gradcheck((t) => A.crossEntropy(t, labels, { reduction }), [x])).ok, `${reduction}: gradcheck`).toBe(true);
      // Double backward: the gradient of sum(dL/dx ^ 2) equals the composition's.
      const fused = A.crossEntropy(x, labels, { reduction });
      const [g1] = gradients(fused, [x], { createGraph: true });
      const sq = A.sum(A.mul(g1!, g1!));
      const [gg] = gradients(sq, [x]);
      const column2 = labels.data.reshape([5, 1]);
      const ref2 = A.sub(A.logsumexp(x, 1, true), A.gather(x, 1, column2));
      column2.dispose();
      const refLoss = reduction === 'mean' ? A.mean(ref2) : A.sum(ref2);
      const [r1] = gradients(refLoss, [x], { createGraph: true });
      const refSq = A.sum(A.mul(r1!, r1!));
      const [rr] = gradients(refSq, [x]);
      const want = await rr!.toArray();
      (await gg!.toArray()).forEach((v, j) => expect(Math.abs(v - want[j]), `${reduction} second derivative ${j}`).toBeLessThanOrEqual(1e-5 * Math.max(1, Math.abs(want[j]))));
      [fused, g1!, sq, gg!, ref2, refLoss, r1!, refSq, rr!].forEach((t) => t.dispose());
    }
    const [e0, e1] = [A.zeros([0, 3]), A.zeros([0])];
    const empty = A.crossEntropy(e0, e1, { reduction: 'mean' });
    expect(Number.isNaN(await empty.item())).toBe(true);
    const emptySum = A.crossEntropy(e0, e1, { reduction: 'sum' });
    expect(await emptySum.item()).toBe(0);
    expect(() => A.crossEntropy(x, labels, { reduction: 'avg' as never })).toThrow(/crossEntropy: reduction must be 'none', 'mean' or 'sum', got the string 'avg'/);
    [x, labels, empty, emptySum, e0, e1].forEach((t) => t.dispose());
    expect(liveBuffers()).toBe(before);
  });

  it('launch counts: two reductions and two programs forward; a reduction and one or two programs backward', () => {
    const x = randn([4, 6], { generator: new Generator(1), requiresGrad: true });
    for (const [name, bwdPrograms] of [['logSoftmax', 1], ['softmax', 2]] as const) {
      backend.resetStats();
      const y = A[name](x, 1);
      const f = backend.stats().kernels;
      // (compacts of the broadcast operands depend on whether the backend reads strided views)
      expect([f.reduce, f.elementwise]).toEqual([2, 2]);
      const l = A.sum(y);
      backend.resetStats();
      const [g] = gradients(l, [x]);
      const b = backend.stats().kernels;
      expect([b.reduce, b.elementwise]).toEqual([1, bwdPrograms]);
      [y, l, g!].forEach((t) => t.dispose());
    }
    x.dispose();
  });
});

describe('maxPool2d (fused, with an argmax record)', () => {
  /** 2x2 windows with stride 2 composed from strided slices and max (ties split, as torch.amax does). */
  function composedPool(x: Tensor): Tensor {
    const parts = [0, 1].flatMap((i) => [0, 1].map((j) => A.getitem(x, {}, {}, { start: i, step: 2 }, { start: j, step: 2 })));
    return A.max(A.stack(parts, 0), 0);
  }

  it('values and gradients of both backwards as the composition; double backward; no leak', async () => {
    const before = liveBuffers();
    const x = randn([2, 3, 4, 6], { generator: new Generator(30), requiresGrad: true });
    const w = randn([2, 3, 2, 3], { generator: new Generator(31) });
    const fused = A.maxPool2d(x, 2);
    const ref = composedPool(x);
    expect(Array.from(await fused.toArray())).toEqual(Array.from(await ref.toArray()));
    const losses = [A.sum(A.mul(fused, w)), A.sum(A.mul(ref, w)), A.sum(A.mul(A.maxPool2d(x, 2), w))];
    const [gf] = gradients(losses[0], [x]);
    const [gr] = gradients(losses[1], [x]);
    const [gs] = gradients(losses[2], [x], { createGraph: true });
    const r = Array.from(await gr!.toArray());
    expect(Array.from(await gf!.toArray())).toEqual(r);
    expect(Array.from(await gs!.toArray())).toEqual(r);
    // Second order: d/dx sum(grad * v) through the Tensor-op backward, against the composition's.
    const v = randn(x.shape, { generator: new Generator(32) });
    const hvp = (pool: (t: Tensor) => Tensor) => {
      const l = A.sum(A.mul(A.tanh(pool(A.mul(x, x))), w));
      const [g] = gradients(l, [x], { createGraph: true });
      const s = A.sum(A.mul(g!, v));
      const [h] = gradients(s, [x]);
      [l, g!, s].forEach((t) => t.dispose());
      return h!;
    };
    const hf = hvp((t) => A.maxPool2d(t, 2));
    const hr = hvp(composedPool);
    const hrv = await hr.toArray();
    (await hf.toArray()).forEach((val, j) => expect(Math.abs(val - hrv[j]), `hvp element ${j}`).toBeLessThanOrEqual(1e-5 * Math.max(1, Math.abs(hrv[j]))));
    [x, w, v, fused, ref, ...losses, gf!, gr!, gs!, hf, hr].forEach((t) => t.dispose());
    expect(liveBuffers()).toBe(before);
  });

  it('the array backward is a fill and one program per window position, nothing else', () => {
    const attrs = { kh: 2, kw: 3, sh: 2, sw: 1, dh: 1, dw: 1 };
    noGrad(() => {
      const xh = randn([2, 4, 5, 3], { generator: new Generator(34) });
      const out = new Tensor(A.OPS.maxPool.forward([xh.data], attrs));
      const g = A.onesLike(out);
      backend.resetStats();
      const [dx] = A.OPS.maxPool.backward(g, { inputs: [xh], attrs, out, needsGrad: [true] });
      const k = backend.stats().kernels;
      const launched = Object.fromEntries(Object.entries(k).filter(([, v]) => v > 0));
      expect(launched).toEqual({ fill: 1, elementwise: 6 });
      [xh, out, g, dx!].forEach((t) => t.dispose());
    });
  });

  it('windows that tile the input: the array backward is one program (and a fill only for rows or columns past the last window)', async () => {
    const before = liveBuffers();
    for (const [shape, attrs, launches] of [
      [[2, 4, 6, 3], { kh: 2, kw: 2, sh: 2, sw: 2, dh: 1, dw: 1 }, { elementwise: 1 }],
      [[2, 5, 7, 3], { kh: 2, kw: 3, sh: 2, sw: 3, dh: 1, dw: 1 }, { fill: 1, elementwise: 1 }],
    ] as const) {
      const xh = randn([...shape], { generator: new Generator(36) });
      const out = noGrad(() => new Tensor(A.OPS.maxPool.forward([xh.data], attrs)));
      const g = randn(out.shape, { generator: new Generator(37) });
      backend.resetStats();
      const [dx] = noGrad(() => A.OPS.maxPool.backward(g, { inputs: [xh], attrs, out, needsGrad: [true] }));
      const launched = Object.fromEntries(Object.entries(backend.stats().kernels).filter(([, v]) => v > 0));
      expect(launched).toEqual(launches);
      // Against the per-window-position rule (the one overlapping windows take), computed here in
      // plain JS: g where the element is its window's first maximum, 0 elsewhere and past the last window.
      const [n, h, w, c] = shape;
      const xs = await xh.toArray();
      const gs = await g.toArray();
      const ho = Math.floor(h / attrs.kh);
      const wo = Math.floor(w / attrs.kw);
      const want = new Float32Array(n * h * w * c);
      for (let b = 0; b < n; b++) for (let i = 0; i < ho; i++) for (let j = 0; j < wo; j++) for (let ch = 0; ch < c; ch++) {
        let best = -1;
        for (let p = 0; p < attrs.kh; p++) for (let q = 0; q < attrs.kw; q++) {
          const at = ((b * h + i * attrs.kh + p) * w + j * attrs.kw + q) * c + ch;
          if (best < 0 || xs[at] > xs[best]) best = at;
        }
        want[best] = gs[((b * ho + i) * wo + j) * c + ch];
      }
      expect(Array.from(await dx!.toArray())).toEqual(Array.from(want));
      [xh, out, g, dx!].forEach((t) => t.dispose());
    }
    // A gradient of -0 arrives as +0, as the zero-filled += of the other rule (and PyTorch) gives.
    const x = A.tensor([[[[1, 4], [2, 3]]]], { requiresGrad: true });
    const y = A.maxPool2d(x, 2);
    const l = A.sum(A.mul(y, -0));
    l.backward();
    expect(Array.from(await x.grad!.toArray()).map((v) => Object.is(v, 0))).toEqual([true, true, true, true]);
    [x, y, l].forEach((t) => t.dispose());
    expect(liveBuffers()).toBe(before);
  });

  it('forward: values and first-maximum positions with ties, -0 against +0, -Infinity and NaN, on both paths (one program up to 7 positions, reductions beyond)', async () => {
    const before = liveBuffers();
    const special = [NaN, -0, 0, -Infinity, Infinity, 1, 1, -2];
    for (const [attrs, launches] of [
      [{ kh: 2, kw: 2, sh: 2, sw: 2, dh: 1, dw: 1 }, { elementwise: 1 }],
      [{ kh: 2, kw: 3, sh: 1, sw: 2, dh: 1, dw: 1 }, { elementwise: 1 }],
      [{ kh: 2, kw: 2, sh: 1, sw: 1, dh: 2, dw: 1 }, { elementwise: 1 }],
      [{ kh: 3, kw: 3, sh: 2, sw: 2, dh: 1, dw: 1 }, { compact: 1, reduce: 2, elementwise: 1 }],
    ] as const) {
      const [n, h, w, c] = [2, 7, 8, 3];
      // Mostly a few repeated values (ties), with the special values sprinkled in.
      const data = Float32Array.from({ length: n * h * w * c }, (_, i) => (i % 11 === 0 ? special[(i / 11) % special.length] : ((i * 7) % 5) - 2));
      const xh = A.tensor(data, { shape: [n, h, w, c] });
      backend.resetStats();
      const out = noGrad(() => A.OPS.maxPool.forward([xh.data], attrs));
      const launched = Object.fromEntries(Object.entries(backend.stats().kernels).filter(([, v]) => v > 0));
      expect(launched).toEqual(launches);
      // The max and argmax reductions' rules, in plain JS: walk the window row-major, a later value
      // wins only when greater, or when it is NaN and the best so far is not.
      const ho = Math.floor((h - attrs.dh * (attrs.kh - 1) - 1) / attrs.sh) + 1;
      const wo = Math.floor((w - attrs.dw * (attrs.kw - 1) - 1) / attrs.sw) + 1;
      const vals: number[] = [];
      const at: number[] = [];
      for (let b = 0; b < n; b++) for (let i = 0; i < ho; i++) for (let j = 0; j < wo; j++) for (let ch = 0; ch < c; ch++) {
        let best = NaN;
        let k = -1;
        for (let p = 0; p < attrs.kh; p++) for (let q = 0; q < attrs.kw; q++) {
          const v = data[((b * h + i * attrs.sh + p * attrs.dh) * w + j * attrs.sw + q * attrs.dw) * c + ch];
          const pos = p * attrs.kw + q;
          if (k < 0 || (!Number.isNaN(best) && (v > best || Number.isNaN(v)))) {
            best = v;
            k = pos;
          }
        }
        vals.push(best);
        at.push(k);
      }
      // The pooled values, and behind them in the same buffer the positions the backward reads.
      expect(out.shape).toEqual([n, ho, wo, c]);
      const positions = out.asStrided(out.shape, out.strides, out.offset + out.size);
      const signed = (v: number) => (Object.is(v, -0) ? '-0' : v);
      expect(Array.from(await out.toArray()).map(signed)).toEqual(vals.map(signed));
      expect(Array.from(await positions.toArray())).toEqual(at);
      [xh, out, positions].forEach((t) => t.dispose());
    }
    expect(liveBuffers()).toBe(before);
  });

  it('a tie sends the gradient to the first maximum of the window, as PyTorch does', async () => {
    const x = A.tensor([[[[1, 1], [1, 1]]]], { requiresGrad: true });
    const y = A.maxPool2d(x, 2);
    A.sum(y).backward();
    expect(Array.from(await x.grad!.toArray())).toEqual([1, 0, 0, 0]);
    [x, y].forEach((t) => t.dispose());
  });

  it('gradcheck with overlapping windows, padding and dilation', async () => {
    // Distinct values 0.1 apart (a fixed shuffle), so no window holds two maxima within gradcheck's step.
    const values = Array.from({ length: 72 }, (_, i) => ((i * 29) % 72) / 10 - 3.6);
    const x = A.tensor(values, { shape: [1, 2, 6, 6], requiresGrad: true });
    expect((await gradcheck((t) => A.maxPool2d(t, 3, { stride: 2, padding: 1 }), [x])).ok).toBe(true);
    expect((await gradcheck((t) => A.maxPool2d(t, 2, { stride: 1, dilation: 2 }), [x])).ok).toBe(true);
    x.dispose();
  });
});

describe('one-program backward rules', () => {
  it('relu, abs, tanh, sigmoid, sqrt and div: the array rule equals the Tensor-op rule bit for bit, in one launch', async () => {
    const before = liveBuffers();
    const data = [-2.5, -1, -0, 0, 1e-30, 0.3, 1, 7, 40, Infinity, -Infinity, NaN];
    const numerator = A.tensor(data.map((v) => v * 0.5 + 1));
    const cases: [string, (t: Tensor) => Tensor][] = [
      ['relu', A.relu], ['abs', A.abs], ['tanh', A.tanh], ['sigmoid', A.sigmoid], ['sqrt', A.sqrt],
      ['div', (t) => A.div(numerator, t)],
    ];
    for (const [name, f] of cases) {
      const x = A.tensor(data, { requiresGrad: true });
      const w = A.tensor(data.map((_, i) => (i % 3) - 1.25));
      const l1 = A.sum(A.mul(f(x), w));
      backend.resetStats();
      const [fast] = gradients(l1, [x]);
      const k = backend.stats().kernels;
      const l2 = A.sum(A.mul(f(x), w));
      const [slow] = gradients(l2, [x], { createGraph: true });
      expect(Array.from(await fast!.toArray()), name).toEqual(Array.from(await slow!.toArray()));
      // the rule's one program (the loss's own mul and sum backward aside)
      expect(k.elementwise, name).toBeGreaterThanOrEqual(1);
      expect((k.ewise ?? 0) + (k.unary ?? 0) + (k.scalar ?? 0), name).toBeLessThanOrEqual(1);
      [x, w, l1, l2, fast!, slow!].forEach((t) => t.dispose());
    }
    numerator.dispose();
    expect(liveBuffers()).toBe(before);
  });
});
