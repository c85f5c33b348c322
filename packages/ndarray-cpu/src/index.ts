import {
  applyBinary,
  isRowIndex,
  applyUnary,
  instrumentBackend,
  registerBackend,
  type BackendStats,
  type Backend,
  type BinaryOp,
  type DeviceBuffer,
  type ElementwiseProgram,
  type MatmulEpilogue,
  type MatmulSpec,
  type MemoryInfo,
  type ProgramReduceOp,
  type OperandLayout,
  type ProgramLayouts,
  type ReduceOp,
  type StridedLayout,
  type UnaryOp,
} from '@needle/ndarray';

/** A CPU buffer is a Float32Array on the JS heap. */
class CpuBuffer implements DeviceBuffer {
  constructor(readonly data: Float32Array) {}
  get size(): number {
    return this.data.length;
  }
}

export interface CpuBackendOptions {
  /** Name under which the backend reports itself (default 'cpu'). */
  name?: string;
  /**
   * Offer `readSync` (default true). Turning it off makes this backend behave like WebGPU for
   * reads, which is how the autograd/nn/optim suites prove they never need a synchronous read.
   */
  readSync?: boolean;
}

/** Elements per block of an elementwise program: every step's block stays in L1. */
const PROGRAM_BLOCK = 256;

/** Matmul cache block: 64x64 float32 tiles of the three operands stay within a 48 KiB L1/L2 slice. */
const BLOCK = 64;

/**
 * The reference backend: every kernel is a plain loop over Float32Array, written to be read.
 * It is the living spec the WASM and WebGPU backends are tested against.
 */
export class CpuBackend implements Backend {
  readonly name: string;
  readonly readSync?: (buf: DeviceBuffer, size?: number) => Float32Array;
  private live = 0;
  private liveBytes = 0;
  private readonly counter;

  constructor(options: CpuBackendOptions = {}) {
    this.name = options.name ?? 'cpu';
    if (options.readSync !== false) {
      this.readSync = (buf, size) => this.data(buf).slice(0, size ?? buf.size);
    }
    this.counter = instrumentBackend(this);
  }

  /** Every strided form: the kernels walk any layout (the limit only matches the other backends'). */
  readonly layouts = { elementwise: true, reduce: true, maxDims: 8, matmulOffsets: true, sharedOutputs: true } as const;

  stats(): BackendStats {
    return this.counter.snapshot();
  }

  resetStats(): void {
    this.counter.reset();
  }

  private data(buf: DeviceBuffer): Float32Array {
    if (!(buf instanceof CpuBuffer)) {
      throw new Error(`${this.name}: got a buffer that belongs to another backend`);
    }
    return buf.data;
  }

  alloc(size: number): DeviceBuffer {
    if (!Number.isInteger(size) || size < 0) throw new Error(`${this.name}.alloc: size must be a non-negative integer, got ${size}`);
    // Allocate before counting: a size the JS heap refuses must leave memory() untouched.
    const buf = new CpuBuffer(new Float32Array(size));
    this.live++;
    this.liveBytes += size * 4;
    return buf;
  }

  free(buf: DeviceBuffer): void {
    this.data(buf);
    this.live--;
    this.liveBytes -= buf.size * 4;
  }

  write(buf: DeviceBuffer, data: Float32Array, offset = 0): void {
    this.data(buf).set(data, offset);
  }

  async read(buf: DeviceBuffer, size?: number): Promise<Float32Array> {
    return this.data(buf).slice(0, size ?? buf.size);
  }

  memory(): MemoryInfo {
    return { buffers: this.live, bytes: this.liveBytes };
  }

  fill(out: DeviceBuffer, value: number, size: number): void {
    this.data(out).fill(value, 0, size);
  }

  compact(a: DeviceBuffer, out: DeviceBuffer, layout: StridedLayout): void {
    const src = this.data(a);
    const dst = this.data(out);
    let i = 0;
    forEachStridedIndex(layout, (j) => {
      dst[i++] = src[j];
    });
  }

