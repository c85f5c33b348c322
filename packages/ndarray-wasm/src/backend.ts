import {
  PROGRAM_LIMITS,
  REDUCE_OPS,
  instrumentBackend,
  registerBackend,
  type Backend,
  type BackendStats,
  type BinaryOp,
  type DeviceBuffer,
  type ElementwiseProgram,
  type MatmulEpilogue,
  type OperandLayout,
  type ProgramLayouts,
  type MatmulSpec,
  type MemoryInfo,
  type ReduceOp,
  type ProgramReduceOp,
  type StridedLayout,
  type UnaryOp,
} from '@needle/ndarray';
import { FreeListAllocator } from './allocator';
import { binaryCode, reduceCode, unaryCode } from './codes';
import { gatherRowsOnHeap, scatterAddRowsOnHeap } from './rows';
import { compileKernels, instantiateKernels, MAX_PAGES, PAGE_BYTES, relaxedSimdSupported, type KernelExports, type SimdVariant } from './module';
import { costNs, depthBlocks, matmulPlan, NS_PER, PART_NS, partsFor, SUM_CHUNK, threadsFor, type MatmulSplit } from './split';
import { DEFAULT_SPIN_MICROS, threadsSupported, WorkerPool, type Job, type ThreadArgs, type WorkerKernel } from './threads';
import { CompiledPrograms, type CompiledEntry } from './jit/programs';

export interface WasmBackendOptions {
  /** Name under which the backend reports itself (default 'wasm'). */
  name?: string;
  /**
   * Threads that run kernels, the calling thread included (default 1). Above 1 the WebAssembly
   * memory is shared with `threads - 1` workers; where SharedArrayBuffer is unavailable (a browser
   * page that is not cross-origin isolated) the backend falls back to one thread, which
   * `backend.threads` reports.
   */
  threads?: number;
  /**
   * With `threads > 1`: microseconds an idle worker polls for the next kernel after the calling
   * thread last used the backend (any kernel or buffer call), before it sleeps (default 1000): so
   * the workers stay awake through a training step (but at most 20 times this after the last split
   * kernel). Polling saves a sleep and a wake-up per split kernel. Threads poll only while the
   * machine has room for them (in Node, a load average at most the core count + 0.5; and not for a
   * while after a thread was descheduled while polling); 0 turns polling off.
   */
  spinMicros?: number;
  /**
   * With `threads > 1`: the estimated one-thread microseconds of work per part of a split kernel
   * (default 100). A split kernel is cut into parts about this long (at least one per thread) that
   * the threads claim one after another, so a worker that starts late or loses its core for a
   * while runs fewer of them; smaller parts balance better and cost more claims (and, for matmul,
   * more repeated packing). The results are the same bits for any value.
   */
  partMicros?: number;
  /**
   * Which build of the kernels to run (default 'auto'): 'relaxed' also uses relaxed SIMD (a fused
   * multiply-add in the matmul micro-kernels, ~15% faster matmul where the engine has it: Chrome >= 114,
   * Node >= 22, Node 20 with `--experimental-wasm-relaxed-simd`), 'baseline' SIMD128 only; 'auto'
   * takes 'relaxed' where the engine validates it. The builds may differ in the last bits of matmul
   * results (one rounding per multiply-add instead of two); `backend.simd` says which one runs.
   */
  simd?: 'auto' | SimdVariant;
  /** Initial heap size in MiB (default 16); the heap grows on demand. */
  initialMemoryMiB?: number;
  /** Largest heap in MiB (default 4096, the wasm32 limit). Threads reserve this much address space. */
  maxMemoryMiB?: number;
  /**
   * Offer `readSync` (default true). Turning it off makes the backend read like WebGPU, only
   * asynchronously, e.g. to run a test suite that must never need a synchronous read.
   */
  readSync?: boolean;
  /**
   * Run elementwise programs as WebAssembly code compiled for each program at run time (default
   * true; the environment variable NEEDLE_WASM_COMPILE_PROGRAMS=0 turns it off where the option is
   * not given). A program is compiled at its second launch; 'eager' compiles it at its first (one
   * defined anew for every call then costs a compile per call). Off, programs run on the block
   * interpreter (the `program` kernel); the results are the same bits either way.
   */
  compilePrograms?: boolean | 'eager';
}

/** NEEDLE_WASM_COMPILE_PROGRAMS=0 (where there is a process environment) turns compiled programs off. */
function compileProgramsByDefault(): boolean {
  const env = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env;
  return env?.NEEDLE_WASM_COMPILE_PROGRAMS !== '0';
}

/** A buffer is a block of the WebAssembly heap: a byte address and a size in elements. */
class WasmBuffer implements DeviceBuffer {
  freed = false;
  constructor(
    readonly owner: WasmBackend,
    readonly ptr: number,
    readonly size: number,
    readonly blockBytes: number,
  ) {}
}

/** Heap statistics beyond backend.memory(), for tests and benchmarks. */
export interface WasmHeapInfo {
  /** Current size of the WebAssembly memory in bytes. */
  memoryBytes: number;
  /** First byte above every block in use (the high-water mark of the allocator). */
  topBytes: number;
  /** Free blocks below the top (fragments waiting for reuse). */
  freeBlocks: number;
}

/**
 * Longest row whose logsumexp runs in one kernel pass (logsumexpRows): up to here every row sum is
 * one pass of the sum kernel, as `reduce` computes it (rows above SUM_CHUNK are summed by chunks).
 */
const LOGSUMEXP_ROW = Math.min(4096, SUM_CHUNK);

/**
 * Largest product (elements) whose matmulProgram epilogue runs as compiled code after the matmul
 * rather than inside it (512 KiB: the product is still in the 1 MiB L2 of the machine measured).
 */
const EPILOGUE_AFTER_ELEMENTS = 1 << 17;

/**
 * A larger one-thread product is computed in blocks of rows of about this many elements (at least
 * the kernel's 120-row block), each followed by the compiled epilogue over it while it is in L2
 * (NOTES.md section 43); every block packs all of opB again, a few percent of a 120-row block's work.
 */
const EPILOGUE_BLOCK_ELEMENTS = 1 << 15;
/** The matmul kernel's row block (assembly MC): row blocks of the product start on its multiples. */
const MATMUL_ROW_BLOCK = 120;

/** Most dimensions a strided copy may have after merging contiguous axes. */
const MAX_DIMS = 64;
/** The most parts a split strided copy is cut into (each needs its own dimensions area). */
const STRIDED_PARTS = 16;

/**
 * Smallest elementwise launch whose transposed inputs are copied into rows first (rowsByGathering):
 * below it the copies' launches cost about what the gathers do.
 */
const GATHER_MIN_ELEMENTS = 4096;

/** Most axes of a strided elementwise program's iteration shape (the same on every bundled backend). */
const MAX_LAYOUT_DIMS = 8;
/** [ndim, shape...], then a record [offset, strides...] for each of up to 16 operands. */
const LAYOUT_AREA_WORDS = 1 + MAX_LAYOUT_DIMS + 2 * PROGRAM_LIMITS.buffers * (1 + MAX_LAYOUT_DIMS);

export class WasmBackend implements Backend {
  readonly name: string;
  /** Threads that run kernels, the calling thread included. */
  readonly threads: number;
  /** The build of the kernels in use (option `simd`). */
  readonly simd: SimdVariant;
  private readonly memoryObject: WebAssembly.Memory;
  private readonly kernels: KernelExports;
  private readonly allocator: FreeListAllocator;
  private readonly pool: WorkerPool | undefined;
  private heap: Float32Array;
  private readonly maxBytes: number;
  /** 16 bytes: the scalar of a scalar op, four times. */
  private readonly argPtr: number;
  /** One matmul packing area per thread. */
  private readonly scratch: number[];
  /** One area per thread for a strided copy's i32 shape, strides and index scratch. */
  private readonly stridedArgs: number[];
  /** Elementwise programs: the encoded steps and outputs, and one register area per thread. */
  private readonly programPtr: number;
  private readonly programRegs: number[];
  /** Strided program operands: the iteration shape and one layout record per strided operand. */
  private readonly layoutPtr: number;
  /** matmulProgram's encoded epilogue: the `program` kernel's arguments, five i32 words. */
  private readonly epiloguePtr: number;
  private live = 0;
  private liveBytes = 0;
  private splits = 0;
  private parts = 0;
  private destroyed = false;
  private readonly counter;
  /** Elementwise programs compiled to their own code (src/jit); undefined when turned off. */
  private programs: CompiledPrograms | undefined;
  private compiledLaunches = 0;
  /** Estimated one-thread nanoseconds per part of a split kernel (options.partMicros). */
  private partNs = PART_NS;

