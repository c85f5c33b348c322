import type { Backend, BinaryOp, ElementwiseProgram, UnaryOp } from '../backend';
import { describeValue } from '../check';
import { fail } from '../errors';
import { NDArray, broadcastShapes, sameBackend, shapesEqual, withKernelReady, type ArrayLike } from '../ndarray';
import { viewOverlapsItself } from '../layouts';
import { defineProgram, elementwise, type ProgramValue } from './program';

/**
 * On a backend whose `elementwise` takes strided layouts, an op with a broadcast or strided operand
 * (or a number that would need a `fill`) runs as a one-step program: one launch that reads the views
 * where they lie, instead of `compact` (or `fill`) then the kernel. A program step is the very op of
 * the kernel it replaces, so values are the same bit for bit.
 */
function viaProgram(backend: Backend, ...arrays: NDArray[]): boolean {
  return stridedPrograms(backend) && arrays.some((a) => !a.isKernelReady);
}

function stridedPrograms(backend: Backend): boolean {
  return Boolean(backend.layouts?.elementwise && backend.elementwise);
}

const programs = new Map<string, ElementwiseProgram>();

/** The one-step program named `key`, defined once. */
function oneStep(key: string, inputs: number, scalars: number, body: (ins: ProgramValue[], scs: ProgramValue[]) => ProgramValue): ElementwiseProgram {
  let p = programs.get(key);
  if (!p) programs.set(key, (p = defineProgram(inputs, scalars, body)));
  return p;
}

/**
 * Ops whose operands may swap, so `scalar op array` becomes `array op scalar`. maximum and minimum
 * keep their first operand on ties, which only differs from the swapped form for signed zeros
 * (maximum(-0, +0) is -0): a zero scalar on the left is not swapped (see `binary`).
 */
const SWAPPED: Partial<Record<BinaryOp, BinaryOp>> = {
  add: 'add', mul: 'mul', maximum: 'maximum', minimum: 'minimum',
  eq: 'eq', ne: 'ne', ge: 'le', gt: 'lt', le: 'ge', lt: 'gt',
};

/** Elementwise `a op b` with NumPy broadcasting; either side may be a number. */
export function binary(op: BinaryOp, a: ArrayLike, b: ArrayLike): NDArray {
  for (const v of [a, b]) {
    if (typeof v !== 'number' && !(v instanceof NDArray)) fail(op, `expected a number or an NDArray operand, got ${describeValue(v)}`);
  }
  if (typeof a === 'number' && typeof b === 'number') fail(op, 'expected at least one NDArray operand, got two numbers');
  if (typeof b === 'number') return scalarOp(op, a as NDArray, b);
  if (typeof a === 'number') {
    const swapped = SWAPPED[op];
    const signedZeroTie = a === 0 && (op === 'maximum' || op === 'minimum');
    if (swapped && !signedZeroTie) return scalarOp(swapped, b, a);
    b.assertLive(op);
    if (stridedPrograms(b.backend)) {
      return elementwise(oneStep(`s${op}x`, 1, 1, ([x], [s]) => s[op](x)), [b], [a])[0];
    }
    const filled = NDArray.empty(b.shape, b.backend, op);
    filled.backend.fill(filled.buffer, a, filled.size);
    try {
      return binary(op, filled, b);
    } finally {
      filled.dispose();
    }
  }
  const backend = sameBackend(op, a, b);
  const shape = shapesEqual(a.shape, b.shape) ? [...a.shape] : broadcastShapes(op, a.shape, b.shape);
  if (viaProgram(backend, a, b) || (stridedPrograms(backend) && !shapesEqual(a.shape, b.shape))) {
    return elementwise(oneStep(`x${op}y`, 2, 0, ([x, y]) => x[op](y)), [a, b])[0];
  }
  const out = NDArray.empty(shape, backend, op);
  if (out.size === 0) return out;
  const ab = shapesEqual(a.shape, shape) ? a : a.broadcastTo(shape);
  const bb = shapesEqual(b.shape, shape) ? b : b.broadcastTo(shape);
  try {
    withKernelReady(ab, (x) =>
      withKernelReady(bb, (y) => backend.ewise(op, x.buffer, y.buffer, out.buffer, out.size)),
    );
  } finally {
    if (ab !== a) ab.dispose();
    if (bb !== b) bb.dispose();
  }
  return out;
}

