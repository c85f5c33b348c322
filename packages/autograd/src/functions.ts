/**
 * The differentiable ops users call. Each is either one primitive from ./optable (through `apply`)
 * or a composition of them, with no gradient code of its own.
 */
import {
  broadcastShapes,
  checkBoolean,
  checkInteger,
  checkNumber,
  checkOptions,
  checkPadWidth,
  describeValue,
  fail,
  formatShape,
  flatIndicesAlong,
  indexedShape,
  oneHot as ndOneHot,
  full as ndFull,
  NDArray,
  normalizeAxes,
  normalizeAxis,
  rand as ndRand,
  matmulBatchShape,
  splitSizes,
  disposeOnError,
  tidy,
  type Generator,
  type Index,
  type Shape,
  type Slice,
} from '@needle/ndarray';
import { isGradEnabled } from './grad-mode';
import { apply, windowCount, type OpAttrs, type WindowAttrs } from './optable';
import { checkLstmInputs } from './fused-rnn';
import { LINEAR_ACTIVATIONS, type LinearActivation } from './fused-linear';
import type { CrossEntropyReduction } from './fused-softmax';
import { checkRecurrentInputs } from './fused-gru';
import { Tensor, constant, type TensorLike } from './tensor';

// ---- helpers --------------------------------------------------------------------------------------

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

function checkTensor(op: string, t: unknown, what = 'input'): asserts t is Tensor {
  if (!(t instanceof Tensor)) fail(op, `expected a Tensor as ${what}, got ${describeValue(t)}`);
  if (t.disposed) fail(op, `the ${what} tensor of shape ${formatShape(t.shape)} was disposed (use after dispose)`);
}

/**
 * Check a binary op's operands under that op's name: a composite (sub, div, minimum) then reports
 * its own name for wrong types, disposed tensors, other backends and shapes that do not broadcast,
 * never the name of a primitive it is built from.
 */
/**
 * All tensors on one backend, checked before a composition starts: a mismatch found by its last
 * primitive would leave the views made before it holding their inputs' buffers.
 */
function checkSameBackend(op: string, tensors: readonly Tensor[]): void {
  for (const t of tensors) {
    if (t.backend !== tensors[0].backend) {
      fail(op, `tensors live on different backends ('${tensors[0].backend.name}' and '${t.backend.name}'); move one with 'await tensor.to(backend)'`);
    }
  }
}

function checkOperands(op: string, a: unknown, b: unknown): void {
  for (const v of [a, b]) {
    if (typeof v !== 'number') checkTensor(op, v, 'operand');
  }
  if (typeof a === 'number' && typeof b === 'number') bothNumbers(op);
  if (a instanceof Tensor && b instanceof Tensor) {
    checkSameBackend(op, [a, b]);
    if (!sameShape(a.shape, b.shape)) broadcastShapes(op, a.shape, b.shape);
  }
}

/**
 * Run a composition. With grad enabled its intermediates are graph nodes reachable from the result
 * (so backward releases them), and freed only if the composition throws part-way; without, nothing
 * references them once the result exists, so a tidy disposes them right away and noGrad code does
 * not leak composite internals.
 */
function composite<T>(fn: () => T): T {
  return isGradEnabled() ? disposeOnError(fn) : tidy(fn);
}

/** Broadcast to `shape` unless already there (internal: may return `t` itself). */
function broadcastIfNeeded(t: Tensor, shape: readonly number[]): Tensor {
  return sameShape(t.shape, shape) ? t : broadcastTo(t, shape);
}

function scalarTensor(value: number, like: Tensor): Tensor {
  return constant(ndFull([], value, { backend: like.backend }));
}

type BroadcastOp = 'add' | 'mul' | 'div' | 'pow' | 'maximum';

/** NumPy broadcasting made explicit: the broadcastTo nodes sum the gradients back to each input's shape. */
function broadcastBinary(op: BroadcastOp, a: Tensor, b: Tensor): Tensor {
  checkTensor(op, a);
  checkTensor(op, b);
  if (sameShape(a.shape, b.shape)) return apply(op, [a, b], null);
  const shape = broadcastShapes(op, a.shape, b.shape);
  return composite(() => apply(op, [broadcastIfNeeded(a, shape), broadcastIfNeeded(b, shape)], null));
}

function bothNumbers(op: string): never {
  return fail(op, 'expected at least one Tensor operand, got two numbers');
}

// ---- elementwise ----------------------------------------------------------------------------------

export function add(a: TensorLike, b: TensorLike): Tensor {
  checkOperands('add', a, b);
  if (typeof a === 'number') return typeof b === 'number' ? bothNumbers('add') : apply('addScalar', [b], { scalar: a });
  if (typeof b === 'number') return apply('addScalar', [a], { scalar: b });
  return broadcastBinary('add', a, b);
}

/** a - b as a + (-b): negation is exact, so this is bit-identical to a direct subtraction. */
export function sub(a: TensorLike, b: TensorLike): Tensor {
  checkOperands('sub', a, b);
  if (typeof a === 'number') {
    return composite(() => add(neg(b as Tensor), a));
  }
  if (typeof b === 'number') return add(a, -b);
  return composite(() => add(a, neg(b)));
}

export function mul(a: TensorLike, b: TensorLike): Tensor {
  checkOperands('mul', a, b);
  if (typeof a === 'number') return typeof b === 'number' ? bothNumbers('mul') : apply('mulScalar', [b], { scalar: a });
  if (typeof b === 'number') return apply('mulScalar', [a], { scalar: b });
  return broadcastBinary('mul', a, b);
}

/**
 * a / b as a true division (a primitive): a * b^-1 would turn div(1e-45, 1e-45) into Infinity, as
 * 1 / 1e-45 overflows float32, and round twice.
 */
export function div(a: TensorLike, b: TensorLike): Tensor {
  checkOperands('div', a, b);
  if (typeof a === 'number') {
    const t = b as Tensor; // checkOperands refused two numbers
    return composite(() => broadcastBinary('div', scalarTensor(a, t), t));
  }
  if (typeof b === 'number') return apply('divScalar', [a], { scalar: b });
  return broadcastBinary('div', a, b);
}

/** a ** b for a tensor or scalar exponent; a scalar base is exp(b * ln a) (so a must be > 0). */
export function pow(a: TensorLike, b: TensorLike): Tensor {
  checkOperands('pow', a, b);
  if (typeof a === 'number') {
    if (!(a > 0)) fail('pow', `a scalar base must be positive (computed as exp(b * ln a)), got ${a}`);
    return composite(() => exp(mul(b, Math.log(a))));
  }
  if (typeof b === 'number') return apply('powScalar', [a], { exponent: b });
  return broadcastBinary('pow', a, b);
}

