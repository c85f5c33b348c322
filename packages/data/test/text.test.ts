import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createCpuBackend } from '@needle/ndarray-cpu';
import { describe, expect, it } from 'vitest';
import { batchify, Corpus, Dictionary, getBatch, loadPTB } from '../src';

const backend = createCpuBackend();
const TEXT = ' the cat sat \n the dog\n\nran  far\n';

describe('Dictionary and Corpus', () => {
  it('assigns ids in order of first appearance', () => {
    const d = new Dictionary();
    expect([d.addWord('a'), d.addWord('b'), d.addWord('a')]).toEqual([0, 1, 0]);
    expect(d.length).toBe(2);
    expect(d.idx2word).toEqual(['a', 'b']);
    expect(d.word2idx.get('b')).toBe(1);
  });

  it("tokenizes line by line with '<eos>' after each line (empty lines too, no extra line after the final newline)", () => {
    const c = new Corpus();
    const ids = c.tokenize(TEXT);
    expect(ids.map((i) => c.dictionary.idx2word[i])).toEqual(['the', 'cat', 'sat', '<eos>', 'the', 'dog', '<eos>', '<eos>', 'ran', 'far', '<eos>']);
    expect(ids).toEqual([0, 1, 2, 3, 0, 4, 3, 3, 5, 6, 3]);
    expect(c.tokenize('new words', 0)).toEqual([]);
    expect(c.tokenize('x y\nz\n', 1)).toEqual([7, 8, 3]);
  });

  it('shares one dictionary between splits', () => {
    const c = Corpus.fromTexts({ train: 'a b\n', test: 'b c\n' });
    expect(c.train).toEqual([0, 1, 2]);
    expect(c.test).toEqual([1, 3, 2]);
    expect(c.valid).toEqual([]);
  });

  it('loadPTB reads train.txt/test.txt (valid optional) and honours maxLines', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'needle-ptb-'));
    try {
      await writeFile(join(dir, 'train.txt'), 'a b\nc\n');
      await writeFile(join(dir, 'ptb.test.txt'), 'c a\n');
      const c = await loadPTB(dir, { maxLines: 1 });
      expect(c.train).toEqual([0, 1, 2]);
      expect(c.test).toEqual([3, 0, 2]);
      expect(c.valid).toEqual([]);
      await expect(loadPTB(join(dir, 'nope'))).rejects.toThrow('loadPTB: none of these files exists');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('batchify and getBatch', () => {
  // 0..13 with batch size 3: nbatch = 4, column j holds 4j..4j+3, tokens 12 and 13 dropped.
  const source = batchify(Array.from({ length: 14 }, (_, i) => i), 3, { backend });

  it('batchify arranges the sequence in columns, [nbatch, batchSize]', () => {
    expect(source.shape).toEqual([4, 3]);
    expect(source.toNestedSync()).toEqual([
      [0, 4, 8],
      [1, 5, 9],
      [2, 6, 10],
      [3, 7, 11],
    ]);
    expect(() => batchify([1, 2], 3, { backend })).toThrow('batchify: 2 tokens are fewer than batchSize 3');
  });

  it('getBatch returns [seqLen, batchSize] data and the next tokens flattened', () => {
    const before = backend.memory().buffers;
    const [data, target] = getBatch(source, 0, 2);
    expect(data.toNestedSync()).toEqual([
      [0, 4, 8],
      [1, 5, 9],
    ]);
    expect(target.shape).toEqual([6]);
    expect([...target.toArraySync()]).toEqual([1, 5, 9, 2, 6, 10]);
    // Near the end the window shrinks: seqLen = min(bptt, nbatch - 1 - i) = 1.
    const [d2, t2] = getBatch(source, 2, 5);
    expect(d2.toNestedSync()).toEqual([[2, 6, 10]]);
    expect([...t2.toArraySync()]).toEqual([3, 7, 11]);
    expect(backend.memory().buffers).toBe(before + 4);
    for (const a of [data, target, d2, t2]) a.dispose();
    expect(backend.memory().buffers).toBe(before);
    expect(() => getBatch(source, 3, 2)).toThrow('getBatch: i = 3 is out of range: a source of 4 rows has windows at i = 0 .. 2');
  });

  it('runs the tiny corpus end to end', () => {
    const c = new Corpus();
    const src = batchify(c.tokenize(TEXT), 2, { backend });
    // 11 tokens, 2 columns: nbatch 5; column 0 = ids[0..4], column 1 = ids[5..9].
    expect(src.toNestedSync()).toEqual([
      [0, 4],
      [1, 3],
      [2, 3],
      [3, 5],
      [0, 6],
    ]);
    const [x, y] = getBatch(src, 1, 3);
    expect(x.shape).toEqual([3, 2]);
    expect([...y.toArraySync()]).toEqual([2, 3, 3, 5, 0, 6]);
    for (const a of [src, x, y]) a.dispose();
  });
});
