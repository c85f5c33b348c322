// Stand-in for @needle/ndarray-cpu used by scripts/vitest-on-wasm.config.ts: every backend another
// package's tests create with createCpuBackend() is a WASM backend instead, so the autograd, nn and
// optim suites run unchanged on this package. Backends are created up front (creation is async,
// createCpuBackend is not) and handed out one per distinct name/readSync pair.
import { registerBackend, type Backend } from '@needle/ndarray';
import { createWasmBackend } from '../src';

const threads = Number(process.env.NEEDLE_WASM_THREADS ?? 1);
const POOL = 4;
const spare = {
  sync: await Promise.all(Array.from({ length: POOL }, () => createWasmBackend({ threads }))),
  async: await Promise.all(Array.from({ length: POOL }, () => createWasmBackend({ threads, readSync: false }))),
};
const given = new Map<string, Backend>();

export interface CpuBackendOptions {
  name?: string;
  readSync?: boolean;
}

export function createCpuBackend(options: CpuBackendOptions = {}): Backend {
  const name = options.name ?? 'cpu';
  const key = `${name}\u0000${options.readSync !== false}`;
  let backend = given.get(key);
  if (!backend) {
    const next = (options.readSync === false ? spare.async : spare.sync).shift();
    if (!next) throw new Error(`cpu-shim: more than ${POOL} distinct backends requested (raise POOL in scripts/cpu-shim.ts)`);
    // The suites compare backend names; keep the one they asked for.
    Object.defineProperty(next, 'name', { value: name });
    backend = next;
    given.set(key, backend);
  }
  return backend;
}

export function registerCpuBackend(options: CpuBackendOptions = {}): string {
  const name = options.name ?? 'cpu';
  const backend = createCpuBackend(options);
  registerBackend(name, () => backend, { overwrite: true });
  return name;
}
