import { describe, expect, it } from 'vitest';
import { mul, sum, tensor } from '@needle/autograd';
import { Adam, SGD } from '../src/index';
import { expectClose, param, setGrad } from './helpers';

describe('optimizer steps and the version check', () => {
  it('a step between the forward and backward makes backward throw (the weights it saved changed)', () => {
    for (const make of [(p: ReturnType<typeof param>) => new SGD([p], { lr: 0.1 }), (p: ReturnType<typeof param>) => new Adam([p], { lr: 0.1 })]) {
      const w = param([1, 2], [2]);
      const opt = make(w);
      const x = tensor([3, 4]);
      const loss = sum(mul(w, x));
      setGrad(w, [1, 1]);
      opt.step();
      expect(w.data.version).toBe(1);
      expect(() => loss.backward()).toThrow(/backward: a tensor needed for gradient computation by mul \(its input 0, shape \[2\]\) was modified in place by assign after it was used/);
      [loss, x, w].forEach((t) => t.dispose());
      opt.dispose();
    }
  });

  it('step after backward, then a new forward, is the normal loop and never trips it', async () => {
    const w = param([1, 2], [2]);
    const opt = new SGD([w], { lr: 0.5 });
    const x = tensor([3, 4]);
    for (let i = 0; i < 3; i++) {
      const loss = sum(mul(w, x));
      loss.backward();
      opt.step();
      opt.zeroGrad();
      loss.dispose();
    }
    await expectClose(w, [1 - 3 * 1.5, 2 - 3 * 2]);
    [x, w].forEach((t) => t.dispose());
  });
});
