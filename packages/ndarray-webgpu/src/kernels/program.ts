import type { ElementwiseProgram, OperandLayout, ProgramLayouts } from '@needle/ndarray';
import { bindings, f32Bits, PARAM_WORDS, type Access, type KernelSource } from './kernel';
import { binaryExpr, PRELUDE, unaryExpr } from './wgsl';

/** Word of the uniform block where scalar 0 starts (after n, row, a zero and the mirror shifts). */
export const PROGRAM_SCALAR_WORD = 4;

/**
 * Word holding the texel row widths' log2 of a program's texture mirrors (see programKernel's
 * `mirrored`), 8 bits each: mirror j in bits 8j..8j+7.
 */
export const PROGRAM_MIRROR_SHIFT_WORD = 3;

/** Most inputs of one program read through texture mirrors (4 storage textures: the least a device offering them allows). */
export const MAX_PROGRAM_MIRRORS = 4;

/**
 * Word where the layout words start (after the 16 scalars): the iteration shape (rank words), then
 * for each strided operand in order (inputs, then outputs) its offset and rank strides. Layouts are
 * data, not shader text, so one pipeline serves every layout of a rank.
 */
export const PROGRAM_LAYOUT_WORD = 20;

/** Most layout words the uniform block holds (rank 8 with all 8 operands strided needs 80). */
const LAYOUT_WORDS = PARAM_WORDS - PROGRAM_LAYOUT_WORD;

/** Which operands are strided and the rank of their iteration shape (part of the kernel's key). */
export interface ProgramStrides {
  readonly rank: number;
  readonly inputs: readonly boolean[];
  readonly outputs: readonly boolean[];
}

/** The strided operands of `layouts`, or undefined when all are compact. */
export function programStrides(layouts: ProgramLayouts | undefined, inputs: number, outputs: number): ProgramStrides | undefined {
  if (!layouts) return undefined;
  const ins = Array.from({ length: inputs }, (_, k) => layouts.inputs[k] !== undefined);
  const outs = Array.from({ length: outputs }, (_, k) => layouts.outputs[k] !== undefined);
  if (!ins.some(Boolean) && !outs.some(Boolean)) return undefined;
  return { rank: layouts.shape.length, inputs: ins, outputs: outs };
}

/**
 * How each operand of a 4-elements-per-invocation program kernel is read: 'c' compact (element i
 * at i), 'v' strided with last-axis stride 1 (four consecutive elements, one aligned vec4 load),
 * 'b' strided with last-axis stride 0 (one element broadcast to the four), 's' any other stride
 * (four scalar loads or stores, e.g. a transposed operand: the index arithmetic is still shared).
 */
export type Vec4Mode = 'c' | 'v' | 'b' | 's';

export interface ProgramVec4 {
  readonly inputs: readonly Vec4Mode[];
  readonly outputs: readonly Vec4Mode[];
}

/**
 * Whether a program call can run four elements per invocation, and how each operand is read. On
 * llvmpipe every storage load or store is a loop over the SIMD lanes, so one vec4 access instead of
 * four scalar ones is most of an elementwise kernel's cost (NOTES.md); an operand that cannot be
 * read as vec4 still shares the invocation's index arithmetic (integer division, scalarised on
 * llvmpipe). It applies when the four elements of an invocation share every index digit but the
 * last: the size (compact) or the last axis (strided) a multiple of 4 and, for the bindings typed
 * vec4, each strided operand's offset a multiple of 4 wherever its view is read as a vec4.
 */
export function programVec4(layouts: ProgramLayouts | undefined, strides: ProgramStrides | undefined, size: number, inputs: number, outputs: number): ProgramVec4 | undefined {
  if (size % 4 !== 0) return undefined;
  if (!strides || !layouts) return { inputs: Array<Vec4Mode>(inputs).fill('c'), outputs: Array<Vec4Mode>(outputs).fill('c') };
  const r = layouts.shape.length;
  if (layouts.shape[r - 1] % 4 !== 0) return undefined;
  const mode = (l: OperandLayout | undefined, output: boolean): Vec4Mode => {
    if (!l) return 'c';
    const last = l.strides[r - 1];
    if (last === 0 && !output) return 'b';
    if (last === 1 && l.offset % 4 === 0 && l.strides.every((st, d) => d === r - 1 || st % 4 === 0)) return 'v';
    return 's';
  };
  return {
    inputs: Array.from({ length: inputs }, (_, k) => mode(layouts.inputs[k], false)),
    outputs: Array.from({ length: outputs }, (_, k) => mode(layouts.outputs[k], true)),
  };
}

/** Write the layout words of `layouts` into a program's uniform block; throws when they do not fit. */
export function programLayoutParams(params: Uint32Array, layouts: ProgramLayouts): void {
  const w = new Int32Array(params.buffer, params.byteOffset + 4 * PROGRAM_LAYOUT_WORD, LAYOUT_WORDS);
  const r = layouts.shape.length;
  const strided = [...layouts.inputs, ...layouts.outputs].filter((l) => l !== undefined);
  if (r + strided.length * (r + 1) > LAYOUT_WORDS) throw new Error(`webgpu.elementwise: ${strided.length} strided operands of rank ${r} exceed the uniform block`);
  layouts.shape.forEach((d, i) => (w[i] = d));
  strided.forEach((l, k) => {
    const at = r + k * (r + 1);
    w[at] = l.offset;
    l.strides.forEach((st, i) => (w[at + 1 + i] = st));
  });
}

