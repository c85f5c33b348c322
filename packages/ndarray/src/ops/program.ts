/**
 * Elementwise programs: several elementwise ops over same-shaped arrays and scalars in one kernel
 * launch (`backend.elementwise`), or, on a backend without that fast path, as the composition of the
 * required kernels it stands for. Why this and not lazy evaluation: NOTES.md, "Fusion".
 */
import {
  BINARY_OPS,
  PROGRAM_LIMITS,
  UNARY_OPS,
  applyBinary,
  applyUnary,
  type BinaryOp,
  type DeviceBuffer,
  type ElementwiseProgram,
  type OperandLayout,
  type ProgramLayouts,
  type ProgramStep,
  type UnaryOp,
} from '../backend';
import { fail, formatShape } from '../errors';
import { NDArray, broadcastShapes, sameBackend, shapesEqual } from '../ndarray';
import { broadcastStrides, coalesceLayouts, isCompactOperand, sameOperandLayout, viewExtent, viewOverlapsItself } from '../layouts';
import { binary, unary, where } from './elementwise';

/** A value inside `defineProgram`'s body: an input, a scalar, a constant or an op's result. */
export class ProgramValue {
  /** @internal */
  constructor(
    private readonly builder: ProgramBuilder,
    /** @internal */ readonly id: number,
  ) {}

  add(o: ProgramValue | number): ProgramValue { return this.bin('add', o); }
  sub(o: ProgramValue | number): ProgramValue { return this.bin('sub', o); }
  mul(o: ProgramValue | number): ProgramValue { return this.bin('mul', o); }
  div(o: ProgramValue | number): ProgramValue { return this.bin('div', o); }
  pow(o: ProgramValue | number): ProgramValue { return this.bin('pow', o); }
  maximum(o: ProgramValue | number): ProgramValue { return this.bin('maximum', o); }
  minimum(o: ProgramValue | number): ProgramValue { return this.bin('minimum', o); }
  eq(o: ProgramValue | number): ProgramValue { return this.bin('eq', o); }
  ne(o: ProgramValue | number): ProgramValue { return this.bin('ne', o); }
  ge(o: ProgramValue | number): ProgramValue { return this.bin('ge', o); }
  gt(o: ProgramValue | number): ProgramValue { return this.bin('gt', o); }
  le(o: ProgramValue | number): ProgramValue { return this.bin('le', o); }
  lt(o: ProgramValue | number): ProgramValue { return this.bin('lt', o); }
  neg(): ProgramValue { return this.un('neg'); }
  log(): ProgramValue { return this.un('log'); }
  exp(): ProgramValue { return this.un('exp'); }
  tanh(): ProgramValue { return this.un('tanh'); }
  sqrt(): ProgramValue { return this.un('sqrt'); }
  abs(): ProgramValue { return this.un('abs'); }
  sign(): ProgramValue { return this.un('sign'); }
  /** `this != 0 ? a : b` (NaN counts as true, like the `where` kernel). */
  select(a: ProgramValue | number, b: ProgramValue | number): ProgramValue {
    return this.builder.push({ op: 'where', cond: this.id, a: this.builder.operand(a), b: this.builder.operand(b) });
  }

  private bin(fn: BinaryOp, o: ProgramValue | number): ProgramValue {
    return this.builder.push({ op: 'binary', fn, a: this.id, b: this.builder.operand(o) });
  }

  private un(fn: UnaryOp): ProgramValue {
    return this.builder.push({ op: 'unary', fn, a: this.id });
  }
}

class ProgramBuilder {
  readonly steps: ProgramStep[] = [];
  private readonly seen = new Map<string, number>();

  push(step: ProgramStep): ProgramValue {
    // Identical steps are computed once (common subexpressions cost nothing to share).
    const k = stepKey(step);
    let id = this.seen.get(k);
    if (id === undefined) {
      id = this.steps.length;
      this.steps.push(step);
      this.seen.set(k, id);
    }
    return new ProgramValue(this, id);
  }

  operand(v: ProgramValue | number): number {
    if (typeof v === 'number') return this.push({ op: 'const', value: Math.fround(v) }).id;
    if (!(v instanceof ProgramValue) || (v as unknown as { builder: unknown }).builder !== this) {
      fail('defineProgram', 'an operand is neither a number nor a value of this program');
    }
    return v.id;
  }
}

