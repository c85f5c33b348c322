/**
 * Whole-sequence GRU and plain (Elman) RNN layers as one primitive each, as ./fused-rnn does for the
 * LSTM: forward and backward through time in NDArray kernels, a few launches per time step, with a
 * second backward in Tensor ops for `createGraph`.
 *
 * Inputs [xw, weightHh, biasIh?, biasHh?, h0?]: `xw` [T, B, G] is the input projection x W_ih^T of
 * every step (G = 3H for the GRU, H for the RNN; PyTorch's gate order r, z, n), biasIh is added to
 * each step's row inside the op (the values of adding it first).
 *
 * GRU output [5, T, B, H]: block 0 h_t for every step (the output sequence), blocks 1..3 read as
 * [T, B, 3H] hold per step the activations r and z and hn = h W_hn^T + b_hn (what the backward needs
 * of the hidden projection), block 4 n_t: a workspace whose gradient is ignored (only block 0 is
 * exposed by nn.GRU). RNN output [T, B, H]: every h_t; its backward needs nothing else (tanh' = 1 - h^2,
 * relu' = [h > 0]).
 *
 * Forward values equal the composed cell of nn (matmul, add, sigmoid, tanh, mul, sub) bit for bit:
 * the same float32 operations in the same order. The backward sums in another order (one matmul per
 * step for the recurrent gradient, one over all steps for W_hh, one sum over the steps and batch for the biases), so
 * gradients agree with the composition to float32 rounding.
 */
import { defineProgram, elementwise, fail, formatShape, full, NDArray, tidy, type ElementwiseProgram, type ProgramValue } from '@needle/ndarray';
import { Tensor, constant } from './tensor';
import * as F from './functions';
import { oneMinus, sigmoidDerivOf as sigDeriv, sigmoidOf as sig } from './program-fns';
import { biasGrad, gateIndexArray, recurrentWeightGrad, sharedBiasGrads } from './fused-rnn';

export interface GruAttrs {
  hasBiasIh: boolean;
  hasBias: boolean;
  hasH0: boolean;
}

export interface RnnAttrs extends GruAttrs {
  nonlinearity: 'tanh' | 'relu';
}

/** The recorded inputs by name. */
function unpack<T>(inputs: readonly T[], a: GruAttrs): { xw: T; whh: T; bih: T | null; bhh: T | null; h0: T | null } {
  const rest = inputs.slice(2);
  return {
    xw: inputs[0],
    whh: inputs[1],
    bih: a.hasBiasIh ? rest.shift()! : null,
    bhh: a.hasBias ? rest.shift()! : null,
    h0: a.hasH0 ? rest.shift()! : null,
  };
}

/** Shape checks for gruSequence / rnnSequence (`gates` 3 or 1). */
export function checkRecurrentInputs(op: string, gates: number, xw: readonly number[], whh: readonly number[], bih: readonly number[] | null, bhh: readonly number[] | null, h0: readonly number[] | null): void {
  const want = gates === 1 ? '[seq > 0, batch, hidden]' : `[seq > 0, batch, ${gates} * hidden]`;
  if (xw.length !== 3 || xw[2] % gates !== 0 || xw[0] === 0 || xw[2] === 0) fail(op, `input projection of shape ${formatShape(xw)}: expected ${want}`);
  const [, b, g] = xw;
  const h = g / gates;
  const expect = (name: string, s: readonly number[] | null, shape: number[]) => {
    if (s && (s.length !== shape.length || s.some((d, i) => d !== shape[i]))) {
      fail(op, `${name} has shape ${formatShape(s)}, expected ${formatShape(shape)} for an input projection of shape ${formatShape(xw)}`);
    }
  };
  expect('weightHh', whh, [g, h]);
  expect('biasIh', bih, [g]);
  expect('biasHh', bhh, [g]);
  expect('h0', h0, [b, h]);
}

/**
 * Programs built per combination of present terms (a missing bias or a zero state leaves its term
 * out, as the composition does), cached by that combination.
 */
function cached(cache: Map<string, ElementwiseProgram>, key: string, make: () => ElementwiseProgram): ElementwiseProgram {
  let p = cache.get(key);
  if (!p) {
    p = make();
    cache.set(key, p);
  }
  return p;
}