/**
 * WGSL `let` lines that compute every step of `program` at one element, the same expressions the
 * unfused kernels use: value j is named `name(j)`, input q is the WGSL value `input(q)`, scalars
 * come from `p.s` and consts from their bits xor `p.zero` (so the uniform block of every kernel that
 * embeds a program has those two fields).
 */
export function programSteps(program: ElementwiseProgram, name: (j: number) => string, input: (q: number) => string): string[] {
  return program.steps.map((s, j) => {
    switch (s.op) {
      case 'input': return `  let ${name(j)} = ${input(s.index)};`;
      case 'scalar': return `  let ${name(j)} = p.s[${s.index >> 2}].${'xyzw'[s.index & 3]};`;
      // Bits xor a uniform zero: exact (NaN/Inf/-0 included) and opaque to the compiler, which
      // would otherwise fold x * 0 to 0 under WGSL's finite-math license, unlike the unfused
      // kernels, whose operands are runtime values.
      case 'const': return `  let ${name(j)} = bitcast<f32>(${f32Bits(s.value)}u ^ p.zero);`;
      case 'binary': return `  let ${name(j)} = ${binaryExpr(s.fn, name(s.a), name(s.b))};`;
      case 'unary': return `  let ${name(j)} = ${unaryExpr(s.fn).replace(/\bx\b/g, name(s.a))};`;
      case 'where': return `  let ${name(j)} = select(${name(s.b)}, ${name(s.a)}, ${name(s.cond)} != 0.0 || isnan_(${name(s.cond)}));`;
      default: return s satisfies never;
    }
  });
}

/**
 * The multi-index digits of element `e` over a strided call's iteration shape (its words at the
 * start of `p.l`), then `u32` element indices named by `names` for the strided operands in order.
 */
export function stridedIndex(rank: number, names: readonly string[], e = 'e'): string[] {
  const word = (w: number) => `p.l[${w >> 2}][${w & 3}]`;
  const lines = [`  var rem = i32(${e});`];
  for (let d = rank - 1; d > 0; d--) lines.push(`  let d${d} = rem % ${word(d)};`, `  rem = rem / ${word(d)};`);
  lines.push('  let d0 = rem;');
  names.forEach((name, k) => {
    const base = rank + k * (rank + 1);
    const terms = Array.from({ length: rank }, (_, d) => `d${d} * ${word(base + 1 + d)}`);
    lines.push(`  let ${name} = u32(${word(base)} + ${terms.join(' + ')});`);
  });
  return lines;
}

/** Element `i` of a vec4-typed binding, as a scalar. */
function scalarAt(binding: string, i: string): string {
  return `${binding}[(${i}) >> 2u][(${i}) & 3u]`;
}

/** The element `j` steps along the last axis from element index `at` (`stride` a WGSL i32). */
function lastStep(at: string, stride: string, j: number): string {
  return j === 0 ? at : `u32(i32(${at}) + ${j} * ${stride})`;
}

/** The uniform word (WGSL text) of a strided operand's last-axis stride (layout words as programLayoutParams writes them). */
function strideWord(strides: ProgramStrides, output: boolean, index: number): string {
  const r = strides.rank;
  const flags = [...strides.inputs, ...strides.outputs];
  const position = flags.slice(0, (output ? strides.inputs.length : 0) + index).filter(Boolean).length;
  const w = r + position * (r + 1) + r;
  return `p.l[${w >> 2}][${w & 3}]`;
}

/**
 * One WGSL kernel per elementwise program and binding layout: an invocation per element (or per
 * four elements with `vec4`) evaluates every step in registers with the same expressions the
 * unfused kernels use (wgsl.ts), reading all of its elements before it writes any output, so an
 * output bound to an input's buffer is an in-place update. `inputBinding[k]`/`outputBinding[k]`
 * name the storage binding (0-based) of each operand; a binding that some output writes is
 * read_write. Scalars travel in the uniform block. With `vec4` the steps run once per component
 * (llvmpipe's SIMD is across invocations, so scalar arithmetic costs the same; the loads are what a
 * vec4 saves), and `p.n` counts groups of four.
 *
 * `mirrored[q]` >= 0 (vec4 kernels, compact inputs only): input q is read from texture mirror
 * number `mirrored[q]` (a read-only rgba32float storage texture bound after the `bindingCount`
 * buffers, holding the buffer's floats in order as mirrorShape lays them out) instead of from a
 * buffer; its `inputBinding` entry is then unused. On llvmpipe such a fetch is a gather (~9 ns per
 * 8 lanes) where a storage-buffer vec4 load is a loop over the lanes (~25 ns): NOTES.md, session 7.
 * The values read are the same floats, so the results are the buffer kernel's bit for bit.
 */
