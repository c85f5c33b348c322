/**
 * A needle backend, ready to copy: every kernel of the Backend interface as a plain loop over a
 * Float32Array. Replace the loops with your device's kernels one at a time; the conformance kit
 * (test/conformance.test.ts) says after each step whether the backend still behaves like the CPU
 * reference.
 */
import {
  applyBinary,
  applyUnary,
  instrumentBackend,
  registerBackend,
  type Backend,
  type BackendStats,
  type BinaryOp,
  type DeviceBuffer,
  type MatmulSpec,
  type MemoryInfo,
  type ReduceOp,
  type StridedLayout,
  type UnaryOp,
} from '@needle/ndarray';

/** This backend's buffer handle: the frontend never looks inside, only this backend does. */
class TemplateBuffer implements DeviceBuffer {
  constructor(readonly data: Float32Array) {}
  get size(): number {
    return this.data.length;
  }
}

export interface TemplateBackendOptions {
  /** The name the backend reports and registers under (default 'template'). */
  name?: string;
}

export class TemplateBackend implements Backend {
  readonly name: string;
  private buffers = 0;
  private bytes = 0;
  private readonly counter;

  constructor(options: TemplateBackendOptions = {}) {
    this.name = options.name ?? 'template';
    // Last in the constructor: wraps the kernel methods so stats() counts launches and bytes moved.
    this.counter = instrumentBackend(this);
  }

  /** Kernel launches by family and bytes moved since the last resetStats() (profiling, the bench). */
  stats(): BackendStats {
    return this.counter.snapshot();
  }

  resetStats(): void {
    this.counter.reset();
  }

  /** The storage behind a handle; a handle from another backend is a caller bug worth a clear error. */
  private view(buf: DeviceBuffer): Float32Array {
    if (!(buf instanceof TemplateBuffer)) throw new Error(`${this.name}: got a buffer that belongs to another backend`);
    return buf.data;
  }

  // ---- buffers ---------------------------------------------------------------------------------

  alloc(size: number): DeviceBuffer {
    if (!Number.isInteger(size) || size < 0) throw new Error(`${this.name}.alloc: size must be a non-negative integer, got ${size}`);
    this.buffers++;
    this.bytes += size * 4;
    return new TemplateBuffer(new Float32Array(size));
  }

  free(buf: DeviceBuffer): void {
    this.view(buf);
    this.buffers--;
    this.bytes -= buf.size * 4;
  }

  write(buf: DeviceBuffer, data: Float32Array, offset = 0): void {
    this.view(buf).set(data, offset);
  }

  async read(buf: DeviceBuffer, size?: number): Promise<Float32Array> {
    return this.view(buf).slice(0, size ?? buf.size);
  }

  /** Optional: a device that can only read asynchronously (like WebGPU) leaves this out. */
  readSync(buf: DeviceBuffer, size?: number): Float32Array {
    return this.view(buf).slice(0, size ?? buf.size);
  }

  memory(): MemoryInfo {
    return { buffers: this.buffers, bytes: this.bytes };
  }

  // ---- kernels: compact inputs, except the three that take a strided layout ---------------------

  fill(out: DeviceBuffer, value: number, size: number): void {
    this.view(out).fill(value, 0, size);
  }

  compact(a: DeviceBuffer, out: DeviceBuffer, layout: StridedLayout): void {
    const x = this.view(a);
    const o = this.view(out);
    forEachStrided(layout, (i, at) => {
      o[i] = x[at];
    });
  }

  ewiseSetitem(a: DeviceBuffer, out: DeviceBuffer, layout: StridedLayout): void {
    const x = this.view(a);
    const o = this.view(out);
    forEachStrided(layout, (i, at) => {
      o[at] = x[i];
    });
  }

  scalarSetitem(value: number, out: DeviceBuffer, layout: StridedLayout): void {
    const o = this.view(out);
    forEachStrided(layout, (_, at) => {
      o[at] = value;
    });
  }

  ewise(op: BinaryOp, a: DeviceBuffer, b: DeviceBuffer, out: DeviceBuffer, size: number): void {
    const x = this.view(a);
    const y = this.view(b);
    const o = this.view(out);
    for (let i = 0; i < size; i++) o[i] = applyBinary(op, x[i], y[i]);
  }

  scalar(op: BinaryOp, a: DeviceBuffer, scalar: number, out: DeviceBuffer, size: number): void {
    const x = this.view(a);
    const o = this.view(out);
    for (let i = 0; i < size; i++) o[i] = applyBinary(op, x[i], scalar);
  }

