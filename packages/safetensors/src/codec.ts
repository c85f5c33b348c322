/**
 * The host level: bytes <-> `{ name: { dtype, shape, data } }` with typed arrays, no backend. The
 * writer reproduces the reference writer (Python's `safetensors`) byte for byte: tensors sorted by
 * dtype (widest first) then by name, the JSON header written in that order with `__metadata__`
 * first, no spaces, padded with spaces to a multiple of 8 bytes.
 */
import { fail } from '@needle/ndarray';
import { ITEM_SIZE, LITTLE_ENDIAN, RAW_ARRAY, isDType, writeRank, DTYPES, type RawData, type SafetensorsDType } from './dtypes';
import { METADATA_KEY, parseHeader, type ParsedHeader } from './header';

/** A tensor on the host: raw elements in the typed array of its dtype (see `RawData`), row-major. */
export type HostTensor = { [D in SafetensorsDType]: { dtype: D; shape: number[]; data: RawData[D] } }[SafetensorsDType];

/** String keys to string values: the format's `__metadata__`. */
export type Metadata = Record<string, string>;

export interface Decoded<T> {
  tensors: Record<string, T>;
  /** The file's `__metadata__`, or undefined when it has none. */
  metadata: Metadata | undefined;
}

export interface DecodeOptions {
  /** What the bytes are, for error messages: a file path or URL (default "buffer"). */
  source?: string;
}

/**
 * Encode host tensors (any dtype of `DTYPES`) and optional metadata as a safetensors file. The
 * bytes equal what Python's `safetensors` writes for the same tensors and metadata, except that
 * with two or more metadata keys Python's order is arbitrary (a hash map) while ours is sorted.
 */
export function encode(tensors: Record<string, HostTensor> | Map<string, HostTensor>, metadata?: Metadata): Uint8Array<ArrayBuffer> {
  const op = 'safetensors.encode';
  const entries = tensors instanceof Map ? [...tensors] : Object.entries(tensors);
  for (const [name, t] of entries) checkHostTensor(op, name, t);
  return writeFile(op, entries.map(([name, t]) => ({ name, dtype: t.dtype, shape: t.shape, bytes: bytesOf(t.data) })), metadata);
}

/** Decode a safetensors file into host tensors (fresh typed arrays, not views of `bytes`). */
export function decode(bytes: Uint8Array, options: DecodeOptions = {}): Decoded<HostTensor> {
  const header = parseHeader(checkBytes('safetensors.decode', bytes), 'safetensors.decode', options.source ?? 'buffer');
  const out: [string, HostTensor][] = header.tensors.map((t) => {
    const [begin, end] = t.dataOffsets;
    // slice() copies into a fresh buffer at offset 0, so every typed array is aligned.
    const copy = bytes.slice(header.dataStart + begin, header.dataStart + end);
    requireLittleEndian('safetensors.decode', t.dtype);
    const data = new RAW_ARRAY[t.dtype](copy.buffer, 0, (end - begin) / ITEM_SIZE[t.dtype]);
    return [t.name, { dtype: t.dtype, shape: t.shape, data } as HostTensor];
  });
  return { tensors: Object.fromEntries(out), metadata: header.metadata };
}

/** Read and check only the header: names, dtypes, shapes, offsets and metadata, no tensor data. */
export function decodeHeader(bytes: Uint8Array, options: DecodeOptions = {}): ParsedHeader {
  return parseHeader(checkBytes('safetensors.decodeHeader', bytes), 'safetensors.decodeHeader', options.source ?? 'buffer');
}

/** One tensor's raw little-endian bytes, ready to write. */
export interface RawTensor {
  name: string;
  dtype: SafetensorsDType;
  shape: readonly number[];
  bytes: Uint8Array;
}

