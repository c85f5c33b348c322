import { PROGRAM_LIMITS, PROGRAM_REDUCE_OPS, type ElementwiseProgram, type ProgramLayouts, type ProgramReduceOp, type ReduceOp } from '../backend';
import { checkBoolean } from '../check';
import { fail, formatShape } from '../errors';
import { broadcastStrides, coalesceLayouts, coalesceView, isCompactOperand, viewExtent, viewOverlapsItself } from '../layouts';
import { NDArray, broadcastShapes, sameBackend, shapesEqual, withKernelReady } from '../ndarray';
import { normalizeAxes, normalizeAxis, shapeSize } from '../shape';
import { checkProgram, defineProgram, elementwise, foldUniformSteps } from './program';

/**
 * Reduce over `axis` (one, several, or all when undefined). The reduced axes are permuted to the
 * end and compacted, so the kernel reduces contiguous blocks (needle's reduce_view_out).
 */
export function reduceOp(op: ReduceOp, a: NDArray, axis: number | readonly number[] | undefined, keepdims: boolean): NDArray {
  a.assertLive(op);
  const { axes, kept, reduceSize, outShape, outSize } = reducePlan(op, a.shape, axis, keepdims);
  const out = NDArray.empty(outShape, a.backend, op);
  if (outSize === 0) return out;
  if (reduceSize === 0) {
    a.backend.fill(out.buffer, 0, outSize);
    return out;
  }
  const perm = a.permute([...kept, ...axes]);
  try {
    // A backend that reads strided reduce inputs gets the permuted view itself (no compact launch).
    const caps = a.backend.layouts;
    const view = !perm.isKernelReady && caps?.reduce ? coalesceView(perm.layout) : undefined;
    if (view && view.shape.length <= caps!.maxDims) a.backend.reduce(op, perm.buffer, out.buffer, outSize, reduceSize, view);
    else withKernelReady(perm, (x) => a.backend.reduce(op, x.buffer, out.buffer, outSize, reduceSize));
  } catch (e) {
    out.dispose();
    throw e;
  } finally {
    perm.dispose();
  }
  return out;
}

interface ReducePlan {
  axes: number[];
  kept: number[];
  reduceSize: number;
  outShape: number[];
  outSize: number;
}

/** Which axes a reduction of `shape` keeps and reduces, and the result's shape (errors name `op`). */
function reducePlan(op: string, shape: readonly number[], axis: number | readonly number[] | undefined, keepdims: boolean): ReducePlan {
  const axes = normalizeAxes(op, axis, shape.length);
  checkBoolean(op, 'keepdims', keepdims);
  const kept = shape.map((_, i) => i).filter((i) => !axes.includes(i));
  const reduceSize = shapeSize(axes.map((i) => shape[i]));
  const outShape = keepdims ? shape.map((d, i) => (axes.includes(i) ? 1 : d)) : kept.map((i) => shape[i]);
  const outSize = shapeSize(outShape);
  if (reduceSize === 0 && op !== 'sum' && outSize > 0) {
    fail(op, `cannot reduce over zero elements (shape ${formatShape(shape)}, axes ${JSON.stringify(axes)}): the result would have no identity`);
  }
  return { axes, kept, reduceSize, outShape, outSize };
}

export interface ReduceProgramOptions {
  /** Axes of the program's (broadcast) shape to reduce: one, several, or all when undefined. */
  axis?: number | readonly number[];
  keepdims?: boolean;
  /**
   * Write the result into this array (the result's shape, a view of distinct elements, e.g. a
   * slice of a bigger buffer) instead of a new one: a contiguous view directly, anything else
   * through one copy.
   */
  out?: NDArray;
}

/**
 * Reduce the value of a one-output elementwise program over axes without storing it: e.g. a sum of
 * squares, `reduceProgram('sum', defineProgram(1, 0, ([x]) => x.mul(x)), [x])`, or a cross-entropy
 * row, `reduceProgram('logsumexp', ...)`. Inputs broadcast to one shape (NumPy rules); `op` is a
 * ReduceOp or 'logsumexp'. One `backend.reduceProgram` launch where the backend has it (inputs read
 * as strided views where it also declares `layouts.elementwise`), else `elementwise` into a
 * temporary and then the reduction (for logsumexp, the composition of PROGRAM_REDUCE_OPS's
 * reference): the same values.
 */
