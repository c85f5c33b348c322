/**
 * The whole-sequence LSTM layer as one primitive (cuDNN's shape): forward and backward through time
 * in NDArray kernels, a handful of launches per time step instead of the ~70 of the composed cell.
 *
 * Packed output `out` [T, B, 6H], per step t and batch row b: columns [0, H) hold h_t, [H, 2H) c_t,
 * [2H, 6H) the gate pre-activations (i, f, g, o) the backward reads. One output keeps the engine's
 * one-array-per-node model (and its memory accounting); nn.LSTM hands out views of the h and c
 * columns only. The pre-activation columns are a workspace: gradients arriving in them are ignored
 * (like cuDNN's reserve space), which is why they are not exposed.
 *
 * Forward values equal the composed cell (matmul, add, sigmoid, tanh, mul) bit for bit: the same
 * kernels in the same order. The backward sums in a different order than the composition's
 * autograd graph (one [B, 4H] @ [4H, H] matmul for the recurrent gradient, one matmul over all steps
 * for the weight), so gradients agree with it to float32 rounding, not bit for bit.
 */
import { defineProgram, elementwise, fail, formatShape, full, NDArray, tidy, type ElementwiseProgram, type Index, type ProgramValue, type Slice } from '@needle/ndarray';
import { Tensor, constant } from './tensor';
import * as F from './functions';

export interface LstmAttrs {
  hasBias: boolean;
  hasH0: boolean;
  hasC0: boolean;
}

/** sigmoid as the tanh form the `sigmoid` primitive uses (the same values, step by step). */
const sig = (x: ProgramValue): ProgramValue => x.mul(0.5).tanh().mul(0.5).add(0.5);
/** 1 - x */
const oneMinus = (x: ProgramValue): ProgramValue => x.neg().add(1);

// Forward: the gate pre-activations (as the composed cell adds them: xp + (h W^T + b)), then the cell.
const ADD_HB = defineProgram(3, 0, ([x, hp, b]) => x.add(hp.add(b)));
const ADD2 = defineProgram(2, 0, ([x, y]) => x.add(y));
/** pre-activations i, f, g, o and c_{t-1} -> h_t, c_t */
const CELL = defineProgram(5, 0, ([i, f, g, o, c]) => {
  const ig = sig(i).mul(g.tanh());
  const cn = sig(f).mul(c).add(ig);
  return [sig(o).mul(cn.tanh()), cn];
});
/** Without a previous cell state (a zero one): the forget term is left out, as in the composition. */
const CELL0 = defineProgram(3, 0, ([i, g, o]) => {
  const cn = sig(i).mul(g.tanh());
  return [sig(o).mul(cn.tanh()), cn];
});

/**
 * Backward, first half: dh = gh (+ the recurrent gradient), dc = gc (+ dc from step t+1) +
 * dh o (1 - tanh^2 c), and the o gate's gradient dh tanh(c) o (1 - o).
 */
const bwHalfA = new Map<string, ElementwiseProgram>();
function bwA(hasRec: boolean, hasNext: boolean): ElementwiseProgram {
  const key = `${hasRec}${hasNext}`;
  let p = bwHalfA.get(key);
  if (!p) {
    p = defineProgram(4 + Number(hasRec) + Number(hasNext), 0, ([gh, gc, c, po, ...rest]) => {
      const dh = hasRec ? gh.add(rest[0]) : gh;
      const o = sig(po);
      const tc = c.tanh();
      const dpo = dh.mul(tc).mul(o.mul(oneMinus(o)));
      let dc = hasNext ? gc.add(rest[rest.length - 1]) : gc;
      dc = dc.add(dh.mul(o).mul(oneMinus(tc.mul(tc))));
      return [dc, dpo];
    });
    bwHalfA.set(key, p);
  }
  return p;
}

/**
 * Backward, second half: the i and g gates' gradients, then the f gate's and dc passed to step t-1
 * (dc f). Two programs, not one: with each operand compacted to a buffer of its own (today's
 * elementwise), one would bind 9 buffers, and a WebGPU kernel binds at most 8.
 */
const BW_IG = defineProgram(3, 0, ([dc, pi, pg]) => {
  const i = sig(pi);
  const g = pg.tanh();
  return [dc.mul(g).mul(i.mul(oneMinus(i))), dc.mul(i).mul(oneMinus(g.mul(g)))];
});
const BW_F = defineProgram(3, 0, ([dc, pf, cp]) => {
  const f = sig(pf);
  return [dc.mul(cp).mul(f.mul(oneMinus(f))), dc.mul(f)];
});
/** Column block k (of width `width`) of the last axis. */
function cols(k: number, width: number): Slice {
  return { start: k * width, stop: (k + 1) * width };
}

