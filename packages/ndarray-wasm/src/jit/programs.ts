/**
 * The compiled programs of one backend: modules compiled once per process (by program key, operand
 * kinds and memory kind), instantiated once per backend over its memory and kernels.
 */
import type { ElementwiseProgram, OperandLayout, ProgramLayouts } from '@needle/ndarray';
import { NS_PER } from '../split';
import { JIT_IMPORTS, programModuleBytes, WARMER, WARMER_BYTES, warmerModuleBytes, type OperandKind } from './compile';

/** The compiled function: the `program` kernel's arguments less the step and output counts. */
export type CompiledProgram = (code: number, outs: number, regs: number, start: number, n: number, layout: number) => void;

/** A compiled program instantiated for one backend, with what splitting it between threads needs. */
export interface CompiledEntry {
  run: CompiledProgram;
  /** The module's number in this process (workers keep their instances by it). */
  id: number;
  /** The module's bytes (a worker compiles its own instance from them) and its warm-up count. */
  bytes: Uint8Array;
  warmIterations: number;
  /** Row mode: a thread's range must start at a row (else any multiple of 4 elements will do). */
  rows: boolean;
  /** Operands read or written row by row in place (row mode; each row costs NS_PER.row). */
  rowOperands: number;
  /** Estimated one-thread nanoseconds per element (split.ts's units). */
  nsPerElement: number;
  /**
   * Where the backend keeps a copy of `bytes` in its heap for the workers (0 until the first split
   * launch): any thread that claims a part compiles the module from there if it lacks it.
   */
  bytesAt: number;
}

/** Compile-time figures of this process's compiled programs (tests and benchmarks). */
export interface ProgramCompileStats {
  /** Modules compiled. */
  modules: number;
  /** Their total bytes. */
  bytes: number;
  /** Milliseconds spent generating and compiling them (WebAssembly.Module, synchronous). */
  ms: number;
  /** The slowest single module, in milliseconds. */
  maxMs: number;
  /** Milliseconds of warm-up calls (instantiation and the call that gets V8 to optimize the code). */
  warmMs: number;
  /** Modules the engine refused (those programs run on the interpreter). */
  refused: number;
  /** Modules with at least one operand of each kind (compact, row, row-broadcast, broadcast, gathered). */
  kinds: Record<OperandKind, number>;
}

/** The warm-up module, by whether it imports a shared memory. */
const warmers = new Map<boolean, WebAssembly.Module>();
/** Calls of each jit* function that get V8 to optimize it (checked with %IsTurboFanFunction). */
const WARM_CALLS = 3000;

const stats: ProgramCompileStats = { modules: 0, bytes: 0, ms: 0, maxMs: 0, warmMs: 0, refused: 0, kinds: { c: 0, r: 0, z: 0, b: 0, s: 0 } };
/** null: the engine refused to compile it (e.g. a browser's main-thread limit): use the interpreter. */
const modules = new Map<string, CompiledModule | null>();

interface CompiledModule {
  module: WebAssembly.Module;
  id: number;
  bytes: Uint8Array;
  warmIterations: number;
  nsPerElement: number;
}

export function programCompileStats(): ProgramCompileStats {
  return { ...stats, kinds: { ...stats.kinds } };
}

/**
 * The operands' kinds (inputs, then outputs; see OperandKind) for these layouts (undefined: all
 * compact): row kinds where every strided operand's last stride is 0 or 1 and rows are whole vectors.
 */
function operandKinds(inputCount: number, outputCount: number, layouts: ProgramLayouts | undefined): string {
  let kinds = '';
  let rows = true;
  const last = layouts ? layouts.shape.length - 1 : 0;
  const strided = (l: OperandLayout | undefined, input: boolean): void => {
    if (!l) {
      kinds += 'c';
      return;
    }
    const st = l.strides;
    if (input && st.every((x) => x === 0)) kinds += 'b';
    else if (st[last] === 1) kinds += 'r';
    else if (st[last] === 0 && input) kinds += 'z';
    else {
      kinds += 's';
      rows = false;
    }
  };
  for (let i = 0; i < inputCount; i++) strided(layouts?.inputs[i], true);
  for (let k = 0; k < outputCount; k++) strided(layouts?.outputs[k], false);
  if (layouts && layouts.shape[last] % 4 !== 0) rows = false;
  return rows ? kinds : kinds.replace(/[rz]/g, 's');
}

export class CompiledPrograms {
  /**
   * By program, then by operand kinds: the instance, null (no compiled form), or 'seen' after the
   * first launch. A program is compiled at its second launch: one defined anew for every call (or
   * with per-call constants) is never compiled at all, instead of once per call.
   */
  private readonly instances = new WeakMap<ElementwiseProgram, Map<string, CompiledEntry | null | 'seen'>>();
  private readonly imports: WebAssembly.Imports;

  constructor(
    memory: WebAssembly.Memory,
    kernels: object,
    private readonly shared: boolean,
    /** Compile at a program's first launch, not its second. */
    private readonly eager = false,
  ) {
    const k = kernels as Record<string, unknown>;
    const fns: Record<string, unknown> = {};
    for (const [name, exported] of Object.entries(JIT_IMPORTS)) {
      if (typeof k[exported] !== 'function') throw new Error(`ndarray-wasm: the kernels module lacks ${exported}`);
      fns[name] = k[exported];
    }
    this.imports = { env: { memory }, k: fns as WebAssembly.ModuleImports };
  }

