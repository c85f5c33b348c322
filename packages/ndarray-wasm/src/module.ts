import { KERNELS_WASM_BASE64 } from './kernels.generated';

/** The exports of assembly/index.ts, as JavaScript sees them. */
export interface KernelExports {
  /** Rows and columns of the matmul micro-tile. */
  MR: WebAssembly.Global;
  NR: WebAssembly.Global;
  heapBase(): number;
  fill(out: number, value: number, n: number): void;
  binary(op: number, a: number, b: number, bMask: number, out: number, n: number): void;
  unary(op: number, a: number, out: number, n: number): void;
  where(cond: number, x: number, y: number, out: number, n: number): void;
  reduce(op: number, a: number, out: number, outSize: number, reduceSize: number): void;
  sumChunks(a: number, n: number, chunk: number, u0: number, u1: number, out: number): void;
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
}

export const PAGE_BYTES = 65536;
/** wasm32 addresses 4 GiB at most. */
export const MAX_PAGES = 65536;

let plainBytes: Uint8Array | undefined;

function kernelBytes(): Uint8Array {
  if (!plainBytes) {
    const text = atob(KERNELS_WASM_BASE64);
    plainBytes = new Uint8Array(text.length);
    for (let i = 0; i < text.length; i++) plainBytes[i] = text.charCodeAt(i);
  }
  return plainBytes;
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

const compiled = new Map<boolean, Promise<WebAssembly.Module>>();

/** Compile the kernels module once per process (plain or shared-memory variant). */
export function compileKernels(shared: boolean): Promise<WebAssembly.Module> {
  let module = compiled.get(shared);
  if (!module) {
    const bytes = shared ? sharedVariant(kernelBytes()) : kernelBytes();
    module = WebAssembly.compile(bytes as Uint8Array<ArrayBuffer>).catch((error: Error) => {
      compiled.delete(shared);
      throw new Error(`createWasmBackend: this engine cannot compile the kernels (they need WebAssembly SIMD${shared ? ' and shared memory' : ''}): ${error.message}`, { cause: error });
    });
    compiled.set(shared, module);
  }
  return module;
}

/** Synchronous instantiation (the module is small and already compiled). */
export function instantiateKernels(module: WebAssembly.Module, memory: WebAssembly.Memory): KernelExports {
  const instance = new WebAssembly.Instance(module, { env: { memory } });
  return instance.exports as unknown as KernelExports;
}
