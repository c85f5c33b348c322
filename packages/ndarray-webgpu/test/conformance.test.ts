import { runBackendConformance } from '@needle/ndarray/testing';
import { testBackend } from './gpu';

const backend = await testBackend();
runBackendConformance('webgpu', async () => backend!, {
  skip: backend ? false : 'no WebGPU adapter (set NEEDLE_REQUIRE_WEBGPU=1 to fail instead)',
});