/** Elementwise maximum; ties split the gradient evenly. */
export function maximum(a: TensorLike, b: TensorLike): Tensor {
  checkOperands('maximum', a, b);
  if (typeof a === 'number') {
    const t = b as Tensor; // checkOperands refused two numbers
    return composite(() => broadcastBinary('maximum', t, scalarTensor(a, t)));
  }
  if (typeof b === 'number') return composite(() => broadcastBinary('maximum', a, scalarTensor(b, a)));
  return broadcastBinary('maximum', a, b);
}

/** Elementwise minimum, as -maximum(-a, -b). */
export function minimum(a: TensorLike, b: TensorLike): Tensor {
  checkOperands('minimum', a, b);
  return composite(() => neg(maximum(typeof a === 'number' ? -a : neg(a), typeof b === 'number' ? -b : neg(b))));
}

export function neg(x: Tensor): Tensor {
  return apply('neg', [x], null);
}

export function exp(x: Tensor): Tensor {
  return apply('exp', [x], null);
}

export function log(x: Tensor): Tensor {
  return apply('log', [x], null);
}

export function sqrt(x: Tensor): Tensor {
  return apply('sqrt', [x], null);
}

export function tanh(x: Tensor): Tensor {
  return apply('tanh', [x], null);
}

export function abs(x: Tensor): Tensor {
  return apply('abs', [x], null);
}

export function relu(x: Tensor): Tensor {
  return apply('relu', [x], null);
}

/**
 * sigmoid(x) = (tanh(x / 2) + 1) / 2, a primitive whose forward is one fused kernel (an elementwise
 * program) and whose gradient is s (1 - s). The textbook 1 / (1 + exp(-x)) overflows exp for
 * x < -88 and its composed gradient then evaluates 0 * Inf = NaN; the tanh form is bounded
 * everywhere, and so is s (1 - s).
 */
export function sigmoid(x: Tensor): Tensor {
  checkTensor('sigmoid', x);
  return apply('sigmoid', [x], null);
}

/** The Gauss error function erf(x) = 2/sqrt(pi) int_0^x exp(-t^2) dt, accurate to 4e-7 in float32; its gradient is the exact 2/sqrt(pi) exp(-x^2). */
export function erf(x: Tensor): Tensor {
  checkTensor('erf', x);
  return apply('erf', [x], null);
}

/** Which GELU: 'none' is the exact x Phi(x) (PyTorch's default), 'tanh' the tanh approximation. */
export type GeluApproximate = 'none' | 'tanh';

const GELU_C = Math.sqrt(2 / Math.PI);

/**
 * GELU(x) = x Phi(x), Phi the standard normal CDF, as torch.nn.functional.gelu: by default the exact
 * 0.5 x (1 + erf(x / sqrt 2)); with `approximate: 'tanh'` the form
 * 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), which differs from it by up to about 1e-3.
 */
export function gelu(x: Tensor, options: { approximate?: GeluApproximate } = {}): Tensor {
  checkTensor('gelu', x);
  const approximate = options.approximate ?? 'none';
  if (approximate === 'tanh') {
    return composite(() => {
      const inner = mul(add(x, mul(pow(x, 3), 0.044715)), GELU_C);
      return mul(mul(x, 0.5), add(tanh(inner), 1));
    });
  }
  if (approximate !== 'none') fail('gelu', `approximate must be 'none' or 'tanh', got ${String(approximate)}`);
  return composite(() => mul(mul(x, 0.5), add(erf(mul(x, Math.SQRT1_2)), 1)));
}

/**
 * cond ? x : y elementwise, with broadcasting over all three. `cond` is a mask (non-zero = true)
 * and receives no gradient. A selection rather than x*m + y*(1-m), which would turn an unselected
 * Inf (attention masks) into NaN in the forward and in the gradient.
 */
export function where(cond: Tensor | NDArray, x: TensorLike, y: TensorLike): Tensor {
  if (cond instanceof NDArray) cond.assertLive('where');
  else checkTensor('where', cond, 'condition');
  for (const v of [x, y]) {
    if (typeof v !== 'number') checkTensor('where', v);
  }
  const backends = [cond, x, y].flatMap((v) => (typeof v === 'number' ? [] : [v.backend]));
  if (backends.some((b) => b !== backends[0])) {
    fail('where', `the condition and values live on different backends (${backends.map((b) => `'${b.name}'`).join(', ')})`);
  }
  const like = x instanceof Tensor ? x : y instanceof Tensor ? y : undefined;
  return composite(() => {
    const c = cond instanceof NDArray ? constant(cond.view(cond.shape, cond.strides, cond.offset)) : cond;
    checkTensor('where', c, 'condition');
    const ref = like ?? c;
    const xt = typeof x === 'number' ? scalarTensor(x, ref) : x;
    const yt = typeof y === 'number' ? scalarTensor(y, ref) : y;
    checkTensor('where', xt);
    checkTensor('where', yt);
    const shape = broadcastShapes('where', broadcastShapes('where', c.shape, xt.shape), yt.shape);
    return apply('where', [broadcastIfNeeded(c, shape), broadcastIfNeeded(xt, shape), broadcastIfNeeded(yt, shape)], null);
  });
}

// ---- shapes and views -----------------------------------------------------------------------------

/** Same data, new shape (one -1 is inferred); a view when the layout allows. */
export function reshape(x: Tensor, shape: Shape): Tensor {
  checkTensor('reshape', x);
  if (!Array.isArray(shape as unknown)) fail('reshape', `expected a shape (an array of integers, one may be -1), got ${describeValue(shape)}`);
  return apply('reshape', [x], { shape: [...shape] });
}

export function permute(x: Tensor, axes: readonly number[]): Tensor {
  checkTensor('permute', x);
  if (!Array.isArray(axes as unknown)) fail('permute', `expected the axes as an array of integers, got ${describeValue(axes)}`);
  if (axes.length !== x.ndim) fail('permute', `got ${axes.length} axes ${JSON.stringify(axes)} for a tensor of shape ${formatShape(x.shape)}`);
  const norm = axes.map((a) => normalizeAxis('permute', a, x.ndim));
  if (new Set(norm).size !== norm.length) fail('permute', `axes ${JSON.stringify(axes)} repeat an axis`);
  return apply('permute', [x], { axes: norm });
}

