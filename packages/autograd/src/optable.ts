/**
 * The primitive ops: each one is a forward on NDArrays and a backward written in Tensor ops, side by
 * side, so gradients are themselves differentiable. Everything else in ./functions is a composition
 * of these and has no gradient code of its own.
 *
 * `OPS` is typed `{ [K in OpName]: OpDef<K> }`: adding a name to `OpAttrs` without a definition (and
 * so without a gradient) does not compile.
 */
import {
  concatenate,
  defineProgram,
  indexAddInto,
  indexSelect as ndIndexSelect,
  type ElementwiseProgram,
  elementwise,
  fail,
  formatShape,
  full,
  NDArray,
  sub as ndSub,
  tidy,
  type Index,
  type Slice,
} from '@needle/ndarray';
import { isGradEnabled } from './grad-mode';
import { Tensor, constant, type GraphNode } from './tensor';
import * as F from './functions';
import { lstmBackwardArrays, lstmBackwardTensors, lstmForward, type LstmAttrs } from './fused-rnn';
import { gruBackwardArrays, gruBackwardTensors, gruForward, rnnBackwardArrays, rnnBackwardTensors, rnnForward, type GruAttrs, type RnnAttrs } from './fused-gru';
import { maxPoolBackward, maxPoolForward } from './fused-pool';
import { RELU_GRAD, SIGMOID_GRAD, TANH_GRAD, sigmoidOf } from './program-fns';
import { crossEntropyBackward, crossEntropyForward, logSoftmaxBackward, logSoftmaxForward, softmaxBackward, softmaxForward, type CrossEntropyAttrs, type SoftmaxAttrs } from './fused-softmax';
import { linearBackward, linearForward, type LinearAttrs } from './fused-linear';
import { batchNormBackward, batchNormForward, type BatchNormAttrs } from './fused-norm';

/** Sliding-window geometry shared by im2col and col2im (NHWC layout). */
export interface WindowAttrs {
  kh: number;
  kw: number;
  sh: number;
  sw: number;
  dh: number;
  dw: number;
}

/** Every primitive op and the attributes it records. */
export interface OpAttrs {
  add: null;
  mul: null;
  div: null;
  pow: null;
  maximum: null;
  addScalar: { scalar: number };
  mulScalar: { scalar: number };
  divScalar: { scalar: number };
  powScalar: { exponent: number };
  neg: null;
  exp: null;
  log: null;
  sqrt: null;
  tanh: null;
  sigmoid: null;
  abs: null;
  relu: null;
  erf: null;
  where: null;
  reshape: { shape: readonly number[] };
  permute: { axes: readonly number[] };
  broadcastTo: { shape: readonly number[] };
  getitem: { index: readonly Index[] };
  scatterSlice: { shape: readonly number[]; index: readonly Index[] };
  concat: { axis: number };
  flip: { axes: readonly number[] };
  pad: { padWidth: ReadonlyArray<readonly [number, number]>; value: number };
  sum: { axes: readonly number[]; keepdims: boolean };
  max: { axes: readonly number[]; keepdims: boolean };
  matmul: null;
  im2col: WindowAttrs;
  col2im: WindowAttrs & { inputShape: readonly number[] };
  lstm: LstmAttrs;
  gru: GruAttrs;
  rnn: RnnAttrs;
  logSoftmax: SoftmaxAttrs;
  softmax: SoftmaxAttrs;
  crossEntropy: CrossEntropyAttrs;
  linear: LinearAttrs;
  batchNorm: BatchNormAttrs;
  maxPool: WindowAttrs;
  indexSelect: { axis: number; missing: number };
  indexScatter: { axis: number; shape: readonly number[] };
}

export type OpName = keyof OpAttrs;

/** What a backward rule sees: the recorded inputs and attributes, the output, which inputs need grads. */
export interface OpNode<K extends OpName> {
  readonly inputs: readonly Tensor[];
  readonly attrs: OpAttrs[K];
  readonly out: Tensor;
  readonly needsGrad: readonly boolean[];
}

/** A tensor a backward rule reads: an input by position, or the op's output. */
export type Saved = number | 'out';

