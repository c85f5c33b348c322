/**
 * softmax, logSoftmax and cross-entropy as fused primitives: a max reduction, one program, a sum
 * reduction, one program forward (instead of ~12 launches of the composition); one or two programs
 * and a reduction backward. Forward values are the composition's bit for bit (the same kernels in the
 * same order: the max shift, exp, sum, log); gradients equal it to float32 rounding (they are
 * computed from the output, softmax - onehot and g - softmax sum(g), not by the chain rule through
 * each step).
 */
import { defineProgram, elementwise, NDArray, tidy, type ProgramValue } from '@needle/ndarray';
import { isGradEnabled } from './grad-mode';
import { Tensor, constant } from './tensor';
import * as F from './functions';

export interface SoftmaxAttrs {
  axis: number;
}

/**
 * The max shift of the composed ops (shiftByMax in ./functions): a non-finite max would turn
 * x - max into NaN, so it shifts by 0 there. `keepPlusInf` (logsumexp and so cross-entropy) also
 * shifts by 0 at +Inf, which keeps the +Inf; softmax and logSoftmax shift by +Inf and give NaN, as
 * PyTorch does.
 */
function shift(m: ProgramValue, keepPlusInf: boolean): ProgramValue {
  const magnitude = keepPlusInf ? m.abs() : m.neg();
  return magnitude.lt(Infinity).select(m, 0);
}

const EXP_SHIFTED = defineProgram(2, 0, ([x, m]) => x.sub(shift(m, false)).exp());
const LOG_SOFTMAX = defineProgram(3, 0, ([x, m, s]) => x.sub(shift(m, false)).sub(s.log()));
const DIV = defineProgram(2, 0, ([e, s]) => e.div(s));
/** logSoftmax backward: g - exp(y) sum(g) */
const LOG_SOFTMAX_GRAD = defineProgram(3, 0, ([g, y, sg]) => g.sub(y.exp().mul(sg)));
const MUL = defineProgram(2, 0, ([a, b]) => a.mul(b));
/** softmax backward from gy = g y: gy - y sum(gy) */
const SOFTMAX_GRAD = defineProgram(3, 0, ([gy, y, s]) => gy.sub(y.mul(s)));

/** max along `axis` (kept) and exp(x - shift) */
function shiftedExp(x: NDArray, axis: number): { m: NDArray; e: NDArray } {
  const m = x.max([axis], true);
  try {
    return { m, e: elementwise(EXP_SHIFTED, [x, m])[0] };
  } catch (err) {
    m.dispose();
    throw err;
  }
}

export function logSoftmaxForward(x: NDArray, axis: number): NDArray {
  return tidy(() => {
    const { m, e } = shiftedExp(x, axis);
    return elementwise(LOG_SOFTMAX, [x, m, e.sum([axis], true)])[0];
  });
}

export function softmaxForward(x: NDArray, axis: number): NDArray {
  return tidy(() => {
    const { e } = shiftedExp(x, axis);
    return elementwise(DIV, [e, e.sum([axis], true)])[0];
  });
}

// Backwards: on arrays when grad mode is off during backward (the usual pass), in Tensor ops when
// it is on (createGraph), so the gradients can be differentiated again.

/** d logSoftmax: g - softmax * sum(g) */
export function logSoftmaxBackward(g: Tensor, out: Tensor, axis: number): Tensor {
  if (!isGradEnabled()) {
    return new Tensor(tidy(() => elementwise(LOG_SOFTMAX_GRAD, [g.data, out.data, g.data.sum([axis], true)])[0]));
  }
  return F.sub(g, F.mul(F.exp(out), F.sum(g, axis, true)));
}

/** d softmax: y (g - sum(g y)) */
export function softmaxBackward(g: Tensor, out: Tensor, axis: number): Tensor {
  if (!isGradEnabled()) {
    return new Tensor(tidy(() => {
      const gy = elementwise(MUL, [g.data, out.data])[0];
      return elementwise(SOFTMAX_GRAD, [gy, out.data, gy.sum([axis], true)])[0];
    }));
  }
  return F.mul(out, F.sub(g, F.sum(F.mul(g, out), axis, true)));
}

