/**
 * The Backend interface: the only thing a device has to implement.
 *
 * Model: needle's device API (compact, ewise_setitem, scalar_setitem, ewise and scalar arithmetic,
 * matmul, reduce_sum, reduce_max, fill). Every kernel writes into an `out` buffer the caller
 * allocated. Buffers are opaque handles owned by the backend and sized in elements (float32 storage).
 *
 * Contract for all kernels:
 * - Inputs are *compact*: `size` consecutive elements starting at element 0 of the buffer. Only
 *   `compact`, `ewiseSetitem` and `scalarSetitem` see shape/strides/offset, and the optional strided
 *   forms of `elementwise` and `reduce` on a backend that declares `layouts`; views, broadcasting,
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
 * What `reduceProgram` reduces with: every ReduceOp, and `logsumexp`, log(sum(exp(v))) of a block
 * computed stably. Its reference, which a native kernel must equal on the same backend: m = the
 * block's `max`; if m is not finite (NaN, +Inf or -Inf) the result is m; otherwise it is
 * m + log(s), where s is the block's `sum` of exp(v - m) (the backend's own sum order, and its own
 * `unary` exp and log, every step rounded to float32 as if stored).
 */
export const PROGRAM_REDUCE_OPS = [...REDUCE_OPS, 'logsumexp'] as const;
export type ProgramReduceOp = (typeof PROGRAM_REDUCE_OPS)[number];

/**
 * A (batched, optionally transposed) matrix product, all operands compact:
 * for each batch index t < batch:
 *   out[t] (m x n) = opA(A_t) (m x k) @ opB(B_t) (k x n)
 * where A_t starts at element `t * aBatchStride` of `a` and is stored m x k row-major, or k x m when
 * `transA` (so opA(A_t) = A_t^T); likewise B_t at `t * bBatchStride`, k x n or n x k when `transB`.
 * A batch stride of 0 broadcasts that operand over the batch (a shared weight matrix).
 * out is compact [batch, m, n].
 * On a backend whose `layouts.matmulOffsets` is true, `aOffset`, `bOffset` and `outOffset` (in
 * elements; absent means 0) move where each operand starts in its buffer: A_t starts at
 * `aOffset + t * aBatchStride`, and out at `outOffset`. The frontend sets them on no other backend.
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
  aOffset?: number;
  bOffset?: number;
  outOffset?: number;
}

/**
 * An elementwise program applied to a matmul's result in the same launch (`matmulProgram`): bias +
 * activation after a Linear layer, a gradient mask. The program has exactly one output; its input 0
 * is the product (rounded to float32, as if stored) and input k + 1 is `inputs[k]`, read through
 * `layouts[k]`: strides over the iteration shape [batch, m, n] (three entries, 0 for a broadcast
 * axis, e.g. [0, 0, 1] for a bias of n elements) and an offset; undefined means compact
 * [batch, m, n]. Epilogue inputs never alias the matmul's `out`.
 */
export interface MatmulEpilogue {
  readonly program: ElementwiseProgram;
  readonly inputs: readonly DeviceBuffer[];
  readonly scalars: readonly number[];
  readonly layouts: readonly (OperandLayout | undefined)[];
}

/** A strided view: element i (in row-major order over `shape`) sits at `offset + sum(idx_d * strides_d)`. */
export interface StridedLayout {
  shape: readonly number[];
  strides: readonly number[];
  offset: number;
}

/**
 * One step of an elementwise program; step j defines value j, and operands name earlier steps.
 * - input: element i of input buffer `index`; scalar: `scalars[index]`; const: `value` (fixed in
 *   the program, so part of its key: per-call numbers such as a learning rate belong in scalars);
 * - binary/unary: the op of the `ewise`/`unary` kernels; where: `cond != 0 ? a : b` (NaN is true).
 */
export type ProgramStep =
  | { readonly op: 'input'; readonly index: number }
  | { readonly op: 'scalar'; readonly index: number }
  | { readonly op: 'const'; readonly value: number }
  | { readonly op: 'binary'; readonly fn: BinaryOp; readonly a: number; readonly b: number }
  | { readonly op: 'unary'; readonly fn: UnaryOp; readonly a: number }
  | { readonly op: 'where'; readonly cond: number; readonly a: number; readonly b: number };

/**
 * A straight-line elementwise expression over `inputs` same-sized compact buffers and `scalars`
 * numbers, with one or more outputs: for every i < size, output k gets the value of step
 * `outputs[k]` at element i. Semantics are exactly the unfused kernels' (every step rounded to
 * float32, scalars and consts rounded to float32 first), so a fused run equals the composition of
 * `ewise`/`scalar`/`unary`/`where` launches (bit for bit on CPU and WASM). Build programs with
 * `defineProgram` from @needle/ndarray, which also fills in `key`.
 */
