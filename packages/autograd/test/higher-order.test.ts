import { describe, expect, it } from 'vitest';
import { scope } from '@needle/ndarray';
import * as A from '../src/index';
import { Tensor, grad, gradients, tensor, valueAndGrad } from '../src/index';
import { expectValues, liveBuffers } from './helpers';

const xs = [-1.5, -0.3, 0.4, 2];

describe('second derivatives of scalar functions', () => {
  it('tanh: grad(grad(f)) = -2 tanh (1 - tanh^2)', async () => {
    const d2 = grad((x: Tensor) => A.sum(grad((y: Tensor) => A.sum(A.tanh(y)))(x)));
    const x = tensor(xs);
    const t = xs.map(Math.tanh);
    await expectValues(d2(x), t.map((v) => -2 * v * (1 - v * v)), 1e-5);
  });

  it('sigmoid: grad(grad(f)) = s (1 - s) (1 - 2 s)', async () => {
    const d2 = grad((x: Tensor) => A.sum(grad((y: Tensor) => A.sum(A.sigmoid(y)))(x)));
    const s = xs.map((v) => 1 / (1 + Math.exp(-v)));
    await expectValues(d2(tensor(xs)), s.map((v) => v * (1 - v) * (1 - 2 * v)), 1e-5);
  });

  it('erf: grad(grad(f)) = -2x 2/sqrt(pi) exp(-x^2), and the exact GELU\'s second derivative', async () => {
    const d2 = grad((x: Tensor) => A.sum(grad((y: Tensor) => A.sum(A.erf(y)))(x)));
    await expectValues(d2(tensor(xs)), xs.map((v) => -2 * v * (2 / Math.sqrt(Math.PI)) * Math.exp(-v * v)), 1e-5);
    // gelu = x Phi(x): gelu'' = phi(x) (2 - x^2), phi the standard normal density
    const g2 = grad((x: Tensor) => A.sum(grad((y: Tensor) => A.sum(A.gelu(y)))(x)));
    await expectValues(g2(tensor(xs)), xs.map((v) => (Math.exp(-v * v / 2) / Math.sqrt(2 * Math.PI)) * (2 - v * v)), 1e-5);
  });

  it('x^3: first, second and third derivatives (3x^2, 6x, 6)', async () => {
    const cube = (x: Tensor) => A.sum(A.pow(x, 3));
    const d1 = grad(cube);
    const d2 = grad((x: Tensor) => A.sum(d1(x)));
    const d3 = grad((x: Tensor) => A.sum(d2(x)));
    const x = tensor(xs);
    await expectValues(d1(x), xs.map((v) => 3 * v * v), 1e-5);
    await expectValues(d2(x), xs.map((v) => 6 * v), 1e-5);
    await expectValues(d3(x), xs.map(() => 6), 1e-5);
    // x * x * x differentiates through mul instead of powScalar: same answers
    const d2m = grad((y: Tensor) => A.sum(grad((z: Tensor) => A.sum(A.mul(A.mul(z, z), z)))(y)));
    await expectValues(d2m(x), xs.map((v) => 6 * v), 1e-5);
  });

  it('createGraph with backward(): differentiate .grad again', async () => {
    const x = tensor(xs, { requiresGrad: true });
    const y = A.sum(A.mul(A.exp(x), x)); // dy/dx = e^x (1 + x), d2y/dx2 = e^x (2 + x)
    y.backward(undefined, { createGraph: true });
    const g = x.grad!;
    await expectValues(g, xs.map((v) => Math.exp(v) * (1 + v)), 1e-5);
    const [h] = gradients(A.sum(g), [x]);
    await expectValues(h!, xs.map((v) => Math.exp(v) * (2 + v)), 1e-5);
    // x.grad is still readable: gradients held by a tensor are cut from the graph, not freed
    await expectValues(x.grad!, xs.map((v) => Math.exp(v) * (1 + v)), 1e-5);
  });

  it('valueAndGrad returns the value and gradients for several arguments', async () => {
    const f = (a: Tensor, b: Tensor) => A.sum(A.mul(A.mul(a, a), b));
    const [v, [ga, gb]] = valueAndGrad(f, { argnums: [0, 1] })(tensor([1, 2]), tensor([3, 4]));
    await expectValues(v, 3 + 16);
    await expectValues(ga, [6, 16]);
    await expectValues(gb, [1, 4]);
    expect(() => grad(f)(tensor([1, 2]), tensor([3, 4, 5]))).toThrow(/mul: shapes \[2\] and \[3\] cannot be broadcast/);
    expect(() => grad((a: Tensor) => A.mul(a, 2))(tensor([1, 2]))).toThrow(/grad: the function must return a one-element tensor, got shape \[2\]/);
  });
});

describe('Hessian-vector product of a small MLP loss', () => {
  const x = tensor([[0.5, -1, 2], [1.5, 0.3, -0.7], [-0.2, 0.8, 0.1], [1, 1, -1]]);
  const y = tensor([[1, 0], [0, 1], [0.5, 0.5], [1, -1]]);
  const w2 = tensor([[0.3, -0.5], [0.8, 0.1], [-0.4, 0.6], [0.2, 0.9]]);
  const loss = (w1: Tensor) => A.mean(A.pow(A.sub(A.matmul(A.tanh(A.matmul(x, w1)), w2), y), 2));
  const gradLoss = grad(loss);
  const w1Data = [0.2, -0.3, 0.5, 0.1, 0.4, 0.2, -0.6, 0.3, -0.1, 0.7, 0.2, -0.4];
  const vData = [1, -0.5, 0.25, 0.8, -0.3, 0.6, 0.2, -1, 0.4, 0.1, -0.7, 0.9];

  it('matches central differences of the gradient', async () => {
    const w1 = tensor(w1Data, { shape: [3, 4] });
    const v = tensor(vData, { shape: [3, 4] });
    const hvp = grad((w: Tensor) => A.sum(A.mul(gradLoss(w), v)))(w1);

    const eps = 1e-2;
    const shifted = (sign: number) => tensor(w1Data.map((w, i) => w + sign * eps * vData[i]), { shape: [3, 4] });
    const gp = await gradLoss(shifted(1)).toArray();
    const gm = await gradLoss(shifted(-1)).toArray();
    const numeric = Array.from(gp, (p, i) => (p - gm[i]) / (2 * eps));
    const analytic = await hvp.toArray();
    const scale = Math.max(...numeric.map(Math.abs));
    expect(scale).toBeGreaterThan(0.05);
    analytic.forEach((a, i) => expect(Math.abs(a - numeric[i]), `element ${i}: ${a} vs ${numeric[i]}`).toBeLessThan(2e-3 * scale + 1e-4));
  });

  it('inside a scope, repeated HVPs do not leak', () => {
    const w1 = tensor(w1Data, { shape: [3, 4] });
    const v = tensor(vData, { shape: [3, 4] });
    const step = () => {
      const s = scope();
      grad((w: Tensor) => A.sum(A.mul(gradLoss(w), v)))(w1);
      s.end();
    };
    step();
    const after1 = liveBuffers();
    for (let i = 0; i < 20; i++) step();
    expect(liveBuffers()).toBe(after1);
  });
});