export interface OpDef<K extends OpName> {
  /**
   * The tensors whose values `backward` reads (PyTorch's save_for_backward). Their versions are
   * recorded with the node, and backward throws if one was modified in place since. Shapes and
   * attributes do not count: in-place writes cannot change them.
   */
  saves: readonly Saved[];
  /** Compute the result; returns a new array the caller owns (views count). Inputs are borrowed. */
  forward(inputs: readonly NDArray[], attrs: OpAttrs[K]): NDArray;
  /** Gradients for each input (null where `needsGrad` is false or none exists), in Tensor ops. */
  backward(g: Tensor, node: OpNode<K>): readonly (Tensor | null)[];
}

/** (tanh(x / 2) + 1) / 2 as one elementwise program: bounded everywhere, unlike 1 / (1 + exp(-x)). */
const SIGMOID = defineProgram(1, 0, ([x]) => sigmoidOf(x));
/** region + piece, written back into the region (col2im). */
const ADD_INTO = defineProgram(2, 0, ([region, piece]) => region.add(piece));

/** Dispose NDArray temporaries once `fn` has produced its result. */
function using<T>(temps: NDArray[], fn: () => T): T {
  try {
    return fn();
  } finally {
    temps.forEach((t) => t.dispose());
  }
}

/**
 * A backward rule's Tensor-op form under createGraph (grad mode on during the pass), else the same
 * expression as one elementwise program on arrays: the same ops in the same order, so the same values
 * bit for bit, in one launch instead of one per op.
 */
function rule(program: ElementwiseProgram, arrays: readonly NDArray[], differentiable: () => Tensor): Tensor {
  if (isGradEnabled()) return differentiable();
  return new Tensor(elementwise(program, arrays)[0]);
}

const ABS_GRAD = defineProgram(2, 0, ([g, a]) => g.mul(a.sign()));
const SQRT_GRAD = defineProgram(2, 0, ([g, y]) => g.mul(0.5).div(y));
const DIV_GRAD_B = defineProgram(3, 0, ([g, y, b]) => g.mul(y).div(b).neg());

function inversePermutation(axes: readonly number[]): number[] {
  const inv = new Array<number>(axes.length);
  axes.forEach((a, i) => (inv[a] = i));
  return inv;
}

/** The reduced shape with the reduced axes kept as 1. */
function keptShape(shape: readonly number[], axes: readonly number[]): number[] {
  return shape.map((d, i) => (axes.includes(i) ? 1 : d));
}

/** Bring a reduction's gradient back to the input shape (undo the reduction's keepdims and sizes). */
function expandReduced(g: Tensor, inShape: readonly number[], axes: readonly number[]): Tensor {
  return F.broadcastTo(F.reshape(g, keptShape(inShape, axes)), inShape);
}

/**
 * Coefficients of the Chebyshev fit erfc(z) = t exp(-z^2 + P(t)), t = 1 / (1 + z/2), z >= 0
 * (Numerical Recipes' erfcc): relative error below 1.2e-7 for every z, so erf = 1 - erfc has an
 * absolute error below 1.2e-7 in exact arithmetic and below 4e-7 evaluated in float32.
 * P(t) = c0 + t (c1 + t (c2 + ... + t c9)).
 */
const ERFC_COEFFS = [-1.26551223, 1.00002368, 0.37409196, 0.09678418, -0.18628806, 0.27886807, -1.13520398, 1.48851587, -0.82215223, 0.17087277];

/** erf on NDArrays, composed from elementwise kernels: sign(x) (1 - erfc(|x|)); erf(0) is exactly 0. */
function erfArray(x: NDArray): NDArray {
  return tidy(() => {
    const z = x.abs();
    const t = z.mul(0.5).add(1).pow(-1);
    let p = t.mul(ERFC_COEFFS[9]);
    for (let i = 8; i >= 1; i--) p = p.add(ERFC_COEFFS[i]).mul(t);
    const erfc = z.mul(z).neg().add(p.add(ERFC_COEFFS[0])).exp().mul(t);
    return x.sign().mul(erfc.neg().add(1));
  });
}

const TWO_OVER_SQRT_PI = 2 / Math.sqrt(Math.PI);

/** The output size of a sliding window along one axis. */
export function windowCount(size: number, k: number, stride: number, dilation: number): number {
  return Math.floor((size - dilation * (k - 1) - 1) / stride) + 1;
}