/**
 * Write `values` (fresh arrays, disposed here) into views of `target`. Today a copy per view: the
 * elementwise `out` option takes only arrays contiguous from their buffer's start; once it takes
 * strided views, the programs can write there directly.
 */
function store(target: NDArray, writes: readonly [readonly Index[], NDArray][]): void {
  for (const [index, v] of writes) {
    target.set([...index], v);
    v.dispose();
  }
}

/** The recorded inputs by name. */
function unpack<T>(inputs: readonly T[], a: LstmAttrs): { xp: T; whh: T; bhh: T | null; h0: T | null; c0: T | null } {
  const rest = inputs.slice(2);
  return {
    xp: inputs[0],
    whh: inputs[1],
    bhh: a.hasBias ? rest.shift()! : null,
    h0: a.hasH0 ? rest.shift()! : null,
    c0: a.hasC0 ? rest.shift()! : null,
  };
}

export function checkLstmInputs(op: string, xp: readonly number[], whh: readonly number[], bhh: readonly number[] | null, h0: readonly number[] | null, c0: readonly number[] | null): void {
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
}

/** The forward on NDArrays: per step one matmul, one add program and one cell program (plus copies, see `store`). */
export function lstmForward(inputs: readonly NDArray[], a: LstmAttrs): NDArray {
  const { xp, whh, bhh, h0, c0 } = unpack(inputs, a);
  const [T, B, G] = xp.shape;
  const H = G / 4;
  const backend = xp.backend;
  const out = NDArray.empty([T, B, 6 * H], backend);
  try {
    const wT = whh.transpose();
    // The bias broadcast once, not once per step.
    const bias = bhh ? tidy(() => bhh.broadcastTo([B, G]).compact()) : null;
    let h: NDArray | null = h0;
    let c: NDArray | null = c0;
    try {
      for (let t = 0; t < T; t++) {
        const [hn, cn] = tidy(() => {
          const xt = xp.get(t);
          let pre: NDArray;
          if (h) {
            const hp = h.matmul(wT);
            pre = bias ? elementwise(ADD_HB, [xt, hp, bias])[0] : elementwise(ADD2, [xt, hp])[0];
          } else {
            pre = bias ? elementwise(ADD2, [xt, bias])[0] : xt.compact();
          }
          const g = [0, 1, 2, 3].map((k) => pre.get({}, cols(k, H)));
          const [hNew, cNew] = c ? elementwise(CELL, [g[0], g[1], g[2], g[3], c]) : elementwise(CELL0, [g[0], g[2], g[3]]);
          store(out, [
            [[t, {}, cols(0, H)], hNew.view(hNew.shape, hNew.strides)],
            [[t, {}, cols(1, H)], cNew.view(cNew.shape, cNew.strides)],
            [[t, {}, { start: 2 * H }], pre],
          ]);
          return [hNew, cNew];
        });
        if (h !== h0) h?.dispose();
        if (c !== c0) c?.dispose();
        h = hn;
        c = cn;
      }
    } finally {
      if (h !== h0) h?.dispose();
      if (c !== c0) c?.dispose();
      bias?.dispose();
      wT.dispose();
    }
  } catch (e) {
    out.dispose();
    throw e;
  }
  return out;
}

/**
 * The backward on NDArrays (grad mode off, the usual case): BPTT with three programs and one matmul per
 * step, then the recurrent weight's gradient as one matmul over all steps.
 */
