import { runBackendFuzz } from '@needle/ndarray/testing';
import { createCpuBackend } from '@needle/ndarray-cpu';
import { testBackend } from './gpu';

// Fewer rounds than on cpu and wasm: every call that gets past the checks dispatches on llvmpipe.
const backend = await testBackend();
runBackendFuzz('webgpu', async () => backend!, {
  skip: backend ? false : 'no WebGPU adapter (set NEEDLE_REQUIRE_WEBGPU=1 to fail instead)',
  foreign: () => createCpuBackend({ name: 'cpu-foreign' }),
  rounds: 400,
});
