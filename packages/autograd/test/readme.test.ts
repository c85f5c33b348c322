import { expect, it } from 'vitest';
import { tidy } from '@needle/ndarray';
import { tensor, randn, zeros, matmul, logSoftmax, oneHot, mul, sum, mean, neg, add, sub, noGrad } from '../src/index';
import { liveBuffers } from './helpers';

it('the README example trains and does not leak', async () => {
  const w = randn([4, 3], { requiresGrad: true, std: 0.5 });
  const b = zeros([3], { requiresGrad: true });
  const x = randn([8, 4]);
  const y = oneHot(tensor([0, 1, 2, 0, 1, 2, 0, 1]), 3);
  const losses: number[] = [];
  let after1 = 0;
  for (let step = 0; step < 100; step++) {
    const logits = add(matmul(x, w), b);
    const loss = neg(mean(sum(mul(logSoftmax(logits), y), -1)));
    loss.backward();
    noGrad(() => tidy(() => {
      for (const p of [w, b]) {
        p.assign(sub(p, mul(p.grad!, 0.5)));
        p.zeroGrad();
      }
    }));
    if (step % 20 === 0) losses.push(await loss.item());
    loss.dispose();
    if (step === 0) after1 = liveBuffers();
  }
  expect(liveBuffers()).toBe(after1);
  expect(losses[4]).toBeLessThan(losses[0]);
});