function windowSlice(start: number, count: number, stride: number): Slice {
  return { start, stop: start + stride * (count - 1) + 1, step: stride };
}

/** g * w for a constant weight array w (taken over), or null (w disposed) when no gradient is needed. */
function weigh(g: Tensor, need: boolean, w: NDArray): Tensor | null {
  if (need) return F.mul(g, constant(w));
  w.dispose();
  return null;
}

export const OPS: { [K in OpName]: OpDef<K> } = {
  // ---- elementwise (operands already broadcast to one shape by the frontend) ----------------
  add: {
    saves: [],
    forward: ([a, b]) => a.add(b),
    backward: (g) => [g, g],
  },
  mul: {
    saves: [0, 1],
    forward: ([a, b]) => a.mul(b),
    backward: (g, { inputs: [a, b], needsGrad }) => [needsGrad[0] ? F.mul(g, b) : null, needsGrad[1] ? F.mul(g, a) : null],
  },
  div: {
    saves: [1, 'out'],
    forward: ([a, b]) => a.div(b),
    // d/db (a/b) = -(a/b)/b, from the output: -a/(b*b) would underflow b*b long before a/b does.
    backward: (g, { inputs: [, b], out, needsGrad }) => [
      needsGrad[0] ? F.div(g, b) : null,
      needsGrad[1] ? rule(DIV_GRAD_B, [g.data, out.data, b.data], () => F.neg(F.div(F.mul(g, out), b))) : null,
    ],
  },
  pow: {
    saves: [0, 1, 'out'],
    forward: ([a, b]) => a.pow(b),
    // d/da a^b = b a^(b-1), and 0 where b = 0 (a^0 is constant; 0 * 0^-1 would be NaN at a = 0).
    // d/db a^b = a^b log a, and 0 where a = 0 and b >= 0 (0^b is flat in b there), not 0 * -Inf =
    // NaN: log reads 1 at those elements, which also keeps the double backward finite. Both as in
    // PyTorch; elsewhere outside a > 0 the gradient is NaN, as the function itself is.
    backward: (g, { inputs: [a, b], out, needsGrad }) => {
      const da = needsGrad[0] ? F.where(constant(b.data.eq(0)), 0, F.mul(g, F.mul(b, F.pow(a, F.add(b, -1))))) : null;
      if (!needsGrad[1]) return [da, null];
      const zero = a.data.eq(0);
      const nonNegative = b.data.ge(0);
      const flat = using([zero, nonNegative], () => zero.mul(nonNegative));
      const safeBase = F.where(constant(flat), 1, a);
      return [da, F.mul(g, F.mul(out, F.log(safeBase)))];
    },
  },
  maximum: {
    saves: [0, 1],
    forward: ([a, b]) => a.maximum(b),
    // Ties split the gradient evenly (PyTorch's choice), keeping maximum(a, b) = maximum(b, a).
    backward: (g, { inputs: [a, b], needsGrad }) => {
      const gt = a.data.gt(b.data);
      const eq = a.data.eq(b.data);
      const half = using([eq], () => eq.mul(0.5));
      const wa = using([gt, half], () => gt.add(half));
      const wb = ndSub(1, wa);
      return [weigh(g, needsGrad[0], wa), weigh(g, needsGrad[1], wb)];
    },
  },
  addScalar: {
    saves: [],
    forward: ([a], { scalar }) => a.add(scalar),
    backward: (g) => [g],
  },
  mulScalar: {
    saves: [],
    forward: ([a], { scalar }) => a.mul(scalar),
    backward: (g, { attrs: { scalar } }) => [F.mul(g, scalar)],
  },
  divScalar: {
    saves: [],
    forward: ([a], { scalar }) => a.div(scalar),
    backward: (g, { attrs: { scalar } }) => [F.div(g, scalar)],
  },
  powScalar: {
    saves: [0],
    forward: ([a], { exponent }) => a.pow(exponent),
    backward: (g, { inputs: [a], attrs: { exponent } }) => {
      // x^0 is constant; writing its gradient as 0 * x^-1 would give NaN at x = 0.
      if (exponent === 0) return [F.mul(g, 0)];
      if (exponent === 1) return [g];
      return [F.mul(g, F.mul(F.pow(a, exponent - 1), exponent))];
    },
  },
  neg: {
    saves: [],
    forward: ([a]) => a.neg(),
    backward: (g) => [F.neg(g)],
  },
  exp: {
    saves: ['out'],
    forward: ([a]) => a.exp(),
    backward: (g, { out }) => [F.mul(g, out)],
  },
  log: {
    saves: [0],
    forward: ([a]) => a.log(),
    backward: (g, { inputs: [a] }) => [F.div(g, a)],
  },
  sqrt: {
    saves: ['out'],
    forward: ([a]) => a.sqrt(),
    backward: (g, { out }) => [rule(SQRT_GRAD, [g.data, out.data], () => F.div(F.mul(g, 0.5), out))],
  },
  tanh: {
    saves: ['out'],
    forward: ([a]) => a.tanh(),
    backward: (g, { out }) => [rule(TANH_GRAD, [g.data, out.data], () => F.mul(g, F.sub(1, F.mul(out, out))))],
  },
  sigmoid: {
    saves: ['out'],
    // One fused launch for what was four (the values of the tanh form, bit for bit; see F.sigmoid).
    forward: ([a]) => elementwise(SIGMOID, [a])[0],
    // sigmoid' = s (1 - s), in Tensor ops so second derivatives follow.
    backward: (g, { out }) => [rule(SIGMOID_GRAD, [g.data, out.data], () => F.mul(g, F.mul(out, F.sub(1, out))))],
  },
  abs: {
    saves: [0],
    forward: ([a]) => a.abs(),
    // sign(0) = 0: the subgradient PyTorch uses.
    backward: (g, { inputs: [a] }) => [rule(ABS_GRAD, [g.data, a.data], () => weigh(g, true, a.data.sign())!)],
  },
  relu: {
    saves: [0],
    forward: ([a]) => a.maximum(0),
    backward: (g, { inputs: [a] }) => [rule(RELU_GRAD, [g.data, a.data], () => weigh(g, true, a.data.gt(0))!)],
  },
  erf: {
    saves: [0],
    forward: ([a]) => erfArray(a),
    // The exact derivative 2/sqrt(pi) exp(-x^2), not the fit's: accurate to float32 rounding, and
    // written in Tensor ops so second derivatives (-2x times it) are exact too.
    backward: (g, { inputs: [a] }) => [F.mul(g, F.mul(F.exp(F.neg(F.mul(a, a))), TWO_OVER_SQRT_PI))],
  },
  where: {
    saves: [0],
    forward: ([c, x, y]) => c.where(x, y),
    backward: (g, { inputs: [c], needsGrad }) => [
      null,
      needsGrad[1] ? F.where(c, g, 0) : null,
      needsGrad[2] ? F.where(c, 0, g) : null,
    ],
  },

  // ---- views and data movement --------------------------------------------------------------
  reshape: {
    saves: [],
    forward: ([a], { shape }) => a.reshape(shape),
    backward: (g, { inputs: [a] }) => [F.reshape(g, a.shape)],
  },
  permute: {
    saves: [],
    forward: ([a], { axes }) => a.permute(axes),
    backward: (g, { attrs: { axes } }) => [F.permute(g, inversePermutation(axes))],
  },
  broadcastTo: {
    saves: [],
    forward: ([a], { shape }) => a.broadcastTo(shape),
    backward: (g, { inputs: [a] }) => [F.sumToShape(g, a.shape)],
  },
  getitem: {
    saves: [],
    forward: ([a], { index }) => a.get(...index),
    backward: (g, { inputs: [a], attrs: { index } }) => [F.scatterSlice(g, a.shape, index)],
  },
  scatterSlice: {
    saves: [],
    forward: ([a], { shape, index }) => full(shape, 0, { backend: a.backend }).set([...index], a),
    backward: (g, { attrs: { index } }) => [F.getitem(g, ...index)],
  },
  concat: {
    saves: [],
    forward: (arrays, { axis }) => concatenate(arrays, axis),
    backward: (g, { inputs, attrs: { axis }, needsGrad }) => {
      let start = 0;
      return inputs.map((t, i) => {
        const len = t.shape[axis];
        const index: Index[] = [...Array.from({ length: axis }, (): Slice => ({})), { start, stop: start + len }];
        start += len;
        return needsGrad[i] ? F.getitem(g, ...index) : null;
      });
    },
  },
  flip: {
    saves: [],
    forward: ([a], { axes }) => a.flip(axes),
    backward: (g, { attrs: { axes } }) => [F.flip(g, axes)],
  },
  pad: {
    saves: [],
    forward: ([a], { padWidth, value }) => a.pad(padWidth, value),
    backward: (g, { inputs: [a], attrs: { padWidth } }) => [
      F.getitem(g, ...a.shape.map((d, i): Slice => ({ start: padWidth[i][0], stop: padWidth[i][0] + d }))),
    ],
  },

  // ---- reductions -----------------------------------------------------------------------------
  sum: {
    saves: [],
    forward: ([a], { axes, keepdims }) => a.sum(axes, keepdims),
    backward: (g, { inputs: [a], attrs: { axes } }) => [expandReduced(g, a.shape, axes)],
  },
  max: {
    saves: [0, 'out'],
    forward: ([a], { axes, keepdims }) => a.max(axes, keepdims),
    // The gradient goes to the maximal elements, split evenly between ties (as torch.amax does).
    backward: (g, { inputs: [a], attrs: { axes }, out }) => {
      const m = out.data.reshape(keptShape(a.shape, axes));
      const mask = using([m], () => a.data.eq(m));
      const count = mask.sum(axes, true);
      const w = using([mask, count], () => mask.div(count));
      return [weigh(expandReduced(g, a.shape, axes), true, w)];
    },
  },

  // ---- linear algebra -------------------------------------------------------------------------
  matmul: {
    saves: [0, 1],
    forward: ([a, b]) => a.matmul(b),
    // Batch axes may have been broadcast in the forward; sumToShape folds them back.
    backward: (g, { inputs: [a, b], needsGrad }) => [
      needsGrad[0] ? F.sumToShape(F.matmul(g, F.transpose(b)), a.shape) : null,
      needsGrad[1] ? F.sumToShape(F.matmul(F.transpose(a), g), b.shape) : null,
    ],
  },

  // ---- sliding windows (convolution and pooling) ----------------------------------------------
  im2col: {
    saves: [],
    // [N, H, W, C] -> [N, Ho, Wo, kh, kw, C]: one strided view over the compact input, then one copy.
    forward: ([a], { kh, kw, sh, sw, dh, dw }) => {
      const [n, h, w, c] = a.shape;
      const ho = windowCount(h, kh, sh, dh);
      const wo = windowCount(w, kw, sw, dw);
      const compact = a.compact();
      return using([compact], () => {
        const view = compact.asStrided([n, ho, wo, kh, kw, c], [h * w * c, sh * w * c, sw * c, dh * w * c, dw * c, 1], 0);
        return using([view], () => view.compact());
      });
    },
    backward: (g, { inputs: [a], attrs }) => [F.col2im(g, attrs, a.shape)],
  },
  col2im: {
    saves: [],
    // The adjoint of im2col: windows overlap, so each kernel position adds into its strided region,
    // in place (one launch per position; the region is read and written through the same view).
    forward: ([cols], { kh, kw, sh, sw, dh, dw, inputShape }) => {
      const [, ho, wo] = cols.shape;
      const out = full(inputShape, 0, { backend: cols.backend });
      try {
        for (let i = 0; i < kh; i++) {
          for (let j = 0; j < kw; j++) {
            const region = out.get({}, windowSlice(i * dh, ho, sh), windowSlice(j * dw, wo, sw), {});
            const piece = cols.get({}, {}, {}, i, j, {});
            using([region, piece], () => elementwise(ADD_INTO, [region, piece], [], { out: [region], writer: 'col2im' }));
          }
        }
      } catch (e) {
        out.dispose();
        throw e;
      }
      return out;
    },
    backward: (g, { attrs }) => [F.im2col(g, attrs)],
  },

  // ---- fused normalisations and losses (./fused-softmax) ----------------------------------------
  logSoftmax: {
    saves: ['out'],
    forward: ([x], { axis }) => logSoftmaxForward(x, axis),
    backward: (g, { out, attrs: { axis } }) => [logSoftmaxBackward(g, out, axis)],
  },
  softmax: {
    saves: ['out'],
    forward: ([x], { axis }) => softmaxForward(x, axis),
    backward: (g, { out, attrs: { axis } }) => [softmaxBackward(g, out, axis)],
  },
  crossEntropy: {
    // Inputs [logits [N, C], labels [N]]; the output (the loss) is a view of a buffer that also
    // holds each row's logsumexp for the backward (./fused-softmax).
    saves: [0, 1, 'out'],
    forward: ([x, labels], attrs) => crossEntropyForward(x, labels, attrs),
    backward: (g, { inputs: [x, labels], out, attrs, needsGrad }) => [needsGrad[0] ? crossEntropyBackward(g, x, labels, out, attrs) : null, null],
  },

  maxPool: {
    // NHWC input -> the pooled values [N, Ho, Wo, C], a view of a buffer that also holds the argmax
    // window positions the backward reads (./fused-pool).
    saves: ['out'],
    forward: ([x], attrs) => maxPoolForward(x, attrs),
    backward: (g, { inputs: [x], out, attrs }) => [maxPoolBackward(g, x, out, attrs)],
  },

  // Row lookups and their adjoint, each the other's gradient (both linear in their first input, so
  // every order of derivative is exact). The indices (input 1) are data, never differentiated.
  indexSelect: {
    saves: [1],
    forward: ([x, idx], { axis, missing }) => ndIndexSelect(x, axis, idx, { missing }),
    backward: (g, { inputs: [x, idx], attrs, needsGrad }) => [needsGrad[0] ? apply('indexScatter', [g, idx], { axis: attrs.axis, shape: x.shape }) : null, null],
  },
  indexScatter: {
    // zeros(shape) with the source's slices added at the indices (invalid ones add nothing).
    saves: [1],
    forward: ([src, idx], { axis, shape }) => {
      const out = full(shape, 0, { backend: src.backend });
      try {
        return indexAddInto(out, axis, idx, src);
      } catch (e) {
        out.dispose();
        throw e;
      }
    },
    // An invalid index added nothing, so its slice's gradient is 0, not the forward lookup's NaN.
    backward: (g, { inputs: [, idx], attrs, needsGrad }) => [needsGrad[0] ? apply('indexSelect', [g, idx], { axis: attrs.axis, missing: 0 }) : null, null],
  },

  // ---- fused layers ---------------------------------------------------------------------------
  batchNorm: {
    // Inputs [x, weight?, bias?] (./fused-norm); the output is a view of a buffer that also holds
    // the batch mean and variance the backward reads.
    saves: [0, 'out'],
    forward: (inputs, attrs) => batchNormForward(inputs, attrs),
    backward: (g, { inputs, out, attrs, needsGrad }) => batchNormBackward(g, inputs, out, attrs, needsGrad),
  },
  linear: {
    // Inputs [x [N, in], weight [out, in], bias [out]?] (./fused-linear); the output feeds the
    // activation's derivative.
    saves: [0, 1, 'out'],
    forward: (inputs, attrs) => linearForward(inputs, attrs),
    backward: (g, { inputs, out, attrs, needsGrad }) => linearBackward(g, inputs, out, attrs, needsGrad),
  },
  lstm: {
    // Inputs [xp, weightHh, biasIh?, biasHh?, h0?, c0?] (./fused-rnn); xp and weightHh are always there.
    saves: [0, 1, 'out'],
    forward: (inputs, attrs) => lstmForward(inputs, attrs),
    // Grad mode is on during backward only under createGraph: then the Tensor-op form, so the
    // gradients can be differentiated again; otherwise BPTT on arrays, a few launches per step.
    backward: (g, { inputs, attrs, out, needsGrad }) => {
      if (isGradEnabled()) return lstmBackwardTensors(g, inputs, out, attrs, needsGrad);
      const grads = lstmBackwardArrays(g.data, inputs.map((t) => t.data), out.data, attrs, needsGrad);
      return grads.map((a) => (a ? new Tensor(a) : null));
    },
  },
  gru: {
    // Inputs [xw, weightHh, biasIh?, biasHh?, h0?] (./fused-gru), backward as for lstm.
    saves: [0, 1, 'out'],
    forward: (inputs, attrs) => gruForward(inputs, attrs),
    backward: (g, { inputs, attrs, out, needsGrad }) => {
      if (isGradEnabled()) return gruBackwardTensors(g, inputs, out, attrs, needsGrad);
      return gruBackwardArrays(g.data, inputs.map((t) => t.data), out.data, attrs, needsGrad).map((a) => (a ? new Tensor(a) : null));
    },
  },
  rnn: {
    // Inputs as for gru; the output is every h_t, [seq, batch, hidden].
    saves: [0, 1, 'out'],
    forward: (inputs, attrs) => rnnForward(inputs, attrs),
    backward: (g, { inputs, attrs, out, needsGrad }) => {
      if (isGradEnabled()) return rnnBackwardTensors(g, inputs, out, attrs, needsGrad);
      return rnnBackwardArrays(g.data, inputs.map((t) => t.data), out.data, attrs, needsGrad).map((a) => (a ? new Tensor(a) : null));
    },
  },
};