  /** Use createWasmBackend(): construction needs compiled modules and started workers. */
  private constructor(
    name: string,
    memory: WebAssembly.Memory,
    kernels: KernelExports,
    pool: WorkerPool | undefined,
    maxBytes: number,
    readSync: boolean,
    simd: SimdVariant,
  ) {
    this.name = name;
    this.simd = simd;
    if (readSync) this.readSync = (buf, size) => this.copyOut('readSync', buf, size);
    this.memoryObject = memory;
    this.kernels = kernels;
    this.pool = pool;
    this.threads = 1 + (pool?.workers ?? 0);
    this.maxBytes = maxBytes;
    this.heap = new Float32Array(memory.buffer);
    this.allocator = new FreeListAllocator(kernels.heapBase());
    this.argPtr = this.reserve(16);
    const scratchBytes = kernels.matmulScratchBytes();
    this.scratch = [];
    for (let t = 0; t < this.threads; t++) this.scratch.push(this.reserve(scratchBytes));
    this.stridedArgs = [];
    for (let t = 0; t < (this.threads > 1 ? STRIDED_PARTS : 1); t++) this.stridedArgs.push(this.reserve(4 * 3 * MAX_DIMS));
    this.programPtr = this.reserve(16 * PROGRAM_LIMITS.steps + 16 * PROGRAM_LIMITS.buffers);
    this.layoutPtr = this.reserve(4 * LAYOUT_AREA_WORDS);
    this.epiloguePtr = this.reserve(32);
    const block = kernels.PROGRAM_BLOCK.value as number;
    const regBytes = 4 * PROGRAM_LIMITS.steps + 16 + 4 * block * PROGRAM_LIMITS.steps + 4 * MAX_LAYOUT_DIMS;
    this.programRegs = [];
    for (let t = 0; t < this.threads; t++) this.programRegs.push(this.reserve(regBytes));
    this.counter = instrumentBackend(this);
  }

  stats(): BackendStats {
    return this.counter.snapshot();
  }

  resetStats(): void {
    this.counter.reset();
  }

  /** @internal */
  static async create(options: WasmBackendOptions = {}): Promise<WasmBackend> {
    const name = options.name ?? 'wasm';
    const requested = options.threads ?? 1;
    if (!Number.isInteger(requested) || requested < 1) {
      throw new Error(`createWasmBackend: threads must be a positive integer, got ${requested}`);
    }
    const maxMiB = options.maxMemoryMiB ?? 4096;
    const initialMiB = options.initialMemoryMiB ?? 16;
    if (!(maxMiB > 0) || !(initialMiB > 0) || initialMiB > maxMiB) {
      throw new Error(`createWasmBackend: expected 0 < initialMemoryMiB <= maxMemoryMiB, got ${initialMiB} and ${maxMiB}`);
    }
    const maximum = Math.min(MAX_PAGES, Math.ceil((maxMiB * 1024 * 1024) / PAGE_BYTES));
    const initial = Math.min(maximum, Math.ceil((initialMiB * 1024 * 1024) / PAGE_BYTES));
    const simdOption = options.simd ?? 'auto';
    if (simdOption !== 'auto' && simdOption !== 'relaxed' && simdOption !== 'baseline') {
      throw new Error(`createWasmBackend: simd must be 'auto', 'relaxed' or 'baseline', got ${JSON.stringify(simdOption)}`);
    }
    const relaxedOk = simdOption !== 'baseline' && relaxedSimdSupported();
    if (simdOption === 'relaxed' && !relaxedOk) {
      throw new Error("createWasmBackend: simd 'relaxed' was asked for, but this engine does not validate relaxed SIMD (Node 20 needs --experimental-wasm-relaxed-simd; Node >= 22 and Chrome >= 114 have it); use 'auto' or 'baseline'");
    }
    const simd: SimdVariant = relaxedOk ? 'relaxed' : 'baseline';
    const threaded = requested > 1 && threadsSupported();
    const module = await compileKernels(threaded, simd);
    const memory = new WebAssembly.Memory({ initial, maximum, shared: threaded });
    const kernels = instantiateKernels(module, memory);
    const spinMicros = options.spinMicros ?? DEFAULT_SPIN_MICROS;
    if (!(spinMicros >= 0)) throw new Error(`createWasmBackend: spinMicros must be a non-negative number, got ${spinMicros}`);
    const partMicros = options.partMicros ?? PART_NS / 1000;
    if (!(partMicros > 0) || !Number.isFinite(partMicros)) throw new Error(`createWasmBackend: partMicros must be a positive number, got ${partMicros}`);
    const pool = threaded ? await WorkerPool.create(requested - 1, module, memory, spinMicros) : undefined;
    const backend = new WasmBackend(name, memory, kernels, pool, maximum * PAGE_BYTES, options.readSync !== false, simd);
    backend.partNs = partMicros * 1000;
    const compile = options.compilePrograms ?? compileProgramsByDefault();
    if (compile !== true && compile !== false && compile !== 'eager') {
      throw new Error(`createWasmBackend: compilePrograms must be true, false or 'eager', got ${String(compile)}`);
    }
    if (compile) {
      backend.programs = new CompiledPrograms(memory, kernels, threaded, compile === 'eager');
      backend.programs.warmKernels(memory, backend.programRegs[0]);
    }
    return backend;
  }

  // ---- buffers ---------------------------------------------------------------------------------

  /** Take `bytes` from the heap for the backend's own use (never freed, not counted as buffers). */
  private reserve(bytes: number): number {
    const block = this.allocator.blockSize(bytes);
    const ptr = this.allocator.allocate(block);
    this.ensureHeap('alloc', block);
    return ptr;
  }

  /** Grow the memory so the allocator's top fits, re-creating the heap view. */
  private ensureHeap(op: string, requested: number): void {
    const top = this.allocator.top;
    // Only this thread grows the memory, so the view's length is the memory's size.
    if (top <= this.heap.byteLength) return;
    const have = this.memoryObject.buffer.byteLength;
    if (top > this.maxBytes) {
      throw new Error(`${this.name}.${op}: out of memory: ${requested} bytes requested, heap would reach ${top} bytes, maximum ${this.maxBytes} (maxMemoryMiB option)`);
    }
    // Grow by at least half the current size so a growing workload does not grow page by page.
    const needPages = Math.ceil((top - have) / PAGE_BYTES);
    const maxPages = this.maxBytes / PAGE_BYTES - have / PAGE_BYTES;
    const pages = Math.min(maxPages, Math.max(needPages, Math.ceil(have / PAGE_BYTES / 2)));
    try {
      this.memoryObject.grow(pages);
    } catch (error) {
      throw new Error(`${this.name}.${op}: could not grow the WebAssembly memory by ${pages} pages: ${(error as Error).message}`, { cause: error });
    }
    // The old view is detached (unshared memory) or too short (shared memory): always re-create it.
    this.heap = new Float32Array(this.memoryObject.buffer);
  }

  /** The current float view of the whole heap. */
  private view(): Float32Array {
    // A shared memory may in principle be grown elsewhere; a length check is cheap insurance.
    if (this.heap.byteLength !== this.memoryObject.buffer.byteLength) this.heap = new Float32Array(this.memoryObject.buffer);
    return this.heap;
  }

  private buf(op: string, buf: DeviceBuffer, role = 'buffer'): WasmBuffer {
    if (this.destroyed) throw new Error(`${this.name}.${op}: the backend was destroyed`);
    // Every kernel and buffer call checks its buffers here: the one place that tells polling
    // workers the caller is still at work (threads.ts, touch).
    this.pool?.touch();
    if (!(buf instanceof WasmBuffer) || buf.owner !== this) {
      throw new Error(`${this.name}.${op}: ${role} belongs to another backend`);
    }
    if (buf.freed) throw new Error(`${this.name}.${op}: ${role} was already freed`);
    return buf;
  }

  /** Validate a kernel's element count against one operand (no allocation: this runs per kernel). */
  /** Throw unless a strided operand's view over `shape` lies inside its buffer. */
  private inside(kernel: string, b: WasmBuffer, role: string, shape: readonly number[], l: OperandLayout): void {
    let lo = l.offset;
    let hi = l.offset;
    shape.forEach((d, i) => {
      if (!Number.isInteger(l.strides[i])) throw new Error(`${this.name}.${kernel}: ${role} has invalid strides [${l.strides.join(', ')}]`);
      const reach = (d - 1) * l.strides[i];
      if (reach < 0) lo += reach;
      else hi += reach;
    });
    if (!Number.isInteger(l.offset) || lo < 0 || hi >= b.size) {
      throw new Error(`${this.name}.${kernel}: ${role}'s view (strides [${l.strides.join(', ')}], offset ${l.offset}) reaches elements ${lo}..${hi}, outside a buffer of ${b.size}`);
    }
  }

  /**
   * Strided elementwise operands (gathered into and scattered from the program's L1 blocks), reduce
   * inputs, and matmul operands at an offset in their buffers (a pointer moved, nothing copied).
   */
  readonly layouts = { elementwise: true, reduce: true, maxDims: MAX_LAYOUT_DIMS, matmulOffsets: true, sharedOutputs: true } as const;

