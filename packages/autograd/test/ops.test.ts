import { describe, expect, it } from 'vitest';
import { Generator } from '@needle/ndarray';
import * as A from '../src/index';
import { Tensor, gradcheck, tensor } from '../src/index';
import { expectValues } from './helpers';

/** A random leaf requiring grad, from a fixed seed. */
function leaf(shape: number[], seed: number, options: { low?: number; high?: number; awayFromZero?: number } = {}): Tensor {
  const g = new Generator(seed);
  const n = shape.reduce((p, d) => p * d, 1);
  const data = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    let v = options.low !== undefined ? options.low + (options.high! - options.low) * g.uniform() : g.normal();
    if (options.awayFromZero && Math.abs(v) < options.awayFromZero) v = v < 0 ? v - options.awayFromZero : v + options.awayFromZero;
    data[i] = v;
  }
  return tensor(data, { shape, requiresGrad: true });
}

async function check(fn: (...xs: Tensor[]) => Tensor, inputs: Tensor[], options: A.GradcheckOptions = {}): Promise<void> {
  const r = await gradcheck(fn, inputs, options);
  expect(r.ok).toBe(true);
  expect(r.checked).toBe(inputs.filter((t) => t.requiresGrad).reduce((p, t) => p + t.size, 0));
  inputs.forEach((t) => t.dispose());
}

describe('elementwise: values', () => {
  it('arithmetic with broadcasting and scalars', async () => {
    const a = tensor([[1, 2], [3, 4]]);
    const b = tensor([10, 20]);
    await expectValues(A.add(a, b), [[11, 22], [13, 24]]);
    await expectValues(A.sub(a, b), [[-9, -18], [-7, -16]]);
    await expectValues(A.mul(a, b), [[10, 40], [30, 80]]);
    await expectValues(A.div(a, b), [[0.1, 0.1], [0.3, 0.2]], 1e-6);
    await expectValues(A.sub(1, a), [[0, -1], [-2, -3]]);
    await expectValues(A.div(12, a), [[12, 6], [4, 3]], 1e-6);
    await expectValues(A.pow(a, 2), [[1, 4], [9, 16]]);
    await expectValues(A.pow(2, a), [[2, 4], [8, 16]], 1e-6);
    await expectValues(A.pow(a, tensor([[2], [0.5]])), [[1, 4], [Math.sqrt(3), 2]], 1e-6);
    await expectValues(A.maximum(a, 2.5), [[2.5, 2.5], [3, 4]]);
    await expectValues(A.minimum(a, tensor([2, 3])), [[1, 2], [2, 3]]);
    expect(() => A.add(tensor([1, 2, 3]), tensor([1, 2]))).toThrow(/add: shapes \[3\] and \[2\] cannot be broadcast/);
  });

  it('unary functions', async () => {
    const x = tensor([-2, -0.5, 0, 1, 3]);
    await expectValues(A.neg(x), [2, 0.5, -0, -1, -3]);
    await expectValues(A.abs(x), [2, 0.5, 0, 1, 3]);
    await expectValues(A.relu(x), [0, 0, 0, 1, 3]);
    await expectValues(A.exp(x), [-2, -0.5, 0, 1, 3].map(Math.exp), 1e-6);
    await expectValues(A.tanh(x), [-2, -0.5, 0, 1, 3].map(Math.tanh), 1e-6);
    await expectValues(A.sigmoid(x), [-2, -0.5, 0, 1, 3].map((v) => 1 / (1 + Math.exp(-v))), 1e-6);
    // torch.nn.functional.gelu(x, approximate='tanh') and the exact (default) form x Phi(x)
    await expectValues(A.gelu(x, { approximate: 'tanh' }), [-0.04540229, -0.15428599, 0, 0.84119199, 2.99636340], 1e-6);
    await expectValues(A.gelu(x), [-0.04550026, -0.15426877, 0, 0.84134475, 2.99595031], 1e-6);
    expect(() => A.gelu(x, { approximate: 'erf' as 'none' })).toThrow(/gelu: approximate must be 'none' or 'tanh', got erf/);
    const p = tensor([0.25, 1, 4]);
    await expectValues(A.sqrt(p), [0.5, 1, 2]);
    await expectValues(A.log(p), [Math.log(0.25), 0, Math.log(4)], 1e-6);
    // sigmoid stays finite (and its gradient too) far in the tails
    const far = tensor([-200, 200], { requiresGrad: true });
    const s = A.sigmoid(far);
    await expectValues(s, [0, 1]);
    A.sum(s).backward();
    await expectValues(far.grad!, [0, 0]);
  });

  it('erf matches fixed values to 1e-6, with the exact derivative as its gradient', async () => {
    const xs = [-3, -2, -1, -0.5, -0.1, 0, 1e-3, 0.3, 0.9, 1.7, 2.5, 4, 30, -30];
    // Python's math.erf (float64) at these points
    const want = [-0.99997791, -0.995322265, -0.842700793, -0.520499878, -0.112462916, 0, 0.001128379, 0.328626759, 0.796908212, 0.983790459, 0.999593048, 0.999999985, 1, -1];
    const x = tensor(xs, { requiresGrad: true });
    const y = A.erf(x);
    const got = Array.from(await y.toArray());
    got.forEach((v, i) => expect(Math.abs(v - want[i]), `erf(${xs[i]}) = ${v}, expected ${want[i]}`).toBeLessThanOrEqual(1e-6));
    expect(got[5]).toBe(0);
    A.sum(y).backward();
    await expectValues(x.grad!, xs.map((v) => (2 / Math.sqrt(Math.PI)) * Math.exp(-v * v)), 1e-6);
    x.dispose();
  });

  it('where selects without turning unselected infinities into NaN', async () => {
    const x = tensor([1, 2, 3], { requiresGrad: true });
    const mask = tensor([1, 0, 1]);
    const y = A.where(mask, x, -Infinity);
    await expectValues(y, [1, -Infinity, 3]);
    const s = A.sum(A.softmax(y));
    s.backward();
    await expectValues(x.grad!, [0, 0, 0], 1e-6);
    await expectValues(A.where(mask.data, 5, tensor([7])), [5, 7, 5]);
  });
});

