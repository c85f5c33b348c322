/**
 * Reading and checking a safetensors header. A file is
 *   8 bytes   N, the header length, an unsigned 64-bit little-endian integer
 *   N bytes   a UTF-8 JSON object: { "<name>": { "dtype", "shape", "data_offsets": [begin, end] }, ...,
 *             "__metadata__"?: { "<key>": "<string>" } }, padded with spaces
 *   the rest  the data section: every tensor's bytes, little-endian, row-major, tightly packed
 * `data_offsets` count from the start of the data section. Everything is checked here, before any
 * tensor is read, so a bad file loads nothing.
 */
import { fail } from '@needle/ndarray';
import { isDType, ITEM_SIZE, UNSUPPORTED_DTYPES, DTYPES, type SafetensorsDType } from './dtypes';

/** The reference implementation refuses headers over 100 MB; so do we, before reading them. */
export const MAX_HEADER_BYTES = 100_000_000;

export const METADATA_KEY = '__metadata__';

/** One tensor's entry in the header, offsets made absolute for reading. */
export interface TensorEntry {
  name: string;
  dtype: SafetensorsDType;
  shape: number[];
  /** Begin and end of its bytes, relative to the data section (as in the file). */
  dataOffsets: [number, number];
}

export interface ParsedHeader {
  /** The tensors in data-section order. */
  tensors: TensorEntry[];
  /** `__metadata__`, or undefined when the file has none. */
  metadata: Record<string, string> | undefined;
  /** Byte offset of the data section from the start of the file (8 + header length). */
  dataStart: number;
}

/** Parse and fully check the header of `bytes`; `source` names the file (or "buffer") in errors. */
export function parseHeader(bytes: Uint8Array, op: string, source: string): ParsedHeader {
  const bad = (problem: string): never => fail(op, `${source}: ${problem}`);
  if (bytes.length < 8) bad(`${bytes.length} bytes is too short for a safetensors file (it starts with an 8-byte header length)`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const lengthLow = view.getUint32(0, true);
  const lengthHigh = view.getUint32(4, true);
  // Checked before anything is allocated or decoded: a corrupt length must not cost 100 MB.
  if (lengthHigh !== 0 || lengthLow > MAX_HEADER_BYTES) {
    bad(`header length ${lengthHigh * 2 ** 32 + lengthLow} bytes is over the 100 MB limit (${MAX_HEADER_BYTES} bytes)`);
  }
  const headerLength = lengthLow;
  if (8 + headerLength > bytes.length) {
    bad(`header length ${headerLength} bytes runs past the end of the file (${bytes.length} bytes, so at most ${bytes.length - 8})`);
  }
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(bytes.subarray(8, 8 + headerLength));
  } catch {
    return bad('the header is not valid UTF-8');
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    return bad(`the header is not valid JSON (${(e as Error).message})`);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    bad(`the header must be a JSON object, got ${json === null ? 'null' : Array.isArray(json) ? 'an array' : typeof json}`);
  }
  // JSON.parse keeps the last of two equal keys without a word; a file that names a tensor twice is
  // ambiguous, so it is refused.
  const duplicate = findDuplicateKey(text);
  if (duplicate) bad(`the header has the key ${JSON.stringify(duplicate.key)} twice${duplicate.within ? ` inside ${JSON.stringify(duplicate.within)}` : ''}`);

  const dataStart = 8 + headerLength;
  const dataLength = bytes.length - dataStart;
  let metadata: Record<string, string> | undefined;
  const tensors: TensorEntry[] = [];
  for (const [name, value] of Object.entries(json as Record<string, unknown>)) {
    if (name === METADATA_KEY) {
      metadata = checkMetadata(value, bad);
      continue;
    }
    tensors.push(checkEntry(name, value, bad));
  }

  // Tightly packed: sorted by begin, each tensor starts where the previous one ended, the first at 0
  // and the last ends the file. (Equal begins only happen for empty tensors; the sort is stable.)
  const byBegin = [...tensors].sort((a, b) => a.dataOffsets[0] - b.dataOffsets[0] || a.dataOffsets[1] - b.dataOffsets[1]);
  let end = 0;
  let previous: TensorEntry | undefined;
  for (const t of byBegin) {
    const [b, e] = t.dataOffsets;
    if (e > dataLength) {
      bad(`tensor '${t.name}' has data_offsets [${b}, ${e}], past the end of the data section (${dataLength} bytes): the file is truncated or the offsets are wrong`);
    }
    if (b < end) bad(`tensor '${t.name}' has data_offsets [${b}, ${e}], overlapping '${previous!.name}' [${previous!.dataOffsets.join(', ')}]`);
    if (b > end) {
      bad(`tensor '${t.name}' has data_offsets [${b}, ${e}], leaving ${b - end} bytes not covered by any tensor before it (at ${end}); the format requires tightly packed data`);
    }
    end = e;
    previous = t;
  }
  if (end < dataLength) bad(`${dataLength - end} trailing bytes after the last tensor (the data section is ${dataLength} bytes, the tensors cover ${end})`);
  return { tensors: byBegin, metadata, dataStart };
}