function stepKey(s: ProgramStep): string {
  switch (s.op) {
    case 'input': return `i${s.index}`;
    case 'scalar': return `s${s.index}`;
    // Object.is keeps -0 apart from 0; the f32 value's text is exact enough to tell constants apart.
    case 'const': return `c${Object.is(s.value, -0) ? '-0' : String(s.value)}`;
    case 'binary': return `${s.fn} ${s.a} ${s.b}`;
    case 'unary': return `${s.fn} ${s.a}`;
    case 'where': return `where ${s.cond} ${s.a} ${s.b}`;
    default: return s satisfies never;
  }
}

/**
 * Build an elementwise program from a body over `inputs` array values and `scalars` scalar values:
 *
 * ```ts
 * // p, g, buf -> p - lr * (momentum * buf + g), momentum * buf + g
 * const sgd = defineProgram(3, 2, ([p, g, buf], [lr, momentum]) => {
 *   const b = buf.mul(momentum).add(g);
 *   return [p.sub(b.mul(lr)), b];
 * });
 * const [newP, newBuf] = elementwise(sgd, [p, g, buf], [0.1, 0.9]);
 * ```
 * Numbers in the body become constants of the program (part of its key: a backend compiles one
 * kernel per key); per-call numbers belong in scalars. Define a program once, not per call.
 */
export function defineProgram(
  inputs: number,
  scalars: number,
  body: (inputs: ProgramValue[], scalars: ProgramValue[]) => ProgramValue | ProgramValue[],
): ElementwiseProgram {
  const b = new ProgramBuilder();
  const ins = Array.from({ length: inputs }, (_, index) => b.push({ op: 'input', index }));
  const scs = Array.from({ length: scalars }, (_, index) => b.push({ op: 'scalar', index }));
  const result = body(ins, scs);
  const outs = (Array.isArray(result) ? result : [result]).map((v) => b.operand(v));
  return checkProgram('defineProgram', makeProgram(inputs, scalars, b.steps, outs));
}

function makeProgram(inputs: number, scalars: number, steps: readonly ProgramStep[], outputs: readonly number[]): ElementwiseProgram {
  const key = `${inputs};${scalars};${steps.map(stepKey).join(';')};->${outputs.join(',')}`;
  return { inputs, scalars, steps, outputs, key };
}

/**
 * How a program reaches a backend's fused kernel when some of its steps depend on scalars and
 * constants only: those steps are computed on the host, as the composition computes them (Math's
 * exp, log, tanh, pow, rounded to float32 after every step), and become scalars of a rewritten
 * program; a backend's own exp or pow of a uniform value would differ from the composition in the
 * last bits. The rewritten program is made once per program (backends that compile programs see one
 * object); only the folded values are per call.
 */
interface FoldPlan {
  program: ElementwiseProgram;
  /** Whether each step's value is uniform (scalars and constants only). */
  uniform: boolean[];
  /** The folded steps, in the order of the scalars they became. */
  folded: number[];
}

const foldPlans = new WeakMap<ElementwiseProgram, FoldPlan | null>();

function planFold(p: ElementwiseProgram): FoldPlan | null {
  const uniform = p.steps.map(() => false);
  const folded: number[] = [];
  p.steps.forEach((s, j) => {
    switch (s.op) {
      case 'input': break;
      case 'scalar': case 'const': uniform[j] = true; break;
      case 'binary': uniform[j] = uniform[s.a] && uniform[s.b]; break;
      case 'unary': uniform[j] = uniform[s.a]; break;
      case 'where': uniform[j] = uniform[s.cond] && uniform[s.a] && uniform[s.b]; break;
      default: s satisfies never;
    }
    if (uniform[j] && s.op !== 'scalar' && s.op !== 'const') folded.push(j);
  });
  // Past the scalar limit the program stays as it is (its uniform steps then run on the backend).
  if (folded.length === 0 || p.scalars + folded.length > PROGRAM_LIMITS.scalars) return null;
  const steps = p.steps.map((s, j): ProgramStep => {
    const k = folded.indexOf(j);
    return k < 0 ? s : { op: 'scalar', index: p.scalars + k };
  });
  return { program: makeProgram(p.inputs, p.scalars + folded.length, steps, p.outputs), uniform, folded };
}

