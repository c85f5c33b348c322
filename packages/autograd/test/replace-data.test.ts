import { describe, expect, it } from 'vitest';
import { array, scope, tidy } from '@needle/ndarray';
import { createCpuBackend } from '@needle/ndarray-cpu';
import { add, mul, tensor, sum } from '../src/index';
import { liveBuffers } from './helpers';

describe('Tensor.replaceData', () => {
  it('gives a leaf new storage in place, disposing the old, and the leaf keeps working', async () => {
    const other = createCpuBackend({ name: 'cpu-autograd-other', readSync: false });
    const here0 = liveBuffers();
    const there0 = other.memory().buffers;
    const t = tensor([1, 2, 3], { requiresGrad: true });
    const moved = await t.data.to(other);
    expect(t.replaceData(moved)).toBe(t);
    expect(t.data).toBe(moved);
    expect(t.backend).toBe(other);
    expect(liveBuffers()).toBe(here0);
    expect(other.memory().buffers).toBe(there0 + 1);
    const loss = sum(mul(t, t));
    loss.backward();
    loss.dispose();
    expect(Array.from(await t.grad!.toArray())).toEqual([2, 4, 6]);
    t.dispose();
    expect(other.memory().buffers).toBe(there0);
  });

  it('the new data belongs to the tensor, not to the open scope', async () => {
    const t = tensor([1, 2]);
    const before = liveBuffers();
    tidy(() => {
      t.replaceData(array([5, 6]));
    });
    const s = scope();
    t.replaceData(array([7, 8]));
    s.end();
    expect(Array.from(await t.toArray())).toEqual([7, 8]);
    expect(liveBuffers()).toBe(before);
    t.dispose();
  });

  it('rejects computed tensors, other shapes and disposed arrays', () => {
    const a = tensor([1, 2], { requiresGrad: true });
    const y = add(a, 1);
    const x = array([1, 2]);
    expect(() => y.replaceData(x)).toThrow(/replaceData: tensor of shape \[2\] was computed by an op; only leaves can take new storage/);
    const wrong = array([1, 2, 3]);
    expect(() => a.replaceData(wrong)).toThrow(/replaceData: new data of shape \[3\] does not match the tensor's shape \[2\]/);
    wrong.dispose();
    const gone = array([1, 2]);
    gone.dispose();
    expect(() => a.replaceData(gone)).toThrow(/replaceData/);
    expect(() => a.replaceData('x' as never)).toThrow(/replaceData: expected an NDArray, got string/);
    for (const v of [a, y, x]) v.dispose();
  });
});
