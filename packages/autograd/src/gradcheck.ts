import { fail, formatShape, Generator, NDArray, scope } from '@needle/ndarray';
import { noGrad } from './grad-mode';
import { gradients } from './engine';
import { Tensor, tensor } from './tensor';

export interface GradcheckOptions {
  /** Central-difference step (default 1e-2: float32 needs a large step; the error is O(eps^2)). */
  eps?: number;
  /** Absolute tolerance (default 1e-3). */
  atol?: number;
  /** Relative tolerance (default 1e-2). */
  rtol?: number;
  /** Seed of the random output weights the scalar objective uses (default 0). */
  seed?: number;
  /** Throw a descriptive error on mismatch (default true); otherwise just report. */
  raise?: boolean;
}

export interface GradcheckMismatch {
  input: number;
  index: number;
  analytic: number;
  numeric: number;
}

export interface GradcheckResult {
  ok: boolean;
  maxAbsError: number;
  /** The worst element (largest error relative to its tolerance). */
  worst: GradcheckMismatch | null;
  /** Number of elements compared. */
  checked: number;
}

/**
 * Compare autograd's gradients of `fn` with central differences, for every input that requires grad.
 * A non-scalar output is reduced to sum(out * w) with fixed random weights w, so every output element
 * is checked. Differences are taken on the host in float64 over the float32 outputs, dividing by the
 * step actually representable in float32. Async: reads work on every backend.
 */
export async function gradcheck(fn: (...inputs: Tensor[]) => Tensor, inputs: readonly Tensor[], options: GradcheckOptions = {}): Promise<GradcheckResult> {
  const eps = options.eps ?? 1e-2;
  const atol = options.atol ?? 1e-3;
  const rtol = options.rtol ?? 1e-2;
  const checkedInputs = inputs.map((t, i) => {
    if (!(t instanceof Tensor)) fail('gradcheck', `input ${i} is not a Tensor`);
    return t.requiresGrad;
  });
  if (!checkedInputs.some(Boolean)) fail('gradcheck', 'no input requires grad: nothing to check');
  const s = scope();
  try {
    // Leaf views, so the user's tensors and their .grad are left untouched.
    const leaves = inputs.map((t) => {
      const v = t._leafView();
      v.requiresGrad = t.requiresGrad;
      return v;
    });
    const out = fn(...leaves);
    if (!(out instanceof Tensor)) fail('gradcheck', `the function must return a Tensor, got ${typeof out}`);
    const weights = new Generator(options.seed ?? 0).fillUniform(new Float32Array(out.size), -1, 1);
    const w = NDArray.fromData(weights, out.shape, out.backend);
    const targets = leaves.filter((_, i) => checkedInputs[i]);
    const analytic = out.requiresGrad
      ? gradients(out, targets, { gradOutput: w, allowUnused: true })
      : targets.map(() => null);
    const analyticValues = await Promise.all(analytic.map((g) => g?.toArray()));

    const objective = async (args: Tensor[]): Promise<number> => {
      const y = noGrad(() => fn(...args));
      if (y.size !== weights.length) fail('gradcheck', `the output shape changed between calls (${formatShape(y.shape)})`);
      const values = await y.toArray();
      let total = 0;
      for (let i = 0; i < values.length; i++) total += values[i] * weights[i];
      return total;
    };

    let maxAbsError = 0;
    let worst: GradcheckMismatch | null = null;
    let worstRatio = -1;
    let checked = 0;
    let target = 0;
    for (let k = 0; k < inputs.length; k++) {
      if (!checkedInputs[k]) continue;
      const base = await inputs[k].toArray();
      const exact = analyticValues[target++];
      for (let j = 0; j < base.length; j++) {
        const evalAt = async (value: number): Promise<[number, number]> => {
          const data = base.slice();
          data[j] = value;
          const e = scope();
          try {
            const x = tensor(data, { shape: inputs[k].shape, backend: inputs[k].backend });
            const args = leaves.map((l, i) => (i === k ? x : l));
            return [await objective(args), data[j]];
          } finally {
            e.end();
          }
        };
        const [fp, xp] = await evalAt(base[j] + eps);
        const [fm, xm] = await evalAt(base[j] - eps);
        const numeric = (fp - fm) / (xp - xm);
        const a = exact ? exact[j] : 0;
        const err = Math.abs(a - numeric);
        const ratio = err / (atol + rtol * Math.abs(numeric));
        maxAbsError = Math.max(maxAbsError, err);
        if (ratio > worstRatio || Number.isNaN(ratio)) {
          worstRatio = Number.isNaN(ratio) ? Infinity : ratio;
          worst = { input: k, index: j, analytic: a, numeric };
        }
        checked++;
      }
    }
    const ok = worstRatio <= 1;
    if (!ok && (options.raise ?? true) && worst) {
      fail('gradcheck', `gradient mismatch for input ${worst.input} (shape ${formatShape(inputs[worst.input].shape)}) at flat index ${worst.index}: analytic ${worst.analytic}, numeric ${worst.numeric} (atol ${atol}, rtol ${rtol}, eps ${eps})`);
    }
    return { ok, maxAbsError, worst, checked };
  } finally {
    s.end();
  }
}
