/**
 * Batch normalisation (training mode: batch statistics) as one primitive: forward three launches on
 * a backend with `reduceProgram` (the mean, the biased variance around it, then the normalised and
 * scaled output), backward three (sum(g), sum(g xhat), then dx in one program) instead of the ~11
 * and ~15 of the composition. Values agree with the composition to float32 rounding (the mean is
 * a sum of x / n terms, not sum(x) / n).
 */
import { checkNumber, defineProgram, elementwise, fail, formatShape, normalizeAxes, NDArray, reduceProgram, tidy, type ProgramValue } from '@needle/ndarray';
import { apply } from './optable';
import { isGradEnabled } from './grad-mode';
import { Tensor, constant } from './tensor';
import * as F from './functions';

export interface BatchNormAttrs {
  /** The axes the statistics reduce over (all but the channel axis; the trailing ones for a layer norm). */
  axes: readonly number[];
  eps: number;
  hasWeight: boolean;
  hasBias: boolean;
  /**
   * Weight and bias vary along the statistics' axes (a layer norm: one per normalised element) and
   * are constant along the others; false for a batch norm (one per channel).
   */
  perElement: boolean;
  /** A ReLU applied to the output in the same program (a batch norm followed by a ReLU). */
  relu: boolean;
}

const SCALED = defineProgram(1, 1, ([x], [invN]) => x.mul(invN));
const SQUARED_DEVIATION = defineProgram(2, 1, ([x, m], [invN]) => {
  const d = x.sub(m);
  return d.mul(d).mul(invN);
});
/** 1 / sqrt(var + eps), as the composition's pow(add(var, eps), -0.5). */
const rstdOf = (v: ProgramValue, eps: ProgramValue): ProgramValue => v.add(eps).pow(-0.5);
/** (x - m) rstd w + b, with w = 1 and b = 0 where absent (inputs x, m, v, w, b; scalar eps). */
const NORMALISE = defineProgram(5, 1, ([x, m, v, w, b], [eps]) => x.sub(m).mul(rstdOf(v, eps)).mul(w).add(b));
/**
 * The backward's programs; each takes g first. With a fused ReLU they take the output y last and
 * use g (y > 0) for g: the ReLU's backward rule (y > 0 exactly where its input is), folded in.
 */
function backwardPrograms(relu: boolean) {
  const extra = relu ? 1 : 0;
  const masked = (g: ProgramValue, ins: ProgramValue[]) => (relu ? g.mul(ins[ins.length - 1].gt(0)) : g);
  return {
    /** g */
    sumG: defineProgram(1 + extra, 0, (ins) => masked(ins[0], ins)),
    /** g xhat (inputs g, x, m, v) */
    gXhat: defineProgram(4 + extra, 1, (ins, [eps]) => masked(ins[0], ins).mul(ins[1].sub(ins[2]).mul(rstdOf(ins[3], eps)))),
    /** g w (inputs g, w): a layer norm's first sum */
    gW: defineProgram(2 + extra, 0, (ins) => masked(ins[0], ins).mul(ins[1])),
    /** g w xhat (inputs g, w, x, m, v): a layer norm's second sum */
    gwXhat: defineProgram(5 + extra, 1, (ins, [eps]) => masked(ins[0], ins).mul(ins[1]).mul(ins[2].sub(ins[3]).mul(rstdOf(ins[4], eps)))),
    /** A batch norm's dx = w rstd (g - sum(g) / n - xhat sum(g xhat) / n) (inputs g, x, m, v, w, sg, sgx) */
    dx: defineProgram(7 + extra, 2, (ins, [eps, invN]) => {
      const [, x, m, v, w, sg, sgx] = ins;
      const rstd = rstdOf(v, eps);
      const xhat = x.sub(m).mul(rstd);
      return w.mul(rstd).mul(masked(ins[0], ins).sub(sg.mul(invN)).sub(xhat.mul(sgx.mul(invN))));
    }),
    /** A layer norm's dx = rstd (g w - sum(g w) / n - xhat sum(g w xhat) / n) (inputs g, x, m, v, w, s1, s2) */
    dxPerElement: defineProgram(7 + extra, 2, (ins, [eps, invN]) => {
      const [, x, m, v, w, s1, s2] = ins;
      const rstd = rstdOf(v, eps);
      const xhat = x.sub(m).mul(rstd);
      return rstd.mul(masked(ins[0], ins).mul(w).sub(s1.mul(invN)).sub(xhat.mul(s2.mul(invN))));
    }),
  };
}
const PLAIN = backwardPrograms(false);
const WITH_RELU = backwardPrograms(true);
const NORMALISE_RELU = defineProgram(5, 1, ([x, m, v, w, b], [eps]) => x.sub(m).mul(rstdOf(v, eps)).mul(w).add(b).maximum(0));

