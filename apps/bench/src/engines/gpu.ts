/**
 * WebGPU in Node through Dawn's bindings (the `webgpu` npm package). On a machine without a GPU it
 * runs on Mesa's llvmpipe over OpenGL ES, which Dawn only offers as a 'compatibility' adapter; the
 * frameworks ask `navigator.gpu.requestAdapter()` without that feature level, so the GPU object we
 * install defaults it. See CONTRIBUTING.md, section 7 (WebGPU in Node without a GPU).
 */
import { NotAvailableError } from './types';

interface GpuLike {
  requestAdapter(options?: Record<string, unknown>): Promise<unknown>;
}

let installed: Promise<GpuLike> | undefined;

/** Install (once) a GPU object as globalThis.navigator.gpu; rejects with NotAvailableError when none. */
export function installNodeWebGpu(): Promise<GpuLike> {
  installed ??= install();
  return installed;
}

async function install(): Promise<GpuLike> {
  const existing = (globalThis as { navigator?: { gpu?: GpuLike } }).navigator?.gpu;
  if (existing) return existing;
  // Mesa reads this when it loads; harmless on machines with a real GPU.
  process.env.EGL_PLATFORM ??= 'surfaceless';
  let mod: { create(flags: string[]): GpuLike; globals: Record<string, unknown> };
  try {
    mod = (await import('webgpu')) as unknown as typeof mod;
  } catch (e) {
    throw new NotAvailableError(`the 'webgpu' package failed to load: ${(e as Error).message}`);
  }
  Object.assign(globalThis, mod.globals);
  // A real GPU (Vulkan/Metal/D3D12) first; then llvmpipe over OpenGL ES in compatibility mode.
  const candidates: Array<{ flags: string[]; featureLevel?: string }> = [
    { flags: [] },
    { flags: ['backend=opengles'], featureLevel: 'compatibility' },
  ];
  for (const c of candidates) {
    const raw = mod.create(c.flags);
    const probe = await raw.requestAdapter(c.featureLevel ? { featureLevel: c.featureLevel } : {}).catch(() => null);
    if (!probe) continue;
    const gpu: GpuLike = {
      requestAdapter: (options = {}) => raw.requestAdapter(c.featureLevel ? { ...options, featureLevel: c.featureLevel } : options),
    };
    // Forward everything else (wgslLanguageFeatures, getPreferredCanvasFormat) to Dawn's object.
    const proxied = new Proxy(gpu, {
      get: (target, key) => (key in target ? target[key as keyof GpuLike] : bindIfFunction(raw, key)),
    });
    const nav = (globalThis as unknown as { navigator?: object }).navigator;
    if (nav) {
      Object.defineProperty(nav, 'gpu', { value: proxied, configurable: true });
    } else {
      Object.defineProperty(globalThis, 'navigator', {
        value: { gpu: proxied, userAgent: `Node.js ${process.version}`, hardwareConcurrency: 1 },
        configurable: true,
        writable: true,
      });
    }
    return proxied;
  }
  throw new NotAvailableError('no WebGPU adapter (neither a GPU nor Mesa llvmpipe over OpenGL ES)');
}

function bindIfFunction(obj: object, key: string | symbol): unknown {
  const v = (obj as Record<string | symbol, unknown>)[key];
  return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(obj) : v;
}

/** Name of the adapter the installed GPU object gives (for the report). */
export async function adapterName(): Promise<string> {
  const gpu = await installNodeWebGpu();
  const adapter = (await gpu.requestAdapter()) as { info?: { vendor?: string; architecture?: string; device?: string; description?: string } } | null;
  const info = adapter?.info;
  if (!info) return 'unknown adapter';
  return [info.vendor, info.architecture, info.device, info.description].filter(Boolean).join(' ') || 'unknown adapter';
}
