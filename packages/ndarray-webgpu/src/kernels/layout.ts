import type { StridedLayout } from '@needle/ndarray';
import { bindings, f32Bits, PARAM_WORDS, type KernelSource } from './kernel';

/** Most axes a strided kernel handles after coalescing (two vec4 rows of the uniform block). */
export const MAX_DIMS = 8;

export type StridedMode = 'compact' | 'setitem' | 'fillView';

/**
 * Drop unit axes and merge neighbours that are contiguous with each other, so most views reach the
 * kernel with one or two axes (fewer divisions per element, and a plain copy is recognisable).
 */
export function coalesce(layout: StridedLayout): { shape: number[]; strides: number[]; offset: number } {
  const shape: number[] = [];
  const strides: number[] = [];
  layout.shape.forEach((d, i) => {
    if (d === 1) return;
    const s = layout.strides[i];
    const last = shape.length - 1;
    if (last >= 0 && strides[last] === s * d) {
      shape[last] *= d;
      strides[last] = s;
    } else {
      shape.push(d);
      strides.push(s);
    }
  });
  if (shape.length === 0) return { shape: [1], strides: [1], offset: layout.offset };
  return { shape, strides, offset: layout.offset };
}

/**
 * compact: out[i] = a[view(i)]; setitem: out[view(i)] = a[i]; fillView: out[view(i)] = s.
 * Specialised by the number of axes so the index arithmetic is unrolled.
 */
export function stridedKernel(mode: StridedMode, ndim: number, workgroup: number): KernelSource {
  const storage = mode === 'fillView' ? (['read_write'] as const) : (['read', 'read_write'] as const);
  return {
    key: `strided:${mode}:${ndim}:${workgroup}`,
    storage,
    code() {
      const decl = bindings('shape: array<vec4<u32>, 2>, strides: array<vec4<i32>, 2>, n: u32, row: u32, offset: i32, s: f32,',
        mode === 'fillView'
          ? [{ name: 'o', access: 'read_write', type: 'f32' }]
          : [{ name: 'a', access: 'read', type: 'f32' }, { name: 'o', access: 'read_write', type: 'f32' }]);
      const steps: string[] = [];
      for (let d = ndim - 1; d >= 0; d--) {
        const sh = `p.shape[${d >> 2}][${d & 3}]`;
        const st = `p.strides[${d >> 2}][${d & 3}]`;
        steps.push(d === 0
          ? `  j += i32(rem) * ${st};`
          : `  j += i32(rem % ${sh}) * ${st};\n  rem = rem / ${sh};`);
      }
      const body = mode === 'compact' ? 'o[i] = a[u32(j)];' : mode === 'setitem' ? 'o[u32(j)] = a[i];' : 'o[u32(j)] = p.s;';
      return `${decl}
@compute @workgroup_size(${workgroup})
fn main(@builtin(global_invocation_id) g: vec3<u32>) {
  let i = g.x + g.y * p.row;
  if (i >= p.n) { return; }
  var rem = i;
  var j: i32 = p.offset;
${steps.join('\n')}
  ${body}
}
`;
    },
  };
}

/** Uniform words for stridedKernel (row is filled in by the dispatcher). */
export function stridedParams(shape: number[], strides: number[], offset: number, n: number, s = 0): Uint32Array {
  const w = new Uint32Array(PARAM_WORDS);
  const i32 = new Int32Array(w.buffer);
  shape.forEach((d, i) => { w[i] = d; });
  strides.forEach((d, i) => { i32[8 + i] = d; });
  w[16] = n;
  i32[18] = offset;
  w[19] = f32Bits(s);
  return w;
}

/** Word index of `row` in the strided parameter block. */
export const STRIDED_ROW_WORD = 17;

/**
 * compact of a 2-D transposed view: coalesced shape [R, C] with strides [1, sC], so the input is
 * contiguous along the output's rows. One invocation moves a 4x4 block: four vec4 loads down the
 * input's columns and four vec4 stores along the output's rows, against 16 scalar loads and
 * stores in stridedKernel (each load or store is a loop over the SIMD lanes on llvmpipe).
 * Needs R, C, sC and the offset to be multiples of 4 (see `transposeApplies`).
 */
