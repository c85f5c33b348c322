import type { ElementwiseProgram, ProgramReduceOp, ReduceOp } from '@needle/ndarray';
import { bindings, type Access, type KernelSource } from './kernel';
import { PROGRAM_LAYOUT_WORD, programSteps, stridedIndex, type ProgramStrides, type ProgramVec4 } from './program';
import { PRELUDE } from './wgsl';

/**
 * 'thread': one invocation reduces one block (short blocks, many of them).
 * 'thread4': the same with vec4 loads and four partial results (sum/max/min of blocks whose length
 *   is a multiple of 4): a quarter of the load instructions, which is what software rasterisers pay for.
 * 'group': one workgroup per block, a strided per-invocation pass then a tree in workgroup memory.
 */
export type ReduceStrategy = 'thread' | 'thread4' | 'group';

function isArg(op: ReduceOp): op is 'argmax' | 'argmin' {
  return op === 'argmax' || op === 'argmin';
}

/** Identity element and combine step of each reduction, in WGSL. */
function opCode(op: ReduceOp): { init: string; combine: string } {
  switch (op) {
    case 'sum': return { init: '0.0', combine: 'fn comb(x: f32, y: f32) -> f32 { return x + y; }' };
    case 'max': return { init: '-inf_()', combine: 'fn comb(x: f32, y: f32) -> f32 { return max_(x, y); }' };
    case 'min': return { init: 'inf_()', combine: 'fn comb(x: f32, y: f32) -> f32 { return min_(x, y); }' };
    case 'argmax':
    case 'argmin': {
      // A total order independent of visiting order: NaN first, then the extreme value, then the
      // smaller index, so a tree reduction finds the same element as the CPU's left-to-right scan.
      const cmp = op === 'argmax' ? 'w > v' : 'w < v';
      return {
        init: op === 'argmax' ? '-inf_()' : 'inf_()',
        combine: `fn better(v: f32, i: u32, w: f32, j: u32) -> bool {
  let nv = isnan_(v);
  let nw = isnan_(w);
  if (nv || nw) { return nw && (!nv || j < i); }
  if (w == v) { return j < i; }
  return ${cmp};
}`,
      };
    }
    default: return op satisfies never;
  }
}

export function reduceKernel(op: ReduceOp, strategy: ReduceStrategy, workgroup: number): KernelSource {
  return {
    key: `reduce:${op}:${strategy}:${workgroup}`,
    storage: ['read', 'read_write'],
    code() {
      const decl = bindings('n: u32, row: u32, r: u32,', [
        { name: 'a', access: 'read', type: strategy === 'thread4' ? 'vec4<f32>' : 'f32' },
        { name: 'o', access: 'read_write', type: 'f32' },
      ]);
      return reduceShader(op, strategy, workgroup, decl, {
        load: (e) => `a[${e}]`,
        load4: (i) => `a[${i}]`,
        store: (v) => `o[j] = ${v};`,
      });
    },
  };
}

/**
 * sum/max/min down the columns of a row-major matrix: the coalesced view [outSize, reduceSize] with
 * strides [1, s] (block j is column j, e.g. a bias gradient summed over the batch), read as aligned
 * vec4s of four neighbouring columns (see `reduceColumnsApplies`). One invocation reduces four
 * columns with four partial results each, one per row index mod 4, combined as 'thread4' combines
 * its four lanes, so the result equals 'thread4' over the compact (transposed) input bit for bit,
 * with a quarter of its loads and no index division per element. Params: n = outSize / 4, row,
 * r = reduceSize, off4 = the view's offset / 4, s4 = s / 4.
 */