  /**
   * Get V8 to optimize the kernels' jit* functions now (~1 ms): only compiled programs call them,
   * and until optimized they run several times slower (NOTES.md section 20). `regs` is
   * WARMER_BYTES of scratch.
   */
  warmKernels(memory: WebAssembly.Memory, regs: number): void {
    const t0 = performance.now();
    const words = new Int32Array(memory.buffer, regs, WARMER_BYTES / 4);
    words.fill(0);
    // A 16 x 16 transposed view: [ndim, shape...] and [offset, strides...].
    words.set([2, 16, 16], WARMER.layout / 4);
    words.set([0, 1, 16], WARMER.rec / 4);
    let warmer = warmers.get(this.shared);
    if (!warmer) {
      warmer = new WebAssembly.Module(warmerModuleBytes(this.shared) as Uint8Array<ArrayBuffer>);
      warmers.set(this.shared, warmer);
    }
    const run = new WebAssembly.Instance(warmer, this.imports).exports.run as CompiledProgram;
    run(0, 0, regs, 0, WARM_CALLS, 0);
    stats.warmMs += performance.now() - t0;
  }

  /**
   * The compiled form of `program` for these operand layouts, or null where it has none. The code
   * runs whole rows from `start` (0 on the calling thread). `code`, `outs`, `regs` and `layout` are
   * this launch's arguments (the encoded program), which a new function's warm-up call reads.
   */
  get(program: ElementwiseProgram, inputCount: number, outputCount: number, layouts: ProgramLayouts | undefined, code: number, outs: number, regs: number, layout: number): CompiledEntry | null {
    const strided = layouts && (layouts.inputs.some((l) => l !== undefined) || layouts.outputs.some((l) => l !== undefined)) ? layouts : undefined;
    const kinds = operandKinds(inputCount, outputCount, strided);
    let forProgram = this.instances.get(program);
    if (!forProgram) {
      forProgram = new Map();
      this.instances.set(program, forProgram);
    }
    let entry = forProgram.get(kinds);
    if (entry === undefined && !this.eager) {
      forProgram.set(kinds, 'seen');
      return null;
    }
    if (entry === undefined || entry === 'seen') {
      const ins = [...kinds.slice(0, inputCount)] as OperandKind[];
      const outKinds = [...kinds.slice(inputCount)] as OperandKind[];
      const compiled = compiledModule(program, ins, outKinds, this.shared, `${kinds}|${program.key}`);
      entry = null;
      if (compiled) {
        const t0 = performance.now();
        const run = new WebAssembly.Instance(compiled.module, this.imports).exports.run as CompiledProgram;
        run(code, outs, regs, 0, -compiled.warmIterations, layout);
        stats.warmMs += performance.now() - t0;
        const { id, bytes, warmIterations, nsPerElement } = compiled;
        entry = { run, id, bytes, warmIterations, nsPerElement, rows: /[rz]/.test(kinds), rowOperands: kinds.replace(/[^rz]/g, '').length, bytesAt: 0 };
      }
      forProgram.set(kinds, entry);
    }
    return entry;
  }
}

/**
 * One-thread nanoseconds per element: a load or store per compact or row operand, the calls, the
 * gathers and scatters; the arithmetic between them is nearly free.
 */
function costPerElement(program: ElementwiseProgram, ins: readonly OperandKind[], outs: readonly OperandKind[]): number {
  let ns = 0;
  for (const k of [...ins, ...outs]) ns += k === 's' ? NS_PER.strided : k === 'b' ? 0 : NS_PER.ewise;
  for (const s of program.steps) {
    if (s.op === 'unary' && (s.fn === 'exp' || s.fn === 'log' || s.fn === 'tanh')) ns += NS_PER.transcendental;
    else if (s.op === 'binary' && s.fn === 'pow') {
      // A constant exponent of 2 or +-0.5 compiles to x * x or a square root (batch norm's
      // (var + eps) ** -0.5), not libm's pow lane by lane.
      const e = program.steps[s.b];
      ns += e.op === 'const' && (e.value === 2 || e.value === 0.5 || e.value === -0.5) ? NS_PER.transcendental / 4 : NS_PER.pow;
    }
  }
  return ns;
}

function compiledModule(program: ElementwiseProgram, ins: OperandKind[], outs: OperandKind[], shared: boolean, key: string): CompiledModule | null {
  const full = `${shared ? 's' : 'u'}|${key}`;
  let module = modules.get(full);
  if (module !== undefined) return module;
  const t0 = performance.now();
  const { bytes, warmIterations } = programModuleBytes(program, ins, outs, shared);
  try {
    module = { module: new WebAssembly.Module(bytes as Uint8Array<ArrayBuffer>), id: modules.size, bytes, warmIterations, nsPerElement: costPerElement(program, ins, outs) };
  } catch {
    // Browsers refuse synchronous compiles above a few KiB on the main thread; the interpreter
    // gives the same results.
    module = null;
    stats.refused++;
  }
  const ms = performance.now() - t0;
  stats.modules++;
  for (const k of new Set([...ins, ...outs])) stats.kinds[k]++;
  stats.bytes += bytes.length;
  stats.ms += ms;
  stats.maxMs = Math.max(stats.maxMs, ms);
  modules.set(full, module);
  return module;
}
