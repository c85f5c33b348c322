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
