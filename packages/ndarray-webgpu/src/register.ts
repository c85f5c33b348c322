import { registerBackend } from '@needle/ndarray';
import { createWebGPUBackend, type WebGPUBackendOptions } from './device';

/**
 * Register the WebGPU backend's async factory under 'webgpu' (or `options.name`). Create it with
 * `await setBackend('webgpu')` or `await initBackend('webgpu')`. Returns the name.
 */
export function registerWebGPUBackend(options: WebGPUBackendOptions = {}): string {
  const name = options.name ?? 'webgpu';
  registerBackend(name, () => createWebGPUBackend(options), { overwrite: true });
  return name;
}