  ewiseSetitem(a: DeviceBuffer, out: DeviceBuffer, layout: StridedLayout): void {
    const src = this.data(a);
    const dst = this.data(out);
    let i = 0;
    forEachStridedIndex(layout, (j) => {
      dst[j] = src[i++];
    });
  }

  scalarSetitem(value: number, out: DeviceBuffer, layout: StridedLayout): void {
    const dst = this.data(out);
    forEachStridedIndex(layout, (j) => {
      dst[j] = value;
    });
  }

  ewise(op: BinaryOp, a: DeviceBuffer, b: DeviceBuffer, out: DeviceBuffer, size: number): void {
    const x = this.data(a);
    const y = this.data(b);
    const o = this.data(out);
    for (let i = 0; i < size; i++) o[i] = applyBinary(op, x[i], y[i]);
  }

  scalar(op: BinaryOp, a: DeviceBuffer, scalar: number, out: DeviceBuffer, size: number): void {
    const x = this.data(a);
    const o = this.data(out);
    const s = Math.fround(scalar);
    for (let i = 0; i < size; i++) o[i] = applyBinary(op, x[i], s);
  }

  unary(op: UnaryOp, a: DeviceBuffer, out: DeviceBuffer, size: number): void {
    const x = this.data(a);
    const o = this.data(out);
    for (let i = 0; i < size; i++) o[i] = applyUnary(op, x[i]);
  }

  where(cond: DeviceBuffer, x: DeviceBuffer, y: DeviceBuffer, out: DeviceBuffer, size: number): void {
    const c = this.data(cond);
    const p = this.data(x);
    const q = this.data(y);
    const o = this.data(out);
    for (let i = 0; i < size; i++) o[i] = c[i] !== 0 ? p[i] : q[i];
  }

  /**
   * An elementwise program, interpreted step by step over blocks of PROGRAM_BLOCK elements: every
   * step's block is a Float32Array (so each result is rounded to float32, like a kernel's output),
   * and outputs are written after the whole block was computed (in-place updates read first).
   */
  elementwise(program: ElementwiseProgram, inputs: readonly DeviceBuffer[], scalars: readonly number[], outputs: readonly DeviceBuffer[], size: number, layouts?: ProgramLayouts): void {
    this.runProgram(program, inputs, scalars, outputs, size, layouts);
  }

  // The kernels' bodies, shared with the fused kernels below without going through the counted
  // public methods (one launch of matmulProgram is one launch, not three).
  private runProgram(program: ElementwiseProgram, inputs: readonly DeviceBuffer[], scalars: readonly number[], outputs: readonly DeviceBuffer[], size: number, layouts?: ProgramLayouts): void {
    const ins = inputs.map((b) => this.data(b));
    const outs = outputs.map((b) => this.data(b));
    const { steps } = program;
    const regs = steps.map(() => new Float32Array(PROGRAM_BLOCK));
    const views: Float32Array[] = new Array<Float32Array>(steps.length);
    steps.forEach((s, j) => {
      if (s.op === 'scalar') regs[j].fill(scalars[s.index]);
      else if (s.op === 'const') regs[j].fill(s.value);
      views[j] = regs[j];
    });
    // Strided operands: the element offsets of the current block, gathered or scattered through.
    const inWalk = (layouts?.inputs ?? []).map((l) => l && new StridedWalk(layouts!.shape, l));
    const outWalk = (layouts?.outputs ?? []).map((l) => l && new StridedWalk(layouts!.shape, l));
    for (let base = 0; base < size; base += PROGRAM_BLOCK) {
      const n = Math.min(PROGRAM_BLOCK, size - base);
      for (let j = 0; j < steps.length; j++) {
        const s = steps[j];
        const r = regs[j];
        switch (s.op) {
          case 'input': {
            const walk = inWalk[s.index];
            if (!walk) {
              views[j] = ins[s.index].subarray(base, base + n);
              break;
            }
            const at = walk.block(base, n);
            const src = ins[s.index];
            for (let i = 0; i < n; i++) r[i] = src[at[i]];
            views[j] = r;
            break;
          }
          case 'scalar':
          case 'const': break;
          case 'binary': {
            const x = views[s.a];
            const y = views[s.b];
            for (let i = 0; i < n; i++) r[i] = applyBinary(s.fn, x[i], y[i]);
            break;
          }
          case 'unary': {
            const x = views[s.a];
            for (let i = 0; i < n; i++) r[i] = applyUnary(s.fn, x[i]);
            break;
          }
          case 'where': {
            const c = views[s.cond];
            const x = views[s.a];
            const y = views[s.b];
            for (let i = 0; i < n; i++) r[i] = c[i] !== 0 ? x[i] : y[i];
            break;
          }
          default: s satisfies never;
        }
      }
      // Copy every output's block out first: an output may be the buffer another output's value
      // was read from (views[j] of an input step).
      const blocks = program.outputs.map((id) => views[id].slice(0, n));
      blocks.forEach((b, k) => {
        const walk = outWalk[k];
        if (!walk) {
          outs[k].set(b, base);
          return;
        }
        const at = walk.block(base, n);
        const dst = outs[k];
        for (let i = 0; i < n; i++) dst[at[i]] = b[i];
      });
    }
  }

