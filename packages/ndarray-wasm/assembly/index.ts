// AssemblyScript kernels of the needle WASM backend.
//
// Every kernel works on raw pointers into linear memory that the JavaScript side owns: there is no
// AssemblyScript allocation at run time, so the same module can be instantiated once per thread over
// one shared memory without per-instance heaps getting in each other's way.
//
// Op codes are the numbers src/codes.ts assigns to the op names of @needle/ndarray's backend.ts;
// test/kernels.test.ts runs every op against the CPU backend, so a mismatch fails there.

/** First byte the JavaScript allocator may hand out (static data of the math library lies below). */
export function heapBase(): usize {
  return (__heap_base + 63) & ~(<usize>63);
}

// ---- fill -----------------------------------------------------------------------------------------

export function fill(out: usize, value: f32, n: i32): void {
  const v = f32x4.splat(value);
  const n4 = n & ~3;
  for (let i = 0; i < n4; i += 4) v128.store(out + (<usize>i << 2), v);
  for (let i = n4; i < n; i++) store<f32>(out + (<usize>i << 2), value);
}

// ---- vector constants ----------------------------------------------------------------------------

// Vector constants are loaded from these tables rather than written as v128.const: V8 rebuilds a
// v128.const from immediates, several instructions at every use, where a load from L1 is one
// (exp: 24% faster, NOTES.md section 11). Each entry is one value repeated in four lanes; the
// names are byte offsets.
const KF = memory.data<f32>([
  -104.0, -104.0, -104.0, -104.0,
  89.0, 89.0, 89.0, 89.0,
  1.44269504, 1.44269504, 1.44269504, 1.44269504,
  12582912.0, 12582912.0, 12582912.0, 12582912.0,
  0.693359375, 0.693359375, 0.693359375, 0.693359375,
  -2.12194440e-4, -2.12194440e-4, -2.12194440e-4, -2.12194440e-4,
  1.0 / 5040.0, 1.0 / 5040.0, 1.0 / 5040.0, 1.0 / 5040.0,
  1.0 / 720.0, 1.0 / 720.0, 1.0 / 720.0, 1.0 / 720.0,
  1.0 / 120.0, 1.0 / 120.0, 1.0 / 120.0, 1.0 / 120.0,
  1.0 / 24.0, 1.0 / 24.0, 1.0 / 24.0, 1.0 / 24.0,
  1.0 / 6.0, 1.0 / 6.0, 1.0 / 6.0, 1.0 / 6.0,
  0.5, 0.5, 0.5, 0.5,
  1.0, 1.0, 1.0, 1.0,
  2.0, 2.0, 2.0, 2.0,
  1.17549435e-38, 1.17549435e-38, 1.17549435e-38, 1.17549435e-38,
  8388608.0, 8388608.0, 8388608.0, 8388608.0,
  1.41421356, 1.41421356, 1.41421356, 1.41421356,
  2.0 / 11.0, 2.0 / 11.0, 2.0 / 11.0, 2.0 / 11.0,
  2.0 / 9.0, 2.0 / 9.0, 2.0 / 9.0, 2.0 / 9.0,
  2.0 / 7.0, 2.0 / 7.0, 2.0 / 7.0, 2.0 / 7.0,
  2.0 / 5.0, 2.0 / 5.0, 2.0 / 5.0, 2.0 / 5.0,
  2.0 / 3.0, 2.0 / 3.0, 2.0 / 3.0, 2.0 / 3.0,
  -Infinity, -Infinity, -Infinity, -Infinity,
  NaN, NaN, NaN, NaN,
  Infinity, Infinity, Infinity, Infinity,
  6404582.0 / 10854718875.0, 6404582.0 / 10854718875.0, 6404582.0 / 10854718875.0, 6404582.0 / 10854718875.0,
  929569.0 / 638512875.0, 929569.0 / 638512875.0, 929569.0 / 638512875.0, 929569.0 / 638512875.0,
  21844.0 / 6081075.0, 21844.0 / 6081075.0, 21844.0 / 6081075.0, 21844.0 / 6081075.0,
  1382.0 / 155925.0, 1382.0 / 155925.0, 1382.0 / 155925.0, 1382.0 / 155925.0,
  62.0 / 2835.0, 62.0 / 2835.0, 62.0 / 2835.0, 62.0 / 2835.0,
  17.0 / 315.0, 17.0 / 315.0, 17.0 / 315.0, 17.0 / 315.0,
  2.0 / 15.0, 2.0 / 15.0, 2.0 / 15.0, 2.0 / 15.0,
  1.0 / 3.0, 1.0 / 3.0, 1.0 / 3.0, 1.0 / 3.0,
  -1.0, -1.0, -1.0, -1.0,
  -0.5, -0.5, -0.5, -0.5,
], 16);
const F_EXP_MIN = 0;
const F_EXP_MAX = 16;
const F_LOG2E = 32;
const F_ROUND = 48;
const F_LN2_HI = 64;
const F_LN2_LO = 80;
const F_E7 = 96;
const F_E6 = 112;
const F_E5 = 128;
const F_E4 = 144;
const F_E3 = 160;
const F_HALF = 176;
const F_ONE = 192;
const F_TWO = 208;
const F_MIN_NORMAL = 224;
const F_TWO_23 = 240;
const F_SQRT2 = 256;
const F_L11 = 272;
const F_L9 = 288;
const F_L7 = 304;
const F_L5 = 320;
const F_L3 = 336;
const F_NEG_INF = 352;
const F_NAN = 368;
const F_INF = 384;
const F_T17 = 400;
const F_T15 = 416;
const F_T13 = 432;
const F_T11 = 448;
const F_T9 = 464;
const F_T7 = 480;
const F_T5 = 496;
const F_T3 = 512;
const F_MINUS_ONE = 528;
const F_MINUS_HALF = 544;
const KI = memory.data<i32>([
  0x4b400000, 0x4b400000, 0x4b400000, 0x4b400000,
  127, 127, 127, 127,
  0x007fffff, 0x007fffff, 0x007fffff, 0x007fffff,
  0x3f800000, 0x3f800000, 0x3f800000, 0x3f800000,
  23, 23, 23, 23,
  1, 1, 1, 1,
  0x80000000, 0x80000000, 0x80000000, 0x80000000,
], 16);
const I_ROUND_BITS = 0;
const I_BIAS = 16;
const I_MANTISSA = 32;
const I_ONE_BITS = 48;
const I_23 = 64;
const I_1 = 80;
const I_SIGN = 96;

// ---- elementwise binary -----------------------------------------------------------------------------


// JS semantics of Math.pow, which the reference backend uses: musl's pow returns 1 for pow(1, NaN)
// and pow(+-1, +-Infinity), JavaScript returns NaN.
// The exponents 2 and +-0.5 take the shortcuts of powHalf (and x * x) here too, so an element's
// result does not depend on whether it falls in a vector or in a scalar tail.
function powScalar(x: f32, y: f32): f32 {
  if (y != y) return NaN;
  if (y == 2) return x * x;
  if (y == 0.5 || y == -0.5) {
    if (x == -Infinity) return y > 0 ? Infinity : 0;
    const r = Math.sqrt(<f64>x + 0.0);
    return <f32>(y > 0 ? r : 1.0 / r);
  }
  if (Math.abs(x) == 1.0) {
    // Exact without libm (~30 ns a call): crossEntropy checks that labels are integers by
    // computing (-1) ** label over its [batch, classes] grid (NOTES.md section 23).
    if (Mathf.abs(y) == Infinity) return NaN;
    if (x > 0) return 1;
    if (y != Mathf.floor(y)) return NaN;
    // Every float32 of magnitude 2^24 or more is an even integer.
    return Mathf.abs(y) >= 16777216 || Mathf.floor(y * 0.5) == y * 0.5 ? 1 : -1;
  }
  return <f32>Math.pow(<f64>x, <f64>y);
}

/**
 * Math.pow(x, -0.5) (`reciprocal`) or Math.pow(x, 0.5) of four floats, rounded to float32: in
 * float64, 1 / sqrt(x) and sqrt(x) are within an ulp of the exact values (correctly rounded sqrt and
 * division), as libm's pow is, so after rounding to float32 they agree with it except where the
 * exact value lies within about 2^-29 relative of a float32 rounding boundary. Math.pow's special
 * values: x + 0 turns -0 into +0 (pow(-0, +-0.5) is +Infinity / +0, not sqrt's -0), and -Infinity
 * gives +0 / +Infinity (sqrt's NaN); negative x gives NaN like pow.
 */
function powHalf(x: v128, reciprocal: bool): v128 {
  const zero = f64x2.splat(0);
  const lo = f64x2.add(f64x2.promote_low_f32x4(x), zero);
  const hi = f64x2.add(f64x2.promote_low_f32x4(v128.shuffle<f32>(x, x, 2, 3, 0, 1)), zero);
  let rlo = f64x2.sqrt(lo);
  let rhi = f64x2.sqrt(hi);
  if (reciprocal) {
    const one = f64x2.splat(1);
    rlo = f64x2.div(one, rlo);
    rhi = f64x2.div(one, rhi);
  }
  const r = v128.shuffle<f32>(f32x4.demote_f64x2_zero(rlo), f32x4.demote_f64x2_zero(rhi), 0, 1, 4, 5);
  const atMinusInf = f32x4.eq(x, v128.load(KF, F_NEG_INF));
  return v128.bitselect(reciprocal ? f32x4.splat(0) : v128.load(KF, F_INF), r, atMinusInf);
}

function binaryScalar(op: i32, x: f32, y: f32): f32 {
  switch (op) {
    case 0: return x + y;
    case 1: return x - y;
    case 2: return x * y;
    case 3: return x / y;
    case 4: return powScalar(x, y);
    case 5: return x >= y || x != x ? x : y;
    case 6: return x <= y || x != x ? x : y;
    case 7: return x == y ? 1 : 0;
    case 8: return x != y ? 1 : 0;
    case 9: return x >= y ? 1 : 0;
    case 10: return x > y ? 1 : 0;
    case 11: return x <= y ? 1 : 0;
    case 12: return x < y ? 1 : 0;
    default: return NaN;
  }
}

/**
 * out[i] = a[i] op b[i & bMask]. The scalar form passes a 16-byte block holding the scalar four times
 * and bMask = 15 (in bytes), so one loop per op serves both ewise and scalar.
 */
export function binary(op: i32, a: usize, b: usize, bMask: usize, out: usize, n: i32): void {
  const end = <usize>(n & ~3) << 2;
  const one = v128.load(KF, F_ONE);
  switch (op) {
    case 0:
      for (let o: usize = 0; o < end; o += 16) v128.store(out + o, f32x4.add(v128.load(a + o), v128.load(b + (o & bMask))));
      break;
    case 1:
      for (let o: usize = 0; o < end; o += 16) v128.store(out + o, f32x4.sub(v128.load(a + o), v128.load(b + (o & bMask))));
      break;
    case 2:
      for (let o: usize = 0; o < end; o += 16) v128.store(out + o, f32x4.mul(v128.load(a + o), v128.load(b + (o & bMask))));
      break;
    case 3:
      for (let o: usize = 0; o < end; o += 16) v128.store(out + o, f32x4.div(v128.load(a + o), v128.load(b + (o & bMask))));
      break;
    case 5:
      // Not f32x4.max: the reference keeps x on ties (-0 vs +0) and returns the NaN operand.
      for (let o: usize = 0; o < end; o += 16) {
        const x = v128.load(a + o);
        const y = v128.load(b + (o & bMask));
        v128.store(out + o, v128.bitselect(x, y, v128.or(f32x4.ge(x, y), f32x4.ne(x, x))));
      }
      break;
    case 6:
      for (let o: usize = 0; o < end; o += 16) {
        const x = v128.load(a + o);
        const y = v128.load(b + (o & bMask));
        v128.store(out + o, v128.bitselect(x, y, v128.or(f32x4.le(x, y), f32x4.ne(x, x))));
      }
      break;
    case 7:
      for (let o: usize = 0; o < end; o += 16) v128.store(out + o, v128.and(f32x4.eq(v128.load(a + o), v128.load(b + (o & bMask))), one));
      break;
    case 8:
      for (let o: usize = 0; o < end; o += 16) v128.store(out + o, v128.and(f32x4.ne(v128.load(a + o), v128.load(b + (o & bMask))), one));
      break;
    case 9:
      for (let o: usize = 0; o < end; o += 16) v128.store(out + o, v128.and(f32x4.ge(v128.load(a + o), v128.load(b + (o & bMask))), one));
      break;
    case 10:
      for (let o: usize = 0; o < end; o += 16) v128.store(out + o, v128.and(f32x4.gt(v128.load(a + o), v128.load(b + (o & bMask))), one));
      break;
    case 11:
      for (let o: usize = 0; o < end; o += 16) v128.store(out + o, v128.and(f32x4.le(v128.load(a + o), v128.load(b + (o & bMask))), one));
      break;
    case 12:
      for (let o: usize = 0; o < end; o += 16) v128.store(out + o, v128.and(f32x4.lt(v128.load(a + o), v128.load(b + (o & bMask))), one));
      break;
    case 4: {
      // Vectors whose four exponents are all 2, 0.5 or -0.5 (squares, square roots and the
      // reciprocal square roots of batch and layer norms: a program's constant exponent is a block
      // of copies) take exact shortcuts; any other vector goes through libm lane by lane (~30 ns an
      // element, NOTES.md section 22).
      const two = v128.load(KF, F_TWO);
      const half = v128.load(KF, F_HALF);
      const minusHalf = v128.load(KF, F_MINUS_HALF);
      for (let o: usize = 0; o < end; o += 16) {
        const x = v128.load(a + o);
        const y = v128.load(b + (o & bMask));
        if (i32x4.all_true(f32x4.eq(y, two))) {
          // x * x equals Math.pow(x, 2) rounded to float32 (the float64 square of a float32 is exact).
          v128.store(out + o, f32x4.mul(x, x));
        } else if (i32x4.all_true(f32x4.eq(y, minusHalf))) {
          v128.store(out + o, powHalf(x, true));
        } else if (i32x4.all_true(f32x4.eq(y, half))) {
          v128.store(out + o, powHalf(x, false));
        } else {
          for (let j: usize = 0; j < 16; j += 4) store<f32>(out + o + j, powScalar(load<f32>(a + o + j), load<f32>(b + ((o + j) & bMask))));
        }
      }
      break;
    }
    default:
      for (let o: usize = 0; o < end; o += 4) {
        store<f32>(out + o, binaryScalar(op, load<f32>(a + o), load<f32>(b + (o & bMask))));
      }
  }
  const total = <usize>n << 2;
  for (let o = end; o < total; o += 4) store<f32>(out + o, binaryScalar(op, load<f32>(a + o), load<f32>(b + (o & bMask))));
}

