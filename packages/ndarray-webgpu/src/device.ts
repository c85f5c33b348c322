import { WebGPUBackend } from './backend';

export interface WebGPUBackendOptions {
  /** The WebGPU entry point: `navigator.gpu` (the default when present) or `await nodeGPU()` in Node. */
  gpu?: GPU;
  /** Use this device instead of requesting one; `destroy()` then leaves it alive. */
  device?: GPUDevice;
  /** Passed to requestAdapter. If no adapter is found, a compatibility-mode adapter is tried next. */
  adapterOptions?: GPURequestAdapterOptions;
  /** Name the backend reports and registers under (default 'webgpu'). */
  name?: string;
  /** Idle pooled bytes kept for reuse before the oldest idle buffers are destroyed (default 256 MiB). */
  poolIdleBytes?: number;
}

/** Thrown when there is no WebGPU implementation or adapter: callers (and tests) may skip on it. */
export class WebGPUUnavailableError extends Error {
  constructor(detail: string) {
    super(`webgpu: ${detail}`);
    this.name = 'WebGPUUnavailableError';
  }
}

/** The limits the kernels care about; the device gets the adapter's values instead of the defaults. */
const NEGOTIATED_LIMITS = [
  'maxStorageBufferBindingSize',
  'maxBufferSize',
  'maxStorageBuffersPerShaderStage',
  'maxComputeWorkgroupStorageSize',
  'maxComputeInvocationsPerWorkgroup',
  'maxComputeWorkgroupSizeX',
  'maxComputeWorkgroupSizeY',
  'maxComputeWorkgroupSizeZ',
  'maxComputeWorkgroupsPerDimension',
] as const;

/** Request an adapter (falling back to compatibility mode) and a device with the adapter's limits. */
export async function requestWebGPUDevice(options: Pick<WebGPUBackendOptions, 'gpu' | 'adapterOptions'> = {}): Promise<GPUDevice> {
  const gpu = defaultGPU(options.gpu);
  if (!gpu) {
    throw new WebGPUUnavailableError(
      "no WebGPU implementation: pass { gpu } (in Node: `await nodeGPU()` from '@needle/ndarray-webgpu/node', with the 'webgpu' package installed)",
    );
  }
  const adapter = (await gpu.requestAdapter(options.adapterOptions))
    // Software GL adapters (e.g. Mesa in Node) exist only in compatibility mode.
    ?? (await gpu.requestAdapter({ ...options.adapterOptions, featureLevel: 'compatibility' }));
  if (!adapter) throw new WebGPUUnavailableError('no WebGPU adapter is available on this machine');
  const requiredLimits: Record<string, number> = {};
  for (const name of NEGOTIATED_LIMITS) {
    const v = adapter.limits[name];
    if (typeof v === 'number') requiredLimits[name] = v;
  }
  return adapter.requestDevice({ requiredLimits, label: 'needle' });
}

function defaultGPU(gpu: GPU | undefined): GPU | undefined {
  return gpu ?? (globalThis as { navigator?: { gpu?: GPU } }).navigator?.gpu;
}

/** Create a WebGPU backend on a new device (or on `options.device`). */
export async function createWebGPUBackend(options: WebGPUBackendOptions = {}): Promise<WebGPUBackend> {
  const device = options.device ?? (await requestWebGPUDevice(options));
  return new WebGPUBackend({
    device,
    gpu: defaultGPU(options.gpu),
    ownsDevice: !options.device,
    name: options.name,
    poolIdleBytes: options.poolIdleBytes,
  });
}