  /** With a layout, `a`'s view is gathered into a compact copy first: the reference is the composition. */
  reduce(op: ReduceOp, a: DeviceBuffer, out: DeviceBuffer, outSize: number, reduceSize: number, layout?: StridedLayout): void {
    this.reduceInto(op, a, out, outSize, reduceSize, layout);
  }

  private reduceInto(op: ReduceOp, a: DeviceBuffer, out: DeviceBuffer, outSize: number, reduceSize: number, layout?: StridedLayout): void {
    let x = this.data(a);
    if (layout) {
      const gathered = new Float32Array(outSize * reduceSize);
      let i = 0;
      forEachStridedIndex(layout, (j) => {
        gathered[i++] = x[j];
      });
      x = gathered;
    }
    const o = this.data(out);
    for (let j = 0; j < outSize; j++) {
      const base = j * reduceSize;
      o[j] = reduceBlock(op, x, base, reduceSize);
    }
  }

  gatherRows(a: DeviceBuffer, indices: DeviceBuffer, out: DeviceBuffer, rows: number, rowSize: number, count: number, missing: number): void {
    const x = this.data(a);
    const idx = this.data(indices);
    const o = this.data(out);
    for (let i = 0; i < count; i++) {
      const r = idx[i];
      if (isRowIndex(r, rows)) o.set(x.subarray(r * rowSize, (r + 1) * rowSize), i * rowSize);
      else o.fill(missing, i * rowSize, (i + 1) * rowSize);
    }
  }

  scatterAddRows(a: DeviceBuffer, indices: DeviceBuffer, out: DeviceBuffer, rows: number, rowSize: number, count: number): void {
    const x = this.data(a);
    const idx = this.data(indices);
    const o = this.data(out);
    for (let i = 0; i < count; i++) {
      const r = idx[i];
      if (!isRowIndex(r, rows)) continue;
      const src = i * rowSize;
      const dst = r * rowSize;
      for (let j = 0; j < rowSize; j++) o[dst + j] += x[src + j];
    }
  }

  /** The reference is the composition: the product into a scratch array, then the program over it. */
  matmulProgram(a: DeviceBuffer, b: DeviceBuffer, out: DeviceBuffer, spec: MatmulSpec, epilogue: MatmulEpilogue): void {
    const { batch, m, n } = spec;
    const product = new CpuBuffer(new Float32Array(batch * m * n));
    this.product(a, b, product, { ...spec, outOffset: 0 });
    const outOffset = spec.outOffset ?? 0;
    const shape = [batch, m, n];
    this.runProgram(epilogue.program, [product, ...epilogue.inputs], epilogue.scalars, [out], batch * m * n, {
      shape,
      inputs: [undefined, ...epilogue.layouts],
      outputs: [outOffset ? { strides: [m * n, n, 1], offset: outOffset } : undefined],
    });
  }

