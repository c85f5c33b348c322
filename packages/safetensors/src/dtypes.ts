/**
 * The safetensors dtypes this package reads and writes, the typed array each one's raw data lives
 * in, and the order the reference writer (Python's `safetensors`, a Rust core) lays tensors out in.
 */

/** Every dtype this package can read (converting to float32 on load) and write in host tensors. */
export const DTYPES = ['BOOL', 'U8', 'I8', 'I16', 'U16', 'F16', 'BF16', 'I32', 'U32', 'F32', 'F64', 'I64', 'U64'] as const;
export type SafetensorsDType = (typeof DTYPES)[number];

/**
 * Names the format defines that we do not read (sub-byte and 8-bit floats, complex), so that a file
 * holding one gets "not supported" rather than "unknown".
 */
export const UNSUPPORTED_DTYPES: readonly string[] = ['F4', 'F6_E2M3', 'F6_E3M2', 'F8_E5M2', 'F8_E4M3', 'F8_E8M0', 'C64'];

/** Bytes per element. */
export const ITEM_SIZE: Record<SafetensorsDType, number> = {
  BOOL: 1, U8: 1, I8: 1, I16: 2, U16: 2, F16: 2, BF16: 2, I32: 4, U32: 4, F32: 4, F64: 8, I64: 8, U64: 8,
};

/**
 * The raw element storage of each dtype in a host tensor. F16 and BF16 have no JS typed array: their
 * raw 16-bit patterns are kept in a Uint16Array. BOOL is one byte per element, 0 or 1.
 */
export interface RawData {
  BOOL: Uint8Array;
  U8: Uint8Array;
  I8: Int8Array;
  I16: Int16Array;
  U16: Uint16Array;
  F16: Uint16Array;
  BF16: Uint16Array;
  I32: Int32Array;
  U32: Uint32Array;
  F32: Float32Array;
  F64: Float64Array;
  I64: BigInt64Array;
  U64: BigUint64Array;
}

type TypedArrayConstructor = {
  new (buffer: ArrayBufferLike, byteOffset: number, length: number): RawData[SafetensorsDType];
  new (length: number): RawData[SafetensorsDType];
  readonly name: string;
};

export const RAW_ARRAY: Record<SafetensorsDType, TypedArrayConstructor> = {
  BOOL: Uint8Array, U8: Uint8Array, I8: Int8Array, I16: Int16Array, U16: Uint16Array, F16: Uint16Array,
  BF16: Uint16Array, I32: Int32Array, U32: Uint32Array, F32: Float32Array, F64: Float64Array,
  I64: BigInt64Array, U64: BigUint64Array,
};

/**
 * The reference writer sorts tensors by dtype, in the reverse of the order its dtype enum declares
 * them (widest alignment first, so every tensor starts aligned), then by name. Ranks copied from that
 * order as observed from `safetensors.numpy.save` / `safetensors.torch.save` (see
 * scripts/gen_fixtures.py); the unsupported names keep their places so the table stays the spec's.
 */
const WRITE_ORDER = [
  'BOOL', 'F4', 'F6_E2M3', 'F6_E3M2', 'U8', 'I8', 'F8_E5M2', 'F8_E4M3', 'F8_E8M0', 'I16', 'U16', 'F16', 'BF16',
  'I32', 'U32', 'F32', 'C64', 'F64', 'I64', 'U64',
];

export function writeRank(dtype: SafetensorsDType): number {
  return WRITE_ORDER.indexOf(dtype);
}

export function isDType(name: unknown): name is SafetensorsDType {
  return typeof name === 'string' && (DTYPES as readonly string[]).includes(name);
}

/** Typed arrays view memory in the host's byte order; the format is little-endian. */
export const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
