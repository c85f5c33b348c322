/**
 * The whole-sequence LSTM layer as one primitive (cuDNN's shape): forward and backward through time
 * in NDArray kernels, a handful of launches per time step instead of the ~70 of the composed cell.
 *
 * Packed output `out` [6, T, B, H]: block 0 holds h_t for every step (the layer's output sequence,
 * compact from the buffer's start), block 1 c_t, blocks 2..5 the gate pre-activations (i, f, g, o)
 * the backward reads. One output keeps the engine's one-array-per-node model (and its memory
 * accounting); nn.LSTM hands out views of blocks 0 and 1 only. Blocks 2..5 are a workspace: gradients
 * arriving in them are ignored (like cuDNN's reserve space), which is why they are not exposed.
 * Blocks rather than interleaved columns so that each (block, step) is one contiguous range: a
 * program that reads one and writes another touches disjoint memory, which elementwise() runs in
 * place (overlapping extents would be read from copies).
 *
 * Forward values equal the composed cell (matmul, add, sigmoid, tanh, mul) bit for bit: the same
 * kernels in the same order. The backward sums in a different order than the composition's
 * autograd graph (one [B, 4H] @ [4H, H] matmul for the recurrent gradient, one matmul over all steps
 * for the weight), so gradients agree with it to float32 rounding, not bit for bit.
 */
import { defineProgram, elementwise, fail, formatShape, full, NDArray, tidy, type ProgramValue } from '@needle/ndarray';
import { Tensor, constant } from './tensor';
import * as F from './functions';
// The `sigmoid` primitive's own formulas, so the cell's values equal the composed cell's step by step.
import { oneMinus, sigmoidDerivOf as sigDeriv, sigmoidOf as sig } from './program-fns';

export interface LstmAttrs {
  hasBias: boolean;
  hasH0: boolean;
  hasC0: boolean;
}

/** Blocks of the packed output. */
const H_BLOCK = 0;
const C_BLOCK = 1;
/** Gate k's pre-activations (0 i, 1 f, 2 g, 3 o). */
const PRE = (k: number) => 2 + k;


// Forward: the gate pre-activations (as the composed cell adds them: xp + (h W^T + b)), then the cell.
const ADD_HB = defineProgram(3, 0, ([x, hp, b]) => x.add(hp.add(b)));
const ADD2 = defineProgram(2, 0, ([x, y]) => x.add(y));
const COPY = defineProgram(1, 0, ([x]) => x);
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

// Backward of step t, given dh_t = gh_t (+ dpre_{t+1} W_hh) and dc_t = gc_t (+ dc_{t+1} f_{t+1}) + ...:
/** dc from step t+1 carried back through its forget gate, plus the gradient arriving at c_t. */
const BW_CARRY = defineProgram(3, 0, ([gc, dcNext, pfNext]) => gc.add(dcNext.mul(sig(pfNext))));
const BW_FORGET = defineProgram(2, 0, ([dc, pf]) => dc.mul(sig(pf)));
/** dc_t = carried + dh o (1 - tanh^2 c) and the o gate's gradient dh tanh(c) o (1 - o). */
const BW_OUT = defineProgram(4, 0, ([gh, dcIn, c, po]) => outGrads(gh, dcIn, c, po));
const BW_OUT_REC = defineProgram(5, 0, ([gh, rec, dcIn, c, po]) => outGrads(gh.add(rec), dcIn, c, po));
function outGrads(dh: ProgramValue, dcIn: ProgramValue, c: ProgramValue, po: ProgramValue): ProgramValue[] {
  const o = sig(po);
  const tc = c.tanh();
  return [dcIn.add(dh.mul(o).mul(oneMinus(tc.mul(tc)))), dh.mul(tc).mul(o.mul(oneMinus(o)))];
}
/**
 * All four gates' gradients in one output: the program runs over [B, 4, H] (step t's row of dxp),
 * every operand broadcast over the gate axis, and `gate` (0..3 along it) selects which formula an
 * element takes. Each element computes the four and keeps one: 4x the arithmetic of a per-gate
 * program, for one launch that writes dxp in place instead of four (two outputs may not share a
 * buffer).
 */
