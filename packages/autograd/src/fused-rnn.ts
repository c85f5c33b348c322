/**
 * The whole-sequence LSTM layer as one primitive (cuDNN's shape): forward and backward through time
 * in NDArray kernels, a handful of launches per time step instead of the ~70 of the composed cell.
 *
 * Packed output `out` [6, T, B, H]: block 0 holds h_t for every step (the layer's output sequence,
 * compact from the buffer's start), block 1 c_t, and blocks 2..5, read as [T, B, 4H], the gate
 * activations (sigmoid i, sigmoid f, tanh g, sigmoid o) the backward reads, so the backward needs no
 * transcendental but tanh(c_t). One output keeps the engine's one-array-per-node model (and its
 * memory accounting); nn.LSTM hands out views of blocks 0 and 1 only. Blocks 2..5 are a workspace:
 * gradients arriving in them are ignored (like cuDNN's reserve space), which is why they are not
 * exposed. Every (block, step) is one contiguous range, and step t's activations a compact
 * [B, 4H] (the shape of a matmul result): a program that reads one and writes another touches
 * disjoint memory, which elementwise() runs in place (overlapping extents would be read from copies).
 *
 * Forward values equal the composed cell (matmul, add, sigmoid, tanh, mul) bit for bit: the same
 * kernels in the same order. The backward sums in a different order than the composition's
 * autograd graph (one [B, 4H] @ [4H, H] matmul for the recurrent gradient, one matmul over all steps
 * for the weight), so gradients agree with it to float32 rounding, not bit for bit.
 */
import { defineProgram, elementwise, fail, formatShape, full, NDArray, tidy, type ElementwiseProgram, type ProgramValue } from '@needle/ndarray';
import { Tensor, constant } from './tensor';
import * as F from './functions';
// The `sigmoid` primitive's own formulas, so the cell's values equal the composed cell's step by step.
import { oneMinus, sigmoidDerivOf as sigDeriv } from './program-fns';

export interface LstmAttrs {
  /** biasIh is an input (added to xp first, as x W_ih^T + b_ih would have been). */
  hasBiasIh: boolean;
  hasBias: boolean;
  hasH0: boolean;
  hasC0: boolean;
}

/** Blocks of the packed output. */
const H_BLOCK = 0;
const C_BLOCK = 1;
/** Gate k's columns (0 i, 1 f, 2 g, 3 o) of step t's activations, a compact [B, 4H] from block 2 on. */
const ACT_START = 2;

/** The gate activations: the [T, B, 4H] workspace that fills blocks 2..5 (a view of `out`). */
function activations(out: NDArray): NDArray {
  const [, T, B, H] = out.shape;
  return tidy(() => out.get({ start: ACT_START }).reshape([T, B, 4 * H]));
}
function gateOf(act: NDArray, k: number, H: number): NDArray {
  return act.get({}, { start: k * H, stop: (k + 1) * H });
}

/**
 * Step t's gate activations from its pre-activations, the composed cell's sum
 * (xp + b_ih) + (h W_hh^T + b_hh) (terms absent for a missing bias or a zero state), in one program
 * over [B, 4H]: `scale` (per column, 0.5 for the sigmoid gates i, f, o and 1 for g) makes
 * tanh(pre * scale) the sigmoid's tanh(x / 2) or g's tanh(x), so one tanh per element; then the
 * sigmoid's (u / 2 + 1/2). The same float32 operations as the `sigmoid` and `tanh` primitives.
 */
const actPrograms = new Map<string, ElementwiseProgram>();
function actProgram(bih: boolean, rec: boolean, bhh: boolean): ElementwiseProgram {
  const key = `${+bih}${+rec}${+bhh}`;
  let p = actPrograms.get(key);
  if (!p) {
    const n = 2 + +bih + +rec + +bhh;
    p = defineProgram(n, 0, (ins) => {
      const v = [...ins];
      const x = v.shift()!;
      const base = bih ? x.add(v.shift()!) : x;
      const hp = rec ? v.shift()! : null;
      const b = bhh ? v.shift()! : null;
      const r = hp && b ? hp.add(b) : hp ?? b;
      const pre = r ? base.add(r) : base;
      const scale = v.shift()!;
      const u = pre.mul(scale).tanh();
      return scale.eq(1).select(u, u.mul(0.5).add(0.5));
    });
    actPrograms.set(key, p);
  }
  return p;
}
/**
 * c_t = f c_{t-1} + i g (the composition's order; from a zero state i g) and h_t = o tanh(c_t): one
 * program, its two outputs in blocks 1 and 0 of the output buffer.
 */