  private need(kernel: string, sub: string, b: WasmBuffer, role: string, size: number): void {
    if (b.size >= size && size >= 0 && Number.isInteger(size)) return;
    const op = sub ? `${kernel}(${sub})` : kernel;
    if (!Number.isInteger(size) || size < 0) throw new Error(`${this.name}.${op}: size must be a non-negative integer, got ${size}`);
    throw new Error(`${this.name}.${op}: ${role} holds ${b.size} elements, expected at least ${size}`);
  }

  alloc(size: number): DeviceBuffer {
    if (this.destroyed) throw new Error(`${this.name}.alloc: the backend was destroyed`);
    if (!Number.isInteger(size) || size < 0) throw new Error(`${this.name}.alloc: size must be a non-negative integer, got ${size}`);
    const block = this.allocator.blockSize(size * 4);
    const ptr = this.allocator.allocate(block);
    try {
      this.ensureHeap('alloc', size * 4);
    } catch (error) {
      this.allocator.release(ptr, block);
      throw error;
    }
    this.live++;
    this.liveBytes += size * 4;
    return new WasmBuffer(this, ptr, size, block);
  }

  free(buf: DeviceBuffer): void {
    if (this.destroyed && buf instanceof WasmBuffer && buf.owner === this && !buf.freed) {
      // The heap is gone already; arrays disposed (or garbage collected) after destroy() must not
      // throw, least of all from NDArray's FinalizationRegistry callback.
      buf.freed = true;
      this.live--;
      this.liveBytes -= buf.size * 4;
      return;
    }
    const b = this.buf('free', buf);
    b.freed = true;
    this.allocator.release(b.ptr, b.blockBytes);
    this.live--;
    this.liveBytes -= b.size * 4;
  }

  write(buf: DeviceBuffer, data: Float32Array, offset = 0): void {
    const b = this.buf('write', buf);
    if (!Number.isInteger(offset) || offset < 0 || offset + data.length > b.size) {
      throw new Error(`${this.name}.write: ${data.length} elements at offset ${offset} do not fit a buffer of ${b.size}`);
    }
    this.view().set(data, (b.ptr >>> 2) + offset);
  }

  /** Synchronous read (a copy); absent when created with `readSync: false`. */
  readonly readSync?: (buf: DeviceBuffer, size?: number) => Float32Array;

  private copyOut(op: string, buf: DeviceBuffer, size: number | undefined): Float32Array {
    const b = this.buf(op, buf);
    const n = size ?? b.size;
    this.need(op, '', b, 'buffer', n);
    const start = b.ptr >>> 2;
    return this.view().slice(start, start + n);
  }

  async read(buf: DeviceBuffer, size?: number): Promise<Float32Array> {
    return this.copyOut('read', buf, size);
  }

  memory(): MemoryInfo {
    return { buffers: this.live, bytes: this.liveBytes };
  }

  heapInfo(): WasmHeapInfo {
    return { memoryBytes: this.memoryObject.buffer.byteLength, topBytes: this.allocator.top, freeBlocks: this.allocator.freeBlocks };
  }

  // ---- kernels ---------------------------------------------------------------------------------

  fill(out: DeviceBuffer, value: number, size: number): void {
    const o = this.buf('fill', out, 'out');
    this.need('fill', '', o, 'out', size);
    const P = this.partsFor(costNs.fill(size));
    if (P === 1) this.kernels.fill(o.ptr, value, size);
    else this.runParts('fill', size, P, 16, (_, start, n) => [o.ptr + 4 * start, value, n]);
  }

  compact(a: DeviceBuffer, out: DeviceBuffer, layout: StridedLayout): void {
    const src = this.buf('compact', a, 'a');
    const dst = this.buf('compact', out, 'out');
    const dims = this.simplify('compact', layout, src.size);
    if (!dims) return;
    this.need('compact', '', dst, 'out', dims.total);
    this.strided(0, src.ptr, dst.ptr, dims, 0);
  }

  ewiseSetitem(a: DeviceBuffer, out: DeviceBuffer, layout: StridedLayout): void {
    const src = this.buf('ewiseSetitem', a, 'a');
    const dst = this.buf('ewiseSetitem', out, 'out');
    const dims = this.simplify('ewiseSetitem', layout, dst.size);
    if (!dims) return;
    this.need('ewiseSetitem', '', src, 'a', dims.total);
    this.strided(1, src.ptr, dst.ptr, dims, 0);
  }

  scalarSetitem(value: number, out: DeviceBuffer, layout: StridedLayout): void {
    const dst = this.buf('scalarSetitem', out, 'out');
    const dims = this.simplify('scalarSetitem', layout, dst.size);
    if (!dims) return;
    this.strided(2, 0, dst.ptr, dims, value);
  }

  gatherRows(a: DeviceBuffer, indices: DeviceBuffer, out: DeviceBuffer, rows: number, rowSize: number, count: number, missing: number): void {
    const src = this.buf('gatherRows', a, 'a');
    const idx = this.buf('gatherRows', indices, 'indices');
    const dst = this.buf('gatherRows', out, 'out');
    this.need('gatherRows', '', src, 'a', rows * rowSize);
    this.need('gatherRows', '', idx, 'indices', count);
    this.need('gatherRows', '', dst, 'out', count * rowSize);
    gatherRowsOnHeap(this.view(), src.ptr >> 2, idx.ptr >> 2, dst.ptr >> 2, rows, rowSize, count, missing);
  }

  scatterAddRows(a: DeviceBuffer, indices: DeviceBuffer, out: DeviceBuffer, rows: number, rowSize: number, count: number): void {
    const src = this.buf('scatterAddRows', a, 'a');
    const idx = this.buf('scatterAddRows', indices, 'indices');
    const dst = this.buf('scatterAddRows', out, 'out');
    this.need('scatterAddRows', '', src, 'a', count * rowSize);
    this.need('scatterAddRows', '', idx, 'indices', count);
    this.need('scatterAddRows', '', dst, 'out', rows * rowSize);
    scatterAddRowsOnHeap(this.view(), src.ptr >> 2, idx.ptr >> 2, dst.ptr >> 2, rows, rowSize, count);
  }

  /**
   * Drop unit axes and merge axes that are contiguous with the next one, so a kernel loop runs as long
   * as possible; check the view stays inside a buffer of `size` elements. Undefined for an empty view.
   */
  private simplify(op: string, layout: StridedLayout, size: number): { shape: number[]; strides: number[]; offset: number; total: number } | undefined {
    const { shape, strides, offset } = layout;
    if (shape.length !== strides.length) {
      throw new Error(`${this.name}.${op}: layout has ${shape.length} dimensions but ${strides.length} strides`);
    }
    let total = 1;
    let lo = offset;
    let hi = offset;
    for (let d = 0; d < shape.length; d++) {
      const n = shape[d];
      if (!Number.isInteger(n) || n < 0 || !Number.isInteger(strides[d])) {
        throw new Error(`${this.name}.${op}: invalid layout shape [${shape.join(', ')}] strides [${strides.join(', ')}]`);
      }
      total *= n;
      if (n > 0) {
        if (strides[d] > 0) hi += (n - 1) * strides[d];
        else lo += (n - 1) * strides[d];
      }
    }
    if (total === 0) return undefined;
    if (lo < 0 || hi >= size) {
      throw new Error(`${this.name}.${op}: view (shape [${shape.join(', ')}], strides [${strides.join(', ')}], offset ${offset}) reaches elements ${lo}..${hi}, outside a buffer of ${size}`);
    }
    const outShape: number[] = [];
    const outStrides: number[] = [];
    for (let d = 0; d < shape.length; d++) {
      if (shape[d] === 1) continue;
      const last = outShape.length - 1;
      if (last >= 0 && outStrides[last] === shape[d] * strides[d]) {
        outShape[last] *= shape[d];
        outStrides[last] = strides[d];
      } else {
        outShape.push(shape[d]);
        outStrides.push(strides[d]);
      }
    }
    if (outShape.length === 0) {
      outShape.push(1);
      outStrides.push(1);
    }
    if (outShape.length > MAX_DIMS) {
      throw new Error(`${this.name}.${op}: views of more than ${MAX_DIMS} non-contiguous dimensions are not supported (got ${outShape.length})`);
    }
    return { shape: outShape, strides: outStrides, offset, total };
  }