/** The composed cell's pre-activation sum (x + b_ih) + (h W^T + b_hh) from the present terms. */
function preActivation(v: ProgramValue[], bih: boolean, rec: boolean, bhh: boolean): { base: ProgramValue; hidden: ProgramValue | null } {
  const x = v.shift()!;
  const base = bih ? x.add(v.shift()!) : x;
  const hp = rec ? v.shift()! : null;
  const b = bhh ? v.shift()! : null;
  return { base, hidden: hp && b ? hp.add(b) : hp ?? b };
}

const COPY_INTO = defineProgram(1, 0, ([x]) => x);
const ADD2 = defineProgram(2, 0, ([x, y]) => x.add(y));

// ---- GRU ------------------------------------------------------------------------------------------

const R_Z_HN = 1;
const N_BLOCK = 4;

/** The [T, B, 3H] workspace of blocks 1..3: per step r, z and hn = h W_hn^T + b_hn. */
function gruWorkspace(out: NDArray): NDArray {
  const [, T, B, H] = out.shape;
  return tidy(() => out.get({ start: R_Z_HN, stop: R_Z_HN + 3 }).reshape([T, B, 3 * H]));
}
function cols(x: NDArray, k: number, H: number): NDArray {
  return x.get({}, { start: k * H, stop: (k + 1) * H });
}

/**
 * Over [B, 3H]: for the r and z columns (`rz` = 1) sigmoid((x + b_ih) + (h W^T + b_hh)); for the n
 * column the hidden part h W_hn^T + b_hn alone (0 without one), which r multiplies in the n program.
 */
const gruGatePrograms = new Map<string, ElementwiseProgram>();
function gruGateProgram(bih: boolean, rec: boolean, bhh: boolean): ElementwiseProgram {
  return cached(gruGatePrograms, `${+bih}${+rec}${+bhh}`, () => defineProgram(2 + +bih + +rec + +bhh, 0, (ins) => {
    const v = [...ins];
    const { base, hidden } = preActivation(v, bih, rec, bhh);
    const rz = v.shift()!;
    return rz.select(sig(hidden ? base.add(hidden) : base), hidden ?? 0);
  }));
}
/**
 * n = tanh((x_n + b_in) + r hn) (tanh(x_n + b_in) without a hidden term), then h' = n + z (h - n),
 * or n - z n from a zero state (the composition's forms): one program, its two outputs in blocks
 * N_BLOCK and 0 of the output buffer. Inputs: x_n, [b_in], [r, hn], z, [h].
 */
const gruNHPrograms = new Map<string, ElementwiseProgram>();
function gruNHProgram(bih: boolean, hidden: boolean, rec: boolean): ElementwiseProgram {
  return cached(gruNHPrograms, `${+bih}${+hidden}${+rec}`, () => defineProgram(2 + +bih + (hidden ? 2 : 0) + +rec, 0, (ins) => {
    const v = [...ins];
    const x = v.shift()!;
    const base = bih ? x.add(v.shift()!) : x;
    const n = (hidden ? base.add(v.shift()!.mul(v.shift()!)) : base).tanh();
    const z = v.shift()!;
    return [n, rec ? n.add(z.mul(v.shift()!.sub(n))) : n.sub(z.mul(n))];
  }));
}

/**
 * Backward of step t over [B, H]: dh = gh (+ the recurrent gradient + dh_{t+1} z_{t+1}), then
 * da = dh (1 - z)(1 - n^2) (the n pre-activation's gradient), dz's pre-activation gradient
 * dh (h - n) z (1 - z), and (where step t-1 exists) the part of dh_{t-1} that flows through z_t, dh z.
 */
