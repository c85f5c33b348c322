/**
 * The checks every training-step reference in src/reference.ts gets (shared by the ConvNet and LSTM
 * reference tests): gradients against central finite differences of its own loss, and a tolerance
 * that rejects a missing or wrong update.
 */
import { expect } from 'vitest';
import { MLP_LR, compareOutputs, toleranceOf, type CaseSpec } from '../src/cases';

type LossAndGrads = (inputs: Float32Array[]) => { loss: number; grads: ArrayLike<number>[] };

/**
 * Compare every `stride(w)`-th element of each parameter's gradient (inputs[2..]) with a central
 * difference, and the reference's SGD update of each parameter's first element with lr * gradient.
 * Returns how many elements were checked.
 */
export function checkGradientsByFiniteDifferences(options: {
  inputs: Float32Array[];
  ref: Float32Array;
  lossAndGrads: LossAndGrads;
  eps: number;
  atol: number;
  stride: (w: Float32Array) => number;
}): number {
  const { inputs, ref, lossAndGrads, eps, atol, stride } = options;
  const { grads } = lossAndGrads(inputs);
  const lossWith = (param: number, index: number, delta: number) => {
    const moved = inputs.slice();
    moved[2 + param] = moved[2 + param].slice();
    // float32 cannot hold w + eps exactly: use the step it really took.
    const before = moved[2 + param][index];
    moved[2 + param][index] = before + delta;
    return { loss: lossAndGrads(moved).loss, step: moved[2 + param][index] - before };
  };
  let offset = 1;
  let checked = 0;
  for (let param = 0; param < inputs.length - 2; param++) {
    const w = inputs[2 + param];
    for (let i = 0; i < w.length; i += stride(w)) {
      const up = lossWith(param, i, eps);
      const down = lossWith(param, i, -eps);
      const numeric = (up.loss - down.loss) / (up.step - down.step);
      const analytic = grads[param][i];
      expect(Math.abs(analytic - numeric), `param ${param} element ${i}: ${analytic} vs ${numeric}`).toBeLessThan(atol + 1e-4 * Math.abs(numeric));
      checked++;
    }
    // The SGD update in the output is this gradient times the learning rate.
    expect(Math.abs(ref[offset] - (w[0] - MLP_LR * grads[param][0]))).toBeLessThan(1e-7);
    offset += w.length;
  }
  return checked;
}

/**
 * Assert that the case's tolerance rejects an output with no update and one with half the update,
 * and that most updates are larger than the tolerance (so most elements are really tested).
 * Returns the tolerance for further case-specific checks.
 */
export function expectToleranceCatchesWrongUpdates(spec: CaseSpec, inputs: Float32Array[], ref: Float32Array) {
  const tol = toleranceOf(spec, inputs);
  const unchanged = new Float32Array(ref.length);
  unchanged[0] = ref[0];
  unchanged.set(inputs.slice(2).reduce((acc, a) => [...acc, ...a], [] as number[]), 1);
  expect(compareOutputs(unchanged, ref, tol).ok).toBe(false);
  const half = ref.map((v, i) => (i === 0 ? v : v + (unchanged[i] - v) / 2));
  expect(compareOutputs(half, ref, tol).ok).toBe(false);
  let detectable = 0;
  for (let i = 1; i < ref.length; i++) if (Math.abs(ref[i] - unchanged[i]) > tol.atol + tol.rtol * Math.abs(ref[i])) detectable++;
  expect(detectable / (ref.length - 1)).toBeGreaterThan(0.8);
  return tol;
}