  private strided(mode: number, src: number, dst: number, dims: { shape: number[]; strides: number[]; offset: number; total: number }, value: number): void {
    const ndim = dims.shape.length;
    const contiguous = ndim === 1 && dims.strides[0] === 1;
    const P = this.partsFor(costNs.strided(dims.total, dims.strides[ndim - 1] === 1 ? dims.shape[ndim - 1] : 1));
    if (P > 1) {
      this.splitStrided(mode, src, dst, dims, value, P);
      return;
    }
    if (contiguous && mode !== 2) {
      // One contiguous run: a typed-array copy needs no wasm call.
      const heap = this.view();
      const n = dims.shape[0];
      if (mode === 0) heap.copyWithin(dst >>> 2, (src >>> 2) + dims.offset, (src >>> 2) + dims.offset + n);
      else heap.copyWithin((dst >>> 2) + dims.offset, src >>> 2, (src >>> 2) + n);
      return;
    }
    const dimsPtr = this.stridedArgs[0];
    const ints = new Int32Array(this.memoryObject.buffer, dimsPtr, 2 * ndim);
    ints.set(dims.shape, 0);
    ints.set(dims.strides, ndim);
    this.kernels.strided(mode, src, dst, dimsPtr, ndim, dims.offset, value, dimsPtr + 8 * ndim);
  }

  /**
   * A strided copy split along its outermost axis: each thread walks a slab of the view, whose
   * compact side is a contiguous range. Copies are exact, so any split gives the same result; a
   * transposed 2-D view is split on its 16-row tiles so each thread runs whole tiles. Each part's
   * dimensions lie in an area of its own (at most one part per area).
   */
  private splitStrided(mode: number, src: number, dst: number, dims: { shape: number[]; strides: number[]; offset: number; total: number }, value: number, P: number): void {
    const ndim = dims.shape.length;
    const rows = dims.shape[0];
    const inner = dims.total / rows;
    const grain = ndim === 2 && dims.strides[1] !== 1 ? 16 : ndim === 1 ? 16 : 1;
    this.runParts('strided', rows, Math.min(P, rows, this.stridedArgs.length), grain, (part, r0, n) => {
      const area = this.stridedArgs[part];
      const ints = new Int32Array(this.memoryObject.buffer, area, 2 * ndim);
      ints.set(dims.shape, 0);
      ints[0] = n;
      ints.set(dims.strides, ndim);
      const packed = 4 * r0 * inner;
      return [mode, mode === 1 ? src + packed : src, mode === 0 ? dst + packed : dst, area, ndim, dims.offset + r0 * dims.strides[0], value, area + 8 * ndim];
    });
  }

  ewise(op: BinaryOp, a: DeviceBuffer, b: DeviceBuffer, out: DeviceBuffer, size: number): void {
    const x = this.buf('ewise', a, 'a');
    const y = this.buf('ewise', b, 'b');
    const o = this.buf('ewise', out, 'out');
    this.need('ewise', op, x, 'a', size);
    this.need('ewise', op, y, 'b', size);
    this.need('ewise', op, o, 'out', size);
    const code = binaryCode(op);
    const P = this.partsFor(costNs.binary(op, size));
    // bMask = all ones: b advances with a.
    if (P === 1) this.kernels.binary(code, x.ptr, y.ptr, -1, o.ptr, size);
    else this.runParts('binary', size, P, 16, (_, start, n) => [code, x.ptr + 4 * start, y.ptr + 4 * start, -1, o.ptr + 4 * start, n]);
  }

  scalar(op: BinaryOp, a: DeviceBuffer, scalar: number, out: DeviceBuffer, size: number): void {
    const x = this.buf('scalar', a, 'a');
    const o = this.buf('scalar', out, 'out');
    this.need('scalar', op, x, 'a', size);
    this.need('scalar', op, o, 'out', size);
    const s = this.argPtr >>> 2;
    this.view().fill(Math.fround(scalar), s, s + 4);
    const code = binaryCode(op);
    const P = this.partsFor(costNs.binary(op, size));
    // bMask = 15 bytes: every vector load of b reads the four copies of the scalar.
    if (P === 1) this.kernels.binary(code, x.ptr, this.argPtr, 15, o.ptr, size);
    else this.runParts('binary', size, P, 16, (_, start, n) => [code, x.ptr + 4 * start, this.argPtr, 15, o.ptr + 4 * start, n]);
  }

  unary(op: UnaryOp, a: DeviceBuffer, out: DeviceBuffer, size: number): void {
    const x = this.buf('unary', a, 'a');
    const o = this.buf('unary', out, 'out');
    this.need('unary', op, x, 'a', size);
    this.need('unary', op, o, 'out', size);
    const code = unaryCode(op);
    const P = this.partsFor(costNs.unary(op, size));
    if (P === 1) this.kernels.unary(code, x.ptr, o.ptr, size);
    else this.runParts('unary', size, P, 16, (_, start, n) => [code, x.ptr + 4 * start, o.ptr + 4 * start, n]);
  }

  where(cond: DeviceBuffer, x: DeviceBuffer, y: DeviceBuffer, out: DeviceBuffer, size: number): void {
    const c = this.buf('where', cond, 'cond');
    const p = this.buf('where', x, 'x');
    const q = this.buf('where', y, 'y');
    const o = this.buf('where', out, 'out');
    this.need('where', '', c, 'cond', size);
    this.need('where', '', p, 'x', size);
    this.need('where', '', q, 'y', size);
    this.need('where', '', o, 'out', size);
    const P = this.partsFor(costNs.where(size));
    if (P === 1) this.kernels.where(c.ptr, p.ptr, q.ptr, o.ptr, size);
    else this.runParts('where', size, P, 16, (_, start, n) => [c.ptr + 4 * start, p.ptr + 4 * start, q.ptr + 4 * start, o.ptr + 4 * start, n]);
  }

  /**
   * Write a program's steps, outputs and strided-operand layouts where the `program` kernel reads
   * them (programPtr, layoutPtr), checking every operand against `size` elements; what the kernel
   * takes besides: the step and output counts, where the outputs' records start, the layout
   * argument (0 when nothing is strided), and how many operands are strided.
   */
  private encodeProgram(kernel: string, program: ElementwiseProgram, inputs: readonly DeviceBuffer[], scalars: readonly number[], outputs: readonly DeviceBuffer[], size: number, layouts?: ProgramLayouts): { steps: number; outsAt: number; outputs: number; layout: number; stridedOperands: number } {
    const ins = inputs.map((b, i) => this.buf(kernel, b, `input ${i}`));
    const outs = outputs.map((b, k) => this.buf(kernel, b, `output ${k}`));
    const { steps } = program;
    if (steps.length > PROGRAM_LIMITS.steps || outs.length > PROGRAM_LIMITS.buffers) {
      throw new Error(`${this.name}.${kernel}: ${steps.length} steps and ${outs.length} outputs exceed the limits (${PROGRAM_LIMITS.steps}, ${PROGRAM_LIMITS.buffers})`);
    }
    // Strided operands: the iteration shape, then one record [offset, strides...] per operand.
    const layoutWords = new Int32Array(this.memoryObject.buffer, this.layoutPtr, LAYOUT_AREA_WORDS);
    const records: number[] = [];
    const strided = layouts && [...layouts.inputs, ...layouts.outputs].some((l) => l !== undefined) ? layouts : undefined;
    if (strided) {
      const r = strided.shape.length;
      if (r < 1 || r > this.layouts.maxDims || strided.shape.reduce((p, d) => p * d, 1) !== size) {
        throw new Error(`${this.name}.${kernel}: layouts shape [${strided.shape.join(', ')}] must have ${size} elements and 1 to ${this.layouts.maxDims} axes`);
      }
      layoutWords[0] = r;
      strided.shape.forEach((d, i) => (layoutWords[1 + i] = d));
    }
    let nextRecord = 1 + MAX_LAYOUT_DIMS;
    const record = (b: WasmBuffer, role: string, l: OperandLayout | undefined): number => {
      if (!l || !strided) {
        this.need(kernel, '', b, role, size);
        return 0;
      }
      this.inside(kernel, b, role, strided.shape, l);
      const at = nextRecord;
      layoutWords[at] = l.offset;
      l.strides.forEach((st, i) => (layoutWords[at + 1 + i] = st));
      nextRecord += 1 + strided.shape.length;
      return this.layoutPtr + 4 * at;
    };
    ins.forEach((b, i) => records.push(record(b, `input ${i}`, layouts?.inputs[i])));
    const outRecords = outs.map((b, k) => record(b, `output ${k}`, layouts?.outputs[k]));
    const words = new Int32Array(this.memoryObject.buffer, this.programPtr, 4 * steps.length + 4 * outs.length);
    const bits = new Float32Array(1);
    const bitsInt = new Int32Array(bits.buffer);
    steps.forEach((s, j) => {
      const w = 4 * j;
      switch (s.op) {
        case 'input':
          if (records[s.index]) {
            words[w] = 5; words[w + 1] = ins[s.index].ptr; words[w + 2] = records[s.index];
          } else {
            words[w] = 0; words[w + 1] = ins[s.index].ptr;
          }
          break;
        case 'scalar':
        case 'const':
          bits[0] = s.op === 'scalar' ? scalars[s.index] : s.value;
          words[w] = 1; words[w + 1] = bitsInt[0];
          break;
        case 'binary': words[w] = 2; words[w + 1] = binaryCode(s.fn); words[w + 2] = s.a; words[w + 3] = s.b; break;
        case 'unary': words[w] = 3; words[w + 1] = unaryCode(s.fn); words[w + 2] = s.a; break;
        case 'where': words[w] = 4; words[w + 1] = s.cond; words[w + 2] = s.a; words[w + 3] = s.b; break;
        default: s satisfies never;
      }
    });
    const outsAt = this.programPtr + 16 * steps.length;
    program.outputs.forEach((step, k) => {
      const w = 4 * steps.length + 4 * k;
      words[w] = step;
      words[w + 1] = outs[k].ptr;
      words[w + 2] = outRecords[k];
      words[w + 3] = 0;
    });
    return {
      steps: steps.length,
      outsAt,
      outputs: outs.length,
      layout: strided ? this.layoutPtr : 0,
      stridedOperands: records.filter((r) => r !== 0).length + outRecords.filter((r) => r !== 0).length,
    };
  }