/**
 * The program and scalars a backend's fused kernel gets for `program` with `scalars`: itself when
 * no step is uniform, else the rewritten program and the host-computed values appended to the
 * scalars (see FoldPlan). Shared by `elementwise`, matmul epilogues and `reduceProgram`.
 */
export function foldUniformSteps(program: ElementwiseProgram, scalars: readonly number[]): [ElementwiseProgram, readonly number[]] {
  let plan = foldPlans.get(program);
  if (plan === undefined) {
    plan = planFold(program);
    foldPlans.set(program, plan);
  }
  if (plan === null) return [program, scalars];
  const { uniform } = plan;
  const value: number[] = [];
  program.steps.forEach((s, j) => {
    if (!uniform[j]) return;
    switch (s.op) {
      case 'scalar': value[j] = Math.fround(scalars[s.index]); break;
      case 'const': value[j] = Math.fround(s.value); break;
      case 'binary': value[j] = Math.fround(applyBinary(s.fn, value[s.a], value[s.b])); break;
      case 'unary': value[j] = Math.fround(applyUnary(s.fn, value[s.a])); break;
      case 'where': value[j] = value[s.cond] !== 0 ? value[s.a] : value[s.b]; break;
      default: break;
    }
  });
  return [plan.program, [...scalars, ...plan.folded.map((j) => value[j])]];
}

const checked = new WeakSet<ElementwiseProgram>();

/** Throw a clear error unless `p` is a well-formed program within PROGRAM_LIMITS. */
export function checkProgram(op: string, p: ElementwiseProgram): ElementwiseProgram {
  if (checked.has(p)) return p;
  const count = (what: string, v: unknown, max: number) => {
    if (!Number.isInteger(v) || (v as number) < 0 || (v as number) > max) fail(op, `program ${what} must be an integer in [0, ${max}], got ${String(v)}`);
  };
  if (typeof p !== 'object' || p === null || !Array.isArray(p.steps) || !Array.isArray(p.outputs)) {
    fail(op, 'expected an elementwise program (from defineProgram)');
  }
  count('input count', p.inputs, PROGRAM_LIMITS.buffers);
  count('scalar count', p.scalars, PROGRAM_LIMITS.scalars);
  count('step count', p.steps.length, PROGRAM_LIMITS.steps);
  if (p.outputs.length === 0) fail(op, 'program has no outputs');
  if (p.inputs + p.outputs.length > 2 * PROGRAM_LIMITS.buffers) fail(op, `program has ${p.inputs} inputs and ${p.outputs.length} outputs; at most ${PROGRAM_LIMITS.buffers} distinct buffers can be bound`);
  const ref = (j: number, v: number) => {
    if (!Number.isInteger(v) || v < 0 || v >= j) fail(op, `program step ${j} refers to value ${v}; operands must name earlier steps`);
  };
  p.steps.forEach((s, j) => {
    switch (s.op) {
      case 'input': if (!Number.isInteger(s.index) || s.index < 0 || s.index >= p.inputs) fail(op, `program step ${j} reads input ${s.index} of ${p.inputs}`); break;
      case 'scalar': if (!Number.isInteger(s.index) || s.index < 0 || s.index >= p.scalars) fail(op, `program step ${j} reads scalar ${s.index} of ${p.scalars}`); break;
      case 'const': if (typeof s.value !== 'number') fail(op, `program step ${j}: a constant must be a number`); break;
      case 'binary': if (!(BINARY_OPS as readonly string[]).includes(s.fn)) fail(op, `program step ${j}: unknown binary op '${s.fn}'`); ref(j, s.a); ref(j, s.b); break;
      case 'unary': if (!(UNARY_OPS as readonly string[]).includes(s.fn)) fail(op, `program step ${j}: unknown unary op '${s.fn}'`); ref(j, s.a); break;
      case 'where': ref(j, s.cond); ref(j, s.a); ref(j, s.b); break;
      default: fail(op, `program step ${j}: unknown step '${(s as { op: unknown }).op}'`);
    }
  });
  for (const o of p.outputs) ref(p.steps.length, o);
  if (p.key !== makeProgram(p.inputs, p.scalars, p.steps, p.outputs).key) fail(op, 'program key does not match its steps (build programs with defineProgram)');
  checked.add(p);
  return p;
}