  unary(op: UnaryOp, a: DeviceBuffer, out: DeviceBuffer, size: number): void {
    const x = this.view(a);
    const o = this.view(out);
    for (let i = 0; i < size; i++) o[i] = applyUnary(op, x[i]);
  }

  where(cond: DeviceBuffer, x: DeviceBuffer, y: DeviceBuffer, out: DeviceBuffer, size: number): void {
    const c = this.view(cond);
    const a = this.view(x);
    const b = this.view(y);
    const o = this.view(out);
    // `c[i] !== 0` is true for NaN, as the interface asks.
    for (let i = 0; i < size; i++) o[i] = c[i] !== 0 ? a[i] : b[i];
  }

  // Inputs arrive compact: this backend declares no `layouts`, so the frontend compacts strided
  // views first. Declaring `layouts = { elementwise, reduce, maxDims }` (once `elementwise` exists)
  // lets `elementwise` and `reduce` take strided operands instead; see ProgramLayouts in the contract.
  reduce(op: ReduceOp, a: DeviceBuffer, out: DeviceBuffer, outSize: number, reduceSize: number): void {
    const x = this.view(a);
    const o = this.view(out);
    for (let j = 0; j < outSize; j++) o[j] = reduceBlock(op, x.subarray(j * reduceSize, (j + 1) * reduceSize));
  }

  matmul(a: DeviceBuffer, b: DeviceBuffer, out: DeviceBuffer, spec: MatmulSpec): void {
    const A = this.view(a);
    const B = this.view(b);
    const O = this.view(out);
    const { batch, m, k, n, aBatchStride, bBatchStride, transA, transB } = spec;
    for (let t = 0; t < batch; t++) {
      const a0 = t * aBatchStride;
      const b0 = t * bBatchStride;
      for (let i = 0; i < m; i++) {
        for (let j = 0; j < n; j++) {
          let acc = 0;
          for (let p = 0; p < k; p++) {
            const av = transA ? A[a0 + p * m + i] : A[a0 + i * k + p];
            const bv = transB ? B[b0 + j * k + p] : B[b0 + p * n + j];
            acc += av * bv;
          }
          O[t * m * n + i * n + j] = acc;
        }
      }
    }
  }
}

/**
 * One block of a reduction. The switch is exhaustive by type: when @needle/ndarray adds a reduce op,
 * `op satisfies never` stops compiling until this backend handles it.
 */
function reduceBlock(op: ReduceOp, x: Float32Array): number {
  switch (op) {
    case 'sum': {
      let s = 0;
      for (const v of x) s += v;
      return s;
    }
    case 'max':
    case 'min': {
      // NaN wins, as on the CPU reference.
      let best = op === 'max' ? -Infinity : Infinity;
      for (const v of x) {
        if (Number.isNaN(v)) return NaN;
        if (op === 'max' ? v > best : v < best) best = v;
      }
      return best;
    }
    case 'argmax':
    case 'argmin': {
      // The first extreme element, or the first NaN.
      let at = 0;
      for (let i = 0; i < x.length; i++) {
        if (Number.isNaN(x[i])) return i;
        if (op === 'argmax' ? x[i] > x[at] : x[i] < x[at]) at = i;
      }
      return at;
    }
    default:
      return op satisfies never;
  }
}

/** Visit the elements of a strided view in row-major order: `visit(flatIndex, bufferPosition)`. */
function forEachStrided(layout: StridedLayout, visit: (i: number, at: number) => void): void {
  const { shape, strides, offset } = layout;
  const size = shape.reduce((p, d) => p * d, 1);
  if (size === 0) return;
  const index = new Array<number>(shape.length).fill(0);
  let at = offset;
  for (let i = 0; i < size; i++) {
    visit(i, at);
    // Advance the index like an odometer, keeping `at` in step.
    for (let d = shape.length - 1; d >= 0; d--) {
      index[d]++;
      at += strides[d];
      if (index[d] < shape[d]) break;
      at -= strides[d] * shape[d];
      index[d] = 0;
    }
  }
}

export function createTemplateBackend(options: TemplateBackendOptions = {}): TemplateBackend {
  return new TemplateBackend(options);
}

/** Register under `options.name` (default 'template'), so `setBackend('template')` finds it. */
export function registerTemplateBackend(options: TemplateBackendOptions = {}): TemplateBackend {
  const backend = createTemplateBackend(options);
  registerBackend(backend.name, () => backend, { overwrite: true });
  return backend;
}