// ---- f32x4 transcendentals -------------------------------------------------------------------------
//
// Four lanes at a time, within a few float32 ulps of the float64 libm results the reference rounds
// (test/kernels.test.ts bounds the error); NaN, infinities, signed zeros and subnormals follow
// Math.exp / Math.log / Math.tanh.

// exp(x) = 2^n * e^r with n = round(x / ln 2) and |r| <= ln2 / 2; e^r by its Taylor series to r^7
// (truncation < 1e-8 relative). 2^n is applied as two halves, so results that are subnormal or
// overflow come out as such instead of wrapping the exponent bits.
function expv(x: v128): v128 {
  // Beyond these bounds the result is 0 or +Infinity anyway; clamping keeps n in range. pmin/pmax
  // (one instruction each, unlike min/max) let NaN through because every comparison with it fails.
  const xc = f32x4.pmin(f32x4.pmax(x, v128.load(KF, F_EXP_MIN)), v128.load(KF, F_EXP_MAX));
  // Adding 1.5 * 2^23 rounds to an integer (ties to even) that then sits in the low mantissa bits:
  // one add gives both n as a float and, by subtracting the constant's bits, n as an integer.
  const t = f32x4.add(f32x4.mul(xc, v128.load(KF, F_LOG2E)), v128.load(KF, F_ROUND));
  const nf = f32x4.sub(t, v128.load(KF, F_ROUND));
  // Cody-Waite: ln2 = 0.693359375 (exact in 9 bits, so n * hi is exact) - 2.12194440e-4.
  const r = f32x4.sub(f32x4.sub(xc, f32x4.mul(nf, v128.load(KF, F_LN2_HI))), f32x4.mul(nf, v128.load(KF, F_LN2_LO)));
  let p = v128.load(KF, F_E7);
  p = f32x4.add(f32x4.mul(p, r), v128.load(KF, F_E6));
  p = f32x4.add(f32x4.mul(p, r), v128.load(KF, F_E5));
  p = f32x4.add(f32x4.mul(p, r), v128.load(KF, F_E4));
  p = f32x4.add(f32x4.mul(p, r), v128.load(KF, F_E3));
  p = f32x4.add(f32x4.mul(p, r), v128.load(KF, F_HALF));
  p = f32x4.add(f32x4.mul(p, r), v128.load(KF, F_ONE));
  p = f32x4.add(f32x4.mul(p, r), v128.load(KF, F_ONE));
  const n = i32x4.sub(t, v128.load(KI, I_ROUND_BITS));
  const n1 = i32x4.shr_s(n, 1);
  const n2 = i32x4.sub(n, n1);
  const bias = v128.load(KI, I_BIAS);
  const s1 = i32x4.shl(i32x4.add(n1, bias), 23);
  const s2 = i32x4.shl(i32x4.add(n2, bias), 23);
  return f32x4.mul(f32x4.mul(p, s1), s2);
}

// log(x) = e ln2 + log(m), x = m 2^e with m in [sqrt(1/2), sqrt(2)); log(m) = 2 atanh(s) with
// s = (m - 1) / (m + 1), |s| <= 0.172, as an odd series to s^11 (truncation < 1e-9).
function logv(x: v128): v128 {
  // Subnormals: scale by 2^23 first so the exponent field is meaningful.
  const tiny = f32x4.lt(x, v128.load(KF, F_MIN_NORMAL));
  const xs = v128.bitselect(f32x4.mul(x, v128.load(KF, F_TWO_23)), x, tiny);
  const bits = xs;
  let e = i32x4.sub(i32x4.shr_u(bits, 23), v128.load(KI, I_BIAS));
  e = v128.bitselect(i32x4.sub(e, v128.load(KI, I_23)), e, tiny);
  let m = v128.or(v128.and(bits, v128.load(KI, I_MANTISSA)), v128.load(KI, I_ONE_BITS));
  const big = f32x4.gt(m, v128.load(KF, F_SQRT2));
  m = v128.bitselect(f32x4.mul(m, v128.load(KF, F_HALF)), m, big);
  e = v128.bitselect(i32x4.add(e, v128.load(KI, I_1)), e, big);
  const ef = f32x4.convert_i32x4_s(e);
  const s = f32x4.div(f32x4.sub(m, v128.load(KF, F_ONE)), f32x4.add(m, v128.load(KF, F_ONE)));
  const s2 = f32x4.mul(s, s);
  let q = v128.load(KF, F_L11);
  q = f32x4.add(f32x4.mul(q, s2), v128.load(KF, F_L9));
  q = f32x4.add(f32x4.mul(q, s2), v128.load(KF, F_L7));
  q = f32x4.add(f32x4.mul(q, s2), v128.load(KF, F_L5));
  q = f32x4.add(f32x4.mul(q, s2), v128.load(KF, F_L3));
  // 2s + s^3 q, then + e ln2 (split as in expv so e * hi is exact).
  const logm = f32x4.add(f32x4.add(s, s), f32x4.mul(f32x4.mul(s, s2), q));
  let r = f32x4.add(f32x4.mul(ef, v128.load(KF, F_LN2_HI)), f32x4.add(logm, f32x4.mul(ef, v128.load(KF, F_LN2_LO))));
  const zero = f32x4.splat(0);
  r = v128.bitselect(v128.load(KF, F_NEG_INF), r, f32x4.eq(x, zero));
  r = v128.bitselect(v128.load(KF, F_NAN), r, f32x4.lt(x, zero));
  // +Infinity and NaN are their own logarithms.
  return v128.bitselect(x, r, v128.or(f32x4.eq(x, v128.load(KF, F_INF)), f32x4.ne(x, x)));
}

// tanh: for |x| < 0.5 its odd Taylor series to x^17 (truncation < 1e-8 relative); above,
// 1 - 2 / (e^{2|x|} + 1), where the subtraction loses at most ~1 bit.
function tanhv(x: v128): v128 {
  const ax = f32x4.abs(x);
  const small = tanhSeries(x);
  const e = expv(f32x4.add(ax, ax));
  const large = f32x4.sub(v128.load(KF, F_ONE), f32x4.div(v128.load(KF, F_TWO), f32x4.add(e, v128.load(KF, F_ONE))));
  const magnitude = f32x4.abs(v128.bitselect(small, large, f32x4.lt(ax, v128.load(KF, F_HALF))));
  // Copying x's sign bit also keeps tanh(-0) = -0, which the series' arithmetic would turn into +0.
  return v128.or(magnitude, v128.and(x, v128.load(KI, I_SIGN)));
}

/** tanhv's series for |x| < 0.5. */
function tanhSeries(x: v128): v128 {
  const x2 = f32x4.mul(x, x);
  let p = v128.load(KF, F_T17);
  p = f32x4.sub(f32x4.mul(p, x2), v128.load(KF, F_T15));
  p = f32x4.add(f32x4.mul(p, x2), v128.load(KF, F_T13));
  p = f32x4.sub(f32x4.mul(p, x2), v128.load(KF, F_T11));
  p = f32x4.add(f32x4.mul(p, x2), v128.load(KF, F_T9));
  p = f32x4.sub(f32x4.mul(p, x2), v128.load(KF, F_T7));
  p = f32x4.add(f32x4.mul(p, x2), v128.load(KF, F_T5));
  p = f32x4.sub(f32x4.mul(p, x2), v128.load(KF, F_T3));
  return f32x4.add(x, f32x4.mul(f32x4.mul(x, x2), p));
}

// ---- elementwise unary -----------------------------------------------------------------------------

function signv(x: v128): v128 {
  const zero = f32x4.splat(0);
  // 0, -0 and NaN fail both tests and pass through unchanged.
  return v128.bitselect(v128.load(KF, F_ONE), v128.bitselect(v128.load(KF, F_MINUS_ONE), x, f32x4.lt(x, zero)), f32x4.gt(x, zero));
}

function unaryv(op: i32, x: v128): v128 {
  switch (op) {
    case 0: return f32x4.neg(x);
    case 1: return logv(x);
    case 2: return expv(x);
    case 3: return tanhv(x);
    case 4: return f32x4.sqrt(x);
    case 5: return f32x4.abs(x);
    case 6: return signv(x);
    default: return f32x4.splat(NaN);
  }
}

export function unary(op: i32, a: usize, out: usize, n: i32): void {
  const end = <usize>(n & ~3) << 2;
  // One loop per op, so the op's code is inlined into its loop.
  switch (op) {
    case 0:
      for (let o: usize = 0; o < end; o += 16) v128.store(out + o, f32x4.neg(v128.load(a + o)));
      break;
    case 1:
      for (let o: usize = 0; o < end; o += 16) v128.store(out + o, logv(v128.load(a + o)));
      break;
    case 2:
      for (let o: usize = 0; o < end; o += 16) v128.store(out + o, expv(v128.load(a + o)));
      break;
    case 3:
      for (let o: usize = 0; o < end; o += 16) v128.store(out + o, tanhv(v128.load(a + o)));
      break;
    case 4:
      for (let o: usize = 0; o < end; o += 16) v128.store(out + o, f32x4.sqrt(v128.load(a + o)));
      break;
    case 5:
      for (let o: usize = 0; o < end; o += 16) v128.store(out + o, f32x4.abs(v128.load(a + o)));
      break;
    default:
      for (let o: usize = 0; o < end; o += 16) v128.store(out + o, unaryv(op, v128.load(a + o)));
  }
  // The last n % 4 elements go through the same vector code (lane loads and stores, never past the
  // end), so an element's result does not depend on its position.
  const rest = n & 3;
  if (rest > 0) {
    const p = a + end;
    let v = v128.load32_zero(p);
    if (rest > 1) v = v128.load32_lane(p, v, 1, 4);
    if (rest > 2) v = v128.load32_lane(p, v, 2, 8);
    const r = unaryv(op, v);
    const q = out + end;
    v128.store32_lane(q, r, 0);
    if (rest > 1) v128.store32_lane(q, r, 1, 4);
    if (rest > 2) v128.store32_lane(q, r, 2, 8);
  }
}

/** out[i] = cond[i] != 0 ? x[i] : y[i]; NaN != 0, so a NaN condition selects x. */
export function where(cond: usize, x: usize, y: usize, out: usize, n: i32): void {
  const end = <usize>(n & ~3) << 2;
  const zero = f32x4.splat(0);
  for (let o: usize = 0; o < end; o += 16) {
    const mask = f32x4.ne(v128.load(cond + o), zero);
    v128.store(out + o, v128.bitselect(v128.load(x + o), v128.load(y + o), mask));
  }
  const total = <usize>n << 2;
  for (let o = end; o < total; o += 4) store<f32>(out + o, load<f32>(cond + o) != 0 ? load<f32>(x + o) : load<f32>(y + o));
}

// ---- elementwise programs ------------------------------------------------------------------------

/** Elements per block of a program: a step's block is 1 KiB, so a whole program's blocks stay in L1. */
export const PROGRAM_BLOCK = 256;

/**
 * Run an elementwise program over elements [start, start + n). The program is `nsteps` records of
 * four i32 words at `code`: [kind, a, b, c], kind 0 = input (a: the input's byte address at element
 * 0), 1 = splat (a: the f32 bits; scalars and constants), 2 = binary (a: op code, b, c: operand
 * steps), 3 = unary (a: op code, b: operand step), 4 = where (a: cond, b: x, c: y steps), 5 = strided
 * input (a: the buffer's byte address, b: the byte address of its layout record). Outputs are
 * `nouts` records of four words [step, byte address of the buffer, layout record or 0 (compact), 0]
 * at `outs`. `layout` (0 when nothing is strided) holds the iteration shape: [ndim, shape...]; a
 * layout record is [offset, strides...] in elements. `regs` is this thread's area: a table of nsteps
 * block addresses, then nsteps blocks of PROGRAM_BLOCK floats (16-byte aligned), then ndim i32s of
 * index scratch.
 *
 * Each step runs the very kernel (binary, unary, where) its unfused launch would, over one block, so
 * the results are the same bit for bit; strided inputs are gathered into their block first and
 * strided outputs scattered from it after the block's last step, so an output may be an input's
 * buffer (element i is read before it is written).
 */