/**
 * `isRowIndex` as a program value: 1 where `i` is an integer in [0, n), else 0 (fractions, NaN and
 * infinities give 0), so a program can treat invalid indices as the lookups do. (-1)^i is exactly
 * +-1 for integers and NaN otherwise.
 */
export function isRowIndexValue(i: ProgramValue, n: ProgramValue | number): ProgramValue {
  return i.ge(0).mul(i.lt(n)).mul(i.mul(0).sub(1).pow(i).abs().eq(1));
}

export interface ElementwiseOptions {
  /**
   * Arrays to write output k into in place (undefined entries get a new array): each must have the
   * result's shape and may be any view whose elements are distinct (a slice, a transpose, a column,
   * `y.get(t)`; not a broadcast); it may be one of the inputs (an in-place update, e.g. of a
   * parameter). An input that overlaps an output other than element for element is read from a copy
   * taken first, so results never depend on the order elements are written in. Written arrays count
   * as modified (version counters).
   */
  out?: readonly (NDArray | undefined)[];
  /** The op named as the last writer of `out` arrays (version-counter errors say it; default 'elementwise'). */
  writer?: string;
}

/**
 * Run `program` over `inputs` (broadcast to one shape, NumPy rules) and `scalars`: one
 * `backend.elementwise` launch where the backend has it, else the composition of ewise/scalar/unary/
 * where kernels the program stands for (the same values, a launch per step). Strided, broadcast and
 * offset inputs and `out` views reach a backend that declares `layouts.elementwise` as they are (no
 * `compact` launch); other backends get compact copies, and outputs through views are scattered
 * with `ewiseSetitem` after the run. Returns one array per output (the `out` arrays where given: the
 * caller's references, not new ones).
 */
