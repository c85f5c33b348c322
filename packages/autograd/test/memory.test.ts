import { describe, expect, it } from 'vitest';
import { Generator, scope, tidy } from '@needle/ndarray';
import * as A from '../src/index';
import { Tensor, gradcheck, grad, noGrad, randn, tensor, zeros } from '../src/index';
import { expectValues, liveBuffers } from './helpers';

function sgd(params: Tensor[], lr: number): void {
  noGrad(() =>
    tidy(() => {
      for (const p of params) {
        p.assign(A.sub(p, A.mul(p.grad!, lr)));
        p.zeroGrad();
      }
    }),
  );
}

describe('memory', () => {
  it('a conv/pool/cross-entropy training loop keeps a constant live buffer count', async () => {
    const gen = new Generator(3);
    const w = randn([3, 1, 3, 3], { requiresGrad: true, std: 0.3, generator: gen });
    const b = zeros([3], { requiresGrad: true });
    const fc = randn([12, 2], { requiresGrad: true, std: 0.3, generator: gen });
    const params = [w, b, fc];
    const x = randn([2, 1, 6, 6], { generator: gen });
    const labels = tensor([[1], [0]]);
    let after1 = -1;
    let first = 0;
    let last = 0;
    for (let step = 0; step < 60; step++) {
      const h = A.maxPool2d(A.relu(A.conv2d(x, w, { bias: b, padding: 1 })), 3); // [2, 3, 2, 2]
      const logits = A.matmul(A.flatten(h, 1), fc);
      const kept = logits.detach(); // e.g. for accuracy after backward
      const loss = A.neg(A.mean(A.gather(A.logSoftmax(logits), 1, labels)));
      loss.backward();
      expect(logits.disposed).toBe(true);
      expect(kept.shape).toEqual([2, 2]);
      kept.dispose();
      sgd(params, 0.2);
      if (step === 0) first = await loss.item();
      last = await loss.item();
      loss.dispose();
      if (step === 0) after1 = liveBuffers();
    }
    expect(liveBuffers()).toBe(after1);
    expect(last).toBeLessThan(first);
    [...params, x, labels].forEach((t) => t.dispose());
  });

  it('disposing a result releases the graph only it held; shared and scope-returned tensors survive', async () => {
    const w = tensor([1, 2], { requiresGrad: true });
    const x = tensor([3, 4]);
    const before = liveBuffers();
    // the whole graph of a result nobody else reads goes with it
    const y = A.mul(A.exp(A.mul(x, w)), 2);
    const z = A.sum(y);
    z.dispose();
    expect(liveBuffers()).toBe(before);
    expect(() => y.data).toThrow(/Tensor.data: tensor of shape \[2\] was released by dispose\(\) of a tensor computed from it .*read or detach\(\) it before/);
    // an intermediate another live tensor reads stays, and that tensor's backward still works
    const h = A.mul(x, w);
    const a = A.sum(h);
    const b = A.sum(A.mul(h, 2));
    a.dispose();
    expect(h.disposed).toBe(false);
    b.backward();
    await expectValues(w.grad!, [6, 8]);
    b.dispose();
    w.zeroGrad();
    // a tensor a scope returned is yours: disposing what was computed from it leaves it alone
    const r = tidy(() => A.mul(x, w));
    A.sum(r).dispose();
    expect(await r.toNested()).toEqual([3, 8]);
    r.dispose();
    // detach() hands an intermediate over: it lives while the detached tensor does
    const e = A.exp(A.mul(x, w));
    const d = e.detach();
    d.dispose();
    expect(e.disposed).toBe(true);
    expect(liveBuffers()).toBe(before);
    [w, x].forEach((t) => t.dispose());
  });

  it('functional grad frees everything but its result', () => {
    const x = tensor([0.5, 1, 1.5]);
    const f = grad((y: Tensor) => A.sum(A.softmax(A.mul(y, y))));
    f(x).dispose();
    const before = liveBuffers();
    for (let i = 0; i < 50; i++) f(x).dispose();
    expect(liveBuffers()).toBe(before);
    x.dispose();
  });

  it('composite ops under noGrad free their temporaries', () => {
    const start = liveBuffers();
    const x = randn([3, 4]);
    const idx = tensor([[0], [3], [1]]);
    const plus5 = A.add(x, 5);
    const source = zeros([3, 1, 4]);
    const labels = tensor([0, 3, 1]);
    // Views made here, not inside the calls: an op's operand built under noGrad is the caller's to free.
    const x4 = A.reshape(x, [1, 1, 3, 4]);
    const w4 = A.reshape(plus5, [3, 1, 2, 2]);
    const before = liveBuffers();
    const composites = [
      (t: Tensor) => A.logSoftmax(t, 1), (t: Tensor) => A.softmax(t, 0), (t: Tensor) => A.logsumexp(t, 1),
      (t: Tensor) => A.gelu(t), (t: Tensor) => A.sigmoid(t), (t: Tensor) => A.div(t, plus5), (t: Tensor) => A.mean(t, 0),
      (t: Tensor) => A.gather(t, 1, idx), (t: Tensor) => A.indexSelect(t, 1, idx), (t: Tensor) => A.embedding(t, idx), (t: Tensor) => A.indexAdd(t, 0, idx, source),
      (t: Tensor) => A.crossEntropy(t, labels), (t: Tensor) => A.sub(2, t), () => A.conv2d(x4, w4, { padding: 1 }),
    ];
    for (const f of composites) {
      const y = noGrad(() => f(x));
      expect(liveBuffers()).toBe(before + 1);
      y.dispose();
      expect(liveBuffers()).toBe(before);
    }
    [x, idx, plus5, source, labels, x4, w4].forEach((t) => t.dispose());
    // Nothing holds a view of the inputs (indices, labels) past the call either.
    expect(liveBuffers()).toBe(start);
  });

  it('tidy and scope manage tensors; kept tensors survive', async () => {
    const before = liveBuffers();
    const a = tidy(() => {
      const t = tensor([1, 2, 3]);
      return A.mul(A.add(t, 1), 2);
    });
    expect(liveBuffers()).toBe(before + 1);
    expect(await a.toNested()).toEqual([4, 6, 8]);
    const s = scope();
    const t2 = tensor([1, 2]);
    const kept = s.keep(A.exp(t2));
    s.end();
    expect(t2.disposed).toBe(true);
    expect(kept.disposed).toBe(false);
    expect(() => A.neg(t2)).toThrow(/Tensor.data: tensor of shape \[2\] was disposed/);
    a.dispose();
    kept.dispose();
    expect(liveBuffers()).toBe(before);
  });

  it('replaced and zeroed gradients are disposed; a tensor owns its grad', () => {
    const x = tensor([1, 2], { requiresGrad: true });
    const before = liveBuffers();
    for (let i = 0; i < 5; i++) A.sum(A.mul(x, x)).backward();
    // the losses' data stay (they are the callers'), the accumulated grad is one buffer
    const loss = A.sum(x);
    loss.backward();
    loss.dispose();
    expect(liveBuffers()).toBeLessThanOrEqual(before + 1 + 5);
    x.zeroGrad();
    expect(x.grad).toBeNull();
    x.dispose();
    expect(() => x.dispose()).toThrow(/dispose: tensor of shape \[2\] was already disposed/);
  });

  it('gradcheck leaves no buffers behind and reports a wrong gradient', async () => {
    const x = tensor([0.3, -0.7, 1.1], { requiresGrad: true });
    const before = liveBuffers();
    const ok = await gradcheck((t) => A.tanh(A.mul(t, t)), [x]);
    expect(ok.ok).toBe(true);
    expect(liveBuffers()).toBe(before);
    // detach() inside the function hides part of the dependence: the check must fail
    const bad = await gradcheck((t) => A.mul(t, t.detach()), [x], { raise: false });
    expect(bad.ok).toBe(false);
    // d/dt (t * t) is twice what autograd sees through the detached factor
    expect(bad.worst!.numeric).toBeCloseTo(2 * bad.worst!.analytic, 3);
    await expect(gradcheck((t) => A.mul(t, t.detach()), [x])).rejects.toThrow(/gradcheck: gradient mismatch for input 0/);
    expect(liveBuffers()).toBe(before);
    x.dispose();
  });
});
