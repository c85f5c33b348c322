/**
 * Every readable dtype to float32, the one storage dtype of NDArrays:
 * - F32 as is (bit for bit, NaN payloads included);
 * - F16 and BF16 exactly (every half and bfloat16 value is a float32 value; NaN payloads kept, a
 *   signaling F16 NaN made quiet as IEEE conversion and torch do);
 * - F64 rounded to nearest, ties to even (`Math.fround`); beyond float32's range to +-Infinity;
 * - BOOL to 0 or 1 (any non-zero byte is true);
 * - integers only where the float32 equals the integer exactly (always for 8- and 16-bit types;
 *   for wider ones every |v| <= 2^24 qualifies, larger values only when float32 has them); any other
 *   value refuses the file, naming the tensor, the index and the value.
 */
import { fail } from '@needle/ndarray';
import { ITEM_SIZE, RAW_ARRAY, type SafetensorsDType } from './dtypes';
import { requireLittleEndian } from './codec';

/**
 * The float32 values of one tensor whose raw bytes are `bytes[begin, end)`. For F32 at a 4-byte
 * aligned address this is a view of `bytes` (no copy); otherwise a new array.
 */
export function toFloat32(bytes: Uint8Array, begin: number, end: number, dtype: SafetensorsDType, name: string, op: string, source: string): Float32Array {
  requireLittleEndian(op, dtype);
  const itemSize = ITEM_SIZE[dtype];
  const n = (end - begin) / itemSize;
  const raw = rawView(bytes, begin, end, dtype) as ArrayLike<number> & ArrayBufferView;
  switch (dtype) {
    case 'F32':
      return raw as Float32Array;
    case 'F64':
      // A typed-array copy converts with ToFloat32: round to nearest, ties to even.
      return new Float32Array(raw as Float64Array);
    case 'BF16': {
      const out = new Uint32Array(n);
      const r = raw as Uint16Array;
      for (let i = 0; i < n; i++) out[i] = r[i] << 16;
      return new Float32Array(out.buffer);
    }
    case 'F16': {
      const table = halfTable();
      const out = new Uint32Array(n);
      const r = raw as Uint16Array;
      for (let i = 0; i < n; i++) out[i] = table[r[i]];
      return new Float32Array(out.buffer);
    }
    case 'BOOL': {
      const out = new Float32Array(n);
      const r = raw as Uint8Array;
      for (let i = 0; i < n; i++) out[i] = r[i] === 0 ? 0 : 1;
      return out;
    }
    case 'U8':
    case 'I8':
    case 'U16':
    case 'I16':
      return new Float32Array(raw);
    case 'I32':
    case 'U32': {
      const out = new Float32Array(raw);
      const r = raw as Int32Array | Uint32Array;
      for (let i = 0; i < n; i++) {
        if (out[i] !== r[i]) inexact(op, source, name, dtype, i, String(r[i]));
      }
      return out;
    }
    case 'I64':
    case 'U64':
      return wideIntegers(raw as unknown as BigInt64Array | BigUint64Array, dtype, name, op, source);
    default:
      return dtype satisfies never;
  }
}

/** A typed-array view of the raw data where aligned, else an aligned copy. */
function rawView(bytes: Uint8Array, begin: number, end: number, dtype: SafetensorsDType): ArrayBufferView {
  const itemSize = ITEM_SIZE[dtype];
  const at = bytes.byteOffset + begin;
  const Ctor = RAW_ARRAY[dtype];
  if (at % itemSize === 0) return new Ctor(bytes.buffer, at, (end - begin) / itemSize);
  return new Ctor(bytes.slice(begin, end).buffer, 0, (end - begin) / itemSize);
}

/**
 * 64-bit integers, read as (low, high) 32-bit halves to avoid a BigInt per element: the value is
 * high * 2^32 + low, exact in a double while |high| < 2^21. Larger magnitudes (rare: they must still
 * be float32 values, e.g. 2^40) are checked with BigInt.
 */