export function reduceProgram(op: ProgramReduceOp, program: ElementwiseProgram, inputs: readonly NDArray[], scalars: readonly number[] = [], options: ReduceProgramOptions = {}): NDArray {
  const name = 'reduceProgram';
  if (!(PROGRAM_REDUCE_OPS as readonly string[]).includes(op)) fail(name, `unknown reduction '${String(op)}'; expected one of ${PROGRAM_REDUCE_OPS.join(', ')}`);
  checkProgram(name, program);
  if (program.outputs.length !== 1) fail(name, `the program must have exactly one output, got ${program.outputs.length}`);
  if (inputs.length !== program.inputs || inputs.length === 0) fail(name, `program takes ${program.inputs} inputs, got ${inputs.length} (at least one needed)`);
  if (scalars.length !== program.scalars) fail(name, `program takes ${program.scalars} scalars, got ${scalars.length}`);
  const backend = sameBackend(name, ...inputs);
  let shape = [...inputs[0].shape];
  for (const a of inputs) if (!shapesEqual(a.shape, shape)) shape = broadcastShapes(name, shape, a.shape);
  const plan = reducePlan(op, shape, options.axis, options.keepdims ?? false);
  const target = options.out;
  if (target) checkReduceOut(name, target, plan.outShape, inputs);
  const native = backend.reduceProgram;
  // The kernel writes a contiguous block; another view of the caller's array gets a copy.
  const direct = target && target.isContiguous && !inputs.some((a) => mayOverlap(a, target));
  if (!native || new Set(inputs.map((a) => a.buffer)).size > PROGRAM_LIMITS.buffers - 1) {
    return intoTarget(reduceProgramUnfused(op, program, inputs, scalars, { axis: options.axis, keepdims: options.keepdims }), target);
  }
  const out = direct ? target : NDArray.empty(plan.outShape, backend, op);
  if (direct) target.noteWrite(name);
  if (plan.outSize === 0) return intoTarget(out, target);
  if (plan.reduceSize === 0) {
    if (out.offset === 0) backend.fill(out.buffer, 0, plan.outSize);
    else backend.scalarSetitem(0, out.buffer, out.layout);
    return intoTarget(out, target);
  }
  const temps: NDArray[] = [];
  try {
    // Iteration order: kept axes, then reduced ones, so each output is one contiguous block.
    const perm = [...plan.kept, ...plan.axes];
    const iterShape = perm.map((i) => shape[i]);
    const strided = backend.layouts?.elementwise === true;
    const operand = (a: NDArray) => {
      const s = broadcastStrides(a.shape, a.strides, shape);
      return { strides: perm.map((i) => s[i]), offset: a.offset };
    };
    let ready = inputs.slice();
    let layouts: ProgramLayouts | undefined;
    const c = coalesceLayouts(iterShape, ready.map(operand));
    const compactAll = c.layouts.every((l) => isCompactOperand(c.shape, l));
    if (!compactAll) {
      if (strided && c.shape.length <= backend.layouts!.maxDims) {
        layouts = { shape: c.shape, inputs: c.layouts.map((l) => (isCompactOperand(c.shape, l) ? undefined : l)), outputs: [] };
      } else {
        ready = inputs.map((a, k) => {
          if (isCompactOperand(c.shape, c.layouts[k])) return a;
          const v = a.broadcastTo(shape).permute(perm);
          const copy = v.compact();
          v.dispose();
          temps.push(copy);
          return copy;
        });
      }
    }
    const bufs = ready.map((a) => a.buffer);
    const [run, runScalars] = foldUniformSteps(program, scalars);
    if (out.offset !== 0) native.call(backend, op, run, bufs, runScalars, out.buffer, plan.outSize, plan.reduceSize, layouts, out.offset);
    else if (layouts) native.call(backend, op, run, bufs, runScalars, out.buffer, plan.outSize, plan.reduceSize, layouts);
    else native.call(backend, op, run, bufs, runScalars, out.buffer, plan.outSize, plan.reduceSize);
  } catch (e) {
    if (out !== target) out.dispose();
    throw e;
  } finally {
    temps.forEach((t) => t.dispose());
  }
  return intoTarget(out, target);
}

/** Whether two views could share an element (same buffer and overlapping extents). */
function mayOverlap(a: NDArray, b: NDArray): boolean {
  if (a.buffer !== b.buffer) return false;
  const x = viewExtent(a.shape, a.strides, a.offset);
  const y = viewExtent(b.shape, b.strides, b.offset);
  return x !== undefined && y !== undefined && x[0] <= y[1] && y[0] <= x[1];
}

