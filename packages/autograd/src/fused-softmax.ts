/**
 * softmax, logSoftmax and cross-entropy as fused primitives: a max reduction, one program, a sum
 * reduction, one program forward (instead of ~12 launches of the composition); one or two programs
 * and a reduction backward. Forward values are the composition's bit for bit (the same kernels in the
 * same order: the max shift, exp, sum, log); gradients equal it to float32 rounding (they are
 * computed from the output, softmax - onehot and g - softmax sum(g), not by the chain rule through
 * each step).
 */
import { defineProgram, elementwise, gather, isRowIndexValue, MAX_FLAT_GATHER, NDArray, reduceProgram, tidy, type ProgramValue } from '@needle/ndarray';
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

/** How cross-entropy's per-sample losses are combined: PyTorch's `reduction`. */
export type CrossEntropyReduction = 'none' | 'mean' | 'sum';

export interface CrossEntropyAttrs {
  reduction: CrossEntropyReduction;
}

const IDENTITY = defineProgram(1, 0, ([x]) => x);
/**
 * One element's share of the loss: lse - x at the label's class, 0 elsewhere, times `scale` (1/N
 * for the mean). A label that is not an integer in [0, C) puts NaN in its row's column 0, so the
 * loss is NaN, as `gather` would give.
 */
const NLL = defineProgram(4, 2, ([x, lse, label, cls], [scale, classes]) => {
  const share = cls.eq(label).select(lse.sub(x), 0);
  return isRowIndexValue(label, classes).eq(0).mul(cls.eq(0)).select(NaN, share).mul(scale);
});
/** The loss from each row's logit at its label, picked by a row lookup (NaN for an invalid label). */
const PICKED_NLL = defineProgram(2, 1, ([lse, picked], [scale]) => lse.sub(picked).mul(scale));
/**
 * From this many classes the forward picks each row's labelled logit with a row lookup (a program
 * for the N positions and one gatherRows: two launches more, N elements instead of a walk of N x C
 * that tests every element against its label: ~6% of a language model's step at 10000 words).
 */
const LOOKUP_MIN_CLASSES = 128;
const ONE_HOT = defineProgram(2, 0, ([label, cls]) => cls.eq(label).select(1, 0));
/** g scale (softmax - onehot) = g scale (exp(x - lse) - [class == label]) */
const CE_GRAD = defineProgram(5, 1, ([g, x, lse, label, cls], [scale]) => g.mul(scale).mul(x.sub(lse).exp().sub(cls.eq(label).select(1, 0))));

/** The class indices 0..C-1 as a [1, C] row (uploaded, no kernel). */
function classRow(c: number, like: NDArray): NDArray {
  const row = new Float32Array(c);
  for (let i = 0; i < c; i++) row[i] = i;
  return NDArray.fromData(row, [1, c], like.backend);
}

/** How many loss values the output holds before the per-row logsumexp the backward reads. */
function lossCount(n: number, reduction: CrossEntropyReduction): number {
  return reduction === 'none' ? n : 1;
}

/**
 * Forward of the cross-entropy primitive: logits [N, C], labels [N] (class indices as float32) ->
 * the loss ([N] for 'none', a scalar otherwise) as a view of one buffer that also holds each row's
 * logsumexp for the backward. Two launches on a backend with `reduceProgram`: the row logsumexps,
 * then the loss (per row, or summed over the batch) from them; from LOOKUP_MIN_CLASSES classes two
 * more, which pick the labelled logits instead of the loss walking every row.
 */
export function crossEntropyForward(x: NDArray, labels: NDArray, { reduction }: CrossEntropyAttrs): NDArray {
  const [n, c] = x.shape;
  const count = lossCount(n, reduction);
  const buf = NDArray.empty([count + n], x.backend);
  try {
    return tidy(() => {
      const lse = reduceProgram('logsumexp', IDENTITY, [x], [], { axis: 1, out: buf.get(`${count}:`) }).reshape([n, 1]);
      const loss = reduction === 'none' ? buf.get(`0:${n}`) : buf.get(0);
      const scale = reduction === 'mean' ? 1 / n : 1;
      const axis = reduction === 'none' ? 1 : undefined;
      if (c >= LOOKUP_MIN_CLASSES && n * c <= MAX_FLAT_GATHER) {
        reduceProgram('sum', PICKED_NLL, [lse, gather(x, 1, labels.reshape([n, 1]))], [scale], { axis, out: loss });
      } else {
        reduceProgram('sum', NLL, [x, lse, labels.reshape([n, 1]), classRow(c, x)], [scale, c], { axis, out: loss });
      }
      // The mean of no samples is NaN (PyTorch's too), not the empty sum's 0.
      if (n === 0 && reduction === 'mean') loss.set([], NaN);
      return loss;
    });
  } finally {
    buf.dispose();
  }
}

/** The per-row logsumexp the forward stored behind the loss values, as [N, 1]. */
function storedLse(out: NDArray, n: number, reduction: CrossEntropyReduction): NDArray {
  return out.asStrided([n, 1], [1, 1], out.offset + lossCount(n, reduction));
}

/** Gradient of the loss with respect to the logits. */
export function crossEntropyBackward(g: Tensor, x: Tensor, labels: Tensor, out: Tensor, { reduction }: CrossEntropyAttrs): Tensor {
  const [n, c] = x.shape;
  const scale = reduction === 'mean' ? 1 / n : 1;
  if (!isGradEnabled()) {
    return new Tensor(tidy(() => {
      const gCol = g.data.reshape(reduction === 'none' ? [n, 1] : [1, 1]);
      return elementwise(CE_GRAD, [gCol, x.data, storedLse(out.data, n, reduction), labels.data.reshape([n, 1]), classRow(c, x.data)], [scale])[0];
    }));
  }
  // Differentiable form: g scale (softmax(x) - onehot), with softmax recomputed from x (not from
  // the stored logsumexp, whose gradient the primitive drops).
  const hot = constant(tidy(() => elementwise(ONE_HOT, [labels.data.reshape([n, 1]), classRow(c, x.data)])[0]));
  const gCol = reduction === 'none' ? F.reshape(g, [n, 1]) : F.reshape(g, [1, 1]);
  return F.mul(F.mul(gCol, scale), F.sub(F.softmax(x, 1), hot));
}
