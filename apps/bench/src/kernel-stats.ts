import type { Backend } from '@needle/ndarray';

/**
 * Whether a backend counts its kernels (the contract's stats()/resetStats()). An older build (a
 * base:* target) may predate them, or have a stats() of its own with other fields (02b7fa9's WebGPU
 * backend counted pipelines and dispatches): its kernels are then not counted.
 */
export function hasKernelStats(backend: Partial<Backend>): backend is Backend {
  return typeof backend.stats === 'function' && typeof backend.resetStats === 'function';
}