export function lstmBackwardArrays(g: NDArray, inputs: readonly NDArray[], out: NDArray, a: LstmAttrs, needs: readonly boolean[]): (NDArray | null)[] {
  const { xp, whh, h0, c0 } = unpack(inputs, a);
  const [T, B, G] = xp.shape;
  const H = G / 4;
  const backend = xp.backend;
  const need = unpack(needs, a);
  const dxp = NDArray.empty([T, B, G], backend);
  let dhRec: NDArray | null = null;
  let dcNext: NDArray | null = null;
  const results: (NDArray | null)[] = [];
  try {
    for (let t = T - 1; t >= 0; t--) {
      const wantH = t > 0 || (h0 !== null && !!need.h0);
      const wantC = t > 0 || (c0 !== null && !!need.c0);
      const prevH = dhRec;
      const prevC = dcNext;
      [dhRec, dcNext] = tidy(() => {
        const at = (array: NDArray, k: number) => array.get(t, {}, cols(k, H));
        const extra = [prevH, prevC].filter((x): x is NDArray => x !== null);
        const [dc, dpo] = elementwise(bwA(prevH !== null, prevC !== null), [at(g, 0), at(g, 1), at(out, 1), at(out, 5), ...extra]);
        const [dpi, dpg] = elementwise(BW_IG, [dc, at(out, 2), at(out, 4)]);
        const cp = t > 0 ? out.get(t - 1, {}, cols(1, H)) : c0;
        let dcn: NDArray | null = null;
        if (cp) {
          const [dpf, dcPrev] = elementwise(BW_F, [dc, at(out, 3), cp]);
          store(dxp, [[[t, {}, cols(1, H)], dpf]]);
          if (wantC) dcn = dcPrev;
          else dcPrev.dispose();
        } else {
          // Step 0 from a zero cell state: f multiplied zeros, so its gradient is 0.
          dxp.get(t, {}, cols(1, H)).fill(0);
        }
        dc.dispose();
        store(dxp, [[[t, {}, cols(0, H)], dpi], [[t, {}, cols(2, H)], dpg], [[t, {}, cols(3, H)], dpo]]);
        return [wantH ? dxp.get(t).matmul(whh) : null, dcn];
      });
      prevH?.dispose();
      prevC?.dispose();
    }
    results.push(need.xp ? dxp : null);
    results.push(need.whh ? tidy(() => recurrentWeightGrad(dxp, out, h0, H)) : null);
    if (a.hasBias) results.push(need.bhh ? dxp.sum([0, 1]) : null);
    if (a.hasH0) results.push(need.h0 ? dhRec : null);
    if (a.hasC0) results.push(need.c0 ? dcNext : null);
  } catch (e) {
    dhRec?.dispose();
    dcNext?.dispose();
    dxp.dispose();
    results.forEach((r) => r?.dispose());
    throw e;
  }
  if (!need.xp) dxp.dispose();
  if (!(a.hasH0 && need.h0)) dhRec?.dispose();
  if (!(a.hasC0 && need.c0)) dcNext?.dispose();
  return results;
}

/** dW_hh = sum_t dpre_t^T h_{t-1}: one matmul over the steps that had a previous h. */
function recurrentWeightGrad(dxp: NDArray, out: NDArray, h0: NDArray | null, H: number): NDArray {
  const [T, B, G] = dxp.shape;
  const parts: NDArray[] = [];
  if (h0) parts.push(h0.expandDims(0));
  if (T > 1) parts.push(out.get({ stop: T - 1 }, {}, cols(0, H)));
  if (parts.length === 0) return full([G, H], 0, { backend: dxp.backend });
  const first = h0 ? 0 : 1;
  const hPrev = (parts.length === 1 ? parts[0].compact() : concatenateArrays(parts)).reshape([(T - first) * B, H]);
  const d = dxp.get({ start: first }).reshape([(T - first) * B, G]);
  return d.transpose().matmul(hPrev);
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
 * gradcheck of gradients go through it. The pre-activations are recomputed from the inputs and the
 * h columns of `out` rather than read from the workspace columns, whose gradient the primitive drops.
 */
export function lstmBackwardTensors(g: Tensor, inputs: readonly Tensor[], out: Tensor, a: LstmAttrs, needs: readonly boolean[]): (Tensor | null)[] {
  const { xp, whh, bhh, h0, c0 } = unpack(inputs, a);
  const [T, B, G] = xp.shape;
  const H = G / 4;
  const need = unpack(needs, a);
  const col = (x: Tensor, t: number, k: number) => F.getitem(x, t, {}, cols(k, H));
  let dhRec: Tensor | null = null;
  let dcNext: Tensor | null = null;
  const dpre: Tensor[] = new Array<Tensor>(T);
  for (let t = T - 1; t >= 0; t--) {
    const hPrev = t > 0 ? col(out, t - 1, 0) : h0;
    const cPrev = t > 0 ? col(out, t - 1, 1) : c0;
    // (Every tensor made here must be consumed: an unread graph intermediate would never be freed.)
    let hp: Tensor | null = hPrev ? F.matmul(hPrev, F.transpose(whh)) : null;
    if (bhh) hp = hp ? F.add(hp, bhh) : bhh;
    const xt = F.getitem(xp, t);
    const pre = hp ? F.add(xt, hp) : xt;
    const gate = (k: number) => F.getitem(pre, {}, cols(k, H));
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
  if (a.hasBias) results.push(need.bhh ? F.sum(dxp, [0, 1]) : null);
  if (a.hasH0) results.push(need.h0 ? dhRec : null);
  if (a.hasC0) results.push(need.c0 ? dcNext : null);
  return results;
}
