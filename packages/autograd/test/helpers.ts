import { expect } from 'vitest';
import { Generator, setDefaultBackend } from '@needle/ndarray';
import { createCpuBackend } from '@needle/ndarray-cpu';
import * as A from '../src/index';
import { gradients, randn, type Tensor } from '../src/index';

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

/**
 * Hessian-vector products of a fused op and its composition agree (1e-4 relative): d/dinputs of
 * sum_i <dL/dinput_i, v_i> with L = sum(tanh(out) * w), for random w of `outShape` and v (seed 5).
 * Frees everything it made.
 */
export async function expectSameHvp(composed: (...xs: Tensor[]) => Tensor, fused: (...xs: Tensor[]) => Tensor, all: Tensor[], outShape: number[]): Promise<void> {
  const gen = new Generator(5);
  const w = randn(outShape, { generator: gen });
  const v = all.map((t) => randn(t.shape, { generator: gen }));
  const hvp = (layer: (...xs: Tensor[]) => Tensor) => {
    const out = layer(...all);
    const l = A.sum(A.mul(A.tanh(out), w));
    const gs = gradients(l, all, { createGraph: true });
    const s = gs.map((g, i) => A.sum(A.mul(g!, v[i]))).reduce((a, b) => A.add(a, b));
    const second = gradients(s, all);
    [out, l, s, ...gs].forEach((t) => t!.dispose());
    return second;
  };
  const ref = hvp(composed);
  const got = hvp(fused);
  for (let i = 0; i < all.length; i++) {
    const r = await ref[i]!.toArray();
    const g = await got[i]!.toArray();
    r.forEach((x, j) => expect(Math.abs(g[j] - x), `input ${i} element ${j}: ${g[j]} vs composed ${x}`).toBeLessThanOrEqual(1e-4 * Math.max(1, Math.abs(x))));
  }
  [...v, ...ref, ...got, w].forEach((t) => t!.dispose());
}