const gruBackPrograms = new Map<string, ElementwiseProgram>();
function gruBackProgram(more: boolean, hasPrev: boolean, carry: boolean): ElementwiseProgram {
  return cached(gruBackPrograms, `${+more}${+hasPrev}${+carry}`, () => defineProgram((more ? 3 : 1) + 2 + +hasPrev, 0, (ins) => {
    const v = [...ins];
    const g = v.shift()!;
    const dh = more ? g.add(v.shift()!).add(v.shift()!) : g;
    const n = v.shift()!;
    const z = v.shift()!;
    const h = hasPrev ? v.shift()! : null;
    const da = dh.mul(oneMinus(z)).mul(oneMinus(n.mul(n)));
    const dzp = (h ? dh.mul(h.sub(n)) : dh.mul(n).neg()).mul(sigDeriv(z));
    return carry ? [da, dzp, dh.mul(z)] : [da, dzp];
  }));
}
/**
 * Step t's gradient of the hidden projection h W_hh^T + b_hh, [B, 3, H] selected by the gate axis:
 * r's pre-activation da hn r (1 - r), z's dzp, hn's da r.
 */
const GRU_DHP = defineProgram(5, 0, ([gate, da, dzp, r, hn]) => gate.eq(0).select(da.mul(hn).mul(sigDeriv(r)), gate.eq(1).select(dzp, da.mul(r))));

/** The GRU forward on NDArrays: per step one matmul and two programs (r z hn, then n and h). */
export function gruForward(inputs: readonly NDArray[], a: GruAttrs): NDArray {
  const { xw, whh, bih, bhh, h0 } = unpack(inputs, a);
  const [T, B, G] = xw.shape;
  const H = G / 3;
  const out = NDArray.empty([5, T, B, H], xw.backend);
  try {
    tidy(() => {
      const wT = whh.transpose().compact();
      const rzMask = NDArray.fromData(new Float32Array(G).fill(1, 0, 2 * H), [G], xw.backend);
      const ws = gruWorkspace(out);
      const binN = bih ? cols(bih.reshape([1, G]), 2, H) : null;
      for (let t = 0; t < T; t++) {
        tidy(() => {
          const hPrev = t > 0 ? out.get(0, t - 1) : h0;
          const hm = hPrev ? hPrev.matmul(wT) : null;
          const w = ws.get(t);
          const x = xw.get(t);
          const operands = [x, bih, hm, bhh, rzMask].filter((o): o is NDArray => o !== null);
          elementwise(gruGateProgram(!!bih, !!hm, !!bhh), operands, [], { out: [w], writer: 'gru' });
          const hidden = !!(hm || bhh);
          const nhIn = [cols(x, 2, H), binN, hidden ? cols(w, 0, H) : null, hidden ? cols(w, 2, H) : null, cols(w, 1, H), hPrev].filter((o): o is NDArray => o !== null);
          elementwise(gruNHProgram(!!bih, hidden, !!hPrev), nhIn, [], { out: [out.get(N_BLOCK, t), out.get(0, t)], writer: 'gru' });
        });
      }
    });
  } catch (e) {
    out.dispose();
    throw e;
  }
  return out;
}

