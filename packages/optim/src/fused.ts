/**
 * The optimizers' update rules as elementwise programs: one kernel launch per parameter writes the
 * new value into the parameter and its state arrays in place (where the backend has
 * `elementwise`; elsewhere the same program runs as its unfused composition). Each program is the
 * exact op sequence of the unfused rule (same ops, same order, same float32 scalars), so results are
 * bit for bit those of the unfused update; the variants differ only in which terms exist, since
 * dropping a term (weight decay 0) is not the same as adding `p * 0` (NaN/Inf parameters, -0).
 */
import { defineProgram, elementwise, type ElementwiseProgram, type NDArray, type ProgramValue } from '@needle/ndarray';

const programs = new Map<string, ElementwiseProgram>();

function cached(key: string, build: () => ElementwiseProgram): ElementwiseProgram {
  let p = programs.get(key);
  if (!p) programs.set(key, (p = build()));
  return p;
}

/** An array a program may write in place: contiguous from its buffer's start. */
function writable(a: NDArray | undefined): NDArray | undefined {
  return a && a.isKernelReady ? a : undefined;
}

/**
 * Run `program` and write output 0 into `param` (in place where it can, else by `assign`); the other
 * outputs go into `state` arrays in place where given and writable, else into new arrays.
 */
function run(program: ElementwiseProgram, inputs: NDArray[], scalars: number[], param: NDArray, state: (NDArray | undefined)[]): NDArray[] {
  const pOut = writable(param);
  const out = [pOut, ...state.map(writable)];
  // The in-place write is the parameter's assignment: version counters name it so.
  const results = elementwise(program, inputs, scalars, { out, writer: 'assign' });
  if (!pOut) param.assign(results[0]);
  return results.slice(1);
}

export interface SgdFlags {
  weightDecay: boolean;
  momentum: boolean;
  /** A momentum buffer from an earlier step exists. */
  hasBuffer: boolean;
  nesterov: boolean;
}

/** Scalars: lr, weightDecay, momentum, 1 - dampening. Returns [momentumBuffer] when momentum. */
export function sgdStep(flags: SgdFlags, p: NDArray, grad: NDArray, buffer: NDArray | undefined, scalars: [number, number, number, number]): NDArray[] {
  const key = `sgd:${+flags.weightDecay}${+flags.momentum}${+flags.hasBuffer}${+flags.nesterov}`;
  const withBuffer = flags.momentum && flags.hasBuffer;
  const program = cached(key, () =>
    defineProgram(withBuffer ? 3 : 2, 4, ([param, g, old], [lr, wd, momentum, oneMinusDampening]) => {
      let d = flags.weightDecay ? g.add(param.mul(wd)) : g;
      const outs: ProgramValue[] = [];
      if (flags.momentum) {
        // PyTorch starts the buffer at the (undampened) gradient, not at zero.
        const buf = withBuffer ? old.mul(momentum).add(d.mul(oneMinusDampening)) : d;
        outs.push(buf);
        d = flags.nesterov ? d.add(buf.mul(momentum)) : buf;
      }
      return [param.sub(d.mul(lr)), ...outs];
    }),
  );
  const inputs = withBuffer ? [p, grad, buffer!] : [p, grad];
  return run(program, inputs, scalars, p, flags.momentum ? [withBuffer ? buffer : undefined] : []);
}

export interface AdamFlags {
  weightDecay: boolean;
  decoupled: boolean;
  hasMoments: boolean;
  amsgrad: boolean;
  hasMax: boolean;
}

/**
 * Scalars: weight decay term (AdamW: 1 - lr * weightDecay, Adam: weightDecay), beta1, 1 - beta1,
 * beta2, 1 - beta2, sqrt(bias correction 2), eps, lr / bias correction 1.
 * Returns [expAvg, expAvgSq] and, with amsgrad, maxExpAvgSq.
 */
export function adamStep(flags: AdamFlags, p: NDArray, grad: NDArray, state: { m?: NDArray; v?: NDArray; max?: NDArray }, scalars: number[]): NDArray[] {
  const key = `adam:${+flags.weightDecay}${+flags.decoupled}${+flags.hasMoments}${+flags.amsgrad}${+flags.hasMax}`;
  const withMax = flags.amsgrad && flags.hasMax;
  const program = cached(key, () =>
    defineProgram(2 + (flags.hasMoments ? 2 : 0) + (withMax ? 1 : 0), 8, (ins, [wd, beta1, omb1, beta2, omb2, sqrtBc2, eps, stepSize]) => {
      const [param, g0] = ins;
      let p = param;
      let g = g0;
      if (flags.weightDecay) {
        if (flags.decoupled) p = p.mul(wd);
        else g = g.add(p.mul(wd));
      }
      // With zero-initialised moments the first step reduces to the scaled gradient: skip the zeros.
      const m = flags.hasMoments ? ins[2].mul(beta1).add(g.mul(omb1)) : g.mul(omb1);
      const gg = g.mul(g);
      const v = flags.hasMoments ? ins[3].mul(beta2).add(gg.mul(omb2)) : gg.mul(omb2);
      const vhat = flags.amsgrad ? (withMax ? ins[flags.hasMoments ? 4 : 2].maximum(v) : v) : v;
      const denom = vhat.sqrt().div(sqrtBc2).add(eps);
      return [p.sub(m.div(denom).mul(stepSize)), m, v, ...(flags.amsgrad ? [vhat] : [])];
    }),
  );
  const inputs = [p, grad, ...(flags.hasMoments ? [state.m!, state.v!] : []), ...(withMax ? [state.max!] : [])];
  const outs = [flags.hasMoments ? state.m : undefined, flags.hasMoments ? state.v : undefined, ...(flags.amsgrad ? [withMax ? state.max : undefined] : [])];
  return run(program, inputs, scalars, p, outs);
}