export function program(code: usize, nsteps: i32, outs: usize, nouts: i32, regs: usize, start: i32, n: i32, layout: usize): void {
  const table = regs;
  const blocks = (regs + (<usize>nsteps << 2) + 15) & ~(<usize>15);
  const blockBytes = <usize>PROGRAM_BLOCK << 2;
  const idx = blocks + <usize>nsteps * blockBytes;
  for (let s = 0; s < nsteps; s++) {
    const w = code + (<usize>s << 4);
    const own = blocks + <usize>s * blockBytes;
    store<usize>(table + (<usize>s << 2), own);
    if (load<i32>(w) == 1) fill(own, reinterpret<f32>(load<i32>(w, 4)), PROGRAM_BLOCK);
  }
  const end = start + n;
  for (let base = start; base < end; base += PROGRAM_BLOCK) {
    const m = min(PROGRAM_BLOCK, end - base);
    const offset = <usize>base << 2;
    for (let s = 0; s < nsteps; s++) {
      const w = code + (<usize>s << 4);
      const kind = load<i32>(w);
      const a = load<i32>(w, 4);
      const b = load<i32>(w, 8);
      const c = load<i32>(w, 12);
      const dst = table + (<usize>s << 2);
      switch (kind) {
        case 0:
          store<usize>(dst, <usize>a + offset);
          break;
        case 2:
          binary(a, load<usize>(table + (<usize>b << 2)), load<usize>(table + (<usize>c << 2)), -1, blocks + <usize>s * blockBytes, m);
          break;
        case 3:
          unary(a, load<usize>(table + (<usize>b << 2)), blocks + <usize>s * blockBytes, m);
          break;
        case 4:
          where(load<usize>(table + (<usize>a << 2)), load<usize>(table + (<usize>b << 2)), load<usize>(table + (<usize>c << 2)), blocks + <usize>s * blockBytes, m);
          break;
        case 5:
          stridedBlock(false, <usize>a, layout, <usize>b, base, m, blocks + <usize>s * blockBytes, idx);
          break;
        default:
          break;
      }
    }
    // Outputs never share a buffer, but an output's value may be read from an input that is another
    // output's buffer: a program whose outputs swap two inputs must copy both blocks out first.
    for (let k = 0; k < nouts; k++) {
      const step = load<i32>(outs + (<usize>k << 4));
      const src = load<usize>(table + (<usize>step << 2));
      if (src >= blocks && src < blocks + <usize>nsteps * blockBytes) continue;
      const own = blocks + <usize>step * blockBytes;
      memory.copy(own, src, <usize>m << 2);
      store<usize>(table + (<usize>step << 2), own);
    }
    for (let k = 0; k < nouts; k++) {
      const rec = outs + (<usize>k << 4);
      const step = load<i32>(rec);
      const buf = <usize>load<i32>(rec, 4);
      const lay = <usize>load<i32>(rec, 8);
      const value = load<usize>(table + (<usize>step << 2));
      if (lay != 0) stridedBlock(true, buf, layout, lay, base, m, value, idx);
      else memory.copy(buf + offset, value, <usize>m << 2);
    }
  }
}

/**
 * Elements [base, base + m) of one strided operand (layout record `rec` over the iteration shape at
 * `layout`) gathered into the compact block `blk`, or scattered from it. Walks runs along the last
 * axis (a plain copy where its stride is 1) and carries into the leading axes like an odometer.
 */
function stridedBlock(scatter: bool, buf: usize, layout: usize, rec: usize, base: i32, m: i32, blk: usize, idx: usize): void {
  const ndim = load<i32>(layout);
  const shape = layout + 4;
  const strides = rec + 4;
  let pos = odometerStart(shape, strides, load<i32>(rec), base, ndim - 1, idx);
  const last = ndim - 1;
  const lastLen = load<i32>(shape + (<usize>last << 2));
  const lastStride = load<i32>(strides + (<usize>last << 2));
  let k = 0;
  let i = load<i32>(idx + (<usize>last << 2));
  while (k < m) {
    const run = min(lastLen - i, m - k);
    const q = blk + (<usize>k << 2);
    const v = buf + (<usize>pos << 2);
    if (lastStride == 1) {
      if (scatter) copyFloats(v, q, run);
      else copyFloats(q, v, run);
    } else if (lastStride == 0 && !scatter) {
      // Broadcast along the last axis (a per-row value): one element repeated.
      fill(q, load<f32>(v), run);
    } else if (scatter) {
      for (let j = 0; j < run; j++) store<f32>(v + (<usize>(j * lastStride) << 2), load<f32>(q + (<usize>j << 2)));
    } else {
      for (let j = 0; j < run; j++) store<f32>(q + (<usize>j << 2), load<f32>(v + (<usize>(j * lastStride) << 2)));
    }
    k += run;
    if (k >= m) break;
    // The row ended: back to its start, then one step along the leading axes.
    pos -= i * lastStride;
    i = 0;
    pos = odometerStep(shape, strides, last - 1, idx, pos);
  }
}

/**
 * The element offset of flat index `flat` over axes 0..top of an iteration shape (`shape`, and an
 * operand's `strides`, starting from offset `pos`); each axis's index is stored at `idx`.
 */
function odometerStart(shape: usize, strides: usize, pos: i32, flat: i32, top: i32, idx: usize): i32 {
  let rem = flat;
  for (let d = top; d >= 0; d--) {
    const len = load<i32>(shape + (<usize>d << 2));
    const i = rem % len;
    rem = rem / len;
    store<i32>(idx + (<usize>d << 2), i);
    pos += i * load<i32>(strides + (<usize>d << 2));
  }
  return pos;
}

/** One step of the indices at `idx` along axes 0..top (axis `top` fastest): the new offset. */
function odometerStep(shape: usize, strides: usize, top: i32, idx: usize, pos: i32): i32 {
  for (let d = top; d >= 0; d--) {
    const ip = idx + (<usize>d << 2);
    const stride = load<i32>(strides + (<usize>d << 2));
    const next = load<i32>(ip) + 1;
    if (next < load<i32>(shape + (<usize>d << 2))) {
      store<i32>(ip, next);
      return pos + stride;
    }
    store<i32>(ip, 0);
    pos -= stride * (next - 1);
  }
  return pos;
}

// ---- reductions ------------------------------------------------------------------------------------

// Sums accumulate in float64 like the reference backend, two f64x2 lanes per f32x4 load.
function sumBlock(p: usize, n: i32): f64 {
  let acc0 = f64x2.splat(0);
  let acc1 = f64x2.splat(0);
  const end = <usize>(n & ~3) << 2;
  for (let o: usize = 0; o < end; o += 16) {
    const v = v128.load(p + o);
    acc0 = f64x2.add(acc0, f64x2.promote_low_f32x4(v));
    acc1 = f64x2.add(acc1, f64x2.promote_low_f32x4(v128.shuffle<f32>(v, v, 2, 3, 0, 1)));
  }
  const acc = f64x2.add(acc0, acc1);
  let s = f64x2.extract_lane(acc, 0) + f64x2.extract_lane(acc, 1);
  const total = <usize>n << 2;
  for (let o = end; o < total; o += 4) s += <f64>load<f32>(p + o);
  return s;
}

/**
 * Float64 sums of units [u0, u1) of a row-major array of rows of n elements, each row cut into
 * chunks of `chunk` elements (its last chunk shorter): unit u is chunk u % perRow of row u / perRow,
 * its sum stored at out + 8u. Sums of long rows add these in order, so the result is the same
 * however the units are divided between threads (src/backend.ts, longSums).
 */
export function sumChunks(a: usize, n: i32, chunk: i32, u0: i32, u1: i32, out: usize): void {
  const perRow = (n + chunk - 1) / chunk;
  for (let u = u0; u < u1; u++) {
    const row = u / perRow;
    const start = (u - row * perRow) * chunk;
    store<f64>(out + (<usize>u << 3), sumBlock(a + ((<usize>row * <usize>n + <usize>start) << 2), min(chunk, n - start)));
  }
}

/**
 * Column sums: out[c] = the sum of a[r * rowStride + c] over rows r in [0, rows), for columns
 * [c0, c1), each the very float64 sum sumBlock computes over that column gathered into a row (four
 * partial sums by r % 4, combined as (p0 + p2) + (p1 + p3), then the rows past the last multiple of
 * 4 in order), so the result is the gather-then-row-sum's bit for bit, on any split of the columns.
 * A reduction over a leading axis (a linear layer's bias gradient, batch-norm statistics) reads
 * the rows as they lie instead of gathering the transposed view with a 2 KiB stride (NOTES.md
 * section 23). The partial sums live at `partials` (32 bytes per column, zeroed here); each group
 * of 8 rows (4 at the end) is added to them along the rows, four columns (8 f64x2 partials) at a
 * time, so the rows stream through the cache in order. (Walking down the columns instead, 4 wide,
 * ran at half this speed: rows 2 KiB apart fall into two L1 sets, so every load missed.)
 */
export function sumColumns(a: usize, rowStride: i32, rows: i32, c0: i32, c1: i32, partials: usize, out: usize): void {
  const stride = <usize>rowStride << 2;
  const r4 = rows & ~3;
  const c4 = c0 + ((c1 - c0) & ~3);
  memory.fill(partials + (<usize>c0 << 5), 0, <usize>(c1 - c0) << 5);
  for (let r = 0; r < r4; ) {
    const group = r + 8 <= r4 ? 8 : 4;
    const row = a + <usize>r * stride;
    for (let c = c0; c < c4; c += 4) {
      const q = partials + (<usize>c << 5);
      const p = row + (<usize>c << 2);
      let a0l = v128.load(q, 0);
      let a0h = v128.load(q, 16);
      let a1l = v128.load(q, 32);
      let a1h = v128.load(q, 48);
      let a2l = v128.load(q, 64);
      let a2h = v128.load(q, 80);
      let a3l = v128.load(q, 96);
      let a3h = v128.load(q, 112);
      for (let g = 0; g < group; g += 4) {
        const pg = p + <usize>g * stride;
        let v = v128.load(pg);
        a0l = f64x2.add(a0l, f64x2.promote_low_f32x4(v));
        a0h = f64x2.add(a0h, f64x2.promote_low_f32x4(v128.shuffle<f32>(v, v, 2, 3, 0, 1)));
        v = v128.load(pg + stride);
        a1l = f64x2.add(a1l, f64x2.promote_low_f32x4(v));
        a1h = f64x2.add(a1h, f64x2.promote_low_f32x4(v128.shuffle<f32>(v, v, 2, 3, 0, 1)));
        v = v128.load(pg + 2 * stride);
        a2l = f64x2.add(a2l, f64x2.promote_low_f32x4(v));
        a2h = f64x2.add(a2h, f64x2.promote_low_f32x4(v128.shuffle<f32>(v, v, 2, 3, 0, 1)));
        v = v128.load(pg + 3 * stride);
        a3l = f64x2.add(a3l, f64x2.promote_low_f32x4(v));
        a3h = f64x2.add(a3h, f64x2.promote_low_f32x4(v128.shuffle<f32>(v, v, 2, 3, 0, 1)));
      }
      v128.store(q, a0l, 0);
      v128.store(q, a0h, 16);
      v128.store(q, a1l, 32);
      v128.store(q, a1h, 48);
      v128.store(q, a2l, 64);
      v128.store(q, a2h, 80);
      v128.store(q, a3l, 96);
      v128.store(q, a3h, 112);
    }
    // The last columns (fewer than 4), one at a time: partial r % 4 at q + 8 * (r % 4).
    for (let c = c4; c < c1; c++) {
      const q = partials + (<usize>c << 5);
      const p = row + (<usize>c << 2);
      for (let g = 0; g < group; g++) {
        const at = q + (<usize>(g & 3) << 3);
        store<f64>(at, load<f64>(at) + <f64>load<f32>(p + <usize>g * stride));
      }
    }
    r += group;
  }
  const tail = a + <usize>r4 * stride;
  for (let c = c0; c < c4; c += 4) {
    const q = partials + (<usize>c << 5);
    // Lanes: columns c, c + 1 (l) and c + 2, c + 3 (h); partials 0..3 at 0, 32, 64, 96.
    let sl = f64x2.add(f64x2.add(v128.load(q, 0), v128.load(q, 64)), f64x2.add(v128.load(q, 32), v128.load(q, 96)));
    let sh = f64x2.add(f64x2.add(v128.load(q, 16), v128.load(q, 80)), f64x2.add(v128.load(q, 48), v128.load(q, 112)));
    let p = tail + (<usize>c << 2);
    for (let r = r4; r < rows; r++) {
      const v = v128.load(p);
      sl = f64x2.add(sl, f64x2.promote_low_f32x4(v));
      sh = f64x2.add(sh, f64x2.promote_low_f32x4(v128.shuffle<f32>(v, v, 2, 3, 0, 1)));
      p += stride;
    }
    v128.store(out + (<usize>c << 2), v128.shuffle<f32>(f32x4.demote_f64x2_zero(sl), f32x4.demote_f64x2_zero(sh), 0, 1, 4, 5));
  }
  for (let c = c4; c < c1; c++) {
    const q = partials + (<usize>c << 5);
    let s = (load<f64>(q, 0) + load<f64>(q, 16)) + (load<f64>(q, 8) + load<f64>(q, 24));
    let p = tail + (<usize>c << 2);
    for (let r = r4; r < rows; r++) {
      s += <f64>load<f32>(p);
      p += stride;
    }
    store<f32>(out + (<usize>c << 2), <f32>s);
  }
}

