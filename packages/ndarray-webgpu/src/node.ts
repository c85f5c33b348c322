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

/** Instances made here, never collected: Dawn must outlive every device and adapter probe it served. */
const instances: GPU[] = [];

export async function nodeGPU(options: NodeGPUOptions = {}): Promise<GPU> {
  let mod: WebGPUModule;
  try {
    mod = (await import('webgpu')) as WebGPUModule;
  } catch (e) {
    throw new Error(`nodeGPU: cannot load the 'webgpu' package (install it next to @needle/ndarray-webgpu): ${(e as Error).message}`, { cause: e });
  }
  const make = (flags: string[]) => {
    const gpu = mod.create(flags);
    instances.push(gpu);
    return gpu;
  };
  if (options.flags) return make(options.flags);
  const gpu = make([]);
  if (await gpu.requestAdapter()) return gpu;
  return make(['backend=opengles']);
}
