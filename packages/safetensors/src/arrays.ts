/**
 * The NDArray level: save NDArrays as a safetensors file, load one as float32 NDArrays on a backend.
 * Saving reads arrays with `await array.toArray()`, so it works on backends that read only
 * asynchronously (WebGPU).
 */
import { NDArray, fail, formatShape, resolveBackend, type Backend } from '@needle/ndarray';
import { checkMetadata, checkTensorName, writeFile, type Decoded, type Metadata } from './codec';
import { parseHeader } from './header';
import { fromFloat32, toFloat32 } from './convert';
import { DTYPES, isDType, type SafetensorsDType } from './dtypes';
import { readSource, type SafetensorsSource } from './sources';

/** An NDArray, or anything that wraps one as `.data` (an autograd Tensor, a Parameter). */
export type ArrayOrTensor = NDArray | { readonly data: NDArray };

export interface LoadOptions {
  /** Backend (instance or registered name) for the new arrays (default: the default backend). */
  backend?: Backend | string;
  /** What the bytes are, for error messages (default: a File's name, a Response's URL, or "buffer"). */
  source?: string;
}

/** The NDArray inside `value`, or undefined when it is neither an NDArray nor wraps one. */
export function arrayOf(value: unknown): NDArray | undefined {
  if (value instanceof NDArray) return value;
  if (typeof value === 'object' && value !== null && 'data' in value && (value as { data: unknown }).data instanceof NDArray) return (value as { data: NDArray }).data;
  return undefined;
}

/** How `save` writes the arrays. */
export interface SaveOptions {
  /**
   * The dtype to store each named tensor as (default F32 for all): e.g. `{ 'bn.num_batches_tracked':
   * 'I64' }` writes what PyTorch keeps as int64 the way torch does. Values convert as
   * `fromFloat32` says: F16/BF16 rounded to nearest even, integer and BOOL dtypes only from values
   * they hold exactly (anything else refuses the whole save, naming tensor, index and value).
   */
  dtypes?: Record<string, SafetensorsDType>;
}

/**
 * Save arrays (float32, as F32 unless `options.dtypes` names another dtype) and optional string
 * metadata as a safetensors file. The arrays are only read, never disposed. Everything is checked
 * before anything is read, and every value is converted before a byte is written.
 */
export async function save(tensors: Record<string, ArrayOrTensor> | Map<string, ArrayOrTensor>, metadata?: Metadata, options: SaveOptions = {}): Promise<Uint8Array<ArrayBuffer>> {
  return saveArrays('safetensors.save', tensors instanceof Map ? [...tensors] : Object.entries(tensors), metadata, options);
}

export async function saveArrays(op: string, entries: [string, unknown][], metadata: Metadata | undefined, options: SaveOptions = {}): Promise<Uint8Array<ArrayBuffer>> {
  checkMetadata(op, metadata);
  const dtypes = checkSaveDTypes(op, options, entries);
  const arrays = entries.map(([name, value]) => {
    checkTensorName(op, name);
    const a = arrayOf(value);
    if (!a) fail(op, `tensor '${name}' is ${describe(value)}, expected an NDArray (or a Tensor wrapping one)`);
    if (a.disposed) fail(op, `tensor '${name}' (shape ${formatShape(a.shape)}) was disposed`);
    if (a.dtype !== 'float32') fail(op, `tensor '${name}' has dtype ${a.dtype}; only float32 arrays are saved`);
    return a;
  });
  // All reads start before the first await, so no array can be disposed between the checks and them.
  const data = await Promise.all(arrays.map((a) => a.toArray()));
  return writeFile(op, entries.map(([name], i) => {
    const dtype = dtypes.get(name) ?? 'F32';
    const bytes = dtype === 'F32' ? new Uint8Array(data[i].buffer, data[i].byteOffset, data[i].byteLength) : fromFloat32(data[i], dtype, name, op);
    return { name, dtype, shape: arrays[i].shape, bytes };
  }), metadata);
}

function checkSaveDTypes(op: string, options: SaveOptions, entries: [string, unknown][]): Map<string, SafetensorsDType> {
  if (typeof options !== 'object' || options === null || Array.isArray(options)) fail(op, `options must be an object, got ${describe(options)}`);
  for (const key of Object.keys(options)) if (key !== 'dtypes') fail(op, `unknown option '${key}'; the options are: dtypes`);
  const given = options.dtypes ?? {};
  if (typeof given !== 'object' || given === null || Array.isArray(given)) fail(op, `options.dtypes must be an object of tensor name -> dtype, got ${describe(given)}`);
  const names = new Set(entries.map(([name]) => name));
  const out = new Map<string, SafetensorsDType>();
  for (const [name, dtype] of Object.entries(given)) {
    if (!names.has(name)) fail(op, `options.dtypes names tensor '${name}', which is not among the tensors saved`);
    if (!isDType(dtype)) fail(op, `options.dtypes['${name}'] is ${describe(dtype)}; expected one of ${DTYPES.join(', ')}`);
    out.set(name, dtype);
  }
  return out;
}

/**
 * Load a safetensors file as float32 NDArrays (see the dtype rules in the README), all or nothing:
 * the header, every offset and every value conversion is checked before the first array is made.
 * The returned arrays are yours to dispose.
 */
export async function load(source: SafetensorsSource, options: LoadOptions = {}): Promise<Decoded<NDArray>> {
  const op = 'safetensors.load';
  const read = await readSource(op, source, options.source);
  return loadBytes(op, read.bytes, read.source, options.backend);
}

export function loadBytes(op: string, bytes: Uint8Array, source: string, backend: Backend | string | undefined): Decoded<NDArray> {
  const header = parseHeader(bytes, op, source);
  const target = resolveBackend(backend);
  const values = header.tensors.map((t) =>
    toFloat32(bytes, header.dataStart + t.dataOffsets[0], header.dataStart + t.dataOffsets[1], t.dtype, t.name, op, source));
  const made: [string, NDArray][] = [];
  try {
    header.tensors.forEach((t, i) => made.push([t.name, NDArray.fromData(values[i], t.shape, target)]));
  } catch (e) {
    for (const [, a] of made) a.dispose();
    throw e;
  }
  return { tensors: Object.fromEntries(made), metadata: header.metadata };
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (typeof v === 'object') return `a ${(v as object).constructor?.name ?? 'object'}`;
  return `a ${typeof v}`;
}
