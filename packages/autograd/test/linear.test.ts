/**
 * The fused linear primitive (act(x W^T + b)): forward values bit for bit the composition's, both
 * backwards (arrays, and Tensor ops under createGraph) against the composition's gradients,
 * gradcheck, double backward, launch counts, errors, no leak.
 */
import { describe, expect, it } from 'vitest';
import { Generator, type Backend } from '@needle/ndarray';
import * as A from '../src/index';
import { LINEAR_ACTIVATIONS, gradcheck, gradients, randn, type LinearActivation, type Tensor } from '../src/index';
import { backend, liveBuffers } from './helpers';

function composed(x: Tensor, w: Tensor, b: Tensor | null, activation: LinearActivation): Tensor {
  const y = A.matmul(x, A.transpose(w));
  const z = b ? A.add(y, b) : y;
  switch (activation) {
    case 'none': return z;
    case 'relu': return A.relu(z);
    case 'tanh': return A.tanh(z);
    case 'sigmoid': return A.sigmoid(z);
    default: return activation satisfies never;
  }
}

async function expectClose(a: Tensor, b: Tensor, tol: number, what: string) {
  const [x, y] = [await a.toArray(), await b.toArray()];
  x.forEach((v, i) => expect(Math.abs(v - y[i]), `${what} element ${i}: ${v} vs ${y[i]}`).toBeLessThanOrEqual(tol * Math.max(1, Math.abs(y[i]))));
}

describe('linear (fused matmul + bias + activation)', () => {
  for (const activation of LINEAR_ACTIVATIONS) {
    for (const [shape, bias] of [[[5, 7], true], [[2, 3, 7], true], [[7], false], [[4, 7], false]] as const) {
      it(`${activation}, x ${JSON.stringify(shape)}, bias ${bias}: values bit for bit, gradients as the composition, gradcheck, double backward`, async () => {
        const before = liveBuffers();
        const g = new Generator(11);
        const x = randn([...shape], { generator: g, requiresGrad: true });
        const w = randn([6, 7], { generator: g, requiresGrad: true });
        const b = bias ? randn([6], { generator: g, requiresGrad: true }) : null;
        const params = b ? [x, w, b] : [x, w];
        const fused = A.linear(x, w, b, { activation });
        const ref = composed(x, w, b, activation);
        expect(fused.shape).toEqual(ref.shape);
        expect(Array.from(await fused.toArray())).toEqual(Array.from(await ref.toArray()));
        const weights = randn(fused.shape, { generator: g });
        const lf = A.sum(A.mul(fused, weights));
        const lr = A.sum(A.mul(ref, weights));
        const gf = gradients(lf, params);
        const gr = gradients(lr, params);
        for (let i = 0; i < params.length; i++) await expectClose(gf[i]!, gr[i]!, 1e-6, `gradient ${i}`);
        expect((await gradcheck((...t: Tensor[]) => A.linear(t[0], t[1], t[2] ?? null, { activation }), params)).ok).toBe(true);
        // Double backward: d/dparams of sum(dL/dx^2) against the composition's.
        const f2 = A.sum(A.mul(A.linear(x, w, b, { activation }), weights));
        const [dx] = gradients(f2, [x], { createGraph: true });
        const sq = A.sum(A.mul(dx!, dx!));
        const ggf = gradients(sq, [w]);
        const r2 = A.sum(A.mul(composed(x, w, b, activation), weights));
        const [rdx] = gradients(r2, [x], { createGraph: true });
        const rsq = A.sum(A.mul(rdx!, rdx!));
        const ggr = gradients(rsq, [w]);
        await expectClose(ggf[0]!, ggr[0]!, 1e-5, 'second derivative');
        [fused, ref, weights, lf, lr, ...gf, ...gr, f2, dx!, sq, ...ggf, r2, rdx!, rsq, ...ggr, ...params].forEach((t) => t?.dispose());
        expect(liveBuffers()).toBe(before);
      });
    }
  }

  it('launches: one forward (matmulProgram), an activation program, two matmuls and a reduction backward', () => {
    const g = new Generator(3);
    const x = randn([8, 5], { generator: g });
    const w = randn([4, 5], { generator: g, requiresGrad: true });
    const b = randn([4], { generator: g, requiresGrad: true });
    backend.resetStats();
    const y = A.linear(x, w, b, { activation: 'relu' });
    const f = backend.stats();
    if ((backend as Backend).matmulProgram) expect([f.launches, f.kernels.matmulProgram]).toEqual([1, 1]);
    else expect([f.kernels.matmul, f.kernels.elementwise]).toEqual([1, 1]);
    const l = A.sum(y);
    const seed = backend.stats();
    const grads = gradients(l, [w, b]);
    const bw = backend.stats();
    // sum's backward broadcasts the seed (a fill, and on a backend without layouts a compact);
    // then the relu mask, dW and db (x needs no gradient: no dX matmul).
    expect([bw.kernels.matmul - seed.kernels.matmul, bw.kernels.reduce - seed.kernels.reduce]).toEqual([1, 1]);
    [x, w, b, y, l, ...grads].forEach((t) => t?.dispose());
  });

  it('errors name the op and the shapes', () => {
    const x = randn([3, 4]);
    const w = randn([5, 4]);
    expect(() => A.linear(x, randn([5, 3]))).toThrow(/linear: input of shape \[3, 4\] does not end in the weight's in=3 \(weight \[5, 3\]\)/);
    expect(() => A.linear(x, w, randn([4]))).toThrow(/linear: bias of shape \[4\] does not match the weight's out=5; expected \[5\]/);
    expect(() => A.linear(x, randn([5, 4, 1]))).toThrow(/linear: expected a weight of shape \[out, in\], got \[5, 4, 1\]/);
    expect(() => A.linear(x, w, null, { activation: 'gelu' as never })).toThrow(/linear: activation must be one of none, relu, tanh, sigmoid, got the string 'gelu'/);
  });
});
