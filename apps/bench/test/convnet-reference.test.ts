/**
 * The ConvNet reference (src/reference.ts) is what every framework's step is checked against, so it
 * is checked itself: its gradients against central finite differences of its own loss, and the
 * tolerance against the size of the updates it has to tell apart from no update.
 */
import { describe, expect, it } from 'vitest';
import { MLP_LR, compareOutputs, convnetCase, makeInputs, toleranceOf } from '../src/cases';
import { convnetLossAndGrads, referenceOutput } from '../src/reference';

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
    const { grads } = convnetLossAndGrads(spec, inputs);
    const eps = 1e-4;
    const lossWith = (param: number, index: number, delta: number) => {
      const moved = inputs.slice();
      moved[2 + param] = moved[2 + param].slice();
      // float32 cannot hold w + 1e-4 exactly: use the step it really took.
      const before = moved[2 + param][index];
      moved[2 + param][index] = before + delta;
      return { loss: convnetLossAndGrads(spec, moved).loss, step: moved[2 + param][index] - before };
    };
    let offset = 1;
    let checked = 0;
    for (let param = 0; param < 6; param++) {
      const w = inputs[2 + param];
      // Every 5th element of each parameter (all of the small biases).
      for (let i = 0; i < w.length; i += w.length > 10 ? 5 : 1) {
        const up = lossWith(param, i, eps);
        const down = lossWith(param, i, -eps);
        const numeric = (up.loss - down.loss) / (up.step - down.step);
        const analytic = grads[param][i];
        // A ReLU or pooling kink crossed within ±eps would show as a larger gap (none is here).
        expect(Math.abs(analytic - numeric), `param ${param} element ${i}: ${analytic} vs ${numeric}`).toBeLessThan(1e-6 + 1e-4 * Math.abs(numeric));
        checked++;
      }
      // The SGD update in the output is this gradient times the learning rate.
      expect(Math.abs(ref[offset] - (w[0] - MLP_LR * grads[param][0]))).toBeLessThan(1e-7);
      offset += w.length;
    }
    expect(checked).toBeGreaterThan(90);
  });

  it('uses a tolerance that an update without gradients (or with the wrong ones) fails', () => {
    const tol = toleranceOf(spec, inputs);
    const unchanged = new Float32Array(ref.length);
    unchanged[0] = ref[0];
    unchanged.set(inputs.slice(2).reduce((acc, a) => [...acc, ...a], [] as number[]), 1);
    expect(compareOutputs(unchanged, ref, tol).ok).toBe(false);
    // Half the learning rate: every update off by half of itself.
    const half = ref.map((v, i) => (i === 0 ? v : v + (unchanged[i] - v) / 2));
    expect(compareOutputs(half, ref, tol).ok).toBe(false);
    // The update itself is mostly well above the tolerance, so most elements are tested.
    let detectable = 0;
    for (let i = 1; i < ref.length; i++) if (Math.abs(ref[i] - unchanged[i]) > tol.atol + tol.rtol * Math.abs(ref[i])) detectable++;
    expect(detectable / paramCount).toBeGreaterThan(0.8);
  });
});
