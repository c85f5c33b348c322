export { WebGPUBackend, WebGPUBuffer, type WebGPULimits, type WebGPUBackendInit } from './backend';
export {
  createWebGPUBackend,
  requestWebGPUDevice,
  WebGPUUnavailableError,
  type WebGPUBackendOptions,
} from './device';
export { registerWebGPUBackend } from './register';
