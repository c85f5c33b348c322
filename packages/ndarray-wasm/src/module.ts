import { KERNELS_RELAXED_WASM_BASE64, KERNELS_WASM_BASE64 } from './kernels.generated';

/** The exports of assembly/index.ts, as JavaScript sees them. */
export interface KernelExports {
  /** Rows and columns of the matmul micro-tile. */
  MR: WebAssembly.Global;
  NR: WebAssembly.Global;
  /** The deepest depth block of matmul. */
  KC: WebAssembly.Global;
  heapBase(): number;
  fill(out: number, value: number, n: number): void;
  binary(op: number, a: number, b: number, bMask: number, out: number, n: number): void;
  unary(op: number, a: number, out: number, n: number): void;
  where(cond: number, x: number, y: number, out: number, n: number): void;
  reduce(op: number, a: number, out: number, outSize: number, reduceSize: number): void;
  sumChunks(a: number, n: number, chunk: number, u0: number, u1: number, out: number): void;
  sumColumns(a: number, rowStride: number, rows: number, c0: number, c1: number, partials: number, out: number): void;
  logsumexpRows(vals: number, out: number, outSize: number, reduceSize: number, tmp: number): void;
  strided(mode: number, src: number, dst: number, dims: number, ndim: number, offset: number, value: number, idx: number): void;
  matmulScratchBytes(): number;
  PROGRAM_BLOCK: WebAssembly.Global;
  program(code: number, nsteps: number, outs: number, nouts: number, regs: number, start: number, n: number, layout: number): void;
  matmul(
    a: number, b: number, c: number,
    m: number, n: number, k: number,
    ars: number, acs: number, brs: number, bcs: number,
    aBatch: number, bBatch: number,
    t0: number, t1: number, i0: number, i1: number, j0: number, j1: number,
    scratch: number, regs?: number, epilogue?: number,
  ): void;
  /** Depth blocks [d0, d1) of a batch-1 product, each into its own m x n slab (src/split.ts, 'depth'). */
  matmulDepth(a: number, b: number, slabs: number, m: number, n: number, k: number, ars: number, acs: number, brs: number, bcs: number, d0: number, d1: number, scratch: number): void;
  /** Elements [e0, e1) of `count` slabs of `size` added in matmul's block order into `out`. */
  addSlabs(slabs: number, count: number, size: number, e0: number, e1: number, out: number): void;
}

export const PAGE_BYTES = 65536;
/** wasm32 addresses 4 GiB at most. */
export const MAX_PAGES = 65536;

/**
 * The two builds of the kernels: `baseline` needs WebAssembly SIMD128; `relaxed` also uses relaxed
 * SIMD (f32x4.relaxed_madd, a fused multiply-add on x86 with FMA3 and on ARM64) in the matmul
 * micro-kernels, ~15% faster there (NOTES.md section 19), and may round those products differently.
 */
export type SimdVariant = 'baseline' | 'relaxed';

const decoded = new Map<SimdVariant, Uint8Array>();

/** The binary of one build (decoded once per process). */
export function kernelBytes(variant: SimdVariant): Uint8Array {
  let bytes = decoded.get(variant);
  if (!bytes) {
    const text = atob(variant === 'relaxed' ? KERNELS_RELAXED_WASM_BASE64 : KERNELS_WASM_BASE64);
    bytes = new Uint8Array(text.length);
    for (let i = 0; i < text.length; i++) bytes[i] = text.charCodeAt(i);
    decoded.set(variant, bytes);
  }
  return bytes;
}

/**
 * Whether this engine accepts the relaxed-SIMD build (Chrome >= 114, Node >= 22; Node 20 only with
 * V8's `--experimental-wasm-relaxed-simd`). Asked at each call (validating ~22 KB is cheap), so
 * a flag set at run time (v8.setFlagsFromString) is seen.
 */
export function relaxedSimdSupported(): boolean {
  return WebAssembly.validate(kernelBytes('relaxed') as Uint8Array<ArrayBuffer>);
}

function readLeb(bytes: Uint8Array, pos: number): [value: number, next: number] {
  let value = 0;
  let shift = 0;
  for (;;) {
    const byte = bytes[pos++];
    value += (byte & 0x7f) * 2 ** shift;
    if ((byte & 0x80) === 0) return [value, pos];
    shift += 7;
  }
}

/**
 * The same binary with its imported memory declared shared. The build emits one unshared module;
 * a shared memory can only be imported by a module that declares it shared, and the declaration is
 * one flag byte in the import section (limits flag 0x01 "has maximum" -> 0x03 "has maximum, shared").
 */
export function sharedVariant(bytes: Uint8Array): Uint8Array {
  const out = bytes.slice();
  let pos = 8; // magic + version
  while (pos < out.length) {
    const id = out[pos];
    const [size, body] = readLeb(out, pos + 1);
    if (id === 2) {
      const [count, first] = readLeb(out, body);
      let p = first;
      for (let i = 0; i < count; i++) {
        const [modLen, p1] = readLeb(out, p);
        const [nameLen, p2] = readLeb(out, p1 + modLen);
        p = p2 + nameLen;
        const kind = out[p++];
        if (kind === 2) {
          if (out[p] !== 0x01) throw new Error(`ndarray-wasm: unexpected memory limits flag ${out[p]} in the kernels module (expected 0x01)`);
          out[p] = 0x03;
          return out;
        }
        // Only function imports could precede the memory; the build has none, so anything else is a
        // layout this parser does not know.
        throw new Error(`ndarray-wasm: unexpected import kind ${kind} before the memory import`);
      }
    }
    pos = body + size;
  }
  throw new Error('ndarray-wasm: the kernels module imports no memory');
}

const compiled = new Map<string, Promise<WebAssembly.Module>>();

/** Compile one build of the kernels once per process (plain or shared-memory variant). */
export function compileKernels(shared: boolean, variant: SimdVariant = 'baseline'): Promise<WebAssembly.Module> {
  const key = `${variant}${shared ? '-shared' : ''}`;
  let module = compiled.get(key);
  if (!module) {
    const bytes = shared ? sharedVariant(kernelBytes(variant)) : kernelBytes(variant);
    const needs = `WebAssembly SIMD${variant === 'relaxed' ? ' and relaxed SIMD' : ''}${shared ? ' and shared memory' : ''}`;
    module = WebAssembly.compile(bytes as Uint8Array<ArrayBuffer>).catch((error: Error) => {
      compiled.delete(key);
      throw new Error(`createWasmBackend: this engine cannot compile the kernels (they need ${needs}): ${error.message}`, { cause: error });
    });
    compiled.set(key, module);
  }
  return module;
}

/** Synchronous instantiation (the module is small and already compiled). */
export function instantiateKernels(module: WebAssembly.Module, memory: WebAssembly.Memory): KernelExports {
  const instance = new WebAssembly.Instance(module, { env: { memory } });
  return instance.exports as unknown as KernelExports;
}
