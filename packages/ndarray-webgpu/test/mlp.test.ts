import { Generator, type Backend } from '@needle/ndarray';
import { CpuBackend } from '@needle/ndarray-cpu';
import { tidy } from '@needle/ndarray';
import { describe, expect, test } from 'vitest';
// @needle/autograd is not (yet) a devDependency of this package: its source is imported by path.
import { add, logSoftmax, matmul, mean, mul, neg, noGrad, oneHot, randn, relu, sub, sum, tensor, zeros } from '@needle/autograd';
import { testBackend } from './gpu';

/** A 2-layer MLP trained with plain SGD; returns the loss of every step and the live-buffer counts. */
async function train(backend: Backend, steps: number): Promise<{ losses: number[]; live: number[] }> {
  const g = new Generator(42);
  const [nIn, nHidden, nOut, batch] = [48, 32, 10, 24];
  const w1 = randn([nIn, nHidden], { backend, generator: g, std: 0.2, requiresGrad: true });
  const b1 = zeros([nHidden], { backend, requiresGrad: true });
  const w2 = randn([nHidden, nOut], { backend, generator: g, std: 0.2, requiresGrad: true });
  const b2 = zeros([nOut], { backend, requiresGrad: true });
  const x = randn([batch, nIn], { backend, generator: g });
  const labels = tensor(Array.from({ length: batch }, (_, i) => (i * 7) % nOut), { backend });
  const y = oneHot(labels, nOut);
  const losses: number[] = [];
  const live: number[] = [];
  for (let step = 0; step < steps; step++) {
    const h = relu(add(matmul(x, w1), b1));
    const logits = add(matmul(h, w2), b2);
    const loss = neg(mean(sum(mul(logSoftmax(logits, -1), y), -1)));
    loss.backward();
    noGrad(() => tidy(() => {
      for (const p of [w1, b1, w2, b2]) {
        p.assign(sub(p, mul(p.grad!, 0.5)));
        p.zeroGrad();
      }
    }));
    losses.push(await loss.item());
    loss.dispose();
    live.push(backend.memory().buffers);
  }
  for (const t of [w1, b1, w2, b2, x, labels, y]) t.dispose();
  return { losses, live };
}

const gpu = await testBackend();

describe.runIf(gpu)('MLP training on WebGPU (autograd)', () => {
  test('loss curve matches the CPU backend to 1e-4 relative, and the loop does not leak', async () => {
    const steps = 12;
    const ref = await train(new CpuBackend(), steps);
    const before = gpu!.memory().buffers;
    const got = await train(gpu!, steps);
    expect(ref.losses[steps - 1]).toBeLessThan(ref.losses[0] * 0.8); // it does learn
    for (let i = 0; i < steps; i++) {
      expect(Math.abs(got.losses[i] - ref.losses[i]), `step ${i}: ${got.losses[i]} vs ${ref.losses[i]}`).toBeLessThanOrEqual(1e-4 * Math.abs(ref.losses[i]));
    }
    expect(new Set(got.live.slice(1)).size, `live buffers per step: ${got.live.join(', ')}`).toBe(1);
    expect(gpu!.memory().buffers).toBe(before);
  });
});
