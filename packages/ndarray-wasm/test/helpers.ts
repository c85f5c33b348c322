import { createCpuBackend } from '@needle/ndarray-cpu';
import type { Backend, DeviceBuffer } from '@needle/ndarray';

export const cpu = createCpuBackend();

/** Deterministic uniform floats in [lo, hi) (mulberry32), so failures reproduce. */
export function randomFloats(n: number, seed: number, lo = -2, hi = 2): Float32Array {
  let s = seed >>> 0;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    out[i] = lo + (((t ^ (t >>> 14)) >>> 0) / 4294967296) * (hi - lo);
  }
  return out;
}

/** Values every elementwise kernel must get right, mixed into random data. */
export const SPECIAL = [NaN, 0, -0, Infinity, -Infinity, 1, -1, 0.5, 2, -2, 3, 1e-30, -1e30];

export function upload(backend: Backend, data: Float32Array): DeviceBuffer {
  const buf = backend.alloc(data.length);
  backend.write(buf, data);
  return buf;
}

export function download(backend: Backend, buf: DeviceBuffer, size?: number): Float32Array {
  return backend.readSync!(buf, size);
}

/**
 * Assert two float arrays agree: NaN matches NaN, infinities match exactly, finite values within
 * atol + rtol * |expected|. Reports the first mismatch with its index.
 */
export function expectClose(actual: Float32Array, expected: Float32Array, rtol = 0, atol = 0, what = ''): void {
  if (actual.length !== expected.length) throw new Error(`${what}: length ${actual.length} vs expected ${expected.length}`);
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i];
    const e = expected[i];
    if (Number.isNaN(e)) {
      if (!Number.isNaN(a)) throw new Error(`${what}: [${i}] expected NaN, got ${a}`);
      continue;
    }
    if (!Number.isFinite(e)) {
      if (a !== e) throw new Error(`${what}: [${i}] expected ${e}, got ${a}`);
      continue;
    }
    if (rtol === 0 && atol === 0) {
      if (!Object.is(a, e)) throw new Error(`${what}: [${i}] expected ${Object.is(e, -0) ? '-0' : e}, got ${Object.is(a, -0) ? '-0' : a}`);
      continue;
    }
    if (!(Math.abs(a - e) <= atol + rtol * Math.abs(e))) throw new Error(`${what}: [${i}] expected ${e}, got ${a} (rtol ${rtol}, atol ${atol})`);
  }
}