/** Swap two axes (default the last two). */
export function transpose(x: Tensor, axis0 = -2, axis1 = -1): Tensor {
  checkTensor('transpose', x);
  if (x.ndim < 2) return permute(x, x.shape.map((_, i) => i));
  const a0 = normalizeAxis('transpose', axis0, x.ndim);
  const a1 = normalizeAxis('transpose', axis1, x.ndim);
  const axes = x.shape.map((_, i) => i);
  axes[a0] = a1;
  axes[a1] = a0;
  return permute(x, axes);
}

/** Broadcast to a larger shape (NumPy rules); the gradient sums over the broadcast axes. */
export function broadcastTo(x: Tensor, shape: Shape): Tensor {
  checkTensor('broadcastTo', x);
  if (!Array.isArray(shape as unknown)) fail('broadcastTo', `expected a shape (an array of non-negative integers), got ${describeValue(shape)}`);
  return apply('broadcastTo', [x], { shape: [...shape] });
}

/** Sum `g` down to `shape` (the adjoint of broadcasting). Internal: may return `g` itself. */
export function sumToShape(g: Tensor, shape: readonly number[]): Tensor {
  if (sameShape(g.shape, shape)) return g;
  const lead = g.ndim - shape.length;
  if (lead < 0) fail('sumToShape', `cannot sum a gradient of shape ${formatShape(g.shape)} down to the larger rank of ${formatShape(shape)}`);
  const axes: number[] = [];
  for (let i = 0; i < g.ndim; i++) {
    if (i < lead || (shape[i - lead] === 1 && g.shape[i] !== 1)) axes.push(i);
  }
  return composite(() => reshape(sum(g, axes, true), shape));
}

/**
 * NumPy-style basic indexing (a view): integers drop an axis, slices ('1:5:2', '::-1',
 * {start, stop, step}) keep it, null inserts one, '...' fills. The gradient scatters into zeros.
 */
export function getitem(x: Tensor, ...index: Index[]): Tensor {
  checkTensor('getitem', x);
  return apply('getitem', [x], { index: [...index] });
}

/** The adjoint of getitem: zeros of `shape` with `g` written at `index`. Internal. */
export function scatterSlice(g: Tensor, shape: readonly number[], index: readonly Index[]): Tensor {
  return apply('scatterSlice', [g], { shape: [...shape], index: [...index] });
}

/** Reverse the order along the axes (default all). */
export function flip(x: Tensor, axes?: number | readonly number[]): Tensor {
  checkTensor('flip', x);
  return apply('flip', [x], { axes: normalizeAxes('flip', axes, x.ndim) });
}

/** Remove size-1 axes (the given ones, or all). */
export function squeeze(x: Tensor, axes?: number | readonly number[]): Tensor {
  checkTensor('squeeze', x);
  const list = axes === undefined ? x.shape.flatMap((d, i) => (d === 1 ? [i] : [])) : normalizeAxes('squeeze', axes, x.ndim);
  for (const a of list) {
    if (x.shape[a] !== 1) fail('squeeze', `axis ${a} of shape ${formatShape(x.shape)} has size ${x.shape[a]}, expected 1`);
  }
  return reshape(x, x.shape.filter((_, i) => !list.includes(i)));
}

/** Insert a size-1 axis at `axis` (-1 appends). */
export function expandDims(x: Tensor, axis: number): Tensor {
  checkTensor('expandDims', x);
  const ax = normalizeAxis('expandDims', axis, x.ndim + 1);
  const shape = [...x.shape];
  shape.splice(ax, 0, 1);
  return reshape(x, shape);
}

/** Merge axes startAxis..endAxis (inclusive) into one. */
export function flatten(x: Tensor, startAxis = 0, endAxis = -1): Tensor {
  checkTensor('flatten', x);
  if (x.ndim === 0) return reshape(x, [1]);
  const s = normalizeAxis('flatten', startAxis, x.ndim);
  const e = normalizeAxis('flatten', endAxis, x.ndim);
  if (s > e) fail('flatten', `startAxis ${startAxis} comes after endAxis ${endAxis} for shape ${formatShape(x.shape)}`);
  const merged = x.shape.slice(s, e + 1).reduce((p, d) => p * d, 1);
  return reshape(x, [...x.shape.slice(0, s), merged, ...x.shape.slice(e + 1)]);
}

/** Join along an existing axis; the gradient is split back into the pieces. */
export function concat(tensors: readonly Tensor[], axis = 0): Tensor {
  if (!Array.isArray(tensors as unknown) || tensors.length === 0) fail('concat', `expected a non-empty array of Tensors, got ${describeValue(tensors)}`);
  tensors.forEach((t) => checkTensor('concat', t));
  checkSameBackend('concat', tensors);
  const first = tensors[0];
  const ax = normalizeAxis('concat', axis, first.ndim);
  for (const t of tensors) {
    if (t.ndim !== first.ndim || t.shape.some((d, i) => i !== ax && d !== first.shape[i])) {
      fail('concat', `shapes ${tensors.map((x) => formatShape(x.shape)).join(', ')} differ outside axis ${ax}`);
    }
  }
  return apply('concat', tensors, { axis: ax });
}

/** Join tensors of one shape along a new axis. */
export function stack(tensors: readonly Tensor[], axis = 0): Tensor {
  if (!Array.isArray(tensors as unknown) || tensors.length === 0) fail('stack', `expected a non-empty array of Tensors, got ${describeValue(tensors)}`);
  tensors.forEach((t) => checkTensor('stack', t));
  checkSameBackend('stack', tensors);
  const first = tensors[0];
  for (const t of tensors) {
    if (!sameShape(t.shape, first.shape)) fail('stack', `all tensors must have one shape, got ${tensors.map((x) => formatShape(x.shape)).join(', ')}`);
  }
  const ax = normalizeAxis('stack', axis, first.ndim + 1);
  return composite(() => concat(tensors.map((t) => expandDims(t, ax)), ax));
}

/** Split into views along an axis: a size per piece (the last may be smaller) or a list of sizes. */
export function split(x: Tensor, sizes: number | readonly number[], axis = 0): Tensor[] {
  checkTensor('split', x);
  const ax = normalizeAxis('split', axis, x.ndim);
  const pieces = splitSizes('split', sizes, x.shape, ax);
  let start = 0;
  return pieces.map((len) => {
    const index: Index[] = [...Array.from({ length: ax }, (): Slice => ({})), { start, stop: start + len }];
    start += len;
    return getitem(x, ...index);
  });
}