export interface ElementwiseProgram {
  readonly inputs: number;
  readonly scalars: number;
  readonly steps: readonly ProgramStep[];
  readonly outputs: readonly number[];
  /** A canonical text of the program: equal keys mean equal programs (backends cache by it). */
  readonly key: string;
}

/**
 * Where one operand of a strided kernel reads or writes: element at multi-index `idx` of the
 * kernel's iteration shape sits at `offset + sum(idx_d * strides[d])` of the operand's buffer.
 * Strides may be 0 (broadcast) or negative (flip).
 */
export interface OperandLayout {
  readonly strides: readonly number[];
  readonly offset: number;
}

/**
 * Strided operands of one `elementwise` call (see `Backend.layouts`). The frontend passes it only to
 * a backend whose `layouts.elementwise` is true, with `shape` coalesced (size-1 axes dropped, axes
 * contiguous in every operand merged) to at most `layouts.maxDims` axes; its product is the call's
 * `size`, and element i of the program is the i-th multi-index of `shape` in row-major order.
 * An undefined entry is a compact operand (element i at i), the same as without layouts.
 * Guarantees the frontend gives: every view lies inside its buffer; no output writes one element
 * twice; an output that shares a buffer with an input either has that input's very layout (an
 * in-place update: element i is read before it is written) or touches none of the elements the input
 * reads (the frontend copies an input that overlaps an output any other way); two outputs never
 * share a buffer.
 */
export interface ProgramLayouts {
  readonly shape: readonly number[];
  readonly inputs: readonly (OperandLayout | undefined)[];
  readonly outputs: readonly (OperandLayout | undefined)[];
}

/** Which optional strided layouts a backend's kernels honour (see `Backend.layouts`). */
export interface LayoutSupport {
  /** `elementwise` honours its `layouts` argument (strided, broadcast, offset inputs and outputs). */
  readonly elementwise?: boolean;
  /** `reduce` honours its `layout` argument (a strided input). */
  readonly reduce?: boolean;
  /** Most axes a layout may have after the frontend coalesced it (views with more are compacted first). */
  readonly maxDims: number;
  /** `matmul` and `matmulProgram` honour MatmulSpec's `aOffset`, `bOffset` and `outOffset`. */
  readonly matmulOffsets?: boolean;
  /**
   * `elementwise` may be given one buffer as two or more of its outputs, through layouts whose
   * elements never meet (e.g. the two rows of a [2, ...] array: max pooling's values and argmax).
   * Without it the frontend computes every output after the first in such a buffer into a new
   * array and copies it into place.
   */
  readonly sharedOutputs?: boolean;
}

/** Limits every backend's `elementwise` accepts (a WebGPU stage binds at most 8 storage buffers). */
export const PROGRAM_LIMITS = {
  /** Distinct buffers, inputs and outputs together (an output that is also an input counts once). */
  buffers: 8,
  steps: 64,
  scalars: 16,
} as const;

/** What `backend.memory()` reports: live buffers and the bytes they hold. */
export interface MemoryInfo {
  /** Number of buffers allocated and not yet freed. */
  buffers: number;
  /** Bytes held by those buffers (4 bytes per element for float32). */
  bytes: number;
}

/**
 * The kernel families of the contract, one per kernel method of Backend: what `stats()` counts.
 * A launch is one call of the method by the frontend, however the backend carries it out (a wasm
 * call, a typed-array copy, several WebGPU dispatches or worker jobs), so counts are the same on
 * every backend and deterministic.
 */
export const KERNEL_FAMILIES = [
  'fill', 'compact', 'ewiseSetitem', 'scalarSetitem', 'ewise', 'scalar', 'unary', 'where', 'reduce', 'matmul',
  'elementwise', 'matmulProgram', 'reduceProgram', 'gatherRows', 'scatterAddRows',
] as const;
export type KernelFamily = (typeof KERNEL_FAMILIES)[number];

/** What `backend.stats()` reports: kernels launched and bytes moved since creation or the last reset. */
export interface BackendStats {
  /** Kernel launches per family. */
  kernels: Record<KernelFamily, number>;
  /** Sum of `kernels` over the families. */
  launches: number;
  /** `alloc` calls and the bytes they asked for (4 per element). */
  allocations: number;
  bytesAllocated: number;
  /** Bytes copied host -> device by `write`. */
  bytesUploaded: number;
  /** Bytes copied device -> host by `read` and `readSync`. */
  bytesDownloaded: number;
}

export interface Backend {
  /** A stable name, e.g. 'cpu', 'wasm', 'webgpu'. */
  readonly name: string;

