/**
 * Elementwise programs compiled to their own WebAssembly code at run time.
 *
 * The `program` kernel (assembly/index.ts) interprets a program block by block: every step is a
 * pass of its op's kernel over a 256-element block in L1, a load, the op and a store per vector.
 * A compiled program keeps every value in f32x4 locals instead: per vector it loads each compact
 * input once, runs one instruction (or the same short sequence the block kernels use) per step and
 * stores each output once. The instruction sequence of every op is the one of the block kernels
 * (`binary`, `unary`, `where`), and exp/log/tanh/pow and the strided gathers are calls into the
 * kernels module itself (its jit* exports), so the results are the interpreter's bit for bit (an
 * inline copy of exp and tanh measured no faster than the calls: NOTES.md section 20).
 *
 * The generated module imports the backend's memory and the kernels' jit* functions and exports one
 * function with the `program` kernel's arguments less the counts:
 * `run(code, outs, regs, start, n, layout)`, reading the encoded program that `encodeProgram`
 * writes (input addresses, scalar and constant bits, output addresses and layout records), so one
 * module serves every call of a program whatever buffers and scalars it gets. What the code depends
 * on besides the program is each operand's kind (`OperandKind`), part of the cache key.
 */
import type { ElementwiseProgram } from '@needle/ndarray';
import { Bytes, Code, F32, I32, OP, SIMD, V128 } from './wasm';

/**
 * How the compiled code reaches an operand: 'c' compact (a vector load or store at the element's
 * address); 'r' strided with last-axis stride 1 (vector loads or stores along each row, the rows'
 * starts from the kernels' jitPlanes and the operand's second-to-last stride); 'z' an input with
 * last-axis stride 0 (one value per row, splatted); 'b' an input broadcast to every element (all
 * strides 0: splatted once per call); 's' any other strided operand (gathered into or scattered
 * from a 256-element block by the kernels' stridedBlock, as the interpreter does). A program has either 's' operands or 'r'/'z' ones, never
 * both; 'r'/'z' need a last axis that is a multiple of 4 long and `start` at a row's start.
 */
export type OperandKind = 'c' | 's' | 'b' | 'r' | 'z';

/** Vectors per iteration of the main loop (independent chains side by side for the scheduler). */
const UNROLL = 2;

/** Elements per block of strided operands: the kernels module's PROGRAM_BLOCK. */
const BLOCK = 256;

// Imported functions, in import order.
const FN_EXP = 0;
const FN_LOG = 1;
const FN_TANH = 2;
const FN_POW = 3;
const FN_STRIDED = 4;
const FN_PLANES = 5;
const FN_POW_HALF = 6;
const FN_RUN = 7;
/** The kernels' exports the compiled modules import, by import name. */
export const JIT_IMPORTS = { exp: 'jitExp', log: 'jitLog', tanh: 'jitTanh', pow: 'jitPow', strided: 'jitStrided', planes: 'jitPlanes', powHalf: 'jitPowHalf' } as const;
/** Planes (runs of the second-to-last axis) whose starts one jitPlanes call computes (this many i32s per operand). */
const ROW_CHUNK = 256;

// Parameters of the compiled function (the `program` kernel's, less the step and output counts).
const P_CODE = 0;
const P_OUTS = 1;
const P_REGS = 2;
const P_START = 3;
const P_N = 4;
const P_LAYOUT = 5;

/**
 * The binary of a module running `program` with operands of the given kinds (`inputs[i]` for input
 * i, `outputs[k]` for output k), importing a memory declared shared or not.
 */