// ---- cross-entropy --------------------------------------------------------------------------------

const EXP_SHIFTED_LSE = defineProgram(2, 0, ([x, m]) => x.sub(shift(m, true)).exp());
/** The true class's logit (x where the class index equals the label, 0 elsewhere) and a match flag. */
const PICK = defineProgram(3, 0, ([x, label, cls]) => {
  const hit = cls.eq(label);
  return [hit.select(x, 0), hit.select(1, 0)];
});
/**
 * Row 0: the per-sample loss lse - picked (NaN where the label matched no class, as `gather` gives),
 * lse = log(s) + shift; rows 1 and 2: the shift and log(s), kept for the backward (softmax as
 * exp((x - shift) - log s), which keeps the precision x - lse would lose to cancellation). One output
 * over [3, N] selected by the row index, since two outputs of a program may not share a buffer.
 */
const LOSS_AND_STATS = defineProgram(5, 0, ([row, m, s, picked, matched]) => {
  const sh = shift(m, true);
  const logS = s.log();
  const loss = logS.add(sh).sub(picked.add(matched.gt(0).select(0, NaN)));
  return row.eq(0).select(loss, row.eq(1).select(sh, logS));
});
const ONE_HOT = defineProgram(2, 0, ([label, cls]) => cls.eq(label).select(1, 0));
/** g (softmax - onehot) = g (exp((x - shift) - log s) - [class == label]) */
const CE_GRAD = defineProgram(6, 0, ([g, x, sh, logS, label, cls]) => g.mul(x.sub(sh).sub(logS).exp().sub(cls.eq(label).select(1, 0))));

/** The class indices 0..C-1 as a [1, C] row (uploaded, no kernel). */
function classRow(c: number, like: NDArray): NDArray {
  return NDArray.fromData(Float32Array.from({ length: c }, (_, i) => i), [1, c], like.backend);
}

/**
 * Forward of the cross-entropy primitive: logits [N, C], labels [N] (class indices as float32) ->
 * [3, N], row 0 the per-sample loss logsumexp(x_n) - x_n[label_n], rows 1 and 2 the max shift and
 * log of the shifted sum (a workspace: its gradient is ignored). Values are the composed
 * logsumexp - gather's.
 */
export function crossEntropyForward(x: NDArray, labels: NDArray): NDArray {
  const [n, c] = x.shape;
  return tidy(() => {
    const m = x.max([1], true);
    const s = elementwise(EXP_SHIFTED_LSE, [x, m])[0].sum([1], true);
    const label = labels.reshape([n, 1]);
    const [hit, matched] = elementwise(PICK, [x, label, classRow(c, x)]);
    const row = NDArray.fromData(new Float32Array([0, 1, 2]), [3, 1], x.backend);
    const t = (a: NDArray) => a.reshape([1, n]);
    return elementwise(LOSS_AND_STATS, [row, t(m), t(s), t(hit.sum([1], true)), t(matched.sum([1], true))])[0];
  });
}

/** Gradient of the per-sample losses with respect to the logits. */
export function crossEntropyBackward(g: Tensor, x: Tensor, labels: Tensor, out: Tensor): Tensor {
  const [n, c] = x.shape;
  if (!isGradEnabled()) {
    return new Tensor(tidy(() => {
      const col = (a: NDArray) => a.reshape([n, 1]);
      return elementwise(CE_GRAD, [col(g.data.get(0)), x.data, col(out.data.get(1)), col(out.data.get(2)), col(labels.data), classRow(c, x.data)])[0];
    }));
  }
  // Differentiable form: g (softmax(x) - onehot), with softmax recomputed from x (not from the
  // workspace row, whose gradient the primitive drops).
  const hot = constant(tidy(() => elementwise(ONE_HOT, [labels.data.reshape([n, 1]), classRow(c, x.data)])[0]));
  return F.mul(F.reshape(F.getitem(g, 0), [n, 1]), F.sub(F.softmax(x, 1), hot));
}