const CELL = defineProgram(5, 0, ([i, f, g, c, o]) => {
  const next = f.mul(c).add(i.mul(g));
  return [next, o.mul(next.tanh())];
});
const CELL0 = defineProgram(3, 0, ([i, g, o]) => {
  const next = i.mul(g);
  return [next, o.mul(next.tanh())];
});

// Backward of step t, from the stored activations (no transcendental but tanh(c_t)):
/**
 * dh = gh (+ the recurrent gradient from step t+1), dc = gc (+ dc_{t+1} f_{t+1}) + dh o (1 - tanh^2 c),
 * and the o gate's gradient dh tanh(c) o (1 - o).
 */
const BW_OUT_LAST = defineProgram(4, 0, ([gh, gc, c, o]) => outGrads(gh, gc, c, o));
const BW_OUT = defineProgram(7, 0, ([gh, rec, gc, dcNext, fNext, c, o]) => outGrads(gh.add(rec), gc.add(dcNext.mul(fNext)), c, o));
function outGrads(dh: ProgramValue, dcIn: ProgramValue, c: ProgramValue, o: ProgramValue): ProgramValue[] {
  const tc = c.tanh();
  return [dcIn.add(dh.mul(o).mul(oneMinus(tc.mul(tc)))), dh.mul(tc).mul(sigDeriv(o))];
}
const BW_FORGET = defineProgram(2, 0, ([dc, f]) => dc.mul(f));
/**
 * All four gates' gradients in one output: the program runs over [B, 4, H] (step t's row of dxp),
 * `gate` (0..3 along the gate axis) selects each element's formula, the shared operands broadcast
 * over the gate axis. d pre_k = dc * partner_k * act_k' with partner g for i, c_{t-1} for f, i for g,
 * and act' = a (1 - a) (sigmoid) or 1 - a^2 (g's tanh); the o gate's is dpo. Arithmetic only (the
 * activations are stored), so computing every candidate per element costs little; one launch
 * writing dxp in place instead of four (four outputs into one buffer would need `layouts.sharedOutputs`,
 * which WebGPU lacks).
 */
const BW_GATES = defineProgram(7, 0, ([gate, act, ai, ag, cp, dc, dpo]) => gateGrads(gate, act, gate.eq(0).select(ag, gate.eq(1).select(cp, ai)), dc, dpo, false));
/** From a zero cell state (step 0): f multiplied zeros, its gradient is 0. */
const BW_GATES0 = defineProgram(6, 0, ([gate, act, ai, ag, dc, dpo]) => gateGrads(gate, act, gate.eq(0).select(ag, ai), dc, dpo, true));
function gateGrads(gate: ProgramValue, a: ProgramValue, partner: ProgramValue, dc: ProgramValue, dpo: ProgramValue, zeroForget: boolean): ProgramValue {
  const deriv = gate.eq(2).select(oneMinus(a.mul(a)), sigDeriv(a));
  const d = dc.mul(partner).mul(deriv);
  return gate.eq(3).select(dpo, zeroForget ? gate.eq(1).select(0, d) : d);
}

/** The recorded inputs by name. */
function unpack<T>(inputs: readonly T[], a: LstmAttrs): { xp: T; whh: T; bih: T | null; bhh: T | null; h0: T | null; c0: T | null } {
  const rest = inputs.slice(2);
  return {
    xp: inputs[0],
    whh: inputs[1],
    bih: a.hasBiasIh ? rest.shift()! : null,
    bhh: a.hasBias ? rest.shift()! : null,
    h0: a.hasH0 ? rest.shift()! : null,
    c0: a.hasC0 ? rest.shift()! : null,
  };
}

export function checkLstmInputs(op: string, xp: readonly number[], whh: readonly number[], bhh: readonly number[] | null, h0: readonly number[] | null, c0: readonly number[] | null, bih: readonly number[] | null = null): void {
  if (xp.length !== 3 || xp[2] % 4 !== 0 || xp[0] === 0) {
    fail(op, `input projection of shape ${formatShape(xp)}: expected [seq > 0, batch, 4 * hidden]`);
  }
  const [, b, g] = xp;
  const h = g / 4;
  const expect = (name: string, s: readonly number[] | null, want: number[]) => {
    if (s && (s.length !== want.length || s.some((d, i) => d !== want[i]))) {
      fail(op, `${name} has shape ${formatShape(s)}, expected ${formatShape(want)} for an input projection of shape ${formatShape(xp)}`);
    }
  };
  expect('weightHh', whh, [g, h]);
  expect('biasHh', bhh, [g]);
  expect('h0', h0, [b, h]);
  expect('c0', c0, [b, h]);
  expect('biasIh', bih, [g]);
}

