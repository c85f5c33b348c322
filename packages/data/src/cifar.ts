import { Dataset } from './dataset';
import { fail } from '@needle/ndarray';
import { gunzipIfNeeded } from './gzip';
import { hostArray, type HostArray } from './host';
import { fileExists, joinPath, readFileBytes } from './node-fs';
import { applyTransform, type TransformLike } from './transforms';

/** CIFAR-10 binary records: 1 label byte, then 3 * 32 * 32 pixel bytes (the R, G and B planes). */
export const CIFAR10_IMAGE_BYTES = 3 * 32 * 32;
export const CIFAR10_RECORD_BYTES = 1 + CIFAR10_IMAGE_BYTES;
export const CIFAR10_CLASSES = ['airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship', 'truck'] as const;

export interface Cifar10Batch {
  count: number;
  labels: Uint8Array;
  /** count * 3072 bytes: per image the 1024 R, then G, then B values (CHW), rows top to bottom. */
  pixels: Uint8Array;
}

/**
 * Parse a CIFAR-10 binary batch (data_batch_1.bin ... data_batch_5.bin, test_batch.bin). The format
 * has no header, so the checks are the record structure: a whole number of 3073-byte records and
 * labels in 0..9. Gzip data must be decompressed first (`gunzipIfNeeded`).
 */
export function parseCifar10Batch(bytes: Uint8Array): Cifar10Batch {
  const op = 'parseCifar10Batch';
  if (!(bytes instanceof Uint8Array)) fail(op, 'expected the file contents as a Uint8Array');
  if (bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b) {
    fail(op, 'the data is gzip-compressed (starts with 1f 8b); decompress it first with `await gunzipIfNeeded(bytes)`');
  }
  if (bytes.length === 0) fail(op, 'empty file: expected records of 3073 bytes (1 label + 3072 pixels)');
  if (bytes.length % CIFAR10_RECORD_BYTES !== 0) {
    const whole = Math.floor(bytes.length / CIFAR10_RECORD_BYTES);
    fail(op, `${bytes.length} bytes is not a whole number of 3073-byte records (1 label + 3072 pixels): ${whole} records and ${bytes.length % CIFAR10_RECORD_BYTES} extra bytes; the file is truncated or not a CIFAR-10 binary batch`);
  }
  const count = bytes.length / CIFAR10_RECORD_BYTES;
  const labels = new Uint8Array(count);
  const pixels = new Uint8Array(count * CIFAR10_IMAGE_BYTES);
  for (let i = 0; i < count; i++) {
    const at = i * CIFAR10_RECORD_BYTES;
    const label = bytes[at];
    if (label > 9) {
      fail(op, `record ${i} (byte offset ${at}) has label ${label}, expected 0..9; this is not a CIFAR-10 binary batch (CIFAR-100 records have 2 label bytes)`);
    }
    labels[i] = label;
    pixels.set(bytes.subarray(at + 1, at + CIFAR10_RECORD_BYTES), i * CIFAR10_IMAGE_BYTES);
  }
  return { count, labels, pixels };
}

export interface CIFAR10Options {
  /** Per-sample transform on the [3, 32, 32] image. */
  transform?: TransformLike;
}

/** CIFAR-10: sample i is [image, label], the image CHW [3, 32, 32] float32 in [0, 1], the label a class index. */
export class CIFAR10Dataset extends Dataset<[HostArray, number]> {
  readonly labels: Uint8Array;
  readonly pixels: Uint8Array;
  readonly transform: TransformLike | undefined;

  /** One or several parsed batches, concatenated in order. */
  constructor(batches: Cifar10Batch | readonly Cifar10Batch[], options: CIFAR10Options = {}) {
    super();
    const list = Array.isArray(batches) ? (batches as readonly Cifar10Batch[]) : [batches as Cifar10Batch];
    if (list.length === 1) {
      this.labels = list[0].labels;
      this.pixels = list[0].pixels;
    } else {
      const count = list.reduce((n, b) => n + b.count, 0);
      this.labels = new Uint8Array(count);
      this.pixels = new Uint8Array(count * CIFAR10_IMAGE_BYTES);
      let at = 0;
      for (const b of list) {
        this.labels.set(b.labels, at);
        this.pixels.set(b.pixels, at * CIFAR10_IMAGE_BYTES);
        at += b.count;
      }
    }
    this.transform = options.transform;
  }

  get length(): number {
    return this.labels.length;
  }

  get(index: number): [HostArray, number] {
    this.checkIndex('CIFAR10Dataset.get', index);
    const data = new Float32Array(CIFAR10_IMAGE_BYTES);
    const base = index * CIFAR10_IMAGE_BYTES;
    for (let i = 0; i < CIFAR10_IMAGE_BYTES; i++) data[i] = this.pixels[base + i] / 255;
    let image = hostArray(data, [3, 32, 32]);
    if (this.transform) image = applyTransform(this.transform, image);
    return [image, this.labels[index]];
  }
}

export interface LoadCIFAR10Options extends CIFAR10Options {
  /** data_batch_1.bin ... data_batch_5.bin (true, default) or test_batch.bin (false). */
  train?: boolean;
  /**
   * Which training batches: 'all' (default; a missing one is an error), 'present' (those of the five
   * that exist in `dir`, in order; an error only when there is none), or a list of numbers 1..5.
   */
  batches?: 'all' | 'present' | readonly number[];
}

function trainBatchNames(op: string, batches: LoadCIFAR10Options['batches']): number[] {
  if (batches === undefined || batches === 'all' || batches === 'present') return [1, 2, 3, 4, 5];
  if (!Array.isArray(batches) || batches.length === 0 || batches.some((b) => !Number.isInteger(b) || b < 1 || b > 5)) {
    fail(op, `batches must be 'all', 'present' or a non-empty list of batch numbers 1..5, got ${JSON.stringify(batches)}`);
  }
  return [...batches];
}

/**
 * Node only: read CIFAR-10 from `dir`, the folder of the binary version (cifar-10-batches-bin),
 * holding data_batch_1.bin ... data_batch_5.bin and test_batch.bin (raw or gzip content).
 */
export async function loadCIFAR10(dir: string, options: LoadCIFAR10Options = {}): Promise<CIFAR10Dataset> {
  const op = 'loadCIFAR10';
  const train = options.train ?? true;
  let names = train ? trainBatchNames(op, options.batches).map((i) => `data_batch_${i}.bin`) : ['test_batch.bin'];
  if (train && options.batches === 'present') {
    const present = await Promise.all(names.map((name) => fileExists(joinPath(dir, name))));
    names = names.filter((_, i) => present[i]);
    if (names.length === 0) fail(op, `no training batch in ${dir}: expected some of data_batch_1.bin ... data_batch_5.bin (CIFAR-10's binary version)`);
  }
  // Read in parallel, but report the first failing file in batch order, not whichever failed first.
  const settled = await Promise.allSettled(
    names.map(async (name) => {
      const path = joinPath(dir, name);
      const bytes = await gunzipIfNeeded(await readFileBytes(op, path), path);
      try {
        return parseCifar10Batch(bytes);
      } catch (e) {
        return fail(op, `${path}: ${(e as Error).message}`);
      }
    }),
  );
  const failed = settled.find((r) => r.status === 'rejected');
  if (failed) throw failed.reason;
  const batches = settled.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
  return new CIFAR10Dataset(batches, options);
}