/** Constant padding: padWidth[i] = [before, after] for axis i (missing trailing axes: none). */
export function pad(x: Tensor, padWidth: ReadonlyArray<readonly [number, number]>, value = 0): Tensor {
  checkTensor('pad', x);
  checkPadWidth('pad', padWidth, x.shape);
  checkNumber('pad', 'the pad value', value, { finite: false });
  const pw = x.shape.map((_, i): [number, number] => [padWidth[i]?.[0] ?? 0, padWidth[i]?.[1] ?? 0]);
  return apply('pad', [x], { padWidth: pw, value });
}

/** Insert `dilation` zeros after each element along the axes (needle's dilate): a scatter into zeros. */
export function dilate(x: Tensor, axes: number | readonly number[], dilation: number): Tensor {
  checkTensor('dilate', x);
  checkInteger('dilate', 'dilation', dilation);
  const list = normalizeAxes('dilate', axes, x.ndim);
  const shape = x.shape.map((d, i) => (list.includes(i) ? d * (dilation + 1) : d));
  const index = x.shape.map((_, i): Slice => (list.includes(i) ? { step: dilation + 1 } : {}));
  return scatterSlice(x, shape, index);
}

/** The inverse of dilate: keep every (dilation+1)-th element along the axes (a strided view). */
export function undilate(x: Tensor, axes: number | readonly number[], dilation: number): Tensor {
  checkTensor('undilate', x);
  checkInteger('undilate', 'dilation', dilation);
  const list = normalizeAxes('undilate', axes, x.ndim);
  return getitem(x, ...x.shape.map((_, i): Slice => (list.includes(i) ? { step: dilation + 1 } : {})));
}

// ---- reductions -----------------------------------------------------------------------------------

function reducedShape(shape: readonly number[], axes: readonly number[], keepdims: boolean): number[] {
  return keepdims ? shape.map((d, i) => (axes.includes(i) ? 1 : d)) : shape.filter((_, i) => !axes.includes(i));
}

/** Sum over axes (default all). */
export function sum(x: Tensor, axis?: number | readonly number[], keepdims = false): Tensor {
  checkTensor('sum', x);
  checkBoolean('sum', 'keepdims', keepdims);
  return apply('sum', [x], { axes: normalizeAxes('sum', axis, x.ndim), keepdims });
}

/** Mean over axes (default all), as sum * (1 / count). */
export function mean(x: Tensor, axis?: number | readonly number[], keepdims = false): Tensor {
  checkTensor('mean', x);
  checkBoolean('mean', 'keepdims', keepdims);
  const axes = normalizeAxes('mean', axis, x.ndim);
  const count = axes.reduce((p, a) => p * x.shape[a], 1);
  if (count === 0) fail('mean', `cannot average over zero elements (shape ${formatShape(x.shape)}, axes ${JSON.stringify(axes)})`);
  return composite(() => mul(sum(x, axes, keepdims), 1 / count));
}

/** Maximum over axes (default all); the gradient is shared between tied maxima. */
export function max(x: Tensor, axis?: number | readonly number[], keepdims = false): Tensor {
  checkTensor('max', x);
  checkBoolean('max', 'keepdims', keepdims);
  return apply('max', [x], { axes: normalizeAxes('max', axis, x.ndim), keepdims });
}

/** Minimum over axes, as -max(-x). */
export function min(x: Tensor, axis?: number | readonly number[], keepdims = false): Tensor {
  checkTensor('min', x);
  checkBoolean('min', 'keepdims', keepdims);
  normalizeAxes('min', axis, x.ndim);
  return composite(() => neg(max(neg(x), axis, keepdims)));
}

/**
 * x - m with m the maximum over `axes` (kept as size 1) entering as a constant. Softmax-type results
 * do not depend on the shift, so no gradient has to flow through the max, and exp(x - m) <= 1 never
 * overflows. An all -Inf slice is shifted by 0 instead (-Inf - -Inf would be NaN). A +Inf maximum
 * is shifted by 0 only for logsumexp (log(sum(exp)) is +Inf there, as in PyTorch); softmax and
 * logSoftmax shift by it, so such a slice becomes NaN throughout, as PyTorch's do.
 */
function shiftByMax(x: Tensor, axes: readonly number[], keepPlusInf: boolean): { shifted: Tensor; shift: Tensor } {
  const m = x.data.max(axes, true);
  const magnitude = keepPlusInf ? m.abs() : m.neg();
  const finite = magnitude.lt(Infinity);
  magnitude.dispose();
  const shift = constant(finite.where(m, 0));
  finite.dispose();
  m.dispose();
  return { shifted: sub(x, shift), shift };
}

/** log(sum(exp(x))) over axes, computed stably as m + log(sum(exp(x - m))) (see shiftByMax). */
export function logsumexp(x: Tensor, axis?: number | readonly number[], keepdims = false): Tensor {
  checkTensor('logsumexp', x);
  checkBoolean('logsumexp', 'keepdims', keepdims);
  const axes = normalizeAxes('logsumexp', axis, x.ndim);
  if (axes.some((a) => x.shape[a] === 0)) fail('logsumexp', `cannot reduce over an empty axis (shape ${formatShape(x.shape)})`);
  return composite(() => {
    const { shifted, shift } = shiftByMax(x, axes, true);
    const out = add(log(sum(exp(shifted), axes, true)), shift);
    return keepdims ? out : reshape(out, reducedShape(x.shape, axes, false));
  });
}

/**
 * log(softmax(x)) as (x - m) - log(sum(exp(x - m))). Subtracting the small log-sum from the shifted
 * values, rather than the large logsumexp from x, keeps float32 precision when |x| is large; the
 * gradient is g - softmax * sum(g). One fused primitive (./fused-softmax): a max and a sum reduction
 * and two elementwise programs forward, a reduction and a program backward; the values of the
 * composition bit for bit.
 */
export function logSoftmax(x: Tensor, axis = -1): Tensor {
  checkTensor('logSoftmax', x);
  const ax = normalizeAxis('logSoftmax', axis, x.ndim);
  if (x.shape[ax] === 0) fail('logSoftmax', `cannot normalise over an empty axis (shape ${formatShape(x.shape)})`);
  return apply('logSoftmax', [x], { axis: ax });
}

/** softmax as e / sum(e) with e = exp(x - m): stable for any input range (see shiftByMax). A fused primitive like logSoftmax. */
export function softmax(x: Tensor, axis = -1): Tensor {
  checkTensor('softmax', x);
  const ax = normalizeAxis('softmax', axis, x.ndim);
  if (x.shape[ax] === 0) fail('softmax', `cannot normalise over an empty axis (shape ${formatShape(x.shape)})`);
  return apply('softmax', [x], { axis: ax });
}