/** Per column of [B, 4H]: 0.5 for the sigmoid gates' tanh(x / 2), 1 for g's tanh(x) (see actProgram). */
function gateScale(H: number, backend: NDArray['backend']): NDArray {
  const s = new Float32Array(4 * H).fill(0.5);
  s.fill(1, 2 * H, 3 * H);
  return NDArray.fromData(s, [4 * H], backend);
}

/**
 * The forward on NDArrays: per step one matmul (h_{t-1} W_hh^T, h_{t-1} read from block 0) and
 * two programs: the gate activations into the workspace, then c_t into block 1 and h_t into block 0
 * (one launch where the backend takes two outputs in one buffer, `layouts.sharedOutputs`).
 */
export function lstmForward(inputs: readonly NDArray[], a: LstmAttrs): NDArray {
  const { xp, whh, bih, bhh, h0, c0 } = unpack(inputs, a);
  const [T, B, G] = xp.shape;
  const H = G / 4;
  const out = NDArray.empty([6, T, B, H], xp.backend);
  try {
    tidy(() => {
      // W_hh^T compacted once: the per-step product with a compact right operand runs faster than
      // with a transposed one (wasm, measured in NOTES.md).
      const wT = whh.transpose().compact();
      const scale = gateScale(H, xp.backend);
      const acts = activations(out);
      for (let t = 0; t < T; t++) {
        tidy(() => {
          const hPrev = t > 0 ? out.get(H_BLOCK, t - 1) : h0;
          const hp = hPrev ? hPrev.matmul(wT) : null;
          const act = acts.get(t);
          const operands = [xp.get(t), bih, hp, bhh, scale].filter((x): x is NDArray => x !== null);
          elementwise(actProgram(!!bih, !!hp, !!bhh), operands, [], { out: [act], writer: 'lstm' });
          const gate = (k: number) => gateOf(act, k, H);
          const cPrev = t > 0 ? out.get(C_BLOCK, t - 1) : c0;
          const written = [out.get(C_BLOCK, t), out.get(H_BLOCK, t)];
          if (cPrev) elementwise(CELL, [gate(0), gate(1), gate(2), cPrev, gate(3)], [], { out: written, writer: 'lstm' });
          else elementwise(CELL0, [gate(0), gate(2), gate(3)], [], { out: written, writer: 'lstm' });
        });
      }
    });
  } catch (e) {
    out.dispose();
    throw e;
  }
  return out;
}

/**
 * The backward on NDArrays (grad mode off, the usual case): BPTT with two programs and one matmul
 * per step, then the recurrent weight's gradient as one matmul over all steps.
 */