describe('elementwise: gradients', () => {
  it('binary ops with broadcasting', async () => {
    await check((a, b) => A.add(a, b), [leaf([2, 3], 1), leaf([3], 2)]);
    await check((a, b) => A.sub(a, b), [leaf([2, 1], 3), leaf([1, 3], 4)]);
    await check((a, b) => A.mul(a, b), [leaf([2, 3], 5), leaf([2, 1], 6)]);
    await check((a, b) => A.div(a, b), [leaf([3], 7), leaf([2, 3], 8, { low: 0.5, high: 2 })]);
    await check((a, b) => A.maximum(a, b), [leaf([4], 9), leaf([4], 10)]);
    await check((a, b) => A.minimum(a, b), [leaf([4], 11), leaf([1], 12)]);
  });

  it('scalar operands and powers', async () => {
    await check((a) => A.add(A.mul(A.sub(3, a), 2), A.div(1, A.add(A.mul(a, a), 1))), [leaf([5], 13)]);
    await check((a) => A.pow(a, 3), [leaf([5], 14)]);
    await check((a) => A.pow(a, -1.5), [leaf([5], 15, { low: 0.5, high: 2 })]);
    await check((a) => A.pow(2.5, a), [leaf([4], 16)]);
    await check((a, b) => A.pow(a, b), [leaf([2, 2], 17, { low: 0.5, high: 2 }), leaf([2], 18)]);
    await check((a) => A.pow(a, 0), [leaf([3], 19)]);
  });

  it('unary functions', async () => {
    await check((a) => A.neg(a), [leaf([4], 20)]);
    await check((a) => A.exp(a), [leaf([4], 21)]);
    await check((a) => A.log(a), [leaf([4], 22, { low: 0.5, high: 3 })]);
    await check((a) => A.sqrt(a), [leaf([4], 23, { low: 0.5, high: 3 })]);
    await check((a) => A.tanh(a), [leaf([4], 24)]);
    await check((a) => A.sigmoid(a), [leaf([4], 25)]);
    await check((a) => A.gelu(a), [leaf([6], 26)]);
    await check((a) => A.gelu(a, { approximate: 'tanh' }), [leaf([6], 26)]);
    await check((a) => A.erf(a), [leaf([8], 31)]);
    await check((a) => A.relu(a), [leaf([6], 27, { awayFromZero: 0.1 })]);
    await check((a) => A.abs(a), [leaf([6], 28, { awayFromZero: 0.1 })]);
  });

  it('where and mask multiply (dropout)', async () => {
    const cond = tensor([[1, 0, 1], [0, 0, 1]]);
    await check((a, b) => A.where(cond, a, b), [leaf([2, 3], 29), leaf([3], 30)]);
    const gen = new Generator(7);
    const x = tensor([1, 2, 3, 4, 5, 6, 7, 8], { requiresGrad: true });
    const y = A.dropout(x, 0.5, { generator: gen });
    const v = Array.from(await y.toArray());
    v.forEach((e, i) => expect(e === 0 || Math.abs(e - 2 * (i + 1)) < 1e-6).toBe(true));
    expect(v.some((e) => e === 0) && v.some((e) => e !== 0)).toBe(true);
    A.sum(y).backward();
    const g = Array.from(await x.grad!.toArray());
    g.forEach((e, i) => expect(e).toBe(v[i] === 0 ? 0 : 2));
  });
});

