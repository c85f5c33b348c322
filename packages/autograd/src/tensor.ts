import {
  arange as ndArange,
  array as ndArray,
  checkBoolean,
  checkDType,
  checkOptions,
  describeValue,
  eye as ndEye,
  fail,
  keep,
  formatShape,
  full as ndFull,
  NDArray,
  OWNED_ARRAYS,
  DEPENDENCIES,
  ON_KEPT,
  trackWith,
  untrack,
  rand as ndRand,
  randn as ndRandn,
  type Backend,
  type Disposable,
  type Generator,
  type HasOwnedArrays,
  type Index,
  type NestedArray,
  type Shape,
} from '@needle/ndarray';
import { isGradEnabled } from './grad-mode';
import type { OpName } from './optable';
import * as F from './functions';
// A cycle (engine imports Tensor), like the one with functions.ts: safe because both sides use the
// other's exports only when called, never while the modules load.
import { backward as runBackward } from './engine';

/** A number or a tensor: what binary ops accept on either side. */
export type TensorLike = Tensor | number;

/** The op that produced a tensor and what it needs for the backward pass. */
export interface GraphNode {
  readonly op: OpName;
  readonly inputs: readonly Tensor[];
  readonly attrs: unknown;
  /** The arrays the op's backward reads (`OpDef.saves`) and their versions, when recorded. */
  readonly saved: readonly NDArray[];
  readonly versions: readonly number[];
}

export interface TensorOptions {
  requiresGrad?: boolean;
  /** Backend instance or registered name (default: the default backend). */
  backend?: Backend | string;
}

/**
 * A differentiable array: its realized data (an NDArray on some backend), whether it requires grad,
 * its accumulated `.grad`, and the op and inputs that made it.
 *
 * Ownership (README, "Memory"): every Tensor holds exactly one reference to its NDArray. Leaves
 * (creation helpers, results computed under `noGrad`) belong to you. Results of ops run with grad
 * enabled are graph intermediates: `backward()` disposes the ones reachable from the tensor it was
 * called on (except that tensor) unless asked to retain the graph, and disposing a tensor releases the
 * intermediates it was computed from that nothing else reads (reference counts on the graph).
 */
export class Tensor implements HasOwnedArrays, Disposable {
  private _data: NDArray;
  private _requiresGrad: boolean;
  private _grad: Tensor | null = null;
  private _disposed = false;
  private _releasedBy: string | undefined;
  /** @internal The producing op, or null for a leaf (or once the graph was released). */
  _node: GraphNode | null;
  /** @internal Produced with grad enabled, so owned by the graph that consumes it. */
  _intermediate: boolean;
  /** @internal Held as some tensor's `.grad`: graph release leaves its data alone. */
  _pinned = false;
  /** @internal backward() released this tensor's graph (a second pass needs retainGraph). */
  _graphFreed = false;
  /** @internal How many live graph nodes (and detached views) read this tensor. */
  _consumers = 0;
  /**
   * @internal Handed to you as the result of a scope (Module.call, tidy, scope().end): reference
   * counting leaves it alone; only dispose() or a backward through it releases it.
   */
  _kept = false;
  /** @internal For a detach() of an intermediate: the tensor it came from, which it keeps alive. */
  _source: Tensor | null = null;

  /**
   * Low level: wrap an NDArray, taking over the caller's reference to it. Most code uses the
   * creation helpers (`tensor`, `zeros`, `randn`, ...) instead.
   */
  constructor(data: NDArray, options: { requiresGrad?: boolean } = {}) {
    if (!(data instanceof NDArray)) fail('Tensor', `expected an NDArray, got ${describeValue(data)}`);
    data.assertLive('Tensor');
    const o = leafOptions('Tensor', options);
    this._data = data;
    this._requiresGrad = o.requiresGrad ?? false;
    this._node = null;
    this._intermediate = false;
    trackWith(this, data);
  }

  /** @internal An op result: requires grad when recorded with a grad-requiring input. */
  static _fromOp(data: NDArray, node: GraphNode | null, requiresGrad: boolean): Tensor {
    const t = new Tensor(data, { requiresGrad });
    t._node = node;
    t._intermediate = node !== null;
    if (node) for (const i of node.inputs) i._consumers++;
    return t;
  }

  // ---- data and properties -------------------------------------------------------------------

