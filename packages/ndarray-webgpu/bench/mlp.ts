/**
 * Training steps/s of the reference MLP (784-512-10, batch 128, SGD) on this backend, plus matmul
 * GFLOP/s. Not a test: run with `node packages/ndarray-webgpu/bench/run.mjs` (EGL_PLATFORM=surfaceless).
 */
import { Generator, tidy, type Backend } from '@needle/ndarray';
import { add, logSoftmax, matmul, mean, mul, neg, noGrad, oneHot, randn, relu, sub, sum, tensor, zeros } from '@needle/autograd';
import { createWebGPUBackend, type WebGPUBackend } from '../src/index';
import { nodeGPU } from '../src/node';

async function mlp(backend: WebGPUBackend, steps: number): Promise<number> {
  const g = new Generator(1);
  const w1 = randn([784, 512], { backend, generator: g, std: 0.05, requiresGrad: true });
  const b1 = zeros([512], { backend, requiresGrad: true });
  const w2 = randn([512, 10], { backend, generator: g, std: 0.05, requiresGrad: true });
  const b2 = zeros([10], { backend, requiresGrad: true });
  const x = randn([128, 784], { backend, generator: g });
  const y = oneHot(tensor(Array.from({ length: 128 }, (_, i) => i % 10), { backend }), 10);
  const step = () => {
    const h = relu(add(matmul(x, w1), b1));
    const loss = neg(mean(sum(mul(logSoftmax(add(matmul(h, w2), b2), -1), y), -1)));
    loss.backward();
    noGrad(() => tidy(() => {
      for (const p of [w1, b1, w2, b2]) {
        p.assign(sub(p, mul(p.grad!, 0.1)));
        p.zeroGrad();
      }
    }));
    return loss;
  };
  for (let i = 0; i < 3; i++) {
    const l = step();
    await l.item();
    l.dispose();
  }
  const s0 = backend.stats();
  const t0 = performance.now();
  let last = 0;
  for (let i = 0; i < steps; i++) {
    const l = step();
    // Read the loss every 10 steps, as a training loop that logs would.
    if (i % 10 === 9 || i === steps - 1) last = await l.item();
    l.dispose();
  }
  await backend.sync();
  const dt = (performance.now() - t0) / 1000;
  const s1 = backend.stats();
  console.log(`mlp 784-512-10 b128: ${(steps / dt).toFixed(1)} steps/s (loss ${last.toFixed(4)}; ${((s1.dispatches - s0.dispatches) / steps).toFixed(0)} dispatches, ${((s1.copies - s0.copies) / steps).toFixed(1)} copies, ${((s1.submits - s0.submits) / steps).toFixed(2)} submits per step)`);
  return steps / dt;
}

async function matmulBench(backend: Backend, m: number, k: number, n: number, trans = false): Promise<void> {
  const a = backend.alloc(m * k);
  const b = backend.alloc(k * n);
  const c = backend.alloc(m * n);
  backend.fill(a, 0.5, m * k);
  backend.fill(b, 0.25, k * n);
  const spec = { batch: 1, m, k, n, aBatchStride: 0, bBatchStride: 0, transA: trans, transB: false };
  backend.matmul(a, b, c, spec);
  await backend.read(c, 1);
  const reps = 10;
  const t0 = performance.now();
  for (let i = 0; i < reps; i++) backend.matmul(a, b, c, spec);
  await backend.read(c, 1);
  const dt = (performance.now() - t0) / 1000;
  console.log(`matmul ${m}x${k}x${n}${trans ? ' transA' : ''}: ${((2 * m * k * n * reps) / dt / 1e9).toFixed(2)} GFLOP/s`);
  for (const x of [a, b, c]) backend.free(x);
}

const backend = await createWebGPUBackend({ gpu: await nodeGPU() });
const which = process.argv[2] ?? 'all';
if (which === 'all' || which === 'matmul') {
  await matmulBench(backend, 128, 784, 512);
  await matmulBench(backend, 784, 128, 512, true);
  await matmulBench(backend, 512, 512, 512);
}
if (which === 'all' || which === 'mlp') await mlp(backend, Number(process.argv[3] ?? 30));
backend.destroy();
