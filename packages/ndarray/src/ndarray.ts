import { canReadSync, type Backend, type BinaryOp, type DeviceBuffer, type StridedLayout, type UnaryOp } from './backend';
import { checkInteger, describeValue } from './check';
import { fail, formatShape, NeedleError } from './errors';
import { ARM_FINALIZER, registerFinalizer, Storage, track, unregisterFinalizer, untrack } from './memory';
import { resolveBackend } from './registry';
import {
  broadcastShapes,
  checkShape,
  compactStrides,
  describeShape,
  isCompactLayout,
  normalizeAxes,
  normalizeAxis,
  shapeSize,
  shapesEqual,
  type Shape,
} from './shape';
import { parseIndex, type Index } from './indexing';
import * as elementwise from './ops/elementwise';
import * as reduce from './ops/reduce';
import * as linalg from './ops/matmul';
import * as join from './ops/join';

export type DType = 'float32';
export type NestedArray = number | NestedArray[];
export type ArrayLike = NDArray | number;

/**
 * An n-dimensional array: a strided view (shape, strides, offset) of a reference-counted buffer on
 * some backend. Views (reshape, permute, broadcastTo, slicing, flip, ...) share the buffer and cost
 * no copy; every other op returns a new compact array.
 */
export class NDArray {
  readonly shape: readonly number[];
  readonly strides: readonly number[];
  readonly offset: number;
  readonly dtype: DType = 'float32';
  readonly backend: Backend;
  private readonly storage: Storage;
  private _disposed = false;
  /** Whether the GC safety net watches this array (only once no scope holds it, see memory.ts). */
  private finalizerArmed = false;

  /**
   * Low level: wrap a storage. Takes over one reference to `storage` (callers retain first when
   * sharing). Most code uses the creation functions or `NDArray.empty`.
   */
  constructor(storage: Storage, shape: readonly number[], strides: readonly number[], offset: number) {
    this.storage = storage;
    this.backend = storage.backend;
    this.shape = Object.freeze([...shape]);
    this.strides = Object.freeze([...strides]);
    this.offset = offset;
    if (!track(this)) this[ARM_FINALIZER]();
  }

  /** Put this array under the GC safety net (once; see memory.ts). */
  [ARM_FINALIZER](): void {
    if (this.finalizerArmed || this._disposed) return;
    this.finalizerArmed = true;
    registerFinalizer(this, this.storage);
  }

  /**
   * A new compact array with unspecified contents. `op` names the caller in errors (a backend that
   * cannot allocate the size is reported as that op's error, not as the backend's own exception).
   */
  static empty(shape: Shape, backend?: Backend | string, op = 'empty'): NDArray {
    const b = resolveBackend(backend);
    const s = checkShape(op, shape);
    const size = shapeSize(s);
    let buffer: DeviceBuffer;
    try {
      buffer = b.alloc(size);
    } catch (error) {
      if (error instanceof NeedleError) throw error;
      return fail(op, `cannot allocate an array of shape ${formatShape(s)} (${size} float32 elements) on backend '${b.name}': ${(error as Error).message}`);
    }
    return new NDArray(new Storage(b, buffer), s, compactStrides(s), 0);
  }

  /** A new compact array holding `data` (length must match the shape). */
  static fromData(data: Float32Array, shape: Shape, backend?: Backend | string, op = 'fromData'): NDArray {
    if (!(data instanceof Float32Array)) fail(op, `expected the data as a Float32Array, got ${describeValue(data)}`);
    const s = checkShape(op, shape);
    if (data.length !== shapeSize(s)) {
      fail(op, `data has ${data.length} elements but shape ${formatShape(s)} needs ${shapeSize(s)}`);
    }
    const out = NDArray.empty(s, backend, op);
    out.backend.write(out.buffer, data);
    return out;
  }

  // ---- basic properties ------------------------------------------------------------------------

  get ndim(): number {
    return this.shape.length;
  }

  get size(): number {
    return shapeSize(this.shape);
  }

  get disposed(): boolean {
    return this._disposed;
  }

  /** The backend buffer (shared with every view of it). */
  get buffer(): DeviceBuffer {
    this.assertLive('buffer');
    return this.storage.buffer;
  }

  /**
   * How many in-place writes (set/assign/fill) the buffer has seen, counted across every view of it.
   * Autograd compares it to catch arrays modified after a graph saved them.
   */
  get version(): number {
    return this.storage.version;
  }