  // ---- profiling -----------------------------------------------------------------------------
  /** Counters since creation or the last `resetStats()` (a snapshot: later calls do not change it). */
  stats(): BackendStats;
  /** Set every counter of `stats()` to zero. */
  resetStats(): void;

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
  /**
   * out[j] = op over a[j*reduceSize, (j+1)*reduceSize), j < outSize. With `layout` (only where
   * `layouts.reduce` is true), `a` is read through it instead: a strided view whose row-major order
   * over `layout.shape` (product outSize * reduceSize, at most `layouts.maxDims` axes) is the compact
   * order above, so the result equals `compact` then `reduce` bit for bit.
   */
  reduce(op: ReduceOp, a: DeviceBuffer, out: DeviceBuffer, outSize: number, reduceSize: number, layout?: StridedLayout): void;
  /** See MatmulSpec. */
  matmul(a: DeviceBuffer, b: DeviceBuffer, out: DeviceBuffer, spec: MatmulSpec): void;

  // ---- optional fast paths (the frontend falls back to the required kernels) -------------------
  /**
   * Run an elementwise program in one launch: `outputs[k][i] = value of step program.outputs[k]`
   * for i < size. An output may be the very buffer of an input (an in-place update: element i is
   * read before it is written); two outputs are the same buffer only where `layouts.sharedOutputs`
   * is declared, and then through layouts whose elements never meet. The program was checked by
   * the frontend (operands name earlier steps, counts within PROGRAM_LIMITS). `layouts` (passed only
   * where `layouts.elementwise` is true) makes operands strided views over one iteration shape:
   * broadcast, transposed, sliced, flipped inputs and outputs written in place through a view, with
   * no `compact` first (see ProgramLayouts for the aliasing rules the frontend guarantees).
   */
  elementwise?(program: ElementwiseProgram, inputs: readonly DeviceBuffer[], scalars: readonly number[], outputs: readonly DeviceBuffer[], size: number, layouts?: ProgramLayouts): void;
  /**
   * `matmul(a, b, tmp, spec)` then the epilogue program over [tmp, ...epilogue.inputs] written to
   * `out` (compact [batch, m, n], at spec.outOffset where offsets are supported), in one launch:
   * equal to that composition (bit for bit on CPU and WASM). `out` aliases none of the operands.
   */
  matmulProgram?(a: DeviceBuffer, b: DeviceBuffer, out: DeviceBuffer, spec: MatmulSpec, epilogue: MatmulEpilogue): void;
  /**
   * Reduce the value of a one-output program without storing it: with v(i) the program's value at
   * element i (row-major over [outSize, reduceSize], or over `layouts.shape`, whose product is
   * outSize * reduceSize, with inputs read through `layouts.inputs` as in `elementwise`;
   * `layouts.outputs` is empty), out[j] = op over v(j * reduceSize) .. v((j + 1) * reduceSize - 1).
   * Equal to `elementwise` into a temporary, then `reduce` (or the logsumexp reference of
   * PROGRAM_REDUCE_OPS), bit for bit on CPU and WASM. Results go to out[outOffset + j] (so several
   * reductions can fill one buffer, e.g. a loss and the statistics its backward reads); the
   * elements of `out` they cover alias no input.
   */
  reduceProgram?(op: ProgramReduceOp, program: ElementwiseProgram, inputs: readonly DeviceBuffer[], scalars: readonly number[], out: DeviceBuffer, outSize: number, reduceSize: number, layouts?: ProgramLayouts, outOffset?: number): void;
  /**
   * Rows picked by index (an embedding lookup, `indexSelect`): for i < count, row i of `out`
   * (compact [count, rowSize]) is row `indices[i]` of `a` (compact [rows, rowSize]) where that index
   * is an integer in [0, rows) (indices are float32 values); any other index (out of range,
   * fractional, NaN) fills row i with `missing`. `out` aliases neither input.
   */
  gatherRows?(a: DeviceBuffer, indices: DeviceBuffer, out: DeviceBuffer, rows: number, rowSize: number, count: number, missing: number): void;
  /**
   * The adjoint of gatherRows (`indexAddInto`, an embedding's gradient): for i = 0, 1, ...,
   * count - 1 in that order, row i of `a` (compact [count, rowSize]) is added into row `indices[i]`
   * of `out` (compact [rows, rowSize]) where that index is valid as in gatherRows; rows with an
   * invalid index are skipped. Each element of `out` receives its additions in ascending i, so the
   * result is the same bits on every backend. `out` aliases neither input.
   */
  scatterAddRows?(a: DeviceBuffer, indices: DeviceBuffer, out: DeviceBuffer, rows: number, rowSize: number, count: number): void;
  /**
   * Which kernels take strided layouts (absent: none, and the frontend compacts every strided
   * operand first, as the contract's compact-input rule says).
   */
  readonly layouts?: LayoutSupport;

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

/**
 * Whether a float32 index value selects a row of gatherRows / scatterAddRows: an integer in [0, rows)
 * (in programs: `isRowIndexValue`).
 */
export function isRowIndex(value: number, rows: number): boolean {
  return Number.isInteger(value) && value >= 0 && value < rows;
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
