/**
 * The Backend interface: the only thing a device has to implement.
 *
 * Model: needle's device API (compact, ewise_setitem, scalar_setitem, ewise and scalar arithmetic,
 * matmul, reduce_sum, reduce_max, fill). Every kernel writes into an `out` buffer the caller
 * allocated. Buffers are opaque handles owned by the backend and sized in elements (float32 storage).
 *
 * Contract for all kernels:
 * - Inputs are *compact*: `size` consecutive elements starting at element 0 of the buffer. Only
 *   `compact`, `ewiseSetitem` and `scalarSetitem` see shape/strides/offset; views, broadcasting,
 *   transposes and slicing are stride arithmetic in NDArray and never reach a kernel otherwise.
 * - `out` may alias an input only for the elementwise families (ewise, scalar, unary); the frontend
 *   never relies on aliasing for matmul, reduce or compact.
 * - `free` may be called while kernels that use the buffer are still enqueued (the frontend frees
 *   temporaries right after enqueueing): an asynchronous backend keeps the memory alive until they ran.
 * - Writes are synchronous enqueues; reads are async (`read`) everywhere, sync (`readSync`) only
 *   where the device can.
 *
 * Adding a kernel family means adding its op name to one of the unions below: every backend's switch
 * over that union ends in `satisfies never`, so a missing case does not compile.
 */

/** An opaque buffer handle. Backends subclass or brand it; only the owning backend looks inside. */
export interface DeviceBuffer {
  /** Capacity in elements. */
  readonly size: number;
}

/** Elementwise binary ops: `out[i] = a[i] op b[i]` (ewise) or `a[i] op scalar` (scalar). */
export const BINARY_OPS = [
  'add', 'sub', 'mul', 'div', 'pow', 'maximum', 'minimum',
  'eq', 'ne', 'ge', 'gt', 'le', 'lt',
] as const;
export type BinaryOp = (typeof BINARY_OPS)[number];

/** Elementwise unary ops: `out[i] = op(a[i])`. */
export const UNARY_OPS = ['neg', 'log', 'exp', 'tanh', 'sqrt', 'abs', 'sign'] as const;
export type UnaryOp = (typeof UNARY_OPS)[number];

/**
 * Reductions over contiguous blocks: `out[j] = op(a[j*reduceSize .. (j+1)*reduceSize))`.
 * argmax/argmin return the index of the first extreme element within the block, as float32.
 */
export const REDUCE_OPS = ['sum', 'max', 'min', 'argmax', 'argmin'] as const;
export type ReduceOp = (typeof REDUCE_OPS)[number];

/**
 * A (batched, optionally transposed) matrix product, all operands compact:
 * for each batch index t < batch:
 *   out[t] (m x n) = opA(A_t) (m x k) @ opB(B_t) (k x n)
 * where A_t starts at element `t * aBatchStride` of `a` and is stored m x k row-major, or k x m when
 * `transA` (so opA(A_t) = A_t^T); likewise B_t at `t * bBatchStride`, k x n or n x k when `transB`.
 * A batch stride of 0 broadcasts that operand over the batch (a shared weight matrix).
 * out is compact [batch, m, n].
 */
export interface MatmulSpec {
  batch: number;
  m: number;
  k: number;
  n: number;
  aBatchStride: number;
  bBatchStride: number;
  transA: boolean;
  transB: boolean;
}

/** A strided view: element i (in row-major order over `shape`) sits at `offset + sum(idx_d * strides_d)`. */
export interface StridedLayout {
  shape: readonly number[];
  strides: readonly number[];
  offset: number;
}

/** What `backend.memory()` reports: live buffers and the bytes they hold. */
export interface MemoryInfo {
  /** Number of buffers allocated and not yet freed. */
  buffers: number;
  /** Bytes held by those buffers (4 bytes per element for float32). */
  bytes: number;
}

export interface Backend {
  /** A stable name, e.g. 'cpu', 'wasm', 'webgpu'. */
  readonly name: string;

