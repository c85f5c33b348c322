import { describe, expect, it } from 'vitest';
import { array } from '@needle/ndarray';
import * as A from '../src/index';
import { Tensor, gradients, noGrad, tensor } from '../src/index';
import { expectValues, liveBuffers } from './helpers';

/** The case: loss = sum(a * a) at a = [1, 2]; mul saved `a` for its backward. */
function lossOfSquare(): { a: Tensor; loss: Tensor } {
  const a = tensor([1, 2], { requiresGrad: true });
  return { a, loss: A.sum(A.mul(a, a)) };
}

const MODIFIED = (op: string, by: string, what = 'its input 0', shape = '[2]') =>
  new RegExp(`backward: a tensor needed for gradient computation by ${op} \\(${what}, shape ${shape.replace(/[[\]]/g, '\\$&')}\\) was modified in place by ${by} after it was used`);

describe('version counters', () => {
  it('every in-place write bumps the version shared by all views of the buffer', () => {
    const x = array([1, 2, 3]);
    const v = x.get('1:');
    expect(x.version).toBe(0);
    x.set([0], 5);
    expect([x.version, v.version, x.lastWriter]).toEqual([1, 1, 'set']);
    v.assign(array([7, 8]));
    expect([x.version, x.lastWriter]).toEqual([2, 'assign']);
    x.fill(0);
    expect([v.version, v.lastWriter]).toEqual([3, 'fill']);
    // a write that fails changes nothing
    expect(() => x.set([0], array([1, 2]))).toThrow(/set: value of shape \[2\]/);
    expect(x.version).toBe(3);
    // ops that make new arrays leave the source's version alone
    const y = x.add(1);
    expect([x.version, y.version]).toEqual([3, 0]);
    [x, v, y].forEach((a) => a.dispose());
  });

  it("the issue's example: assign after the forward makes backward throw (not a wrong gradient)", async () => {
    const { a, loss } = lossOfSquare();
    noGrad(() => a.assign(tensor([10, 20])));
    const before = liveBuffers();
    expect(() => loss.backward()).toThrow(MODIFIED('mul', 'assign'));
    expect(a.grad).toBeNull();
    expect(liveBuffers()).toBe(before); // the failed pass left nothing behind
    loss.dispose();
    a.dispose();
  });

  it('NDArray.set, fill and assign on the data (or on a view of it) are caught too', () => {
    const writes: [string, (t: Tensor) => void][] = [
      ['set', (t) => t.data.set([0], 5)],
      ['fill', (t) => t.data.fill(0)],
      ['assign', (t) => t.data.assign(array([3, 4]))],
      ['set', (t) => { const d = t.detach(); d.data.set(['1:'], 9); d.dispose(); }],
    ];
    for (const [by, write] of writes) {
      const { a, loss } = lossOfSquare();
      write(a);
      expect(() => loss.backward()).toThrow(MODIFIED('mul', by));
      loss.dispose();
      a.dispose();
    }
  });

  it('a non-leaf input (no grad) that an op saved is checked, and so is a saved output', () => {
    const w = tensor([1, 2], { requiresGrad: true });
    const x = tensor([3, 4]);
    const loss = A.sum(A.mul(w, x));
    x.assign(0); // allowed: x does not require grad
    expect(() => loss.backward()).toThrow(MODIFIED('mul', 'assign', 'its input 1'));
    loss.dispose();
    const y = A.exp(w); // exp's backward reads its output
    const view = y.detach();
    const loss2 = A.sum(y);
    view.data.fill(1);
    expect(() => gradients(loss2, [w])).toThrow(MODIFIED('exp', 'fill', 'its output'));
    [loss2, view, w, x].forEach((t) => t.dispose());
  });

  it('ops whose backward does not read the changed tensor still give the right gradient', async () => {
    const a = tensor([1, 2], { requiresGrad: true });
    const b = tensor([5, 6]);
    const loss = A.sum(A.add(A.mul(a, 3), b)); // add and mulScalar save nothing
    noGrad(() => a.assign(tensor([100, 100])));
    b.assign(0);
    loss.backward();
    await expectValues(a.grad!, [3, 3]);
    [a, b, loss].forEach((t) => t.dispose());
  });

  it('a write before the op is recorded is fine: versions are taken when the op runs', async () => {
    const a = tensor([1, 2], { requiresGrad: true });
    noGrad(() => a.assign(tensor([3, 4])));
    const loss = A.sum(A.mul(a, a));
    loss.backward();
    await expectValues(a.grad!, [6, 8]);
    [a, loss].forEach((t) => t.dispose());
  });

  it('replaceData (a leaf taking new storage, as module.to does) after the forward is caught too', () => {
    const { a, loss } = lossOfSquare();
    a.replaceData(array([7, 8]));
    expect(() => loss.backward()).toThrow(/backward: a tensor needed for gradient computation by mul \(its input 0, shape \[2\]\) was modified in place by replaceData after it was used \(it took new storage\)/);
    loss.dispose();
    a.dispose();
  });

  it('assign on a leaf that requires grad is refused while grad mode is on, as PyTorch refuses it', async () => {
    const p = tensor([1, 2], { requiresGrad: true });
    expect(() => p.assign(0)).toThrow(/assign: a leaf tensor that requires grad \(shape \[2\]\) is being used in an in-place operation while grad mode is on; wrap the update in noGrad/);
    expect(p.data.version).toBe(0);
    noGrad(() => p.assign(tensor([7, 8])));
    await expectValues(p, [7, 8]);
    const y = A.mul(p, 2);
    expect(() => y.assign(0)).toThrow(/assign: cannot write in place into a graph intermediate of shape \[2\]/);
    [p, y].forEach((t) => t.dispose());
  });
});
