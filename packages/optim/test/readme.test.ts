import { expect, it } from 'vitest';
import { tidy } from '@needle/ndarray';
import { mean, mul, noGrad, randn, zeros } from '@needle/autograd';
import { AdamW, CosineAnnealingLR, clipGradNorm } from '../src/index';
import { liveBuffers } from './helpers';

// The README's example, with its console.log replaced by collecting the losses.
it('the README example trains and does not leak', async () => {
  const start = liveBuffers();
  const x = randn([64, 5]);
  const wTrue = randn([5, 1]);
  // noGrad: y is a leaf that backward() leaves alone; tidy frees the matmul's temporary result.
  const y = noGrad(() => tidy(() => x.matmul(wTrue).add(0.5)));
  const w = zeros([5, 1], { requiresGrad: true });
  const b = zeros([1], { requiresGrad: true });

  const opt = new AdamW([w, b], { lr: 0.1, weightDecay: 1e-4 });
  const sched = new CosineAnnealingLR(opt, { tMax: 10 });
  const losses: number[] = [];
  const lrs: number[] = [];
  let afterFirstEpoch = 0;
  for (let epoch = 0; epoch < 10; epoch++) {
    for (let i = 0; i < 20; i++) {
      const err = x.matmul(w).add(b).sub(y);
      const loss = mean(mul(err, err));
      loss.backward();
      clipGradNorm([w, b], 10).dispose();
      opt.step();
      opt.zeroGrad();
      if (i === 19) {
        losses.push(await loss.item());
        lrs.push(sched.getLastLr()[0]);
      }
      loss.dispose();
    }
    sched.step();
    if (epoch === 0) afterFirstEpoch = liveBuffers();
  }
  expect(liveBuffers()).toBe(afterFirstEpoch);
  expect(lrs[0]).toBe(0.1);
  expect(lrs[5]).toBeCloseTo(0.05, 12);
  expect(losses[9]).toBeLessThan(1e-3 * losses[0]);
  opt.dispose();
  for (const t of [x, wTrue, y, w, b]) t.dispose();
  expect(liveBuffers()).toBe(start);
});
