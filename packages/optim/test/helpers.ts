import { expect } from 'vitest';
import { setDefaultBackend } from '@needle/ndarray';
import { createCpuBackend } from '@needle/ndarray-cpu';
import { tensor, type Tensor } from '@needle/autograd';

/** Every optim test runs on the CPU backend without synchronous reads (CONTRIBUTING.md, section 3). */
export const backend = createCpuBackend({ name: 'cpu-optim-test', readSync: false });
setDefaultBackend(backend);

export function liveBuffers(): number {
  return backend.memory().buffers;
}

/** A leaf parameter of `shape` holding `values`. */
export function param(values: readonly number[], shape: readonly number[]): Tensor {
  return tensor(Float32Array.from(values), { shape: [...shape], requiresGrad: true });
}

/** Set `p.grad` to `values` (the previous gradient is disposed by the setter). */
export function setGrad(p: Tensor, values: readonly number[]): void {
  p.grad = tensor(Float32Array.from(values), { shape: [...p.shape] });
}

/** Assert a tensor's elements within relative/absolute tolerance `tol`, naming the first bad element. */
export async function expectClose(t: Tensor, want: readonly number[], tol = 1e-5, label = ''): Promise<void> {
  const got = Array.from(await t.toArray());
  expect(got.length, `${label} length`).toBe(want.length);
  got.forEach((v, i) => {
    expect(Math.abs(v - want[i]), `${label} element ${i}: got ${v}, expected ${want[i]}`).toBeLessThanOrEqual(tol * Math.max(1, Math.abs(want[i])));
  });
}