/** The GRU backward on NDArrays: per step two programs and the recurrent matmul. */
export function gruBackwardArrays(g: NDArray, inputs: readonly NDArray[], out: NDArray, a: GruAttrs, needs: readonly boolean[]): (NDArray | null)[] {
  const { xw, whh, h0 } = unpack(inputs, a);
  const [T, B, G] = xw.shape;
  const H = G / 3;
  const need = unpack(needs, a);
  // dhp: per step the gradient of h W_hh^T + b_hh; after dW_hh and db_hh its n columns are
  // overwritten with da, which makes it xw's gradient (r and z columns are the same for both).
  const dhp = NDArray.empty([T, B, G], xw.backend);
  const da = NDArray.empty([T, B, H], xw.backend);
  let dhRec: NDArray | null = null;
  let carry: NDArray | null = null;
  const results: (NDArray | null)[] = [];
  const gateIndex = gateIndexArray(3, H, xw.backend);
  const ws = gruWorkspace(out);
  try {
    for (let t = T - 1; t >= 0; t--) {
      const hPrev = t > 0 ? out.get(0, t - 1) : h0;
      const wantH = t > 0 || (h0 !== null && !!need.h0);
      const rec: NDArray | null = dhRec;
      const c: NDArray | null = carry;
      [dhRec, carry] = tidy((): [NDArray | null, NDArray | null] => {
        const w = ws.get(t);
        const z = cols(w, 1, H);
        const more = rec !== null && c !== null;
        const ins = [g.get(0, t), ...(more ? [rec, c] : []), out.get(N_BLOCK, t), z, ...(hPrev ? [hPrev] : [])];
        const res = elementwise(gruBackProgram(more, !!hPrev, wantH), ins, [], { out: [da.get(t)], writer: 'gru' });
        const wide = (x: NDArray) => x.expandDims(1);
        const row = dhp.get(t).reshape([B, 3, H]);
        elementwise(GRU_DHP, [gateIndex, wide(da.get(t)), wide(res[1]), wide(cols(w, 0, H)), wide(cols(w, 2, H))], [], { out: [row], writer: 'gru' });
        return [wantH ? dhp.get(t).matmul(whh) : null, wantH ? res[2] : null];
      });
      rec?.dispose();
      c?.dispose();
    }
    // What reaches h0: the recurrent gradient of step 0 plus the part through z_0.
    let dh0: NDArray | null = null;
    if (h0 && need.h0) dh0 = elementwise(ADD2, [dhRec!, carry!])[0];
    results.push(null); // xw's, filled in below
    results.push(need.whh ? tidy(() => recurrentWeightGrad(dhp, out.get(0), h0)) : null);
    const dbhh = a.hasBias && need.bhh ? biasGrad(dhp) : null;
    tidy(() => elementwise(COPY_INTO, [da.reshape([T * B, H])], [], { out: [cols(dhp.reshape([T * B, G]), 2, H)], writer: 'gru' }));
    if (a.hasBiasIh) results.push(need.bih ? biasGrad(dhp) : null);
    if (a.hasBias) results.push(dbhh);
    if (a.hasH0) results.push(dh0);
    results[0] = need.xw ? dhp : null;
  } catch (e) {
    results.forEach((r) => r !== dhp && r?.dispose());
    dhp.dispose();
    throw e;
  } finally {
    dhRec?.dispose();
    carry?.dispose();
    da.dispose();
    gateIndex.dispose();
    ws.dispose();
  }
  if (!need.xw) dhp.dispose();
  return results;
}

/**
 * The GRU backward in Tensor ops (under createGraph): differentiable again. Gate values are
 * recomputed from the inputs and the h block of `out`.
 */
export function gruBackwardTensors(g: Tensor, inputs: readonly Tensor[], out: Tensor, a: GruAttrs, needs: readonly boolean[]): (Tensor | null)[] {
  const { xw, whh, bih, bhh, h0 } = unpack(inputs, a);
  const [T, B, G] = xw.shape;
  const H = G / 3;
  const need = unpack(needs, a);
  const gate = (x: Tensor, k: number) => F.getitem(x, '...', { start: k * H, stop: (k + 1) * H });
  let dhRec: Tensor | null = null;
  const dxs: Tensor[] = new Array<Tensor>(T);
  const dhps: (Tensor | null)[] = new Array<Tensor | null>(T).fill(null);
  // (Every tensor made here must be consumed: an unread graph intermediate would never be freed.)
  for (let t = T - 1; t >= 0; t--) {
    const hPrev = t > 0 ? F.getitem(out, 0, t - 1) : h0;
    let hidden: Tensor | null = hPrev ? F.matmul(hPrev, F.transpose(whh)) : null;
    if (bhh) hidden = hidden ? F.add(hidden, bhh) : bhh;
    const x = bih ? F.add(F.getitem(xw, t), bih) : F.getitem(xw, t);
    const z = F.sigmoid(hidden ? F.add(gate(x, 1), gate(hidden, 1)) : gate(x, 1));
    const r = hidden ? F.sigmoid(F.add(gate(x, 0), gate(hidden, 0))) : null;
    const hn = hidden ? gate(hidden, 2) : null;
    const n = F.tanh(r ? F.add(gate(x, 2), F.mul(r, hn!)) : gate(x, 2));
    const dh: Tensor = dhRec ? F.add(F.getitem(g, 0, t), dhRec) : F.getitem(g, 0, t);
    const dA = F.mul(F.mul(dh, F.sub(1, z)), F.sub(1, F.mul(n, n)));
    const dz = F.mul(F.mul(dh, hPrev ? F.sub(hPrev, n) : F.neg(n)), F.mul(z, F.sub(1, z)));
    const zeros = () => constant(full([B, H], 0, { backend: xw.backend }));
    const dr = r ? F.mul(F.mul(dA, hn!), F.mul(r, F.sub(1, r))) : zeros();
    dxs[t] = F.concat([dr, dz, dA], -1);
    const wantRec = t > 0 || (hPrev !== null && !!need.h0);
    const wantHp = wantRec || (!!need.whh && hPrev !== null) || (!!bhh && !!need.bhh);
    const dhp = wantHp ? F.concat([dr, dz, r ? F.mul(dA, r) : zeros()], -1) : null;
    dhps[t] = dhp;
    dhRec = wantRec && hPrev ? F.add(F.mul(dh, z), F.matmul(dhp!, whh)) : null;
  }
  const dxw = F.stack(dxs, 0);
  const results: (Tensor | null)[] = [need.xw ? dxw : null];
  results.push(need.whh ? recurrentWeightGradTensors(dhps, (t) => (t > 0 ? F.getitem(out, 0, t - 1) : h0), [G, H], xw) : null);
  if (a.hasBiasIh) results.push(need.bih ? F.sum(dxw, [0, 1]) : null);
  if (a.hasBias) results.push(need.bhh ? dhps.reduce<Tensor | null>((s, d) => (d ? (s ? F.add(s, F.sum(d, 0)) : F.sum(d, 0)) : s), null) : null);
  if (a.hasH0) results.push(need.h0 ? dhRec : null);
  return results;
}

