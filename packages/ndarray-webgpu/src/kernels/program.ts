import type { ElementwiseProgram, ProgramLayouts } from '@needle/ndarray';
import { bindings, f32Bits, PARAM_WORDS, type Access, type KernelSource } from './kernel';
import { binaryExpr, PRELUDE, unaryExpr } from './wgsl';

/** Word of the uniform block where scalar 0 starts (after n, row, a zero and a word of padding). */
export const PROGRAM_SCALAR_WORD = 4;

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
 * One WGSL kernel per elementwise program and binding layout: an invocation per element evaluates
 * every step in registers with the same expressions the unfused kernels use (wgsl.ts), reading all
 * of element i before it writes any output, so an output bound to an input's buffer is an in-place
 * update. `inputBinding[k]`/`outputBinding[k]` name the storage binding (0-based) of each operand;
 * a binding that some output writes is read_write. Scalars travel in the uniform block.
 */
export function programKernel(program: ElementwiseProgram, inputBinding: readonly number[], outputBinding: readonly number[], bindingCount: number, workgroup: number, strides?: ProgramStrides): KernelSource {
  const storage: Access[] = Array.from({ length: bindingCount }, (_, b) => (outputBinding.includes(b) ? 'read_write' : 'read'));
  const mask = (flags: readonly boolean[]) => flags.map((f) => (f ? 's' : 'c')).join('');
  const layoutKey = strides ? `:r${strides.rank}:${mask(strides.inputs)}>${mask(strides.outputs)}` : '';
  const key = `prog:${program.key}:${inputBinding.join(',')}>${outputBinding.join(',')}:${workgroup}${layoutKey}`;
  return {
    key,
    storage,
    code() {
      const decl = bindings('n: u32, row: u32, zero: u32, pad: u32, s: array<vec4<f32>, 4>, l: array<vec4<i32>, ' + LAYOUT_WORDS / 4 + '>,', storage.map((access, b) => ({ name: `b${b}`, access, type: 'f32' })));
      const v = (j: number) => `v${j}`;
      // Strided operands: the multi-index digits of element i once, then one dot product each.
      const index: string[] = [];
      const inAt: string[] = inputBinding.map(() => 'i');
      const outAt: string[] = outputBinding.map(() => 'i');
      if (strides) {
        const r = strides.rank;
        const word = (w: number) => `p.l[${w >> 2}][${w & 3}]`;
        index.push('  var rem = i32(i);');
        for (let d = r - 1; d > 0; d--) index.push(`  let d${d} = rem % ${word(d)};`, `  rem = rem / ${word(d)};`);
        index.push('  let d0 = rem;');
        let k = 0;
        const at = (name: string): string => {
          const base = r + k++ * (r + 1);
          const terms = Array.from({ length: r }, (_, d) => `d${d} * ${word(base + 1 + d)}`);
          index.push(`  let ${name} = u32(${word(base)} + ${terms.join(' + ')});`);
          return name;
        };
        strides.inputs.forEach((f, q) => f && (inAt[q] = at(`in${q}`)));
        strides.outputs.forEach((f, q) => f && (outAt[q] = at(`out${q}`)));
      }
      const body = program.steps.map((s, j) => {
        switch (s.op) {
          case 'input': return `  let v${j} = b${inputBinding[s.index]}[${inAt[s.index]}];`;
          case 'scalar': return `  let v${j} = p.s[${s.index >> 2}].${'xyzw'[s.index & 3]};`;
          // Bits xor a uniform zero: exact (NaN/Inf/-0 included) and opaque to the compiler, which
          // would otherwise fold x * 0 to 0 under WGSL's finite-math license, unlike the unfused
          // kernels, whose operands are runtime values.
          case 'const': return `  let v${j} = bitcast<f32>(${f32Bits(s.value)}u ^ p.zero);`;
          case 'binary': return `  let v${j} = ${binaryExpr(s.fn, v(s.a), v(s.b))};`;
          case 'unary': return `  let v${j} = ${unaryExpr(s.fn).replace(/\bx\b/g, v(s.a))};`;
          case 'where': return `  let v${j} = select(${v(s.b)}, ${v(s.a)}, ${v(s.cond)} != 0.0 || isnan_(${v(s.cond)}));`;
          default: return s satisfies never;
        }
      });
      const stores = program.outputs.map((id, k) => `  b${outputBinding[k]}[${outAt[k]}] = v${id};`);
      return `${PRELUDE}
${decl}
@compute @workgroup_size(${workgroup})
fn main(@builtin(global_invocation_id) g: vec3<u32>) {
  let i = g.x + g.y * p.row;
  if (i >= p.n) { return; }
${index.join('\n')}
${body.join('\n')}
${stores.join('\n')}
}
`;
    },
  };
}