  /**
   * An elementwise launch whose inputs read across their last axis (transposed views: last stride
   * neither 0 nor 1) keeps a compiled program out of row mode and gathers those inputs element by
   * element in every block (~4 ns an element where both sides are strided). Where copying each such
   * input once into a compact scratch buffer, in the iteration's axis order with its broadcast axes
   * dropped (the strided copy: 16 x 16 tiles for transposes), makes every operand a row operand
   * once the axes the new layouts allow are merged, this returns the launch reading those copies
   * (the ConvNet's NCHW input into its padded NHWC buffer; the flattened NCHW gradient into the
   * second pooling's backward program; NOTES.md section 60). Undefined where nothing changes. A
   * copy is exact, and elementwise means each element's result does not depend on where it is
   * read from, so the results are the same bits.
   */
  private rowsByGathering(inputs: readonly DeviceBuffer[], outputs: readonly DeviceBuffer[], size: number, layouts: ProgramLayouts | undefined): { inputs: DeviceBuffer[]; layouts: ProgramLayouts; scratch: WasmBuffer[] } | undefined {
    if (!layouts || size < GATHER_MIN_ELEMENTS || layouts.inputs.length !== inputs.length || layouts.outputs.length !== outputs.length) return undefined;
    const shape = layouts.shape;
    const r = shape.length;
    if (r < 1 || r > MAX_LAYOUT_DIMS || shape.reduce((p, d) => p * d, 1) !== size) return undefined;
    const wellFormed = (l: OperandLayout | undefined) => !l || l.strides.length === r;
    if (!layouts.inputs.every(wellFormed) || !layouts.outputs.every(wellFormed)) return undefined;
    const last = r - 1;
    // Outputs must already be rows: only inputs are copied.
    if (layouts.outputs.some((l) => l && l.strides[last] !== 1)) return undefined;
    const across = (l: OperandLayout | undefined) => !!l && l.strides[last] !== 0 && l.strides[last] !== 1 && l.strides.some((s) => s !== 0);
    const copied = layouts.inputs.map((l, i) => across(l) && !outputs.includes(inputs[i]));
    if (!copied.some(Boolean) || layouts.inputs.some((l, i) => across(l) && !copied[i])) return undefined;
    // The copies' layouts: compact over their own (non-broadcast) axes, 0 on the others.
    const ownElements: number[] = [];
    const newInputs = layouts.inputs.map((l, i) => {
      if (!copied[i]) return l;
      const strides = new Array<number>(r).fill(0);
      let s = 1;
      for (let d = last; d >= 0; d--) {
        if (l!.strides[d] === 0) continue;
        strides[d] = s;
        s *= shape[d];
      }
      ownElements[i] = s;
      return { strides, offset: 0 };
    });
    // Merge axis d into d + 1 where every strided operand is contiguous across them.
    const operands = [...newInputs, ...layouts.outputs];
    const merged: number[] = [shape[0]];
    const mergedStrides = operands.map((l) => (l ? [l.strides[0]] : undefined));
    for (let d = 1; d < r; d++) {
      const joins = operands.every((l, o) => !l || mergedStrides[o]![mergedStrides[o]!.length - 1] === l.strides[d] * shape[d]);
      operands.forEach((l, o) => {
        if (!l) return;
        const st = mergedStrides[o]!;
        if (joins) st[st.length - 1] = l.strides[d];
        else st.push(l.strides[d]);
      });
      if (joins) merged[merged.length - 1] *= shape[d];
      else merged.push(shape[d]);
    }
    const m = merged.length - 1;
    if (merged[m] % 4 !== 0 || mergedStrides.some((st) => st && st[m] !== 0 && st[m] !== 1)) return undefined;
    const layoutOf = (o: number): OperandLayout | undefined => {
      const l = operands[o];
      return l && { strides: mergedStrides[o]!, offset: l.offset };
    };
    const scratch: WasmBuffer[] = [];
    const gatheredInputs = [...inputs];
    try {
      copied.forEach((c, i) => {
        if (!c) return;
        const src = this.buf('elementwise', inputs[i], `input ${i}`);
        const l = layouts.inputs[i]!;
        const own = shape.map((_, d) => d).filter((d) => l.strides[d] !== 0);
        const dims = this.simplify('elementwise', { shape: own.map((d) => shape[d]), strides: own.map((d) => l.strides[d]), offset: l.offset }, src.size);
        const copy = this.scratchBuffer('elementwise', ownElements[i]);
        scratch.push(copy);
        if (dims) this.strided(0, src.ptr, copy.ptr, dims, 0);
        gatheredInputs[i] = copy;
      });
    } catch (error) {
      for (const s of scratch) this.allocator.release(s.ptr, s.blockBytes);
      throw error;
    }
    const inputCount = inputs.length;
    return {
      inputs: gatheredInputs,
      layouts: { shape: merged, inputs: newInputs.map((_, i) => layoutOf(i)), outputs: layouts.outputs.map((_, k) => layoutOf(inputCount + k)) },
      scratch,
    };
  }

  /**
   * An elementwise program in one launch: its compiled code (src/jit, unless compilePrograms is
   * off), else the `program` kernel, which runs every step's own binary/unary/where kernel over
   * blocks of PROGRAM_BLOCK elements with the blocks in L1 instead of a pass over memory per step.
   * Both give the unfused launches' results bit for bit.
   */
  elementwise(program: ElementwiseProgram, inputs: readonly DeviceBuffer[], scalars: readonly number[], outputs: readonly DeviceBuffer[], size: number, layouts?: ProgramLayouts): void {
    const gathered = this.rowsByGathering(inputs, outputs, size, layouts);
    if (gathered) {
      try {
        // The prototype's method: an instrumented backend counts this launch once.
        WasmBackend.prototype.elementwise.call(this, program, gathered.inputs, scalars, outputs, size, gathered.layouts);
      } finally {
        for (const s of gathered.scratch) this.allocator.release(s.ptr, s.blockBytes);
      }
      return;
    }
    const { steps, outsAt, outputs: nouts, layout, stridedOperands } = this.encodeProgram('elementwise', program, inputs, scalars, outputs, size, layouts);
    if (size === 0) return;
    const compiled = this.programs?.get(program, inputs.length, nouts, layouts, this.programPtr, outsAt, this.programRegs[0], layout);
    if (compiled) {
      this.compiledLaunches++;
      const rows = compiled.rows && layouts ? size / layouts.shape[layouts.shape.length - 1] : 0;
      const P = this.partsFor(size * compiled.nsPerElement + rows * compiled.rowOperands * NS_PER.row);
      if (P === 1) compiled.run(this.programPtr, outsAt, this.programRegs[0], 0, size, layout);
      else this.runCompiledParts(compiled, size, P, outsAt, layout, layouts?.shape);
      return;
    }
    const args = (_: number, start: number, n: number) => [this.programPtr, steps, outsAt, nouts, this.programRegs[0], start, n, layout];
    // Split, the registers (argument 4) are the running thread's own.
    const own: ThreadArgs = { at: [4], values: this.programRegs.map((r) => [r]) };
    const P = this.partsFor(costNs.program(size, steps, stridedOperands));
    if (P === 1) {
      this.kernels.program(...(args(0, 0, size) as [number, number, number, number, number, number, number, number]));
      return;
    }
    // Whole blocks per thread: each block then runs exactly as on one thread.
    this.runParts('program', size, P, this.kernels.PROGRAM_BLOCK.value as number, args, own);
  }