function checkReduceOut(op: string, out: NDArray, shape: readonly number[], inputs: readonly NDArray[]): void {
  out.assertLive(op);
  if (!shapesEqual(out.shape, shape)) fail(op, `out has shape ${formatShape(out.shape)}, expected the result's ${formatShape(shape)}`);
  if (viewOverlapsItself(out.shape, out.strides)) fail(op, `out (shape ${formatShape(out.shape)}, strides ${formatShape(out.strides)}) reaches some elements more than once; it must be a view of distinct elements`);
  if (out.backend !== inputs[0].backend) fail(op, `out lives on backend '${out.backend.name}', the inputs on '${inputs[0].backend.name}'`);
}

/** `result` itself without a target; else its values copied into `target` (unless it is the target), which is returned. */
function intoTarget(result: NDArray, target: NDArray | undefined): NDArray {
  if (!target || result === target) return result;
  try {
    target.set([], result);
  } finally {
    result.dispose();
  }
  return target;
}

/**
 * The composition `reduceProgram` stands for, whatever the backend has: `elementwise` into a
 * temporary, then the reduction (logsumexp as max, exp of the shifted values, sum, log). The
 * reference the conformance kit checks `backend.reduceProgram` against.
 */
export function reduceProgramUnfused(op: ProgramReduceOp, program: ElementwiseProgram, inputs: readonly NDArray[], scalars: readonly number[] = [], options: ReduceProgramOptions = {}): NDArray {
  const [v] = elementwise(program, inputs, scalars);
  try {
    if (op === 'logsumexp') return logsumexpComposed(v, options.axis, options.keepdims ?? false);
    return reduceOp(op, v, options.axis, options.keepdims ?? false);
  } finally {
    v.dispose();
  }
}

// Built on first use: this module and program.ts import each other through ndarray.ts.
let programs: { shiftedExp: ElementwiseProgram; finish: ElementwiseProgram; identity: ElementwiseProgram } | undefined;
function logsumexpPrograms() {
  programs ??= {
    shiftedExp: defineProgram(2, 0, ([x, m]) => x.sub(m).exp()),
    // |m| < Inf is false for NaN and both infinities (not m - m == 0, which a shader compiler
    // may fold to true).
    finish: defineProgram(2, 0, ([m, s]) => m.abs().lt(Infinity).select(m.add(s.log()), m)),
    identity: defineProgram(1, 0, ([x]) => x),
  };
  return programs;
}

/** PROGRAM_REDUCE_OPS's logsumexp reference, out of `reduce` and `elementwise` launches. */
function logsumexpComposed(x: NDArray, axis: number | readonly number[] | undefined, keepdims: boolean): NDArray {
  const plan = reducePlan('logsumexp', x.shape, axis, keepdims);
  if (plan.reduceSize === 0 || plan.outSize === 0) return reduceOp('max', x, plan.axes, keepdims);
  const m = reduceOp('max', x, plan.axes, true);
  try {
    const [e] = elementwise(logsumexpPrograms().shiftedExp, [x, m]);
    const s = reduceOp('sum', e, plan.axes, true);
    e.dispose();
    const [r] = elementwise(logsumexpPrograms().finish, [m, s]);
    s.dispose();
    if (keepdims) return r;
    const squeezed = r.reshape(plan.outShape);
    r.dispose();
    return squeezed;
  } finally {
    m.dispose();
  }
}

/** log(sum(exp(a))) over axes, stably: PROGRAM_REDUCE_OPS's logsumexp of `a` itself. */
export function logsumexp(a: NDArray, axis?: number | readonly number[], keepdims = false): NDArray {
  a.assertLive('logsumexp');
  return reduceProgram('logsumexp', logsumexpPrograms().identity, [a], [], { axis, keepdims });
}

/** Arithmetic mean over axes. */
export function mean(a: NDArray, axis: number | readonly number[] | undefined, keepdims: boolean): NDArray {
  a.assertLive('mean');
  checkBoolean('mean', 'keepdims', keepdims);
  const axes = normalizeAxes('mean', axis, a.ndim);
  const count = shapeSize(axes.map((i) => a.shape[i]));
  const s = reduceOp('sum', a, axes, keepdims);
  try {
    return s.mul(1 / count);
  } finally {
    s.dispose();
  }
}

/** Index of the first maximum/minimum along one axis, or over the flattened array when undefined. */
export function argReduce(op: 'argmax' | 'argmin', a: NDArray, axis: number | undefined, keepdims: boolean): NDArray {
  a.assertLive(op);
  checkBoolean(op, 'keepdims', keepdims);
  // Over every axis, the row-major order of the view is the flattened order: no reshape (which
  // would copy a strided view).
  if (axis === undefined) return reduceOp(op, a, undefined, keepdims);
  if (Array.isArray(axis)) fail(op, `expected a single axis, got ${JSON.stringify(axis)}`);
  return reduceOp(op, a, normalizeAxis(op, axis, a.ndim), keepdims);
}
