import { describe, expect, it } from 'vitest';
import { Generator } from '@needle/ndarray';
import { randn, sum } from '@needle/autograd';
import { Linear } from '../src/index';
import './helpers';

describe('loadStateDict and the version check', () => {
  it('loading weights between the forward and backward makes backward throw', () => {
    const g = new Generator(1);
    const lin = new Linear(3, 2, { generator: g });
    const other = new Linear(3, 2, { generator: g });
    const x = randn([4, 3], { generator: g });
    const loss = sum(lin.call(x));
    lin.loadStateDict(other.stateDict());
    expect(() => loss.backward()).toThrow(/backward: a tensor needed for gradient computation by linear \(its input 1, shape \[2, 3\]\) was modified in place by assign after it was used/);
    loss.dispose();
    // after the load a fresh forward and backward work
    const loss2 = sum(lin.call(x));
    loss2.backward();
    expect(lin.weight.grad).not.toBeNull();
    [loss2, x].forEach((t) => t.dispose());
    lin.dispose();
    other.dispose();
  });
});