export function programModuleBytes(program: ElementwiseProgram, inputs: readonly OperandKind[], outputs: readonly OperandKind[], shared: boolean): { bytes: Uint8Array; warmIterations: number } {
  const { steps } = program;
  // Only the steps an output depends on are computed (the interpreter runs every step, but a value
  // nothing reads changes no output).
  const live = new Array<boolean>(steps.length).fill(false);
  for (const o of program.outputs) live[o] = true;
  for (let j = steps.length - 1; j >= 0; j--) {
    if (!live[j]) continue;
    const s = steps[j];
    if (s.op === 'binary') { live[s.a] = true; live[s.b] = true; }
    else if (s.op === 'unary') live[s.a] = true;
    else if (s.op === 'where') { live[s.cond] = true; live[s.a] = true; live[s.b] = true; }
  }
  // A comparison's value is its lane mask ANDed with 1.0, and where() selects by `cond != 0`: where a
  // comparison is a where's condition, the where selects by the mask itself (the same lanes), and a
  // comparison used only as conditions never computes its value (NOTES.md section 41).
  const isComparison = (j: number) => {
    const s = steps[j];
    return s.op === 'binary' && COMPARISONS.has(s.fn);
  };
  const asCondition = new Array<boolean>(steps.length).fill(false);
  const asValue = new Array<boolean>(steps.length).fill(false);
  for (const o of program.outputs) asValue[o] = true;
  steps.forEach((s, j) => {
    if (!live[j]) return;
    if (s.op === 'binary') { asValue[s.a] = true; asValue[s.b] = true; }
    else if (s.op === 'unary') asValue[s.a] = true;
    else if (s.op === 'where') { asCondition[s.cond] = true; asValue[s.a] = true; asValue[s.b] = true; }
  });
  const masked = steps.map((_, j) => live[j] && asCondition[j] && isComparison(j));
  const stridedIns = steps.flatMap((s, j) => (s.op === 'input' && live[j] && inputs[s.index] === 's' ? [j] : []));
  const stridedOuts = outputs.flatMap((k, i) => (k === 's' ? [i] : []));
  const blocked = stridedIns.length + stridedOuts.length > 0;
  const rowIns = steps.flatMap((s, j) => (s.op === 'input' && live[j] && (inputs[s.index] === 'r' || inputs[s.index] === 'z') ? [j] : []));
  const rowOuts = outputs.flatMap((k, i) => (k === 'r' ? [i] : []));
  const rowed = rowIns.length + rowOuts.length > 0;
  if (blocked && rowed) throw new Error('ndarray-wasm: a compiled program has either gathered or row operands');
  /** The value of step j where it is a constant (the exponent of x ** 2, x ** -0.5, ...). */
  const constant = (j: number): number | undefined => {
    const s = steps[j];
    return s.op === 'const' ? s.value : undefined;
  };
  const splatted = (s: (typeof steps)[number]) => s.op === 'scalar' || s.op === 'const' || (s.op === 'input' && (inputs[s.index] === 'b' || inputs[s.index] === 'z'));

  // Locals: i32 scratch, one i32 address per step and output, then one v128 per step and 3 constants.
  let next = 6;
  const L_E = next++; // byte offset of the current vector from element 0
  const L_VEND = next++; // where the vector loop stops
  const L_B = next++; // byte offset inside the current block (strided operands)
  const L_BASE = next++; // first element of the current block
  const L_STOP = next++;
  const L_M = next++; // elements in the current block
  const L_REST = next++; // n % 4 of the last block
  const L_BLOCKS = next++;
  const L_IDX = next++;
  const L_ROW = next++; // row mode: first plane of the current chunk of planes
  const L_ROWEND = next++;
  const L_ROWBYTES = next++;
  const L_CNT = next++; // planes in the current chunk
  const L_R = next++; // plane within the chunk
  const L_ROWS2 = next++; // row mode: rows in a plane (the second-to-last axis), at least 1
  const L_J = next++; // row within the current plane
  const L_JEND = next++;
  const stepAddr = steps.map(() => next++);
  const outAddr = program.outputs.map(() => next++);
  // Row operands: the buffer, the layout record, the table of plane starts, the second-to-last stride.
  const stepBuf = steps.map(() => next++);
  const stepRec = steps.map(() => next++);
  const stepRows = steps.map(() => next++);
  const stepStride2 = steps.map(() => next++);
  const outBuf = program.outputs.map(() => next++);
  const outRec = program.outputs.map(() => next++);
  const outRows = program.outputs.map(() => next++);
  const outStride2 = program.outputs.map(() => next++);
  const i32Count = next - 6;
  const val = steps.map(() => next++);
  // The unrolled loop's further vectors get locals of their own, but share splats.
  const vals: number[][] = [val];
  for (let u = 1; u < UNROLL; u++) {
    vals.push(steps.map((s, j) => (splatted(s) ? val[j] : next++)));
  }
  // The lane masks of comparisons that are where() conditions, per unrolled vector (-1: none).
  const masks: number[][] = vals.map(() => steps.map((_, j) => (masked[j] ? next++ : -1)));
  const V_ZERO = next++;
  const V_ONE = next++;
  const V_MINUS_ONE = next++;

  const c = new Code();
  // Prologue: addresses, splats and constants.
  c.simd(SIMD.const).byte(...new Array<number>(16).fill(0)).set(V_ZERO);
  c.op(0x43).f32(1).simd(SIMD.f32x4Splat).set(V_ONE);
  c.op(0x43).f32(-1).simd(SIMD.f32x4Splat).set(V_MINUS_ONE);
  if (blocked || rowed) {
    // The thread's register area: 16 blocks of BLOCK floats (16-byte aligned; in row mode the
    // operands' tables of row starts), then index scratch.
    c.get(P_REGS).i32(15).op(OP.i32Add).i32(-16).op(OP.i32And).set(L_BLOCKS);
    c.get(L_BLOCKS).i32(16 * 4 * BLOCK).op(OP.i32Add).set(L_IDX);
  }
  const blockOf = new Map<number, number>();
  const blockAddr = (slot: number) => c.get(L_BLOCKS).i32(slot * 4 * BLOCK).op(OP.i32Add);
  // Step j's encoded record is at code + 16 j: [kind, a, b, c].
  const record = (j: number) => c.get(P_CODE).i32(16 * j).op(OP.i32Add);
  steps.forEach((s, j) => {
    if (!live[j]) return;
    if (s.op === 'scalar' || s.op === 'const') {
      record(j).mem(OP.f32Load, 2, 4).simd(SIMD.f32x4Splat).set(val[j]);
    } else if (s.op === 'input') {
      const kind = inputs[s.index];
      if (kind === 'c') {
        record(j).mem(OP.i32Load, 2, 4).set(stepAddr[j]);
      } else if (kind === 'b') {
        // buffer + 4 * (the layout record's offset word)
        record(j).mem(OP.i32Load, 2, 4);
        record(j).mem(OP.i32Load, 2, 8).mem(OP.i32Load, 2, 0).i32(2).op(OP.i32Shl).op(OP.i32Add);
        c.mem(OP.f32Load, 2, 0).simd(SIMD.f32x4Splat).set(val[j]);
      } else if (kind === 'r' || kind === 'z') {
        record(j).mem(OP.i32Load, 2, 4).set(stepBuf[j]);
        record(j).mem(OP.i32Load, 2, 8).set(stepRec[j]);
        blockAddr(rowIns.indexOf(j)).set(stepRows[j]);
      } else {
        blockOf.set(j, blockOf.size);
        blockAddr(blockOf.get(j)!).set(stepAddr[j]);
      }
    }
  });
  program.outputs.forEach((_, k) => {
    if (outputs[k] === 'c') {
      c.get(P_OUTS).mem(OP.i32Load, 2, 16 * k + 4).set(outAddr[k]);
    } else if (outputs[k] === 'r') {
      c.get(P_OUTS).mem(OP.i32Load, 2, 16 * k + 4).set(outBuf[k]);
      c.get(P_OUTS).mem(OP.i32Load, 2, 16 * k + 8).set(outRec[k]);
      blockAddr(rowIns.length + rowOuts.indexOf(k)).set(outRows[k]);
    } else {
      blockAddr(stridedIns.length + stridedOuts.indexOf(k)).set(outAddr[k]);
    }
  });

  // The element address of a compact operand (base + e) or a strided one's block (block + b).
  const addr = (base: number, compact: boolean) => c.get(base).get(compact ? L_E : L_B).op(OP.i32Add);
  const inputCompact = (j: number) => inputs[(steps[j] as { index: number }).index] === 'c';
  const inputAddr = (j: number) => addr(stepAddr[j], inputs[(steps[j] as { index: number }).index] === 'c');

  /**
   * `count` vectors (at byte offsets 0, 16, ... from e and b) of every live step into their locals,
   * step by step; `tail` (count 1) loads only lanes [0, rest).
   */
  const body = (tail: boolean, count: number) => {
    steps.forEach((s, j) => {
      if (!live[j]) return;
      for (let u = 0; u < count; u++) step(s, j, vals[u], masks[u], tail, 16 * u);
    });
    // Every value of these vectors exists before the first store, so an output that is also an
    // input's buffer (read in place at the same element) is read first.
    program.outputs.forEach((o, k) => {
      const compact = outputs[k] === 'c';
      for (let u = 0; u < count; u++) store(o, k, vals[u], tail, compact, 16 * u);
    });
  };
  const step = (s: (typeof steps)[number], j: number, val: number[], mask: number[], tail: boolean, at: number) => {
    switch (s.op) {
      case 'input':
        if (inputs[s.index] === 'b' || inputs[s.index] === 'z') break;
        if (!tail) {
          addr(stepAddr[j], inputCompact(j)).simdMem(SIMD.load, 4, at).set(val[j]);
        } else {
          inputAddr(j).simdMem(SIMD.load32Zero, 2, 0).set(val[j]);
          for (let lane = 1; lane < 3; lane++) {
            c.get(L_REST).i32(lane).op(OP.i32GtU).op(OP.if).byte(0x40);
            inputAddr(j).get(val[j]).simdMem(SIMD.load32Lane, 2, 4 * lane).byte(lane).set(val[j]);
            c.op(OP.end);
          }
        }
        break;
      case 'scalar':
      case 'const':
        break;
      case 'binary':
        if (masked[j]) {
          c.get(val[s.a]).get(val[s.b]).simd(COMPARISONS.get(s.fn)!).set(mask[j]);
          if (asValue[j]) c.get(mask[j]).get(V_ONE).simd(SIMD.and).set(val[j]);
          break;
        }
        binaryOp(c, s.fn, val[s.a], val[s.b], V_ONE, constant(s.b));
        c.set(val[j]);
        break;
      case 'unary':
        unaryOp(c, s.fn, val[s.a], V_ZERO, V_ONE, V_MINUS_ONE);
        c.set(val[j]);
        break;
      case 'where':
        // where(): bitselect(x, y, cond != 0); a NaN condition selects x. A comparison's mask is
        // already that test (its value, mask & 1.0, is nonzero exactly in the mask's lanes).
        if (masked[s.cond]) {
          c.get(val[s.a]).get(val[s.b]).get(mask[s.cond]).simd(SIMD.bitselect).set(val[j]);
          break;
        }
        c.get(val[s.a]).get(val[s.b]).get(val[s.cond]).get(V_ZERO).simd(SIMD.ne).simd(SIMD.bitselect).set(val[j]);
        break;
      default:
        s satisfies never;
    }
  };
  const store = (step: number, k: number, val: number[], tail: boolean, compact: boolean, at: number) => {
    if (!tail) {
      addr(outAddr[k], compact).get(val[step]).simdMem(SIMD.store, 4, at);
      return;
    }
    addr(outAddr[k], compact).get(val[step]).simdMem(SIMD.store32Lane, 2, 0).byte(0);
    for (let lane = 1; lane < 3; lane++) {
      c.get(L_REST).i32(lane).op(OP.i32GtU).op(OP.if).byte(0x40);
      addr(outAddr[k], compact).get(val[step]).simdMem(SIMD.store32Lane, 2, 4 * lane).byte(lane);
      c.op(OP.end);
    }
  };

  /** The vector loop from e to vend, then the last count % 4 elements of `countLocal` (null: none). */
  const vectors = (countLocal: number | null) => {
    if (UNROLL > 1) {
      c.op(OP.block).byte(0x40).op(OP.loop).byte(0x40);
      c.get(L_E).i32(16 * UNROLL).op(OP.i32Add).get(L_VEND).op(OP.i32GtU).op(OP.brIf).u32(1);
      body(false, UNROLL);
      c.get(L_E).i32(16 * UNROLL).op(OP.i32Add).set(L_E);
      if (blocked || rowed) c.get(L_B).i32(16 * UNROLL).op(OP.i32Add).set(L_B);
      c.op(OP.br).u32(0).op(OP.end).op(OP.end);
    }
    c.op(OP.block).byte(0x40).op(OP.loop).byte(0x40);
    c.get(L_E).get(L_VEND).op(OP.i32GeU).op(OP.brIf).u32(1);
    body(false, 1);
    c.get(L_E).i32(16).op(OP.i32Add).set(L_E);
    if (blocked || rowed) c.get(L_B).i32(16).op(OP.i32Add).set(L_B);
    c.op(OP.br).u32(0).op(OP.end).op(OP.end);
    if (countLocal === null) return;
    c.get(countLocal).i32(3).op(OP.i32And).set(L_REST);
    c.get(L_REST).op(OP.if).byte(0x40);
    body(true, 1);
    c.op(OP.end);
  };

  const stridedCall = (scatter: boolean, bufWord: () => void, recWord: () => void, blk: number) => {
    c.i32(scatter ? 1 : 0);
    bufWord();
    c.get(P_LAYOUT);
    recWord();
    c.get(L_BASE).get(L_M).get(blk).get(L_IDX).op(OP.call).u32(FN_STRIDED);
  };

  // Warm-up (n < 0): V8 first runs new code unoptimized (Liftoff) and optimizes a function once it
  // has run "enough" code, counted at loop back edges by the loop body's size. This loop's body
  // holds a never-run copy of the vector body, so -n iterations (a few microseconds) count as that
  // many vectors computed, and a program launched rarely still gets optimized code soon. (After
  // the prologue, which reads the encoded program: a warm-up call passes the real arguments.)
  c.get(P_N).i32(0).op(OP.i32LtS).op(OP.if).byte(0x40);
  c.op(OP.loop).byte(0x40);
  c.get(P_N).i32(1).op(OP.i32Add).set(P_N);
  c.get(P_N).i32(0).op(OP.i32GtS).op(OP.if).byte(0x40);
  const deadStart = c.length;
  body(false, UNROLL);
  const deadBytes = c.length - deadStart;
  c.op(OP.end);
  c.get(P_N).i32(0).op(OP.i32LtS).op(OP.brIf).u32(0);
  c.op(OP.end);
  c.op(OP.return);
  c.op(OP.end);
  /** local = buf + 4 * (planes[p] + j * stride2) (the current row's start in a row operand). */
  const rowStart = (buf: number, planes: number, stride2: number) =>
    c.get(buf).get(planes).get(L_R).i32(2).op(OP.i32Shl).op(OP.i32Add).mem(OP.i32Load, 2, 0).i32(2).op(OP.i32Shl).op(OP.i32Add).get(L_J).get(stride2).op(OP.i32Mul).op(OP.i32Add);

  if (rowed) {
    // Rows of the last axis (L elements, L % 4 == 0) in planes, the runs of the second-to-last axis
    // (R2 rows), whose starts jitPlanes computes for every row operand in chunks of ROW_CHUNK
    // planes; within a plane each row operand moves by its stride along that axis, and compact
    // operands continue from row to row (NOTES.md section 44).
    c.get(P_LAYOUT).get(P_LAYOUT).mem(OP.i32Load, 2, 0).i32(2).op(OP.i32Shl).op(OP.i32Add).mem(OP.i32Load, 2, 0).set(L_M);
    c.get(L_M).i32(2).op(OP.i32Shl).set(L_ROWBYTES);
    // R2 = shape[ndim - 2] where ndim >= 2, else 1; each row operand's stride along that axis.
    c.i32(1).set(L_ROWS2);
    for (const j of rowIns) c.i32(0).set(stepStride2[j]);
    for (const k of rowOuts) c.i32(0).set(outStride2[k]);
    c.get(P_LAYOUT).mem(OP.i32Load, 2, 0).i32(2).op(OP.i32GeS).op(OP.if).byte(0x40);
    // layout + 4 * ndim is shape[ndim - 1]; shape[ndim - 2] is 4 bytes before it.
    c.get(P_LAYOUT).get(P_LAYOUT).mem(OP.i32Load, 2, 0).i32(2).op(OP.i32Shl).op(OP.i32Add).i32(4).op(OP.i32Sub).mem(OP.i32Load, 2, 0).set(L_ROWS2);
    // rec + 4 * ndim is the last axis's stride (rec: [offset, strides...]); the one before, in bytes.
    const stride2 = (rec: number, local: number) =>
      c.get(rec).get(P_LAYOUT).mem(OP.i32Load, 2, 0).i32(2).op(OP.i32Shl).op(OP.i32Add).i32(4).op(OP.i32Sub).mem(OP.i32Load, 2, 0).i32(2).op(OP.i32Shl).set(local);
    for (const j of rowIns) stride2(stepRec[j], stepStride2[j]);
    for (const k of rowOuts) stride2(outRec[k], outStride2[k]);
    c.op(OP.end);
    // ROW: the first row; ROWEND: past the last; ROW / R2 the first plane (kept in L_ROW from here
    // on, as planes), ROW % R2 the row within it.
    c.get(P_START).get(L_M).op(OP.i32DivU).set(L_ROW);
    c.get(P_START).get(P_N).op(OP.i32Add).get(L_M).op(OP.i32DivU).set(L_ROWEND);
    c.get(L_ROW).get(L_ROWS2).op(OP.i32RemU).set(L_J);
    c.get(L_ROW).get(L_ROWS2).op(OP.i32DivU).set(L_ROW);
    c.get(P_START).i32(2).op(OP.i32Shl).set(L_E);
    c.op(OP.block).byte(0x40).op(OP.loop).byte(0x40);
    // while plane * R2 + j < rowEnd
    c.get(L_ROW).get(L_ROWS2).op(OP.i32Mul).get(L_J).op(OP.i32Add).get(L_ROWEND).op(OP.i32GeU).op(OP.brIf).u32(1);
    // planes left: ceil((rowEnd - plane * R2) / R2), at most ROW_CHUNK
    c.get(L_ROWEND).get(L_ROW).get(L_ROWS2).op(OP.i32Mul).op(OP.i32Sub).get(L_ROWS2).op(OP.i32Add).i32(1).op(OP.i32Sub).get(L_ROWS2).op(OP.i32DivU).set(L_CNT);
    c.i32(ROW_CHUNK).get(L_CNT).get(L_CNT).i32(ROW_CHUNK).op(OP.i32GtU).op(OP.select).set(L_CNT);
    const planesCall = (rec: number, table: number) => c.get(P_LAYOUT).get(rec).get(L_ROW).get(L_CNT).get(table).get(L_IDX).op(OP.call).u32(FN_PLANES);
    for (const j of rowIns) planesCall(stepRec[j], stepRows[j]);
    for (const k of rowOuts) planesCall(outRec[k], outRows[k]);
    c.i32(0).set(L_R);
    c.op(OP.block).byte(0x40).op(OP.loop).byte(0x40);
    c.get(L_R).get(L_CNT).op(OP.i32GeU).op(OP.brIf).u32(1);
    for (const j of rowIns) rowStart(stepBuf[j], stepRows[j], stepStride2[j]).set(stepAddr[j]);
    for (const k of rowOuts) rowStart(outBuf[k], outRows[k], outStride2[k]).set(outAddr[k]);
    // jEnd = min(R2, rowEnd - (plane + p) * R2)
    c.get(L_ROWEND).get(L_ROW).get(L_R).op(OP.i32Add).get(L_ROWS2).op(OP.i32Mul).op(OP.i32Sub).set(L_JEND);
    c.get(L_ROWS2).get(L_JEND).get(L_JEND).get(L_ROWS2).op(OP.i32GtU).op(OP.select).set(L_JEND);
    c.op(OP.block).byte(0x40).op(OP.loop).byte(0x40);
    c.get(L_J).get(L_JEND).op(OP.i32GeU).op(OP.brIf).u32(1);
    for (const j of rowIns) {
      if (inputs[(steps[j] as { index: number }).index] === 'z') c.get(stepAddr[j]).mem(OP.f32Load, 2, 0).simd(SIMD.f32x4Splat).set(val[j]);
    }
    c.i32(0).set(L_B);
    c.get(L_E).get(L_ROWBYTES).op(OP.i32Add).set(L_VEND);
    vectors(null);
    for (const j of rowIns) c.get(stepAddr[j]).get(stepStride2[j]).op(OP.i32Add).set(stepAddr[j]);
    for (const k of rowOuts) c.get(outAddr[k]).get(outStride2[k]).op(OP.i32Add).set(outAddr[k]);
    c.get(L_J).i32(1).op(OP.i32Add).set(L_J);
    c.op(OP.br).u32(0).op(OP.end).op(OP.end);
    c.i32(0).set(L_J);
    c.get(L_R).i32(1).op(OP.i32Add).set(L_R);
    c.op(OP.br).u32(0).op(OP.end).op(OP.end);
    c.get(L_ROW).get(L_CNT).op(OP.i32Add).set(L_ROW);
    c.op(OP.br).u32(0).op(OP.end).op(OP.end);
  } else if (!blocked) {
    c.get(P_START).i32(2).op(OP.i32Shl).set(L_E);
    c.get(P_START).get(P_N).i32(-4).op(OP.i32And).op(OP.i32Add).i32(2).op(OP.i32Shl).set(L_VEND);
    vectors(P_N);
  } else {
    // Blocks of BLOCK elements from `start`, as the interpreter cuts them (its strided gathers and
    // scatters, one block at a time, are what this code calls).
    c.get(P_START).set(L_BASE);
    c.get(P_START).get(P_N).op(OP.i32Add).set(L_STOP);
    c.op(OP.block).byte(0x40).op(OP.loop).byte(0x40);
    c.get(L_BASE).get(L_STOP).op(OP.i32GeS).op(OP.brIf).u32(1);
    // m = min(BLOCK, stop - base)
    c.i32(BLOCK).get(L_STOP).get(L_BASE).op(OP.i32Sub).get(L_STOP).get(L_BASE).op(OP.i32Sub).i32(BLOCK).op(OP.i32GtS).op(OP.select).set(L_M);
    for (const j of stridedIns) {
      stridedCall(false, () => record(j).mem(OP.i32Load, 2, 4), () => record(j).mem(OP.i32Load, 2, 8), stepAddr[j]);
    }
    c.get(L_BASE).i32(2).op(OP.i32Shl).set(L_E);
    c.get(L_E).get(L_M).i32(-4).op(OP.i32And).i32(2).op(OP.i32Shl).op(OP.i32Add).set(L_VEND);
    c.i32(0).set(L_B);
    vectors(L_M);
    for (const k of stridedOuts) {
      stridedCall(true, () => c.get(P_OUTS).mem(OP.i32Load, 2, 16 * k + 4), () => c.get(P_OUTS).mem(OP.i32Load, 2, 16 * k + 8), outAddr[k]);
    }
    c.get(L_BASE).i32(BLOCK).op(OP.i32Add).set(L_BASE);
    c.op(OP.br).u32(0).op(OP.end).op(OP.end);
  }
  c.op(OP.end);

  const v128Count = next - 6 - i32Count;
  // V8's budget is 1.8 M bytes (--wasm-tiering-budget); a little more to be sure.
  return { bytes: moduleBytes(c, i32Count, v128Count, shared), warmIterations: Math.ceil(2.5e6 / deadBytes) };
}

