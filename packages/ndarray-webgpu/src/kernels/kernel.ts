/**
 * How a kernel binds one resource: a storage buffer read or written, or a texture mirror of a
 * buffer read with textureLoad (see mirrorShape), as a sampled texture ('texture') or a read-only
 * rgba32float storage texture ('storage-texture').
 */
export type Access = 'read' | 'read_write' | 'texture' | 'storage-texture';

/** Fewest vec4 texels per row of a texture mirror (1024 bytes: a buffer-to-texture copy needs a multiple of 256). */
export const MIN_TEXEL_ROW = 64;

/**
 * The texture holding a buffer's first `elements` floats in order, as rgba32float texels: `width`
 * (a power of two, 2^shift, at least MIN_TEXEL_ROW) texels a row and `rows` rows, so flat vec4
 * index i is texel (i & (width - 1), i >> shift). The width doubles until the rows fit
 * `maxRows` (the device's 2-D texture limit); null when even a row of `maxRows` texels is too short.
 */
export interface MirrorShape {
  readonly width: number;
  readonly shift: number;
  readonly rows: number;
}

export function mirrorShape(elements: number, maxRows: number): MirrorShape | null {
  const texels = Math.max(1, Math.ceil(elements / 4));
  let width = MIN_TEXEL_ROW;
  while (Math.ceil(texels / width) > maxRows && width < maxRows) width *= 2;
  const rows = Math.ceil(texels / width);
  return rows > maxRows || width > maxRows ? null : { width, shift: Math.log2(width), rows };
}

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
    else if (s.access === 'storage-texture') lines.push(`@group(0) @binding(${i + 1}) var ${s.name}: texture_storage_2d<rgba32float, read>;`);
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
