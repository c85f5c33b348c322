import { gzipSync } from 'node:zlib';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createCpuBackend } from '@needle/ndarray-cpu';
import { describe, expect, it } from 'vitest';
import { CIFAR10Dataset, DataLoader, loadCIFAR10, parseCifar10Batch, RandomFlipHorizontal } from '../src';

/** Records with label labels[i] and pixel p of record i = (i + p) % 256. */
function cifarBytes(labels: readonly number[]): Uint8Array {
  const out = new Uint8Array(labels.length * 3073);
  labels.forEach((label, i) => {
    out[i * 3073] = label;
    for (let p = 0; p < 3072; p++) out[i * 3073 + 1 + p] = (i + p) % 256;
  });
  return out;
}

describe('CIFAR-10 binary batches', () => {
  it('parses labels and CHW pixels of each record', () => {
    const batch = parseCifar10Batch(cifarBytes([3, 9, 0]));
    expect(batch.count).toBe(3);
    expect([...batch.labels]).toEqual([3, 9, 0]);
    expect(batch.pixels.length).toBe(3 * 3072);
    expect(batch.pixels[3072 + 5]).toBe(6); // record 1, pixel 5
    expect(batch.pixels[2 * 3072 + 1024]).toBe(2); // record 2, first green value: (2 + 1024) % 256
  });

  it('rejects truncated, empty, gzip and non-CIFAR-10 data', () => {
    const bytes = cifarBytes([1, 2]);
    expect(() => parseCifar10Batch(bytes.subarray(0, 6000))).toThrow(
      'parseCifar10Batch: 6000 bytes is not a whole number of 3073-byte records (1 label + 3072 pixels): 1 records and 2927 extra bytes',
    );
    expect(() => parseCifar10Batch(new Uint8Array(0))).toThrow('parseCifar10Batch: empty file');
    expect(() => parseCifar10Batch(cifarBytes([1, 10]))).toThrow('parseCifar10Batch: record 1 (byte offset 3073) has label 10, expected 0..9');
    expect(() => parseCifar10Batch(gzipSync(bytes))).toThrow('parseCifar10Batch: the data is gzip-compressed');
  });

  it('CIFAR10Dataset gives [3, 32, 32] images in [0, 1], concatenates batches, applies a transform', async () => {
    const ds = new CIFAR10Dataset([parseCifar10Batch(cifarBytes([4, 5])), parseCifar10Batch(cifarBytes([6]))]);
    expect(ds.length).toBe(3);
    const [x, y] = ds.get(1);
    expect(x.shape).toEqual([3, 32, 32]);
    expect(y).toBe(5);
    expect(x.data[0]).toBe(Math.fround(1 / 255));
    expect(x.data[254]).toBe(1); // (1 + 254) % 256 = 255
    expect(ds.get(2)[1]).toBe(6);
    expect(ds.get(2)[0].data[3]).toBe(Math.fround(3 / 255)); // record 0 of the second batch

    const flipped = new CIFAR10Dataset(parseCifar10Batch(cifarBytes([4])), { transform: new RandomFlipHorizontal(1) });
    expect(flipped.get(0)[0].data[0]).toBe(Math.fround(31 / 255)); // row 0 reversed: pixel 31 first

    const backend = createCpuBackend();
    const shapes: number[][] = [];
    for await (const [bx, by] of new DataLoader(ds, { batchSize: 2, backend })) {
      shapes.push([...bx.shape]);
      if (shapes.length === 1) expect([...by.toArraySync()]).toEqual([4, 5]);
    }
    expect(shapes).toEqual([[2, 3, 32, 32], [1, 3, 32, 32]]);
    expect(backend.memory().buffers).toBe(0);
  });

  it('loadCIFAR10 reads the test batch from a folder (raw or gzip content) and names a missing file', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'needle-cifar-'));
    try {
      await writeFile(join(dir, 'test_batch.bin'), gzipSync(cifarBytes([7, 8])));
      const test = await loadCIFAR10(dir, { train: false });
      expect([...test.labels]).toEqual([7, 8]);
      await expect(loadCIFAR10(dir)).rejects.toThrow(`loadCIFAR10: cannot read ${dir}/data_batch_1.bin`);
      await expect(loadCIFAR10(dir, { batches: 'present' })).rejects.toThrow(`loadCIFAR10: no training batch in ${dir}: expected some of data_batch_1.bin ... data_batch_5.bin`);
      // batches: 'present' reads whichever of the five exist, in order; a list reads those named
      await writeFile(join(dir, 'data_batch_4.bin'), cifarBytes([4, 4, 4]));
      await writeFile(join(dir, 'data_batch_2.bin'), cifarBytes([2]));
      expect([...(await loadCIFAR10(dir, { batches: 'present' })).labels]).toEqual([2, 4, 4, 4]);
      expect([...(await loadCIFAR10(dir, { batches: [4] })).labels]).toEqual([4, 4, 4]);
      await expect(loadCIFAR10(dir, { batches: [2, 3] })).rejects.toThrow(`loadCIFAR10: cannot read ${dir}/data_batch_3.bin`);
      await expect(loadCIFAR10(dir, { batches: [6] })).rejects.toThrow(/loadCIFAR10: batches must be 'all', 'present' or a non-empty list of batch numbers 1..5, got \[6\]/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
