// Bad inputs to nn are errors or NaN, never silently another value (issue 12).
import { describe, expect, it } from 'vitest';
import { noGrad, tensor, zeros } from '@needle/autograd';
import { tidy } from '@needle/ndarray';
import { CrossEntropyLoss, Embedding, Linear } from '../src';
import { backend, expectValues } from './helpers';

describe('loadStateDict', () => {
  it('an undefined value is an error, not a skipped key', () => {
    const m = new Linear(2, 1);
    expect(() => m.loadStateDict({ weight: undefined, bias: zeros([1]).data } as never)).toThrow(
      "Linear.loadStateDict: 'weight' is undefined, expected an NDArray or Tensor",
    );
    expect(() => m.loadStateDict({ weight: undefined } as never, { strict: false })).toThrow("'weight' is undefined");
    m.dispose();
  });
});

describe('class indices out of range give NaN, never another class or row', () => {
  it('CrossEntropyLoss with a label >= C or < 0 is NaN for that sample', async () => {
    const before = backend.memory().buffers;
    const logits = tensor([[1, 2, 3], [1, 2, 3], [1, 2, 3]]);
    const labels = tensor([2, 3, -1]);
    const loss = new CrossEntropyLoss({ reduction: 'none' });
    // tidy: freeing a forward's intermediates without one is issue 12's memory part, not tested here.
    const out = tidy(() => noGrad(() => loss.call(logits, labels)));
    // logsumexp([1, 2, 3]) - 3 = 0.40760596
    const got = Array.from(await out.toArray());
    expect(got[0]).toBeCloseTo(0.40760596, 6);
    expect(got.slice(1).every(Number.isNaN)).toBe(true);
    [logits, labels, out].forEach((t) => t.dispose());
    loss.dispose();
    expect(backend.memory().buffers).toBe(before);
  });

  it('Embedding with an id >= numEmbeddings is a row of NaN', async () => {
    const e = new Embedding(3, 2);
    const w = Array.from(await e.weight.toArray());
    const out = e.call(tensor([2, 3]));
    await expectValues(out.get(0), [w[4], w[5]]);
    expect(Array.from(await out.get(1).toArray()).every(Number.isNaN)).toBe(true);
    out.dispose();
    e.dispose();
  });
});

describe('class indices given on the host are checked before the upload', () => {
  it('CrossEntropyLoss and Embedding take host arrays, refuse out-of-range values, and match the device path', async () => {
    const before = backend.memory().buffers;
    const logits = tensor([[1, 2, 3], [3, 1, 2]]);
    const ce = new CrossEntropyLoss({ reduction: 'none' });
    const fromHost = tidy(() => noGrad(() => ce.call(logits, [2, 0])));
    // logsumexp([1, 2, 3]) - 3 = logsumexp([3, 1, 2]) - 3 = 0.40760596
    await expectValues(fromHost, [0.40760596, 0.40760596]);
    expect(() => ce.call(logits, [2, 3])).toThrow('CrossEntropyLoss: label 1 (in row-major order) is 3, expected an integer in [0, 3)');
    expect(() => ce.call(logits, Int32Array.from([-1, 0]))).toThrow('label 0 (in row-major order) is -1');
    const e = new Embedding(4, 2);
    const w = Array.from(await e.weight.toArray());
    const rows = tidy(() => noGrad(() => e.call([[3, 0]])));
    await expectValues(rows, [[[w[6], w[7]], [w[0], w[1]]]]);
    expect(() => e.call([[1, 4]])).toThrow('Embedding: id 1 (in row-major order) is 4, expected an integer in [0, 4)');
    expect(() => e.call([0.5] as never)).toThrow('Embedding: id 0 (in row-major order) is 0.5');
    [logits, fromHost, rows].forEach((t) => t.dispose());
    ce.dispose();
    e.dispose();
    expect(backend.memory().buffers).toBe(before);
  });
});