describe('shapes and indexing', () => {
  it('views: values', async () => {
    const x = tensor([[1, 2, 3], [4, 5, 6]]);
    await expectValues(A.reshape(x, [3, -1]), [[1, 2], [3, 4], [5, 6]], 0, [3, 2]);
    await expectValues(A.transpose(x), [[1, 4], [2, 5], [3, 6]], 0, [3, 2]);
    await expectValues(A.broadcastTo(tensor([1, 2, 3]), [2, 3]), [[1, 2, 3], [1, 2, 3]]);
    await expectValues(A.getitem(x, 1, '::-1'), [6, 5, 4], 0, [3]);
    await expectValues(A.getitem(x, ':', { start: 0, step: 2 }), [[1, 3], [4, 6]], 0, [2, 2]);
    await expectValues(A.getitem(x, null, -1), [[4, 5, 6]], 0, [1, 3]);
    await expectValues(A.flip(x, 0), [[4, 5, 6], [1, 2, 3]]);
    await expectValues(A.pad(tensor([1, 2]), [[1, 2]]), [0, 1, 2, 0, 0]);
    await expectValues(A.dilate(tensor([[1, 2], [3, 4]]), [1], 1), [[1, 0, 2, 0], [3, 0, 4, 0]]);
    await expectValues(A.undilate(tensor([1, 0, 2, 0, 3, 0]), 0, 1), [1, 2, 3]);
    await expectValues(A.concat([x, tensor([[7, 8, 9]])], 0), [[1, 2, 3], [4, 5, 6], [7, 8, 9]]);
    await expectValues(A.stack([tensor([1, 2]), tensor([3, 4])], 1), [[1, 3], [2, 4]]);
    const [p, q] = A.split(x, [1, 2], 1);
    await expectValues(p, [[1], [4]]);
    await expectValues(q, [[2, 3], [5, 6]]);
    await expectValues(A.flatten(tensor([[[1, 2]], [[3, 4]]]), 1), [[1, 2], [3, 4]], 0, [2, 2]);
    await expectValues(A.squeeze(tensor([[[1, 2]]])), [1, 2], 0, [2]);
  });

  it('views: gradients', async () => {
    await check((a) => A.reshape(a, [3, 2]), [leaf([2, 3], 31)]);
    await check((a) => A.permute(a, [2, 0, 1]), [leaf([2, 3, 2], 32)]);
    await check((a) => A.transpose(a), [leaf([2, 3], 33)]);
    await check((a) => A.broadcastTo(a, [2, 3, 2]), [leaf([3, 1], 34)]);
    await check((a) => A.getitem(a, '1:', '::-2'), [leaf([3, 4], 35)]);
    await check((a) => A.getitem(a, 1, { start: 3, stop: 0, step: -2 }), [leaf([3, 4], 36)]);
    await check((a) => A.getitem(a, '...', null, 2), [leaf([2, 3], 37)]);
    await check((a) => A.flip(a, [0, 1]), [leaf([2, 3], 38)]);
    await check((a) => A.pad(a, [[1, 0], [2, 1]]), [leaf([2, 2], 39)]);
    await check((a) => A.dilate(a, [0, 1], 2), [leaf([2, 2], 40)]);
    await check((a) => A.undilate(a, 1, 1), [leaf([2, 5], 41)]);
    await check((a, b) => A.concat([a, b], 1), [leaf([2, 1], 42), leaf([2, 3], 43)]);
    await check((a, b) => A.stack([a, b], 0), [leaf([3], 44), leaf([3], 45)]);
    await check((a) => A.mul(A.split(a, 2, 0)[1], A.split(a, 2, 0)[0]), [leaf([4, 2], 46)]);
  });

  it('shape errors name the op and the shapes', () => {
    const x = tensor([[1, 2, 3], [4, 5, 6]]);
    expect(() => A.reshape(x, [4])).toThrow(/reshape: cannot reshape array of shape \[2, 3\].*into \[4\]/);
    expect(() => A.matmul(x, x)).toThrow(/matmul: inner dimensions differ: \[2, 3\] @ \[2, 3\] \(3 vs 2\)/);
    expect(() => A.concat([x, tensor([1, 2])], 0)).toThrow(/concat: shapes \[2, 3\], \[2\] differ outside axis 0/);
    expect(() => A.sum(x, 2)).toThrow(/sum: axis 2 is out of range for an array of 2 dimensions/);
    expect(() => A.conv2d(x, x)).toThrow(/conv2d: expected input \[N, C, H, W\] and weight \[O, C\/groups, kh, kw\], got shapes \[2, 3\] and \[2, 3\]/);
    expect(() => A.conv2d(tensor(new Float32Array(16), { shape: [1, 2, 2, 4] }), tensor(new Float32Array(27), { shape: [1, 3, 3, 3] })))
      .toThrow(/conv2d: input \[1, 2, 2, 4\] with 2 channels and weight \[1, 3, 3, 3\] do not fit groups=1/);
    expect(() => A.gather(x, 1, tensor([1, 2]))).toThrow(/gather: index of shape \[2\] must have the rank of x \[2, 3\]/);
  });
});

