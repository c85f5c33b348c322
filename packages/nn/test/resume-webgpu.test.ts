/**
 * The resume test on WebGPU (Mesa's software adapter in CI; a loud skip where there is no adapter,
 * unless NEEDLE_REQUIRE_WEBGPU=1): bit-identical there too. It holds because the WebGPU kernels use no
 * atomics and reduce in workgroup memory in a fixed tree order, so on one device and driver the
 * same steps give the same bits (this test checks it where it runs). Plus the one-line move
 * of a run from another backend: a cpu checkpoint loaded onto WebGPU continues the same run (to
 * float32 rounding, since the kernels differ).
 */
import { afterAll, expect, it } from 'vitest';
import { defaultBackend, setDefaultBackend, type Backend } from '@needle/ndarray';
import { createWebGPUBackend, WebGPUUnavailableError, type WebGPUBackend } from '@needle/ndarray-webgpu';
import { nodeGPU } from '@needle/ndarray-webgpu/node';
import { SETUPS, STOP_AT, TOTAL_STEPS, makeData, train } from './resume-run';
import { backend as cpu } from './helpers';

let gpu: WebGPUBackend | null = null;
try {
  gpu = await createWebGPUBackend({ gpu: await nodeGPU() });
} catch (e) {
  if (!(e instanceof WebGPUUnavailableError) || process.env.NEEDLE_REQUIRE_WEBGPU === '1') throw e;
  console.warn(`\n*** nn resume WebGPU test SKIPPED: ${e.message}. Set NEEDLE_REQUIRE_WEBGPU=1 to fail instead. ***\n`);
}
afterAll(() => gpu?.destroy());

async function on<T>(backend: Backend, fn: () => Promise<T>): Promise<T> {
  const previous = defaultBackend();
  setDefaultBackend(backend);
  try {
    return await fn();
  } finally {
    setDefaultBackend(previous);
  }
}

it.skipIf(!gpu)('resume on WebGPU is bit-identical; a cpu checkpoint continues on WebGPU', async () => {
  const b = gpu!;
  const setup = SETUPS[0];
  const cpuFirst = await (async () => {
    const data = makeData();
    const r = await train(setup, data, STOP_AT);
    data.x.dispose();
    data.y.dispose();
    return r;
  })();
  await on(b, async () => {
    const before = b.memory().buffers;
    const data = makeData();
    const straight = await train(setup, data, TOTAL_STEPS);
    const first = await train(setup, data, STOP_AT);
    const resumed = await train(setup, data, TOTAL_STEPS, first.checkpoint);
    expect(resumed.losses).toEqual(straight.losses.slice(STOP_AT));
    expect(resumed.params).toEqual(straight.params);
    // A checkpoint written on cpu, resumed on WebGPU: the same run to float32 rounding.
    const fromCpu = await train(setup, data, TOTAL_STEPS, cpuFirst.checkpoint);
    fromCpu.losses.forEach((l, i) => expect(Math.abs(l - straight.losses[STOP_AT + i])).toBeLessThan(1e-4));
    data.x.dispose();
    data.y.dispose();
    expect(b.memory().buffers).toBe(before);
  });
  expect(defaultBackend()).toBe(cpu);
});