  /** The op of the latest in-place write into the buffer ('' when none). */
  get lastWriter(): string {
    return this.storage.lastWriter;
  }

  /** The strided layout a compact/setitem kernel needs. */
  get layout(): StridedLayout {
    return { shape: this.shape, strides: this.strides, offset: this.offset };
  }

  /** Row-major strides (any offset). */
  get isContiguous(): boolean {
    return isCompactLayout(this.shape, this.strides);
  }

  /** Contiguous and starting at element 0: what kernels take as input with no copy. */
  get isKernelReady(): boolean {
    return this.offset === 0 && this.isContiguous;
  }

  /** Throw a clear error when the array was disposed. */
  assertLive(op: string): void {
    if (this._disposed || this.storage.released) {
      fail(op, `array of shape ${formatShape(this.shape)} was disposed (use after dispose)`);
    }
  }

  // ---- memory ----------------------------------------------------------------------------------

  /** Release this array's reference to its buffer. Disposing twice throws. */
  dispose(): void {
    if (this._disposed) fail('dispose', `array of shape ${formatShape(this.shape)} was already disposed`);
    this._disposed = true;
    if (this.finalizerArmed) unregisterFinalizer(this);
    untrack(this);
    this.storage.release();
  }

  [Symbol.dispose](): void {
    if (!this._disposed) this.dispose();
  }

  /** A view with a new shape/strides/offset over the same buffer. */
  view(shape: Shape, strides: readonly number[], offset: number = this.offset): NDArray {
    this.assertLive('view');
    this.storage.retain();
    return new NDArray(this.storage, shape, strides, offset);
  }

  // ---- views -----------------------------------------------------------------------------------

  /**
   * Same data, new shape (one -1 is inferred). A view whenever the strides allow it (always for
   * contiguous arrays); otherwise a compact copy.
   */
  reshape(shape: Shape): NDArray {
    this.assertLive('reshape');
    const target = inferShape('reshape', this.shape, shape);
    if (this.isContiguous || this.size === 0) return this.view(target, compactStrides(target));
    const strides = reshapeStrides(this.shape, this.strides, target);
    if (strides) return this.view(target, strides);
    const c = this.compact();
    try {
      return c.reshape(target);
    } finally {
      c.dispose();
    }
  }

  /** Reorder axes: out.shape[i] = shape[axes[i]]. */
  permute(axes: readonly number[]): NDArray {
    this.assertLive('permute');
    if (!Array.isArray(axes)) fail('permute', `expected the axes as an array of integers, got ${describeValue(axes)}`);
    if (axes.length !== this.ndim) {
      fail('permute', `got ${axes.length} axes ${JSON.stringify(axes)} for an array of shape ${formatShape(this.shape)}`);
    }
    const norm = axes.map((a) => normalizeAxis('permute', a, this.ndim));
    if (new Set(norm).size !== norm.length) fail('permute', `axes ${JSON.stringify(axes)} repeat an axis`);
    return this.view(norm.map((a) => this.shape[a]), norm.map((a) => this.strides[a]));
  }

  /** Swap two axes (default: the last two, as needle does). */
  transpose(axis0 = -2, axis1 = -1): NDArray {
    if (this.ndim < 2 && axis0 === -2 && axis1 === -1) return this.view(this.shape, this.strides);
    const a0 = normalizeAxis('transpose', axis0, this.ndim);
    const a1 = normalizeAxis('transpose', axis1, this.ndim);
    const axes = Array.from({ length: this.ndim }, (_, i) => i);
    axes[a0] = a1;
    axes[a1] = a0;
    return this.permute(axes);
  }

  /** Broadcast to a larger shape with stride-0 axes (NumPy rules). */
  broadcastTo(shape: Shape): NDArray {
    this.assertLive('broadcastTo');
    const target = checkShape('broadcastTo', shape);
    if (target.length < this.ndim) {
      fail('broadcastTo', `cannot broadcast shape ${formatShape(this.shape)} to ${formatShape(target)}: target has fewer dimensions`);
    }
    const lead = target.length - this.ndim;
    const strides = target.map((d, i) => {
      if (i < lead) return 0;
      const own = this.shape[i - lead];
      if (own === d) return this.strides[i - lead];
      if (own === 1) return 0;
      return fail('broadcastTo', `cannot broadcast shape ${formatShape(this.shape)} to ${formatShape(target)} (axis ${i}: ${own} vs ${d})`);
    });
    return this.view(target, strides);
  }

