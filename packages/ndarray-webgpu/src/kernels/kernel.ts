/**
 * How a kernel binds one resource: a storage buffer read or written, or a texture mirror of a
 * buffer read with textureLoad (see TEXEL_ROW).
 */
export type Access = 'read' | 'read_write' | 'texture';

/**
 * vec4 texels per row of a texture mirror: a buffer's floats copied in order into an rgba32float
 * texture 64 texels wide (1024 bytes a row, the multiple of 256 a buffer-to-texture copy needs),
 * so flat vec4 index i is texel (i & 63, i >> 6).
 */
export const TEXEL_ROW = 64;

/**
 * A compute program: WGSL text plus its binding signature. Binding 0 is always the uniform
 * parameter block (bound with a dynamic offset); storage buffers follow at bindings 1..n in the
 * order of `storage`. `key` identifies the WGSL text, so equal keys share one compiled pipeline.
 */
export interface KernelSource {
  readonly key: string;
  readonly storage: readonly Access[];
  /** Built only on a pipeline-cache miss. */
  code(): string;
}

/**
 * Size of the uniform parameter block every kernel gets, in 32-bit words: 512 bytes, what an
 * elementwise program's scalars and strided layouts (rank 8, 8 operands) need.
 */
export const PARAM_WORDS = 128;

/** The uniform and storage declarations shared by every kernel (a texture's `type` is ignored). */
export function bindings(params: string, storage: readonly { name: string; access: Access; type: string }[]): string {
  const lines = [`struct Params { ${params} }`, '@group(0) @binding(0) var<uniform> p: Params;'];
  storage.forEach((s, i) => {
    if (s.access === 'texture') lines.push(`@group(0) @binding(${i + 1}) var ${s.name}: texture_2d<f32>;`);
    else lines.push(`@group(0) @binding(${i + 1}) var<storage, ${s.access}> ${s.name}: array<${s.type}>;`);
  });
  return lines.join('\n');
}

/** Float bits for the uniform block (a scalar travels as data, never as shader text). */
const f32Scratch = new Float32Array(1);
const u32Scratch = new Uint32Array(f32Scratch.buffer);
export function f32Bits(x: number): number {
  f32Scratch[0] = x;
  return u32Scratch[0];
}

/**
 * A dispatch grid covering `groups` workgroups: x up to the per-dimension limit, the rest in y.
 * Kernels recover the flat workgroup index as `wid.x + wid.y * gridX`.
 */
export function grid2d(groups: number, maxPerDim: number): [number, number] {
  if (groups <= maxPerDim) return [Math.max(1, groups), 1];
  const y = Math.ceil(groups / maxPerDim);
  if (y > maxPerDim) throw new Error(`webgpu: ${groups} workgroups exceed the device's grid (${maxPerDim}^2)`);
  return [Math.ceil(groups / y), y];
}