describe('reductions', () => {
  it('values', async () => {
    const x = tensor([[1, 5, 3], [4, 2, 6]]);
    await expectValues(A.sum(x), 21, 0, []);
    await expectValues(A.sum(x, 0), [5, 7, 9]);
    await expectValues(A.sum(x, 1, true), [[9], [12]], 0, [2, 1]);
    await expectValues(A.mean(x, [0, 1]), 3.5);
    await expectValues(A.max(x, 1), [5, 6]);
    await expectValues(A.min(x, 0, true), [[1, 2, 3]]);
    await expectValues(A.logsumexp(tensor([[1000, 1000], [-1000, -Infinity]]), 1), [1000 + Math.log(2), -1000], 1e-6);
    await expectValues(A.logsumexp(tensor([-Infinity, -Infinity])), -Infinity);
    await expectValues(A.softmax(tensor([1000, 1001])), [1 / (1 + Math.E), Math.E / (1 + Math.E)], 1e-6);
    await expectValues(A.logSoftmax(tensor([0, Math.log(3)])), [Math.log(0.25), Math.log(0.75)], 1e-6);
  });

  it('gradients', async () => {
    await check((a) => A.sum(a, [0, 2]), [leaf([2, 3, 2], 50)]);
    await check((a) => A.sum(a, 1, true), [leaf([2, 3], 51)]);
    await check((a) => A.mean(a, -1), [leaf([2, 3], 52)]);
    await check((a) => A.max(a, 1, true), [leaf([3, 4], 53)]);
    await check((a) => A.max(a), [leaf([5], 54)]);
    await check((a) => A.min(a, 0), [leaf([3, 2], 55)]);
    await check((a) => A.logsumexp(a, 1), [leaf([3, 4], 56)]);
    await check((a) => A.logsumexp(a, [0, 1], true), [leaf([2, 3], 57)]);
    await check((a) => A.softmax(a, 0), [leaf([3, 2], 58)]);
    await check((a) => A.logSoftmax(a, -1), [leaf([2, 4], 59)]);
  });

  it('max shares the gradient between ties', async () => {
    const x = tensor([3, 1, 3], { requiresGrad: true });
    A.max(x).backward();
    await expectValues(x.grad!, [0.5, 0, 0.5]);
  });
});