  /**
   * NumPy-style indexing, always a view. Each index is an integer (drops the axis; negative counts
   * from the end), a slice ('1:5:2', ':', '::-1', or {start, stop, step}), null (new axis) or '...'.
   */
  get(...index: Index[]): NDArray {
    this.assertLive('get');
    const { shape, strides, offset } = parseIndex('get', this.shape, this.strides, this.offset, index);
    return this.view(shape, strides, offset);
  }

  /** Reverse the order along the given axes (default all): a negative-stride view. */
  flip(axes?: number | readonly number[]): NDArray {
    this.assertLive('flip');
    const list = normalizeAxes('flip', axes, this.ndim);
    const strides = [...this.strides];
    let offset = this.offset;
    for (const a of list) {
      if (this.shape[a] > 0) offset += (this.shape[a] - 1) * strides[a];
      strides[a] = -strides[a];
    }
    return this.view(this.shape, strides, offset);
  }

  /** Insert a size-1 axis at `axis` (-1 appends). */
  expandDims(axis: number): NDArray {
    this.assertLive('expandDims');
    const ax = normalizeAxis('expandDims', axis, this.ndim + 1);
    const shape = [...this.shape];
    const strides = [...this.strides];
    shape.splice(ax, 0, 1);
    strides.splice(ax, 0, 0);
    return this.view(shape, strides);
  }

  /** Remove size-1 axes: the given ones (error if not size 1) or all. */
  squeeze(axes?: number | readonly number[]): NDArray {
    this.assertLive('squeeze');
    const list =
      axes === undefined
        ? this.shape.flatMap((d, i) => (d === 1 ? [i] : []))
        : normalizeAxes('squeeze', axes, this.ndim);
    for (const a of list) {
      if (this.shape[a] !== 1) fail('squeeze', `axis ${a} of shape ${formatShape(this.shape)} has size ${this.shape[a]}, expected 1`);
    }
    const keepAxis = (i: number) => !list.includes(i);
    return this.view(this.shape.filter((_, i) => keepAxis(i)), this.strides.filter((_, i) => keepAxis(i)));
  }

  /**
   * A raw strided view over this array's buffer (NumPy's as_strided): strides and offset are in
   * elements of the underlying buffer. Checked against the buffer's bounds. Used for im2col windows.
   */
  asStrided(shape: Shape, strides: readonly number[], offset: number = this.offset): NDArray {
    this.assertLive('asStrided');
    const s = checkShape('asStrided', shape);
    if (!Array.isArray(strides) || strides.some((st) => !Number.isInteger(st))) {
      fail('asStrided', `strides must be an array of integers (in elements), got ${Array.isArray(strides) ? describeShape(strides) : describeValue(strides)}`);
    }
    if (strides.length !== s.length) fail('asStrided', `shape ${formatShape(s)} and strides ${formatShape(strides)} differ in length`);
    checkInteger('asStrided', 'offset', offset);
    if (s.every((d) => d > 0)) {
      let lo = offset;
      let hi = offset;
      s.forEach((d, i) => {
        const reach = (d - 1) * strides[i];
        if (reach < 0) lo += reach;
        else hi += reach;
      });
      if (lo < 0 || hi >= this.storage.buffer.size) {
        fail('asStrided', `view shape ${formatShape(s)} strides ${formatShape(strides)} offset ${offset} reaches elements ${lo}..${hi}, outside the buffer of ${this.storage.buffer.size}`);
      }
    }
    return this.view(s, strides, offset);
  }

  /** A compact copy (or, when already kernel-ready, a cheap view: either way the caller owns it). */
  compact(): NDArray {
    this.assertLive('compact');
    if (this.isKernelReady) return this.view(this.shape, this.strides, this.offset);
    const out = NDArray.empty(this.shape, this.backend, 'compact');
    if (this.size > 0) this.backend.compact(this.storage.buffer, out.buffer, this.layout);
    return out;
  }

  /** A compact copy that never shares the buffer. */
  clone(): NDArray {
    this.assertLive('clone');
    const out = NDArray.empty(this.shape, this.backend, 'clone');
    if (this.size > 0) this.backend.compact(this.storage.buffer, out.buffer, this.layout);
    return out;
  }

  // ---- setitem ---------------------------------------------------------------------------------