// max/min: lane-wise "v beats m or v is NaN", so NaN sticks, then lanes combine in order.
function extremeBlock(p: usize, n: i32, isMax: bool): f32 {
  let m: f32 = isMax ? -Infinity : Infinity;
  const end = <usize>(n & ~3) << 2;
  if (end > 0) {
    let mv = f32x4.splat(m);
    if (isMax) {
      for (let o: usize = 0; o < end; o += 16) {
        const v = v128.load(p + o);
        mv = v128.bitselect(v, mv, v128.or(f32x4.gt(v, mv), f32x4.ne(v, v)));
      }
    } else {
      for (let o: usize = 0; o < end; o += 16) {
        const v = v128.load(p + o);
        mv = v128.bitselect(v, mv, v128.or(f32x4.lt(v, mv), f32x4.ne(v, v)));
      }
    }
    m = combine(m, f32x4.extract_lane(mv, 0), isMax);
    m = combine(m, f32x4.extract_lane(mv, 1), isMax);
    m = combine(m, f32x4.extract_lane(mv, 2), isMax);
    m = combine(m, f32x4.extract_lane(mv, 3), isMax);
  }
  const total = <usize>n << 2;
  for (let o = end; o < total; o += 4) m = combine(m, load<f32>(p + o), isMax);
  if (m == 0) {
    // Lanes lose the order of equal values; -0 and +0 compare equal, so take the first zero, as the
    // sequential reference does.
    for (let o: usize = 0; o < total; o += 4) {
      const v = load<f32>(p + o);
      if (v == 0) return v;
    }
  }
  return m;
}

function combine(m: f32, v: f32, isMax: bool): f32 {
  if (m != m) return m;
  if (v != v) return v;
  return (isMax ? v > m : v < m) ? v : m;
}

function argBlock(p: usize, n: i32, isMax: bool): f32 {
  let best = 0;
  let b = load<f32>(p);
  if (b != b) return 0;
  for (let i = 1; i < n; i++) {
    const v = load<f32>(p + (<usize>i << 2));
    if (v != v) return <f32>i;
    if (isMax ? v > b : v < b) {
      best = i;
      b = v;
    }
  }
  return <f32>best;
}

export function reduce(op: i32, a: usize, out: usize, outSize: i32, reduceSize: i32): void {
  const rowBytes = <usize>reduceSize << 2;
  let j = 0;
  if (reduceSize == 4 && op >= 1 && op <= 4) {
    j = outSize & ~3;
    rowsOf4(op, a, out, j);
  }
  for (; j < outSize; j++) {
    const p = a + <usize>j * rowBytes;
    let r: f32;
    switch (op) {
      case 0: r = <f32>sumBlock(p, reduceSize); break;
      case 1: r = extremeBlock(p, reduceSize, true); break;
      case 2: r = extremeBlock(p, reduceSize, false); break;
      case 3: r = reduceSize > 0 ? argBlock(p, reduceSize, true) : 0; break;
      case 4: r = reduceSize > 0 ? argBlock(p, reduceSize, false) : 0; break;
      default: r = NaN;
    }
    store<f32>(out + (<usize>j << 2), r);
  }
}

// max/min/argmax/argmin of rows of 4 (2 x 2 pooling windows), four rows at a time: the 4 x 4 block
// is transposed so lane i holds row i, then the elements are combined in row order exactly as the
// sequential loops above do (NaN sticks, ties keep the first), one lane per row. A call per row of 4
// cost ~60 instructions (NOTES.md section 16).
function rowsOf4(op: i32, a: usize, out: usize, rows: i32): void {
  const isMax = op == 1 || op == 3;
  const isArg = op >= 3;
  for (let j = 0; j < rows; j += 4) {
    const p = a + (<usize>j << 4);
    const v0 = v128.load(p);
    const v1 = v128.load(p, 16);
    const v2 = v128.load(p, 32);
    const v3 = v128.load(p, 48);
    const t0 = i32x4.shuffle(v0, v1, 0, 4, 1, 5);
    const t1 = i32x4.shuffle(v2, v3, 0, 4, 1, 5);
    const t2 = i32x4.shuffle(v0, v1, 2, 6, 3, 7);
    const t3 = i32x4.shuffle(v2, v3, 2, 6, 3, 7);
    let m = i64x2.shuffle(t0, t1, 0, 2);
    const e1 = i64x2.shuffle(t0, t1, 1, 3);
    const e2 = i64x2.shuffle(t2, t3, 0, 2);
    const e3 = i64x2.shuffle(t2, t3, 1, 3);
    let r: v128;
    if (isArg) {
      // The first NaN wins (its index is the result), else the first strict improvement.
      let done = f32x4.ne(m, m);
      let best = i32x4.splat(0);
      let nan = f32x4.ne(e1, e1);
      let take = v128.andnot(v128.or(nan, isMax ? f32x4.gt(e1, m) : f32x4.lt(e1, m)), done);
      m = v128.bitselect(e1, m, take);
      best = v128.bitselect(i32x4.splat(1), best, take);
      done = v128.or(done, nan);
      nan = f32x4.ne(e2, e2);
      take = v128.andnot(v128.or(nan, isMax ? f32x4.gt(e2, m) : f32x4.lt(e2, m)), done);
      m = v128.bitselect(e2, m, take);
      best = v128.bitselect(i32x4.splat(2), best, take);
      done = v128.or(done, nan);
      nan = f32x4.ne(e3, e3);
      take = v128.andnot(v128.or(nan, isMax ? f32x4.gt(e3, m) : f32x4.lt(e3, m)), done);
      best = v128.bitselect(i32x4.splat(3), best, take);
      r = f32x4.convert_i32x4_s(best);
    } else {
      // combine(m, v): a NaN m stays, a NaN v is taken, else v if strictly better.
      m = v128.bitselect(e1, m, v128.and(v128.or(isMax ? f32x4.gt(e1, m) : f32x4.lt(e1, m), f32x4.ne(e1, e1)), f32x4.eq(m, m)));
      m = v128.bitselect(e2, m, v128.and(v128.or(isMax ? f32x4.gt(e2, m) : f32x4.lt(e2, m), f32x4.ne(e2, e2)), f32x4.eq(m, m)));
      m = v128.bitselect(e3, m, v128.and(v128.or(isMax ? f32x4.gt(e3, m) : f32x4.lt(e3, m), f32x4.ne(e3, e3)), f32x4.eq(m, m)));
      r = m;
    }
    v128.store(out + (<usize>j << 2), r);
  }
}

/**
 * logsumexp of each row of `vals` (outSize rows of reduceSize floats) into out, with `tmp` (room for
 * one row) holding a row's exp(v - m): exactly the composition the frontend falls back to on this
 * backend (PROGRAM_REDUCE_OPS): m = the row's `reduce` max; m itself where it is not finite; else
 * m + log(s), s the row's `reduce` sum of exp(v - m), through the same exp, log and sum code as the
 * `unary`, `binary` and `reduce` kernels (each lane of expv/logv is independent of the others, so
 * per-element results do not depend on where an element sits in a vector). Rows longer than the
 * JavaScript side's limit take the composed path there, where `reduce` may split a sum.
 */
export function logsumexpRows(vals: usize, out: usize, outSize: i32, reduceSize: i32, tmp: usize): void {
  const rowBytes = <usize>reduceSize << 2;
  const end = <usize>(reduceSize & ~3) << 2;
  const rest = reduceSize & 3;
  for (let j = 0; j < outSize; j++) {
    const p = vals + <usize>j * rowBytes;
    const m = extremeBlock(p, reduceSize, true);
    // NaN and the infinities are their own result (m - m is NaN for each, 0 for every finite m).
    if (m - m != 0) {
      store<f32>(out + (<usize>j << 2), m);
      continue;
    }
    const mv = f32x4.splat(m);
    for (let o: usize = 0; o < end; o += 16) v128.store(tmp + o, expv(f32x4.sub(v128.load(p + o), mv)));
    if (rest > 0) {
      const q = p + end;
      let v = v128.load32_zero(q);
      if (rest > 1) v = v128.load32_lane(q, v, 1, 4);
      if (rest > 2) v = v128.load32_lane(q, v, 2, 8);
      const r = expv(f32x4.sub(v, mv));
      const d = tmp + end;
      v128.store32_lane(d, r, 0);
      if (rest > 1) v128.store32_lane(d, r, 1, 4);
      if (rest > 2) v128.store32_lane(d, r, 2, 8);
    }
    const s = <f32>sumBlock(tmp, reduceSize);
    store<f32>(out + (<usize>j << 2), m + f32x4.extract_lane(logv(f32x4.splat(s)), 0));
  }
}

// ---- strided copies --------------------------------------------------------------------------------

/**
 * Walk a strided view (shape and strides as i32 arrays at `dims`, `dims + 4*ndim`; strides and
 * offset in elements) in row-major order. mode 0: gather view -> compact dst; 1: scatter compact src
 * -> view of dst; 2: set every element of the view of dst to `value`.
 * ndim >= 1; the JS side merges contiguous axes first, so the last axis is as long as possible.
 *
 * The last two axes are copied as one 2-D block per step of the leading axes' odometer, so views
 * with short last axes (an im2col window row of 9 floats, a 2 x 2 pooling window, a 16-channel
 * transpose) pay the odometer once per block rather than once per row (NOTES.md section 16).
 */
export function strided(mode: i32, src: usize, dst: usize, dims: usize, ndim: i32, offset: i32, value: f32, idx: usize): void {
  const strides = dims + (<usize>ndim << 2);
  let total = 1;
  for (let d = 0; d < ndim; d++) total *= load<i32>(dims + (<usize>d << 2));
  if (total == 0) return;
  const last = ndim - 1;
  const cols = load<i32>(dims + (<usize>last << 2));
  const cs = load<i32>(strides + (<usize>last << 2));
  const rows = ndim > 1 ? load<i32>(dims + (<usize>(last - 1) << 2)) : 1;
  const rs = ndim > 1 ? load<i32>(strides + (<usize>(last - 1) << 2)) : 0;
  if (mode != 2 && cs != 1 && ndim > 2) {
    // The axis the view is densest along, if it is not one of the last two: copying it and the
    // last axis as the 2-D block keeps the reads sequential (2 x 2 pooling windows gathered from
    // NHWC data: 16 channels with stride 1 sit third from last).
    let dense = last - 1;
    for (let d = 0; d < last - 1; d++) {
      const n = load<i32>(dims + (<usize>d << 2));
      const st = abs(load<i32>(strides + (<usize>d << 2)));
      if (n > 1 && st < abs(load<i32>(strides + (<usize>dense << 2)))) dense = d;
    }
    if (dense != last - 1 && abs(load<i32>(strides + (<usize>dense << 2))) < abs(cs)) {
      stridedAcross(mode, src, dst, dims, ndim, offset, idx, dense);
      return;
    }
  }
  if (mode != 2 && cs == 1 && cols >= 4 && cols < 16 && ndim >= 3) {
    stridedRuns(mode == 1, src, dst, dims, ndim, offset, idx, total);
    return;
  }
  const outer = ndim - 2;
  for (let d = 0; d < outer; d++) store<i32>(idx + (<usize>d << 2), 0);
  const blockBytes = <usize>(rows * cols) << 2;
  const blocks = total / (rows * cols);
  let base = offset;
  let compactPos: usize = 0;
  for (let b = 0; b < blocks; b++) {
    const view = (mode == 0 ? src : dst) + (<usize>base << 2);
    if (mode == 2) fill2d(view, rows, cols, rs, cs, value);
    else copy2d(mode == 1, view, (mode == 0 ? dst : src) + compactPos, rows, cols, rs, cs);
    compactPos += blockBytes;
    // Odometer step over the leading axes.
    for (let d = outer - 1; d >= 0; d--) {
      const ip = idx + (<usize>d << 2);
      const i = load<i32>(ip) + 1;
      const stride = load<i32>(strides + (<usize>d << 2));
      if (i < load<i32>(dims + (<usize>d << 2))) {
        store<i32>(ip, i);
        base += stride;
        break;
      }
      store<i32>(ip, 0);
      base -= stride * (i - 1);
    }
  }
}

