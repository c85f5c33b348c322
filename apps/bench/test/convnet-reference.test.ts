/**
 * The ConvNet reference (src/reference.ts) is what every framework's step is checked against, so it
 * is checked itself: its gradients against central finite differences of its own loss, and the
 * tolerance against the size of the updates it has to tell apart from no update.
 */
import { describe, expect, it } from 'vitest';
import { convnetCase, makeInputs } from '../src/cases';
import { convnetLossAndGrads, referenceOutput } from '../src/reference';
import { checkGradientsByFiniteDifferences, expectToleranceCatchesWrongUpdates } from './reference-checks';

describe('convnet reference', () => {
  const spec = convnetCase(2, 3, 8, 4, 6, 5);
  const inputs = makeInputs(spec);
  const ref = referenceOutput(spec, inputs)!;
  const paramCount = inputs.slice(2).reduce((s, a) => s + a.length, 0);

  it('has the layout [loss, six updated parameters] and a plausible loss', () => {
    expect(ref.length).toBe(1 + paramCount);
    // Near log(5) for small random weights and 5 classes.
    expect(Math.abs(ref[0] - Math.log(5))).toBeLessThan(0.5);
  });

  it('takes gradients that agree with finite differences of its loss', () => {
    const checked = checkGradientsByFiniteDifferences({
      inputs, ref, lossAndGrads: (x) => convnetLossAndGrads(spec, x), eps: 1e-4,
      // A ReLU or pooling kink crossed within ±eps would show as a larger gap (none is here).
      atol: 1e-6,
      // Every 5th element of each parameter (all of the small biases).
      stride: (w) => (w.length > 10 ? 5 : 1),
    });
    expect(checked).toBeGreaterThan(90);
  });

  it('uses a tolerance that an update without gradients (or with the wrong ones) fails', () => {
    expectToleranceCatchesWrongUpdates(spec, inputs, ref);
  });
});
