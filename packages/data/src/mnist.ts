import { Dataset } from './dataset';
import { fail } from '@needle/ndarray';
import { gunzipIfNeeded } from './gzip';
import { hostArray, type HostArray } from './host';
import { parseIdx, parseMnistImages, parseMnistLabels, type IdxArray, type MnistImages, type MnistLabels } from './idx';
import { readFileBytes, readFirstExisting } from './node-fs';
import { applyTransform, type TransformLike } from './transforms';

/** Class names of Fashion-MNIST, which uses MNIST's file format and label indices 0..9. */
export const FASHION_MNIST_CLASSES = ['T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot'] as const;

export interface MNISTOptions {
  /** Return each image as a vector of rows*cols values instead of [1, rows, cols] (default false). */
  flatten?: boolean;
  /** Per-sample transform, applied to the [1, rows, cols] image before flattening. */
  transform?: TransformLike;
}

/**
 * MNIST or Fashion-MNIST (same file format). Sample i is [image, label]: the image as float32 in
 * [0, 1] (pixel / 255) of shape [1, rows, cols] (CHW, one channel) or [rows * cols] with `flatten`;
 * the label as a number (the class index), which the DataLoader batches into a float32 array.
 */
export class MNISTDataset extends Dataset<[HostArray, number]> {
  readonly images: MnistImages;
  readonly labels: MnistLabels;
  readonly flatten: boolean;
  readonly transform: TransformLike | undefined;

  constructor(images: MnistImages, labels: MnistLabels, options: MNISTOptions = {}) {
    super();
    if (images.count !== labels.count) {
      fail('MNISTDataset', `the images file holds ${images.count} images but the labels file ${labels.count} labels`);
    }
    this.images = images;
    this.labels = labels;
    this.flatten = options.flatten ?? false;
    this.transform = options.transform;
  }

  /** Build from the two files' contents, raw or gzip (detected by the magic bytes 1f 8b). */
  static async fromBytes(images: Uint8Array, labels: Uint8Array, options: MNISTOptions = {}): Promise<MNISTDataset> {
    const [img, lab] = await Promise.all([gunzipIfNeeded(images, 'MNIST images'), gunzipIfNeeded(labels, 'MNIST labels')]);
    return new MNISTDataset(parseMnistImages(img), parseMnistLabels(lab), options);
  }

  get length(): number {
    return this.images.count;
  }

  get(index: number): [HostArray, number] {
    this.checkIndex('MNISTDataset.get', index);
    const { rows, cols, pixels } = this.images;
    const size = rows * cols;
    const data = new Float32Array(size);
    const base = index * size;
    for (let i = 0; i < size; i++) data[i] = pixels[base + i] / 255;
    let image = hostArray(data, [1, rows, cols]);
    if (this.transform) image = applyTransform(this.transform, image);
    if (this.flatten) image = hostArray(image.data, [image.data.length]);
    return [image, this.labels.labels[index]];
  }
}

export interface LoadMNISTOptions extends MNISTOptions {
  /** The training files (train-*) or the test files (t10k-*) (default true). */
  train?: boolean;
}

/**
 * Node only: read MNIST or Fashion-MNIST from `dir`, which holds train-images-idx3-ubyte,
 * train-labels-idx1-ubyte, t10k-images-idx3-ubyte and t10k-labels-idx1-ubyte, each raw or with a
 * .gz suffix (gzip content is detected by its magic bytes, whatever the name).
 */
export async function loadMNIST(dir: string, options: LoadMNISTOptions = {}): Promise<MNISTDataset> {
  const prefix = options.train ?? true ? 'train' : 't10k';
  const read = async (name: string) => {
    const { path, bytes } = await readFirstExisting('loadMNIST', dir, [name, `${name}.gz`]);
    return { path, bytes: await gunzipIfNeeded(bytes, path) };
  };
  const [img, lab] = await Promise.all([read(`${prefix}-images-idx3-ubyte`), read(`${prefix}-labels-idx1-ubyte`)]);
  // Re-throw parse errors with the file's path so the user knows which file is bad.
  const withPath = <T>(path: string, parse: () => T): T => {
    try {
      return parse();
    } catch (e) {
      return fail('loadMNIST', `${path}: ${(e as Error).message}`);
    }
  };
  const images = withPath(img.path, () => parseMnistImages(img.bytes));
  const labels = withPath(lab.path, () => parseMnistLabels(lab.bytes));
  return new MNISTDataset(images, labels, options);
}

/** Node only: read and parse any IDX file, raw or gzip. */
export async function readIdx(path: string): Promise<IdxArray> {
  const bytes = await gunzipIfNeeded(await readFileBytes('readIdx', path), path);
  try {
    return parseIdx(bytes);
  } catch (e) {
    return fail('readIdx', `${path}: ${(e as Error).message}`);
  }
}
