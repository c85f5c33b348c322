import { expect } from 'vitest';

export { rng, randomArray, withSpecials } from './data';

/** Elementwise closeness with NaN == NaN and exact infinities. Reports the first mismatch. */
export function expectClose(actual: Float32Array, expected: Float32Array, rtol = 1e-5, atol = 1e-6, what = ''): void {
  expect(actual.length, `${what}: length`).toBe(expected.length);
  for (let i = 0; i < expected.length; i++) {
    const x = actual[i];
    const y = expected[i];
    const ok = Number.isNaN(y)
      ? Number.isNaN(x)
      : !Number.isFinite(y)
        ? x === y
        : Math.abs(x - y) <= atol + rtol * Math.abs(y);
    if (!ok) {
      expect.fail(`${what}: element ${i} is ${x}, expected ${y}`);
    }
  }
}