// strided() for short contiguous runs (4 to 15 floats: the im2col windows of an input with few
// channels, runs of 3 x C): three axes per odometer step instead of two, and each run copied as
// whole vectors plus one overlapping the last of them, instead of a block call, an odometer step
// and vector-plus-scalar copies per 2-D block of a few runs (NOTES.md section 64). Copies are
// exact; the overlapping vector rewrites values of its own run only.
function stridedRuns(scatter: bool, src: usize, dst: usize, dims: usize, ndim: i32, offset: i32, idx: usize, total: i32): void {
  const strides = dims + (<usize>ndim << 2);
  const last = ndim - 1;
  const cols = load<i32>(dims + (<usize>last << 2));
  const rows = load<i32>(dims + (<usize>(last - 1) << 2));
  const rs = load<i32>(strides + (<usize>(last - 1) << 2));
  const n3 = load<i32>(dims + (<usize>(last - 2) << 2));
  const s3 = load<i32>(strides + (<usize>(last - 2) << 2));
  const outer = ndim - 3;
  for (let d = 0; d < outer; d++) store<i32>(idx + (<usize>d << 2), 0);
  const runBytes = <usize>cols << 2;
  const vecBytes = <usize>(cols >> 2) << 4;
  const tail = runBytes - 16;
  const blocks = total / (n3 * rows * cols);
  const view = scatter ? dst : src;
  let packed = scatter ? src : dst;
  let base = offset;
  for (let b = 0; b < blocks; b++) {
    let v3 = view + (<usize>base << 2);
    for (let a = 0; a < n3; a++) {
      let v = v3;
      for (let r = 0; r < rows; r++) {
        if (scatter) {
          for (let o: usize = 0; o < vecBytes; o += 16) v128.store(v + o, v128.load(packed + o));
          v128.store(v + tail, v128.load(packed + tail));
        } else {
          for (let o: usize = 0; o < vecBytes; o += 16) v128.store(packed + o, v128.load(v + o));
          v128.store(packed + tail, v128.load(v + tail));
        }
        packed += runBytes;
        v += <usize>rs << 2;
      }
      v3 += <usize>s3 << 2;
    }
    // Odometer step over the leading axes, as in strided().
    for (let d = outer - 1; d >= 0; d--) {
      const ip = idx + (<usize>d << 2);
      const i = load<i32>(ip) + 1;
      const stride = load<i32>(strides + (<usize>d << 2));
      if (i < load<i32>(dims + (<usize>d << 2))) {
        store<i32>(ip, i);
        base += stride;
        break;
      }
      store<i32>(ip, 0);
      base -= stride * (i - 1);
    }
  }
}

// strided() with the 2-D block over axis `dense` and the last axis: within a block the copy walks
// `dense` innermost (sequential in the view), and the odometer steps every other axis, advancing
// the view and the compact position by their own strides.
function stridedAcross(mode: i32, src: usize, dst: usize, dims: usize, ndim: i32, offset: i32, idx: usize, dense: i32): void {
  const strides = dims + (<usize>ndim << 2);
  const last = ndim - 1;
  const cols = load<i32>(dims + (<usize>last << 2));
  const cs = load<i32>(strides + (<usize>last << 2));
  const rows = load<i32>(dims + (<usize>dense << 2));
  const rs = load<i32>(strides + (<usize>dense << 2));
  // Compact stride of `dense`: the product of the axes after it.
  let crs = 1;
  for (let d = dense + 1; d < ndim; d++) crs *= load<i32>(dims + (<usize>d << 2));
  let total = 1;
  for (let d = 0; d < ndim; d++) {
    total *= load<i32>(dims + (<usize>d << 2));
    store<i32>(idx + (<usize>d << 2), 0);
  }
  const blocks = total / (rows * cols);
  const viewBase = mode == 0 ? src : dst;
  const packedBase = mode == 0 ? dst : src;
  let base = offset;
  let cpos = 0;
  for (let b = 0; b < blocks; b++) {
    const view = viewBase + (<usize>base << 2);
    const packed = packedBase + (<usize>cpos << 2);
    for (let j = 0; j < cols; j++) {
      const v = view + (<usize>(j * cs) << 2);
      const q = packed + (<usize>j << 2);
      if (mode == 0) {
        for (let i = 0; i < rows; i++) store<f32>(q + (<usize>(i * crs) << 2), load<f32>(v + (<usize>(i * rs) << 2)));
      } else {
        for (let i = 0; i < rows; i++) store<f32>(v + (<usize>(i * rs) << 2), load<f32>(q + (<usize>(i * crs) << 2)));
      }
    }
    // Odometer over the axes other than `dense` and the last; cstride is the compact stride of d.
    let cstride = cols;
    for (let d = last - 1; d >= 0; d--) {
      const n = load<i32>(dims + (<usize>d << 2));
      if (d != dense) {
        const ip = idx + (<usize>d << 2);
        const i = load<i32>(ip) + 1;
        const stride = load<i32>(strides + (<usize>d << 2));
        if (i < n) {
          store<i32>(ip, i);
          base += stride;
          cpos += cstride;
          break;
        }
        store<i32>(ip, 0);
        base -= stride * (i - 1);
        cpos -= cstride * (i - 1);
      }
      cstride *= n;
    }
  }
}

/** n floats from src to dst (not overlapping): short runs inline, long ones by memory.copy. */
function copyFloats(dst: usize, src: usize, n: i32): void {
  // memory.copy is a call out of the wasm code in V8 (tens of ns); below ~64 floats a loop is faster.
  if (n >= 64) {
    memory.copy(dst, src, <usize>n << 2);
    return;
  }
  const end = <usize>n << 2;
  const end4 = <usize>(n & ~3) << 2;
  for (let o: usize = 0; o < end4; o += 16) v128.store(dst + o, v128.load(src + o));
  for (let o = end4; o < end; o += 4) store<f32>(dst + o, load<f32>(src + o));
}

function fill2d(view: usize, rows: i32, cols: i32, rs: i32, cs: i32, value: f32): void {
  for (let r = 0; r < rows; r++) {
    const v = view + (<usize>(r * rs) << 2);
    if (cs == 1) fill(v, value, cols);
    else for (let j = 0; j < cols; j++) store<f32>(v + (<usize>(j * cs) << 2), value);
  }
}

const TILE = 16;

// A rows x cols block of a view (row stride rs, column stride cs, elements) to or from its compact
// copy. Rows that are contiguous are copied as runs; otherwise (typically a transpose) in 16 x 16
// tiles, so the 16 cache lines a tile column touches are reused for 16 rows instead of being
// fetched once per element.
function copy2d(scatter: bool, view: usize, packed: usize, rows: i32, cols: i32, rs: i32, cs: i32): void {
  if (cs == 1) {
    for (let r = 0; r < rows; r++) {
      const v = view + (<usize>(r * rs) << 2);
      const q = packed + (<usize>(r * cols) << 2);
      if (scatter) copyFloats(v, q, cols);
      else copyFloats(q, v, cols);
    }
    return;
  }
  for (let r0 = 0; r0 < rows; r0 += TILE) {
    const r1 = min(rows, r0 + TILE);
    for (let c0 = 0; c0 < cols; c0 += TILE) {
      const c1 = min(cols, c0 + TILE);
      for (let r = r0; r < r1; r++) {
        const v = view + (<usize>(r * rs) << 2);
        const q = packed + (<usize>(r * cols) << 2);
        if (scatter) {
          for (let c = c0; c < c1; c++) store<f32>(v + (<usize>(c * cs) << 2), load<f32>(q + (<usize>c << 2)));
        } else {
          for (let c = c0; c < c1; c++) store<f32>(q + (<usize>c << 2), load<f32>(v + (<usize>(c * cs) << 2)));
        }
      }
    }
  }
}

// ---- matmul ----------------------------------------------------------------------------------------
//
// BLIS-style: for each NC-wide column block and KC-deep slice, pack opB into NR-wide micro-panels
// (stays in L2, one micro-panel in L1), then for each MC-high row block pack opA into MR-high
// micro-panels and run the MR x NR register-blocked micro-kernel over every panel pair. Packing makes
// transposed operands cost the same as plain ones: only the pack loops see the strides.

// Exported so the JavaScript side splits rows and columns between threads on micro-tile boundaries
// (and a product's depth on its depth blocks: src/split.ts depthBlocks).
export const MR = 5;
export const NR = 8;
export const KC = 256;
const MC = 120;
const NC = 512;

/** Bytes of scratch one thread needs: packed A block, packed B block and an edge tile. */
export function matmulScratchBytes(): i32 {
  return (MC * KC + KC * NC + MR * NR) * 4;
}

// Pack rows [i0, i0+mc) x depth [p0, p0+kc) of opA into MR-high panels, zero-padded past m.
function packA(a: usize, ars: i32, acs: i32, i0: i32, mc: i32, p0: i32, kc: i32, dst: usize): void {
  let first = 0;
  if (MR == 5 && ars == 1 && mc >= MR) {
    // Transposed A: each k step's values of all the full panels lie side by side, so walk the
    // source along its rows (one vector and one scalar copy per panel and k step) rather than down
    // each panel's column: with a power-of-two row stride (A 2 KiB apart in the MLP's 512x128x10
    // product) a column walk maps every k step to the same few L1 sets and misses on each load.
    const full = mc / MR;
    const step = <usize>acs << 2;
    const panelBytes = <usize>(MR * kc) << 2;
    let s = a + (<usize>(i0 + p0 * acs) << 2);
    let d = dst;
    for (let p = 0; p < kc; p++) {
      let q = d;
      for (let ir = 0; ir < full; ir++) {
        const o = <usize>(ir * MR) << 2;
        v128.store(q, v128.load(s + o));
        store<f32>(q, load<f32>(s + o, 16), 16);
        q += panelBytes;
      }
      s += step;
      d += MR << 2;
    }
    first = full * MR;
  }
  for (let ir = first; ir < mc; ir += MR) {
    const rows = min(MR, mc - ir);
    const panel = dst + (<usize>(ir * kc) << 2);
    if (MR == 5 && rows == MR && acs == 1) {
      packRowsOf5(a + (<usize>((i0 + ir) * ars + p0) << 2), <usize>ars << 2, kc, panel);
      continue;
    }
    if (rows < MR) memory.fill(panel, 0, <usize>(MR * kc) << 2);
    for (let r = 0; r < rows; r++) {
      const src = a + (<usize>((i0 + ir + r) * ars + p0 * acs) << 2);
      const step = <usize>acs << 2;
      let s = src;
      let d = panel + (<usize>r << 2);
      for (let p = 0; p < kc; p++) {
        store<f32>(d, load<f32>(s));
        s += step;
        d += MR << 2;
      }
    }
  }
}

// Plain row-major A (k contiguous), a full panel of 5 rows `lda` bytes apart: four k steps at a time,
// one vector load per row, a 4 x 4 transpose of rows 0-3 (unpack shuffles, which V8 emits as single
// unpcklps/unpckhps/punpck*qdq instructions) and lane stores of row 4; ~1.3 instead of ~6
// instructions per float, which matters where n is small (the convolutions' n = 16 or 32, where
// packing A was a third of the matmul; NOTES.md section 16).
function packRowsOf5(src: usize, lda: usize, kc: i32, d: usize): void {
  const k4 = kc & ~3;
  for (let p = 0; p < k4; p += 4) {
    const s = src + (<usize>p << 2);
    const v0 = v128.load(s);
    const v1 = v128.load(s + lda);
    const v2 = v128.load(s + 2 * lda);
    const v3 = v128.load(s + 3 * lda);
    const v4 = v128.load(s + 4 * lda);
    const t0 = i32x4.shuffle(v0, v1, 0, 4, 1, 5);
    const t1 = i32x4.shuffle(v2, v3, 0, 4, 1, 5);
    const t2 = i32x4.shuffle(v0, v1, 2, 6, 3, 7);
    const t3 = i32x4.shuffle(v2, v3, 2, 6, 3, 7);
    v128.store(d, i64x2.shuffle(t0, t1, 0, 2));
    v128.store32_lane(d, v4, 0, 16);
    v128.store(d, i64x2.shuffle(t0, t1, 1, 3), 20);
    v128.store32_lane(d, v4, 1, 36);
    v128.store(d, i64x2.shuffle(t2, t3, 0, 2), 40);
    v128.store32_lane(d, v4, 2, 56);
    v128.store(d, i64x2.shuffle(t2, t3, 1, 3), 60);
    v128.store32_lane(d, v4, 3, 76);
    d += 80;
  }
  for (let p = k4; p < kc; p++) {
    const s = src + (<usize>p << 2);
    for (let r = 0; r < 5; r++) store<f32>(d + (<usize>r << 2), load<f32>(s + <usize>r * lda));
    d += 20;
  }
}

// Pack depth [p0, p0+kc) x columns [j0, j0+nc) of opB into NR-wide panels, zero-padded past n.
function packB(b: usize, brs: i32, bcs: i32, p0: i32, kc: i32, j0: i32, nc: i32, dst: usize): void {
  for (let jr = 0; jr < nc; jr += NR) {
    const cols = min(NR, nc - jr);
    const panel = dst + (<usize>(jr * kc) << 2);
    if (cols == NR && bcs == 1) {
      // Plain row-major B: each panel row is 8 consecutive floats.
      let s = b + (<usize>(p0 * brs + j0 + jr) << 2);
      const step = <usize>brs << 2;
      let d = panel;
      for (let p = 0; p < kc; p++) {
        v128.store(d, v128.load(s));
        v128.store(d, v128.load(s, 16), 16);
        s += step;
        d += NR << 2;
      }
      continue;
    }
    if (NR == 8 && cols == NR && brs == 1) {
      packColsOf8(b + (<usize>(p0 + (j0 + jr) * bcs) << 2), <usize>bcs << 2, kc, panel);
      continue;
    }
    if (cols < NR) memory.fill(panel, 0, <usize>(NR * kc) << 2);
    for (let c = 0; c < cols; c++) {
      let s = b + (<usize>(p0 * brs + (j0 + jr + c) * bcs) << 2);
      const step = <usize>brs << 2;
      let d = panel + (<usize>c << 2);
      for (let p = 0; p < kc; p++) {
        store<f32>(d, load<f32>(s));
        s += step;
        d += NR << 2;
      }
    }
  }
}