/** A module importing the memory and the kernels' jit* functions, exporting `run` with body `c`. */
function moduleBytes(c: Code, i32Count: number, v128Count: number, shared: boolean): Uint8Array {
  const fn = new Bytes().u32(2).u32(i32Count).byte(I32).u32(v128Count).byte(V128).append(c);
  const m = new Bytes().byte(0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00);
  const section = (id: number, content: Bytes) => m.byte(id).u32(content.length).append(content);
  // Types: 0 run, 1 v128 -> v128, 2 (f32, f32) -> f32, 3 the strided gather, 4 (v128, i32) -> v128.
  section(1, new Bytes().u32(5)
    .byte(0x60).u32(6).byte(I32, I32, I32, I32, I32, I32).u32(0)
    .byte(0x60).u32(1).byte(V128).u32(1).byte(V128)
    .byte(0x60).u32(2).byte(F32, F32).u32(1).byte(F32)
    .byte(0x60).u32(8).byte(I32, I32, I32, I32, I32, I32, I32, I32).u32(0)
    .byte(0x60).u32(2).byte(V128, I32).u32(1).byte(V128));
  const imports = new Bytes().u32(8);
  imports.name('k').name('exp').byte(0x00).u32(1);
  imports.name('k').name('log').byte(0x00).u32(1);
  imports.name('k').name('tanh').byte(0x00).u32(1);
  imports.name('k').name('pow').byte(0x00).u32(2);
  imports.name('k').name('strided').byte(0x00).u32(3);
  imports.name('k').name('planes').byte(0x00).u32(0);
  imports.name('k').name('powHalf').byte(0x00).u32(4);
  // A shared memory can only be imported as shared (with a maximum: the wasm32 limit).
  imports.name('env').name('memory').byte(0x02);
  if (shared) imports.byte(0x03).u32(0).u32(65536);
  else imports.byte(0x00).u32(0);
  section(2, imports);
  section(3, new Bytes().u32(1).u32(0));
  section(7, new Bytes().u32(1).name('run').byte(0x00).u32(FN_RUN));
  section(10, new Bytes().u32(1).u32(fn.length).append(fn));
  return m.bytes().slice();
}

