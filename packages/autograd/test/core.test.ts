import { describe, expect, it } from 'vitest';
import { tidy } from '@needle/ndarray';
import {
  Tensor, add, backward, div, exp, gradients, log, logSoftmax, logsumexp, matmul, mean, mul, neg, noGrad,
  ones, randn, relu, sigmoid, sub, sum, tanh, tensor, zeros,
} from '../src/index';
import { backend, expectValues, liveBuffers } from './helpers';

describe('Tensor basics', () => {
  it('wraps data and reads it back asynchronously', async () => {
    const t = tensor([[1, 2], [3, 4]]);
    expect([...t.shape]).toEqual([2, 2]);
    expect(t.backend).toBe(backend);
    expect(await t.toNested()).toEqual([[1, 2], [3, 4]]);
    await expect(t.item()).rejects.toThrow(/item: expected a tensor with one element, got shape \[2, 2\]/);
    const s = sum(t);
    expect(await s.item()).toBe(10);
    t.dispose();
    s.dispose();
  });

  it('records the graph only when an input requires grad and grad is enabled', () => {
    const x = tensor([1, 2], { requiresGrad: true });
    const c = tensor([3, 4]);
    const y = mul(x, c);
    expect(y.requiresGrad).toBe(true);
    expect(y.isLeaf).toBe(false);
    const z = noGrad(() => mul(x, c));
    expect(z.requiresGrad).toBe(false);
    expect(z.isLeaf).toBe(true);
    const w = mul(c, c);
    expect(w.requiresGrad).toBe(false);
    [x, c, y, z, w].forEach((t) => t.dispose());
  });

  it('detach shares storage and survives the original', async () => {
    const x = tensor([1, 2, 3], { requiresGrad: true });
    const y = mul(x, 2);
    const d = y.detach();
    expect(d.requiresGrad).toBe(false);
    y.dispose();
    expect(await d.toNested()).toEqual([2, 4, 6]);
    noGrad(() => x.assign(tensor([5, 5, 5]).detach()));
    d.dispose();
    x.dispose();
  });
});

