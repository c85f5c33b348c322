import { bindings, type Access, type KernelSource } from './kernel';
import { PRELUDE } from './wgsl';

/** One input of an elementwise kernel: its name in the expression, and whether it is `out` itself. */
export interface ElementwiseInput {
  readonly name: string;
  readonly aliasOut: boolean;
}

/**
 * `out[i] = expr(inputs[i], s)` for i < n. The scalar `s` comes from the uniform block, so one
 * program serves every scalar value. With `vec4`, each invocation handles four elements (n counts
 * vec4s); inputs that alias `out` read from the output binding, because WebGPU forbids binding one
 * buffer both writable and readable in a dispatch.
 */
export function elementwiseKernel(
  name: string,
  expr: string,
  inputs: readonly ElementwiseInput[],
  vec4: boolean,
  workgroup: number,
): KernelSource {
  const aliasSig = inputs.map((x) => (x.aliasOut ? 'o' : 'b')).join('');
  const key = `ew:${name}:${aliasSig}:${vec4 ? 4 : 1}:${workgroup}`;
  const own = inputs.filter((x) => !x.aliasOut);
  const storage: Access[] = [...own.map((): Access => 'read'), 'read_write'];
  return {
    key,
    storage,
    code() {
      const type = vec4 ? 'vec4<f32>' : 'f32';
      const decl = bindings('n: u32, row: u32, s: f32,', [
        ...own.map((x) => ({ name: `in_${x.name}`, access: 'read' as const, type })),
        { name: 'o', access: 'read_write', type },
      ]);
      const params = [...inputs.map((x) => `${x.name}: f32`), 's: f32'].join(', ');
      const loads = inputs.map((x) => `  let ${x.name}v = ${x.aliasOut ? 'o' : `in_${x.name}`}[i];`).join('\n');
      const call = (c: string) => `f(${[...inputs.map((x) => `${x.name}v${c}`), 'p.s'].join(', ')})`;
      const store = vec4 ? `vec4<f32>(${['.x', '.y', '.z', '.w'].map(call).join(', ')})` : call('');
      return `${PRELUDE}
${decl}
fn f(${params}) -> f32 { return ${expr}; }
@compute @workgroup_size(${workgroup})
fn main(@builtin(global_invocation_id) g: vec3<u32>) {
  let i = g.x + g.y * p.row;
  if (i >= p.n) { return; }
${loads}
  o[i] = ${store};
}
`;
    },
  };
}
