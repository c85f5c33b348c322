/**
 * The fused batch-norm primitive against the composition (mean, centred, biased variance, pow,
 * scale and shift): values and gradients to float32 rounding, gradcheck, double backward, launch
 * counts, the batch statistics it returns, errors, no leak.
 */
import { describe, expect, it } from 'vitest';
import { Generator, type Backend } from '@needle/ndarray';
import * as A from '../src/index';
import { gradcheck, gradients, randn, type Tensor } from '../src/index';
import { backend, liveBuffers } from './helpers';

function composed(x: Tensor, w: Tensor | null, b: Tensor | null, axes: number[], eps: number, relu = false): Tensor {
  const mu = A.mean(x, axes, true);
  const centred = A.sub(x, mu);
  const variance = A.mean(A.mul(centred, centred), axes, true);
  let y = A.mul(centred, A.pow(A.add(variance, eps), -0.5));
  if (w) y = A.mul(y, w);
  if (b) y = A.add(y, b);
  return relu ? A.relu(y) : y;
}

async function expectClose(a: Tensor, b: Tensor, tol: number, what: string) {
  const [x, y] = [await a.toArray(), await b.toArray()];
  expect(x.length).toBe(y.length);
  x.forEach((v, i) => expect(Math.abs(v - y[i]), `${what} element ${i}: ${v} vs ${y[i]}`).toBeLessThanOrEqual(tol * Math.max(1, Math.abs(y[i]))));
}

/**
 * The fused op `fused` against the composition `ref` over the same leaves: values, first
 * derivatives, gradcheck, and d/dx of sum(dL/dx ^ 2) (double backward); frees what it made.
 */
async function expectLikeComposition(fused: (...t: Tensor[]) => Tensor, ref: (...t: Tensor[]) => Tensor, leaves: Tensor[], g: Generator) {
  const x = leaves[0];
  const out = fused(...leaves);
  const want = ref(...leaves);
  await expectClose(out, want, 2e-5, 'output');
  const weights = randn([...x.shape], { generator: g });
  const lf = A.sum(A.mul(out, weights));
  const lr = A.sum(A.mul(want, weights));
  const gf = gradients(lf, leaves);
  const gr = gradients(lr, leaves);
  for (let i = 0; i < leaves.length; i++) await expectClose(gf[i]!, gr[i]!, 5e-5, `gradient ${i}`);
  expect((await gradcheck(fused, leaves)).ok).toBe(true);
  const secondDerivative = (f: (...t: Tensor[]) => Tensor) => {
    const l = A.sum(A.mul(f(...leaves), weights));
    const [dx] = gradients(l, [x], { createGraph: true });
    const sq = A.sum(A.mul(dx!, dx!));
    const [ddx] = gradients(sq, [x]);
    [l, dx!, sq].forEach((t) => t.dispose());
    return ddx!;
  };
  const [ggf, ggr] = [secondDerivative(fused), secondDerivative(ref)];
  await expectClose(ggf, ggr, 2e-4, 'second derivative');
  [out, want, weights, lf, lr, ...gf, ...gr, ggf, ggr].forEach((t) => t && !t.disposed && t.dispose());
}

