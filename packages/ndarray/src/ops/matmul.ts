import { PROGRAM_LIMITS, type ElementwiseProgram, type MatmulSpec, type OperandLayout } from '../backend';
import { fail, formatShape } from '../errors';
import { broadcastStrides, viewOverlapsItself } from '../layouts';
import { NDArray, broadcastShapes, sameBackend, shapesEqual } from '../ndarray';
import { shapeSize } from '../shape';
import { checkProgram, elementwise, foldUniformSteps } from './program';

/** How one operand reaches the kernel (always a fresh view or copy the caller disposes). */
interface Operand {
  array: NDArray;
  batchStride: number;
  trans: boolean;
}

/** An elementwise program applied to the product (see MatmulOptions.epilogue). */
export interface MatmulEpilogueOptions {
  /** One output; input 0 is the product, inputs 1.. are `inputs`. */
  program: ElementwiseProgram;
  /** Arrays broadcast to the result's shape (a bias of n elements, a mask of the result's shape). */
  inputs?: readonly NDArray[];
  scalars?: readonly number[];
}

export interface MatmulOptions {
  /**
   * Run an elementwise program on the product before it is stored: `program(a @ b, ...inputs)`,
   * one launch on a backend with `matmulProgram` (else the matmul, then one `elementwise` launch
   * in place). For bias + activation after a linear layer: `defineProgram(2, 0, ([y, b]) =>
   * y.add(b).maximum(0))` with `inputs: [bias]`.
   */
  epilogue?: MatmulEpilogueOptions;
  /**
   * Write the result into this array (the result's shape; any view of distinct elements, e.g. a
   * slice of a bigger buffer) instead of a new one. A contiguous view is written directly on a
   * backend with `layouts.matmulOffsets`; anything else through one copy.
   */
  out?: NDArray;
}

/**
 * Matrix product with NumPy semantics: 1-D operands are promoted (and the added axis removed),
 * leading batch axes broadcast. Transposed views and operands shared over the batch reach the
 * kernel with no copy (transA/transB, batch stride 0), and so do contiguous slices (a row block of
 * a bigger array) on a backend with `layouts.matmulOffsets`.
 */
export function matmul(a: NDArray, b: NDArray, options: MatmulOptions = {}): NDArray {
  const epi = options.epilogue;
  const extra = epi?.inputs ?? [];
  const backend = sameBackend('matmul', a, b, ...extra, ...(options.out ? [options.out] : []));
  if (a.ndim === 0 || b.ndim === 0) fail('matmul', `expected arrays of at least 1 dimension, got shapes ${formatShape(a.shape)} and ${formatShape(b.shape)}`);
  const a2 = a.ndim === 1 ? a.expandDims(0) : a;
  const b2 = b.ndim === 1 ? b.expandDims(1) : b;
  try {
    const [m, k] = a2.shape.slice(-2);
    const [k2, n] = b2.shape.slice(-2);
    if (k !== k2) {
      fail('matmul', `inner dimensions differ: ${formatShape(a.shape)} @ ${formatShape(b.shape)} (${k} vs ${k2}); expected a[..., m, k] @ b[..., k, n]`);
    }
    const batchShape = matmulBatchShape(a.shape, b.shape);
    const batch = shapeSize(batchShape);
    const full = [...batchShape, m, n];
    const squeezeAxes = [...(a.ndim === 1 ? [full.length - 2] : []), ...(b.ndim === 1 ? [full.length - 1] : [])];
    const resultShape = full.filter((_, i) => !squeezeAxes.includes(i));
    if (epi) checkEpilogue(epi, resultShape);
    const out = options.out;
    if (out) checkOut(out, resultShape);

    const offsets = backend.layouts?.matmulOffsets === true;
    // Where the product goes: the caller's array itself when the kernel can write it (contiguous,
    // at offset 0 or with offsets supported, sharing no buffer with an operand), else a new array.
    const operands = [a, b, ...extra];
    const direct = out && out.isContiguous && (out.offset === 0 || offsets) && !operands.some((x) => x.buffer === out.buffer);
    const target = direct ? out : NDArray.empty(full, backend, 'matmul');
    try {
      if (out) out.noteWrite('matmul');
      if (target.size > 0) runProduct(a2, b2, target, { batch, m, k, n, full, batchShape, squeezeAxes, resultShape, offsets }, epi);
      if (!out) return squeezeAxes.length ? squeezeOwned(target, squeezeAxes) : target;
      if (!direct && target.size > 0) backend.ewiseSetitem(target.buffer, out.buffer, out.layout);
      return out;
    } catch (e) {
      if (target !== out && !target.disposed) target.dispose();
      throw e;
    } finally {
      if (out && target !== out && !target.disposed) target.dispose();
    }
  } finally {
    if (a2 !== a) a2.dispose();
    if (b2 !== b) b2.dispose();
  }
}

