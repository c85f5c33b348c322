import { fail, formatShape } from '@needle/ndarray';
import { isGzip } from './gzip';

/** The element types the IDX format defines (third byte of the magic number). */
export type IdxType = 'uint8' | 'int8' | 'int16' | 'int32' | 'float32' | 'float64';

export type IdxData = Uint8Array | Int8Array | Int16Array | Int32Array | Float32Array | Float64Array;

export interface IdxArray {
  type: IdxType;
  shape: number[];
  /** Row-major elements. For uint8 a view of the input bytes (no copy); otherwise decoded big-endian. */
  data: IdxData;
}

const TYPES: Record<number, { type: IdxType; bytes: number }> = {
  0x08: { type: 'uint8', bytes: 1 },
  0x09: { type: 'int8', bytes: 1 },
  0x0b: { type: 'int16', bytes: 2 },
  0x0c: { type: 'int32', bytes: 4 },
  0x0d: { type: 'float32', bytes: 4 },
  0x0e: { type: 'float64', bytes: 8 },
};

const hex = (v: number) => `0x${(v >>> 0).toString(16).padStart(8, '0')}`;

interface IdxHeader {
  magic: number;
  type: IdxType;
  elementBytes: number;
  shape: number[];
  headerBytes: number;
}

/** Read and check the magic number and the dimensions; `op` names the caller in errors. */
function readHeader(op: string, bytes: Uint8Array): IdxHeader {
  if (!(bytes instanceof Uint8Array)) fail(op, 'expected the file contents as a Uint8Array');
  if (isGzip(bytes)) {
    fail(op, 'the data is gzip-compressed (starts with 1f 8b); decompress it first with `await gunzipIfNeeded(bytes)`, or use readIdx/loadMNIST, which do');
  }
  if (bytes.length < 4) fail(op, `truncated IDX file: ${bytes.length} bytes, the magic number alone needs 4`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const magic = view.getUint32(0, false);
  const t = TYPES[bytes[2]];
  if (bytes[0] !== 0 || bytes[1] !== 0 || !t) {
    fail(op, `not an IDX file: magic number ${hex(magic)}, expected 0x0000TTDD with type TT in 08, 09, 0b, 0c, 0d, 0e`);
  }
  const ndim = bytes[3];
  const headerBytes = 4 + 4 * ndim;
  if (bytes.length < headerBytes) {
    fail(op, `truncated IDX file: ${bytes.length} bytes, but the header of ${ndim} dimensions needs ${headerBytes}`);
  }
  const shape: number[] = [];
  for (let i = 0; i < ndim; i++) shape.push(view.getUint32(4 + 4 * i, false));
  return { magic, type: t.type, elementBytes: t.bytes, shape, headerBytes };
}

/** Check the body size against the header and decode it. */
function readBody(op: string, bytes: Uint8Array, h: IdxHeader): IdxArray {
  const count = h.shape.reduce((p, d) => p * d, 1);
  const expected = h.headerBytes + count * h.elementBytes;
  if (bytes.length < expected) {
    fail(op, `truncated IDX file: ${bytes.length} bytes, but shape ${formatShape(h.shape)} of ${h.type} needs ${expected} (header ${h.headerBytes} + ${count * h.elementBytes} data)`);
  }
  if (bytes.length > expected) {
    fail(op, `IDX file has ${bytes.length - expected} unexpected trailing bytes: ${bytes.length} bytes, shape ${formatShape(h.shape)} of ${h.type} needs exactly ${expected}`);
  }
  const body = bytes.subarray(h.headerBytes);
  if (h.type === 'uint8') return { type: h.type, shape: h.shape, data: body };
  if (h.type === 'int8') return { type: h.type, shape: h.shape, data: new Int8Array(body.buffer, body.byteOffset, body.length) };
  // Multi-byte IDX elements are big-endian; typed arrays use the platform's order, so decode each.
  const view = new DataView(body.buffer, body.byteOffset, body.byteLength);
  switch (h.type) {
    case 'int16': {
      const out = new Int16Array(count);
      for (let i = 0; i < count; i++) out[i] = view.getInt16(2 * i, false);
      return { type: h.type, shape: h.shape, data: out };
    }
    case 'int32': {
      const out = new Int32Array(count);
      for (let i = 0; i < count; i++) out[i] = view.getInt32(4 * i, false);
      return { type: h.type, shape: h.shape, data: out };
    }
    case 'float32': {
      const out = new Float32Array(count);
      for (let i = 0; i < count; i++) out[i] = view.getFloat32(4 * i, false);
      return { type: h.type, shape: h.shape, data: out };
    }
    case 'float64': {
      const out = new Float64Array(count);
      for (let i = 0; i < count; i++) out[i] = view.getFloat64(8 * i, false);
      return { type: h.type, shape: h.shape, data: out };
    }
    default:
      return h.type satisfies never;
  }
}

/**
 * Parse an uncompressed IDX file (the format of MNIST and Fashion-MNIST): magic number, big-endian
 * dimensions, elements. Fails with a clear error on a wrong magic number, a truncated file or
 * trailing bytes. Gzip data must be decompressed first (`gunzipIfNeeded`).
 */
export function parseIdx(bytes: Uint8Array): IdxArray {
  return readBody('parseIdx', bytes, readHeader('parseIdx', bytes));
}

/** MNIST magic numbers: unsigned bytes (0x08) with 3 dimensions for images, 1 for labels. */
export const MNIST_IMAGES_MAGIC = 0x00000803;
export const MNIST_LABELS_MAGIC = 0x00000801;

export interface MnistImages {
  count: number;
  rows: number;
  cols: number;
  /** count * rows * cols bytes, image after image, row-major. */
  pixels: Uint8Array;
}

export interface MnistLabels {
  count: number;
  labels: Uint8Array;
}

function expectMagic(op: string, h: IdxHeader, magic: number, what: string): void {
  if (h.magic !== magic) {
    const other = h.magic === MNIST_LABELS_MAGIC ? ' (that is a labels file)' : h.magic === MNIST_IMAGES_MAGIC ? ' (that is an images file)' : '';
    fail(op, `magic number ${hex(h.magic)}${other}, expected ${hex(magic)} for ${what}`);
  }
}

/** Parse an MNIST/Fashion-MNIST images file (e.g. train-images-idx3-ubyte), uncompressed. */
export function parseMnistImages(bytes: Uint8Array): MnistImages {
  const op = 'parseMnistImages';
  const h = readHeader(op, bytes);
  expectMagic(op, h, MNIST_IMAGES_MAGIC, 'MNIST images (unsigned bytes, 3 dimensions)');
  const [count, rows, cols] = h.shape;
  if (rows === 0 || cols === 0) fail(op, `images of ${rows}x${cols} pixels: rows and cols must be positive`);
  return { count, rows, cols, pixels: readBody(op, bytes, h).data as Uint8Array };
}

/** Parse an MNIST/Fashion-MNIST labels file (e.g. train-labels-idx1-ubyte), uncompressed. */
export function parseMnistLabels(bytes: Uint8Array): MnistLabels {
  const op = 'parseMnistLabels';
  const h = readHeader(op, bytes);
  expectMagic(op, h, MNIST_LABELS_MAGIC, 'MNIST labels (unsigned bytes, 1 dimension)');
  const labels = readBody(op, bytes, h).data as Uint8Array;
  // Class indices 0..9 (MNIST and Fashion-MNIST): a larger byte would index past the classifier's
  // logits on the device, where it can no longer be checked.
  const bad = labels.findIndex((l) => l > 9);
  if (bad >= 0) {
    fail(op, `label ${bad} (byte offset ${bytes.length - labels.length + bad}) is ${labels[bad]}, expected a class index 0..9; this is not an MNIST labels file`);
  }
  return { count: h.shape[0], labels };
}