export function reduceColumnsKernel(op: 'sum' | 'max' | 'min', workgroup: number, mirror = false): KernelSource {
  return {
    key: `reduce:${op}:cols4:${workgroup}${mirror ? ':t' : ''}`,
    storage: [mirror ? 'storage-texture' : 'read', 'read_write'],
    code() {
      const { init, combine } = opCode(op);
      const decl = bindings('n: u32, row: u32, r: u32, off4: u32, s4: u32, sh: u32,', [
        { name: 'a', access: mirror ? 'storage-texture' : 'read', type: 'vec4<f32>' },
        { name: 'o', access: 'read_write', type: 'vec4<f32>' },
      ]);
      // With `mirror`, a is a texture mirror of the buffer (see mirrorShape; its row width's log2 in p.sh).
      const at = (i: string) => (mirror ? `textureLoad(a, vec2<u32>((${i}) & ((1u << p.sh) - 1u), (${i}) >> p.sh))` : `a[${i}]`);
      const c = ['x', 'y', 'z', 'w'];
      const K = [0, 1, 2, 3];
      const comb4 = (x: string, y: string) => `vec4<f32>(${c.map((l) => `comb(${x}.${l}, ${y}.${l})`).join(', ')})`;
      return `${PRELUDE}
${decl}
${combine}
@compute @workgroup_size(${workgroup})
fn main(@builtin(global_invocation_id) g: vec3<u32>) {
  let j = g.x + g.y * p.row;
  if (j >= p.n) { return; }
  let base = p.off4 + j;
${K.map((k) => `  var acc${k} = vec4<f32>(${init});`).join('\n')}
  for (var t = 0u; t < p.r; t += 4u) {
${K.map((k) => `    acc${k} = ${comb4(`acc${k}`, at(`base + (t + ${k}u) * p.s4`))};`).join('\n')}
  }
  o[j] = ${comb4(comb4('acc0', 'acc1'), comb4('acc2', 'acc3'))};
}
`;
    },
  };
}

/**
 * Whether `reduceColumnsKernel` reads a coalesced view: two axes [outSize, reduceSize] with
 * strides [1, s], s, the offset and outSize multiples of 4, and the 'thread4' strategy the one the
 * compact input would get (so the order of the sum is the same).
 */
export function reduceColumnsApplies(op: ReduceOp, view: { shape: readonly number[]; strides: readonly number[]; offset: number }, outSize: number, reduceSize: number): boolean {
  if (op !== 'sum' && op !== 'max' && op !== 'min') return false;
  const { shape, strides, offset } = view;
  return shape.length === 2 && shape[0] === outSize && strides[0] === 1 && strides[1] % 4 === 0 && offset % 4 === 0 && outSize % 4 === 0
    && reduceSize % 4 === 0 && reduceStrategy4(outSize, reduceSize);
}

/** Whether blocks of a multiple of 4 take 'thread4' (one invocation per block) rather than 'group'. */
export function reduceStrategy4(outSize: number, reduceSize: number): boolean {
  return reduceSize <= 256 || outSize >= 16384 || (outSize >= 256 && reduceSize <= 8192);
}

/** How a reduce shader reads its block's values and stores a block's result (WGSL expressions). */
interface ReduceIo {
  /** The value at element index `e`. */
  load(e: string): string;
  /** Four values, at vec4 index `i` (elements 4i .. 4i + 3). */
  load4(i: string): string;
  /** The statement storing `v` as block j's result. */
  store(v: string): string;
}

/**
 * The shader of a reduction in one of the three strategies, over values read through `io`, after
 * `decl` (bindings and any value functions). `logsumexp` makes two passes over the block, max then
 * the sum of exp(v - max). The plain reduce and the reduce program share it, so the two reduce a
 * block in the same order.
 */
