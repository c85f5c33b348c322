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

/**
 * A fused op against its composition: the forward bit for bit, and the gradients of
 * L = sum(out * w) (w random of `outShape`, seed 9) through both of the fused op's backwards, the
 * plain one and the createGraph one (Tensor ops, what double backward goes through), within 1e-5
 * relative. An input the composition never reads gets no gradient there and zeros from the fused op.
 * Frees everything it made.
 */
export async function expectSameGradients(composed: () => Tensor, fused: () => Tensor, all: Tensor[], outShape: number[]): Promise<void> {
  const w = randn(outShape, { generator: new Generator(9) });
  const loss = (out: Tensor) => A.sum(A.mul(out, w));
  const ref = composed();
  const got = fused();
  expect(Array.from(await got.toArray())).toEqual(Array.from(await ref.toArray()));
  const losses = [loss(ref), loss(got)];
  const refGrads = gradients(losses[0], all, { allowUnused: true });
  const fastGrads = gradients(losses[1], all);
  const again = fused();
  losses.push(loss(again));
  const slowGrads = gradients(losses[2], all, { createGraph: true });
  for (let i = 0; i < all.length; i++) {
    const f = await fastGrads[i]!.toArray();
    const s = await slowGrads[i]!.toArray();
    const r = refGrads[i] ? await refGrads[i]!.toArray() : new Float32Array(f.length);
    r.forEach((v, j) => {
      expect(Math.abs(f[j] - v), `input ${i} element ${j}: fast ${f[j]} vs composed ${v}`).toBeLessThanOrEqual(1e-5 * Math.max(1, Math.abs(v)));
      expect(Math.abs(s[j] - v), `input ${i} element ${j}: createGraph ${s[j]} vs composed ${v}`).toBeLessThanOrEqual(1e-5 * Math.max(1, Math.abs(v)));
    });
  }
  [...refGrads, ...fastGrads, ...slowGrads].forEach((t) => t?.dispose());
  [w, ref, got, again, ...losses].forEach((t) => t.dispose());
}
