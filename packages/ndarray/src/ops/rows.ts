/**
 * Lookups by integer index along one axis, and their adjoint: `indexSelect` (torch.index_select;
 * an embedding lookup is indexSelect(weight, 0, ids)) and `indexAddInto` (torch's index_add_: an
 * embedding's gradient). Both work on the array seen as a matrix [n, R] with the indexed axis first,
 * one launch of the backend's gatherRows / scatterAddRows; a backend without them gets the
 * composition: a one-hot matrix [K, n] (eq against arange) times the rows, or its transpose times
 * the source. The composition costs 2 K n R multiply-adds where the kernels move K R elements, and
 * its products by 0 let an Inf or NaN anywhere in the rows reach every result (0 * Inf is NaN): it
 * is the fallback, not the method.
 *
 * Indices are float32 values holding integers (as labels and token ids are everywhere in needle). They
 * live on the device and are not read back to check them: an index that is not an integer in
 * [0, n) selects a row of `missing` (NaN unless asked otherwise), so a bad id shows as NaN rather
 * than as some other row's data, and adds nothing.
 */
import { checkNumber, checkOptions, describeValue } from '../check';
import { arange } from '../creation';
import { fail, formatShape } from '../errors';
import { NDArray, sameBackend, shapesEqual } from '../ndarray';
import { compactStrides, normalizeAxis, shapeSize } from '../shape';
import type { Backend, ElementwiseProgram } from '../backend';
import { disposeOnError } from '../memory';
import { defineProgram, elementwise, isRowIndexValue } from './program';

export interface IndexSelectOptions {
  /** The value of a selected row whose index is invalid (default NaN). */
  missing?: number;
}

/** How an array is seen as rows along `axis`: [n, R], the other axes in order as R. */
interface RowGeometry {
  axis: number;
  n: number;
  before: number[];
  after: number[];
  /** The permutation that brings `axis` first. */
  front: number[];
}

function geometry(op: string, shape: readonly number[], axis: number): RowGeometry {
  if (typeof axis !== 'number') fail(op, `axis must be an integer, got ${describeValue(axis)}`);
  if (shape.length === 0) fail(op, 'cannot index a 0-d array along an axis (expected at least one dimension)');
  const ax = normalizeAxis(op, axis, shape.length);
  return {
    axis: ax,
    n: shape[ax],
    before: shape.slice(0, ax),
    after: shape.slice(ax + 1),
    front: [ax, ...shape.map((_, i) => i).filter((i) => i !== ax)],
  };
}

/**
 * What indexing `shape` along `axis` by indices of `indicesShape` gives (indexSelect's result, the
 * source indexAddInto takes): shape[:axis] + indicesShape + shape[axis+1:], with the axis
 * normalised. Throws under `op` for a bad axis or a 0-d shape.
 */
export function indexedShape(op: string, shape: readonly number[], axis: number, indicesShape: readonly number[]): { axis: number; shape: number[] } {
  const g = geometry(op, shape, axis);
  return { axis: g.axis, shape: shapeIndexedBy(g, indicesShape) };
}

function shapeIndexedBy(g: RowGeometry, indicesShape: readonly number[]): number[] {
  return [...g.before, ...indicesShape, ...g.after];
}

/** [K] kernel-ready indices (a view when they already are). */
function flatIndices(indices: NDArray): NDArray {
  const flat = indices.reshape([-1]);
  try {
    return flat.compact();
  } finally {
    flat.dispose();
  }
}

/** x as kernel-ready rows [n, R] (a view when x is laid out so, else a copy). */
function rowsOf(x: NDArray, g: RowGeometry): NDArray {
  const moved = x.permute(g.front);
  try {
    const rows = moved.reshape([g.n, -1]);
    try {
      return rows.compact();
    } finally {
      rows.dispose();
    }
  } finally {
    moved.dispose();
  }
}

/**
 * One-hot encoding: indices [...] (float32 integer values) -> [..., n] with 1 where index == class;
 * an index that is not an integer in [0, n) gives a row of zeros (indices are not read back).
 */
export function oneHot(indices: NDArray, n: number): NDArray {
  sameBackend('oneHot', indices);
  checkNumber('oneHot', 'n', n, { integer: true, min: 1 });
  const classes = arange(n, undefined, 1, { backend: indices.backend });
  const col = indices.reshape([...indices.shape, 1]);
  try {
    return col.eq(classes);
  } finally {
    col.dispose();
    classes.dispose();
  }
}

/**
 * Select entries of `x` along `axis` by integer indices of any shape: the result has shape
 * x.shape[:axis] + indices.shape + x.shape[axis+1:] (a new array; for axis 0 it is compact).
 * An invalid index (not an integer in [0, x.shape[axis])) selects `missing` values.
 */