function reduceShader(op: ProgramReduceOp, strategy: ReduceStrategy, workgroup: number, decl: string, io: ReduceIo): string {
  const lse = op === 'logsumexp';
  const base: ReduceOp = op === 'logsumexp' ? 'max' : op;
  const { init, combine } = opCode(base);
  const arg = isArg(base);
  const header = `${PRELUDE}
${decl}
${combine}`;
  const step = (v: string, i: string) => (arg
    ? `if (better(acc, idx, ${v}, ${i})) { acc = ${v}; idx = ${i}; }`
    : `acc = comb(acc, ${v});`);
  // After the max pass of a logsumexp: a non-finite max is the result; else the sum pass.
  const finite = (m: string) => `!(isnan_(${m}) || isinf_(${m}))`;
  if (strategy === 'thread4') {
    if (arg) throw new Error(`reduce: no vec4 strategy for ${op}`);
    const c = ['x', 'y', 'z', 'w'];
    return `${header}
@compute @workgroup_size(${workgroup})
fn main(@builtin(global_invocation_id) g: vec3<u32>) {
  let j = g.x + g.y * p.row;
  if (j >= p.n) { return; }
  let r4 = p.r >> 2u;
  let base = j * r4;
  var acc4 = vec4<f32>(${init});
  for (var t = 0u; t < r4; t++) {
    let v = ${io.load4('base + t')};
    acc4 = vec4<f32>(${c.map((x) => `comb(acc4.${x}, v.${x})`).join(', ')});
  }
  let m = comb(comb(acc4.x, acc4.y), comb(acc4.z, acc4.w));
${lse ? `  if (${finite('m')}) {
    var s4 = vec4<f32>(0.0);
    for (var t = 0u; t < r4; t++) {
      let v = ${io.load4('base + t')};
      s4 = s4 + vec4<f32>(${c.map((x) => `exp_(v.${x} - m)`).join(', ')});
    }
    ${io.store('m + log_((s4.x + s4.y) + (s4.z + s4.w))')}
  } else { ${io.store('m')} }` : `  ${io.store('m')}`}
}
`;
  }
  const result = arg ? 'f32(idx)' : 'acc';
  const vars = `var acc: f32 = ${init};${arg ? '\n  var idx: u32 = 0xffffffffu;' : ''}`;
  if (strategy === 'thread') {
    return `${header}
@compute @workgroup_size(${workgroup})
fn main(@builtin(global_invocation_id) g: vec3<u32>) {
  let j = g.x + g.y * p.row;
  if (j >= p.n) { return; }
  let base = j * p.r;
  ${vars}
  for (var t = 0u; t < p.r; t++) {
    let v = ${io.load('base + t')};
    ${step('v', 't')}
  }
${lse ? `  let m = acc;
  if (${finite('m')}) {
    var s = 0.0;
    for (var t = 0u; t < p.r; t++) { s = s + exp_(${io.load('base + t')} - m); }
    ${io.store('m + log_(s)')}
  } else { ${io.store('m')} }` : `  ${io.store(result)}`}
}
`;
  }
  const tree = (combineLine: string) => {
    const lines: string[] = [];
    for (let s = workgroup >> 1; s > 0; s >>= 1) lines.push(`  if (l < ${s}u) { ${combineLine.replaceAll('S', `${s}u`)} }\n  workgroupBarrier();`);
    return lines.join('\n');
  };
  const valueTree = tree(arg
    ? 'if (better(sv[l], si[l], sv[l + S], si[l + S])) { sv[l] = sv[l + S]; si[l] = si[l + S]; }'
    : 'sv[l] = comb(sv[l], sv[l + S]);');
  return `${header}
var<workgroup> sv: array<f32, ${workgroup}>;
${arg ? `var<workgroup> si: array<u32, ${workgroup}>;` : ''}
@compute @workgroup_size(${workgroup})
fn main(@builtin(workgroup_id) w: vec3<u32>, @builtin(local_invocation_index) l: u32) {
  let j = w.x + w.y * p.row;
  if (j >= p.n) { return; }
  let base = j * p.r;
  ${vars}
  for (var t = l; t < p.r; t += ${workgroup}u) {
    let v = ${io.load('base + t')};
    ${step('v', 't')}
  }
  sv[l] = acc;
  ${arg ? 'si[l] = idx;' : ''}
  workgroupBarrier();
${valueTree}
${lse ? `  let m = sv[0];
  // The sum pass runs whatever m is (barriers stay in uniform control flow), shifted by 0 when m
  // is not finite, and the result is chosen at the end. Every invocation has read m before the
  // pass overwrites sv.
  let fin = ${finite('m')};
  let shift = select(0.0, m, fin);
  workgroupBarrier();
  var s = 0.0;
  for (var t = l; t < p.r; t += ${workgroup}u) { s = s + exp_(${io.load('base + t')} - shift); }
  sv[l] = s;
  workgroupBarrier();
${tree('sv[l] = sv[l] + sv[l + S];')}
  if (l == 0u) { ${io.store('select(m, m + log_(sv[0]), fin)')} }` : `  if (l == 0u) { ${io.store(arg ? 'f32(si[0])' : 'sv[0]')} }`}
}
`;
}

/** Word of a reduce program's uniform block holding the program consts' zero (after the layouts). */
export const REDUCE_PROGRAM_ZERO_WORD = 120;
/** Layout words a reduce program's uniform block holds (words 20..119). */
export const REDUCE_PROGRAM_LAYOUT_WORDS = REDUCE_PROGRAM_ZERO_WORD - PROGRAM_LAYOUT_WORD;

/** How a reduce program reads the program's values: its binding layout, strides and vec4 modes. */
export interface ReduceProgramLoad {
  readonly program: ElementwiseProgram;
  /** Storage binding (0-based) of each program input; `out` is binding `outBinding`. */
  readonly inputBinding: readonly number[];
  readonly outBinding: number;
  readonly bindingCount: number;
  readonly strides?: ProgramStrides;
  /** With the 'thread4' strategy: how each input is read four elements at a time (absent: four scalar loads). */
  readonly vec4?: ProgramVec4;
}

