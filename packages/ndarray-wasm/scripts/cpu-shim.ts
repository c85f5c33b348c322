// Stand-in for @needle/ndarray-cpu used by scripts/vitest-on-wasm.config.ts: every backend another
// package's tests create with createCpuBackend() is a WASM backend instead, so the autograd, nn and
// optim suites run unchanged on this package. Backends are created up front (creation is async,
// createCpuBackend is not) and handed out one per distinct name/readSync pair.
// NEEDLE_WASM_THREADS sets their thread count; NEEDLE_WASM_SIMD=relaxed|baseline forces a build of
// the kernels (default: the backend's 'auto'). Node 20 validates the relaxed build only with V8's
// --experimental-wasm-relaxed-simd, which NODE_OPTIONS does not accept, so the shim sets it here,
// before any module is compiled.
import { setFlagsFromString } from 'node:v8';
import { registerBackend, type Backend } from '@needle/ndarray';
import { createWasmBackend } from '../src';

const threads = Number(process.env.NEEDLE_WASM_THREADS ?? 1);
const simdEnv = process.env.NEEDLE_WASM_SIMD ?? 'auto';
if (simdEnv !== 'auto' && simdEnv !== 'relaxed' && simdEnv !== 'baseline') throw new Error(`cpu-shim: NEEDLE_WASM_SIMD must be auto, relaxed or baseline, got ${simdEnv}`);
const simd = simdEnv;
if (simd === 'relaxed') setFlagsFromString('--experimental-wasm-relaxed-simd');
const POOL = 4;
const spare = {
  sync: await Promise.all(Array.from({ length: POOL }, () => createWasmBackend({ threads, simd }))),
  async: await Promise.all(Array.from({ length: POOL }, () => createWasmBackend({ threads, simd, readSync: false }))),
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
