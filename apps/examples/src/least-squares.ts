/**
 * Fit y = X w + b by full-batch gradient descent with hand-written gradients, using only NDArray
 * ops: a small demo of views, broadcasting, matmul, reductions and leak-free loops with tidy.
 */
import { Generator, randn, tidy, zeros, type NDArray } from '@needle/ndarray';
import { backendOption, useBackend } from './backends';
import { defineExample } from './example';

export const leastSquares = defineExample({
  description: 'NDArray demo: linear regression by gradient descent with manual gradients',
  details:
    'Fits y = X w + b (512 samples, 8 features, seed 0) by full-batch gradient descent on the mean\n' +
    'squared error, with hand-written gradients: NDArray ops only, no autograd. Prints the loss and\n' +
    'how far w and b end from the true values.',
  options: {
    backend: backendOption,
    steps: { type: 'int', min: 1, default: 200, description: 'gradient-descent steps' },
    lr: { type: 'number', min: 0, exclusiveMin: true, default: 0.1, description: 'learning rate' },
  },
  async run(args) {
    const backend = await useBackend(args.backend);
    const { steps, lr } = args;
    const g = new Generator(0);
    const n = 512;
    const d = 8;
    const X = randn([n, d], { generator: g });
    const trueW = randn([d, 1], { generator: g });
    const noise = randn([n, 1], { generator: g, std: 0.01 });
    const y = tidy(() => X.matmul(trueW).add(3).add(noise));
    let w: NDArray = zeros([d, 1]);
    let b: NDArray = zeros([1]);
    const start = performance.now();
    for (let step = 1; step <= steps; step++) {
      const [nw, nb, loss] = tidy(() => {
        const err = X.matmul(w).add(b).sub(y); // [n, 1]
        const gradW = X.transpose().matmul(err).mul(2 / n);
        const gradB = err.mean(0).mul(2);
        return [w.sub(gradW.mul(lr)), b.sub(gradB.mul(lr)), err.mul(err).mean()];
      });
      w.dispose();
      b.dispose();
      w = nw;
      b = nb;
      if (step === 1 || step % 50 === 0 || step === steps) console.log(`step ${String(step).padStart(4)}  mse ${(await loss.item()).toExponential(3)}`);
      loss.dispose();
    }
    const errW = tidy(() => w.sub(trueW).abs().max());
    console.log(`max |w - w_true| = ${(await errW.item()).toExponential(2)}, b = ${(await b.item()).toFixed(4)} (true 3)`);
    for (const a of [X, trueW, noise, y, w, b, errW]) a.dispose();
    console.log(`${steps} steps in ${(performance.now() - start).toFixed(0)} ms on '${backend.name}'; live buffers after cleanup: ${backend.memory().buffers}`);
  },
});