/**
 * A reduction over an elementwise program's values, which are computed where the plain kernels
 * load their input (`val(e)`, or `val4(e)` for four elements) and never stored. `logsumexp` makes
 * two passes over the block, max then the sum of exp(v - max), re-evaluating the program in the
 * second (loads are cheaper than a scratch buffer's store and load on llvmpipe, and the reference
 * semantics follow: max_, exp_, log_ are the unfused kernels' functions). Results go to
 * o[ooff + j]. The same three strategies as `reduceKernel`.
 */
export function reduceProgramKernel(op: ProgramReduceOp, strategy: ReduceStrategy, workgroup: number, load: ReduceProgramLoad): KernelSource {
  const { program, inputBinding, outBinding, bindingCount, strides, vec4 } = load;
  const storage: Access[] = Array.from({ length: bindingCount }, (_, b) => (b === outBinding ? 'read_write' : 'read'));
  const mask = (flags: readonly boolean[]) => flags.map((f) => (f ? 's' : 'c')).join('');
  const layoutKey = strides ? `:r${strides.rank}:${mask(strides.inputs)}` : '';
  const vecKey = vec4 ? `:v4:${vec4.inputs.join('')}` : '';
  return {
    key: `reduceprog:${op}:${strategy}:${workgroup}:${program.key}:${inputBinding.join(',')}>${outBinding}${layoutKey}${vecKey}`,
    storage,
    code() {
      // 'thread4' without vec4 modes (a view that is not contiguous along its last axis) keeps the
      // strategy's order of four partial results, with four scalar loads.
      const vecLoads = strategy === 'thread4' && vec4 !== undefined;
      const type = vecLoads ? 'vec4<f32>' : 'f32';
      const decl = bindings(`n: u32, row: u32, r: u32, ooff: u32, s: array<vec4<f32>, 4>, l: array<vec4<i32>, ${REDUCE_PROGRAM_LAYOUT_WORDS / 4}>, zero: u32,`,
        storage.map((access, b) => ({ name: `b${b}`, access, type: b === outBinding ? 'f32' : type })));
      const used = [...new Set(program.steps.flatMap((s) => (s.op === 'input' ? [s.index] : [])))];
      const at: string[] = inputBinding.map(() => 'e');
      const index: string[] = [];
      if (strides) {
        const names: string[] = [];
        strides.inputs.forEach((f, q) => f && names.push((at[q] = `in${q}`)));
        index.push(...stridedIndex(strides.rank, names));
      }
      const out = program.outputs[0];
      let valFn: string;
      if (vecLoads) {
        const lanes = ['.x', '.y', '.z', '.w'];
        const loads = used.map((q) => (vec4!.inputs[q] === 'b'
          ? `  let x${q} = vec4<f32>(b${inputBinding[q]}[${at[q]} >> 2u][${at[q]} & 3u]);`
          : `  let x${q} = b${inputBinding[q]}[${at[q]} >> 2u];`));
        const body = lanes.flatMap((c, lane) => programSteps(program, (j) => `v${j}_${lane}`, (q) => `x${q}${c}`));
        valFn = `fn val4(e: u32) -> vec4<f32> {
${index.join('\n')}
${loads.join('\n')}
${body.join('\n')}
  return vec4<f32>(${lanes.map((_, lane) => `v${out}_${lane}`).join(', ')});
}`;
      } else {
        const loads = used.map((q) => `  let x${q} = b${inputBinding[q]}[${at[q]}];`);
        valFn = `fn val(e: u32) -> f32 {
${index.join('\n')}
${loads.join('\n')}
${programSteps(program, (j) => `v${j}`, (q) => `x${q}`).join('\n')}
  return v${out};
}${strategy === 'thread4' ? '\nfn val4(e: u32) -> vec4<f32> { return vec4<f32>(val(e), val(e + 1u), val(e + 2u), val(e + 3u)); }' : ''}`;
      }
      const o = `b${outBinding}`;
      return reduceShader(op, strategy, workgroup, `${decl}\n${valFn}`, {
        load: (e) => `val(${e})`,
        load4: (i) => `val4((${i}) * 4u)`,
        store: (v) => `${o}[p.ooff + j] = ${v};`,
      });
    },
  };
}