// Transposed B (k contiguous: a Linear layer's [out, in] weight), a full panel of 8 columns `ldb`
// bytes apart: four k steps at a time, one vector load per column and two 4 x 4 transposes, as
// packRowsOf5 does for A (NOTES.md section 18).
function packColsOf8(src: usize, ldb: usize, kc: i32, d: usize): void {
  const k4 = kc & ~3;
  for (let p = 0; p < k4; p += 4) {
    const s = src + (<usize>p << 2);
    for (let half: usize = 0; half < 2; half++) {
      const q = s + 4 * half * ldb;
      const v0 = v128.load(q);
      const v1 = v128.load(q + ldb);
      const v2 = v128.load(q + 2 * ldb);
      const v3 = v128.load(q + 3 * ldb);
      const t0 = i32x4.shuffle(v0, v1, 0, 4, 1, 5);
      const t1 = i32x4.shuffle(v2, v3, 0, 4, 1, 5);
      const t2 = i32x4.shuffle(v0, v1, 2, 6, 3, 7);
      const t3 = i32x4.shuffle(v2, v3, 2, 6, 3, 7);
      const o = d + (half << 4);
      v128.store(o, i64x2.shuffle(t0, t1, 0, 2));
      v128.store(o, i64x2.shuffle(t0, t1, 1, 3), 32);
      v128.store(o, i64x2.shuffle(t2, t3, 0, 2), 64);
      v128.store(o, i64x2.shuffle(t2, t3, 1, 3), 96);
    }
    d += 128;
  }
  for (let p = k4; p < kc; p++) {
    const s = src + (<usize>p << 2);
    for (let c = 0; c < 8; c++) store<f32>(d + (<usize>c << 2), load<f32>(s + <usize>c * ldb));
    d += 32;
  }
}

// c + a * b in the micro-kernels. The relaxed-SIMD build (scripts/build-wasm.mjs compiles this file
// twice) uses f32x4.relaxed_madd, one fused multiply-add where the engine has FMA (x86 FMA3, ARM64):
// no product temporary, 10 instead of 20 arithmetic instructions per k step of the 5x8 kernel
// (NOTES.md section 19). It may round once instead of twice, so the two builds can differ in the
// last bits; each build is deterministic and the same on any number of threads.
// (binaryen inlines it: the micro-kernel's machine code has no call.)
function madd(c: v128, a: v128, b: v128): v128 {
  if (ASC_FEATURE_RELAXED_SIMD) return f32x4.relaxed_madd(a, b, c);
  return f32x4.add(c, f32x4.mul(a, b));
}

// An edge tile's valid `rows` x `cols` from `tile` (rows NR floats apart, where the micro-kernel
// spilled its accumulators) into C (rows ldc bytes apart), each added to C's value first when
// `accumulate` (block + C, as the full tiles add).
function copyTile(tile: usize, rows: i32, cols: i32, c: usize, ldc: usize, accumulate: bool): void {
  for (let r = 0; r < rows; r++) {
    const crow = c + <usize>r * ldc;
    const trow = tile + (<usize>(r * NR) << 2);
    for (let j = 0; j < cols; j++) {
      const o = <usize>j << 2;
      const v = load<f32>(trow + o);
      store<f32>(crow + o, accumulate ? v + load<f32>(crow + o) : v);
    }
  }
}

// C tile (rows x cols, row stride ldc bytes) = Apanel * Bpanel (+ C when accumulating). Every tile,
// full or edge, of every micro-kernel adds as block + C, the order storeTransposed adds in too: a
// product split along its depth (matmulDepth, addSlabs) combines its blocks in that order and gets
// the same bits, down to which NaN comes out of two.
function microKernel(pa: usize, pb: usize, kc: i32, c: usize, ldc: usize, accumulate: bool, rows: i32, cols: i32, tile: usize): void {
  const zero = f32x4.splat(0);
  // The first k step runs before the loop (kc >= 1). Besides doing work, it makes V8 compute the
  // addresses "memory base + 4, + 8, + 12" of the broadcast loads once, outside the loop: without a
  // use before the loop, TurboFan recomputes each with a lea in every iteration (3 of the loop's
  // 34 instructions; NOTES.md section 15).
  let b0 = v128.load(pb);
  let b1 = v128.load(pb, 16);
  let a = v128.load32_splat(pa, 0);
  let c00 = madd(zero, a, b0);
  let c01 = madd(zero, a, b1);
  a = v128.load32_splat(pa, 4);
  let c10 = madd(zero, a, b0);
  let c11 = madd(zero, a, b1);
  a = v128.load32_splat(pa, 8);
  let c20 = madd(zero, a, b0);
  let c21 = madd(zero, a, b1);
  a = v128.load32_splat(pa, 12);
  let c30 = madd(zero, a, b0);
  let c31 = madd(zero, a, b1);
  a = v128.load32_splat(pa, 16);
  let c40 = madd(zero, a, b0);
  let c41 = madd(zero, a, b1);
  const end = pa + (<usize>(kc * MR) << 2);
  pa += MR << 2;
  pb += NR << 2;
  // One k step per iteration: unrolled, TurboFan schedules all loads of an iteration first and
  // spills accumulators (sections 3 and 15).
  while (pa < end) {
    b0 = v128.load(pb);
    b1 = v128.load(pb, 16);
    a = v128.load32_splat(pa, 0);
    c00 = madd(c00, a, b0);
    c01 = madd(c01, a, b1);
    a = v128.load32_splat(pa, 4);
    c10 = madd(c10, a, b0);
    c11 = madd(c11, a, b1);
    a = v128.load32_splat(pa, 8);
    c20 = madd(c20, a, b0);
    c21 = madd(c21, a, b1);
    a = v128.load32_splat(pa, 12);
    c30 = madd(c30, a, b0);
    c31 = madd(c31, a, b1);
    a = v128.load32_splat(pa, 16);
    c40 = madd(c40, a, b0);
    c41 = madd(c41, a, b1);
    pa += MR << 2;
    pb += NR << 2;
  }
  if (rows == MR && cols == NR) {
    if (accumulate) {
      c00 = f32x4.add(c00, v128.load(c + 0 * ldc, 0));
      c01 = f32x4.add(c01, v128.load(c + 0 * ldc, 16));
      c10 = f32x4.add(c10, v128.load(c + 1 * ldc, 0));
      c11 = f32x4.add(c11, v128.load(c + 1 * ldc, 16));
      c20 = f32x4.add(c20, v128.load(c + 2 * ldc, 0));
      c21 = f32x4.add(c21, v128.load(c + 2 * ldc, 16));
      c30 = f32x4.add(c30, v128.load(c + 3 * ldc, 0));
      c31 = f32x4.add(c31, v128.load(c + 3 * ldc, 16));
      c40 = f32x4.add(c40, v128.load(c + 4 * ldc, 0));
      c41 = f32x4.add(c41, v128.load(c + 4 * ldc, 16));
    }
    v128.store(c + 0 * ldc, c00, 0);
    v128.store(c + 0 * ldc, c01, 16);
    v128.store(c + 1 * ldc, c10, 0);
    v128.store(c + 1 * ldc, c11, 16);
    v128.store(c + 2 * ldc, c20, 0);
    v128.store(c + 2 * ldc, c21, 16);
    v128.store(c + 3 * ldc, c30, 0);
    v128.store(c + 3 * ldc, c31, 16);
    v128.store(c + 4 * ldc, c40, 0);
    v128.store(c + 4 * ldc, c41, 16);
    return;
  }
  // Edge tile: spill the full MR x NR result and copy the valid part.
  v128.store(tile, c00, 0);
  v128.store(tile, c01, 16);
  v128.store(tile, c10, 32);
  v128.store(tile, c11, 48);
  v128.store(tile, c20, 64);
  v128.store(tile, c21, 80);
  v128.store(tile, c30, 96);
  v128.store(tile, c31, 112);
  v128.store(tile, c40, 128);
  v128.store(tile, c41, 144);
  copyTile(tile, rows, cols, c, ldc, accumulate);
}

// microKernel into `tile` (row stride NR; the transposed products' use) for a full panel of 5
// rows of an opA whose rows are contiguous, read where it lies: opA(i, p) at pa + 4i + p * lda
// bytes. The same products in the same order as from the packed panel, so the same bits.
function microKernelDirect(pa: usize, lda: usize, pb: usize, kc: i32, tile: usize): void {
  const zero = f32x4.splat(0);
  let b0 = v128.load(pb);
  let b1 = v128.load(pb, 16);
  let a = v128.load32_splat(pa, 0);
  let c00 = madd(zero, a, b0);
  let c01 = madd(zero, a, b1);
  a = v128.load32_splat(pa, 4);
  let c10 = madd(zero, a, b0);
  let c11 = madd(zero, a, b1);
  a = v128.load32_splat(pa, 8);
  let c20 = madd(zero, a, b0);
  let c21 = madd(zero, a, b1);
  a = v128.load32_splat(pa, 12);
  let c30 = madd(zero, a, b0);
  let c31 = madd(zero, a, b1);
  a = v128.load32_splat(pa, 16);
  let c40 = madd(zero, a, b0);
  let c41 = madd(zero, a, b1);
  const end = pb + (<usize>(kc * NR) << 2);
  pa += lda;
  pb += NR << 2;
  while (pb < end) {
    b0 = v128.load(pb);
    b1 = v128.load(pb, 16);
    a = v128.load32_splat(pa, 0);
    c00 = madd(c00, a, b0);
    c01 = madd(c01, a, b1);
    a = v128.load32_splat(pa, 4);
    c10 = madd(c10, a, b0);
    c11 = madd(c11, a, b1);
    a = v128.load32_splat(pa, 8);
    c20 = madd(c20, a, b0);
    c21 = madd(c21, a, b1);
    a = v128.load32_splat(pa, 12);
    c30 = madd(c30, a, b0);
    c31 = madd(c31, a, b1);
    a = v128.load32_splat(pa, 16);
    c40 = madd(c40, a, b0);
    c41 = madd(c41, a, b1);
    pa += lda;
    pb += NR << 2;
  }
  v128.store(tile, c00, 0);
  v128.store(tile, c01, 16);
  v128.store(tile, c10, 32);
  v128.store(tile, c11, 48);
  v128.store(tile, c20, 64);
  v128.store(tile, c21, 80);
  v128.store(tile, c30, 96);
  v128.store(tile, c31, 112);
  v128.store(tile, c40, 128);
  v128.store(tile, c41, 144);
}

// microKernel for a full panel of 5 rows of a plain (k-contiguous) opA read where it lies, rows
// `lda` bytes apart, instead of from a packed panel: the same products in the same order, so the
// same bits. Five row pointers (a wasm load has one dynamic address: five adds a step instead of
// the packed kernel's one). C, or a tile of `cols` < NR columns, written as microKernel writes it.
function microKernelRows(a: usize, lda: usize, pb: usize, kc: i32, c: usize, ldc: usize, accumulate: bool, cols: i32, tile: usize): void {
  const zero = f32x4.splat(0);
  let p0 = a;
  let p1 = a + lda;
  let p2 = p1 + lda;
  let p3 = p2 + lda;
  let p4 = p3 + lda;
  let b0 = v128.load(pb);
  let b1 = v128.load(pb, 16);
  let x = v128.load32_splat(p0);
  let c00 = madd(zero, x, b0);
  let c01 = madd(zero, x, b1);
  x = v128.load32_splat(p1);
  let c10 = madd(zero, x, b0);
  let c11 = madd(zero, x, b1);
  x = v128.load32_splat(p2);
  let c20 = madd(zero, x, b0);
  let c21 = madd(zero, x, b1);
  x = v128.load32_splat(p3);
  let c30 = madd(zero, x, b0);
  let c31 = madd(zero, x, b1);
  x = v128.load32_splat(p4);
  let c40 = madd(zero, x, b0);
  let c41 = madd(zero, x, b1);
  const end = pb + (<usize>(kc * NR) << 2);
  pb += NR << 2;
  while (pb < end) {
    p0 += 4;
    p1 += 4;
    p2 += 4;
    p3 += 4;
    p4 += 4;
    b0 = v128.load(pb);
    b1 = v128.load(pb, 16);
    x = v128.load32_splat(p0);
    c00 = madd(c00, x, b0);
    c01 = madd(c01, x, b1);
    x = v128.load32_splat(p1);
    c10 = madd(c10, x, b0);
    c11 = madd(c11, x, b1);
    x = v128.load32_splat(p2);
    c20 = madd(c20, x, b0);
    c21 = madd(c21, x, b1);
    x = v128.load32_splat(p3);
    c30 = madd(c30, x, b0);
    c31 = madd(c31, x, b1);
    x = v128.load32_splat(p4);
    c40 = madd(c40, x, b0);
    c41 = madd(c41, x, b1);
    pb += NR << 2;
  }
  if (cols == NR) {
    if (accumulate) {
      c00 = f32x4.add(c00, v128.load(c + 0 * ldc, 0));
      c01 = f32x4.add(c01, v128.load(c + 0 * ldc, 16));
      c10 = f32x4.add(c10, v128.load(c + 1 * ldc, 0));
      c11 = f32x4.add(c11, v128.load(c + 1 * ldc, 16));
      c20 = f32x4.add(c20, v128.load(c + 2 * ldc, 0));
      c21 = f32x4.add(c21, v128.load(c + 2 * ldc, 16));
      c30 = f32x4.add(c30, v128.load(c + 3 * ldc, 0));
      c31 = f32x4.add(c31, v128.load(c + 3 * ldc, 16));
      c40 = f32x4.add(c40, v128.load(c + 4 * ldc, 0));
      c41 = f32x4.add(c41, v128.load(c + 4 * ldc, 16));
    }
    v128.store(c + 0 * ldc, c00, 0);
    v128.store(c + 0 * ldc, c01, 16);
    v128.store(c + 1 * ldc, c10, 0);
    v128.store(c + 1 * ldc, c11, 16);
    v128.store(c + 2 * ldc, c20, 0);
    v128.store(c + 2 * ldc, c21, 16);
    v128.store(c + 3 * ldc, c30, 0);
    v128.store(c + 3 * ldc, c31, 16);
    v128.store(c + 4 * ldc, c40, 0);
    v128.store(c + 4 * ldc, c41, 16);
    return;
  }
  v128.store(tile, c00, 0);
  v128.store(tile, c01, 16);
  v128.store(tile, c10, 32);
  v128.store(tile, c11, 48);
  v128.store(tile, c20, 64);
  v128.store(tile, c21, 80);
  v128.store(tile, c30, 96);
  v128.store(tile, c31, 112);
  v128.store(tile, c40, 128);
  v128.store(tile, c41, 144);
  copyTile(tile, MR, cols, c, ldc, accumulate);
}

