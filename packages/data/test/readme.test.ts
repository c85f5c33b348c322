// The README's opening example, run as written (imports from ../src instead of @needle/data).
import { arange, scope, setDefaultBackend, tidy, zeros, defaultBackend } from '@needle/ndarray';
import { registerCpuBackend } from '@needle/ndarray-cpu';
import { expect, it } from 'vitest';
import { DataLoader, loadMNIST } from '../src';
import { MNIST_DIR } from './helpers';

it('README example: one epoch of softmax regression on MNIST, no leak', async () => {
  setDefaultBackend(registerCpuBackend());
  const dir = MNIST_DIR;
  const buffersAtStart = defaultBackend().memory().buffers;

  // ---- README code starts here ----
  const train = await loadMNIST(dir, { train: true, flatten: true });
  const loader = new DataLoader(train, { batchSize: 100, shuffle: true, seed: 0 });

  let W = zeros([784, 10]);
  const classes = tidy(() => arange(10).reshape([1, 10])); // tidy frees the arange the view came from
  for await (const [x, y] of loader) {
    // x: [100, 784] floats in [0, 1]; y: [100] class indices. The loader frees them next step.
    const s = scope();
    const logits = x.matmul(W);
    const e = logits.sub(logits.max(1, true)).exp();
    const probs = e.div(e.sum(1, true));
    const onehot = y.reshape([-1, 1]).eq(classes);
    const grad = x.transpose().matmul(probs.sub(onehot)).div(x.shape[0]);
    const next = s.end(W.sub(grad.mul(0.5))); // keep the new weights, free the step's temporaries
    W.dispose();
    W = next;
  }

  const test = await loadMNIST(dir, { train: false, flatten: true });
  let correct = 0;
  for await (const [x, y] of new DataLoader(test, { batchSize: 1000 })) {
    const s = scope();
    correct += await x.matmul(W).argmax(1).eq(y).sum().item();
    s.end();
  }
  console.log(`test accuracy: ${(correct / test.length).toFixed(4)}`);
  W.dispose();
  classes.dispose();
  // ---- README code ends here ----

  expect(loader.length).toBe(600);
  // Softmax regression reaches about 92% on MNIST after one epoch; a broken pipeline stays near 10%.
  expect(correct / test.length).toBeGreaterThan(0.88);
  expect(defaultBackend().memory().buffers).toBe(buffersAtStart);
});