  /**
   * A compiled program split between threads: whole rows (row mode) or 256-element blocks per
   * part, each element computed as on one thread. Parts are claimed like any kernel's, so the
   * caller takes back what a late worker has not started; a worker that lacks the module compiles
   * it from the copy of its bytes this backend keeps in the heap (a few KiB per program, for the
   * backend's lifetime).
   */
  private runCompiledParts(c: CompiledEntry, size: number, P: number, outsAt: number, layout: number, shape: readonly number[] | undefined): void {
    this.splits++;
    const grain = c.rows && shape ? shape[shape.length - 1] : (this.kernels.PROGRAM_BLOCK.value as number);
    P = Math.max(1, Math.min(P, Math.ceil(size / grain)));
    const per = Math.ceil(size / P / grain) * grain;
    this.parts += Math.ceil(size / per);
    if (c.bytesAt === 0) {
      c.bytesAt = this.reserve(c.bytes.length);
      new Uint8Array(this.memoryObject.buffer, c.bytesAt, c.bytes.length).set(c.bytes);
    }
    const jobs: (Job | undefined)[] = [];
    for (let p = 0; p < P; p++) {
      const start = p * per;
      const n = Math.min(per, size - start);
      jobs.push(n > 0 ? { kernel: 'jit', args: [c.id, c.bytesAt, c.bytes.length, c.warmIterations, this.programPtr, outsAt, 0, start, n, layout] } : undefined);
    }
    // The program's registers (argument 6) are the running thread's own.
    const own: ThreadArgs = { at: [6], values: this.programRegs.map((r) => [r]) };
    this.pool!.run(jobs, (job) => c.run(job.args[4], job.args[5], job.args[6], job.args[7], job.args[8], job.args[9]), own);
  }

  // ---- splitting kernels across threads ----------------------------------------------------------

  /**
   * Kernel launches since creation that were split between threads (the thresholds are in
   * NOTES.md); with `threads: 1` always 0.
   */
  get splitLaunches(): number {
    return this.splits;
  }

  /** The parts those split launches were cut into, in all (options.partMicros). */
  get splitParts(): number {
    return this.parts;
  }

  /** `elementwise` launches that ran compiled code (src/jit) rather than the `program` kernel. */
  get compiledProgramLaunches(): number {
    return this.compiledLaunches;
  }

  /**
   * Parts to split a kernel into whose one-thread time is estimated at `ns` nanoseconds (split.ts):
   * 1 to run it on the calling thread alone, else at least one per thread.
   */
  private partsFor(ns: number): number {
    const threads = this.pool ? threadsFor(this.threads, ns) : 1;
    return threads === 1 ? 1 : partsFor(threads, ns, this.partNs);
  }

  /**
   * Run `kernel` on the threads, `count` items in `parts` ranges aligned to `grain` items, as equal
   * as the alignment allows (fewer where there are fewer grains); `args(p, start, n)` are part p's
   * arguments, `threadArgs` those that take the running thread's own value. With more parts than
   * threads, each thread claims part after part (src/threads.ts), so a late worker runs fewer.
   */
  private runParts(kernel: WorkerKernel, count: number, parts: number, grain: number, args: (p: number, start: number, n: number) => number[], threadArgs?: ThreadArgs): void {
    this.splits++;
    parts = Math.max(1, Math.min(parts, Math.ceil(count / grain)));
    const per = Math.ceil(count / parts / grain) * grain;
    this.parts += Math.ceil(count / per);
    const jobs: (Job | undefined)[] = [];
    for (let t = 0; t < parts; t++) {
      const start = t * per;
      const n = Math.min(per, count - start);
      jobs.push(n > 0 ? { kernel, args: args(t, start, n) } : undefined);
    }
    this.pool!.run(jobs, (job) => this.call(job), threadArgs);
  }

  private call(job: Job): void {
    const k = this.kernels as unknown as Record<string, (...args: number[]) => void>;
    k[job.kernel](...job.args);
  }

  /**
   * With a strided `layout`, the view is gathered into scratch memory inside this launch (the
   * strided copy kernel, 16 x 16 tiles for transposes) and reduced by the same code as a compact
   * input, so the result equals compact + reduce bit for bit; no separate launch or buffer.
   */
  reduce(op: ReduceOp, a: DeviceBuffer, out: DeviceBuffer, outSize: number, reduceSize: number, layout?: StridedLayout): void {
    if (!layout) {
      this.reduceCompact(op, this.buf('reduce', a, 'a'), out, outSize, reduceSize);
      return;
    }
    const src = this.buf('reduce', a, 'a');
    const n = outSize * reduceSize;
    const dims = this.simplify('reduce', layout, src.size);
    if ((dims?.total ?? 0) !== n) throw new Error(`${this.name}.reduce(${op}): layout shape [${layout.shape.join(', ')}] must have outSize * reduceSize = ${n} elements`);
    if (!dims) {
      this.reduceCompact(op, src, out, outSize, reduceSize);
      return;
    }
    if (op === 'sum' && dims.shape.length === 2 && dims.strides[0] === 1 && dims.strides[1] > 0 && dims.shape[0] === outSize && reduceSize <= SUM_CHUNK) {
      this.sumColumns(src, this.buf('reduce', out, 'out'), dims.offset, dims.strides[1], outSize, reduceSize);
      return;
    }
    const block = this.allocator.blockSize(n * 4);
    const ptr = this.allocator.allocate(block);
    try {
      this.ensureHeap('reduce', n * 4);
      this.strided(0, src.ptr, ptr, dims, 0);
      this.reduceCompact(op, new WasmBuffer(this, ptr, n, block), out, outSize, reduceSize);
    } finally {
      this.allocator.release(ptr, block);
    }
  }

  /**
   * Sums over a leading axis (the view is `rows` rows `rowStride` apart, each holding the `cols`
   * outputs' elements side by side from `offset`): the kernel sums columns of the rows in place,
   * each exactly the float64 sum the gather and row sum would give (assembly sumColumns), without
   * the gather. Threads take whole 16-column slices (one cache line of each row).
   */
  private sumColumns(src: WasmBuffer, o: WasmBuffer, offset: number, rowStride: number, cols: number, rows: number): void {
    this.need('reduce', 'sum', o, 'out', cols);
    const partials = this.scratchBuffer('reduce', 8 * cols);
    try {
      const a = src.ptr + 4 * offset;
      const P = Math.min(Math.ceil(cols / 16), this.partsFor(costNs.reduce('sum', cols, rows)));
      if (P <= 1) this.kernels.sumColumns(a, rowStride, rows, 0, cols, partials.ptr, o.ptr);
      else this.runParts('sumColumns', cols, P, 16, (_, c0, count) => [a, rowStride, rows, c0, c0 + count, partials.ptr, o.ptr]);
    } finally {
      this.allocator.release(partials.ptr, partials.blockBytes);
    }
  }

  private reduceCompact(op: ReduceOp, x: WasmBuffer, out: DeviceBuffer, outSize: number, reduceSize: number): void {
    const o = this.buf('reduce', out, 'out');
    if (!Number.isInteger(reduceSize) || reduceSize < 0) throw new Error(`${this.name}.reduce(${op}): reduceSize must be a non-negative integer, got ${reduceSize}`);
    this.need('reduce', op, o, 'out', outSize);
    this.need('reduce', op, x, 'a', outSize * reduceSize);
    if (outSize === 0) return;
    const code = reduceCode(op);
    if (op === 'sum' && reduceSize > SUM_CHUNK) {
      this.longSums(x, o, outSize, reduceSize);
      return;
    }
    // Whole rows per thread: every output element is the same sum as on one thread.
    const P = Math.min(outSize, this.partsFor(costNs.reduce(op, outSize, reduceSize)));
    if (P === 1) this.kernels.reduce(code, x.ptr, o.ptr, outSize, reduceSize);
    else this.runParts('reduce', outSize, P, 1, (_, j0, n) => [code, x.ptr + 4 * j0 * reduceSize, o.ptr + 4 * j0, n, reduceSize]);
  }

  /**
   * Sums of rows longer than SUM_CHUNK, with any number of threads: the float64 sums of the rows'
   * SUM_CHUNK-element chunks (the last one shorter) added in order. The result does not depend on
   * how the chunks are divided between threads, so a full sum can use every thread and still give
   * the same bits on one.
   */
  private longSums(x: WasmBuffer, o: WasmBuffer, outSize: number, reduceSize: number): void {
    const perRow = Math.ceil(reduceSize / SUM_CHUNK);
    const units = outSize * perRow;
    const block = this.allocator.blockSize(8 * units);
    const ptr = this.allocator.allocate(block);
    try {
      this.ensureHeap('reduce', 8 * units);
      const P = Math.min(units, this.partsFor(costNs.reduce('sum', outSize, reduceSize)));
      if (P === 1) this.kernels.sumChunks(x.ptr, reduceSize, SUM_CHUNK, 0, units, ptr);
      else this.runParts('sumChunks', units, P, 1, (_, u0, count) => [x.ptr, reduceSize, SUM_CHUNK, u0, u0 + count, ptr]);
      const partials = new Float64Array(this.memoryObject.buffer, ptr, units);
      const result = new Float32Array(outSize);
      for (let j = 0; j < outSize; j++) {
        let sum = 0;
        for (let c = j * perRow; c < (j + 1) * perRow; c++) sum += partials[c];
        result[j] = sum;
      }
      this.view().set(result, o.ptr >>> 2);
    } finally {
      this.allocator.release(ptr, block);
    }
  }