export function indexSelect(x: NDArray, axis: number, indices: NDArray, options?: IndexSelectOptions): NDArray {
  const op = 'indexSelect';
  const backend = sameBackend(op, x, indices);
  const { missing = NaN } = checkOptions(op, options);
  checkNumber(op, 'missing', missing, { finite: false });
  const g = geometry(op, x.shape, axis);
  // Every array made below is released if an allocation fails part-way.
  return disposeOnError(() => selectRows(backend, op, x, g, indices, missing));
}

function selectRows(backend: Backend, op: string, x: NDArray, g: RowGeometry, indices: NDArray, missing: number): NDArray {
  const k = indices.ndim;
  const b = g.before.length;
  const flat = flatIndices(indices);
  const rows = rowsOf(x, g);
  let picked: NDArray;
  try {
    const R = rows.shape[1];
    if (backend.gatherRows) {
      picked = NDArray.empty([flat.size, R], backend, op);
      if (flat.size * R > 0) backend.gatherRows(rows.buffer, flat.buffer, picked.buffer, g.n, R, flat.size, missing);
    } else {
      picked = gatherRowsUnfused(rows, flat, missing);
    }
  } finally {
    rows.dispose();
    flat.dispose();
  }
  const shaped = picked.reshape([...indices.shape, ...g.before, ...g.after]);
  picked.dispose();
  if (b === 0) return shaped;
  // [...indices, ...before, ...after] -> [...before, ...indices, ...after]
  const order = [...Array.from({ length: b }, (_, i) => k + i), ...Array.from({ length: k }, (_, i) => i), ...g.after.map((_, i) => k + b + i)];
  try {
    return shaped.permute(order);
  } finally {
    shaped.dispose();
  }
}

/**
 * Add the slices of `source` into `target` along `axis` at integer indices, in place (torch's
 * `index_add_`; returns `target`): target[..., indices[j], ...] += source[..., j, ...], where source
 * has shape target.shape[:axis] + indices.shape + target.shape[axis+1:]. Repeated indices
 * accumulate, in the order of the indices; slices with an invalid index add nothing. `target` may be
 * any view; its version is bumped once.
 */
export function indexAddInto(target: NDArray, axis: number, indices: NDArray, source: NDArray): NDArray {
  const op = 'indexAddInto';
  const backend = sameBackend(op, target, indices, source);
  const g = geometry(op, target.shape, axis);
  const expected = shapeIndexedBy(g, indices.shape);
  if (!shapesEqual(source.shape, expected)) {
    fail(op, `source has shape ${formatShape(source.shape)}, expected ${formatShape(expected)} (target ${formatShape(target.shape)} with axis ${g.axis} replaced by the indices' shape ${formatShape(indices.shape)})`);
  }
  return disposeOnError(() => addRows(backend, op, target, g, indices, source));
}

function addRows(backend: Backend, op: string, target: NDArray, g: RowGeometry, indices: NDArray, source: NDArray): NDArray {
  const k = indices.ndim;
  const b = g.before.length;
  const K = shapeSize(indices.shape);
  // source [...before, ...indices, ...after] as rows [K, R] in the target rows' column order.
  const srcOrder = [...Array.from({ length: k }, (_, i) => b + i), ...Array.from({ length: b }, (_, i) => i), ...g.after.map((_, i) => b + k + i)];
  const srcMoved = source.permute(srcOrder);
  const srcRows0 = srcMoved.reshape([K, -1]);
  srcMoved.dispose();
  // Kernel operands never alias the rows they write: copies of a source or indices in target's buffer.
  const srcRows = srcRows0.buffer === target.buffer ? srcRows0.clone() : srcRows0.compact();
  srcRows0.dispose();
  const flat0 = flatIndices(indices);
  const flat = flat0.buffer === target.buffer ? flat0.clone() : flat0;
  if (flat !== flat0) flat0.dispose();
  const moved = target.permute(g.front);
  const rows = rowsOf(target, g);
  let updated: NDArray | undefined;
  try {
    const R = rows.shape[1];
    if (backend.scatterAddRows) {
      if (K * R > 0) backend.scatterAddRows(srcRows.buffer, flat.buffer, rows.buffer, g.n, R, K);
      if (rows.buffer === target.buffer) {
        target.noteWrite(op);
        return target;
      }
    } else {
      updated = scatterAddRowsUnfused(rows, flat, srcRows);
    }
    // Rows that are a copy (the kernel wrote into it) or the composition's sum: one write back.
    const back = (updated ?? rows).reshape(moved.shape);
    try {
      moved.set([], back);
    } finally {
      back.dispose();
    }
    return target;
  } finally {
    updated?.dispose();
    rows.dispose();
    moved.dispose();
    flat.dispose();
    srcRows.dispose();
  }
}