interface ProductPlan {
  batch: number;
  m: number;
  k: number;
  n: number;
  /** [...batchShape, m, n]: the target's element order. */
  full: number[];
  batchShape: number[];
  /** Axes of `full` a 1-D operand removes, and the shape that leaves (the caller's result). */
  squeezeAxes: number[];
  resultShape: number[];
  offsets: boolean;
}

/** The product (and epilogue) into `target`, a contiguous array of `plan.full`'s size. */
function runProduct(a: NDArray, b: NDArray, target: NDArray, plan: ProductPlan, epi: MatmulEpilogueOptions | undefined): void {
  const backend = target.backend;
  const { batch, m, k, n, offsets } = plan;
  if (k === 0) {
    // fill starts at element 0; a caller's out slice at an offset is set through its view.
    if (target.offset === 0) backend.fill(target.buffer, 0, target.size);
    else backend.scalarSetitem(0, target.buffer, target.layout);
    if (epi) applyEpilogueAfter(target, plan.resultShape, epi);
    return;
  }
  const A = operand(a, plan.batchShape, offsets);
  const B = operand(b, plan.batchShape, offsets);
  const temps: NDArray[] = [];
  try {
    const spec: MatmulSpec = {
      batch, m, k, n,
      aBatchStride: A.batchStride, bBatchStride: B.batchStride,
      transA: A.trans, transB: B.trans,
    };
    if (offsets) {
      if (A.array.offset) spec.aOffset = A.array.offset;
      if (B.array.offset) spec.bOffset = B.array.offset;
      if (target.offset) spec.outOffset = target.offset;
    }
    const fused = epi && backend.matmulProgram ? epilogueLayouts(epi, plan, temps) : undefined;
    if (fused) {
      const [program, scalars] = foldUniformSteps(epi!.program, epi!.scalars ?? []);
      backend.matmulProgram!(A.array.buffer, B.array.buffer, target.buffer, spec, {
        program,
        inputs: fused.arrays.map((x) => x.buffer),
        scalars,
        layouts: fused.layouts,
      });
      return;
    }
    backend.matmul(A.array.buffer, B.array.buffer, target.buffer, spec);
    if (epi) applyEpilogueAfter(target, plan.resultShape, epi);
  } finally {
    A.array.dispose();
    B.array.dispose();
    temps.forEach((t) => t.dispose());
  }
}

/** The fallback epilogue: one `elementwise` launch over the stored product (result's shape), in place. */
function applyEpilogueAfter(target: NDArray, resultShape: number[], epi: MatmulEpilogueOptions): void {
  const product = shapesEqual(target.shape, resultShape) ? target : target.reshape(resultShape);
  try {
    elementwise(epi.program, [product, ...(epi.inputs ?? [])], epi.scalars ?? [], { out: [product], writer: 'matmul' });
  } finally {
    if (product !== target) product.dispose();
  }
}

/**
 * Each epilogue input as a layout over [batch, m, n] (its batch axes merged into one stride), or a
 * compact copy where they do not merge; undefined when the inputs need more buffers than one launch
 * binds (the caller then runs the fallback).
 */
function epilogueLayouts(epi: MatmulEpilogueOptions, plan: ProductPlan, temps: NDArray[]): { arrays: NDArray[]; layouts: (OperandLayout | undefined)[] } | undefined {
  const arrays: NDArray[] = [];
  const layouts: (OperandLayout | undefined)[] = [];
  for (const x of epi.inputs ?? []) {
    const l = layoutOver3(x, plan);
    if (l) {
      arrays.push(x);
      layouts.push(isCompact3(l, plan) ? undefined : l);
      continue;
    }
    // Same element order as [batch, m, n]: the result's shape differs from it only by size-1 axes.
    const view = x.broadcastTo(plan.resultShape);
    const copy = view.compact();
    view.dispose();
    temps.push(copy);
    arrays.push(copy);
    layouts.push(undefined);
  }
  // a, b and out take three bindings; each distinct epilogue buffer one more.
  if (new Set(arrays.map((x) => x.buffer)).size > PROGRAM_LIMITS.buffers - 3) return undefined;
  return { arrays, layouts };
}

/**
 * `x` (broadcastable to the result's shape) as strides over [batch, m, n]: its strides over the
 * result's shape, with 0 for the axes a 1-D operand removed, and its batch axes merged into one
 * stride if they nest (undefined if not: the caller copies it).
 */