export function lstmBackwardArrays(g: NDArray, inputs: readonly NDArray[], out: NDArray, a: LstmAttrs, needs: readonly boolean[]): (NDArray | null)[] {
  const { xp, whh, h0, c0 } = unpack(inputs, a);
  const [T, B, G] = xp.shape;
  const H = G / 4;
  const need = unpack(needs, a);
  const dxp = NDArray.empty([T, B, G], xp.backend);
  let dhRec: NDArray | null = null;
  let dcNext: NDArray | null = null;
  const results: (NDArray | null)[] = [];
  const gateIndex = gateIndexArray(4, H, xp.backend);
  const acts = activations(out);
  try {
    for (let t = T - 1; t >= 0; t--) {
      const wantH = t > 0 || (h0 !== null && !!need.h0);
      const wantC = t > 0 || (c0 !== null && !!need.c0);
      const rec: NDArray | null = dhRec;
      const next: NDArray | null = dcNext;
      [dhRec, dcNext] = tidy((): [NDArray | null, NDArray | null] => {
        const act = acts.get(t);
        const gate = (k: number) => gateOf(act, k, H);
        const gh = g.get(H_BLOCK, t);
        const gc = g.get(C_BLOCK, t);
        const c = out.get(C_BLOCK, t);
        // rec and next come together: both exist for every step but the last.
        const [dc, dpo]: NDArray[] = rec && next ? elementwise(BW_OUT, [gh, rec, gc, next, gateOf(acts.get(t + 1), 1, H), c, gate(3)])
          : elementwise(BW_OUT_LAST, [gh, gc, c, gate(3)]);
        const cp = t > 0 ? out.get(C_BLOCK, t - 1) : c0;
        const row = dxp.get(t).reshape([B, 4, H]);
        const act3 = act.reshape([B, 4, H]);
        const wide = (x: NDArray) => x.expandDims(1);
        const ai = act3.get({}, { start: 0, stop: 1 });
        const ag = act3.get({}, { start: 2, stop: 3 });
        if (cp) {
          elementwise(BW_GATES, [gateIndex, act3, ai, ag, wide(cp), wide(dc), wide(dpo)], [], { out: [row], writer: 'lstm' });
        } else {
          elementwise(BW_GATES0, [gateIndex, act3, ai, ag, wide(dc), wide(dpo)], [], { out: [row], writer: 'lstm' });
        }
        // dc_t goes on to step t-1, which applies f_t; the recurrent gradient dpre_t W_hh likewise.
        return [wantH ? dxp.get(t).matmul(whh) : null, wantC ? dc : null];
      });
      rec?.dispose();
      next?.dispose();
    }
    if (dcNext) {
      // What reaches c_0: dc_0 through the forget gate of step 0.
      const dc0 = dcNext;
      dcNext = tidy(() => elementwise(BW_FORGET, [dc0, gateOf(acts.get(0), 1, H)])[0]);
      dc0.dispose();
    }
    results.push(need.xp ? dxp : null);
    results.push(need.whh ? tidy(() => recurrentWeightGrad(dxp, out.get(H_BLOCK), h0)) : null);
    results.push(...sharedBiasGrads(dxp, a.hasBiasIh && !!need.bih, a.hasBias && !!need.bhh, a.hasBiasIh, a.hasBias));
    if (a.hasH0) results.push(need.h0 ? dhRec : null);
    if (a.hasC0) results.push(need.c0 ? dcNext : null);
  } catch (e) {
    dhRec?.dispose();
    dcNext?.dispose();
    dxp.dispose();
    results.forEach((r) => r !== dhRec && r !== dcNext && r !== dxp && r?.dispose());
    throw e;
  } finally {
    gateIndex.dispose();
    acts.dispose();
  }
  if (!need.xp) dxp.dispose();
  if (!(a.hasH0 && need.h0)) dhRec?.dispose();
  if (!(a.hasC0 && need.c0)) dcNext?.dispose();
  return results;
}

const COPY = defineProgram(1, 0, ([x]) => x);

/**
 * [1, gates, H] holding k in row k: the gate axis index of a program over [B, gates, H]. A full row
 * per gate, not a [1, gates, 1] broadcast, so kernels read it in contiguous runs (wasm reads an
 * operand broadcast along the last axis one element at a time).
 */
export function gateIndexArray(gates: number, H: number, backend: NDArray['backend']): NDArray {
  const v = new Float32Array(gates * H);
  for (let k = 0; k < gates; k++) v.fill(k, k * H, (k + 1) * H);
  return NDArray.fromData(v, [1, gates, H], backend);
}

/**
 * The gradients of b_ih and b_hh where both receive the same sum (LSTM, plain RNN): one matmul, and
 * a copy where both are wanted (each gradient is its own array). Entries only for present biases.
 */
export function sharedBiasGrads(d: NDArray, wantIh: boolean, wantHh: boolean, hasIh: boolean, hasHh: boolean): (NDArray | null)[] {
  const db = wantIh || wantHh ? biasGrad(d) : null;
  const res: (NDArray | null)[] = [];
  if (hasIh) res.push(wantIh ? db : null);
  if (hasHh) res.push(wantHh ? (wantIh ? tidy(() => elementwise(COPY, [db!])[0]) : db) : null);
  return res;
}

/** Sum of dxp [T, B, G] over the steps and the batch: one reduction over the leading axis. */
export function biasGrad(dxp: NDArray): NDArray {
  const [T, B, G] = dxp.shape;
  return tidy(() => dxp.reshape([T * B, G]).sum([0]));
}

/**
 * dW_hh = sum_t dpre_t^T h_{t-1} for dpre [T, B, G] (the gradients of the hidden projections) and
 * the h sequence `hs` [T, B, H]: one matmul over the steps that had a previous h.
 */
export function recurrentWeightGrad(dxp: NDArray, hs: NDArray, h0: NDArray | null): NDArray {
  const [T, B, G] = dxp.shape;
  const H = hs.shape[2];
  if (!h0 && T === 1) return full([G, H], 0, { backend: dxp.backend });
  const first = h0 ? 0 : 1;
  const steps = hs.get({ stop: T - 1 });
  const hPrev = h0 ? concatenateArrays([h0.expandDims(0), steps]) : steps;
  const d = dxp.get({ start: first }).reshape([(T - first) * B, G]);
  return d.transpose().matmul(hPrev.reshape([(T - first) * B, H]));
}

