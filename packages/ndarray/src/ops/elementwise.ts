import type { BinaryOp, UnaryOp } from '../backend';
import { describeValue } from '../check';
import { fail } from '../errors';
import { NDArray, broadcastShapes, sameBackend, shapesEqual, withKernelReady, type ArrayLike } from '../ndarray';

/** Ops whose operands may swap, so `scalar op array` becomes `array op scalar`. */
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
    if (swapped) return scalarOp(swapped, b, a);
    b.assertLive(op);
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
  const out = NDArray.empty(a.shape, a.backend, op);
  if (out.size === 0) return out;
  withKernelReady(a, (x) => a.backend.scalar(op, x.buffer, s, out.buffer, out.size));
  return out;
}

/** Elementwise `op(a)`. */
export function unary(op: UnaryOp, a: NDArray): NDArray {
  a.assertLive(op);
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