/**
 * Run a primitive: forward on the inputs' data and, with grad enabled, record the node. Outputs of
 * ops run with grad enabled are graph intermediates even when nothing requires grad (constants
 * computed inside a training step are then freed by backward with the rest of the graph).
 */
export function apply<K extends OpName>(op: K, inputs: readonly Tensor[], attrs: OpAttrs[K]): Tensor {
  const def = OPS[op] as unknown as OpDef<K>;
  for (const t of inputs) {
    if (!(t instanceof Tensor)) fail(op, `expected Tensor inputs, got ${t === null ? 'null' : typeof t}`);
  }
  const out = def.forward(inputs.map((t) => t.data), attrs);
  if (!isGradEnabled()) return Tensor._fromOp(out, null, false);
  const requiresGrad = inputs.some((t) => t.requiresGrad);
  // Only a node that a backward pass can reach needs its saved arrays and their versions.
  let saved = NO_SAVED;
  let versions = NO_VERSIONS;
  if (requiresGrad && def.saves.length > 0) {
    saved = def.saves.map((w) => (w === 'out' ? out : inputs[w].data));
    versions = saved.map((a) => a.version);
  }
  return Tensor._fromOp(out, { op, inputs: [...inputs], attrs, saved, versions }, requiresGrad);
}

const NO_VERSIONS: readonly number[] = [];
const NO_SAVED: readonly NDArray[] = [];