  /**
   * Write into the view selected by `index` (same syntax as `get`; [] or ':' for everything).
   * An array value is broadcast to the view's shape. Writes are visible through every view of the buffer.
   */
  set(index: Index | Index[], value: ArrayLike): this {
    return this.setitem('set', Array.isArray(index) ? index : [index], value);
  }

  /** Overwrite every element with `value` (an array is broadcast to this shape): `set([], value)`. */
  assign(value: ArrayLike): this {
    return this.setitem('assign', [], value);
  }

  /** Overwrite every element with one number. */
  fill(value: number): this {
    return this.setitem('fill', [], value);
  }

  /**
   * @internal Record an in-place write that a kernel outside `setitem` makes into this array's buffer
   * (an elementwise program's `out`), so version counters see it like any other.
   */
  noteWrite(op: string): void {
    this.assertLive(op);
    this.storage.modified(op);
  }

  /** The one in-place write path: every entry point bumps the version once, named by its op. */
  private setitem(op: string, idx: Index[], value: ArrayLike): this {
    this.assertLive(op);
    const target = parseIndex(op, this.shape, this.strides, this.offset, idx);
    if (typeof value !== 'number' && !(value instanceof NDArray)) {
      fail(op, `expected the value as a number or an NDArray, got ${describeValue(value)}`);
    }
    if (shapeSize(target.shape) === 0) return this;
    if (typeof value === 'number') {
      this.storage.modified(op);
      this.backend.scalarSetitem(value, this.storage.buffer, target);
      return this;
    }
    value.assertLive(op);
    sameBackend(op, this, value);
    if (!isBroadcastable(value.shape, target.shape)) {
      fail(op, `value of shape ${formatShape(value.shape)} cannot be broadcast to the selected view of shape ${formatShape(target.shape)}`);
    }
    const b = value.broadcastTo(target.shape);
    if (!b.isKernelReady) {
      // One strided copy launch where the backend can (the version bump is elementwise's noteWrite).
      const dst = this.view(target.shape, target.strides, target.offset);
      let copied: boolean;
      try {
        copied = elementwise.copyInto(b, dst, op);
      } catch (e) {
        b.dispose();
        throw e;
      } finally {
        dst.dispose();
      }
      if (copied) {
        b.dispose();
        return this;
      }
    }
    // A value that views this very buffer must be copied first, or the kernel would read elements it
    // has already overwritten (NumPy semantics: a[1:] = a[:-1] shifts).
    const src = value.storage === this.storage ? b.clone() : b.compact();
    b.dispose();
    this.storage.modified(op);
    try {
      this.backend.ewiseSetitem(src.buffer, this.storage.buffer, target);
    } finally {
      src.dispose();
    }
    return this;
  }

  // ---- reading back ----------------------------------------------------------------------------

  /** The elements in row-major order. */
  async toArray(): Promise<Float32Array> {
    this.assertLive('toArray');
    const c = this.compact();
    try {
      return await this.backend.read(c.buffer, c.size);
    } finally {
      c.dispose();
    }
  }

  /** The elements, synchronously, where the backend can read synchronously (CPU, WASM). */
  toArraySync(): Float32Array {
    this.assertLive('toArraySync');
    const b = this.backend;
    if (!canReadSync(b)) {
      fail('toArraySync', `backend '${b.name}' cannot read synchronously; use 'await array.toArray()'`);
    }
    const c = this.compact();
    try {
      return b.readSync(c.buffer, c.size);
    } finally {
      c.dispose();
    }
  }

  /** The single element of a size-1 array. */
  async item(): Promise<number> {
    if (this.size !== 1) fail('item', `expected an array with one element, got shape ${formatShape(this.shape)}`);
    return (await this.toArray())[0];
  }

  /** Synchronous `item` (CPU, WASM). */
  itemSync(): number {
    if (this.size !== 1) fail('itemSync', `expected an array with one element, got shape ${formatShape(this.shape)}`);
    return this.toArraySync()[0];
  }

  /** Nested JS arrays (a number for a 0-d array). */
  async toNested(): Promise<NestedArray> {
    return nest(await this.toArray(), this.shape);
  }

  toNestedSync(): NestedArray {
    return nest(this.toArraySync(), this.shape);
  }

  /** Copy to another backend (async: the source may only read asynchronously). */
  async to(backend: Backend | string): Promise<NDArray> {
    const target = resolveBackend(backend);
    const data = await this.toArray();
    return NDArray.fromData(data, this.shape, target);
  }