/**
 * Cross-entropy of logits [N, C] against class indices [N] (float32, a Tensor or NDArray):
 * logsumexp(x_n) - x_n[label_n] per sample, shape [N] with `reduction: 'none'` (the default), or
 * their mean or sum (a scalar), as torch.nn.functional.cross_entropy. A label that is not one of
 * 0..C-1 gives NaN (as `gather` does). One fused primitive (./fused-softmax): two launches forward
 * (the row logsumexps, then the loss from them, reduction included) and one backward
 * (scale (softmax - onehot)) on a backend with `reduceProgram`. The per-sample values equal
 * logsumexp(x, 1) - gather(x, 1, labels) bit for bit where the logits are finite; the mean is the
 * sum of loss / N terms. The labels get no gradient.
 */
export function crossEntropy(logits: Tensor, labels: Tensor | NDArray, options: { reduction?: CrossEntropyReduction } = {}): Tensor {
  checkTensor('crossEntropy', logits, 'logits');
  checkOptions('crossEntropy', options);
  const reduction = options.reduction ?? 'none';
  if (!['none', 'mean', 'sum'].includes(reduction)) fail('crossEntropy', `reduction must be 'none', 'mean' or 'sum', got ${describeValue(reduction)}`);
  const y = labels instanceof Tensor ? labels.data : labels;
  if (!(y instanceof NDArray)) fail('crossEntropy', `expected labels as a Tensor or an NDArray, got ${describeValue(labels)}`);
  y.assertLive('crossEntropy');
  if (logits.ndim !== 2 || logits.shape[1] === 0) fail('crossEntropy', `expected logits of shape [N, C] with C > 0, got ${formatShape(logits.shape)}`);
  const n = logits.shape[0];
  if (y.ndim !== 1 || y.shape[0] !== n) fail('crossEntropy', `labels of shape ${formatShape(y.shape)} do not match logits ${formatShape(logits.shape)}; expected class indices of shape [${n}]`);
  if (y.backend !== logits.backend) fail('crossEntropy', `labels live on backend '${y.backend.name}' and logits on '${logits.backend.name}'`);
  // In a composite, so that under noGrad the labels' view is released with the call (with grad, by backward).
  return composite(() => apply('crossEntropy', [logits, constant(y.view(y.shape, y.strides, y.offset))], { reduction }));
}

/**
 * act(x W^T + b), torch.nn.functional.linear followed by an activation (tf.fused.matMul's form): x
 * [..., in], weight [out, in], bias [out] or null, activation 'none' (default), 'relu', 'tanh' or
 * 'sigmoid'. One primitive (./fused-linear): one launch forward on a backend with `matmulProgram`
 * (bias and activation run in the matmul's epilogue); backward one program for the activation's
 * derivative, two matmuls and a reduction. The values of the composition bit for bit.
 */
export function linear(x: Tensor, weight: Tensor, bias: Tensor | null = null, options: { activation?: LinearActivation } = {}): Tensor {
  checkTensor('linear', x);
  checkTensor('linear', weight, 'weight');
  if (bias !== null) checkTensor('linear', bias, 'bias');
  checkOptions('linear', options);
  const activation = options.activation ?? 'none';
  if (!(LINEAR_ACTIVATIONS as readonly string[]).includes(activation)) fail('linear', `activation must be one of ${LINEAR_ACTIVATIONS.join(', ')}, got ${describeValue(activation)}`);
  checkSameBackend('linear', bias ? [x, weight, bias] : [x, weight]);
  if (weight.ndim !== 2) fail('linear', `expected a weight of shape [out, in], got ${formatShape(weight.shape)}`);
  const [out, inF] = weight.shape;
  if (x.ndim === 0 || x.shape[x.ndim - 1] !== inF) fail('linear', `input of shape ${formatShape(x.shape)} does not end in the weight's in=${inF} (weight ${formatShape(weight.shape)}); expected [..., ${inF}]`);
  if (bias && (bias.ndim !== 1 || bias.shape[0] !== out)) fail('linear', `bias of shape ${formatShape(bias.shape)} does not match the weight's out=${out}; expected [${out}]`);
  const attrs = { activation, hasBias: bias !== null };
  const inputs = (x2: Tensor) => (bias ? [x2, weight, bias] : [x2, weight]);
  if (x.ndim === 2) return apply('linear', inputs(x), attrs);
  // Rows of any leading shape fold into one [rows, in] matmul (a view, no copy, when contiguous).
  return composite(() => reshape(apply('linear', inputs(reshape(x, [-1, inF])), attrs), [...x.shape.slice(0, -1), out]));
}

// ---- linear algebra -------------------------------------------------------------------------------

/**
 * Matrix product with NumPy semantics: 1-D operands are promoted (and the added axis removed),
 * batch axes broadcast. [..., k] @ [k, n] folds the batch into rows so the weight is never copied
 * per batch element.
 */
export function matmul(a: Tensor, b: Tensor): Tensor {
  checkTensor('matmul', a);
  checkTensor('matmul', b);
  checkSameBackend('matmul', [a, b]);
  if (a.ndim === 0 || b.ndim === 0) fail('matmul', `expected tensors of at least 1 dimension, got shapes ${formatShape(a.shape)} and ${formatShape(b.shape)}`);
  const k = a.shape[a.ndim - 1];
  const k2 = b.shape[b.ndim === 1 ? 0 : b.ndim - 2];
  if (k !== k2) {
    fail('matmul', `inner dimensions differ: ${formatShape(a.shape)} @ ${formatShape(b.shape)} (${k} vs ${k2}); expected a[..., m, k] @ b[..., k, n]`);
  }
  if (a.ndim === 1) return composite(() => squeeze(matmul(reshape(a, [1, k]), b), b.ndim === 1 ? 0 : -2));
  if (b.ndim === 1) return composite(() => squeeze(matmul(a, reshape(b, [k, 1])), -1));
  if (b.ndim === 2 && a.ndim > 2) {
    const n = b.shape[1];
    return composite(() => reshape(apply('matmul', [reshape(a, [-1, k]), b], null), [...a.shape.slice(0, -1), n]));
  }
  matmulBatchShape(a.shape, b.shape);
  return apply('matmul', [a, b], null);
}

// ---- convolution and pooling (public layout NCHW, computed in NHWC) --------------------------------