function layoutOver3(x: NDArray, plan: ProductPlan): OperandLayout | undefined {
  const { full, squeezeAxes, resultShape } = plan;
  const overResult = broadcastStrides(x.shape, x.strides, resultShape);
  const s: number[] = [];
  let j = 0;
  for (let i = 0; i < full.length; i++) s.push(squeezeAxes.includes(i) ? 0 : overResult[j++]);
  const batchAxes = full.length - 2;
  let batchStride = 0;
  let inner: { d: number; s: number } | undefined;
  for (let i = batchAxes - 1; i >= 0; i--) {
    if (full[i] === 1) continue;
    if (inner && s[i] !== inner.s * inner.d) return undefined;
    if (!inner) batchStride = s[i];
    inner = { d: full[i], s: s[i] };
  }
  return { strides: [batchStride, s[batchAxes], s[batchAxes + 1]], offset: x.offset };
}

function isCompact3(l: OperandLayout, plan: ProductPlan): boolean {
  const { batch, m, n } = plan;
  const [sb, sm, sn] = l.strides;
  return l.offset === 0 && (n === 1 || sn === 1) && (m === 1 || sm === n) && (batch === 1 || sb === m * n);
}

function checkEpilogue(epi: MatmulEpilogueOptions, resultShape: number[]): void {
  checkProgram('matmul', epi.program);
  const inputs = epi.inputs ?? [];
  if (epi.program.outputs.length !== 1) fail('matmul', `an epilogue program has exactly one output, got ${epi.program.outputs.length}`);
  if (epi.program.inputs !== inputs.length + 1) fail('matmul', `the epilogue program takes ${epi.program.inputs} inputs (the product and ${epi.program.inputs - 1} more), got ${inputs.length} epilogue inputs`);
  if ((epi.scalars ?? []).length !== epi.program.scalars) fail('matmul', `the epilogue program takes ${epi.program.scalars} scalars, got ${(epi.scalars ?? []).length}`);
  inputs.forEach((x, i) => {
    x.assertLive('matmul');
    const ok = x.ndim <= resultShape.length && x.shape.every((d, j) => d === 1 || d === resultShape[resultShape.length - x.ndim + j]);
    if (!ok) fail('matmul', `epilogue input ${i} of shape ${formatShape(x.shape)} does not broadcast to the product's shape ${formatShape(resultShape)}`);
  });
}

function checkOut(out: NDArray, resultShape: number[]): void {
  out.assertLive('matmul');
  if (!shapesEqual(out.shape, resultShape)) fail('matmul', `out has shape ${formatShape(out.shape)}, expected the product's ${formatShape(resultShape)}`);
  if (viewOverlapsItself(out.shape, out.strides)) fail('matmul', `out (shape ${formatShape(out.shape)}, strides ${formatShape(out.strides)}) reaches some elements more than once; it must be a view of distinct elements`);
}

function squeezeOwned(x: NDArray, axes: number[]): NDArray {
  const r = x.squeeze(axes);
  x.dispose();
  return r;
}

/**
 * The broadcast batch shape of a[..., m, k] @ b[..., k, n] (1-D operands have none). Errors name the
 * full operand shapes, not only their batch parts. Shared with autograd's matmul.
 */
export function matmulBatchShape(a: readonly number[], b: readonly number[]): number[] {
  const ba = a.length > 2 ? a.slice(0, -2) : [];
  const bb = b.length > 2 ? b.slice(0, -2) : [];
  try {
    return broadcastShapes('matmul', ba, bb);
  } catch {
    return fail('matmul', `batch dimensions do not broadcast: ${formatShape(a)} @ ${formatShape(b)} (batch ${formatShape(ba)} vs ${formatShape(bb)}); expected a[..., m, k] @ b[..., k, n] with broadcastable leading axes`);
  }
}

function operand(x: NDArray, batchShape: number[], offsets: boolean): Operand {
  const [r, c] = x.shape.slice(-2);
  const ownBatch = shapeSize(x.shape.slice(0, -2));
  // Shared over the batch: view it as one matrix, batch stride 0.
  const shared = ownBatch === 1;
  const view = shared ? x.reshape([r, c]) : x.broadcastTo([...batchShape, r, c]);
  const batchStride = shared ? 0 : r * c;
  const ready = (v: NDArray) => (offsets ? v.isContiguous : v.isKernelReady);
  if (ready(view)) return { array: view, batchStride, trans: false };
  const t = view.transpose(-2, -1);
  if (ready(t)) {
    view.dispose();
    return { array: t, batchStride, trans: true };
  }
  t.dispose();
  const c2 = view.compact();
  view.dispose();
  return { array: c2, batchStride, trans: false };
}