  matmul(a: DeviceBuffer, b: DeviceBuffer, out: DeviceBuffer, spec: MatmulSpec): void {
    this.product('matmul', a, b, out, spec);
  }

  /**
   * matmul's body. `epilogue` (matmulProgram) is the address of the encoded epilogue program's
   * arguments (epiloguePtr), which the kernel runs on each block of rows as soon as it is final.
   * With `afterRows` (one thread only) the product is computed in blocks of rows, each followed by
   * afterRows(first element, element count) over it.
   */
  private product(kernel: 'matmul' | 'matmulProgram', a: DeviceBuffer, b: DeviceBuffer, out: DeviceBuffer, spec: MatmulSpec, epilogue = 0, afterRows?: (start: number, count: number) => void): void {
    let A = this.buf(kernel, a, 'a');
    let B = this.buf(kernel, b, 'b');
    let C = this.buf(kernel, out, 'out');
    const { batch, m, k, n, aBatchStride, bBatchStride, transA, transB } = spec;
    const { aOffset = 0, bOffset = 0, outOffset = 0 } = spec;
    if (![batch, m, k, n, aBatchStride, bBatchStride, aOffset, bOffset, outOffset].every(isCount)) {
      const bad = Object.entries({ batch, m, k, n, aBatchStride, bBatchStride, aOffset, bOffset, outOffset }).find(([, v]) => !isCount(v))!;
      throw new Error(`${this.name}.${kernel}: spec.${bad[0]} must be a non-negative integer, got ${bad[1]}`);
    }
    const need = (offset: number, stride: number, size: number) => offset + (batch === 0 ? 0 : (batch - 1) * stride + size);
    const at = (offset: number) => (offset ? ` from offset ${offset}` : '');
    if (A.size < need(aOffset, aBatchStride, m * k)) throw new Error(`${this.name}.${kernel}: a holds ${A.size} elements, expected at least ${need(aOffset, aBatchStride, m * k)} for batch ${batch} of ${m}x${k}, batch stride ${aBatchStride}${at(aOffset)}`);
    if (B.size < need(bOffset, bBatchStride, k * n)) throw new Error(`${this.name}.${kernel}: b holds ${B.size} elements, expected at least ${need(bOffset, bBatchStride, k * n)} for batch ${batch} of ${k}x${n}, batch stride ${bBatchStride}${at(bOffset)}`);
    if (C.size < outOffset + batch * m * n) throw new Error(`${this.name}.${kernel}: out holds ${C.size} elements, expected at least ${outOffset + batch * m * n}${at(outOffset)}`);
    if (batch * m * n === 0) return;
    // Offsets only move where the operands start: the kernel sees the same compact blocks.
    A = this.at(A, aOffset);
    B = this.at(B, bOffset);
    C = this.at(C, outOffset);
    if (k === 0) {
      this.kernels.fill(C.ptr, 0, batch * m * n);
      afterRows?.(0, batch * m * n);
      if (epilogue) {
        const w = new Int32Array(this.memoryObject.buffer, epilogue, 5);
        this.kernels.program(w[0], w[1], w[2], w[3], this.programRegs[0], 0, batch * m * n, w[4]);
      }
      return;
    }
    // Element strides of opA (m x k) and opB (k x n) as stored.
    const ars = transA ? 1 : k;
    const acs = transA ? m : 1;
    const brs = transB ? 1 : n;
    const bcs = transB ? k : 1;
    const args = [A.ptr, B.ptr, C.ptr, m, n, k, ars, acs, brs, bcs, aBatchStride, bBatchStride];
    const plan = this.pool ? matmulPlan(this.threads, batch, m, k, n, this.partNs) : undefined;
    if (afterRows) {
      const rows = Math.max(1, Math.floor(EPILOGUE_BLOCK_ELEMENTS / n / MATMUL_ROW_BLOCK)) * MATMUL_ROW_BLOCK;
      for (let t = 0; t < batch; t++) {
        for (let i0 = 0; i0 < m; i0 += rows) {
          const i1 = Math.min(m, i0 + rows);
          this.kernels.matmul(A.ptr, B.ptr, C.ptr, m, n, k, ars, acs, brs, bcs, aBatchStride, bBatchStride, t, t + 1, i0, i1, 0, n, this.scratch[0], this.programRegs[0], 0);
          afterRows((t * m + i0) * n, (i1 - i0) * n);
        }
      }
    } else if (!plan || plan.threads === 1) this.kernels.matmul(A.ptr, B.ptr, C.ptr, m, n, k, ars, acs, brs, bcs, aBatchStride, bBatchStride, 0, batch, 0, m, 0, n, this.scratch[0], this.programRegs[0], epilogue);
    else if (plan.by === 'depth') this.splitDepth(kernel, args, plan.parts, epilogue);
    else this.splitMatmul(args, batch, m, n, plan.parts, plan.by, epilogue);
  }

  /**
   * A single product split by depth (split.ts matmulPlan): runs of the kernel's own depth blocks as
   * parts, each block into a slab of its own (assembly matmulDepth), then the slabs added in block
   * order into C (addSlabs, split by elements where that pays), as the kernel adds each block to C
   * on one thread, and the epilogue over the result: the same bits as one thread.
   */
  private splitDepth(kernel: string, args: number[], P: number, epilogue: number): void {
    const [a, b, c, m, n, k, ars, acs, brs, bcs] = args;
    const { count } = depthBlocks(k);
    const mn = m * n;
    const slabs = this.scratchBuffer(kernel, count * mn);
    try {
      const own: ThreadArgs = { at: [12], values: this.scratch.map((s) => [s]) };
      this.runParts('matmulDepth', count, P, 1, (_, d0, blocks) => [a, b, slabs.ptr, m, n, k, ars, acs, brs, bcs, d0, d0 + blocks, 0], own);
      const sum = this.partsFor(count * mn * NS_PER.ewise);
      if (sum === 1) this.kernels.addSlabs(slabs.ptr, count, mn, 0, mn, c);
      else this.runParts('addSlabs', mn, sum, 4, (_, e0, size) => [slabs.ptr, count, mn, e0, e0 + size, c]);
    } finally {
      this.allocator.release(slabs.ptr, slabs.blockBytes);
    }
    if (epilogue) {
      const w = new Int32Array(this.memoryObject.buffer, epilogue, 5);
      this.kernels.program(w[0], w[1], w[2], w[3], this.programRegs[0], 0, mn, w[4]);
    }
  }

  /**
   * Split a matmul (`args`: its first twelve kernel arguments) between T threads as `by` says
   * (split.ts matmulPlan): by batch, by columns (each part packs its slice of B and all of A) or by
   * rows (all of B and its slice of A). Slices start on micro-tile boundaries, so each part's tiles
   * are the ones a single thread would compute, and every element is the same sum.
   */
  private splitMatmul(args: number[], batch: number, m: number, n: number, P: number, by: MatmulSplit, epilogue: number): void {
    // The packing blocks and the epilogue's registers (arguments 18 and 19) are the running
    // thread's own, whichever part it claims.
    const job = (t0: number, t1: number, i0: number, i1: number, j0: number, j1: number) => [...args, t0, t1, i0, i1, j0, j1, 0, 0, epilogue];
    const own: ThreadArgs = { at: [18, 19], values: this.scratch.map((s, t) => [s, this.programRegs[t]]) };
    if (by === 'batch') {
      this.runParts('matmul', batch, P, 1, (_, t0, count) => job(t0, t0 + count, 0, m, 0, n), own);
    } else if (by === 'columns') {
      this.runParts('matmul', n, P, this.kernels.NR.value as number, (_, j0, count) => job(0, batch, 0, m, j0, j0 + count), own);
    } else {
      this.runParts('matmul', m, P, this.kernels.MR.value as number, (_, i0, count) => job(0, batch, i0, i0 + count, 0, n), own);
    }
  }

  // ---- fused kernels (issue 14) -------------------------------------------------------------------

  /**
   * The elements of `b` from `offset` on, as a buffer of its own (a moved pointer, not registered
   * with the allocator): what an operand offset or an output slice is to the kernels.
   */
  private at(b: WasmBuffer, offset: number): WasmBuffer {
    return offset === 0 ? b : new WasmBuffer(this, b.ptr + 4 * offset, b.size - offset, 0);
  }

