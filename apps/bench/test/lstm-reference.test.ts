/**
 * The LSTM reference (src/reference.ts) is what every framework's LSTM step is checked against, so
 * it is checked itself: its BPTT gradients against central finite differences of its own loss, and
 * the tolerance against the size of the updates it has to tell apart from no update.
 */
import { describe, expect, it } from 'vitest';
import { MLP_LR, compareOutputs, lstmCase, makeInputs, toleranceOf } from '../src/cases';
import { lstmLossAndGrads, referenceOutput } from '../src/reference';

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
    const { grads } = lstmLossAndGrads(spec, inputs);
    const eps = 1e-3;
    const lossWith = (param: number, index: number, delta: number) => {
      const moved = inputs.slice();
      moved[2 + param] = moved[2 + param].slice();
      // float32 cannot hold w + eps exactly: use the step it really took.
      const before = moved[2 + param][index];
      moved[2 + param][index] = before + delta;
      return { loss: lstmLossAndGrads(spec, moved).loss, step: moved[2 + param][index] - before };
    };
    let offset = 1;
    let checked = 0;
    for (let param = 0; param < 6; param++) {
      const w = inputs[2 + param];
      // Every 3rd element of each parameter: all four gate blocks of every weight are visited.
      for (let i = 0; i < w.length; i += 3) {
        const up = lossWith(param, i, eps);
        const down = lossWith(param, i, -eps);
        const numeric = (up.loss - down.loss) / (up.step - down.step);
        const analytic = grads[param][i];
        // The loss is smooth, so the central difference is accurate to O(eps^2) ~ 1e-6 relative.
        expect(Math.abs(analytic - numeric), `param ${param} element ${i}: ${analytic} vs ${numeric}`).toBeLessThan(1e-7 + 1e-4 * Math.abs(numeric));
        checked++;
      }
      expect(Math.abs(ref[offset] - (w[0] - MLP_LR * grads[param][0]))).toBeLessThan(1e-7);
      offset += w.length;
    }
    expect(checked).toBeGreaterThan(100);
  });

  it('uses a tolerance that an update without gradients (or with the wrong ones) fails', () => {
    const tol = toleranceOf(spec, inputs);
    const unchanged = new Float32Array(ref.length);
    unchanged[0] = ref[0];
    unchanged.set(inputs.slice(2).reduce((acc, a) => [...acc, ...a], [] as number[]), 1);
    expect(compareOutputs(unchanged, ref, tol).ok).toBe(false);
    const half = ref.map((v, i) => (i === 0 ? v : v + (unchanged[i] - v) / 2));
    expect(compareOutputs(half, ref, tol).ok).toBe(false);
    // Swapping two gate blocks' updates (a wrong gate order) must fail too: i and f of weight_hh.
    const [, , wih, whh] = inputs;
    const hid = spec.dims[3];
    const swapped = ref.slice();
    const whhAt = 1 + wih.length;
    swapped.set(ref.subarray(whhAt + hid * hid, whhAt + 2 * hid * hid), whhAt);
    swapped.set(ref.subarray(whhAt, whhAt + hid * hid), whhAt + hid * hid);
    expect(compareOutputs(swapped, ref, tol).ok).toBe(false);
    expect(whh.length).toBe(4 * hid * hid);
    let detectable = 0;
    for (let i = 1; i < ref.length; i++) if (Math.abs(ref[i] - unchanged[i]) > tol.atol + tol.rtol * Math.abs(ref[i])) detectable++;
    expect(detectable / paramCount).toBeGreaterThan(0.8);
  });
});
