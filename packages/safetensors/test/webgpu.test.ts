// WebGPU reads only asynchronously: save and checkpoints must work there too (Mesa's software
// adapter in CI; a loud skip where there is no adapter, unless NEEDLE_REQUIRE_WEBGPU=1).
import { afterAll, expect, it } from 'vitest';
import { NDArray } from '@needle/ndarray';
import { createWebGPUBackend, WebGPUUnavailableError, type WebGPUBackend } from '@needle/ndarray-webgpu';
import { nodeGPU } from '@needle/ndarray-webgpu/node';
import { load, loadCheckpoint, save, saveCheckpoint } from '../src/index';
import { bitsOf } from './helpers';

let gpu: WebGPUBackend | null = null;
try {
  gpu = await createWebGPUBackend({ gpu: await nodeGPU() });
} catch (e) {
  if (!(e instanceof WebGPUUnavailableError) || process.env.NEEDLE_REQUIRE_WEBGPU === '1') throw e;
  console.warn(`\n*** safetensors WebGPU test SKIPPED: ${e.message}. Set NEEDLE_REQUIRE_WEBGPU=1 to fail instead. ***\n`);
}
afterAll(() => gpu?.destroy());

const BITS = [0x80000000, 0x00000001, 0x7f800000, 0xff800000, 0x7fc00000, 0x3f800000];

it.skipIf(!gpu)('save, load and checkpoints on WebGPU: bit-exact, async reads only, no leaks', async () => {
  const b = gpu!;
  const before = b.memory().buffers;
  const x = NDArray.fromData(new Float32Array(Uint32Array.from(BITS).buffer), [2, 3], b);
  const xt = x.transpose();
  const { tensors } = await load(await save({ x, xt }), { backend: b });
  expect(tensors.x.backend).toBe(b);
  expect(await bitsOf(tensors.x)).toEqual(BITS);
  expect(await bitsOf(tensors.xt)).toEqual([0, 3, 1, 4, 2, 5].map((i) => BITS[i]));

  let received: NDArray | undefined;
  const part = {
    stateDict: () => ({ copy: x.clone(), borrowed: x }),
    loadStateDict: (s: { copy: NDArray; borrowed: NDArray }) => { received = s.copy.clone(); },
  };
  const checkpoint = await saveCheckpoint({ part, step: 7 });
  const { data } = await loadCheckpoint(checkpoint, { part }, { backend: b });
  expect(data).toEqual({ step: 7 });
  expect(await bitsOf(received!)).toEqual(BITS);
  for (const a of [x, xt, received!, ...Object.values(tensors)]) a.dispose();
  expect(b.memory().buffers).toBe(before);
});