  /** The reference is the composition: the program's values into a scratch array, then the reduction. */
  reduceProgram(op: ProgramReduceOp, program: ElementwiseProgram, inputs: readonly DeviceBuffer[], scalars: readonly number[], out: DeviceBuffer, outSize: number, reduceSize: number, layouts?: ProgramLayouts, outOffset = 0): void {
    const values = new CpuBuffer(new Float32Array(outSize * reduceSize));
    this.runProgram(program, inputs, scalars, [values], outSize * reduceSize, layouts && { shape: layouts.shape, inputs: layouts.inputs, outputs: [undefined] });
    const o = this.data(out).subarray(outOffset);
    if (op !== 'logsumexp') {
      this.reduceInto(op, values, new CpuBuffer(o), outSize, reduceSize);
      return;
    }
    const x = values.data;
    const shifted = new Float32Array(reduceSize);
    for (let j = 0; j < outSize; j++) {
      const base = j * reduceSize;
      const m = Math.fround(reduceBlock('max', x, base, reduceSize));
      if (!Number.isFinite(m)) {
        o[j] = m;
        continue;
      }
      // Each step rounded to float32 as its kernel would store it: sub, exp, sum, log, add.
      for (let i = 0; i < reduceSize; i++) shifted[i] = Math.exp(Math.fround(x[base + i] - m));
      const s = Math.fround(reduceBlock('sum', shifted, 0, reduceSize));
      o[j] = m + Math.fround(Math.log(s));
    }
  }

  matmul(a: DeviceBuffer, b: DeviceBuffer, out: DeviceBuffer, spec: MatmulSpec): void {
    this.product(a, b, out, spec);
  }

  private product(a: DeviceBuffer, b: DeviceBuffer, out: DeviceBuffer, spec: MatmulSpec): void {
    const A = this.data(a);
    const B = this.data(b);
    const C = this.data(out);
    const { batch, m, k, n, transA, transB } = spec;
    const aOffset = spec.aOffset ?? 0;
    const bOffset = spec.bOffset ?? 0;
    const outOffset = spec.outOffset ?? 0;
    // Element (i, p) of opA(A_t) and (p, j) of opB(B_t): strides follow the stored layout.
    const aRow = transA ? 1 : k;
    const aCol = transA ? m : 1;
    const bRow = transB ? 1 : n;
    const bCol = transB ? k : 1;
    for (let t = 0; t < batch; t++) {
      const aBase = aOffset + t * spec.aBatchStride;
      const bBase = bOffset + t * spec.bBatchStride;
      const cBase = outOffset + t * m * n;
      C.fill(0, cBase, cBase + m * n);
      // Blocked i-p-j loops: the innermost loop walks a row of C and a row of opB(B) (unit stride
      // when B is not transposed), and each block's operands stay in cache.
      for (let i0 = 0; i0 < m; i0 += BLOCK) {
        const i1 = Math.min(i0 + BLOCK, m);
        for (let p0 = 0; p0 < k; p0 += BLOCK) {
          const p1 = Math.min(p0 + BLOCK, k);
          for (let j0 = 0; j0 < n; j0 += BLOCK) {
            const j1 = Math.min(j0 + BLOCK, n);
            for (let i = i0; i < i1; i++) {
              const cRow = cBase + i * n;
              for (let p = p0; p < p1; p++) {
                const av = A[aBase + i * aRow + p * aCol];
                if (av === 0) continue;
                const bOff = bBase + p * bRow;
                for (let j = j0; j < j1; j++) C[cRow + j] += av * B[bOff + j * bCol];
              }
            }
          }
        }
      }
    }
  }
}

