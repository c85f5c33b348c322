import type { ElementwiseProgram } from '@needle/ndarray';
import { bindings, f32Bits, type Access, type KernelSource } from './kernel';
import { binaryExpr, PRELUDE, unaryExpr } from './wgsl';

/** Word of the uniform block where scalar 0 starts (after n, row, a zero and a word of padding). */
export const PROGRAM_SCALAR_WORD = 4;

/**
 * One WGSL kernel per elementwise program and binding layout: an invocation per element evaluates
 * every step in registers with the same expressions the unfused kernels use (wgsl.ts), reading all
 * of element i before it writes any output, so an output bound to an input's buffer is an in-place
 * update. `inputBinding[k]`/`outputBinding[k]` name the storage binding (0-based) of each operand;
 * a binding that some output writes is read_write. Scalars travel in the uniform block.
 */
export function programKernel(program: ElementwiseProgram, inputBinding: readonly number[], outputBinding: readonly number[], bindingCount: number, workgroup: number): KernelSource {
  const storage: Access[] = Array.from({ length: bindingCount }, (_, b) => (outputBinding.includes(b) ? 'read_write' : 'read'));
  const key = `prog:${program.key}:${inputBinding.join(',')}>${outputBinding.join(',')}:${workgroup}`;
  return {
    key,
    storage,
    code() {
      const decl = bindings('n: u32, row: u32, zero: u32, pad: u32, s: array<vec4<f32>, 4>,', storage.map((access, b) => ({ name: `b${b}`, access, type: 'f32' })));
      const v = (j: number) => `v${j}`;
      const body = program.steps.map((s, j) => {
        switch (s.op) {
          case 'input': return `  let v${j} = b${inputBinding[s.index]}[i];`;
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
      const stores = program.outputs.map((id, k) => `  b${outputBinding[k]}[i] = v${id};`);
      return `${PRELUDE}
${decl}
@compute @workgroup_size(${workgroup})
fn main(@builtin(global_invocation_id) g: vec3<u32>) {
  let i = g.x + g.y * p.row;
  if (i >= p.n) { return; }
${body.join('\n')}
${stores.join('\n')}
}
`;
    },
  };
}