export function programKernel(program: ElementwiseProgram, inputBinding: readonly number[], outputBinding: readonly number[], bindingCount: number, workgroup: number, strides?: ProgramStrides, vec4?: ProgramVec4, mirrored?: readonly number[]): KernelSource {
  const mirrors = mirrored ? Math.max(-1, ...mirrored) + 1 : 0;
  const storage: Access[] = [
    ...Array.from({ length: bindingCount }, (_, b): Access => (outputBinding.includes(b) ? 'read_write' : 'read')),
    ...Array.from({ length: mirrors }, (): Access => 'storage-texture'),
  ];
  const mirrorOf = (q: number) => (mirrored && vec4 && vec4.inputs[q] === 'c' ? mirrored[q] : -1);
  const mask = (flags: readonly boolean[]) => flags.map((f) => (f ? 's' : 'c')).join('');
  const layoutKey = strides ? `:r${strides.rank}:${mask(strides.inputs)}>${mask(strides.outputs)}` : '';
  const vecKey = vec4 ? `:v4:${vec4.inputs.join('')}>${vec4.outputs.join('')}` : '';
  const mirrorKey = mirrors > 0 ? `:t${inputBinding.map((_, q) => mirrorOf(q)).join(',')}` : '';
  const key = `prog:${program.key}:${inputBinding.join(',')}>${outputBinding.join(',')}:${workgroup}${layoutKey}${vecKey}${mirrorKey}`;
  return {
    key,
    storage,
    code() {
      const decl = bindings('n: u32, row: u32, zero: u32, tsh: u32, s: array<vec4<f32>, 4>, l: array<vec4<i32>, ' + LAYOUT_WORDS / 4 + '>,', storage.map((access, b) => ({ name: b < bindingCount ? `b${b}` : `t${b - bindingCount}`, access, type: vec4 ? 'vec4<f32>' : 'f32' })));
      // Texel i of mirror j (mirrorShape's layout; its row width's log2 in the uniform block).
      const mirrorFns = Array.from({ length: mirrors }, (_, j) => `fn mt${j}(i: u32) -> vec4<f32> {
  let sh = (p.tsh >> ${8 * j}u) & 255u;
  return textureLoad(t${j}, vec2<u32>(i & ((1u << sh) - 1u), i >> sh));
}`);
      // Element index of operand positions: strided operands get the multi-index digits of the
      // (first) element once, then one dot product each.
      const index: string[] = [];
      const inAt: string[] = inputBinding.map(() => 'e');
      const outAt: string[] = outputBinding.map(() => 'e');
      if (strides) {
        const names: string[] = [];
        strides.inputs.forEach((f, q) => f && names.push((inAt[q] = `in${q}`)));
        strides.outputs.forEach((f, q) => f && names.push((outAt[q] = `out${q}`)));
        index.push(...stridedIndex(strides.rank, names));
      }
      const lanes = vec4 ? ['.x', '.y', '.z', '.w'] : [''];
      const used = new Set(program.steps.flatMap((s) => (s.op === 'input' ? [s.index] : [])));
      // Every input is read once, before any output is written.
      const loads = [...used].map((q) => {
        const b = `b${inputBinding[q]}`;
        if (mirrorOf(q) >= 0) return `  let x${q} = mt${mirrorOf(q)}(i);`;
        if (!vec4) return `  let x${q} = ${b}[${inAt[q]}];`;
        const mode = vec4.inputs[q];
        if (mode === 'b') return `  let x${q} = vec4<f32>(${scalarAt(b, inAt[q])});`;
        if (mode === 's') return `  let x${q} = vec4<f32>(${[0, 1, 2, 3].map((j) => scalarAt(b, lastStep(inAt[q], strideWord(strides!, false, q), j))).join(', ')});`;
        return `  let x${q} = ${b}[${inAt[q]} >> 2u];`;
      });
      const body = lanes.flatMap((c, lane) => programSteps(program, (j) => `v${j}_${lane}`, (q) => `x${q}${c}`));
      const stores = program.outputs.flatMap((id, k) => {
        const b = `b${outputBinding[k]}`;
        if (!vec4) return [`  ${b}[${outAt[k]}] = v${id}_0;`];
        if (vec4.outputs[k] === 's') return [0, 1, 2, 3].map((j) => `  ${scalarAt(b, lastStep(outAt[k], strideWord(strides!, true, k), j))} = v${id}_${j};`);
        return [`  ${b}[${outAt[k]} >> 2u] = vec4<f32>(${lanes.map((_, lane) => `v${id}_${lane}`).join(', ')});`];
      });
      return `${PRELUDE}
${decl}
${mirrorFns.join('\n')}
@compute @workgroup_size(${workgroup})
fn main(@builtin(global_invocation_id) g: vec3<u32>) {
  let i = g.x + g.y * p.row;
  if (i >= p.n) { return; }
  let e = ${vec4 ? 'i * 4u' : 'i'};
${index.join('\n')}
${loads.join('\n')}
${body.join('\n')}
${stores.join('\n')}
}
`;
    },
  };
}