export function transposeKernel(workgroup: number): KernelSource {
  return {
    key: `strided:transpose4:${workgroup}`,
    storage: ['read', 'read_write'],
    code() {
      const decl = bindings('r4: u32, c4: u32, sc4: u32, off4: u32, n: u32, row: u32,', [
        { name: 'a', access: 'read', type: 'vec4<f32>' },
        { name: 'o', access: 'read_write', type: 'vec4<f32>' },
      ]);
      const K = [0, 1, 2, 3];
      const comp = ['x', 'y', 'z', 'w'];
      return `${decl}
@compute @workgroup_size(${workgroup})
fn main(@builtin(global_invocation_id) g: vec3<u32>) {
  let t = g.x + g.y * p.row;
  if (t >= p.n) { return; }
  let rb = t % p.r4;
  let cb = t / p.r4;
${K.map((j) => `  let v${j} = a[p.off4 + (cb * 4u + ${j}u) * p.sc4 + rb];`).join('\n')}
${K.map((i) => `  o[(rb * 4u + ${i}u) * p.c4 + cb] = vec4<f32>(${K.map((j) => `v${j}.${comp[i]}`).join(', ')});`).join('\n')}
}
`;
    },
  };
}

/** Whether a coalesced compact can use transposeKernel. */
export function transposeApplies(c: { shape: number[]; strides: number[]; offset: number }): boolean {
  if (c.shape.length !== 2 || c.strides[0] !== 1) return false;
  const [r, cols] = c.shape;
  const sc = c.strides[1];
  return r % 4 === 0 && cols % 4 === 0 && sc > 0 && sc % 4 === 0 && c.offset % 4 === 0;
}

/** Uniform words for transposeKernel (row, word 5, is filled in by the dispatcher). */
export function transposeParams(c: { shape: number[]; strides: number[]; offset: number }): Uint32Array {
  const w = new Uint32Array(PARAM_WORDS);
  w[0] = c.shape[0] / 4;
  w[1] = c.shape[1] / 4;
  w[2] = c.strides[1] / 4;
  w[3] = c.offset / 4;
  w[4] = (c.shape[0] / 4) * (c.shape[1] / 4);
  return w;
}

/**
 * compact of a 2-D view whose rows are contiguous (strides [s0, 1]; s0 = 0 is a broadcast row, as
 * the frontend makes for a bias): vec4 loads and stores, a quarter of stridedKernel's load and store
 * instructions. Needs C, s0 and the offset to be multiples of 4 (see `rowsApplies`).
 */
export function rowsKernel(workgroup: number): KernelSource {
  return {
    key: `strided:rows4:${workgroup}`,
    storage: ['read', 'read_write'],
    code() {
      const decl = bindings('c4: u32, s04: u32, off4: u32, n: u32, row: u32,', [
        { name: 'a', access: 'read', type: 'vec4<f32>' },
        { name: 'o', access: 'read_write', type: 'vec4<f32>' },
      ]);
      return `${decl}
@compute @workgroup_size(${workgroup})
fn main(@builtin(global_invocation_id) g: vec3<u32>) {
  let t = g.x + g.y * p.row;
  if (t >= p.n) { return; }
  o[t] = a[p.off4 + (t / p.c4) * p.s04 + t % p.c4];
}
`;
    },
  };
}

/** Whether a coalesced compact can use rowsKernel. */
export function rowsApplies(c: { shape: number[]; strides: number[]; offset: number }): boolean {
  if (c.shape.length !== 2 || c.strides[1] !== 1) return false;
  return c.shape[1] % 4 === 0 && c.strides[0] >= 0 && c.strides[0] % 4 === 0 && c.offset % 4 === 0;
}

/** Uniform words for rowsKernel (row, word 4, is filled in by the dispatcher). */
export function rowsParams(c: { shape: number[]; strides: number[]; offset: number }): Uint32Array {
  const w = new Uint32Array(PARAM_WORDS);
  w[0] = c.shape[1] / 4;
  w[1] = c.strides[0] / 4;
  w[2] = c.offset / 4;
  w[3] = (c.shape[0] * c.shape[1]) / 4;
  return w;
}