  /** The realized NDArray. Borrowed: do not dispose it; it lives as long as the tensor. */
  get data(): NDArray {
    if (this.disposed) {
      fail('Tensor.data', this._releasedBy
        ? `tensor of shape ${formatShape(this._data.shape)} was released by ${this._releasedBy} (it was an intermediate of the graph); ${this._releasedBy === 'backward()' ? 'detach() it before backward, or pass { retainGraph: true }' : 'read or detach() it before disposing the tensors computed from it'}`
        : `tensor of shape ${formatShape(this._data.shape)} was disposed (use after dispose)`);
    }
    return this._data;
  }

  get shape(): readonly number[] {
    return this._data.shape;
  }

  get ndim(): number {
    return this._data.ndim;
  }

  get size(): number {
    return this._data.size;
  }

  get dtype(): 'float32' {
    return this._data.dtype;
  }

  get backend(): Backend {
    return this._data.backend;
  }

  /** True for tensors not produced by a recorded op (parameters, inputs, constants). */
  get isLeaf(): boolean {
    return this._node === null || !this._requiresGrad;
  }

  get requiresGrad(): boolean {
    return this._requiresGrad;
  }

  /**
   * Mark a tensor as a leaf that gradients accumulate into. Setting it on an op result without a
   * recorded gradient path turns that result into a leaf you own (like `requires_grad_()` in PyTorch).
   */
  set requiresGrad(value: boolean) {
    checkBoolean('requiresGrad', 'requiresGrad', value);
    if (this._requiresGrad === value) return;
    if (!value && this._node !== null) {
      fail('requiresGrad', `cannot switch off requiresGrad on a non-leaf tensor of shape ${formatShape(this.shape)}; use detach()`);
    }
    this._requiresGrad = value;
    // Now a leaf you own: it no longer holds what it was computed from (nor is it released with it).
    this._unlink('', false);
    this._intermediate = false;
  }

  /** Accumulated gradient (same shape), or null. */
  get grad(): Tensor | null {
    return this._grad;
  }

  /** Replace the gradient; the previous one is disposed (the tensor owns its `.grad`). */
  set grad(value: Tensor | null) {
    this._setGrad(value, true);
  }

  /** @internal Replace the gradient; the old one is disposed, or handed to its graph when still used by it. */
  _setGrad(value: Tensor | null, disposeOld: boolean): void {
    if (value === this._grad) return;
    if (value !== null) {
      if (this.disposed) fail('grad', `cannot set the gradient of a disposed tensor of shape ${formatShape(this.shape)}`);
      if (!(value instanceof Tensor)) fail('grad', `expected a Tensor or null, got ${describeValue(value)}`);
      if (value.disposed) fail('grad', `the gradient of shape ${formatShape(value.shape)} was disposed`);
      if (value.backend !== this.backend) fail('grad', `the gradient lives on backend '${value.backend.name}' and the tensor on '${this.backend.name}'`);
      if (!sameShape(value.shape, this.shape)) {
        fail('grad', `gradient of shape ${formatShape(value.shape)} does not match the tensor's shape ${formatShape(this.shape)}`);
      }
      value._pinned = true;
    }
    const old = this._grad;
    this._grad = value;
    if (old) {
      old._pinned = false;
      if (!disposeOld) old._intermediate = true;
      else if (!old.disposed) old.dispose();
    }
  }

  /** Drop the gradient (disposing it). */
  zeroGrad(): void {
    this.grad = null;
  }

  // ---- memory --------------------------------------------------------------------------------

  get disposed(): boolean {
    return this._disposed || this._data.disposed;
  }

  /**
   * Release the data and the gradient. Disposing twice throws, except after backward() released the
   * tensor: code that holds an intermediate may dispose it whether or not a backward ran.
   */
  dispose(): void {
    if (this._disposed) {
      if (this._releasedBy) return;
      fail('dispose', `tensor of shape ${formatShape(this._data.shape)} was already disposed`);
    }
    this._freeOwn();
    this._unlink(this._releasedBy ?? 'dispose() of a tensor computed from it', true);
  }

  /** @internal Called by graph release: dispose, remembering why for the error message. */
  _release(by: string): void {
    this._releasedBy = by;
    if (!this._disposed) this.dispose();
  }

  /** Free this tensor's own arrays (data and grad), not the graph. */
  private _freeOwn(): void {
    this._disposed = true;
    untrack(this);
    if (!this._data.disposed) this._data.dispose();
    if (this._grad) {
      const g = this._grad;
      this._grad = null;
      g._pinned = false;
      if (!g.disposed) g.dispose();
    }
  }