function checkMetadata(value: unknown, bad: (p: string) => never): Record<string, string> | undefined {
  // The reference reader accepts null for "no metadata".
  if (value === null) return undefined;
  if (typeof value !== 'object' || Array.isArray(value)) bad(`"${METADATA_KEY}" must be an object of strings, got ${describe(value)}`);
  for (const [k, v] of Object.entries(value as object)) {
    if (typeof v !== 'string') bad(`"${METADATA_KEY}" value for key ${JSON.stringify(k)} must be a string, got ${describe(v)}`);
  }
  return value as Record<string, string>;
}

function checkEntry(name: string, value: unknown, bad: (p: string) => never): TensorEntry {
  const where = `tensor '${name}'`;
  if (typeof value !== 'object' || value === null || Array.isArray(value)) bad(`${where} must be an object with dtype, shape and data_offsets, got ${describe(value)}`);
  const { dtype, shape, data_offsets: offsets } = value as Record<string, unknown>;
  if (!isDType(dtype)) {
    if (typeof dtype === 'string' && UNSUPPORTED_DTYPES.includes(dtype)) bad(`${where} has dtype '${dtype}', which is not supported (supported: ${DTYPES.join(', ')})`);
    bad(`${where} has dtype ${JSON.stringify(dtype) ?? 'undefined'}, which is not a safetensors dtype (supported: ${DTYPES.join(', ')})`);
  }
  if (!Array.isArray(shape) || !shape.every(isCount)) bad(`${where} has shape ${JSON.stringify(shape) ?? 'undefined'}, expected a list of non-negative integers`);
  if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isCount)) {
    bad(`${where} has data_offsets ${JSON.stringify(offsets) ?? 'undefined'}, expected [begin, end] with non-negative integers`);
  }
  const [begin, end] = offsets as [number, number];
  if (end < begin) bad(`${where} has data_offsets [${begin}, ${end}]: end before begin`);
  let elements = 1;
  for (const d of shape as number[]) elements *= d;
  const expected = elements * ITEM_SIZE[dtype];
  if (!Number.isSafeInteger(expected)) bad(`${where} has shape ${JSON.stringify(shape)}, too large to address`);
  if (end - begin !== expected) {
    bad(`${where} has data_offsets [${begin}, ${end}] (${end - begin} bytes), but shape ${JSON.stringify(shape)} of ${dtype} needs ${expected} bytes`);
  }
  return { name, dtype, shape: [...(shape as number[])], dataOffsets: [begin, end] };
}

function isCount(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'object') return 'an object';
  return `${typeof v} ${JSON.stringify(v)}`;
}

/**
 * The first key that appears twice in one object of `text`, which must be valid JSON (JSON.parse
 * has accepted it). A scan of the structure, jumping over strings; `within` is the key of the
 * enclosing object's value, or undefined at the top level.
 */
export function findDuplicateKey(text: string): { key: string; within: string | undefined } | undefined {
  interface Frame { keys: Set<string> | undefined; expectKey: boolean; name: string | undefined }
  const stack: Frame[] = [];
  let lastKey: string | undefined;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22 /* " */) {
      let j = i + 1;
      for (;;) {
        j = text.indexOf('"', j);
        let backslashes = 0;
        while (text.charCodeAt(j - 1 - backslashes) === 0x5c) backslashes++;
        if (backslashes % 2 === 0) break;
        j++;
      }
      const top = stack[stack.length - 1];
      if (top?.keys && top.expectKey) {
        const key = JSON.parse(text.slice(i, j + 1)) as string;
        if (top.keys.has(key)) return { key, within: top.name };
        top.keys.add(key);
        top.expectKey = false;
        lastKey = key;
      }
      i = j;
    } else if (c === 0x7b /* { */ || c === 0x5b /* [ */) {
      const parent = stack[stack.length - 1];
      stack.push({ keys: c === 0x7b ? new Set() : undefined, expectKey: true, name: parent?.keys ? lastKey : parent?.name });
    } else if (c === 0x7d /* } */ || c === 0x5d /* ] */) {
      stack.pop();
    } else if (c === 0x2c /* , */) {
      const top = stack[stack.length - 1];
      if (top) top.expectKey = true;
    }
  }
  return undefined;
}
