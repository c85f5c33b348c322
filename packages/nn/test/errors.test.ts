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