/** How many elements each statistic covers. */
function countOf(shape: readonly number[], axes: readonly number[]): number {
  return axes.reduce((p, a) => p * shape[a], 1);
}

function statShape(shape: readonly number[], axes: readonly number[]): number[] {
  return shape.map((d, i) => (axes.includes(i) ? 1 : d));
}

/**
 * Forward on arrays: x, then weight and bias (each of the statistics' shape) where present -> the
 * output as a view of one buffer [y..., mean..., var...] that also holds the batch statistics (for
 * the backward and the running-statistics update: `batchNormStats`).
 */
export function batchNormForward(inputs: readonly NDArray[], { axes, eps, hasWeight, hasBias, relu }: BatchNormAttrs): NDArray {
  const x = inputs[0];
  const w = hasWeight ? inputs[1] : undefined;
  const b = hasBias ? inputs[hasWeight ? 2 : 1] : undefined;
  const stat = statShape(x.shape, axes);
  const c = stat.reduce((p, d) => p * d, 1);
  const invN = 1 / countOf(x.shape, axes);
  const buf = NDArray.empty([x.size + 2 * c], x.backend);
  try {
    return tidy(() => {
      const m = reduceProgram('sum', SCALED, [x], [invN], { axis: axes, keepdims: true, out: buf.get(`${x.size}:${x.size + c}`).reshape(stat) });
      const v = reduceProgram('sum', SQUARED_DEVIATION, [x, m], [invN], { axis: axes, keepdims: true, out: buf.get(`${x.size + c}:`).reshape(stat) });
      const one = (a: NDArray | undefined, value: number) => a ?? NDArray.fromData(new Float32Array([value]), [], x.backend);
      const y = buf.get(`0:${x.size}`).reshape(x.shape);
      elementwise(relu ? NORMALISE_RELU : NORMALISE, [x, m, v, one(w, 1), one(b, 0)], [eps], { out: [y] });
      return y;
    });
  } finally {
    buf.dispose();
  }
}

/** The batch mean and biased variance the forward stored behind its output, in the statistics' shape. */
export function batchNormStats(out: NDArray, axes: readonly number[]): { mean: NDArray; variance: NDArray } {
  const stat = statShape(out.shape, axes);
  const c = stat.reduce((p, d) => p * d, 1);
  const strides = stat.map((_, i) => stat.slice(i + 1).reduce((p, d) => p * d, 1));
  return {
    mean: out.asStrided(stat, strides, out.offset + out.size),
    variance: out.asStrided(stat, strides, out.offset + out.size + c),
  };
}