describe('batchNorm (fused, batch statistics)', () => {
  for (const [shape, affine, relu] of [[[4, 3, 2, 3], true, false], [[8, 3], true, false], [[5, 2, 7], false, false], [[4, 3, 2, 3], true, true], [[6, 2], false, true]] as const) {
    it(`x ${JSON.stringify(shape)}, affine ${affine}, relu ${relu}: values, statistics and gradients as the composition, gradcheck, double backward`, async () => {
      const before = liveBuffers();
      const g = new Generator(5);
      const x = randn([...shape], { generator: g, requiresGrad: true });
      const stat = shape.map((d, i) => (i === 1 ? d : 1));
      const axes = shape.map((_, i) => i).filter((i) => i !== 1);
      const lw = affine ? randn(stat, { generator: g, mean: relu ? 1 : 1.5, std: relu ? 0.1 : 1, requiresGrad: true }) : null;
      // With the ReLU, biases of +-8 keep every pre-activation far from the kink (|xhat w| < 6),
      // so gradcheck's finite differences never straddle it; half the channels are masked off.
      const lb = !affine ? null : relu ? A.tensor(Array.from({ length: stat[1] }, (_, i) => (i % 2 ? -8 : 8)), { shape: stat, requiresGrad: true }) : randn(stat, { generator: g, requiresGrad: true });
      const leaves = [x, ...(lw ? [lw] : []), ...(lb ? [lb] : [])];
      const activation = relu ? 'relu' : 'none';
      const output = A.batchNorm(x, lw, lb, { eps: 1e-5, activation });
      const { mean, variance } = A.batchNormStatistics(output);
      const mu = A.mean(x, axes, true);
      await expectClose(new A.Tensor(mean), mu, 1e-6, 'mean');
      await expectLikeComposition((...t) => A.batchNorm(t[0], t[1] ?? null, t[2] ?? null, { activation }), (...t) => composed(t[0], t[1] ?? null, t[2] ?? null, axes, 1e-5, relu), leaves, g);
      [output, mu, ...leaves].forEach((t) => !t.disposed && t.dispose());
      mean.dispose();
      variance.dispose();
      expect(liveBuffers()).toBe(before);
    });
  }

  for (const [shape, norm, affine] of [[[3, 4, 5], [5], true], [[2, 3, 4], [3, 4], true], [[6, 4], [4], false]] as const) {
    it(`layerNorm over ${JSON.stringify(norm)} of ${JSON.stringify(shape)}, affine ${affine}: values and gradients as the composition, gradcheck, double backward`, async () => {
      const before = liveBuffers();
      const g = new Generator(9);
      const x = randn([...shape], { generator: g, requiresGrad: true });
      const w = affine ? randn([...norm], { generator: g, mean: 1, requiresGrad: true }) : null;
      const b = affine ? randn([...norm], { generator: g, requiresGrad: true }) : null;
      const leaves = [x, ...(w ? [w] : []), ...(b ? [b] : [])];
      const axes = norm.map((_, i) => shape.length - norm.length + i);
      await expectLikeComposition((...t) => A.layerNorm(t[0], norm, t[1] ?? null, t[2] ?? null), (...t) => composed(t[0], t[1] ?? null, t[2] ?? null, axes, 1e-5), leaves, g);
      leaves.forEach((t) => t.dispose());
      expect(liveBuffers()).toBe(before);
    });
  }

  it('launches: three forward, three backward (with reduceProgram)', () => {
    const g = new Generator(2);
    const x = randn([4, 3, 2, 2], { generator: g, requiresGrad: true });
    const w = randn([1, 3, 1, 1], { generator: g, requiresGrad: true });
    const b = randn([1, 3, 1, 1], { generator: g, requiresGrad: true });
    backend.resetStats();
    const output = A.batchNorm(x, w, b);
    const f = backend.stats();
    const { mean, variance } = A.batchNormStatistics(output);
    if ((backend as Backend).reduceProgram) expect([f.kernels.reduceProgram, f.kernels.elementwise, f.launches]).toEqual([2, 1, 3]);
    const weights = randn([4, 3, 2, 2], { generator: g });
    const l = A.sum(A.mul(output, weights));
    const s0 = backend.stats();
    const grads = gradients(l, [x, w, b]);
    const s1 = backend.stats();
    if ((backend as Backend).reduceProgram) expect(s1.kernels.reduceProgram - s0.kernels.reduceProgram).toBe(2);
    [x, w, b, output, weights, l, ...grads].forEach((t) => t?.dispose());
    mean.dispose();
    variance.dispose();
  });

  it('errors name the op and the shapes', () => {
    const x = randn([4, 3, 2]);
    expect(() => A.batchNorm(x, randn([3]), null)).toThrow(/batchNorm: weight of shape \[3\] does not match the statistics' shape \[1, 3, 1\] of input \[4, 3, 2\]/);
    expect(() => A.batchNorm(randn([3]), null, null)).toThrow(/batchNorm: expected an input of at least 2 dimensions/);
    expect(() => A.batchNorm(x, null, null, { eps: -1 })).toThrow(/batchNorm.*eps/);
    expect(() => A.layerNorm(x, [3], null, null)).toThrow(/layerNorm: input of shape \[4, 3, 2\] does not end in normalizedShape \[3\]/);
    const w = randn([3]);
    expect(() => A.layerNorm(x, [2], w, null)).toThrow(/layerNorm: weight of shape \[3\] does not match normalizedShape \[2\]/);
    w.dispose();
    x.dispose();
  });
});