export function elementwise(program: ElementwiseProgram, inputs: readonly NDArray[], scalars: readonly number[] = [], options: ElementwiseOptions = {}): NDArray[] {
  const op = 'elementwise';
  checkProgram(op, program);
  if (inputs.length !== program.inputs) fail(op, `program takes ${program.inputs} inputs, got ${inputs.length}`);
  if (scalars.length !== program.scalars) fail(op, `program takes ${program.scalars} scalars, got ${scalars.length}`);
  for (const s of scalars) if (typeof s !== 'number') fail(op, `scalars must be numbers, got ${typeof s}`);
  if (inputs.length === 0 && !options.out?.some(Boolean)) fail(op, 'a program without inputs needs an out array to give the shape');
  const outs = options.out ?? [];
  if (outs.length > program.outputs.length) fail(op, `${outs.length} out arrays for ${program.outputs.length} outputs`);
  const all = [...inputs, ...outs.filter((o): o is NDArray => o !== undefined)];
  const backend = sameBackend(op, ...all);
  let shape = [...all[0].shape];
  for (const a of inputs) if (!shapesEqual(a.shape, shape)) shape = broadcastShapes(op, shape, a.shape);
  outs.forEach((o, k) => {
    if (!o) return;
    if (!shapesEqual(o.shape, shape)) fail(op, `out[${k}] has shape ${formatShape(o.shape)}, expected the result's ${formatShape(shape)}`);
    if (viewOverlapsItself(o.shape, o.strides)) {
      fail(op, `out[${k}] (shape ${formatShape(o.shape)}, strides ${formatShape(o.strides)}) reaches some elements more than once (a broadcast or overlapping view); an output must be a view of distinct elements`);
    }
    outs.forEach((q, j) => {
      if (j < k && q && q.buffer === o.buffer && extentsMeet(o.shape, { strides: q.strides, offset: q.offset }, { strides: o.strides, offset: o.offset })) {
        fail(op, `out[${j}] and out[${k}] share a buffer and their element ranges meet; two outputs in one buffer must each occupy a range of it the other does not reach (e.g. the two rows of a [2, ...] array)`);
      }
    });
  });
  const fused = backend.elementwise;
  if (!fused || distinctBuffers(inputs, outs) + program.outputs.length - outs.filter(Boolean).length > PROGRAM_LIMITS.buffers) {
    return composeProgram(program, inputs, scalars, shape, outs, options.writer ?? op);
  }
  const results = program.outputs.map((_, k) => outs[k] ?? NDArray.empty(shape, backend));
  const size = results[0].size;
  if (size === 0) return results;
  const temps: NDArray[] = [];
  const temp = (a: NDArray): NDArray => {
    temps.push(a);
    return a;
  };
  try {
    const operand = (a: NDArray): OperandLayout => ({ strides: broadcastStrides(a.shape, a.strides, shape), offset: a.offset });
    const outLayouts = results.map(operand);
    // Outputs in one buffer (disjoint ranges, checked above) reach a backend that declares
    // layouts.sharedOutputs as they are; elsewhere (a WebGPU stage cannot bind one buffer twice
    // writable) each after the first is computed into a new array and copied into place.
    const direct = results.map((r, k) => (backend.layouts?.sharedOutputs || !results.some((q, j) => j < k && q.buffer === r.buffer) ? r : temp(NDArray.empty(shape, backend, op))));
    // An input that shares a buffer with an output is read in place only when it is that output's
    // very view (element i read before it is written) or touches none of its elements; anything in
    // between (a shifted or transposed view of the output's buffer) is read from a copy.
    const srcs = inputs.map((a) => {
      const la = operand(a);
      const clash = results.some((r, k) => r.buffer === a.buffer && !sameOperandLayout(shape, la, outLayouts[k]) && extentsMeet(shape, la, outLayouts[k]));
      return clash ? temp(a.clone()) : a;
    });
    const layouts = backend.layouts?.elementwise ? planLayouts(shape, srcs.map(operand), direct.map(operand), backend.layouts.maxDims) : null;
    let ready = srcs;
    let targets = direct;
    if (layouts === null) {
      ready = srcs.map((a) => (shapesEqual(a.shape, shape) && a.isKernelReady ? a : temp(broadcastCompact(a, shape))));
      targets = direct.map((r) => (r.isKernelReady ? r : temp(NDArray.empty(shape, backend, op))));
    }
    if (new Set([...ready, ...targets].map((a) => a.buffer)).size > PROGRAM_LIMITS.buffers) {
      // Copies made above split one buffer into several: too many to bind in one launch.
      results.forEach((r, k) => r !== outs[k] && r.dispose());
      return composeProgram(program, inputs, scalars, shape, outs, options.writer ?? op);
    }
    for (const o of outs) o?.noteWrite(options.writer ?? op);
    const inBufs = ready.map((a) => a.buffer);
    const outBufs = targets.map((r) => r.buffer);
    const [run, runScalars] = foldUniformSteps(program, scalars);
    if (layouts) fused.call(backend, run, inBufs, runScalars, outBufs, size, layouts);
    else fused.call(backend, run, inBufs, runScalars, outBufs, size);
    targets.forEach((t, k) => t !== results[k] && backend.ewiseSetitem(t.buffer, results[k].buffer, results[k].layout));
  } catch (e) {
    results.forEach((r, k) => r !== outs[k] && !r.disposed && r.dispose());
    throw e;
  } finally {
    temps.forEach((t) => t.dispose());
  }
  return results;
}

/**
 * The layouts argument for a layout-capable backend: undefined when every operand is compact (the
 * plain call), null when the coalesced shape has more axes than the backend takes (compact first).
 */
function planLayouts(shape: readonly number[], inputs: readonly OperandLayout[], outputs: readonly OperandLayout[], maxDims: number): ProgramLayouts | undefined | null {
  const c = coalesceLayouts(shape, [...inputs, ...outputs]);
  const strided = c.layouts.map((l) => (isCompactOperand(c.shape, l) ? undefined : l));
  if (strided.every((l) => l === undefined)) return undefined;
  if (c.shape.length > maxDims) return null;
  return { shape: c.shape, inputs: strided.slice(0, inputs.length), outputs: strided.slice(inputs.length) };
}

function extentsMeet(shape: readonly number[], a: OperandLayout, b: OperandLayout): boolean {
  const x = viewExtent(shape, a.strides, a.offset);
  const y = viewExtent(shape, b.strides, b.offset);
  return x !== undefined && y !== undefined && x[0] <= y[1] && y[0] <= x[1];
}