/** Gradients of x, weight and bias (null where not needed). */
export function batchNormBackward(g: Tensor, inputs: readonly Tensor[], out: Tensor, attrs: BatchNormAttrs, needsGrad: readonly boolean[]): (Tensor | null)[] {
  const { axes, eps, hasWeight, hasBias, perElement, relu } = attrs;
  const x = inputs[0];
  const w = hasWeight ? inputs[1] : undefined;
  const n = countOf(x.shape, axes);
  // The weight's and bias's gradients reduce over the axes they are broadcast along.
  const affineAxes = perElement ? x.shape.map((_, i) => i).filter((i) => !axes.includes(i)) : axes;
  const wrap = (grads: (Tensor | null)[]) => [grads[0], ...(hasWeight ? [grads[1]] : []), ...(hasBias ? [grads[2]] : [])];
  const wantW = hasWeight && needsGrad[1];
  const wantB = hasBias && needsGrad[hasWeight ? 2 : 1];
  if (!isGradEnabled()) {
    return wrap(tidy(() => {
      const P = relu ? WITH_RELU : PLAIN;
      // With a fused ReLU every program also reads the output (for its mask), as its last input.
      const withY = (arrays: NDArray[]) => (relu ? [...arrays, out.data] : arrays);
      const { mean, variance } = batchNormStats(out.data, axes);
      const stat = { axis: axes, keepdims: true };
      const affine = { axis: affineAxes, keepdims: true };
      const gd = g.data;
      const wd = w ? w.data : NDArray.fromData(new Float32Array([1]), [], x.backend);
      if (!perElement) {
        // The weight is constant along the statistics' axes: sum(g w) = w sum(g), so the two sums
        // the weight and bias need are all dx needs.
        const sg = reduceProgram('sum', P.sumG, withY([gd]), [], stat);
        const sgx = reduceProgram('sum', P.gXhat, withY([gd, x.data, mean, variance]), [eps], stat);
        const dx = needsGrad[0] ? new Tensor(elementwise(P.dx, withY([gd, x.data, mean, variance, wd, sg, sgx]), [eps, 1 / n])[0]) : null;
        return [dx, wantW ? new Tensor(sgx) : null, wantB ? new Tensor(sg) : null];
      }
      const s1 = reduceProgram('sum', P.gW, withY([gd, wd]), [], stat);
      const s2 = reduceProgram('sum', P.gwXhat, withY([gd, wd, x.data, mean, variance]), [eps], stat);
      const dx = needsGrad[0] ? new Tensor(elementwise(P.dxPerElement, withY([gd, x.data, mean, variance, wd, s1, s2]), [eps, 1 / n])[0]) : null;
      const dw = wantW ? new Tensor(reduceProgram('sum', P.gXhat, withY([gd, x.data, mean, variance]), [eps], affine)) : null;
      const db = wantB ? new Tensor(reduceProgram('sum', P.sumG, withY([gd]), [], affine)) : null;
      return [dx, dw, db];
    }));
  }
  // Differentiable form (createGraph): the same formulas in Tensor ops, the statistics recomputed
  // from x so that second derivatives flow through them.
  const mu = F.mean(x, axes, true);
  const xc = F.sub(x, mu);
  const rstd = F.pow(F.add(F.mean(F.mul(xc, xc), axes, true), eps), -0.5);
  const xhat = F.mul(xc, rstd);
  const gm = relu ? F.mul(g, constant(out.data.gt(0))) : g;
  const gw = w ? F.mul(gm, w) : gm;
  const s1 = F.sum(gw, axes, true);
  const s2 = F.sum(F.mul(gw, xhat), axes, true);
  const dx = F.mul(rstd, F.sub(F.sub(gw, F.mul(s1, 1 / n)), F.mul(xhat, F.mul(s2, 1 / n))));
  return wrap([needsGrad[0] ? dx : null, wantW ? F.sum(F.mul(gm, xhat), affineAxes, true) : null, wantB ? F.sum(gm, affineAxes, true) : null]);
}

export interface BatchNormOptions {
  /** The axes the statistics reduce over (default: all but axis 1, the channels). */
  axes?: readonly number[];
  /** Added to the variance before the square root (default 1e-5). */
  eps?: number;
  /** 'relu': a ReLU applied to the result in the same launch (default 'none'). */
  activation?: 'none' | 'relu';
}

/**
 * Batch normalisation with the batch's statistics (training mode): (x - mean) / sqrt(var + eps) *
 * weight + bias, mean and biased variance over `axes`; weight and bias (or null) have the
 * statistics' shape (x's with the reduced axes set to 1). One fused primitive: three launches
 * forward and three backward on a backend with `reduceProgram`. `batchNormStatistics(output)` gives
 * the batch mean and variance it used (e.g. for running statistics).
 */