type Pair = number | readonly [number, number];

function pair(op: string, name: string, v: Pair, min: number): [number, number] {
  const p = typeof v === 'number' ? [v, v] : Array.isArray(v as unknown) && v.length === 2 ? [v[0], v[1]] : null;
  if (p === null || p.some((x) => !Number.isInteger(x) || x < min)) {
    fail(op, `${name} must be an integer >= ${min} or a pair of them, got ${describeValue(v)}`);
  }
  return p as [number, number];
}

/** im2col as a differentiable op: [N, H, W, C] -> [N, Ho, Wo, kh, kw, C]. Internal. */
export function im2col(x: Tensor, attrs: WindowAttrs): Tensor {
  return apply('im2col', [x], { ...attrs });
}

/** The adjoint of im2col (overlapping windows add up). Internal. */
export function col2im(cols: Tensor, attrs: WindowAttrs, inputShape: readonly number[]): Tensor {
  const { kh, kw, sh, sw, dh, dw } = attrs;
  return apply('col2im', [cols], { kh, kw, sh, sw, dh, dw, inputShape: [...inputShape] });
}

export interface Conv2dOptions {
  /** [out] added to every output position. */
  bias?: Tensor | null;
  stride?: Pair;
  /** Zero padding on both sides of H and W. */
  padding?: Pair;
  dilation?: Pair;
  /** Split the channels into groups convolved independently (in and out channels divisible by it). */
  groups?: number;
  /**
   * Apply an activation to the result (tf.fused.conv2d's option): with groups = 1 it runs, with the
   * bias, in the im2col matmul's epilogue; the values of the activation applied afterwards.
   */
  activation?: LinearActivation;
}

/**
 * 2-D convolution (cross-correlation, as in PyTorch): x [N, C, H, W], weight [O, C/groups, kh, kw]
 * -> [N, O, Ho, Wo]. Internally: NHWC, an im2col strided view, one (batched per group) matmul.
 */
export function conv2d(x: Tensor, weight: Tensor, options: Conv2dOptions = {}): Tensor {
  checkTensor('conv2d', x);
  checkTensor('conv2d', weight, 'weight');
  if (x.ndim !== 4 || weight.ndim !== 4) {
    fail('conv2d', `expected input [N, C, H, W] and weight [O, C/groups, kh, kw], got shapes ${formatShape(x.shape)} and ${formatShape(weight.shape)}`);
  }
  checkOptions('conv2d', options);
  const groups = options.groups ?? 1;
  const [n, c, h, w] = x.shape;
  const [o, cg, kh, kw] = weight.shape;
  if (!Number.isInteger(groups) || groups < 1 || c % groups !== 0 || o % groups !== 0 || cg * groups !== c) {
    fail('conv2d', `input ${formatShape(x.shape)} with ${c} channels and weight ${formatShape(weight.shape)} do not fit groups=${groups} (expected weight [O, ${c / groups}, kh, kw] with O divisible by ${groups})`);
  }
  const bias = options.bias ?? null;
  const activation = options.activation ?? 'none';
  if (!(LINEAR_ACTIVATIONS as readonly string[]).includes(activation)) fail('conv2d', `activation must be one of ${LINEAR_ACTIVATIONS.join(', ')}, got ${describeValue(activation)}`);
  if (bias !== null) checkTensor('conv2d', bias, 'bias');
  if (bias && (bias.ndim !== 1 || bias.shape[0] !== o)) fail('conv2d', `bias has shape ${formatShape(bias.shape)}, expected [${o}]`);
  for (const t of bias ? [weight, bias] : [weight]) {
    if (t.backend !== x.backend) fail('conv2d', `the input lives on backend '${x.backend.name}' and a parameter on '${t.backend.name}'`);
  }
  const [sh, sw] = pair('conv2d', 'stride', options.stride ?? 1, 1);
  const [ph, pw] = pair('conv2d', 'padding', options.padding ?? 0, 0);
  const [dh, dw] = pair('conv2d', 'dilation', options.dilation ?? 1, 1);
  const ho = windowCount(h + 2 * ph, kh, sh, dh);
  const wo = windowCount(w + 2 * pw, kw, sw, dw);
  if (ho < 1 || wo < 1) {
    fail('conv2d', `input ${formatShape(x.shape)} (padding ${ph}, ${pw}) is smaller than the dilated kernel ${kh}x${kw} (dilation ${dh}, ${dw})`);
  }
  return composite(() => {
    let xh = permute(x, [0, 2, 3, 1]);
    if (ph > 0 || pw > 0) xh = pad(xh, [[0, 0], [ph, ph], [pw, pw], [0, 0]]);
    const cols = im2col(xh, { kh, kw, sh, sw, dh, dw });
    const rows = n * ho * wo;
    let out: Tensor;
    if (groups === 1) {
      // linear(cols, W) with W [o, kh*kw*c] = weight permuted to NHWC order: the bias add runs in
      // the matmul's epilogue (one launch on a backend with matmulProgram).
      const wk = reshape(permute(weight, [0, 2, 3, 1]), [o, kh * kw * c]);
      const y = linear(reshape(cols, [rows, kh * kw * c]), wk, bias, { activation });
      return permute(reshape(y, [n, ho, wo, o]), [0, 3, 1, 2]);
    } else {
      const og = o / groups;
      const a = reshape(permute(reshape(cols, [rows, kh * kw, groups, cg]), [2, 0, 1, 3]), [groups, rows, kh * kw * cg]);
      const wm = reshape(permute(reshape(weight, [groups, og, cg, kh, kw]), [0, 3, 4, 2, 1]), [groups, kh * kw * cg, og]);
      out = reshape(permute(matmul(a, wm), [1, 0, 2]), [rows, o]);
    }
    const y = permute(reshape(out, [n, ho, wo, o]), [0, 3, 1, 2]);
    return activate(bias ? add(y, reshape(bias, [1, o, 1, 1])) : y, activation);
  });
}

/** One of `linear`'s activations applied as its own op (where no epilogue can take it). */
export function activate(x: Tensor, activation: LinearActivation): Tensor {
  switch (activation) {
    case 'none': return x;
    case 'relu': return relu(x);
    case 'tanh': return tanh(x);
    case 'sigmoid': return sigmoid(x);
    default: return activation satisfies never;
  }
}

export interface Pool2dOptions {
  /** Default: the kernel size. */
  stride?: Pair;
  padding?: Pair;
  dilation?: Pair;
}