/**
 * The composition `program` stands for (a kernel per step), whether or not the backend has the fused
 * path: the reference the conformance kit checks `backend.elementwise` against.
 */
export function elementwiseUnfused(program: ElementwiseProgram, inputs: readonly NDArray[], scalars: readonly number[] = []): NDArray[] {
  checkProgram('elementwiseUnfused', program);
  if (inputs.length !== program.inputs || inputs.length === 0) fail('elementwiseUnfused', `program takes ${program.inputs} inputs, got ${inputs.length} (at least one needed)`);
  let shape = [...inputs[0].shape];
  for (const a of inputs) if (!shapesEqual(a.shape, shape)) shape = broadcastShapes('elementwiseUnfused', shape, a.shape);
  return composeProgram(program, inputs, scalars, shape, []);
}

function distinctBuffers(inputs: readonly NDArray[], outs: readonly (NDArray | undefined)[]): number {
  // A handful of operands: a linear scan allocates less than a Set (this runs on every launch).
  const seen: DeviceBuffer[] = [];
  for (const a of [...inputs, ...outs]) {
    if (a === undefined) continue;
    const b = a.buffer;
    if (!seen.includes(b)) seen.push(b);
  }
  return seen.length;
}

function broadcastCompact(a: NDArray, shape: number[]): NDArray {
  const b = shapesEqual(a.shape, shape) ? a : a.broadcastTo(shape);
  try {
    return b.compact();
  } finally {
    if (b !== a) b.dispose();
  }
}

/**
 * The unfused meaning of a program: one kernel per step (numbers stay on the host, rounded to
 * float32 after every step like a kernel's output); out arrays are written at the end, after every
 * output value was computed, so an output that is also an input is read before it is written.
 */
function composeProgram(program: ElementwiseProgram, inputs: readonly NDArray[], scalars: readonly number[], shape: number[], outs: readonly (NDArray | undefined)[], writer = 'elementwise'): NDArray[] {
  const values: (NDArray | number)[] = [];
  const temps = new Set<NDArray>();
  const arr = (v: NDArray): NDArray => {
    temps.add(v);
    return v;
  };
  const backend = (inputs[0] ?? outs.find(Boolean)!).backend;
  try {
    for (const s of program.steps) {
      switch (s.op) {
        case 'input': values.push(inputs[s.index]); break;
        case 'scalar': values.push(Math.fround(scalars[s.index])); break;
        case 'const': values.push(Math.fround(s.value)); break;
        case 'binary': {
          const a = values[s.a];
          const b = values[s.b];
          values.push(typeof a === 'number' && typeof b === 'number' ? Math.fround(applyBinary(s.fn, a, b)) : arr(binary(s.fn, a, b)));
          break;
        }
        case 'unary': {
          const a = values[s.a];
          values.push(typeof a === 'number' ? Math.fround(applyUnary(s.fn, a)) : arr(unary(s.fn, a)));
          break;
        }
        case 'where': {
          const c = values[s.cond];
          if (typeof c === 'number') values.push(c !== 0 ? values[s.a] : values[s.b]);
          else values.push(arr(where(c, values[s.a], values[s.b])));
          break;
        }
        default: s satisfies never;
      }
    }
    // Each output as a full-shape array of its own (inputs and values shared by two outputs copied).
    const taken = new Set<NDArray>();
    const finals = program.outputs.map((id) => {
      const v = values[id];
      if (typeof v === 'number') {
        const f = NDArray.empty(shape, backend);
        if (f.size > 0) backend.fill(f.buffer, v, f.size);
        return f;
      }
      if (!shapesEqual(v.shape, shape)) return broadcastCompact(v, shape);
      if (!temps.has(v) || taken.has(v)) return v.clone();
      taken.add(v);
      temps.delete(v);
      return v;
    });
    // One recorded write per out array, named by the caller's writer as on the fused path.
    return finals.map((f, k) => {
      const o = outs[k];
      if (!o) return f;
      o.noteWrite(writer);
      if (f.size > 0) backend.ewiseSetitem(f.buffer, o.buffer, o.layout);
      f.dispose();
      return o;
    });
  } finally {
    for (const t of temps) t.dispose();
  }
}
