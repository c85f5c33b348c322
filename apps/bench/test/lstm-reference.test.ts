/**
 * The LSTM reference (src/reference.ts) is what every framework's LSTM step is checked against, so
 * it is checked itself: its BPTT gradients against central finite differences of its own loss, and
 * the tolerance against the size of the updates it has to tell apart from no update.
 */
import { describe, expect, it } from 'vitest';
import { compareOutputs, lstmCase, makeInputs } from '../src/cases';
import { lstmLossAndGrads, referenceOutput } from '../src/reference';
import { checkGradientsByFiniteDifferences, expectToleranceCatchesWrongUpdates } from './reference-checks';

describe('lstm reference', () => {
  // Enough steps (4) that gradients flow through several cell states; H != inputs catches a
  // transposed weight.
  const spec = lstmCase(3, 4, 5, 6, 4);
  const inputs = makeInputs(spec);
  const ref = referenceOutput(spec, inputs)!;
  const paramCount = inputs.slice(2).reduce((s, a) => s + a.length, 0);

  it('has the layout [loss, six updated parameters] and a plausible loss', () => {
    expect(ref.length).toBe(1 + paramCount);
    // Near log(4) for small random weights and 4 classes.
    expect(Math.abs(ref[0] - Math.log(4))).toBeLessThan(0.5);
  });

  it('takes gradients that agree with finite differences of its loss', () => {
    const checked = checkGradientsByFiniteDifferences({
      inputs, ref, lossAndGrads: (x) => lstmLossAndGrads(spec, x), eps: 1e-3,
      // The loss is smooth, so the central difference is accurate to O(eps^2) ~ 1e-6 relative.
      atol: 1e-7,
      // Every 3rd element of each parameter: all four gate blocks of every weight are visited.
      stride: () => 3,
    });
    expect(checked).toBeGreaterThan(100);
  });

  it('uses a tolerance that an update without gradients (or with the wrong ones) fails', () => {
    const tol = expectToleranceCatchesWrongUpdates(spec, inputs, ref);
    // Swapping two gate blocks' updates (a wrong gate order) must fail too: i and f of weight_hh.
    const [, , wih, whh] = inputs;
    const hid = spec.dims[3];
    const swapped = ref.slice();
    const whhAt = 1 + wih.length;
    swapped.set(ref.subarray(whhAt + hid * hid, whhAt + 2 * hid * hid), whhAt);
    swapped.set(ref.subarray(whhAt, whhAt + hid * hid), whhAt + hid * hid);
    expect(compareOutputs(swapped, ref, tol).ok).toBe(false);
    expect(whh.length).toBe(4 * hid * hid);
  });
});