/** sum_t d_t^T h_{t-1} in Tensor ops, over the steps with a previous h (zeros if none). */
function recurrentWeightGradTensors(ds: readonly (Tensor | null)[], hPrevOf: (t: number) => Tensor | null, shape: number[], like: Tensor): Tensor {
  let dw: Tensor | null = null;
  for (let t = 0; t < ds.length; t++) {
    const hPrev = hPrevOf(t);
    if (!hPrev) continue;
    const term = F.matmul(F.transpose(ds[t]!), hPrev);
    dw = dw ? F.add(dw, term) : term;
  }
  return dw ?? constant(full(shape, 0, { backend: like.data.backend }));
}

// ---- plain RNN --------------------------------------------------------------------------------------

/** h_t = act((x + b_ih) + (h W^T + b_hh)) with act tanh or relu (the primitives' max(x, 0)). */
const rnnPrograms = new Map<string, ElementwiseProgram>();
function rnnProgram(bih: boolean, rec: boolean, bhh: boolean, relu: boolean): ElementwiseProgram {
  return cached(rnnPrograms, `${+bih}${+rec}${+bhh}${+relu}`, () => defineProgram(1 + +bih + +rec + +bhh, 0, (ins) => {
    const { base, hidden } = preActivation([...ins], bih, rec, bhh);
    const pre = hidden ? base.add(hidden) : base;
    return relu ? pre.maximum(0) : pre.tanh();
  }));
}
/** dpre = (gh + the recurrent gradient) act'(h): 1 - h^2, or [h > 0] (relu's mask on its input). */
const rnnBackPrograms = new Map<string, ElementwiseProgram>();
function rnnBackProgram(more: boolean, relu: boolean): ElementwiseProgram {
  return cached(rnnBackPrograms, `${+more}${+relu}`, () => defineProgram(more ? 3 : 2, 0, (ins) => {
    const v = [...ins];
    const dh = more ? v[0].add(v[1]) : v[0];
    const h = v[more ? 2 : 1];
    return relu ? h.gt(0).select(dh, 0) : dh.mul(oneMinus(h.mul(h)));
  }));
}