  /**
   * @internal Drop the links to what this tensor was computed from (its node's inputs, the source of
   * a detach). With `cascade`, an input nothing reads any more is released when the graph owns it
   * (an intermediate, not a `.grad`, not handed to you by a scope), and so on up the graph:
   * iteratively, so a long chain (an unrolled RNN) cannot overflow the stack.
   */
  _unlink(by: string, cascade: boolean): void {
    const work: Tensor[] = [this];
    while (work.length > 0) {
      const t = work.pop()!;
      const node = t._node;
      const source = t._source;
      t._node = null;
      t._source = null;
      const drop = (i: Tensor): void => {
        i._consumers--;
        if (cascade && i._consumers <= 0 && i._intermediate && !i._pinned && !i._kept && !i._disposed) {
          i._releasedBy = by;
          i._freeOwn();
          work.push(i);
        }
      };
      if (node) for (const i of node.inputs) drop(i);
      if (source) drop(source);
    }
  }

  /**
   * @internal Hand this tensor to the graph that reads it: released with that graph (by a backward
   * or when its last consumer goes), or right away when nothing reads it.
   */
  _disown(): void {
    if (this._disposed || this._pinned) return;
    this._intermediate = true;
    this._kept = false;
    if (this._consumers <= 0) this.dispose();
  }

  /** What a scope keeps with this tensor: the graph its backward pass reads (when it has one). */
  *[DEPENDENCIES](): Iterable<unknown> {
    if (this._requiresGrad && this._node) yield* this._node.inputs;
  }

  /** A scope let this tensor survive: as its result (yours now) or as a dependency (the graph's). */
  [ON_KEPT](explicit: boolean): void {
    this._kept = explicit;
  }

  [Symbol.dispose](): void {
    if (!this._disposed) this.dispose();
  }

  /** The arrays tidy()/scope() must keep (or dispose) with this tensor: its data and its grad. */
  *[OWNED_ARRAYS](): Iterable<Disposable> {
    if (!this._data.disposed) yield this._data;
    if (this._grad) yield this._grad;
  }

  // ---- leaves, reading back ------------------------------------------------------------------

  /**
   * A new leaf sharing this tensor's storage (a view: no copy), cut from the graph. Detaching a graph
   * intermediate hands the intermediate over to the new tensor, as `h = h.detach()` does in PyTorch:
   * the intermediate lives while the detached tensor does, and the detached tensor is itself released
   * with the graph of a later backward that reads it (a hidden state carried between truncated-BPTT
   * steps frees itself). Otherwise, and until such a backward, it is yours to dispose.
   */
  detach(): Tensor {
    const d = this.data;
    const t = new Tensor(d.view(d.shape, d.strides, d.offset));
    if (this._intermediate && !this._pinned) {
      t._intermediate = true;
      t._source = this;
      this._consumers++;
      this._kept = false;
    }
    return t;
  }

  /** @internal A plain leaf view of the storage that takes nothing over (for library code). */
  _leafView(): Tensor {
    const d = this.data;
    return new Tensor(d.view(d.shape, d.strides, d.offset));
  }

  /**
   * Write `value` into this tensor's storage in place (broadcasting), e.g. an optimizer update.
   * Only for tensors that are not graph intermediates, whose old values a backward pass may need.
   */
  assign(value: Tensor | NDArray | number): this {
    if (this._node !== null && this._requiresGrad) {
      fail('assign', `cannot write in place into a graph intermediate of shape ${formatShape(this.shape)}; assign to leaves only`);
    }
    if (this._requiresGrad && isGradEnabled()) {
      // PyTorch refuses this too: recorded ops may have read the old value, and the write itself
      // would have no gradient. Updates (optimizers, loadStateDict) run under noGrad.
      fail('assign', `a leaf tensor that requires grad (shape ${formatShape(this.shape)}) is being used in an in-place operation while grad mode is on; wrap the update in noGrad(() => ...)`);
    }
    const v = value instanceof Tensor ? value.data : value;
    this.data.assign(v);
    return this;
  }

