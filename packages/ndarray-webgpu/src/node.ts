/**
 * Node-only entry (`@needle/ndarray-webgpu/node`): a GPU object from Dawn's Node bindings, the
 * optional peer dependency `webgpu`. Kept out of the main entry so browser bundles never see it.
 */

export interface NodeGPUOptions {
  /**
   * Dawn instance flags, e.g. ['backend=opengles']. Default: Dawn's own choice, falling back to
   * OpenGL ES (which is how Mesa's software rasteriser is reached on machines without a GPU).
   */
  flags?: string[];
}

interface WebGPUModule {
  create(flags: string[]): GPU;
}

export async function nodeGPU(options: NodeGPUOptions = {}): Promise<GPU> {
  let mod: WebGPUModule;
  try {
    mod = (await import('webgpu')) as WebGPUModule;
  } catch (e) {
    throw new Error(`nodeGPU: cannot load the 'webgpu' package (install it next to @needle/ndarray-webgpu): ${(e as Error).message}`);
  }
  if (options.flags) return mod.create(options.flags);
  const gpu = mod.create([]);
  if (await gpu.requestAdapter()) return gpu;
  return mod.create(['backend=opengles']);
}