/** Lay out and write a file; names, shapes and byte lengths are the caller's to have checked. */
export function writeFile(op: string, tensors: RawTensor[], metadata: Metadata | undefined): Uint8Array<ArrayBuffer> {
  checkMetadata(op, metadata);
  const seen = new Set<string>();
  for (const t of tensors) {
    if (seen.has(t.name)) fail(op, `tensor name '${t.name}' is given twice`);
    seen.add(t.name);
  }
  const ordered = [...tensors].sort((a, b) => writeRank(b.dtype) - writeRank(a.dtype) || compareCodePoints(a.name, b.name));
  const fields: string[] = [];
  if (metadata !== undefined) {
    const keys = Object.keys(metadata).sort(compareCodePoints);
    fields.push(`"${METADATA_KEY}":{${keys.map((k) => `${JSON.stringify(k)}:${JSON.stringify(metadata[k])}`).join(',')}}`);
  }
  let offset = 0;
  for (const t of ordered) {
    const end = offset + t.bytes.byteLength;
    // Written by hand, not JSON.stringify(object): object key order puts integer-like names first.
    fields.push(`${JSON.stringify(t.name)}:{"dtype":"${t.dtype}","shape":[${t.shape.join(',')}],"data_offsets":[${offset},${end}]}`);
    offset = end;
  }
  const json = new TextEncoder().encode(`{${fields.join(',')}}`);
  const headerLength = Math.ceil(json.length / 8) * 8;
  const out = new Uint8Array(8 + headerLength + offset);
  const view = new DataView(out.buffer);
  view.setUint32(0, headerLength % 2 ** 32, true);
  view.setUint32(4, Math.floor(headerLength / 2 ** 32), true);
  out.set(json, 8);
  out.fill(0x20, 8 + json.length, 8 + headerLength);
  let at = 8 + headerLength;
  for (const t of ordered) {
    out.set(t.bytes, at);
    at += t.bytes.byteLength;
  }
  return out;
}

export function checkMetadata(op: string, metadata: unknown): asserts metadata is Metadata | undefined {
  if (metadata === undefined) return;
  if (typeof metadata !== 'object' || metadata === null || Array.isArray(metadata)) fail(op, `metadata must be an object of string values, got ${metadata === null ? 'null' : typeof metadata}`);
  for (const [k, v] of Object.entries(metadata)) {
    if (typeof v !== 'string') fail(op, `metadata value for key ${JSON.stringify(k)} must be a string, got ${typeof v} (JSON.stringify it first)`);
  }
}

export function checkTensorName(op: string, name: unknown): asserts name is string {
  if (typeof name !== 'string' || name.length === 0) fail(op, `tensor names must be non-empty strings, got ${typeof name === 'string' ? 'an empty string' : typeof name}`);
  if (name === METADATA_KEY) fail(op, `'${METADATA_KEY}' is reserved for the metadata and cannot name a tensor`);
}

function checkHostTensor(op: string, name: string, t: HostTensor): void {
  checkTensorName(op, name);
  if (typeof t !== 'object' || t === null) fail(op, `tensor '${name}' must be { dtype, shape, data }, got ${t === null ? 'null' : typeof t}`);
  if (!isDType(t.dtype)) fail(op, `tensor '${name}' has dtype ${JSON.stringify(t.dtype)}, expected one of ${DTYPES.join(', ')}`);
  if (!Array.isArray(t.shape) || !t.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    fail(op, `tensor '${name}' has shape ${JSON.stringify(t.shape)}, expected a list of non-negative integers`);
  }
  const Ctor = RAW_ARRAY[t.dtype];
  if (!(t.data instanceof Ctor)) fail(op, `tensor '${name}' of dtype ${t.dtype} must hold its data in a ${Ctor.name}, got ${(t.data as object)?.constructor?.name ?? typeof t.data}`);
  const size = t.shape.reduce((a, d) => a * d, 1);
  if (t.data.length !== size) fail(op, `tensor '${name}' has ${t.data.length} elements but shape [${t.shape.join(', ')}] needs ${size}`);
  requireLittleEndian(op, t.dtype);
}

function bytesOf(data: ArrayBufferView): Uint8Array {
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

export function checkBytes(op: string, bytes: unknown): Uint8Array {
  if (!(bytes instanceof Uint8Array)) fail(op, `expected the file's bytes as a Uint8Array, got ${(bytes as object)?.constructor?.name ?? typeof bytes}`);
  return bytes;
}

export function requireLittleEndian(op: string, dtype: SafetensorsDType): void {
  if (!LITTLE_ENDIAN && ITEM_SIZE[dtype] > 1) fail(op, `this host is big-endian; safetensors data is little-endian and ${dtype} would need byte swapping, which is not implemented`);
}

/**
 * Order strings by Unicode code point, which is the byte order of their UTF-8 encodings (how the
 * reference writer, in Rust, compares names). `<` compares UTF-16 units and differs above U+FFFF.
 */
export function compareCodePoints(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.codePointAt(i)!;
    const y = b.codePointAt(i)!;
    if (x !== y) return x - y;
    if (x > 0xffff) i++;
  }
  return a.length - b.length;
}