describe('matmul', () => {
  it('values for 1-D, 2-D and batched operands', async () => {
    const a = tensor([[1, 2], [3, 4]]);
    await expectValues(A.matmul(a, tensor([1, 1])), [3, 7], 0, [2]);
    await expectValues(A.matmul(tensor([1, 1]), a), [4, 6], 0, [2]);
    await expectValues(A.matmul(tensor([1, 2]), tensor([3, 4])), 11, 0, []);
    const b = tensor([[[1, 0], [0, 1]], [[0, 1], [1, 0]]]);
    await expectValues(A.matmul(b, a), [[[1, 2], [3, 4]], [[3, 4], [1, 2]]], 0, [2, 2, 2]);
    await expectValues(A.matmul(a, b), [[[1, 2], [3, 4]], [[2, 1], [4, 3]]], 0, [2, 2, 2]);
  });

  it('gradients, including broadcast batch axes', async () => {
    await check((a, b) => A.matmul(a, b), [leaf([2, 3], 60), leaf([3, 2], 61)]);
    await check((a, b) => A.matmul(a, b), [leaf([2, 2, 3], 62), leaf([3, 2], 63)]);
    await check((a, b) => A.matmul(a, b), [leaf([3], 64), leaf([2, 3, 2], 65)]);
    await check((a, b) => A.matmul(a, b), [leaf([2, 1, 2, 3], 66), leaf([3, 3, 2], 67)]);
    await check((a, b) => A.matmul(a, b), [leaf([3], 68), leaf([3], 69)]);
  });
});

describe('convolution and pooling', () => {
  it('conv2d gradients (stride, padding, dilation, groups, bias)', async () => {
    await check((x, w, b) => A.conv2d(x, w, { bias: b }), [leaf([1, 2, 4, 4], 70), leaf([3, 2, 3, 3], 71), leaf([3], 72)]);
    await check((x, w) => A.conv2d(x, w, { stride: 2, padding: 1 }), [leaf([2, 1, 5, 5], 73), leaf([2, 1, 3, 3], 74)]);
    await check((x, w) => A.conv2d(x, w, { dilation: 2, padding: [1, 2], stride: [1, 2] }), [leaf([1, 2, 5, 6], 75), leaf([2, 2, 2, 2], 76)]);
    await check((x, w) => A.conv2d(x, w, { groups: 2 }), [leaf([1, 4, 3, 3], 77), leaf([4, 2, 2, 2], 78)]);
  });

  it('pooling gradients', async () => {
    await check((x) => A.maxPool2d(x, 2), [leaf([1, 2, 4, 4], 80)]);
    await check((x) => A.maxPool2d(x, 3, { stride: 2, padding: 1 }), [leaf([1, 1, 5, 5], 81)]);
    await check((x) => A.avgPool2d(x, 2, { stride: 1 }), [leaf([2, 1, 3, 3], 82)]);
    await check((x) => A.avgPool2d(x, 3, { stride: 2, padding: 1 }), [leaf([1, 2, 4, 4], 83)]);
  });

  it('pooling values', async () => {
    const x = tensor(Array.from({ length: 16 }, (_, i) => i), { shape: [1, 1, 4, 4] });
    await expectValues(A.maxPool2d(x, 2), [[[[5, 7], [13, 15]]]], 0, [1, 1, 2, 2]);
    await expectValues(A.avgPool2d(x, 2), [[[[2.5, 4.5], [10.5, 12.5]]]], 0, [1, 1, 2, 2]);
    await expectValues(A.maxPool2d(A.neg(x), 2, { padding: 1 }), [[[[-0, -1, -3], [-4, -5, -7], [-12, -13, -15]]]], 0, [1, 1, 3, 3]);
    // A one-position window (its argmax a constant 0): the values pass through, with infinities, and
    // so does the gradient.
    const y = tensor([Infinity, -Infinity, 2, -3], { shape: [1, 1, 2, 2], requiresGrad: true });
    const pooled = A.maxPool2d(y, 1, { stride: 2 });
    await expectValues(pooled, [[[[Infinity]]]], 0, [1, 1, 1, 1]);
    A.sum(A.mul(pooled, 3)).backward();
    await expectValues(y.grad!, [[[[3, 0], [0, 0]]]], 0, [1, 1, 2, 2]);
  });
});