  // ---- buffers -------------------------------------------------------------------------------
  /** Allocate a buffer of `size` float32 elements. Contents are unspecified (callers fill). */
  alloc(size: number): DeviceBuffer;
  /** Release a buffer. Called exactly once per buffer by @needle/ndarray's reference counting. */
  free(buf: DeviceBuffer): void;
  /** Copy host data into the buffer starting at element `offset` (default 0). */
  write(buf: DeviceBuffer, data: Float32Array, offset?: number): void;
  /** Read the first `size` elements (default: the whole buffer) back to the host. */
  read(buf: DeviceBuffer, size?: number): Promise<Float32Array>;
  /** Synchronous read: optional capability (absent on WebGPU). */
  readSync?(buf: DeviceBuffer, size?: number): Float32Array;
  /** Live buffer accounting, for leak tests. */
  memory(): MemoryInfo;

  // ---- required kernels ----------------------------------------------------------------------
  /** out[0..size) = value. */
  fill(out: DeviceBuffer, value: number, size: number): void;
  /** Gather a strided view of `a` into compact `out` (row-major over layout.shape). */
  compact(a: DeviceBuffer, out: DeviceBuffer, layout: StridedLayout): void;
  /** Scatter compact `a` into the strided view `layout` of `out`. */
  ewiseSetitem(a: DeviceBuffer, out: DeviceBuffer, layout: StridedLayout): void;
  /** Set every element of the strided view `layout` of `out` to `value`. */
  scalarSetitem(value: number, out: DeviceBuffer, layout: StridedLayout): void;
  /** out[i] = a[i] op b[i], i < size. Comparisons produce 1 or 0. */
  ewise(op: BinaryOp, a: DeviceBuffer, b: DeviceBuffer, out: DeviceBuffer, size: number): void;
  /** out[i] = a[i] op scalar, i < size. */
  scalar(op: BinaryOp, a: DeviceBuffer, scalar: number, out: DeviceBuffer, size: number): void;
  /** out[i] = op(a[i]), i < size. */
  unary(op: UnaryOp, a: DeviceBuffer, out: DeviceBuffer, size: number): void;
  /** out[i] = cond[i] != 0 ? x[i] : y[i], i < size (NaN in cond counts as true). */
  where(cond: DeviceBuffer, x: DeviceBuffer, y: DeviceBuffer, out: DeviceBuffer, size: number): void;
  /** out[j] = op over a[j*reduceSize, (j+1)*reduceSize), j < outSize. */
  reduce(op: ReduceOp, a: DeviceBuffer, out: DeviceBuffer, outSize: number, reduceSize: number): void;
  /** See MatmulSpec. */
  matmul(a: DeviceBuffer, b: DeviceBuffer, out: DeviceBuffer, spec: MatmulSpec): void;

  // ---- lifecycle -----------------------------------------------------------------------------
  /** Resolves when all enqueued work has finished (a no-op on synchronous backends). */
  sync?(): Promise<void>;
  /** Release every resource (workers, device). The backend is unusable afterwards. */
  destroy?(): void;
}

/** Backend capabilities a frontend may test for. */
export function canReadSync(backend: Backend): backend is Backend & { readSync: NonNullable<Backend['readSync']> } {
  return typeof backend.readSync === 'function';
}

/** The reference semantics of every binary op, shared by host-side code and the CPU backend. */
export function applyBinary(op: BinaryOp, x: number, y: number): number {
  switch (op) {
    case 'add': return x + y;
    case 'sub': return x - y;
    case 'mul': return x * y;
    case 'div': return x / y;
    case 'pow': return Math.pow(x, y);
    case 'maximum': return x >= y || Number.isNaN(x) ? x : y;
    case 'minimum': return x <= y || Number.isNaN(x) ? x : y;
    case 'eq': return x === y ? 1 : 0;
    case 'ne': return x !== y ? 1 : 0;
    case 'ge': return x >= y ? 1 : 0;
    case 'gt': return x > y ? 1 : 0;
    case 'le': return x <= y ? 1 : 0;
    case 'lt': return x < y ? 1 : 0;
    default: return op satisfies never;
  }
}

/** The reference semantics of every unary op. */
export function applyUnary(op: UnaryOp, x: number): number {
  switch (op) {
    case 'neg': return -x;
    case 'log': return Math.log(x);
    case 'exp': return Math.exp(x);
    case 'tanh': return Math.tanh(x);
    case 'sqrt': return Math.sqrt(x);
    case 'abs': return Math.abs(x);
    case 'sign': return x > 0 ? 1 : x < 0 ? -1 : x; // keeps 0, -0 and NaN as they are
    default: return op satisfies never;
  }
}