// The same product for a panel with at most 3 valid rows (the last panel when m % 5 <= 3; the MLP's
// 128 rows end with 3): rows 3 and 4 of the packed panel are padding, so they are not computed
// (NOTES.md section 45).
function microKernel3(pa: usize, pb: usize, kc: i32, c: usize, ldc: usize, accumulate: bool, rows: i32, cols: i32, tile: usize): void {
  const zero = f32x4.splat(0);
  // First k step before the loop, as in microKernel.
  let b0 = v128.load(pb);
  let b1 = v128.load(pb, 16);
  let a = v128.load32_splat(pa, 0);
  let c00 = madd(zero, a, b0);
  let c01 = madd(zero, a, b1);
  a = v128.load32_splat(pa, 4);
  let c10 = madd(zero, a, b0);
  let c11 = madd(zero, a, b1);
  a = v128.load32_splat(pa, 8);
  let c20 = madd(zero, a, b0);
  let c21 = madd(zero, a, b1);
  const end = pa + (<usize>(kc * MR) << 2);
  pa += MR << 2;
  pb += NR << 2;
  while (pa < end) {
    b0 = v128.load(pb);
    b1 = v128.load(pb, 16);
    a = v128.load32_splat(pa, 0);
    c00 = madd(c00, a, b0);
    c01 = madd(c01, a, b1);
    a = v128.load32_splat(pa, 4);
    c10 = madd(c10, a, b0);
    c11 = madd(c11, a, b1);
    a = v128.load32_splat(pa, 8);
    c20 = madd(c20, a, b0);
    c21 = madd(c21, a, b1);
    pa += MR << 2;
    pb += NR << 2;
  }
  if (rows == 3 && cols == NR) {
    if (accumulate) {
      c00 = f32x4.add(c00, v128.load(c + 0 * ldc, 0));
      c01 = f32x4.add(c01, v128.load(c + 0 * ldc, 16));
      c10 = f32x4.add(c10, v128.load(c + 1 * ldc, 0));
      c11 = f32x4.add(c11, v128.load(c + 1 * ldc, 16));
      c20 = f32x4.add(c20, v128.load(c + 2 * ldc, 0));
      c21 = f32x4.add(c21, v128.load(c + 2 * ldc, 16));
    }
    v128.store(c + 0 * ldc, c00, 0);
    v128.store(c + 0 * ldc, c01, 16);
    v128.store(c + 1 * ldc, c10, 0);
    v128.store(c + 1 * ldc, c11, 16);
    v128.store(c + 2 * ldc, c20, 0);
    v128.store(c + 2 * ldc, c21, 16);
    return;
  }
  v128.store(tile, c00, 0);
  v128.store(tile, c01, 16);
  v128.store(tile, c10, 32);
  v128.store(tile, c11, 48);
  v128.store(tile, c20, 64);
  v128.store(tile, c21, 80);
  copyTile(tile, rows, cols, c, ldc, accumulate);
}

// The same product for a panel with at most 4 valid columns (the last panel when n % 8 <= 4):
// one B vector per k step instead of two, half the work of the full kernel on padding.
function microKernel4(pa: usize, pb: usize, kc: i32, c: usize, ldc: usize, accumulate: bool, rows: i32, cols: i32, tile: usize): void {
  const zero = f32x4.splat(0);
  // First k step before the loop, as in microKernel.
  let b = v128.load(pb);
  let c0 = madd(zero, v128.load32_splat(pa, 0), b);
  let c1 = madd(zero, v128.load32_splat(pa, 4), b);
  let c2 = madd(zero, v128.load32_splat(pa, 8), b);
  let c3 = madd(zero, v128.load32_splat(pa, 12), b);
  let c4 = madd(zero, v128.load32_splat(pa, 16), b);
  const end = pa + (<usize>(kc * MR) << 2);
  pa += MR << 2;
  pb += NR << 2;
  while (pa < end) {
    b = v128.load(pb);
    c0 = madd(c0, v128.load32_splat(pa, 0), b);
    c1 = madd(c1, v128.load32_splat(pa, 4), b);
    c2 = madd(c2, v128.load32_splat(pa, 8), b);
    c3 = madd(c3, v128.load32_splat(pa, 12), b);
    c4 = madd(c4, v128.load32_splat(pa, 16), b);
    pa += MR << 2;
    pb += NR << 2;
  }
  if (rows == MR && cols == 4) {
    if (accumulate) {
      c0 = f32x4.add(c0, v128.load(c + 0 * ldc));
      c1 = f32x4.add(c1, v128.load(c + 1 * ldc));
      c2 = f32x4.add(c2, v128.load(c + 2 * ldc));
      c3 = f32x4.add(c3, v128.load(c + 3 * ldc));
      c4 = f32x4.add(c4, v128.load(c + 4 * ldc));
    }
    v128.store(c + 0 * ldc, c0);
    v128.store(c + 1 * ldc, c1);
    v128.store(c + 2 * ldc, c2);
    v128.store(c + 3 * ldc, c3);
    v128.store(c + 4 * ldc, c4);
    return;
  }
  v128.store(tile, c0, 0);
  v128.store(tile, c1, 32);
  v128.store(tile, c2, 64);
  v128.store(tile, c3, 96);
  v128.store(tile, c4, 128);
  copyTile(tile, rows, cols, c, ldc, accumulate);
}

/**
 * The epilogue program (Backend.matmulProgram) over rows [i0, i0 + rows) x columns [j0, j0 + cols)
 * of batch t's product, in place: the program reads the product as its input 0 from C and writes
 * its one output to C. `epi` holds five i32 words, the arguments `program` takes (code, steps,
 * outputs, output count, layout); `regs` is this thread's register area.
 */
function matmulEpilogue(epi: usize, regs: usize, m: i32, n: i32, t: i32, i0: i32, rows: i32, j0: i32, cols: i32): void {
  const code = <usize>load<i32>(epi);
  const nsteps = load<i32>(epi, 4);
  const outs = <usize>load<i32>(epi, 8);
  const nouts = load<i32>(epi, 12);
  const layout = <usize>load<i32>(epi, 16);
  const base = (t * m + i0) * n + j0;
  if (cols == n) {
    program(code, nsteps, outs, nouts, regs, base, rows * n, layout);
    return;
  }
  for (let r = 0; r < rows; r++) program(code, nsteps, outs, nouts, regs, base + r * n, cols, layout);
}

/**
 * out[t] (m x n) = opA(A_t) @ opB(B_t) for batches [t0, t1), restricted to rows [i0, i1) and columns
 * [j0, j1) so threads can split the work. Element (i, p) of opA(A_t) is at a + t*aBatch + i*ars + p*acs
 * (elements), element (p, j) of opB(B_t) at b + t*bBatch + p*brs + j*bcs. k >= 1. With `epi` != 0
 * (matmulProgram) each block of rows gets the epilogue program as soon as it is final
 * (matmulEpilogue); a call without the last two arguments passes 0 for them.
 */
export function matmul(
  a: usize, b: usize, c: usize,
  m: i32, n: i32, k: i32,
  ars: i32, acs: i32, brs: i32, bcs: i32,
  aBatch: i32, bBatch: i32,
  t0: i32, t1: i32, i0: i32, i1: i32, j0: i32, j1: i32,
  scratch: usize, regs: usize, epi: usize,
): void {
  // A product 5, 9, 10, 14 or 15 columns wide (a classifier's 10 classes) and at least 32 rows tall
  // runs as its transpose C^T = opB^T opA^T: its columns fill 5-row panels (no or one row of
  // padding) where 8-column panels compute 8 + 4 or 16, the last through the slower 5x4 kernel
  // (NOTES.md section 27). Every element is the same chain of the same products, so the same bits.
  // So does any product at least one depth block deep whose transpose costs 5% less in micro-tiles
  // (a convolution's weight gradient, 16 x 27 or 32 x 144 over a long depth; NOTES.md section 40):
  // there the transposed tiles' stores are a small part of each tile's work.
  if (transposes(m, n, k)) {
    product(b, a, c, n, m, k, bcs, brs, acs, ars, bBatch, aBatch, t0, t1, j0, j1, i0, i1, scratch, regs, epi, true);
  } else {
    product(a, b, c, m, n, k, ars, acs, brs, bcs, aBatch, bBatch, t0, t1, i0, i1, j0, j1, scratch, regs, epi, false);
  }
}

/** Whether matmul computes an m x n product of depth k as its transpose (see matmul). */
function transposes(m: i32, n: i32, k: i32): bool {
  const narrow = n < 2 * NR && n % NR != 0 && (n % MR == 0 || n % MR == MR - 1) && m >= 4 * NR;
  return narrow || (k >= KC && 20 * tileCost(n, m) < 19 * tileCost(m, n));
}

/**
 * The micro-kernels' cycles per depth step over an m x n product, as measured (NOTES.md sections 15
 * and 27): ~6 for a 5x8 tile, ~4 for a 5x4 one (a last panel of at most 4 columns), padding included.
 */
function tileCost(m: i32, n: i32): i32 {
  const rest = n % NR;
  return ((m + MR - 1) / MR) * ((n / NR) * 6 + (rest == 0 ? 0 : rest <= 4 ? 4 : 6));
}

/**
 * matmul's loops, for C (`transC` false) or for C^T (true: the operands given as opB^T and opA^T,
 * m and n swapped; tile element (r, s) goes to C[s][r], written by storeTransposed).
 */