/** Flat positions are float32 values: exact integers up to 2^24. */
export const MAX_FLAT_GATHER = 2 ** 24;

// Built on first use: this module and program.ts import each other through ndarray.ts.
let flatProgram: ElementwiseProgram | undefined;
/** base + i * stride where i is an integer in [0, n), else -1. */
function flatPositions(): ElementwiseProgram {
  flatProgram ??= defineProgram(2, 2, ([i, base], [n, stride]) => isRowIndexValue(i, n).select(base.add(i.mul(stride)), -1));
  return flatProgram;
}

/**
 * The row-major positions, in an array of `shape`, that torch.gather's `index` addresses along
 * `axis`: for each element of index (which has shape's rank and its sizes outside `axis`), its own
 * multi-index with the axis coordinate replaced by the index value; -1 where that value is not an
 * integer in [0, shape[axis]). A new [index.size] array, for gatherRows over the array seen as
 * [size, 1] (so gather's forward is a row lookup and its backward a scatter-add). Needs
 * shapeSize(shape) <= MAX_FLAT_GATHER.
 */
export function flatIndicesAlong(shape: readonly number[], axis: number, index: NDArray): NDArray {
  const op = 'gather';
  sameBackend(op, index);
  const g = geometry(op, shape, axis);
  if (index.ndim !== shape.length || index.shape.some((d, i) => i !== g.axis && d !== shape[i])) {
    fail(op, `index of shape ${formatShape(index.shape)} must have the rank of x ${formatShape(shape)} and its sizes outside axis ${g.axis}`);
  }
  if (shapeSize(shape) > MAX_FLAT_GATHER) fail(op, `x has ${shapeSize(shape)} elements; gather addresses them by float32 flat positions, exact up to ${MAX_FLAT_GATHER} (index a slice at a time)`);
  const strides = compactStrides(shape);
  // Each index element's position with its axis coordinate at 0, walked in row-major order.
  const base = new Float32Array(index.size);
  const at = new Array<number>(index.ndim).fill(0);
  let pos = 0;
  for (let p = 0; p < base.length; p++) {
    base[p] = pos;
    for (let d = index.ndim - 1; d >= 0; d--) {
      if (d === g.axis) {
        if (++at[d] < index.shape[d]) break;
        at[d] = 0;
        continue;
      }
      pos += strides[d];
      if (++at[d] < index.shape[d]) break;
      pos -= strides[d] * at[d];
      at[d] = 0;
    }
  }
  const baseArray = NDArray.fromData(base, index.shape, index.backend, op);
  try {
    const [flat] = elementwise(flatPositions(), [index, baseArray], [shape[g.axis], strides[g.axis]]);
    try {
      return flat.reshape([-1]);
    } finally {
      flat.dispose();
    }
  } finally {
    baseArray.dispose();
  }
}

/**
 * torch.gather: out[..., i, ...] = x[..., index[..., i, ...], ...] along `axis`, where index has
 * x's rank and x's sizes on every other axis (the result has index's shape). An invalid index (not
 * an integer in [0, x.shape[axis])) gives `missing` (default NaN). One program for the positions,
 * one gatherRows launch.
 */
export function gather(x: NDArray, axis: number, index: NDArray, options?: IndexSelectOptions): NDArray {
  const op = 'gather';
  sameBackend(op, x, index);
  const opts = checkOptions(op, options);
  const flat = flatIndicesAlong(x.shape, axis, index);
  const column = x.reshape([-1, 1]);
  try {
    const picked = indexSelect(column, 0, flat, opts);
    try {
      return picked.reshape(index.shape);
    } finally {
      picked.dispose();
    }
  } finally {
    column.dispose();
    flat.dispose();
  }
}

/** gatherRows as a one-hot matmul (exported for the conformance kit): [K, R] from rows [n, R]. */
export function gatherRowsUnfused(rows: NDArray, flat: NDArray, missing: number): NDArray {
  const hot = oneHot(flat, rows.shape[0]);
  try {
    const product = hot.matmul(rows);
    const hits = hot.sum(-1, true);
    try {
      return hits.where(product, missing);
    } finally {
      product.dispose();
      hits.dispose();
    }
  } finally {
    hot.dispose();
  }
}

/** rows + (one-hot of the indices)^T @ src: scatterAddRows' sum as a new array [n, R]. */
function scatterAddRowsUnfused(rows: NDArray, flat: NDArray, src: NDArray): NDArray {
  const hot = oneHot(flat, rows.shape[0]);
  const hotT = hot.transpose();
  try {
    const added = hotT.matmul(src);
    try {
      return rows.add(added);
    } finally {
      added.dispose();
    }
  } finally {
    hotT.dispose();
    hot.dispose();
  }
}
