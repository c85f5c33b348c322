import { nodeGPU } from '../src/node';
import { createWebGPUBackend, WebGPUUnavailableError, type WebGPUBackend } from '../src/index';

/** CI sets this, turning a missing adapter into a failure instead of a skip. */
export const REQUIRE_WEBGPU = process.env.NEEDLE_REQUIRE_WEBGPU === '1';

let shared: Promise<WebGPUBackend | null> | undefined;

/**
 * One backend per test file (devices are expensive on a software rasteriser). Resolves to null, with
 * a loud notice, where no adapter exists, unless NEEDLE_REQUIRE_WEBGPU=1.
 */
export function testBackend(): Promise<WebGPUBackend | null> {
  shared ??= (async () => {
    try {
      return await createWebGPUBackend({ gpu: await nodeGPU() });
    } catch (e) {
      if (e instanceof WebGPUUnavailableError && !REQUIRE_WEBGPU) {
        console.warn(`\n*** WebGPU tests SKIPPED: ${e.message}. Set NEEDLE_REQUIRE_WEBGPU=1 to fail instead. ***\n`);
        return null;
      }
      throw e;
    }
  })();
  return shared;
}
