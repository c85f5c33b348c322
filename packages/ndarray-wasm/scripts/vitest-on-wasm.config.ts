// Runs other packages' test suites on the WASM backend by resolving @needle/ndarray-cpu to
// scripts/cpu-shim.ts. From the repository root:
//   node packages/ndarray-wasm/scripts/build-wasm.mjs
//   pnpm exec vitest run --config packages/ndarray-wasm/scripts/vitest-on-wasm.config.ts packages/autograd packages/nn packages/optim packages/data
// NEEDLE_WASM_THREADS=2 runs them on two threads.
import { fileURLToPath } from 'node:url';
import { defineConfig, mergeConfig } from 'vitest/config';
import base from '../../../vitest.config.ts';

export default mergeConfig(base, defineConfig({
  root: fileURLToPath(new URL('../../..', import.meta.url)),
  resolve: { alias: { '@needle/ndarray-cpu': fileURLToPath(new URL('./cpu-shim.ts', import.meta.url)) } },
}));
