/**
 * The row lookups of the contract: gatherRows (one invocation per output element) and its adjoint
 * scatterAddRows (one invocation per column, walking the indices in order, so each output element
 * gets its additions in ascending index order with no atomics, the same bits as CPU and WASM).
 * Uniform words: n (invocations), row (the 2-D grid's row width), then LOOKUP_WORDS.
 */
import { bindings, type KernelSource } from './kernel';
import { PRELUDE } from './wgsl';

export const LOOKUP_WORDS = { rows: 2, rowSize: 3, count: 4, missing: 5 } as const;

const PARAMS = 'n: u32, row: u32, rows: u32, rowSize: u32, count: u32, missing: f32,';
/** An index selects a row when it is an integer in [0, rows); NaN is tested by its bits (see PRELUDE). */
const VALID = 'fn valid_row(r: f32) -> bool { return !isnan_(r) && r >= 0.0 && r < f32(p.rows) && r == floor(r); }';

/** The shared frame: bindings (a, idx read; o read_write), valid_row, and `body` run per invocation index `i`. */
function lookupKernel(name: string, workgroup: number, body: string): KernelSource {
  return {
    key: `${name}:${workgroup}`,
    storage: ['read', 'read', 'read_write'],
    code: () => `${PRELUDE}
${bindings(PARAMS, [{ name: 'a', access: 'read', type: 'f32' }, { name: 'idx', access: 'read', type: 'f32' }, { name: 'o', access: 'read_write', type: 'f32' }])}
${VALID}
@compute @workgroup_size(${workgroup})
fn main(@builtin(global_invocation_id) g: vec3<u32>) {
  let i = g.x + g.y * p.row;
  if (i >= p.n) { return; }
${body}
}
`,
  };
}

/** One invocation per output element i: row k = i / rowSize of out is row idx[k] of a. */
export function gatherRowsKernel(workgroup: number): KernelSource {
  return lookupKernel('gatherRows', workgroup, `  let k = i / p.rowSize;
  let r = idx[k];
  if (valid_row(r)) {
    o[i] = a[u32(r) * p.rowSize + (i - k * p.rowSize)];
  } else {
    o[i] = p.missing;
  }`);
}

/** One invocation per column i, walking the indices in order. */
export function scatterAddRowsKernel(workgroup: number): KernelSource {
  return lookupKernel('scatterAddRows', workgroup, `  for (var k = 0u; k < p.count; k++) {
    let r = idx[k];
    if (valid_row(r)) {
      let d = u32(r) * p.rowSize + i;
      o[d] = o[d] + a[k * p.rowSize + i];
    }
  }`);
}