describe('integer indexing', () => {
  it('gather, indexSelect and embedding values', async () => {
    const x = tensor([[1, 2, 3], [4, 5, 6]]);
    await expectValues(A.gather(x, 1, tensor([[2, 0], [1, 1]])), [[3, 1], [5, 5]]);
    await expectValues(A.gather(x, 0, tensor([[1, 0, 1]])), [[4, 2, 6]]);
    await expectValues(A.indexSelect(x, 1, tensor([2, 2, 0])), [[3, 3, 1], [6, 6, 4]], 0, [2, 3]);
    await expectValues(A.embedding(x, tensor([[1, 0]])), [[[4, 5, 6], [1, 2, 3]]], 0, [1, 2, 3]);
    await expectValues(A.oneHot(tensor([2, 0]), 3), [[0, 0, 1], [1, 0, 0]]);
  });

  it('gradients scatter-add into repeated indices', async () => {
    const w = tensor([[1, 2], [3, 4], [5, 6]], { requiresGrad: true });
    const e = A.embedding(w, tensor([0, 2, 0]));
    A.sum(A.mul(e, tensor([[1, 10], [100, 1000], [2, 20]]))).backward();
    await expectValues(w.grad!, [[3, 30], [0, 0], [100, 1000]]);
    const idx = tensor([[2, 0, 2], [1, 1, 0]]);
    await check((x) => A.gather(x, 1, idx), [leaf([2, 4], 90)]);
    await check((x) => A.gather(x, 0, tensor([[1, 0]])), [leaf([3, 2], 91)]);
    await check((x) => A.indexSelect(x, 1, tensor([[3, 0], [1, 1]])), [leaf([2, 4, 2], 92)]);
  });

  it('indexAdd values and gradients; double backward through a lookup and its gradient', async () => {
    const x = tensor([[1, 2], [3, 4], [5, 6]]);
    // Repeated indices accumulate; index 9 is out of range and adds nothing.
    await expectValues(A.indexAdd(x, 0, tensor([2, 0, 2, 9]), tensor([[1, 1], [10, 10], [100, 100], [7, 7]])), [[11, 12], [3, 4], [106, 107]]);
    await check((a, s) => A.indexAdd(a, 1, tensor([1, 1, 0]), s), [leaf([2, 3], 93), leaf([2, 3], 94)]);
    // The lookup's gradient is itself a differentiable op (indexSelect <-> indexScatter): for
    // l = sum(tanh(select(a)) * w), dl/da[r] = sum over i with idx_i = r of w_i (1 - t_r^2), and
    // d/da sum(dl/da * v) [r] = sum of w_i (-2 t_r (1 - t_r^2)) v_r, t = tanh(a).
    const av = [[0.5, -1], [0.2, 0.3], [1, -0.5]];
    const a = tensor(av, { requiresGrad: true });
    const ids = [2, 0, 2];
    const wv = [[1, -2], [0.5, 3], [-1, 1]];
    const vv = [[1, 2], [3, 4], [5, 6]];
    const [g] = A.gradients(A.sum(A.mul(A.tanh(A.indexSelect(a, 0, tensor(ids))), tensor(wv))), [a], { createGraph: true });
    const [gg] = A.gradients(A.sum(A.mul(g!, tensor(vv))), [a]);
    const sumW = (r: number, j: number) => ids.reduce((p, id, i) => p + (id === r ? wv[i][j] : 0), 0);
    const t = av.map((row) => row.map(Math.tanh));
    await expectValues(g!, t.map((row, r) => row.map((tv, j) => sumW(r, j) * (1 - tv * tv))), 1e-6);
    await expectValues(gg!, t.map((row, r) => row.map((tv, j) => sumW(r, j) * -2 * tv * (1 - tv * tv) * vv[r][j])), 1e-6);
    // gather addresses x by float32 flat positions: past 2^24 elements (a broadcast view here, no memory) it refuses.
    expect(() => A.gather(A.broadcastTo(tensor([[1]]), [4097, 4097]), 1, A.zeros([4097, 1]))).toThrow(/gather: x has 16785409 elements; gather addresses them by float32 flat positions, exact up to 16777216/);
    expect(() => A.indexAdd(x, 0, tensor([0]), tensor([[1, 2, 3]]))).toThrow(/indexAdd: source has shape \[1, 3\], expected \[1, 2\]/);
  });
});
