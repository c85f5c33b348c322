import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createWasmBackend, type WasmBackend } from '../src';
import { download, randomFloats, upload } from './helpers';

/** Distance in float32 ulps between a result and the correctly rounded float64 value. */
function ulps(got: number, want: number): number {
  if (Object.is(got, want) || (Number.isNaN(got) && Number.isNaN(want))) return 0;
  if (!Number.isFinite(want) || !Number.isFinite(got)) return Infinity;
  const w = Math.fround(want);
  const exp = Math.max(Math.floor(Math.log2(Math.abs(w) || 1e-45)), -126);
  return Math.abs(got - want) / 2 ** (exp - 23);
}

// The f32x4 exp/log/tanh are polynomial approximations (NOTES.md section 10); this bounds their
// error over each function's whole useful range, inputs spread log-uniformly over the magnitudes.
const CASES: [op: 'exp' | 'log' | 'tanh', fn: (x: number) => number, maxUlps: number, inputs: () => Float32Array][] = [
  ['exp', Math.exp, 2, () => randomFloats(200_000, 1, -103, 88.7)],
  ['log', Math.log, 2, () => randomFloats(200_000, 2, -40, 40).map((v) => Math.pow(2, v) * 1.1)],
  ['log', Math.log, 2, () => randomFloats(200_000, 3, 0.5, 2)],
  ['log', Math.log, 2, () => randomFloats(10_000, 4, 1e-45, 1e-38)], // subnormals
  ['tanh', Math.tanh, 3, () => randomFloats(200_000, 5, -10, 10)],
  ['tanh', Math.tanh, 3, () => randomFloats(200_000, 6, -1, 1)],
  ['tanh', Math.tanh, 3, () => randomFloats(10_000, 7, -0.001, 0.001)],
];

describe('transcendental accuracy against float64 Math', () => {
  let w: WasmBackend;
  beforeAll(async () => {
    w = await createWasmBackend();
  });
  afterAll(() => w.destroy());

  for (const [op, fn, maxUlps, inputs] of CASES) {
    it(`${op} stays within ${maxUlps} ulps`, () => {
      const x = inputs();
      const a = upload(w, x);
      const o = w.alloc(x.length);
      w.unary(op, a, o, x.length);
      const got = download(w, o);
      let worst = 0;
      let at = 0;
      for (let i = 0; i < x.length; i++) {
        const e = ulps(got[i], fn(x[i]));
        if (e > worst) {
          worst = e;
          at = i;
        }
      }
      w.free(a);
      w.free(o);
      if (process.env.SHOW_ULPS) console.log(`${op}: worst ${worst.toFixed(2)} ulps at ${x[at]}`);
      expect(worst, `${op}(${x[at]}) = ${got[at]}, float64 ${fn(x[at])}`).toBeLessThanOrEqual(maxUlps);
    });
  }

  it('exp, log and tanh keep the special values of Math', () => {
    const x = Float32Array.from([NaN, Infinity, -Infinity, 0, -0, 1, -1, 89, -104, 1e-30]);
    const a = upload(w, x);
    const o = w.alloc(x.length);
    const run = (op: 'exp' | 'log' | 'tanh') => {
      w.unary(op, a, o, x.length);
      return Array.from(download(w, o));
    };
    expect(run('exp')).toEqual([NaN, Infinity, 0, 1, 1, Math.fround(Math.E), Math.fround(1 / Math.E), Infinity, 0, 1]);
    expect(run('log')).toEqual([NaN, Infinity, NaN, -Infinity, -Infinity, 0, NaN, Math.fround(Math.log(89)), NaN, Math.fround(Math.log(Math.fround(1e-30)))]);
    const t = run('tanh');
    expect(t).toEqual([NaN, 1, -1, 0, -0, Math.fround(Math.tanh(1)), Math.fround(Math.tanh(-1)), 1, -1, Math.fround(1e-30)]);
    expect(Object.is(t[4], -0)).toBe(true);
    w.free(a);
    w.free(o);
  });
});