/** Where `warmerModuleBytes`'s function expects its scratch (bytes from `regs`; WARMER_BYTES in all). */
export const WARMER = { layout: 0, rec: 64, src: 1024, blk: 4096, idx: 8192, rows: 12288 } as const;
export const WARMER_BYTES = 13312;

/**
 * A module whose `run(_, _, regs, _, n, _)` calls each of the kernels' jit* functions n times
 * (exp, log, tanh, pow on constants; a 16 x 16 transposed gather and its planes, on scratch at `regs`
 * that the caller lays out as WARMER says), so V8 optimizes them before compiled programs rely on
 * them: they are called only from compiled code, whose warm-up does not reach into them.
 */
export function warmerModuleBytes(shared: boolean): Uint8Array {
  const c = new Code();
  const V = 6 + 1;
  const at = (off: number) => c.get(P_REGS).i32(off).op(OP.i32Add);
  c.op(0x43).f32(0.5).simd(SIMD.f32x4Splat).set(V);
  c.op(OP.loop).byte(0x40);
  c.get(V).op(OP.call).u32(FN_EXP).op(OP.call).u32(FN_LOG).op(OP.call).u32(FN_TANH).i32(1).op(OP.call).u32(FN_POW_HALF).set(V);
  c.op(0x43).f32(1.5).op(0x43).f32(2).op(OP.call).u32(FN_POW).op(OP.drop);
  c.i32(0);
  at(WARMER.src);
  at(WARMER.layout);
  at(WARMER.rec);
  c.i32(0).i32(256);
  at(WARMER.blk);
  at(WARMER.idx).op(OP.call).u32(FN_STRIDED);
  at(WARMER.layout);
  at(WARMER.rec);
  c.i32(0).i32(16);
  at(WARMER.rows);
  at(WARMER.idx).op(OP.call).u32(FN_PLANES);
  c.get(P_N).i32(1).op(OP.i32Sub).set(P_N);
  c.get(P_N).i32(0).op(OP.i32GtS).op(OP.brIf).u32(0);
  c.op(OP.end);
  // Keep the vector live so the calls are not dead code.
  at(WARMER.blk).get(V).simdMem(SIMD.store, 4, 0).op(OP.end);
  return moduleBytes(c, 1, 1, shared);
}

