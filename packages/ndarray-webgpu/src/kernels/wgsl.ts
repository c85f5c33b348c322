import type { BinaryOp, UnaryOp } from '@needle/ndarray';

/**
 * Scalar helpers shared by the elementwise kernels. NaN and infinity are tested on the bit pattern
 * and produced from runtime values: WGSL lets compilers assume finite math for ordinary comparisons
 * and rejects NaN/inf constants, but the CPU reference defines NaN propagation for every op.
 */
export const PRELUDE = /* wgsl */ `
var<private> NAN_BITS: u32 = 0x7fc00000u;
var<private> INF_BITS: u32 = 0x7f800000u;
fn isnan_(x: f32) -> bool { return (bitcast<u32>(x) & 0x7fffffffu) > 0x7f800000u; }
fn isinf_(x: f32) -> bool { return (bitcast<u32>(x) & 0x7fffffffu) == 0x7f800000u; }
fn nan_() -> f32 { return bitcast<f32>(NAN_BITS); }
fn inf_() -> f32 { return bitcast<f32>(INF_BITS); }
fn b2f(c: bool) -> f32 { return select(0.0, 1.0, c); }
fn anynan_(x: f32, y: f32) -> bool { return isnan_(x) || isnan_(y); }
fn isodd_(y: f32) -> bool { return abs(y) < 16777216.0 && (y - 2.0 * floor(y * 0.5)) == 1.0; }
fn signbit_(x: f32) -> bool { return (bitcast<u32>(x) >> 31u) == 1u; }

// Math.pow semantics: exact for the common exponents, negative bases allowed for integer exponents.
fn pow_(x: f32, y: f32) -> f32 {
  if (y == 0.0) { return 1.0; }
  if (anynan_(x, y)) { return nan_(); }
  if (y == 1.0) { return x; }
  if (y == 2.0) { return x * x; }
  if (y == -1.0) { return 1.0 / x; }
  let ax = abs(x);
  let yint = floor(y) == y;
  let odd = yint && isodd_(y);
  if (isinf_(y)) {
    if (ax == 1.0) { return nan_(); }
    return select(0.0, inf_(), (ax > 1.0) == (y > 0.0));
  }
  if (ax == 0.0 || isinf_(x)) {
    // 0^y and inf^y: magnitude 0 or inf, sign from a negative base with an odd exponent.
    let big = (ax == 0.0) == (y < 0.0);
    let mag = select(0.0, inf_(), big);
    return select(mag, -mag, signbit_(x) && odd);
  }
  var r = exp2(y * log2(ax));
  if (x < 0.0) {
    if (!yint) { return nan_(); }
    if (odd) { r = -r; }
  }
  return r;
}

fn log_(x: f32) -> f32 {
  if (isnan_(x) || x < 0.0) { return nan_(); }
  if (x == 0.0) { return -inf_(); }
  if (isinf_(x)) { return x; }
  return log(x);
}

fn exp_(x: f32) -> f32 {
  if (isnan_(x)) { return x; }
  if (x > 88.72284) { return inf_(); }
  if (x < -103.97208) { return 0.0; }
  return exp(x);
}

fn sqrt_(x: f32) -> f32 {
  if (isnan_(x) || x < 0.0) { return nan_(); }
  if (isinf_(x)) { return x; }
  return sqrt(x);
}

// tanh from exp(-2|x|): never overflows; a short odd series near 0 avoids the cancellation in 1 - t.
fn tanh_(x: f32) -> f32 {
  if (isnan_(x)) { return x; }
  let ax = abs(x);
  var r: f32;
  if (ax < 0.125) {
    let x2 = ax * ax;
    r = ax * (1.0 + x2 * (-0.33333334 + x2 * (0.13333334 + x2 * -0.053968254)));
  } else if (ax > 9.1) {
    r = 1.0;
  } else {
    let t = exp(-2.0 * ax);
    r = (1.0 - t) / (1.0 + t);
  }
  return select(r, -r, x < 0.0);
}

fn sign_(x: f32) -> f32 {
  if (isnan_(x)) { return x; }
  return select(select(x, -1.0, x < 0.0), 1.0, x > 0.0);
}

// maximum/minimum return the NaN when either operand is one, like the CPU reference.
fn max_(x: f32, y: f32) -> f32 {
  if (isnan_(x)) { return x; }
  if (isnan_(y)) { return y; }
  return select(y, x, x >= y);
}
fn min_(x: f32, y: f32) -> f32 {
  if (isnan_(x)) { return x; }
  if (isnan_(y)) { return y; }
  return select(y, x, x <= y);
}
`;

/** WGSL for `x op y` on two f32 values named `x` and `y`. */
export function binaryExpr(op: BinaryOp, x = 'x', y = 'y'): string {
  return binaryTemplate(op).replaceAll('X', x).replaceAll('Y', y);
}

function binaryTemplate(op: BinaryOp): string {
  switch (op) {
    case 'add': return 'X + Y';
    case 'sub': return 'X - Y';
    case 'mul': return 'X * Y';
    case 'div': return 'X / Y';
    case 'pow': return 'pow_(X, Y)';
    case 'maximum': return 'max_(X, Y)';
    case 'minimum': return 'min_(X, Y)';
    case 'eq': return 'b2f(!anynan_(X, Y) && X == Y)';
    case 'ne': return 'b2f(anynan_(X, Y) || X != Y)';
    case 'ge': return 'b2f(!anynan_(X, Y) && X >= Y)';
    case 'gt': return 'b2f(!anynan_(X, Y) && X > Y)';
    case 'le': return 'b2f(!anynan_(X, Y) && X <= Y)';
    case 'lt': return 'b2f(!anynan_(X, Y) && X < Y)';
    default: return op satisfies never;
  }
}

/** WGSL for `op(x)` on one f32 value. */
export function unaryExpr(op: UnaryOp): string {
  switch (op) {
    case 'neg': return '-x';
    case 'log': return 'log_(x)';
    case 'exp': return 'exp_(x)';
    case 'tanh': return 'tanh_(x)';
    case 'sqrt': return 'sqrt_(x)';
    case 'abs': return 'abs(x)';
    case 'sign': return 'sign_(x)';
    default: return op satisfies never;
  }
}
