import type { ReduceOp } from '@needle/ndarray';
import { bindings, type KernelSource } from './kernel';
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
      const { init, combine } = opCode(op);
      const arg = isArg(op);
      const decl = bindings('n: u32, row: u32, r: u32,', [
        { name: 'a', access: 'read', type: strategy === 'thread4' ? 'vec4<f32>' : 'f32' },
        { name: 'o', access: 'read_write', type: 'f32' },
      ]);
      const step = (v: string, i: string) => (arg
        ? `if (better(acc, idx, ${v}, ${i})) { acc = ${v}; idx = ${i}; }`
        : `acc = comb(acc, ${v});`);
      const result = arg ? 'f32(idx)' : 'acc';
      const vars = `var acc: f32 = ${init};${arg ? '\n  var idx: u32 = 0xffffffffu;' : ''}`;
      if (strategy === 'thread4') {
        if (arg) throw new Error(`reduce: no vec4 strategy for ${op}`);
        const c = ['x', 'y', 'z', 'w'];
        return `${PRELUDE}
${decl}
${combine}
@compute @workgroup_size(${workgroup})
fn main(@builtin(global_invocation_id) g: vec3<u32>) {
  let j = g.x + g.y * p.row;
  if (j >= p.n) { return; }
  let r4 = p.r >> 2u;
  let base = j * r4;
  var acc = vec4<f32>(${init});
  for (var t = 0u; t < r4; t++) {
    let v = a[base + t];
    acc = vec4<f32>(${c.map((x) => `comb(acc.${x}, v.${x})`).join(', ')});
  }
  o[j] = comb(comb(acc.x, acc.y), comb(acc.z, acc.w));
}
`;
      }
      if (strategy === 'thread') {
        return `${PRELUDE}
${decl}
${combine}
@compute @workgroup_size(${workgroup})
fn main(@builtin(global_invocation_id) g: vec3<u32>) {
  let j = g.x + g.y * p.row;
  if (j >= p.n) { return; }
  let base = j * p.r;
  ${vars}
  for (var t = 0u; t < p.r; t++) {
    let v = a[base + t];
    ${step('v', 't')}
  }
  o[j] = ${result};
}
`;
      }
      const tree: string[] = [];
      for (let s = workgroup >> 1; s > 0; s >>= 1) {
        tree.push(`  if (l < ${s}u) {
    ${arg
      ? `if (better(sv[l], si[l], sv[l + ${s}u], si[l + ${s}u])) { sv[l] = sv[l + ${s}u]; si[l] = si[l + ${s}u]; }`
      : `sv[l] = comb(sv[l], sv[l + ${s}u]);`}
  }
  workgroupBarrier();`);
      }
      return `${PRELUDE}
${decl}
${combine}
var<workgroup> sv: array<f32, ${workgroup}>;
${arg ? `var<workgroup> si: array<u32, ${workgroup}>;` : ''}
@compute @workgroup_size(${workgroup})
fn main(@builtin(workgroup_id) w: vec3<u32>, @builtin(local_invocation_index) l: u32) {
  let j = w.x + w.y * p.row;
  if (j >= p.n) { return; }
  let base = j * p.r;
  ${vars}
  for (var t = l; t < p.r; t += ${workgroup}u) {
    let v = a[base + t];
    ${step('v', 't')}
  }
  sv[l] = acc;
  ${arg ? 'si[l] = idx;' : ''}
  workgroupBarrier();
${tree.join('\n')}
  if (l == 0u) { o[j] = ${arg ? 'f32(si[0])' : 'sv[0]'}; }
}
`;
    },
  };
}