export function batchNorm(x: Tensor, weight: Tensor | null, bias: Tensor | null, options: BatchNormOptions = {}): Tensor {
  if (!(x instanceof Tensor)) fail('batchNorm', `expected a Tensor input, got ${typeof x}`);
  if (x.ndim < 2) fail('batchNorm', `expected an input of at least 2 dimensions [N, C, ...], got ${formatShape(x.shape)}`);
  const axes = normalizeAxes('batchNorm', options.axes ?? x.shape.map((_, i) => i).filter((i) => i !== 1), x.ndim);
  const eps = checkNumber('batchNorm', 'eps', options.eps ?? 1e-5, { min: 0 });
  const activation = options.activation ?? 'none';
  if (activation !== 'none' && activation !== 'relu') fail('batchNorm', `activation must be 'none' or 'relu', got ${String(activation)}`);
  const stat = statShape(x.shape, axes);
  for (const [name, t] of [['weight', weight], ['bias', bias]] as const) {
    if (t === null) continue;
    if (!(t instanceof Tensor)) fail('batchNorm', `expected the ${name} as a Tensor or null, got ${typeof t}`);
    if (t.backend !== x.backend) fail('batchNorm', `the input lives on backend '${x.backend.name}' and the ${name} on '${t.backend.name}'`);
    if (t.ndim !== stat.length || t.shape.some((d, i) => d !== stat[i])) fail('batchNorm', `${name} of shape ${formatShape(t.shape)} does not match the statistics' shape ${formatShape(stat)} of input ${formatShape(x.shape)}`);
  }
  if (countOf(x.shape, axes) < 1) fail('batchNorm', `no values to normalise over axes ${JSON.stringify(axes)} of ${formatShape(x.shape)}`);
  const inputs = [x, ...(weight ? [weight] : []), ...(bias ? [bias] : [])];
  const output = apply('batchNorm', inputs, { axes, eps, hasWeight: weight !== null, hasBias: bias !== null, perElement: false, relu: activation === 'relu' });
  statisticsAxes.set(output, axes);
  return output;
}

/**
 * Layer normalisation over the trailing axes `normalizedShape` (torch.nn.functional.layer_norm):
 * each sample normalised with its own mean and biased variance, then scaled by `weight` and shifted
 * by `bias` (each of normalizedShape, or null). One fused primitive (the batch norm's, with
 * per-element weights): three launches forward and five backward on a backend with `reduceProgram`.
 */
export function layerNorm(x: Tensor, normalizedShape: readonly number[], weight: Tensor | null, bias: Tensor | null, options: { eps?: number } = {}): Tensor {
  if (!(x instanceof Tensor)) fail('layerNorm', `expected a Tensor input, got ${typeof x}`);
  const k = normalizedShape.length;
  if (k === 0 || x.ndim < k || normalizedShape.some((d, i) => d !== x.shape[x.ndim - k + i])) {
    fail('layerNorm', `input of shape ${formatShape(x.shape)} does not end in normalizedShape ${formatShape(normalizedShape)}`);
  }
  const eps = checkNumber('layerNorm', 'eps', options.eps ?? 1e-5, { min: 0 });
  const lead = x.ndim - k;
  const full = [...Array<number>(lead).fill(1), ...normalizedShape];
  const affine: Tensor[] = [];
  for (const [name, t] of [['weight', weight], ['bias', bias]] as const) {
    if (t === null) continue;
    if (!(t instanceof Tensor)) fail('layerNorm', `expected the ${name} as a Tensor or null, got ${typeof t}`);
    if (t.backend !== x.backend) fail('layerNorm', `the input lives on backend '${x.backend.name}' and the ${name} on '${t.backend.name}'`);
    if (t.ndim !== k || t.shape.some((d, i) => d !== normalizedShape[i])) fail('layerNorm', `${name} of shape ${formatShape(t.shape)} does not match normalizedShape ${formatShape(normalizedShape)}`);
    affine.push(lead ? F.reshape(t, full) : t);
  }
  const axes = normalizedShape.map((_, i) => lead + i);
  return apply('batchNorm', [x, ...affine], { axes, eps, hasWeight: weight !== null, hasBias: bias !== null, perElement: true, relu: false });
}

const statisticsAxes = new WeakMap<Tensor, readonly number[]>();

/**
 * The batch mean and biased variance a `batchNorm` output was normalised with, in the statistics'
 * shape: views of the output's storage (no copy, no gradient) that the caller disposes.
 */
export function batchNormStatistics(output: Tensor): { mean: NDArray; variance: NDArray } {
  const axes = statisticsAxes.get(output);
  if (!axes) fail('batchNormStatistics', 'expected the output of batchNorm');
  output.data.assertLive('batchNormStatistics');
  return batchNormStats(output.data, axes);
}