  /** Synchronous `to`, where the source backend can read synchronously. */
  toSync(backend: Backend | string): NDArray {
    const target = resolveBackend(backend);
    return NDArray.fromData(this.toArraySync(), this.shape, target);
  }

  toString(): string {
    if (this._disposed) return `NDArray(disposed, shape=${formatShape(this.shape)})`;
    if (!canReadSync(this.backend)) return `NDArray(shape=${formatShape(this.shape)}, backend=${this.backend.name})`;
    return `NDArray(${JSON.stringify(this.toNestedSync())}, shape=${formatShape(this.shape)})`;
  }

  // ---- op methods (thin wrappers over ./ops, which hold the logic) -----------------------------

  add(other: ArrayLike): NDArray { return elementwise.binary('add', this, other); }
  sub(other: ArrayLike): NDArray { return elementwise.binary('sub', this, other); }
  mul(other: ArrayLike): NDArray { return elementwise.binary('mul', this, other); }
  div(other: ArrayLike): NDArray { return elementwise.binary('div', this, other); }
  pow(other: ArrayLike): NDArray { return elementwise.binary('pow', this, other); }
  maximum(other: ArrayLike): NDArray { return elementwise.binary('maximum', this, other); }
  minimum(other: ArrayLike): NDArray { return elementwise.binary('minimum', this, other); }
  eq(other: ArrayLike): NDArray { return elementwise.binary('eq', this, other); }
  ne(other: ArrayLike): NDArray { return elementwise.binary('ne', this, other); }
  ge(other: ArrayLike): NDArray { return elementwise.binary('ge', this, other); }
  gt(other: ArrayLike): NDArray { return elementwise.binary('gt', this, other); }
  le(other: ArrayLike): NDArray { return elementwise.binary('le', this, other); }
  lt(other: ArrayLike): NDArray { return elementwise.binary('lt', this, other); }
  neg(): NDArray { return elementwise.unary('neg', this); }
  log(): NDArray { return elementwise.unary('log', this); }
  exp(): NDArray { return elementwise.unary('exp', this); }
  tanh(): NDArray { return elementwise.unary('tanh', this); }
  sqrt(): NDArray { return elementwise.unary('sqrt', this); }
  abs(): NDArray { return elementwise.unary('abs', this); }
  sign(): NDArray { return elementwise.unary('sign', this); }

  sum(axis?: number | readonly number[], keepdims = false): NDArray { return reduce.reduceOp('sum', this, axis, keepdims); }
  max(axis?: number | readonly number[], keepdims = false): NDArray { return reduce.reduceOp('max', this, axis, keepdims); }
  min(axis?: number | readonly number[], keepdims = false): NDArray { return reduce.reduceOp('min', this, axis, keepdims); }
  mean(axis?: number | readonly number[], keepdims = false): NDArray { return reduce.mean(this, axis, keepdims); }
  argmax(axis?: number, keepdims = false): NDArray { return reduce.argReduce('argmax', this, axis, keepdims); }
  argmin(axis?: number, keepdims = false): NDArray { return reduce.argReduce('argmin', this, axis, keepdims); }

  matmul(other: NDArray, options?: linalg.MatmulOptions): NDArray { return linalg.matmul(this, other, options); }
  /** log(sum(exp(x))) over axes, computed stably (one `reduceProgram` launch where the backend has it). */
  logsumexp(axis?: number | readonly number[], keepdims = false): NDArray { return reduce.logsumexp(this, axis, keepdims); }
  where(x: ArrayLike, y: ArrayLike): NDArray { return elementwise.where(this, x, y); }

  pad(padWidth: ReadonlyArray<readonly [number, number]>, value = 0): NDArray { return join.pad(this, padWidth, value); }
  dilate(axes: number | readonly number[], dilation: number): NDArray { return join.dilate(this, axes, dilation); }
  undilate(axes: number | readonly number[], dilation: number): NDArray { return join.undilate(this, axes, dilation); }
  split(sizes: number | readonly number[], axis = 0): NDArray[] { return join.split(this, sizes, axis); }
  unstack(axis = 0): NDArray[] { return join.unstack(this, axis); }
}

// ---- helpers shared by the op modules ------------------------------------------------------------