function reduceBlock(op: ReduceOp, x: Float32Array, base: number, size: number): number {
  switch (op) {
    case 'sum': {
      // Pairwise-free plain sum in float64: exact enough to be the reference.
      let s = 0;
      for (let i = 0; i < size; i++) s += x[base + i];
      return s;
    }
    case 'max': {
      let m = -Infinity;
      for (let i = 0; i < size; i++) {
        const v = x[base + i];
        if (v > m || Number.isNaN(v)) m = v;
        if (Number.isNaN(m)) break;
      }
      return m;
    }
    case 'min': {
      let m = Infinity;
      for (let i = 0; i < size; i++) {
        const v = x[base + i];
        if (v < m || Number.isNaN(v)) m = v;
        if (Number.isNaN(m)) break;
      }
      return m;
    }
    case 'argmax':
    case 'argmin': {
      let best = 0;
      for (let i = 1; i < size; i++) {
        const v = x[base + i];
        const b = x[base + best];
        if (Number.isNaN(b)) break;
        if (Number.isNaN(v) || (op === 'argmax' ? v > b : v < b)) best = i;
      }
      return best;
    }
    default:
      return op satisfies never;
  }
}

/**
 * The buffer offsets of consecutive elements of one strided operand (ProgramLayouts): `block(base, n)`
 * returns those of elements base .. base + n - 1 of the iteration shape in row-major order.
 */
class StridedWalk {
  private readonly at = new Int32Array(PROGRAM_BLOCK);
  private readonly idx: number[];
  constructor(
    private readonly shape: readonly number[],
    private readonly layout: OperandLayout,
  ) {
    this.idx = shape.map(() => 0);
  }

  block(base: number, n: number): Int32Array {
    const { shape, idx } = this;
    const { strides, offset } = this.layout;
    let rem = base;
    let pos = offset;
    for (let d = shape.length - 1; d >= 0; d--) {
      idx[d] = rem % shape[d];
      rem = Math.floor(rem / shape[d]);
      pos += idx[d] * strides[d];
    }
    for (let i = 0; i < n; i++) {
      this.at[i] = pos;
      // Odometer step: the last axis moves fastest.
      for (let d = shape.length - 1; d >= 0; d--) {
        pos += strides[d];
        if (++idx[d] < shape[d]) break;
        pos -= strides[d] * shape[d];
        idx[d] = 0;
      }
    }
    return this.at;
  }
}

/** Visit the flat index of every element of a strided view in row-major order. */
function forEachStridedIndex(layout: StridedLayout, visit: (flat: number) => void): void {
  const { shape, strides, offset } = layout;
  const ndim = shape.length;
  if (shape.some((d) => d === 0)) return;
  if (ndim === 0) {
    visit(offset);
    return;
  }
  const idx = new Array<number>(ndim).fill(0);
  const last = ndim - 1;
  const lastDim = shape[last];
  const lastStride = strides[last];
  let base = offset;
  for (;;) {
    for (let j = 0; j < lastDim; j++) visit(base + j * lastStride);
    // Odometer increment over the leading axes.
    let d = last - 1;
    while (d >= 0) {
      idx[d]++;
      base += strides[d];
      if (idx[d] < shape[d]) break;
      base -= strides[d] * shape[d];
      idx[d] = 0;
      d--;
    }
    if (d < 0) return;
  }
}

/** Create a CPU backend. */
export function createCpuBackend(options: CpuBackendOptions = {}): CpuBackend {
  return new CpuBackend(options);
}

/** Register the CPU backend under 'cpu' (idempotent). Returns the name for setDefaultBackend. */
export function registerCpuBackend(options: CpuBackendOptions = {}): string {
  const name = options.name ?? 'cpu';
  registerBackend(name, () => createCpuBackend(options), { overwrite: true });
  return name;
}
