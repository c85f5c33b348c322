import { expect } from 'vitest';
import { setDefaultBackend } from '@needle/ndarray';
import { createCpuBackend } from '@needle/ndarray-cpu';
import type { Tensor } from '../src/index';

/** Every autograd test runs on the CPU backend without synchronous reads (CONTRIBUTING.md, section 3). */
export const backend = createCpuBackend({ name: 'cpu-autograd-test', readSync: false });
setDefaultBackend(backend);

/** Nested values of a tensor. */
export async function nested(t: Tensor): Promise<unknown> {
  return t.toNested();
}

/** Assert that a tensor holds `expected` (flat or nested) within `tol`, and has `shape` when given. */
export type Nested = number | Nested[];

export async function expectValues(t: Tensor, expected: Nested, tol = 1e-5, shape?: number[]): Promise<void> {
  if (shape) expect([...t.shape]).toEqual(shape);
  const flat = Array.from(await t.toArray());
  const want = flatten(expected);
  expect(flat.length).toBe(want.length);
  flat.forEach((v, i) => {
    if (Number.isNaN(want[i])) expect(v).toBeNaN();
    else if (!Number.isFinite(want[i])) expect(v).toBe(want[i]);
    else expect(Math.abs(v - want[i]), `element ${i}: got ${v}, expected ${want[i]}`).toBeLessThanOrEqual(tol * Math.max(1, Math.abs(want[i])));
  });
}

export function liveBuffers(): number {
  return backend.memory().buffers;
}

function flatten(v: Nested): number[] {
  return typeof v === 'number' ? [v] : v.flatMap(flatten);
}
