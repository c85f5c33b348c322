/**
 * The WebGPU flag values, fixed by the spec. Using these instead of the GPUBufferUsage/GPUMapMode
 * globals keeps the backend working in Node, where the `webgpu` package does not install globals.
 */
export const BufferUsage = {
  MAP_READ: 0x0001,
  COPY_SRC: 0x0004,
  COPY_DST: 0x0008,
  UNIFORM: 0x0040,
  STORAGE: 0x0080,
} as const;

export const TextureUsage = { COPY_DST: 0x02, TEXTURE_BINDING: 0x04, STORAGE_BINDING: 0x08 } as const;

export const MapMode = { READ: 0x0001 } as const;

export const ShaderStage = { COMPUTE: 0x4 } as const;