function product(
  a: usize, b: usize, c: usize,
  m: i32, n: i32, k: i32,
  ars: i32, acs: i32, brs: i32, bcs: i32,
  aBatch: i32, bBatch: i32,
  t0: i32, t1: i32, i0: i32, i1: i32, j0: i32, j1: i32,
  scratch: usize, regs: usize, epi: usize, transC: bool,
): void {
  const pA = scratch;
  const pB = scratch + (<usize>(MC * KC) << 2);
  const tile = pB + (<usize>(KC * NC) << 2);
  // C's row stride: n, or for C^T the original n, which is m here.
  const ldc = <usize>(transC ? m : n) << 2;
  // Equal blocks rather than full blocks plus a sliver: k = 784 runs as 4 x 196, not 3 x 256 + 16,
  // which would pay a whole pass over C (and a pack) for 16 steps of work.
  const kb = (k + KC - 1) / KC;
  const kcMax = (k + kb - 1) / kb;
  const nb = (j1 - j0 + NC - 1) / NC;
  // A plain (k-contiguous) opA against at most 4 column panels whose packed block fits L1 beside a
  // panel's 5 source rows (<= 24 KiB: a convolution's forward product, col @ W^T with n = 16 or 32)
  // is read where it lies instead of packed: packing it was a pass over the whole im2col matrix
  // from L3 (NOTES.md section 61).
  // C^T of a deep product whose opA (the asked-for product's opB^T) has contiguous rows of at most
  // 64 floats, against at most 4 column panels, reads its full panels in place: a convolution's
  // weight gradient dY^T @ col, computed as col^T @ dY, over an im2col matrix of rows of 27 (a
  // 3-channel input), where packing was a pass over the whole matrix from L3 (NOTES.md section 62).
  // Conv2's rows of 144 measured slower read in place (9 lines a row, each k step a new line).
  // Baseline build only: the relaxed build's microKernelDirect measured 1.6-1.7x slower than its
  // packed kernel (NOTES.md section 62), machine code not yet read.
  const colsDirect = !ASC_FEATURE_RELAXED_SIMD && transC && ars == 1 && acs <= 64 && MR == 5 && j1 - j0 <= 4 * NR && k >= KC;
  const rowsDirect = !transC && acs == 1 && MR == 5 && j1 - j0 <= 4 * NR && min(k, KC) * (j1 - j0) <= 6144;
  const ncMax = (((j1 - j0 + nb - 1) / nb + NR - 1) / NR) * NR;
  for (let t = t0; t < t1; t++) {
    const at = a + (<usize>(t * aBatch) << 2);
    const bt = b + (<usize>(t * bBatch) << 2);
    const ct = c + (<usize>(t * m) * <usize>n << 2);
    for (let jc = j0; jc < j1; jc += ncMax) {
      const nc = min(ncMax, j1 - jc);
      for (let pc = 0; pc < k; pc += kcMax) {
        const kc = min(kcMax, k - pc);
        packB(bt, brs, bcs, pc, kc, jc, nc, pB);
        for (let ic = i0; ic < i1; ic += MC) {
          const mc = min(MC, i1 - ic);
          if (colsDirect) {
            // Full panels of opA read in place (below); a last panel of 1-4 rows packed.
            const fullRows = (mc / MR) * MR;
            if (fullRows < mc) packA(at, ars, acs, ic + fullRows, mc - fullRows, pc, kc, pA + (<usize>(fullRows * kc) << 2));
          } else if (rowsDirect) {
            // Full 5-row panels of A read in place, each against every column panel in turn (the
            // packed B block stays in L1, the panel's rows too); a last panel of 1-4 rows packed.
            const fullRows = (mc / MR) * MR;
            for (let ir = 0; ir < fullRows; ir += MR) {
              const arow = at + (<usize>((ic + ir) * ars + pc) << 2);
              for (let jr = 0; jr < nc; jr += NR) {
                const cp = ct + <usize>(ic + ir) * ldc + (<usize>(jc + jr) << 2);
                microKernelRows(arow, <usize>ars << 2, pB + (<usize>(jr * kc) << 2), kc, cp, ldc, pc > 0, min(NR, nc - jr), tile);
              }
            }
            if (fullRows < mc) {
              packA(at, ars, acs, ic + fullRows, mc - fullRows, pc, kc, pA);
              for (let jr = 0; jr < nc; jr += NR) {
                const cols = min(NR, nc - jr);
                const pb = pB + (<usize>(jr * kc) << 2);
                const cp = ct + <usize>(ic + fullRows) * ldc + (<usize>(jc + jr) << 2);
                const rows = mc - fullRows;
                if (MR == 5 && cols <= 4) microKernel4(pA, pb, kc, cp, ldc, pc > 0, rows, cols, tile);
                else if (MR == 5 && rows <= 3) microKernel3(pA, pb, kc, cp, ldc, pc > 0, rows, cols, tile);
                else microKernel(pA, pb, kc, cp, ldc, pc > 0, rows, cols, tile);
              }
            }
            if (epi != 0 && pc + kc >= k) matmulEpilogue(epi, regs, m, n, t, ic, mc, jc, nc);
            continue;
          }
          if (!colsDirect) packA(at, ars, acs, ic, mc, pc, kc, pA);
          for (let jr = 0; jr < nc; jr += NR) {
            const cols = min(NR, nc - jr);
            const pb = pB + (<usize>(jr * kc) << 2);
            for (let ir = 0; ir < mc; ir += MR) {
              const rows = min(MR, mc - ir);
              const pa = pA + (<usize>(ir * kc) << 2);
              // (microKernel4 is written for MR = 5.)
              if (transC) {
                // The tile into `tile` (no rows to copy), then transposed into C.
                if (colsDirect && rows == MR) microKernelDirect(at + (<usize>(ic + ir + pc * acs) << 2), <usize>acs << 2, pb, kc, tile);
                else if (MR == 5 && cols <= 4) microKernel4(pa, pb, kc, 0, 0, false, 0, 0, tile);
                else microKernel(pa, pb, kc, 0, 0, false, 0, 0, tile);
                storeTransposed(tile, ct + <usize>(jc + jr) * ldc + (<usize>(ic + ir) << 2), ldc, pc > 0, rows, cols);
                continue;
              }
              const cp = ct + <usize>(ic + ir) * ldc + (<usize>(jc + jr) << 2);
              if (MR == 5 && cols <= 4) microKernel4(pa, pb, kc, cp, ldc, pc > 0, rows, cols, tile);
              else if (MR == 5 && rows <= 3) microKernel3(pa, pb, kc, cp, ldc, pc > 0, rows, cols, tile);
              else microKernel(pa, pb, kc, cp, ldc, pc > 0, rows, cols, tile);
            }
          }
          // After the last k slice these rows of C are final, and still in L1/L2: run the epilogue
          // (for C^T: C's rows [jc, jc + nc), columns [ic, ic + mc)).
          if (epi != 0 && pc + kc >= k) {
            if (transC) matmulEpilogue(epi, regs, n, m, t, jc, nc, ic, mc);
            else matmulEpilogue(epi, regs, m, n, t, ic, mc, jc, nc);
          }
        }
      }
    }
  }
}

/**
 * C^T's tile (rows x cols of the MR x NR `tile`, row stride NR) into C at `cp`: tile element (r, s)
 * to cp + s * ldc + 4r, added to what is there when `accumulate` (tile + C, the order microKernel
 * adds in). A full tile as two 4 x 4 transposes of rows 0-3 plus lane stores of row 4.
 */
function storeTransposed(tile: usize, cp: usize, ldc: usize, accumulate: bool, rows: i32, cols: i32): void {
  if (MR == 5 && NR == 8 && rows == MR && cols == NR) {
    for (let half: usize = 0; half < 2; half++) {
      const q = tile + (half << 4);
      const v0 = v128.load(q);
      const v1 = v128.load(q, 32);
      const v2 = v128.load(q, 64);
      const v3 = v128.load(q, 96);
      const v4 = v128.load(q, 128);
      const u0 = i32x4.shuffle(v0, v1, 0, 4, 1, 5);
      const u1 = i32x4.shuffle(v2, v3, 0, 4, 1, 5);
      const u2 = i32x4.shuffle(v0, v1, 2, 6, 3, 7);
      const u3 = i32x4.shuffle(v2, v3, 2, 6, 3, 7);
      let w0 = i64x2.shuffle(u0, u1, 0, 2);
      let w1 = i64x2.shuffle(u0, u1, 1, 3);
      let w2 = i64x2.shuffle(u2, u3, 0, 2);
      let w3 = i64x2.shuffle(u2, u3, 1, 3);
      const d = cp + 4 * half * ldc;
      let e0 = f32x4.extract_lane(v4, 0);
      let e1 = f32x4.extract_lane(v4, 1);
      let e2 = f32x4.extract_lane(v4, 2);
      let e3 = f32x4.extract_lane(v4, 3);
      if (accumulate) {
        w0 = f32x4.add(w0, v128.load(d));
        w1 = f32x4.add(w1, v128.load(d + ldc));
        w2 = f32x4.add(w2, v128.load(d + 2 * ldc));
        w3 = f32x4.add(w3, v128.load(d + 3 * ldc));
        e0 += load<f32>(d, 16);
        e1 += load<f32>(d + ldc, 16);
        e2 += load<f32>(d + 2 * ldc, 16);
        e3 += load<f32>(d + 3 * ldc, 16);
      }
      v128.store(d, w0);
      v128.store(d + ldc, w1);
      v128.store(d + 2 * ldc, w2);
      v128.store(d + 3 * ldc, w3);
      store<f32>(d, e0, 16);
      store<f32>(d + ldc, e1, 16);
      store<f32>(d + 2 * ldc, e2, 16);
      store<f32>(d + 3 * ldc, e3, 16);
    }
    return;
  }
  for (let s = 0; s < cols; s++) {
    const crow = cp + <usize>s * ldc;
    for (let r = 0; r < rows; r++) {
      const o = <usize>r << 2;
      const v = load<f32>(tile + (<usize>(r * NR + s) << 2));
      store<f32>(crow + o, accumulate ? v + load<f32>(crow + o) : v);
    }
  }
}

/**
 * Depth blocks [d0, d1) of a single m x n product of depth k, each block b into its own m x n slab at
 * slabs + 4 * b * m * n: the very blocks matmul runs k in (KC deep at most, equal but for the last)
 * and the same transposition matmul takes for the full product, so each slab element is the chain,
 * from zero, that matmul adds to C for that block. addSlabs then adds them as matmul does, so a
 * product split by depth between threads (src/split.ts) gives the same bits and packs nothing twice.
 */
export function matmulDepth(
  a: usize, b: usize, slabs: usize,
  m: i32, n: i32, k: i32,
  ars: i32, acs: i32, brs: i32, bcs: i32,
  d0: i32, d1: i32, scratch: usize,
): void {
  const kb = (k + KC - 1) / KC;
  const kcMax = (k + kb - 1) / kb;
  const t = transposes(m, n, k);
  for (let d = d0; d < d1; d++) {
    const p0 = d * kcMax;
    const kc = min(kcMax, k - p0);
    const ad = a + (<usize>(p0 * acs) << 2);
    const bd = b + (<usize>(p0 * brs) << 2);
    const slab = slabs + ((<usize>d * <usize>m * <usize>n) << 2);
    if (t) product(bd, ad, slab, n, m, kc, bcs, brs, acs, ars, 0, 0, 0, 1, 0, n, 0, m, scratch, 0, 0, true);
    else product(ad, bd, slab, m, n, kc, ars, acs, brs, bcs, 0, 0, 0, 1, 0, m, 0, n, scratch, 0, 0, false);
  }
}

/**
 * Elements [e0, e1) of `count` >= 2 slabs of `size` elements each (slab s at slabs + 4 * s * size)
 * added in order into `out` as matmul adds depth blocks to C: out = s1 + s0, then out = s + out for
 * each later slab s (block + C, which decides the NaN that comes out of two).
 */
export function addSlabs(slabs: usize, count: i32, size: i32, e0: i32, e1: i32, out: usize): void {
  const stride = <usize>size << 2;
  // A chunk of elements at a time through all the slabs, so the sums stay in L1.
  const CHUNK = 1024;
  for (let c0 = e0; c0 < e1; c0 += CHUNK) {
    const c1 = min(e1, c0 + CHUNK);
    const o = out + (<usize>c0 << 2);
    const s0 = slabs + (<usize>c0 << 2);
    let e = c0;
    for (; e + 4 <= c1; e += 4) {
      const q = <usize>(e - c0) << 2;
      v128.store(o + q, f32x4.add(v128.load(s0 + stride + q), v128.load(s0 + q)));
    }
    for (; e < c1; e++) {
      const q = <usize>(e - c0) << 2;
      store<f32>(o + q, load<f32>(s0 + stride + q) + load<f32>(s0 + q));
    }
    for (let s = 2; s < count; s++) {
      const si = s0 + <usize>s * stride;
      e = c0;
      for (; e + 4 <= c1; e += 4) {
        const q = <usize>(e - c0) << 2;
        v128.store(o + q, f32x4.add(v128.load(si + q), v128.load(o + q)));
      }
      for (; e < c1; e++) {
        const q = <usize>(e - c0) << 2;
        store<f32>(o + q, load<f32>(si + q) + load<f32>(o + q));
      }
    }
  }
}

// ---- exports for compiled elementwise programs (src/jit) --------------------------------------------
//
// Programs compiled to their own small modules at run time (src/jit/compile.ts) import these, so
// they run the very same exp/log/tanh/pow and strided gathers as the `program` kernel above (and
// give the same bits). Wasm-to-wasm calls through imports may pass v128; JavaScript cannot call the
// v128 ones.

// The functions themselves, not wrappers: V8 optimizes a function without loops only after many
// calls in proportion to its size, and a small wrapper stays unoptimized (NOTES.md section 20).
export { expv as jitExp, logv as jitLog, tanhBranchy as jitTanh };

/**
 * tanhv, bit for bit, for compiled programs: where all four lanes are below 0.5 in magnitude (the
 * common case for the activations of a recurrent cell) tanhv's select takes the series in every
 * lane, so only the series is computed, not the exp and division; otherwise tanhv itself.
 */
function tanhBranchy(x: v128): v128 {
  if (!i32x4.all_true(f32x4.lt(f32x4.abs(x), v128.load(KF, F_HALF)))) return tanhv(x);
  return v128.or(f32x4.abs(tanhSeries(x)), v128.and(x, v128.load(KI, I_SIGN)));
}

// jitStrided(scatter, buf, layout, rec, base, m, blk, idx): stridedBlock (scatter as 0 or 1).
export { powScalar as jitPow, stridedBlock as jitStrided };
// jitPowHalf(x, reciprocal): powHalf, Math.pow(x, -0.5) (reciprocal = 1) or Math.pow(x, 0.5).
export { powHalf as jitPowHalf };

/**
 * Planes [plane0, plane0 + count) of a strided operand (layout record `rec` over the iteration shape
 * at `layout`; a plane is a run of rows along the second-to-last axis, a row a run along the last):
 * each plane's first element offset, stored as i32s at `out`. `idx` is scratch for ndim i32s.
 * Compiled programs then read rows whose last stride is 1 with vector loads, moving from row to row
 * by the operand's second-to-last stride, with no gather into a block (NOTES.md section 44).
 */
export function jitPlanes(layout: usize, rec: usize, plane0: i32, count: i32, out: usize, idx: usize): void {
  const ndim = load<i32>(layout);
  const shape = layout + 4;
  const strides = rec + 4;
  let pos = odometerStart(shape, strides, load<i32>(rec), plane0, ndim - 3, idx);
  for (let r = 0; r < count; r++) {
    store<i32>(out + (<usize>r << 2), pos);
    pos = odometerStep(shape, strides, ndim - 3, idx, pos);
  }
}
