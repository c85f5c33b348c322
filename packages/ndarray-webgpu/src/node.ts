/**
 * Node-only entry (`@needle/ndarray-webgpu/node`): a GPU object from Dawn's Node bindings, the
 * optional peer dependency `webgpu`. Kept out of the main entry so browser bundles never see it.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isMainThread } from 'node:worker_threads';
import { WebGPUUnavailableError } from './device';

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

const MESA_HELP =
  'On Linux without a GPU, Dawn reaches Mesa\'s software rasteriser through OpenGL ES: install ' +
  "Mesa's EGL and GLES drivers (Debian/Ubuntu: apt-get install mesa-vulkan-drivers libvulkan1 libegl1 libegl-mesa0 libgles2). " +
  'EGL_PLATFORM must be surfaceless when Mesa loads; nodeGPU() sets it when unset';

/**
 * Run a probe of Dawn's default backends without their noise. On a machine without a GPU, Dawn's
 * Vulkan probe reaches Mesa's Vulkan driver, whose Wayland code prints "XDG_RUNTIME_DIR is invalid
 * or not set" when the variable is unset (as in containers and CI); any absolute path quiets it.
 * The variable is set only for the probe, to an empty private folder, and then put back.
 */
async function withRuntimeDir<T>(probe: () => Promise<T>): Promise<T> {
  if (process.platform !== 'linux' || (process.env.XDG_RUNTIME_DIR && !runtimeDir)) return probe();
  // Probes may overlap (several nodeGPU() calls awaited together): the folder stays until the last ends.
  if (probes++ === 0) {
    runtimeDir = mkdtempSync(join(tmpdir(), 'needle-webgpu-'));
    process.env.XDG_RUNTIME_DIR = runtimeDir;
  }
  try {
    return await probe();
  } finally {
    if (--probes === 0) {
      delete process.env.XDG_RUNTIME_DIR;
      rmSync(runtimeDir!, { recursive: true, force: true });
      runtimeDir = undefined;
    }
  }
}
let probes = 0;
let runtimeDir: string | undefined;

/**
 * A WebGPU entry point in Node: Dawn's default backend (Vulkan, Metal, D3D12) where it finds an
 * adapter, otherwise Dawn's OpenGL ES backend (Mesa's software rasteriser on machines without a GPU).
 * Throws WebGPUUnavailableError, saying what to install, when neither has an adapter.
 */
export async function nodeGPU(options: NodeGPUOptions = {}): Promise<GPU> {
  // Mesa reads EGL_PLATFORM when Dawn initialises EGL, which is after this line: setting it here,
  // before the module loads, is enough on the main thread (a worker's process.env is a private copy).
  if (process.platform === 'linux') process.env.EGL_PLATFORM ??= 'surfaceless';
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
  if (await withRuntimeDir(() => gpu.requestAdapter())) return gpu;
  const gl = make(['backend=opengles']);
  // Software GL adapters exist only in compatibility mode.
  if (await gl.requestAdapter({ featureLevel: 'compatibility' })) return gl;
  const where = isMainThread ? '' : '; in a worker thread, set it in the environment before Node starts';
  throw new WebGPUUnavailableError(`nodeGPU: no adapter from Dawn's default backend nor from OpenGL ES. ${MESA_HELP}${where} (it is '${process.env.EGL_PLATFORM ?? ''}' here).`);
}
