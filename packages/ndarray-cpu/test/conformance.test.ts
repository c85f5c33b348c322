import { runBackendConformance } from '@needle/ndarray/testing';
import type { Backend } from '@needle/ndarray';
import { createCpuBackend } from '@needle/ndarray-cpu';

/**
 * The contract's required kernels only, as a third-party backend may start: every optional fast
 * path (programs, fused matmul and reductions, row lookups, strided layouts) falls back to the
 * frontend's composition, which this run checks against the same expectations.
 */
function requiredKernelsOnly(backend: Backend): Backend {
  for (const k of ['elementwise', 'matmulProgram', 'reduceProgram', 'gatherRows', 'scatterAddRows', 'layouts'] as const) {
    Object.defineProperty(backend, k, { value: undefined });
  }
  return backend;
}

runBackendConformance('cpu', () => createCpuBackend());
runBackendConformance('cpu (readSync off)', () => createCpuBackend({ readSync: false }));
runBackendConformance('cpu (required kernels only)', () => requiredKernelsOnly(createCpuBackend()));