function concatenateArrays(parts: NDArray[]): NDArray {
  const total = parts.reduce((s, p) => s + p.shape[0], 0);
  const res = NDArray.empty([total, ...parts[0].shape.slice(1)], parts[0].backend);
  let start = 0;
  for (const p of parts) {
    res.set([{ start, stop: start + p.shape[0] }], p);
    start += p.shape[0];
  }
  return res;
}

/**
 * The same backward in Tensor ops (used under createGraph): differentiable, so double backward and
 * gradcheck of gradients go through it. The gate values are recomputed from the inputs and the
 * h block of `out` rather than read from the workspace blocks, whose gradient the primitive drops.
 */
export function lstmBackwardTensors(g: Tensor, inputs: readonly Tensor[], out: Tensor, a: LstmAttrs, needs: readonly boolean[]): (Tensor | null)[] {
  const { xp, whh, bih, bhh, h0, c0 } = unpack(inputs, a);
  const [T, B, G] = xp.shape;
  const H = G / 4;
  const need = unpack(needs, a);
  const col = (x: Tensor, t: number, block: number) => F.getitem(x, block, t);
  const cols = (k: number) => ({ start: k * H, stop: (k + 1) * H });
  let dhRec: Tensor | null = null;
  let dcNext: Tensor | null = null;
  const dpre: Tensor[] = new Array<Tensor>(T);
  for (let t = T - 1; t >= 0; t--) {
    const hPrev = t > 0 ? col(out, t - 1, 0) : h0;
    const cPrev = t > 0 ? col(out, t - 1, 1) : c0;
    // (Every tensor made here must be consumed: an unread graph intermediate would never be freed.)
    let hp: Tensor | null = hPrev ? F.matmul(hPrev, F.transpose(whh)) : null;
    if (bhh) hp = hp ? F.add(hp, bhh) : bhh;
    const xt = bih ? F.add(F.getitem(xp, t), bih) : F.getitem(xp, t);
    const pre = hp ? F.add(xt, hp) : xt;
    const gate = (k: number) => F.getitem(pre, {}, cols(k));
    const i = F.sigmoid(gate(0));
    const gg = F.tanh(gate(2));
    const o = F.sigmoid(gate(3));
    const tc = F.tanh(col(out, t, 1));
    const dh = dhRec ? F.add(col(g, t, 0), dhRec) : col(g, t, 0);
    const dpo = F.mul(F.mul(dh, tc), F.mul(o, F.sub(1, o)));
    let dc: Tensor = dcNext ? F.add(col(g, t, 1), dcNext) : col(g, t, 1);
    dc = F.add(dc, F.mul(F.mul(dh, o), F.sub(1, F.mul(tc, tc))));
    const dpi = F.mul(F.mul(dc, gg), F.mul(i, F.sub(1, i)));
    const dpg = F.mul(F.mul(dc, i), F.sub(1, F.mul(gg, gg)));
    let dpf: Tensor;
    if (cPrev) {
      const f = F.sigmoid(gate(1));
      dpf = F.mul(F.mul(dc, cPrev), F.mul(f, F.sub(1, f)));
      dcNext = t > 0 || need.c0 ? F.mul(dc, f) : null;
    } else {
      dpf = constant(full([B, H], 0, { backend: xp.backend }));
      dcNext = null;
    }
    dpre[t] = F.concat([dpi, dpf, dpg, dpo], -1);
    dhRec = t > 0 || need.h0 ? F.matmul(dpre[t], whh) : null;
  }
  const dxp = F.stack(dpre, 0);
  const results: (Tensor | null)[] = [need.xp ? dxp : null];
  if (need.whh) {
    let dw: Tensor | null = null;
    for (let t = 0; t < T; t++) {
      const hPrev = t > 0 ? col(out, t - 1, 0) : h0;
      if (!hPrev) continue;
      const term = F.matmul(F.transpose(dpre[t]), hPrev);
      dw = dw ? F.add(dw, term) : term;
    }
    results.push(dw ?? constant(full([G, H], 0, { backend: xp.backend })));
  } else {
    results.push(null);
  }
  if (a.hasBiasIh) results.push(need.bih ? F.sum(dxp, [0, 1]) : null);
  if (a.hasBias) results.push(need.bhh ? F.sum(dxp, [0, 1]) : null);
  if (a.hasH0) results.push(need.h0 ? dhRec : null);
  if (a.hasC0) results.push(need.c0 ? dcNext : null);
  return results;
}
