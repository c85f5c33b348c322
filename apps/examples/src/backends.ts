import { listBackends, setBackend, type Backend } from '@needle/ndarray';
import { registerCpuBackend } from '@needle/ndarray-cpu';

/**
 * Optional backends, loaded only when asked for: their packages are imported by a computed name so
 * this app builds and runs without them, and asking for one that is not installed says so.
 */
const optional: Record<string, { pkg: string; register: string }> = {
  wasm: { pkg: '@needle/ndarray-wasm', register: 'registerWasmBackend' },
  webgpu: { pkg: '@needle/ndarray-webgpu', register: 'registerWebGPUBackend' },
};

/** Register the CPU backend (and `name`'s package when it is an optional one) and make `name` the default. */
export async function useBackend(name: string): Promise<Backend> {
  registerCpuBackend();
  const extra = optional[name];
  if (extra && !listBackends().includes(name)) {
    let mod: Record<string, unknown>;
    try {
      mod = (await import(/* @vite-ignore */ extra.pkg)) as Record<string, unknown>;
    } catch (e) {
      throw new Error(`--backend ${name}: ${extra.pkg} could not be loaded (${(e as Error).message.split('\n')[0]}); it must be a dependency of apps/examples`, { cause: e });
    }
    const register = mod[extra.register];
    if (typeof register !== 'function') throw new Error(`--backend ${name}: ${extra.pkg} does not export ${extra.register}()`);
    (register as () => string)();
  }
  return setBackend(name);
}