function wideIntegers(raw: BigInt64Array | BigUint64Array, dtype: 'I64' | 'U64', name: string, op: string, source: string): Float32Array {
  const n = raw.length;
  const halves = new Int32Array(raw.buffer, raw.byteOffset, n * 2);
  const out = new Float32Array(n);
  const signed = dtype === 'I64';
  for (let i = 0; i < n; i++) {
    const low = halves[2 * i] >>> 0;
    const high = signed ? halves[2 * i + 1] : halves[2 * i + 1] >>> 0;
    let value: number;
    if (high >= -0x200000 && high < 0x200000) {
      value = high * 4294967296 + low;
      out[i] = value;
      if (out[i] !== value) inexact(op, source, name, dtype, i, String(value));
    } else {
      const big = raw[i];
      out[i] = Number(big);
      if (BigInt(out[i]) !== big) inexact(op, source, name, dtype, i, String(big));
    }
  }
  return out;
}

function inexact(op: string, source: string, name: string, dtype: SafetensorsDType, index: number, value: string): never {
  return fail(op, `${source}: tensor '${name}' (${dtype}) holds ${value} at flat index ${index}, which float32 cannot represent exactly (NDArrays are float32; integers load only where exact, e.g. |v| <= 2^24)`);
}

let halfBits: Uint32Array | undefined;

/** float32 bit patterns of all 65536 half-precision values, built on first use (256 KiB). */
function halfTable(): Uint32Array {
  if (halfBits) return halfBits;
  const t = new Uint32Array(65536);
  for (let h = 0; h < 65536; h++) t[h] = halfToFloatBits(h);
  halfBits = t;
  return t;
}

/** IEEE half -> float32 bits, exact: re-bias the exponent, normalise subnormals, keep NaN payloads. */
export function halfToFloatBits(h: number): number {
  const sign = (h & 0x8000) << 16;
  const exponent = (h >> 10) & 0x1f;
  let mantissa = h & 0x3ff;
  // Infinity, or NaN: payload kept and, as IEEE conversion (and torch, and the F16C instruction)
  // does, a signaling NaN made quiet.
  if (exponent === 0x1f) return (sign | 0x7f800000 | (mantissa << 13) | (mantissa === 0 ? 0 : 0x400000)) >>> 0;
  if (exponent !== 0) return (sign | ((exponent + 112) << 23) | (mantissa << 13)) >>> 0;
  if (mantissa === 0) return sign >>> 0;
  // Subnormal half: shift the mantissa up to an implicit leading 1, lowering the exponent per shift.
  let e = 113;
  while ((mantissa & 0x400) === 0) {
    mantissa <<= 1;
    e--;
  }
  return (sign | (e << 23) | ((mantissa & 0x3ff) << 13)) >>> 0;
}

/**
 * float32 values to the raw bytes of `dtype`, for saving a float32 array as another dtype:
 * - F32 as is; F64 exactly (every float32 is a double);
 * - F16 and BF16 rounded to nearest, ties to even (what torch's `.half()` / `.bfloat16()` do),
 *   beyond the range to +-Infinity, NaN kept NaN with its leading payload bits;
 * - BOOL only from 0 or 1; integer dtypes only from integers within the dtype's range (-0 is 0).
 *   Any other value refuses the save, naming the tensor, the index and the value.
 */
export function fromFloat32(values: Float32Array, dtype: SafetensorsDType, name: string, op: string): Uint8Array<ArrayBuffer> {
  const n = values.length;
  const out = new RAW_ARRAY[dtype](n);
  switch (dtype) {
    case 'F32':
    case 'F64':
      (out as Float32Array | Float64Array).set(values);
      break;
    case 'F16':
    case 'BF16': {
      const bits = new Uint32Array(values.buffer, values.byteOffset, n);
      const r = out as Uint16Array;
      const convert = dtype === 'F16' ? floatBitsToHalf : floatBitsToBfloat16;
      for (let i = 0; i < n; i++) r[i] = convert(bits[i]);
      break;
    }
    case 'BOOL': {
      const r = out as Uint8Array;
      for (let i = 0; i < n; i++) {
        const v = values[i];
        if (v !== 0 && v !== 1) unrepresentable(op, name, dtype, i, v, 'only 0 and 1 can be saved as BOOL');
        r[i] = v;
      }
      break;
    }
    case 'U8': case 'I8': case 'U16': case 'I16': case 'I32': case 'U32': {
      const [low, high] = INTEGER_RANGE[dtype];
      const r = out as Int32Array;
      for (let i = 0; i < n; i++) {
        const v = values[i];
        if (!Number.isInteger(v) || v < low || v > high) unrepresentable(op, name, dtype, i, v, `expected integers in [${low}, ${high}]`);
        r[i] = v;
      }
      break;
    }
    case 'I64':
    case 'U64': {
      const r = out as BigInt64Array | BigUint64Array;
      const low = dtype === 'U64' ? 0 : -(2 ** 63);
      for (let i = 0; i < n; i++) {
        const v = values[i];
        // Every float32 integer of magnitude below 2^63 (2^64 unsigned) fits exactly.
        if (!Number.isInteger(v) || v < low || v >= (dtype === 'U64' ? 2 ** 64 : 2 ** 63)) unrepresentable(op, name, dtype, i, v, 'expected integers within the dtype\'s range');
        r[i] = BigInt(v);
      }
      break;
    }
    default:
      return dtype satisfies never;
  }
  requireLittleEndian(op, dtype);
  return new Uint8Array(out.buffer as ArrayBuffer, 0, n * ITEM_SIZE[dtype]);
}

