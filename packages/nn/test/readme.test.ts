// The README's opening example, run as written (imports from ../src instead of @needle/nn).
import { expect, it } from 'vitest';
import { defaultBackend, manualSeed, setDefaultBackend, tidy } from '@needle/ndarray';
import { registerCpuBackend } from '@needle/ndarray-cpu';
import { mul, noGrad, randn, sub, tensor, type Tensor } from '@needle/autograd';
import { CrossEntropyLoss, Linear, Module, ReLU, Sequential } from '../src/index';

it('README example: a small MLP learns, and the loop does not leak', async () => {
  setDefaultBackend(registerCpuBackend());
  const buffersAtStart = defaultBackend().memory().buffers;
  const losses: number[] = [];

  // ---- README code starts here ----
  manualSeed(0);

  class MLP extends Module {
    body = new Sequential(new Linear(4, 16), new ReLU());
    head = new Linear(16, 3);
    forward(x: Tensor): Tensor {
      return this.head.call(this.body.call(x));
    }
  }

  const model = new MLP();
  const lossFn = new CrossEntropyLoss();
  const x = randn([8, 4]);
  const y = tensor([0, 1, 2, 0, 1, 2, 0, 1]); // class indices as float32

  for (let step = 0; step < 50; step++) {
    const loss = lossFn.call(model.call(x), y);
    loss.backward(); // fills p.grad for every parameter, frees the graph
    noGrad(() => tidy(() => {
      for (const p of model.parameters()) p.assign(sub(p, mul(p.grad!, 0.5)));
    }));
    model.zeroGrad();
    if (step % 10 === 0) console.log(step, await loss.item());
    losses.push(await loss.item()); // (test only)
    loss.dispose();
  }
  x.dispose();
  y.dispose();
  model.dispose();
  // ---- README code ends here ----

  expect(model.toString()).toBe(
    'MLP(\n  (body): Sequential(\n    (0): Linear(inFeatures=4, outFeatures=16, bias=true)\n    (1): ReLU()\n  )\n  (head): Linear(inFeatures=16, outFeatures=3, bias=true)\n)',
  );
  // 8 random points, 3 classes, 83 parameters: the net memorises them
  expect(losses[0]).toBeGreaterThan(0.9);
  expect(losses[49]).toBeLessThan(0.2);
  expect(defaultBackend().memory().buffers).toBe(buffersAtStart);
});