function pool2d(op: 'maxPool2d' | 'avgPool2d', x: Tensor, kernelSize: Pair, options: Pool2dOptions): Tensor {
  checkTensor(op, x);
  if (x.ndim !== 4) fail(op, `expected input [N, C, H, W], got shape ${formatShape(x.shape)}`);
  checkOptions(op, options);
  const [kh, kw] = pair(op, 'kernelSize', kernelSize, 1);
  const [sh, sw] = pair(op, 'stride', options.stride ?? [kh, kw], 1);
  const [ph, pw] = pair(op, 'padding', options.padding ?? 0, 0);
  const [dh, dw] = pair(op, 'dilation', options.dilation ?? 1, 1);
  if (2 * ph > kh || 2 * pw > kw) fail(op, `padding ${ph}, ${pw} must be at most half the kernel ${kh}x${kw}`);
  const [, , h, w] = x.shape;
  if (windowCount(h + 2 * ph, kh, sh, dh) < 1 || windowCount(w + 2 * pw, kw, sw, dw) < 1) {
    fail(op, `input ${formatShape(x.shape)} is smaller than the kernel ${kh}x${kw}`);
  }
  return composite(() => {
    let xh = permute(x, [0, 2, 3, 1]);
    // Max pooling pads with -Inf so padding never wins; average pooling counts the zero padding
    // (PyTorch's count_include_pad=True default).
    if (ph > 0 || pw > 0) xh = pad(xh, [[0, 0], [ph, ph], [pw, pw], [0, 0]], op === 'maxPool2d' ? -Infinity : 0);
    const window = { kh, kw, sh, sw, dh, dw };
    // Max pooling is one fused primitive with an argmax record (./fused-pool); row 0 its values.
    const pooled = op === 'maxPool2d' ? apply('maxPool', [xh], window) : mean(im2col(xh, window), [3, 4]);
    return permute(pooled, [0, 3, 1, 2]);
  });
}

/**
 * Max pooling over kh x kw windows, NCHW. A tie within a window sends the gradient to its first
 * maximum (row-major), as PyTorch's MaxPool2d does. One fused primitive with an argmax record.
 */
export function maxPool2d(x: Tensor, kernelSize: Pair, options: Pool2dOptions = {}): Tensor {
  return pool2d('maxPool2d', x, kernelSize, options);
}

/** Average pooling over kh x kw windows, NCHW (zero padding counts towards the average). */
export function avgPool2d(x: Tensor, kernelSize: Pair, options: Omit<Pool2dOptions, 'dilation'> = {}): Tensor {
  return pool2d('avgPool2d', x, kernelSize, options);
}

// ---- indexing by integer tensors ------------------------------------------------------------------

function indexData(op: string, index: Tensor | NDArray, x?: Tensor): NDArray {
  const data = index instanceof Tensor ? index.data : index;
  if (!(data instanceof NDArray)) fail(op, `expected the indices as a Tensor or NDArray, got ${describeValue(index)}`);
  data.assertLive(op);
  if (x && data.backend !== x.backend) fail(op, `the indices live on backend '${data.backend.name}' and the tensor on '${x.backend.name}'`);
  return data;
}

/**
 * One-hot encoding: indices [...] (integer values stored as float32) -> [..., numClasses]. A leaf you
 * own. Indices outside [0, numClasses) give a row of zeros (they cannot be checked without reading).
 */
export function oneHot(indices: Tensor | NDArray, numClasses: number): Tensor {
  checkInteger('oneHot', 'numClasses', numClasses, 1);
  return new Tensor(ndOneHot(indexData('oneHot', indices), numClasses));
}

/**
 * torch.gather: out[..., i, ...] = x[..., index[..., i, ...], ...] along `axis`; index has x's rank
 * and x's sizes on every other axis. A row lookup of x seen as [size, 1] at the flat positions
 * the index addresses (`flatIndicesAlong`), so the backward is one scatter-add. An out-of-range (or
 * non-integer) index gives NaN, never another element's value. x may have up to 2^24 elements
 * (float32 positions are exact integers up to there).
 */
export function gather(x: Tensor, axis: number, index: Tensor | NDArray): Tensor {
  checkTensor('gather', x);
  const idx = indexData('gather', index, x);
  // flatIndicesAlong checks the axis, the index's shape and x's size (under 'gather').
  return composite(() => reshape(apply('indexSelect', [reshape(x, [-1, 1]), constant(flatIndicesAlong(x.shape, axis, idx))], { axis: 0, missing: NaN }), idx.shape));
}

/**
 * Select entries of `x` along `axis` by integer indices of any shape (torch.index_select, with
 * indices of any rank): the result has shape x.shape[:axis] + indices.shape + x.shape[axis+1:].
 * An embedding lookup is indexSelect(weight, 0, ids). One row-gather kernel (the backend's
 * gatherRows, or a one-hot matmul where it has none); the gradient adds each selected slice back
 * at its index, so repeated indices accumulate. An invalid index (not an integer in
 * [0, x.shape[axis])) gives a slice of NaN, never another slice's data, and no gradient.
 */
export function indexSelect(x: Tensor, axis: number, indices: Tensor | NDArray): Tensor {
  checkTensor('indexSelect', x);
  const idx = indexData('indexSelect', indices, x);
  const { axis: ax } = indexedShape('indexSelect', x.shape, axis, idx.shape);
  // In a composite, so that under noGrad the indices' view is released with the call (with grad, by backward).
  return composite(() => apply('indexSelect', [x, constant(idx.view(idx.shape, idx.strides, idx.offset))], { axis: ax, missing: NaN }));
}

/**
 * torch.index_add (out of place): x with the slices of `source` added at `indices` along `axis`;
 * source has shape x.shape[:axis] + indices.shape + x.shape[axis+1:]. Repeated indices accumulate in
 * their order; a slice whose index is invalid adds nothing. Differentiable in x and source.
 */
export function indexAdd(x: Tensor, axis: number, indices: Tensor | NDArray, source: Tensor): Tensor {
  checkTensor('indexAdd', x);
  checkTensor('indexAdd', source, 'source');
  const idx = indexData('indexAdd', indices, x);
  if (source.backend !== x.backend) fail('indexAdd', `source lives on backend '${source.backend.name}' and x on '${x.backend.name}'`);
  const { axis: ax, shape: expected } = indexedShape('indexAdd', x.shape, axis, idx.shape);
  if (source.shape.length !== expected.length || source.shape.some((d, i) => d !== expected[i])) {
    fail('indexAdd', `source has shape ${formatShape(source.shape)}, expected ${formatShape(expected)} (x ${formatShape(x.shape)} with axis ${ax} replaced by the indices' shape ${formatShape(idx.shape)})`);
  }
  return composite(() => add(x, apply('indexScatter', [source, constant(idx.view(idx.shape, idx.strides, idx.offset))], { axis: ax, shape: x.shape })));
}