export function rnnForward(inputs: readonly NDArray[], a: RnnAttrs): NDArray {
  const { xw, whh, bih, bhh, h0 } = unpack(inputs, a);
  const [T, B, H] = xw.shape;
  const out = NDArray.empty([T, B, H], xw.backend);
  try {
    tidy(() => {
      const wT = whh.transpose().compact();
      for (let t = 0; t < T; t++) {
        tidy(() => {
          const hPrev = t > 0 ? out.get(t - 1) : h0;
          const hm = hPrev ? hPrev.matmul(wT) : null;
          const operands = [xw.get(t), bih, hm, bhh].filter((o): o is NDArray => o !== null);
          elementwise(rnnProgram(!!bih, !!hm, !!bhh, a.nonlinearity === 'relu'), operands, [], { out: [out.get(t)], writer: 'rnn' });
        });
      }
    });
  } catch (e) {
    out.dispose();
    throw e;
  }
  return out;
}

/** The RNN backward on NDArrays: per step one program and the recurrent matmul. */
export function rnnBackwardArrays(g: NDArray, inputs: readonly NDArray[], out: NDArray, a: RnnAttrs, needs: readonly boolean[]): (NDArray | null)[] {
  const { xw, whh, h0 } = unpack(inputs, a);
  const T = xw.shape[0];
  const need = unpack(needs, a);
  const dpre = NDArray.empty(xw.shape, xw.backend);
  let dhRec: NDArray | null = null;
  const results: (NDArray | null)[] = [];
  try {
    for (let t = T - 1; t >= 0; t--) {
      const wantH = t > 0 || (h0 !== null && !!need.h0);
      const rec: NDArray | null = dhRec;
      dhRec = tidy(() => {
        const d = dpre.get(t);
        elementwise(rnnBackProgram(rec !== null, a.nonlinearity === 'relu'), rec ? [g.get(t), rec, out.get(t)] : [g.get(t), out.get(t)], [], { out: [d], writer: 'rnn' });
        return wantH ? d.matmul(whh) : null;
      });
      rec?.dispose();
    }
    results.push(need.xw ? dpre : null);
    results.push(need.whh ? tidy(() => recurrentWeightGrad(dpre, out, h0)) : null);
    results.push(...sharedBiasGrads(dpre, a.hasBiasIh && !!need.bih, a.hasBias && !!need.bhh, a.hasBiasIh, a.hasBias));
    if (a.hasH0) results.push(need.h0 ? dhRec : null);
  } catch (e) {
    results.forEach((r) => r !== dpre && r !== dhRec && r?.dispose());
    dhRec?.dispose();
    dpre.dispose();
    throw e;
  }
  if (!(a.hasH0 && need.h0)) dhRec?.dispose();
  if (!need.xw) dpre.dispose();
  return results;
}

export function rnnBackwardTensors(g: Tensor, inputs: readonly Tensor[], out: Tensor, a: RnnAttrs, needs: readonly boolean[]): (Tensor | null)[] {
  const { xw, whh, h0 } = unpack(inputs, a);
  const T = xw.shape[0];
  const need = unpack(needs, a);
  let dhRec: Tensor | null = null;
  const ds: Tensor[] = new Array<Tensor>(T);
  for (let t = T - 1; t >= 0; t--) {
    const dh: Tensor = dhRec ? F.add(F.getitem(g, t), dhRec) : F.getitem(g, t);
    let d: Tensor;
    if (a.nonlinearity === 'relu') {
      // relu' is the constant mask [h > 0] (h > 0 exactly where its input is): no second derivative.
      d = F.mul(dh, constant(tidy(() => out.data.get(t).gt(0))));
    } else {
      const h = F.getitem(out, t);
      d = F.mul(dh, F.sub(1, F.mul(h, h)));
    }
    ds[t] = d;
    dhRec = t > 0 || (h0 !== null && !!need.h0) ? F.matmul(d, whh) : null;
  }
  const dxw = F.stack(ds, 0);
  const results: (Tensor | null)[] = [need.xw ? dxw : null];
  results.push(need.whh ? recurrentWeightGradTensors(ds, (t) => (t > 0 ? F.getitem(out, t - 1) : h0), [xw.shape[2], xw.shape[2]], xw) : null);
  if (a.hasBiasIh) results.push(need.bih ? F.sum(dxw, [0, 1]) : null);
  if (a.hasBias) results.push(need.bhh ? F.sum(dxw, [0, 1]) : null);
  if (a.hasH0) results.push(need.h0 ? dhRec : null);
  return results;
}