describe('backward', () => {
  it('computes gradients of a small expression and accumulates into leaves', async () => {
    const x = tensor([1, 2, 3], { requiresGrad: true });
    const w = tensor([0.5, -1, 2], { requiresGrad: true });
    // f = sum(x * w + x^2) -> df/dx = w + 2x, df/dw = x
    const f = sum(add(mul(x, w), mul(x, x)));
    f.backward();
    await expectValues(x.grad!, [2.5, 3, 8]);
    await expectValues(w.grad!, [1, 2, 3]);
    // a second, independent backward accumulates
    const f2 = sum(mul(x, 3));
    f2.backward();
    await expectValues(x.grad!, [5.5, 6, 11]);
    [x, w, f, f2].forEach((t) => t.dispose());
  });

  it('sums broadcast gradients back to input shapes', async () => {
    const a = tensor([[1, 2, 3], [4, 5, 6]], { requiresGrad: true });
    const b = tensor([10, 20, 30], { requiresGrad: true });
    const c = tensor([[2], [3]], { requiresGrad: true });
    const y = sum(mul(add(a, b), c));
    y.backward();
    await expectValues(a.grad!, [[2, 2, 2], [3, 3, 3]]);
    await expectValues(b.grad!, [5, 5, 5]);
    await expectValues(c.grad!, [[66], [75]]);
    [a, b, c, y].forEach((t) => t.dispose());
  });

  it('handles scalar operands on either side', async () => {
    const x = tensor([1, 2, 4], { requiresGrad: true });
    const y = sum(add(sub(10, div(8, x)), mul(sub(x, 1), 3)));
    // d/dx (10 - 8/x + 3(x - 1)) = 8/x^2 + 3
    await expectValues(y, [10 - 8 + 0 + 10 - 4 + 3 + 10 - 2 + 9], 1e-5);
    y.backward();
    await expectValues(x.grad!, [11, 5, 3.5]);
    [x, y].forEach((t) => t.dispose());
  });

  it('explicit grad argument for non-scalar outputs', async () => {
    const x = tensor([1, 2], { requiresGrad: true });
    const y = mul(x, x);
    y.backward(tensor([1, 10]));
    await expectValues(x.grad!, [2, 40]);
    [x, y].forEach((t) => t.dispose());
  });

  it('rejects a non-scalar output without grad, and tensors that do not require grad', () => {
    const x = tensor([1, 2], { requiresGrad: true });
    const y = mul(x, 2);
    expect(() => y.backward()).toThrow(/backward: called on a tensor of shape \[2\] without a gradient/);
    const c = tensor([1, 2]);
    const z = sum(c);
    expect(() => z.backward()).toThrow(/backward: the tensor \(shape \[\]\) does not require grad/);
    expect(() => y.backward(tensor([1, 2, 3]))).toThrow(/backward: gradient of shape \[3\] does not match the output's shape \[2\]/);
    [x, y, c, z].forEach((t) => t.dispose());
  });

  it('releases the graph: intermediates are disposed and a second backward needs retainGraph', () => {
    const x = tensor([1, 2], { requiresGrad: true });
    const h = tanh(x);
    const y = sum(h);
    y.backward();
    expect(h.disposed).toBe(true);
    expect(() => h.data).toThrow(/released by backward\(\)/);
    expect(() => y.backward()).toThrow(/already released by a previous backward; pass \{ retainGraph: true \}/);
    const h2 = tanh(x);
    const y2 = sum(h2);
    y2.backward(undefined, { retainGraph: true });
    expect(h2.disposed).toBe(false);
    y2.backward();
    expect(h2.disposed).toBe(true);
    [x, y, y2].forEach((t) => t.dispose());
  });

  it('gradients() returns grads without touching .grad', async () => {
    const x = tensor([1, 2], { requiresGrad: true });
    const y = sum(exp(x));
    const [g] = gradients(y, [x]);
    expect(x.grad).toBeNull();
    await expectValues(g!, [Math.E, Math.exp(2)], 1e-5);
    [x, y, g!].forEach((t) => t.dispose());
  });

  it('backward inside tidy keeps the leaves\' gradients', async () => {
    const x = tensor([1, 2], { requiresGrad: true });
    tidy(() => {
      const y = sum(mul(x, x));
      backward(y);
    });
    await expectValues(x.grad!, [2, 4]);
    x.dispose();
  });
});

describe('training loop memory', () => {
  it('1000 steps of a small MLP leave the live buffer count where it was after step 1', async () => {
    const w1 = randn([4, 8], { requiresGrad: true, std: 0.5 });
    const b1 = zeros([8], { requiresGrad: true });
    const w2 = randn([8, 3], { requiresGrad: true, std: 0.5 });
    const b2 = zeros([3], { requiresGrad: true });
    const params = [w1, b1, w2, b2];
    const xData = randn([5, 4]);
    const labels = [0, 2, 1, 1, 0];
    let after1 = -1;
    let firstLoss = 0;
    let lastLoss = 0;
    for (let step = 0; step < 1000; step++) {
      const x = new Tensor(xData.data.view(xData.shape, xData.data.strides, 0));
      const hot = tensor(labels.map((l) => [0, 1, 2].map((c) => (c === l ? 1 : 0))));
      const h = relu(add(matmul(x, w1), b1));
      const logits = add(matmul(h, w2), b2);
      const loss = neg(mean(sum(mul(logSoftmax(logits), hot), -1)));
      loss.backward();
      // Ops outside a backward are plain values: tidy frees the update's temporaries.
      noGrad(() =>
        tidy(() => {
          for (const p of params) {
            p.assign(sub(p, mul(p.grad!, 0.1)));
            p.zeroGrad();
          }
        }),
      );
      if (step === 0) firstLoss = await loss.item();
      if (step === 999) lastLoss = await loss.item();
      loss.dispose();
      x.dispose();
      hot.dispose();
      if (step === 0) after1 = liveBuffers();
    }
    expect(liveBuffers()).toBe(after1);
    expect(lastLoss).toBeLessThan(firstLoss * 0.5);
    params.forEach((p) => p.dispose());
    xData.dispose();
  });
});

describe('second order', () => {
  it('grad of grad of tanh via createGraph', async () => {
    const x = tensor([0.5, -1], { requiresGrad: true });
    const y = sum(tanh(x));
    const [g] = gradients(y, [x], { createGraph: true });
    const [gg] = gradients(sum(g!), [x]);
    const t = [0.5, -1].map(Math.tanh);
    await expectValues(g!, t.map((v) => 1 - v * v), 1e-5);
    await expectValues(gg!, t.map((v) => -2 * v * (1 - v * v)), 1e-5);
    void sigmoid;
    void log;
    void logsumexp;
    void ones;
  });
});

describe('backends', () => {
  it('tensors follow their inputs\' backend; mixing backends is a clear error', async () => {
    const other = (await import('@needle/ndarray-cpu')).createCpuBackend({ name: 'cpu-other', readSync: false });
    const a = tensor([1, 2], { backend: other, requiresGrad: true });
    const y = sum(mul(exp(a), a));
    expect(y.backend).toBe(other);
    y.backward();
    expect(a.grad!.backend).toBe(other);
    await expectValues(a.grad!, [2 * Math.E, 3 * Math.exp(2)], 1e-5);
    const b = tensor([1, 2]);
    expect(b.backend).toBe(backend);
    expect(() => add(a, b)).toThrow(/add: tensors live on different backends \('cpu-other' and 'cpu-autograd-test'\)/);
    const moved = await a.to(backend);
    expect(moved.backend).toBe(backend);
    expect(moved.requiresGrad).toBe(true);
    await expectValues(add(moved, b), [2, 4]);
    [a, b, y, moved].forEach((t) => t.dispose());
    expect(other.memory().buffers).toBe(0);
  });
});

describe('after backward', () => {
  it('the root stays the caller\'s, also when reused in another graph; a leaf can be its own root', async () => {
    const x = tensor([1, 2], { requiresGrad: true });
    const loss = sum(mul(x, x));
    loss.backward();
    const again = mul(loss, x); // the released root used as a constant in a new graph
    sum(again).backward();
    expect(loss.disposed).toBe(false);
    await expectValues(loss, 5);
    await expectValues(x.grad!, [2 + 5, 4 + 5]);
    x.zeroGrad();
    x.backward(tensor([3, 4]));
    x.backward(tensor([1, 1]));
    await expectValues(x.grad!, [4, 5]);
    [x, loss, again].forEach((t) => t.dispose());
  });
});
