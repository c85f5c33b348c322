import { describe, expect, it } from 'vitest';
import { Generator, tidy } from '@needle/ndarray';
import { mul, noGrad, randn, sub, tensor } from '@needle/autograd';
import {
  AvgPool2d, BatchNorm1d, BatchNorm2d, Conv2d, CrossEntropyLoss, Dropout, Embedding, Flatten, LayerNorm, Linear, MaxPool2d, ReLU, Sequential,
} from '../src/index';
import { liveBuffers } from './helpers';

describe('memory', () => {
  it('a training loop keeps the live buffer count of step 1 (BatchNorm running stats, Dropout, LayerNorm)', async () => {
    const start = liveBuffers();
    const g = new Generator(5);
    const model = new Sequential(
      new Linear(6, 8, { generator: g }),
      new BatchNorm1d(8),
      new ReLU(),
      new Dropout(0.2, { generator: g }),
      new LayerNorm(8),
      new Linear(8, 3, { generator: g }),
    );
    const lossFn = new CrossEntropyLoss();
    const x = randn([10, 6], { generator: g });
    const y = tensor([0, 1, 2, 0, 1, 2, 0, 1, 2, 0]);
    const bn = model.at(1) as BatchNorm1d;
    let afterFirst = -1;
    const losses: number[] = [];
    for (let step = 0; step < 20; step++) {
      const loss = lossFn.call(model.call(x), y);
      loss.backward();
      noGrad(() => tidy(() => {
        for (const p of model.parameters()) p.assign(sub(p, mul(p.grad!, 0.1)));
      }));
      model.zeroGrad();
      losses.push(await loss.item());
      loss.dispose();
      if (step === 0) afterFirst = liveBuffers();
      else expect(liveBuffers(), `live buffers after step ${step + 1}`).toBe(afterFirst);
    }
    // it really trained, and the running statistics really moved
    expect(losses[losses.length - 1]).toBeLessThan(losses[0]);
    expect(await bn.numBatchesTracked!.item()).toBe(20);
    const rv = await bn.runningVar!.toArray();
    expect(rv.some((v) => Math.abs(v - 1) > 1e-3)).toBe(true);
    // evaluation under noGrad + tidy frees everything but the kept output
    model.eval();
    const out = noGrad(() => tidy(() => model.call(x)));
    expect(liveBuffers()).toBe(afterFirst + 1);
    out.dispose();
    [x, y].forEach((t) => t.dispose());
    model.dispose();
    expect(liveBuffers()).toBe(start);
  });

  it('a conv net step (Conv2d, BatchNorm2d, pools, Embedding) does not leak either', async () => {
    const start = liveBuffers();
    const g = new Generator(9);
    const model = new Sequential(
      new Conv2d(2, 4, 3, { padding: 1, generator: g }),
      new BatchNorm2d(4),
      new ReLU(),
      new MaxPool2d(2),
      new AvgPool2d(2, { stride: 1 }),
      new Flatten(),
      new Linear(4, 3, { generator: g }),
    );
    const emb = new Embedding(5, 2, { generator: g });
    const lossFn = new CrossEntropyLoss();
    const x = randn([3, 2, 4, 4], { generator: g });
    const ids = tensor(Array.from({ length: 3 }, (_, n) => Array.from({ length: 16 }, (_, i) => (n + i) % 5)));
    const y = tensor([0, 1, 2]);
    const params = [...model.parameters(), ...emb.parameters()];
    let afterFirst = -1;
    for (let step = 0; step < 5; step++) {
      // embedding rows as an extra input image ([N, 16, 2] -> [N, 2, 4, 4]), so its gradients flow too
      const inp = x.add(emb.call(ids).permute([0, 2, 1]).reshape([3, 2, 4, 4]));
      const loss = lossFn.call(model.call(inp), y);
      loss.backward();
      noGrad(() => tidy(() => {
        for (const p of params) p.assign(sub(p, mul(p.grad!, 0.05)));
      }));
      model.zeroGrad();
      emb.zeroGrad();
      loss.dispose();
      if (step === 0) afterFirst = liveBuffers();
      else expect(liveBuffers(), `live buffers after step ${step + 1}`).toBe(afterFirst);
    }
    expect(await (model.at(1) as BatchNorm2d).numBatchesTracked!.item()).toBe(5);
    [x, ids, y].forEach((t) => t.dispose());
    model.dispose();
    emb.dispose();
    expect(liveBuffers()).toBe(start);
  });
});