/** Check that all arrays are live NDArrays on one backend; returns that backend. */
export function sameBackend(op: string, ...arrays: NDArray[]): Backend {
  for (const a of arrays) {
    if (!(a instanceof NDArray)) fail(op, `expected an NDArray operand, got ${describeValue(a)}`);
  }
  const b = arrays[0].backend;
  for (const a of arrays) {
    a.assertLive(op);
    if (a.backend !== b) {
      fail(op, `arrays live on different backends ('${b.name}' and '${a.backend.name}'); move one with 'await array.to(backend)'`);
    }
  }
  return b;
}

/**
 * Run `fn` with a kernel-ready version of `a` (contiguous, offset 0), compacting into a temporary
 * buffer only when needed and releasing it afterwards.
 */
export function withKernelReady<T>(a: NDArray, fn: (ready: NDArray) => T): T {
  if (a.isKernelReady) return fn(a);
  const c = a.compact();
  try {
    return fn(c);
  } finally {
    c.dispose();
  }
}

function isBroadcastable(from: Shape, to: Shape): boolean {
  if (from.length > to.length) return false;
  const lead = to.length - from.length;
  return from.every((d, i) => d === 1 || d === to[lead + i]);
}

/** Replace one -1 by the size that makes the element counts match. */
function inferShape(op: string, from: Shape, to: Shape): number[] {
  if (!Array.isArray(to)) fail(op, `expected a shape (an array of integers, one may be -1), got ${describeValue(to)}`);
  const target = [...to];
  const unknown = target.filter((d) => d === -1).length;
  if (unknown > 1) fail(op, `only one dimension may be -1, got ${formatShape(to)}`);
  for (const d of target) {
    if (d !== -1 && (!Number.isInteger(d) || d < 0)) fail(op, `shape ${describeShape(to)} must hold non-negative integers (one may be -1), got ${describeValue(d)}`);
  }
  const size = shapeSize(from);
  if (unknown === 1) {
    const known = shapeSize(target.filter((d) => d !== -1));
    if (known === 0 || size % known !== 0) fail(op, `cannot reshape array of shape ${formatShape(from)} (size ${size}) into ${formatShape(to)}`);
    target[target.indexOf(-1)] = size / known;
  }
  if (shapeSize(target) !== size) fail(op, `cannot reshape array of shape ${formatShape(from)} (size ${size}) into ${formatShape(to)}`);
  return target;
}

/**
 * Strides for viewing a non-contiguous array under a new shape without a copy, or undefined when
 * that is impossible. Groups of old axes that are mutually contiguous may be split or merged freely
 * (NumPy's attempt_nocopy_reshape).
 */
function reshapeStrides(oldShape: Shape, oldStrides: readonly number[], newShape: Shape): number[] | undefined {
  const os: number[] = [];
  const ost: number[] = [];
  oldShape.forEach((d, i) => {
    if (d !== 1) {
      os.push(d);
      ost.push(oldStrides[i]);
    }
  });
  const newStrides = new Array<number>(newShape.length).fill(0);
  let oi = 0;
  let oj = 1;
  let ni = 0;
  let nj = 1;
  while (ni < newShape.length && oi < os.length) {
    let np = newShape[ni];
    let op = os[oi];
    while (np !== op) {
      if (np < op) np *= newShape[nj++];
      else op *= os[oj++];
    }
    for (let k = oi; k < oj - 1; k++) {
      if (ost[k] !== os[k + 1] * ost[k + 1]) return undefined;
    }
    newStrides[nj - 1] = ost[oj - 1];
    for (let k = nj - 1; k > ni; k--) newStrides[k - 1] = newStrides[k] * newShape[k];
    ni = nj++;
    oi = oj++;
  }
  // Trailing size-1 axes of the new shape get any stride.
  for (let k = ni; k < newShape.length; k++) newStrides[k] = 1;
  return newStrides;
}

function nest(data: Float32Array, shape: Shape): NestedArray {
  if (shape.length === 0) return data[0];
  const build = (axis: number, start: number): NestedArray[] => {
    const n = shape[axis];
    const step = shapeSize(shape.slice(axis + 1));
    const out: NestedArray[] = [];
    for (let i = 0; i < n; i++) {
      out.push(axis === shape.length - 1 ? data[start + i] : build(axis + 1, start + i * step));
    }
    return out;
  };
  return build(0, 0);
}

export { broadcastShapes, shapesEqual };
export type { BinaryOp, UnaryOp };