/** Embedding lookup: weight [V, D], ids [...] -> [..., D]. */
export function embedding(weight: Tensor, ids: Tensor | NDArray): Tensor {
  return indexSelect(weight, 0, ids);
}

/**
 * Inverted dropout: zero each element with probability p and scale the rest by 1 / (1 - p). The
 * mask is drawn on the host from the seeded generator (same on every backend) and is a constant.
 */
export function dropout(x: Tensor, p: number, options: { generator?: Generator } = {}): Tensor {
  checkTensor('dropout', x);
  checkNumber('dropout', 'p', p, { min: 0 });
  if (!(p < 1)) fail('dropout', `p must be in [0, 1), got ${p}`);
  return composite(() => {
    const u = ndRand(x.shape, { backend: x.backend, generator: options.generator });
    const keepMask = u.ge(p);
    u.dispose();
    const scaled = keepMask.mul(1 / (1 - p));
    keepMask.dispose();
    return mul(x, constant(scaled));
  });
}

// ---- fused layers ---------------------------------------------------------------------------------

/**
 * A whole LSTM layer over a sequence as one op (what nn.LSTM runs): `xp` [seq, batch, 4 * hidden] is
 * the input projection x W_ih^T for every step (with its bias added, or the bias passed as
 * `biasIh` [4 * hidden], which the op adds to each step's row first: the same values, and both
 * biases' gradients from one reduction), `weightHh` [4 * hidden, hidden] and `biasHh`
 * [4 * hidden] the recurrent weights (PyTorch's gate order i, f, g, o), `h0`/`c0` [batch, hidden]
 * the initial state (null: zeros). Returns the packed [6, seq, batch, hidden]: block 0 holds h_t for
 * every step (the output sequence), block 1 c_t, blocks 2..5 a workspace whose gradient is ignored (read only the
 * first two blocks). Same values as the composed cell; gradients equal to float32 rounding.
 */
export function lstmSequence(xp: Tensor, weightHh: Tensor, biasHh: Tensor | null, h0: Tensor | null, c0: Tensor | null, biasIh: Tensor | null = null): Tensor {
  checkTensor('lstmSequence', xp, 'input projection');
  checkTensor('lstmSequence', weightHh, 'weightHh');
  if (biasIh !== null) checkTensor('lstmSequence', biasIh, 'biasIh');
  if (biasHh !== null) checkTensor('lstmSequence', biasHh, 'biasHh');
  if (h0 !== null) checkTensor('lstmSequence', h0, 'h0');
  if (c0 !== null) checkTensor('lstmSequence', c0, 'c0');
  const present = [xp, weightHh, biasIh, biasHh, h0, c0].filter((t): t is Tensor => t !== null);
  checkSameBackend('lstmSequence', present);
  checkLstmInputs('lstmSequence', xp.shape, weightHh.shape, biasHh?.shape ?? null, h0?.shape ?? null, c0?.shape ?? null, biasIh?.shape ?? null);
  return apply('lstm', present, { hasBiasIh: biasIh !== null, hasBias: biasHh !== null, hasH0: h0 !== null, hasC0: c0 !== null });
}

/**
 * A whole GRU layer over a sequence as one op (what nn.GRU runs): `xw` [seq, batch, 3 * hidden] the
 * input projection x W_ih^T of every step, `biasIh`/`biasHh` [3 * hidden] (PyTorch's gate order
 * r, z, n; r scales h W_hn^T + b_hn), `weightHh` [3 * hidden, hidden], `h0` [batch, hidden] (null:
 * zeros). Returns the packed [5, seq, batch, hidden]: block 0 holds h_t for every step, blocks 1..4 a
 * workspace whose gradient is ignored (read only block 0). Same values as the composed cell;
 * gradients equal to float32 rounding.
 */
export function gruSequence(xw: Tensor, weightHh: Tensor, biasIh: Tensor | null, biasHh: Tensor | null, h0: Tensor | null): Tensor {
  return recurrentSequence('gruSequence', 'gru', 3, xw, weightHh, biasIh, biasHh, h0, {});
}

/**
 * A whole Elman RNN layer over a sequence as one op (what nn.RNN runs): h_t = act(xw_t + b_ih +
 * h_{t-1} W_hh^T + b_hh), act tanh or relu; `xw` [seq, batch, hidden]. Returns every h_t,
 * [seq, batch, hidden]. Same values as the composed cell; gradients equal to float32 rounding.
 */
export function rnnSequence(xw: Tensor, weightHh: Tensor, biasIh: Tensor | null, biasHh: Tensor | null, h0: Tensor | null, nonlinearity: 'tanh' | 'relu' = 'tanh'): Tensor {
  if (nonlinearity !== 'tanh' && nonlinearity !== 'relu') fail('rnnSequence', `nonlinearity must be 'tanh' or 'relu', got ${String(nonlinearity)}`);
  return recurrentSequence('rnnSequence', 'rnn', 1, xw, weightHh, biasIh, biasHh, h0, { nonlinearity });
}

function recurrentSequence<K extends 'gru' | 'rnn'>(name: string, op: K, gates: number, xw: Tensor, weightHh: Tensor, biasIh: Tensor | null, biasHh: Tensor | null, h0: Tensor | null, extra: Omit<OpAttrs[K], 'hasBiasIh' | 'hasBias' | 'hasH0'>): Tensor {
  checkTensor(name, xw, 'input projection');
  checkTensor(name, weightHh, 'weightHh');
  if (biasIh !== null) checkTensor(name, biasIh, 'biasIh');
  if (biasHh !== null) checkTensor(name, biasHh, 'biasHh');
  if (h0 !== null) checkTensor(name, h0, 'h0');
  const present = [xw, weightHh, biasIh, biasHh, h0].filter((t): t is Tensor => t !== null);
  checkSameBackend(name, present);
  checkRecurrentInputs(name, gates, xw.shape, weightHh.shape, biasIh?.shape ?? null, biasHh?.shape ?? null, h0?.shape ?? null);
  return apply(op, present, { ...extra, hasBiasIh: biasIh !== null, hasBias: biasHh !== null, hasH0: h0 !== null } as OpAttrs[K]);
}
