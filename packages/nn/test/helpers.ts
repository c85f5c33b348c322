import { expect } from 'vitest';
import { setDefaultBackend } from '@needle/ndarray';
import { createCpuBackend } from '@needle/ndarray-cpu';
import type { Tensor } from '@needle/autograd';
import type { NDArray } from '@needle/ndarray';

/** Every nn test runs on the CPU backend without synchronous reads (CONTRIBUTING.md, section 3). */
export const backend = createCpuBackend({ name: 'cpu-nn-test', readSync: false });
setDefaultBackend(backend);

export type Nested = number | Nested[];

export function flat(v: Nested): number[] {
  return typeof v === 'number' ? [v] : v.flatMap(flat);
}

/** Assert that a tensor (or NDArray) holds `expected` within `tol` (relative above 1), and has `shape` when given. */
export async function expectValues(t: Tensor | NDArray, expected: Nested, tol = 1e-5, shape?: readonly number[]): Promise<void> {
  if (shape) expect([...t.shape]).toEqual([...shape]);
  const got = Array.from(await t.toArray());
  const want = flat(expected);
  expect(got.length, 'number of elements').toBe(want.length);
  got.forEach((v, i) => {
    expect(Math.abs(v - want[i]), `element ${i}: got ${v}, expected ${want[i]}`).toBeLessThanOrEqual(tol * Math.max(1, Math.abs(want[i])));
  });
}

export function liveBuffers(): number {
  return backend.memory().buffers;
}
