import { setBackend, type Backend } from '@needle/ndarray';
import { registerCpuBackend } from '@needle/ndarray-cpu';

export const BACKENDS = ['cpu', 'wasm', 'webgpu'] as const;
export type BackendName = (typeof BACKENDS)[number];

/** The `--backend` flag every example takes. */
export const backendOption = {
  type: 'choice',
  choices: BACKENDS,
  default: 'wasm',
  description: 'backend to run on (NEEDLE_THREADS=N gives wasm N threads)',
} as const;

/** The `--threads` flag of the longer examples: the WASM backend's worker threads. */
export const threadsOption = {
  type: 'int',
  min: 1,
  max: 64,
  description: 'threads of the wasm backend (ignored by cpu and webgpu)',
  defaultText: '$NEEDLE_THREADS or the backend\'s choice',
} as const;

/**
 * Register the backend called `name` and make it the default. WASM and WebGPU are imported only when
 * asked for, so a CPU run never loads their modules or starts workers/devices.
 * `options.threads`, else `NEEDLE_THREADS`, sets the WASM backend's thread count (default: its own choice).
 */
export async function useBackend(name: BackendName, options: { threads?: number } = {}): Promise<Backend> {
  switch (name) {
    case 'cpu':
      registerCpuBackend();
      break;
    case 'wasm': {
      const { registerWasmBackend } = await import('@needle/ndarray-wasm');
      const threads = options.threads ?? (process.env.NEEDLE_THREADS ? Number(process.env.NEEDLE_THREADS) : undefined);
      registerWasmBackend(threads === undefined ? {} : { threads });
      break;
    }
    case 'webgpu': {
      const { registerWebGPUBackend } = await import('@needle/ndarray-webgpu');
      const { nodeGPU } = await import('@needle/ndarray-webgpu/node');
      registerWebGPUBackend({ gpu: await nodeGPU() });
      break;
    }
    default:
      name satisfies never;
      throw new Error(`--backend: unknown backend '${String(name)}' (expected one of ${BACKENDS.join(', ')})`);
  }
  return setBackend(name);
}
