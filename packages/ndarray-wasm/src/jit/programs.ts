/**
 * The compiled programs of one backend: modules compiled once per process (by program key, operand
 * kinds and memory kind), instantiated once per backend over its memory and kernels.
 */
import type { ElementwiseProgram, OperandLayout, ProgramLayouts } from '@needle/ndarray';
import { JIT_IMPORTS, programModuleBytes, type OperandKind } from './compile';

/** The compiled function: the `program` kernel's arguments less the step and output counts. */
export type CompiledProgram = (code: number, outs: number, regs: number, start: number, n: number, layout: number) => void;

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

const stats: ProgramCompileStats = { modules: 0, bytes: 0, ms: 0, maxMs: 0, warmMs: 0, refused: 0, kinds: { c: 0, r: 0, z: 0, b: 0, s: 0 } };
/** null: the engine refused to compile it (e.g. a browser's main-thread limit): use the interpreter. */
const modules = new Map<string, { module: WebAssembly.Module; warmIterations: number } | null>();

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
  /** By program, then by operand kinds. */
  private readonly instances = new WeakMap<ElementwiseProgram, Map<string, CompiledProgram | null>>();
  private readonly imports: WebAssembly.Imports;

  constructor(
    memory: WebAssembly.Memory,
    kernels: object,
    private readonly shared: boolean,
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
   * The compiled form of `program` for these operand layouts, or null where it has none. The code
   * runs whole rows from `start` (0 on the calling thread). `code`, `outs`, `regs` and `layout` are
   * this launch's arguments (the encoded program), which a new function's warm-up call reads.
   */
  get(program: ElementwiseProgram, inputCount: number, outputCount: number, layouts: ProgramLayouts | undefined, code: number, outs: number, regs: number, layout: number): CompiledProgram | null {
    const strided = layouts && (layouts.inputs.some((l) => l !== undefined) || layouts.outputs.some((l) => l !== undefined)) ? layouts : undefined;
    const kinds = operandKinds(inputCount, outputCount, strided);
    let forProgram = this.instances.get(program);
    if (!forProgram) {
      forProgram = new Map();
      this.instances.set(program, forProgram);
    }
    let run = forProgram.get(kinds);
    if (run === undefined) {
      const ins = [...kinds.slice(0, inputCount)] as OperandKind[];
      const outKinds = [...kinds.slice(inputCount)] as OperandKind[];
      const compiled = compiledModule(program, ins, outKinds, this.shared, `${kinds}|${program.key}`);
      const t0 = performance.now();
      run = compiled ? (new WebAssembly.Instance(compiled.module, this.imports).exports.run as CompiledProgram) : null;
      run?.(code, outs, regs, 0, -compiled!.warmIterations, layout);
      stats.warmMs += performance.now() - t0;
      forProgram.set(kinds, run);
    }
    return run;
  }
}

function compiledModule(program: ElementwiseProgram, ins: OperandKind[], outs: OperandKind[], shared: boolean, key: string): { module: WebAssembly.Module; warmIterations: number } | null {
  const full = `${shared ? 's' : 'u'}|${key}`;
  let module = modules.get(full);
  if (module !== undefined) return module;
  const t0 = performance.now();
  const { bytes, warmIterations } = programModuleBytes(program, ins, outs, shared);
  try {
    module = { module: new WebAssembly.Module(bytes as Uint8Array<ArrayBuffer>), warmIterations };
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