  /**
   * The matmul with the epilogue program run by the matmul kernel itself on each block of rows of
   * the product as soon as the block is final (after its last k slice, while it is in L1/L2), in
   * place: the program's input 0 and its output are the product in `out`. The program is this
   * backend's `program` kernel and the product its `matmul`, so the result is their composition bit
   * for bit (every element's program result is independent of the block it runs in), on any threads.
   */
  matmulProgram(a: DeviceBuffer, b: DeviceBuffer, out: DeviceBuffer, spec: MatmulSpec, epilogue: MatmulEpilogue): void {
    const C = this.buf('matmulProgram', out, 'out');
    const { program, inputs, scalars, layouts } = epilogue;
    if (program.outputs.length !== 1 || program.inputs !== inputs.length + 1 || layouts.length !== inputs.length) {
      throw new Error(`${this.name}.matmulProgram: the epilogue program must have one output and ${inputs.length + 1} inputs (the product, then ${inputs.length} with as many layouts); got ${program.outputs.length} outputs, ${program.inputs} inputs, ${layouts.length} layouts`);
    }
    const { batch, m, n } = spec;
    const outOffset = spec.outOffset ?? 0;
    if (!isCount(outOffset) || outOffset > C.size) throw new Error(`${this.name}.matmulProgram: spec.outOffset ${outOffset} must be an integer in [0, ${C.size}]`);
    const product = this.at(C, outOffset);
    const epilogueLayouts: ProgramLayouts = { shape: [batch, m, n], inputs: [undefined, ...layouts], outputs: [undefined] };
    const enc = this.encodeProgram('matmulProgram', program, [product, ...inputs], scalars, [product], batch * m * n, epilogueLayouts);
    const after = this.epilogueAfter(program, inputs.length + 1, epilogueLayouts, enc.outsAt, enc.layout, spec);
    if (after) {
      const epilogueOver = (start: number, count: number) => after.run(this.programPtr, enc.outsAt, this.programRegs[0], start, count, enc.layout);
      if (batch * m * n <= EPILOGUE_AFTER_ELEMENTS) {
        this.product('matmulProgram', a, b, out, spec);
        if (batch * m * n > 0) epilogueOver(0, batch * m * n);
      } else {
        this.product('matmulProgram', a, b, out, spec, 0, epilogueOver);
      }
      return;
    }
    new Int32Array(this.memoryObject.buffer, this.epiloguePtr, 5).set([this.programPtr, enc.steps, enc.outsAt, enc.outputs, enc.layout]);
    this.product('matmulProgram', a, b, out, spec, this.epiloguePtr);
  }

  /**
   * matmulProgram's epilogue as its compiled code (src/jit), run over the whole product after a
   * one-thread matmul whose product stays in L2 (EPILOGUE_AFTER_ELEMENTS), or after each block of
   * rows of a larger one (EPILOGUE_BLOCK_ELEMENTS): a pass of compiled code over it costs less than
   * the block interpreter on each block of rows inside the kernel (NOTES.md sections 25 and 43).
   * Undefined for a split product, and at a program's first launch (src/jit compiles at the
   * second): then the kernel runs the interpreter. The bits are the same either way.
   */
  private epilogueAfter(program: ElementwiseProgram, inputCount: number, layouts: ProgramLayouts, outsAt: number, layout: number, spec: MatmulSpec): CompiledEntry | undefined {
    const { batch, m, k, n } = spec;
    if (!this.programs) return undefined;
    if (this.pool && matmulPlan(this.threads, batch, m, k, n).threads > 1) return undefined;
    return this.programs.get(program, inputCount, 1, layouts, this.programPtr, outsAt, this.programRegs[0], layout) ?? undefined;
  }

  /**
   * The program's values into a scratch block, then the reduction of its rows, in one launch; each
   * step is this backend's own kernel body, so the result is the composition bit for bit (for
   * logsumexp, the composition of PROGRAM_REDUCE_OPS's reference, see logsumexp below).
   */
  reduceProgram(op: ProgramReduceOp, program: ElementwiseProgram, inputs: readonly DeviceBuffer[], scalars: readonly number[], out: DeviceBuffer, outSize: number, reduceSize: number, layouts?: ProgramLayouts, outOffset = 0): void {
    const o = this.buf('reduceProgram', out, 'out');
    if (!isCount(outSize) || !isCount(reduceSize) || !isCount(outOffset)) {
      throw new Error(`${this.name}.reduceProgram(${op}): outSize, reduceSize and outOffset must be non-negative integers, got ${outSize}, ${reduceSize}, ${outOffset}`);
    }
    if (op !== 'logsumexp' && !(REDUCE_OPS as readonly string[]).includes(op)) throw new Error(`${this.name}.reduceProgram: unknown reduction '${String(op)}'`);
    if (program.outputs.length !== 1) throw new Error(`${this.name}.reduceProgram(${op}): the program must have exactly one output, got ${program.outputs.length}`);
    this.need('reduceProgram', op, o, 'out', outOffset + outSize);
    if (outSize === 0) return;
    const n = outSize * reduceSize;
    const values = this.scratchBuffer('reduceProgram', n);
    try {
      if (n > 0) {
        WasmBackend.prototype.elementwise.call(this, program, inputs, scalars, [values], n, layouts && { shape: layouts.shape, inputs: layouts.inputs, outputs: [undefined] });
      }
      const dst = this.at(o, outOffset);
      if (op === 'logsumexp') this.logsumexp(values, dst, outSize, reduceSize);
      else this.reduceCompact(op, values, dst, outSize, reduceSize);
    } finally {
      this.allocator.release(values.ptr, values.blockBytes);
    }
  }

  /** A block of the heap for one launch's temporary values (release it with allocator.release). */
  private scratchBuffer(op: string, size: number): WasmBuffer {
    const block = this.allocator.blockSize(size * 4);
    const ptr = this.allocator.allocate(block);
    try {
      this.ensureHeap(op, size * 4);
    } catch (error) {
      this.allocator.release(ptr, block);
      throw error;
    }
    return new WasmBuffer(this, ptr, size, block);
  }

  /**
   * logsumexp of each row of `x` into `out`, equal to what the frontend composes on this backend
   * from `reduce` max, an `elementwise` exp(x - m), `reduce` sum and `elementwise` m + log(s) (m
   * itself where it is not finite). Rows up to LOGSUMEXP_ROW run in one kernel pass through the
   * very same exp, log and row-sum code; longer rows go through reduceCompact, whose sums of long
   * rows may be split between threads differently from a single row pass.
   */
  private logsumexp(x: WasmBuffer, out: WasmBuffer, outSize: number, reduceSize: number): void {
    if (reduceSize <= LOGSUMEXP_ROW) {
      const row = this.scratchBuffer('reduceProgram', Math.max(reduceSize, 1));
      try {
        this.kernels.logsumexpRows(x.ptr, out.ptr, outSize, reduceSize, row.ptr);
      } finally {
        this.allocator.release(row.ptr, row.blockBytes);
      }
      return;
    }
    const stats = this.scratchBuffer('reduceProgram', 2 * outSize);
    const m = this.at(stats, 0);
    const s = this.at(stats, outSize);
    try {
      this.reduceCompact('max', x, m, outSize, reduceSize);
      const heap = this.view();
      const ms = heap.slice(m.ptr >>> 2, (m.ptr >>> 2) + outSize);
      const scalar = this.argPtr >>> 2;
      const sub = binaryCode('sub');
      const exp = unaryCode('exp');
      for (let j = 0; j < outSize; j++) {
        // Rows whose max is not finite keep it as their result: their exp values are never used.
        if (!Number.isFinite(ms[j])) continue;
        const row = x.ptr + 4 * j * reduceSize;
        this.view().fill(ms[j], scalar, scalar + 4);
        this.kernels.binary(sub, row, this.argPtr, 15, row, reduceSize);
        this.kernels.unary(exp, row, row, reduceSize);
      }
      this.reduceCompact('sum', x, s, outSize, reduceSize);
      this.kernels.unary(unaryCode('log'), s.ptr, s.ptr, outSize);
      const logs = this.view().subarray(s.ptr >>> 2, (s.ptr >>> 2) + outSize);
      const result = new Float32Array(outSize);
      // float64 addition of two float32 values rounds to the float32 sum exactly.
      for (let j = 0; j < outSize; j++) result[j] = Number.isFinite(ms[j]) ? ms[j] + logs[j] : ms[j];
      this.view().set(result, out.ptr >>> 2);
    } finally {
      this.allocator.release(stats.ptr, stats.blockBytes);
    }
  }

  // ---- lifecycle -------------------------------------------------------------------------------

  async sync(): Promise<void> {}

  /** Stop the worker threads and drop the heap. Safe to call twice. */
  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    this.pool?.destroy();
  }
}

function isCount(v: number): boolean {
  return Number.isInteger(v) && v >= 0;
}

/** Create a WASM backend; async because compiling the module and starting workers is. */
export function createWasmBackend(options: WasmBackendOptions = {}): Promise<WasmBackend> {
  return WasmBackend.create(options);
}

/**
 * Register the WASM backend (async factory) under 'wasm' or options.name. Create it with
 * `await initBackend(name)` or `await setBackend(name)`. Returns the name.
 */
export function registerWasmBackend(options: WasmBackendOptions = {}): string {
  const name = options.name ?? 'wasm';
  registerBackend(name, () => createWasmBackend(options), { overwrite: true });
  return name;
}