  /**
   * Make `data` this leaf's storage in place of the current one, which is disposed (PyTorch's
   * `t.data = ...`): the Tensor object stays the same, so whoever holds it (a Module, an optimizer)
   * sees the new storage, e.g. after moving it to another backend. Takes over the caller's
   * reference to `data` and exempts it from the open tidy/scope (the tensor owns it now). The
   * shape must not change; the gradient is left as it is.
   */
  replaceData(data: NDArray): this {
    if (this._node !== null) fail('replaceData', `tensor of shape ${formatShape(this.shape)} was computed by an op; only leaves can take new storage`);
    if (!(data instanceof NDArray)) fail('replaceData', `expected an NDArray, got ${typeof data}`);
    data.assertLive('replaceData');
    const old = this.data;
    if (!sameShape(data.shape, old.shape)) fail('replaceData', `new data of shape ${formatShape(data.shape)} does not match the tensor's shape ${formatShape(old.shape)}`);
    if (data === old) return this;
    keep(data);
    this._data = data;
    old.dispose();
    return this;
  }

  /** The elements in row-major order (async: works on every backend). */
  async toArray(): Promise<Float32Array> {
    return this.data.toArray();
  }

  /** Nested JS arrays (a number for a 0-d tensor). */
  async toNested(): Promise<NestedArray> {
    return this.data.toNested();
  }

  /** The single element of a one-element tensor. */
  async item(): Promise<number> {
    if (this.size !== 1) fail('item', `expected a tensor with one element, got shape ${formatShape(this.shape)}`);
    return this.data.item();
  }

  /** Copy to another backend as a new leaf (same requiresGrad). */
  async to(backend: Backend | string, options: { requiresGrad?: boolean } = {}): Promise<Tensor> {
    const moved = await this.data.to(backend);
    return new Tensor(moved, { requiresGrad: options.requiresGrad ?? this._requiresGrad });
  }

  /** Reverse-mode differentiation from this tensor; see `backward` in the package index. */
  backward(grad?: Tensor | NDArray | number, options: { retainGraph?: boolean; createGraph?: boolean } = {}): void {
    runBackward(this, grad, options);
  }

  toString(): string {
    const flags = this._requiresGrad ? ', requiresGrad' : '';
    return `Tensor(shape=${formatShape(this._data.shape)}${flags}${this.disposed ? ', disposed' : ''})`;
  }

  // ---- op methods (thin wrappers over ./functions) -------------------------------------------

  add(other: TensorLike): Tensor { return F.add(this, other); }
  sub(other: TensorLike): Tensor { return F.sub(this, other); }
  mul(other: TensorLike): Tensor { return F.mul(this, other); }
  div(other: TensorLike): Tensor { return F.div(this, other); }
  pow(exponent: TensorLike): Tensor { return F.pow(this, exponent); }
  maximum(other: TensorLike): Tensor { return F.maximum(this, other); }
  neg(): Tensor { return F.neg(this); }
  exp(): Tensor { return F.exp(this); }
  log(): Tensor { return F.log(this); }
  sqrt(): Tensor { return F.sqrt(this); }
  tanh(): Tensor { return F.tanh(this); }
  sigmoid(): Tensor { return F.sigmoid(this); }
  relu(): Tensor { return F.relu(this); }
  gelu(options: { approximate?: F.GeluApproximate } = {}): Tensor { return F.gelu(this, options); }
  erf(): Tensor { return F.erf(this); }
  abs(): Tensor { return F.abs(this); }

  reshape(shape: Shape): Tensor { return F.reshape(this, shape); }
  permute(axes: readonly number[]): Tensor { return F.permute(this, axes); }
  transpose(axis0 = -2, axis1 = -1): Tensor { return F.transpose(this, axis0, axis1); }
  broadcastTo(shape: Shape): Tensor { return F.broadcastTo(this, shape); }
  get(...index: Index[]): Tensor { return F.getitem(this, ...index); }
  flip(axes?: number | readonly number[]): Tensor { return F.flip(this, axes); }
  squeeze(axes?: number | readonly number[]): Tensor { return F.squeeze(this, axes); }
  expandDims(axis: number): Tensor { return F.expandDims(this, axis); }
  flatten(startAxis = 0, endAxis = -1): Tensor { return F.flatten(this, startAxis, endAxis); }