function scalarOp(op: BinaryOp, a: NDArray, s: number): NDArray {
  a.assertLive(op);
  if (viaProgram(a.backend, a)) return elementwise(oneStep(`x${op}s`, 1, 1, ([x], [c]) => x[op](c)), [a], [s])[0];
  const out = NDArray.empty(a.shape, a.backend, op);
  if (out.size === 0) return out;
  withKernelReady(a, (x) => a.backend.scalar(op, x.buffer, s, out.buffer, out.size));
  return out;
}

/** Elementwise `op(a)`. */
export function unary(op: UnaryOp, a: NDArray): NDArray {
  a.assertLive(op);
  if (viaProgram(a.backend, a)) return elementwise(oneStep(op, 1, 0, ([x]) => x[op]()), [a])[0];
  const out = NDArray.empty(a.shape, a.backend, op);
  if (out.size === 0) return out;
  withKernelReady(a, (x) => a.backend.unary(op, x.buffer, out.buffer, out.size));
  return out;
}

/** out = cond != 0 ? x : y, with broadcasting over all three. A primitive kernel, because
 * x*mask + y*(1-mask) turns an unselected Inf or NaN into NaN (0 * Inf), which attention masks hit. */
export function where(cond: NDArray, x: ArrayLike, y: ArrayLike): NDArray {
  for (const v of [x, y]) {
    if (typeof v !== 'number' && !(v instanceof NDArray)) fail('where', `expected a number or an NDArray for x and y, got ${describeValue(v)}`);
  }
  sameBackend('where', cond);
  const arrays = [cond, x, y].filter((v): v is NDArray => typeof v !== 'number');
  const backend = sameBackend('where', ...arrays);
  if (stridedPrograms(backend) && (arrays.length < 3 || arrays.some((a) => !a.isKernelReady || !shapesEqual(a.shape, cond.shape)))) {
    // Numbers travel as scalars (rounded to float32 like a filled array), so no `fill` launch either.
    broadcastShapes('where', broadcastShapes('where', cond.shape, typeof x === 'number' ? [] : x.shape), typeof y === 'number' ? [] : y.shape);
    const kx = typeof x === 'number' ? 's' : 'a';
    const ky = typeof y === 'number' ? 's' : 'a';
    const program = oneStep(`where ${kx}${ky}`, arrays.length, 3 - arrays.length, (ins, scs) => {
      const operands = [...ins];
      const c = operands.shift()!;
      const xv = kx === 'a' ? operands.shift()! : scs[0];
      const yv = ky === 'a' ? operands.shift()! : scs[kx === 's' ? 1 : 0];
      return c.select(xv, yv);
    });
    const scalars = [x, y].filter((v): v is number => typeof v === 'number');
    return elementwise(program, arrays, scalars)[0];
  }
  const temps: NDArray[] = [];
  const asArray = (v: ArrayLike) => {
    if (typeof v !== 'number') return v;
    cond.assertLive('where');
    const t = NDArray.empty([], cond.backend, 'where');
    t.backend.fill(t.buffer, v, 1);
    temps.push(t);
    return t;
  };
  try {
    const xa = asArray(x);
    const ya = asArray(y);
    const backend = sameBackend('where', cond, xa, ya);
    const shape = broadcastShapes('where', broadcastShapes('where', cond.shape, xa.shape), ya.shape);
    const out = NDArray.empty(shape, backend, 'where');
    if (out.size === 0) return out;
    const operands = [cond, xa, ya];
    const views = operands.map((a) => (shapesEqual(a.shape, shape) ? a : a.broadcastTo(shape)));
    try {
      withKernelReady(views[0], (c) =>
        withKernelReady(views[1], (p) =>
          withKernelReady(views[2], (q) => backend.where(c.buffer, p.buffer, q.buffer, out.buffer, out.size)),
        ),
      );
    } finally {
      views.forEach((v, i) => {
        if (v !== operands[i]) v.dispose();
      });
    }
    return out;
  } finally {
    temps.forEach((t) => t.dispose());
  }
}

/**
 * `target[...] = value` for a broadcast or strided `value` as one copy program writing the target
 * view in place (instead of `compact` then `ewiseSetitem`), where the backend takes layouts and the
 * target view is one of distinct elements. A value viewing the target's buffer is read from a copy
 * when it overlaps the target other than element for element (the program's aliasing rule), as the
 * setitem path does. Returns false where it does not apply; the caller then takes the kernel path.
 */
export function copyInto(value: NDArray, target: NDArray, writer: string): boolean {
  if (!stridedPrograms(target.backend) || value.isKernelReady || viewOverlapsItself(target.shape, target.strides)) return false;
  elementwise(oneStep('copy', 1, 0, ([x]) => x), [value], [], { out: [target], writer });
  return true;
}