/**
 * Throw when a tensor the node's backward reads was written in place after the op recorded it:
 * its gradient would silently be computed from the new values.
 */
export function checkSaved(node: GraphNode, out: Tensor): void {
  const def = OPS[node.op] as unknown as OpDef<OpName>;
  def.saves.forEach((w, i) => {
    const t = w === 'out' ? out : node.inputs[w];
    const data = t.data;
    const same = data === node.saved[i];
    if (same && data.version === node.versions[i]) return;
    const what = w === 'out' ? 'its output' : `its input ${w}`;
    const how = same ? `${data.lastWriter} after it was used (version ${node.versions[i]}, now ${data.version})` : 'replaceData after it was used (it took new storage)';
    fail('backward', `a tensor needed for gradient computation by ${node.op} (${what}, shape ${formatShape(t.shape)}) was modified in place by ${how}; write the new value into a new tensor, clone() it before the change, or change it after backward()`);
  });
}

/** Check that a backward rule returned one correctly shaped gradient per input. */
export function checkGradients(op: OpName, inputs: readonly Tensor[], grads: readonly (Tensor | null)[]): void {
  if (grads.length !== inputs.length) {
    fail(`backward of ${op}`, `returned ${grads.length} gradients for ${inputs.length} inputs`);
  }
  grads.forEach((gr, i) => {
    if (gr && (gr.shape.length !== inputs[i].shape.length || gr.shape.some((d, j) => d !== inputs[i].shape[j]))) {
      fail(`backward of ${op}`, `gradient ${i} has shape ${formatShape(gr.shape)}, expected the input's shape ${formatShape(inputs[i].shape)}`);
    }
  });
}