  sum(axis?: number | readonly number[], keepdims = false): Tensor { return F.sum(this, axis, keepdims); }
  mean(axis?: number | readonly number[], keepdims = false): Tensor { return F.mean(this, axis, keepdims); }
  max(axis?: number | readonly number[], keepdims = false): Tensor { return F.max(this, axis, keepdims); }
  logsumexp(axis?: number | readonly number[], keepdims = false): Tensor { return F.logsumexp(this, axis, keepdims); }
  softmax(axis = -1): Tensor { return F.softmax(this, axis); }
  logSoftmax(axis = -1): Tensor { return F.logSoftmax(this, axis); }
  matmul(other: Tensor): Tensor { return F.matmul(this, other); }
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/**
 * A tensor that never requires grad and belongs to the graph consuming it: with grad enabled it is
 * released by `backward()` together with the intermediates (masks, one-hot targets, shifts inside
 * composite ops). Takes over the reference to `data`.
 */
export function constant(data: NDArray): Tensor {
  const t = new Tensor(data);
  t._intermediate = isGradEnabled();
  return t;
}

// ---- creation helpers (mirroring @needle/ndarray) ----------------------------------------------

/**
 * A leaf tensor from nested arrays, a typed array (with `shape`), a number, or an NDArray (shared,
 * not copied: the tensor takes its own reference, the NDArray stays yours).
 */
export function tensor(
  data: NestedArray | Float32Array | readonly number[] | NDArray,
  options: TensorOptions & { shape?: Shape } = {},
): Tensor {
  options = leafOptions('tensor', options);
  if (data instanceof NDArray) {
    data.assertLive('tensor');
    const v = options.shape ? data.reshape(options.shape) : data.view(data.shape, data.strides, data.offset);
    return new Tensor(v, options);
  }
  return new Tensor(ndArray(data as NestedArray, { backend: options.backend, shape: options.shape }), options);
}

export function full(shape: Shape, value: number, options: TensorOptions = {}): Tensor {
  const o = leafOptions('full', options);
  return new Tensor(ndFull(shape, value, { backend: o.backend }), o);
}

export function zeros(shape: Shape, options: TensorOptions = {}): Tensor {
  return full(shape, 0, options);
}

export function ones(shape: Shape, options: TensorOptions = {}): Tensor {
  return full(shape, 1, options);
}

/** Same shape and backend as `t` (a new leaf). */
export function fullLike(t: Tensor, value: number, options: { requiresGrad?: boolean } = {}): Tensor {
  if (!(t instanceof Tensor)) fail('fullLike', `expected a Tensor, got ${describeValue(t)}`);
  return full(t.shape, value, { ...options, backend: t.backend });
}

export function zerosLike(t: Tensor, options: { requiresGrad?: boolean } = {}): Tensor {
  return fullLike(t, 0, options);
}

export function onesLike(t: Tensor, options: { requiresGrad?: boolean } = {}): Tensor {
  return fullLike(t, 1, options);
}

export function arange(start: number, stop?: number, step = 1, options: TensorOptions = {}): Tensor {
  const o = leafOptions('arange', options);
  return new Tensor(ndArange(start, stop, step, { backend: o.backend }), o);
}

export function eye(n: number, m = n, options: TensorOptions = {}): Tensor {
  const o = leafOptions('eye', options);
  return new Tensor(ndEye(n, m, { backend: o.backend }), o);
}

export interface RandomTensorOptions extends TensorOptions {
  generator?: Generator;
}

/** Uniform in [low, high), drawn on the host from the seeded generator. */
export function rand(shape: Shape, options: RandomTensorOptions & { low?: number; high?: number } = {}): Tensor {
  const o = leafOptions('rand', options);
  return new Tensor(ndRand(shape, { backend: o.backend, generator: o.generator, low: o.low, high: o.high }), o);
}

/** Normal(mean, std), drawn on the host from the seeded generator. */
export function randn(shape: Shape, options: RandomTensorOptions & { mean?: number; std?: number } = {}): Tensor {
  const o = leafOptions('randn', options);
  return new Tensor(ndRandn(shape, { backend: o.backend, generator: o.generator, mean: o.mean, std: o.std }), o);
}

/**
 * A leaf's options, checked before anything is allocated (an error after the array exists would
 * leak it): an object, a boolean requiresGrad, and no dtype but float32 (storage is float32 only).
 */
function leafOptions<O extends { requiresGrad?: boolean }>(op: string, options: O | undefined): O {
  const o = checkOptions(op, options);
  if (o.requiresGrad !== undefined) checkBoolean(op, 'requiresGrad', o.requiresGrad);
  checkDType(op, (o as { dtype?: unknown }).dtype);
  return o;
}
