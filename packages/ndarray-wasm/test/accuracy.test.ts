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

// pow with the exponents 2, 0.5 and -0.5 (squares, square roots and batch/layer norms' reciprocal
// square roots) skips libm: x * x, and sqrt or 1 / sqrt in float64 (NOTES.md section 22).
describe('pow shortcuts for the exponents 2, 0.5 and -0.5', () => {
  let w: WasmBackend;
  beforeAll(async () => {
    w = await createWasmBackend();
  });
  afterAll(() => w.destroy());

  const specials = [NaN, Infinity, -Infinity, 0, -0, 1, -1, -2, 4, 1e-45, 1e-38, 3e38, 0.25];
  // Log-uniform over the float32 magnitudes, specials at both ends (vector and scalar-tail lanes).
  const x = Float32Array.from([...specials, ...randomFloats(100_003, 8, -149, 127).map((v) => 2 ** v), ...specials]);

  /** pow through the backend, with y given per element (a block, as programs pass constants) or as one scalar. */
  function pow(data: Float32Array, y: number, perElement: boolean): Float32Array {
    const a = upload(w, data);
    const o = w.alloc(data.length);
    if (perElement) {
      const b = upload(w, new Float32Array(data.length).fill(y));
      w.ewise('pow', a, b, o, data.length);
      w.free(b);
    } else {
      w.scalar('pow', a, y, o, data.length);
    }
    const r = download(w, o);
    w.free(a);
    w.free(o);
    return r;
  }

  for (const y of [2, 0.5, -0.5]) {
    it(`x ** ${y}: Math.pow's special values, within half an ulp of the exact value, the same in every lane`, () => {
      for (const perElement of [true, false]) {
        const got = pow(x, y, perElement);
        for (let i = 0; i < specials.length; i++) {
          const want = Math.fround(Math.pow(Math.fround(specials[i]), y));
          expect(Object.is(got[i], want), `${specials[i]} ** ${y} = ${got[i]}, Math.pow ${want}`).toBe(true);
        }
        let worst = 0;
        for (let i = 0; i < x.length; i++) {
          if (!Number.isFinite(x[i]) || x[i] === 0) continue; // the special values, checked above
          // The exact value, in float64: x * x is exact, and sqrt is correctly rounded (so within
          // 2^-53 relative); its reciprocal adds one more rounding.
          const exact = y === 2 ? x[i] * x[i] : y === 0.5 ? Math.sqrt(x[i]) : 1 / Math.sqrt(x[i]);
          // Overflow to Infinity and NaN (negative x) must match exactly.
          if (!Number.isFinite(Math.fround(exact))) expect(got[i], `${x[i]} ** ${y}`).toBe(Math.fround(exact));
          else worst = Math.max(worst, ulps(got[i], exact));
        }
        expect(worst).toBeLessThanOrEqual(0.5 + 1e-6);
        // Against the reference backend's Math.pow rounded to float32 (libm's pow is not correctly
        // rounded either): the same float32 but where the exact value is within ~2^-29 of a
        // rounding boundary, and then one ulp apart.
        let differ = 0;
        for (let i = 0; i < x.length; i++) {
          const ref = Math.fround(Math.pow(x[i], y));
          if (Object.is(got[i], ref)) continue;
          differ++;
          expect(ulps(got[i], ref), `${x[i]} ** ${y} = ${got[i]}, Math.pow ${ref}`).toBeLessThanOrEqual(1);
        }
        if (process.env.SHOW_ULPS) console.log(`pow ${y}: ${differ} of ${x.length} differ from Math.pow`);
        expect(differ).toBeLessThanOrEqual(3);
        // Shifted by one element, every value moves between vector and scalar-tail lanes.
        const shifted = pow(x.subarray(1), y, perElement);
        expect(shifted.every((v, i) => Object.is(v, got[i + 1]))).toBe(true);
      }
    });
  }
});

// pow with a base of 1 or -1 skips libm (crossEntropy's label check computes (-1) ** label over
// its whole [batch, classes] grid): Math.pow's results exactly, in vector lanes and scalar tails.
describe('pow with a base of 1 or -1', () => {
  let w: WasmBackend;
  beforeAll(async () => {
    w = await createWasmBackend();
  });
  afterAll(() => w.destroy());

  it("equals Math.pow for integral, fractional, huge and special exponents", () => {
    const ys = [0, -0, 1, -1, 2, 3, -3, 4, 7, 0.5, -0.5, 1.5, 2.25, -7.75, 1e-7, 8388607, 8388608, 8388609, 16777215, 16777216, 16777218, 3e38, -3e38, 1e-45, Infinity, -Infinity, NaN];
    for (const base of [1, -1]) {
      // Every exponent at each lane position and in the scalar tail.
      const y = Float32Array.from([...ys, ...ys.slice(1), ...ys.slice(2), ...ys.slice(3)]);
      const a = upload(w, new Float32Array(y.length).fill(base));
      const b = upload(w, y);
      const o = w.alloc(y.length);
      w.ewise('pow', a, b, o, y.length);
      const got = download(w, o);
      for (let i = 0; i < y.length; i++) {
        const want = Math.fround(Math.pow(base, y[i]));
        expect(Object.is(got[i], want), `${base} ** ${y[i]} = ${got[i]}, Math.pow ${want}`).toBe(true);
      }
      [a, b, o].forEach((x) => w.free(x));
    }
  });
});