const INTEGER_RANGE = {
  U8: [0, 255], I8: [-128, 127], U16: [0, 65535], I16: [-32768, 32767],
  I32: [-(2 ** 31), 2 ** 31 - 1], U32: [0, 2 ** 32 - 1],
} as const;

function unrepresentable(op: string, name: string, dtype: SafetensorsDType, index: number, value: number, expected: string): never {
  return fail(op, `tensor '${name}' cannot be saved as ${dtype}: it holds ${Object.is(value, -0) ? '-0' : String(value)} at flat index ${index}; ${expected}`);
}

/**
 * float32 bits -> bfloat16 bits: the upper half, rounded to nearest even. A NaN keeps its upper
 * half (so every bfloat16 NaN loaded comes back as it was) unless that would read as Infinity,
 * when its quiet bit is set.
 */
export function floatBitsToBfloat16(f: number): number {
  if ((f & 0x7fffffff) > 0x7f800000) return (f >>> 16) & 0x7f ? f >>> 16 : (f >>> 16) | 0x40;
  // Adding 0x7fff plus the lowest kept bit rounds ties to even; a carry into the exponent is right
  // (the next binade, or Infinity from the largest finite values).
  return ((f + 0x7fff + ((f >>> 16) & 1)) >>> 16) & 0xffff;
}

/**
 * float32 bits -> IEEE half bits, rounded to nearest even: normal halves keep 10 of the 23 mantissa
 * bits, subnormal halves (below 2^-14) fewer; values from 65520 up round to Infinity. A NaN keeps
 * its leading 10 payload bits (so every half NaN loaded comes back as it was loaded), with the quiet
 * bit set where those are all zero (they would read as Infinity).
 */
export function floatBitsToHalf(f: number): number {
  const sign = (f >>> 16) & 0x8000;
  const abs = f & 0x7fffffff;
  if (abs > 0x7f800000) return sign | 0x7c00 | ((abs >>> 13) & 0x3ff || 0x200);
  if (abs >= 0x477ff000) return sign | 0x7c00; // >= 65520 (the tie above 65504 rounds to even: Infinity)
  const exponent = abs >>> 23;
  if (exponent >= 113) {
    // Normal half: re-bias the exponent, round the 13 dropped bits (a carry may bump the exponent).
    const m = abs - (112 << 23);
    return sign | ((m + 0xfff + ((m >>> 13) & 1)) >>> 13);
  }
  if (exponent < 102) return sign; // below 2^-25: rounds to zero (2^-25 itself is a tie, to even 0)
  // Subnormal half: the value in units of 2^-24 is (1.m) * 2^(exponent - 127 + 24); shift with rounding.
  const mantissa = (abs & 0x7fffff) | 0x800000;
  const shift = 126 - exponent; // 14 for exponent 112 (2^-15) ... 24 for exponent 102 (2^-25)
  const q = mantissa >>> shift;
  const rest = mantissa & ((1 << shift) - 1);
  const half = 1 << (shift - 1);
  return sign | (rest > half || (rest === half && (q & 1) === 1) ? q + 1 : q);
}
