// Bad data is refused on the host, where it can still be checked (issue 12).
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Corpus, decodeUtf8, loadPTB, parseMnistLabels, readText } from '../src';
import { syntheticLabels } from './helpers';

describe('MNIST labels', () => {
  it('a label byte above 9 is refused with its index and byte offset', () => {
    expect(parseMnistLabels(syntheticLabels([3, 9, 0])).labels).toEqual(Uint8Array.from([3, 9, 0]));
    // The header is 8 bytes (magic, one dimension), so label 2 sits at byte offset 10.
    expect(() => parseMnistLabels(syntheticLabels([3, 9, 10]))).toThrow(
      'parseMnistLabels: label 2 (byte offset 10) is 10, expected a class index 0..9; this is not an MNIST labels file',
    );
  });
});

describe('text corpora are strict UTF-8', () => {
  it('invalid UTF-8 is refused with the byte offset, never decoded into replacement characters', () => {
    const utf8 = new TextEncoder().encode('caf\u00e9 ok\n');
    expect(decodeUtf8('t', utf8)).toBe('caf\u00e9 ok\n');
    // Latin-1 'café': 0xe9 starts a 3-byte sequence, ' ' (0x20) cannot continue it.
    expect(() => decodeUtf8('t', Uint8Array.from([0x63, 0x61, 0x66, 0xe9, 0x20, 0x6f, 0x6b]))).toThrow(
      't: the text is not valid UTF-8: byte offset 4 (0x20) does not start or continue a UTF-8 sequence; convert the file to UTF-8',
    );
    expect(() => decodeUtf8('t', Uint8Array.from([0x61, 0xff]))).toThrow('byte offset 1 (0xff)');
    expect(() => decodeUtf8('t', Uint8Array.from([0x61, 0xe2, 0x82]))).toThrow('byte offset 1 (0xe2)'); // truncated at the end
    expect(() => decodeUtf8('t', Uint8Array.from([0xed, 0xa0, 0x80]))).toThrow('byte offset 1 (0xa0)'); // a UTF-16 surrogate
  });

  it('loadPTB and readText refuse a file that is not UTF-8, the optional valid split too', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'needle-utf8-'));
    try {
      await writeFile(join(dir, 'train.txt'), 'a b\n');
      await writeFile(join(dir, 'test.txt'), 'b c\n');
      await writeFile(join(dir, 'valid.txt'), Uint8Array.from([0x61, 0x20, 0xc3, 0x28, 0x0a]));
      await expect(loadPTB(dir)).rejects.toThrow(`loadPTB: ${join(dir, 'valid.txt')} is not valid UTF-8: byte offset 3 (0x28)`);
      await expect(readText(join(dir, 'valid.txt'))).rejects.toThrow('readText:');
      expect((await readText(join(dir, 'train.txt')))).toBe('a b\n');
    } finally {
      await rm(dir, { recursive: true });
    }
  });

  it('tokenize refuses a non-string', () => {
    expect(() => new Corpus().tokenize(undefined as never)).toThrow('Corpus.tokenize: expected the text as a string, got undefined');
  });
});

describe('DataLoader numClasses: labels checked on the host, before the upload', () => {
  it('a label outside [0, numClasses) or not an integer is refused; the batch is not uploaded', async () => {
    const { createCpuBackend } = await import('@needle/ndarray-cpu');
    const { array } = await import('@needle/ndarray');
    const { DataLoader, TensorDataset } = await import('../src');
    const backend = createCpuBackend({ name: 'cpu-data-labels' });
    const x = array([[1, 2], [3, 4], [5, 6]], { backend });
    const run = async (labels: number[], numClasses: number) => {
      const y = array(labels, { backend });
      try {
        const seen: number[][] = [];
        for await (const [, yb] of new DataLoader(new TensorDataset(x, y), { batchSize: 2, numClasses, backend })) seen.push([...(await yb.toArray())]);
        return seen;
      } finally {
        y.dispose();
      }
    };
    expect(await run([0, 2, 1], 3)).toEqual([[0, 2], [1]]);
    await expect(run([0, 3, 1], 3)).rejects.toThrow('collate: the label (field 1) of sample 1 is 3, expected a class index in [0, 3) (numClasses 3)');
    await expect(run([0, 1, 0.5], 3)).rejects.toThrow('of sample 2 is 0.5');
    await expect(run([-1, 1, 0], 3)).rejects.toThrow('of sample 0 is -1');
    expect(() => new DataLoader(new TensorDataset(x), { numClasses: 0 })).toThrow('DataLoader: numClasses must be a positive integer, got 0');
    x.dispose();
    expect(backend.memory().buffers).toBe(0);
  });
});