const BW_GATES = defineProgram(7, 0, ([gate, dc, dpo, pi, pf, pg, cp]) => gateGrads(gate, dc, dpo, pi, pg, dc.mul(cp).mul(sigDeriv(sig(pf)))));
/** From a zero cell state (step 0): f multiplied zeros, its gradient is 0. */
const BW_GATES0 = defineProgram(5, 0, ([gate, dc, dpo, pi, pg]) => gateGrads(gate, dc, dpo, pi, pg, null));
function gateGrads(gate: ProgramValue, dc: ProgramValue, dpo: ProgramValue, pi: ProgramValue, pg: ProgramValue, dpf: ProgramValue | null): ProgramValue {
  const i = sig(pi);
  const g = pg.tanh();
  const dpi = dc.mul(g).mul(sigDeriv(i));
  const dpg = dc.mul(i).mul(oneMinus(g.mul(g)));
  return gate.eq(0).select(dpi, gate.eq(1).select(dpf ?? 0, gate.eq(2).select(dpg, dpo)));
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

/** The forward on NDArrays: per step one matmul, an add program, the cell program and a copy of h_t. */
export function lstmForward(inputs: readonly NDArray[], a: LstmAttrs): NDArray {
  const { xp, whh, bhh, h0, c0 } = unpack(inputs, a);
  const [T, B, G] = xp.shape;
  const H = G / 4;
  const out = NDArray.empty([6, T, B, H], xp.backend);
  try {
    tidy(() => {
      const wT = whh.transpose();
      const bias = bhh?.reshape([4, H]);
      let h: NDArray | null = h0;
      for (let t = 0; t < T; t++) {
        const prev = h;
        h = tidy(() => {
          // Step t's pre-activations, written straight into blocks 2..5 as [B, 4, H].
          const pre = out.get({ start: PRE(0) }, t).permute([1, 0, 2]);
          const xt = xp.get(t).reshape([B, 4, H]);
          if (h) {
            const hp = h.matmul(wT).reshape([B, 4, H]);
            elementwise(bias ? ADD_HB : ADD2, bias ? [xt, hp, bias] : [xt, hp], [], { out: [pre], writer: 'lstm' });
          } else {
            elementwise(bias ? ADD2 : COPY, bias ? [xt, bias] : [xt], [], { out: [pre], writer: 'lstm' });
          }
          const gate = (k: number) => out.get(PRE(k), t);
          const cPrev = t > 0 ? out.get(C_BLOCK, t - 1) : c0;
          const cell = cPrev ? elementwise(CELL, [gate(0), gate(1), gate(2), gate(3), cPrev], [], { out: [undefined, out.get(C_BLOCK, t)], writer: 'lstm' })
            : elementwise(CELL0, [gate(0), gate(2), gate(3)], [], { out: [undefined, out.get(C_BLOCK, t)], writer: 'lstm' });
          // h_t stays a compact array for the next step's matmul, and is copied into block 0
          // (two outputs of one program may not share a buffer).
          out.set([H_BLOCK, t], cell[0]);
          return cell[0];
        });
        if (prev !== h0) prev?.dispose();
      }
      if (h !== h0) h?.dispose();
    });
  } catch (e) {
    out.dispose();
    throw e;
  }
  return out;
}

/**
 * The backward on NDArrays (grad mode off, the usual case): BPTT with three programs and one matmul
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
  const gateIndex = NDArray.fromData(new Float32Array([0, 1, 2, 3]), [1, 4, 1], xp.backend);
  try {
    for (let t = T - 1; t >= 0; t--) {
      const wantH = t > 0 || (h0 !== null && !!need.h0);
      const wantC = t > 0 || (c0 !== null && !!need.c0);
      const rec: NDArray | null = dhRec;
      const next: NDArray | null = dcNext;
      [dhRec, dcNext] = tidy((): [NDArray | null, NDArray | null] => {
        const at = (array: NDArray, block: number) => array.get(block, t);
        const dcIn = next ? elementwise(BW_CARRY, [at(g, C_BLOCK), next, out.get(PRE(1), t + 1)])[0] : at(g, C_BLOCK);
        const [dc, dpo]: NDArray[] = rec ? elementwise(BW_OUT_REC, [at(g, H_BLOCK), rec, dcIn, at(out, C_BLOCK), at(out, PRE(3))])
          : elementwise(BW_OUT, [at(g, H_BLOCK), dcIn, at(out, C_BLOCK), at(out, PRE(3))]);
        const cp = t > 0 ? out.get(C_BLOCK, t - 1) : c0;
        const row = dxp.get(t).reshape([B, 4, H]);
        const wide = (x: NDArray) => x.expandDims(1);
        if (cp) {
          elementwise(BW_GATES, [gateIndex, wide(dc), wide(dpo), wide(at(out, PRE(0))), wide(at(out, PRE(1))), wide(at(out, PRE(2))), wide(cp)], [], { out: [row], writer: 'lstm' });
        } else {
          elementwise(BW_GATES0, [gateIndex, wide(dc), wide(dpo), wide(at(out, PRE(0))), wide(at(out, PRE(2)))], [], { out: [row], writer: 'lstm' });
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
      dcNext = tidy(() => elementwise(BW_FORGET, [dc0, out.get(PRE(1), 0)])[0]);
      dc0.dispose();
    }
    results.push(need.xp ? dxp : null);
    results.push(need.whh ? tidy(() => recurrentWeightGrad(dxp, out, h0)) : null);
    if (a.hasBias) results.push(need.bhh ? dxp.sum([0, 1]) : null);
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
  }
  if (!need.xp) dxp.dispose();
  if (!(a.hasH0 && need.h0)) dhRec?.dispose();
  if (!(a.hasC0 && need.c0)) dcNext?.dispose();
  return results;
}

/** dW_hh = sum_t dpre_t^T h_{t-1}: one matmul over the steps that had a previous h. */
function recurrentWeightGrad(dxp: NDArray, out: NDArray, h0: NDArray | null): NDArray {
  const [T, B, G] = dxp.shape;
  const H = G / 4;
  if (!h0 && T === 1) return full([G, H], 0, { backend: dxp.backend });
  const first = h0 ? 0 : 1;
  const steps = out.get(H_BLOCK, { stop: T - 1 });
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
 * gradcheck of gradients go through it. The pre-activations are recomputed from the inputs and the
 * h block of `out` rather than read from the workspace blocks, whose gradient the primitive drops.
 */
export function lstmBackwardTensors(g: Tensor, inputs: readonly Tensor[], out: Tensor, a: LstmAttrs, needs: readonly boolean[]): (Tensor | null)[] {
  const { xp, whh, bhh, h0, c0 } = unpack(inputs, a);
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
    const xt = F.getitem(xp, t);
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
  if (a.hasBias) results.push(need.bhh ? F.sum(dxp, [0, 1]) : null);
  if (a.hasH0) results.push(need.h0 ? dhRec : null);
  if (a.hasC0) results.push(need.c0 ? dcNext : null);
  return results;
}