/** The comparisons' f32x4 instructions: each gives a lane mask, which the `binary` kernel ANDs with 1.0. */
const COMPARISONS = new Map<string, number>([['eq', SIMD.eq], ['ne', SIMD.ne], ['ge', SIMD.ge], ['gt', SIMD.gt], ['le', SIMD.le], ['lt', SIMD.lt]]);

/** Pushes `fn(a, b)` as the `binary` kernel computes it. */
function binaryOp(c: Code, fn: string, a: number, b: number, one: number, bConstant: number | undefined): void {
  const cmp = (op: number) => c.get(a).get(b).simd(op).get(one).simd(SIMD.and);
  switch (fn) {
    case 'add': c.get(a).get(b).simd(SIMD.add); return;
    case 'sub': c.get(a).get(b).simd(SIMD.sub); return;
    case 'mul': c.get(a).get(b).simd(SIMD.mul); return;
    case 'div': c.get(a).get(b).simd(SIMD.div); return;
    // Not f32x4.max/min: ties keep x (-0 vs +0) and a NaN x is returned, as in the kernels.
    case 'maximum': c.get(a).get(b).get(a).get(b).simd(SIMD.ge).get(a).get(a).simd(SIMD.ne).simd(SIMD.or).simd(SIMD.bitselect); return;
    case 'minimum': c.get(a).get(b).get(a).get(b).simd(SIMD.le).get(a).get(a).simd(SIMD.ne).simd(SIMD.or).simd(SIMD.bitselect); return;
    case 'eq': cmp(SIMD.eq); return;
    case 'ne': cmp(SIMD.ne); return;
    case 'ge': cmp(SIMD.ge); return;
    case 'gt': cmp(SIMD.gt); return;
    case 'le': cmp(SIMD.le); return;
    case 'lt': cmp(SIMD.lt); return;
    case 'pow':
      // The interpreter's pow gives every element the kernels' scalar powScalar result, and its
      // vector shortcuts for the exponents 2 and +-0.5 compute the same: with such a constant
      // exponent, those shortcuts (x * x, the kernels' powHalf); otherwise lane by lane.
      if (bConstant === 2) {
        c.get(a).get(a).simd(SIMD.mul);
        return;
      }
      if (bConstant === 0.5 || bConstant === -0.5) {
        c.get(a).i32(bConstant < 0 ? 1 : 0).op(OP.call).u32(FN_POW_HALF);
        return;
      }
      c.get(a);
      for (let lane = 0; lane < 4; lane++) {
        c.get(a).simd(SIMD.extract).byte(lane).get(b).simd(SIMD.extract).byte(lane).op(OP.call).u32(FN_POW);
        c.simd(SIMD.replace).byte(lane);
      }
      return;
    default:
      throw new Error(`ndarray-wasm: no compiled form for binary op '${fn}'`);
  }
}

/** Pushes `fn(a)` as the `unary` kernel computes it. */
function unaryOp(c: Code, fn: string, a: number, zero: number, one: number, minusOne: number): void {
  switch (fn) {
    case 'neg': c.get(a).simd(SIMD.neg); return;
    case 'abs': c.get(a).simd(SIMD.abs); return;
    case 'sqrt': c.get(a).simd(SIMD.sqrt); return;
    case 'exp': c.get(a).op(OP.call).u32(FN_EXP); return;
    case 'log': c.get(a).op(OP.call).u32(FN_LOG); return;
    case 'tanh': c.get(a).op(OP.call).u32(FN_TANH); return;
    case 'sign':
      // signv: 1 where x > 0, else -1 where x < 0, else x (0, -0, NaN).
      c.get(one).get(minusOne).get(a).get(a).get(zero).simd(SIMD.lt).simd(SIMD.bitselect);
      c.get(a).get(zero).simd(SIMD.gt).simd(SIMD.bitselect);
      return;
    default:
      throw new Error(`ndarray-wasm: no compiled form for unary op '${fn}'`);
  }
}
