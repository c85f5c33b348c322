/**
 * The flagship examples end to end on tiny data (cifar10-resnet9 on a few synthetic CIFAR-10 records,
 * ptb-lm on a small PTB-format text), the Brown corpus preparation, the training loops of
 * ./src/simple-ml.ts keeping the live buffer count flat on the CPU and WASM backends, and, when
 * NEEDLE_CIFAR10_DIR names a folder with real CIFAR-10 batches, a short real-data run.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { Generator, manualSeed, setDefaultBackend, type Backend } from '@needle/ndarray';
import { createCpuBackend } from '@needle/ndarray-cpu';
import { createWasmBackend } from '@needle/ndarray-wasm';
import { CIFAR10Dataset, Corpus, DataLoader, Normalize, Subset, batchify, loadCIFAR10, parseCifar10Batch } from '@needle/data';
import { Conv2d, Flatten, LanguageModel, Linear, ReLU, ResNet9, Sequential } from '@needle/nn';
import { Adam } from '@needle/optim';
import { runCommand, type CommandIO } from '../src/command';
import { loadBrown, prepare, ptbWords } from '../src/brown';
import { batchifiedTargets, unigramPerplexity } from '../src/ptb-lm';
import { epochGeneralCifar10, epochGeneralPtb, evaluateCifar10 } from '../src/simple-ml';

const cpu = createCpuBackend({ name: 'cpu-flagship-test', readSync: false });
setDefaultBackend(cpu);

/** CIFAR-10 binary records whose image encodes the label (a bright band at row 3 * label), so it is learnable. */
function cifarRecords(labels: readonly number[], seed: number): Uint8Array {
  const g = new Generator(seed);
  const out = new Uint8Array(labels.length * 3073);
  labels.forEach((label, i) => {
    out[i * 3073] = label;
    for (let p = 0; p < 3072; p++) {
      const row = Math.floor((p % 1024) / 32);
      out[i * 3073 + 1 + p] = Math.abs(row - 3 * label) <= 1 ? 230 : Math.floor(g.uniform() * 80);
    }
  });
  return out;
}

function capture(): CommandIO & { stdout: string[]; stderr: string[] } {
  const stdout: string[] = [];
  const stderr: string[] = [];
  return { stdout, stderr, out: (t) => void stdout.push(t), err: (t) => void stderr.push(t) };
}

/** Run an example through the CLI entry, collecting what it prints with console.log. */
async function runExample(argv: string[]): Promise<{ code: number; lines: string[]; stderr: string[] }> {
  const lines: string[] = [];
  const io = capture();
  const spy = vi.spyOn(console, 'log').mockImplementation((...a: unknown[]) => void lines.push(a.join(' ')));
  try {
    const code = await runCommand(argv, io);
    return { code, lines, stderr: io.stderr };
  } finally {
    spy.mockRestore();
  }
}

let dir = '';
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'needle-flagship-'));
  const labels = (n: number, offset: number) => Array.from({ length: n }, (_, i) => (i * 7 + offset) % 10);
  // Batches 2 and 4 only: the example must use whichever training batches are present.
  await writeFile(join(dir, 'data_batch_2.bin'), cifarRecords(labels(48, 0), 1));
  await writeFile(join(dir, 'data_batch_4.bin'), cifarRecords(labels(48, 3), 2));
  await writeFile(join(dir, 'test_batch.bin'), cifarRecords(labels(40, 5), 3));
  // A small PTB-format corpus: a few sentence templates, so a model can beat the unigram model.
  const g = new Generator(4);
  const subjects = ['the cat', 'a dog', 'the old man', 'my sister'];
  const verbs = ['sees', 'likes', 'wants', 'finds'];
  const objects = ['the ball', 'a red car', 'N apples', 'the <unk>'];
  const text = (n: number) => Array.from({ length: n }, () => `${subjects[g.randint(0, 4)]} ${verbs[g.randint(0, 4)]} ${objects[g.randint(0, 4)]}`).join('\n') + '\n';
  await writeFile(join(dir, 'ptb.train.txt'), text(300));
  await writeFile(join(dir, 'ptb.valid.txt'), text(40));
  await writeFile(join(dir, 'ptb.test.txt'), text(40));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('cifar10-resnet9', () => {
  it('trains on the training batches present, prints a line per epoch and the test accuracy', async () => {
    // On wasm: ResNet9 on the pure-TS CPU backend would take most of a minute.
    const r = await runExample(['cifar10-resnet9', '--backend', 'wasm', '--threads', '1', '--data', dir, '--epochs', '2', '--batch-size', '32', '--lr', '0.003', '--seed', '1']);
    expect(r.stderr).toEqual([]);
    expect(r.code).toBe(0);
    expect(r.lines[0]).toBe(`cifar10-resnet9: ResNet9 with 431946 parameters, 96 training / 40 test images from ${dir}, batch 32, 2 epochs, wasm`);
    const epochs = r.lines.filter((l) => l.startsWith('epoch'));
    expect(epochs).toHaveLength(2);
    epochs.forEach((l) => expect(l).toMatch(/^epoch +\d+ {2}loss \d+\.\d{4} {2}train acc \d+\.\d\d% {2}test acc \d+\.\d\d% {2}test loss \d+\.\d{4} {2}\d+ images\/s {2}\d+\.\d s$/));
    expect(r.lines.at(-1)).toMatch(/^test accuracy \d+\.\d\d% {2}\(\d+\.\d s in all\)$/);
  });

  it('--save then --resume continues the run: the resumed epoch prints the same numbers as the uninterrupted one', async () => {
    const common = ['cifar10-resnet9', '--backend', 'wasm', '--threads', '1', '--data', dir, '--batch-size', '32', '--train-limit', '64', '--test-limit', '20', '--seed', '3'];
    const whole = await runExample([...common, '--epochs', '2', '--save', join(dir, 'whole.safetensors')]);
    const first = await runExample([...common, '--epochs', '1', '--save', join(dir, 'part.safetensors')]);
    const rest = await runExample([...common, '--epochs', '2', '--resume', join(dir, 'part.safetensors')]);
    for (const r of [whole, first, rest]) expect(r.stderr).toEqual([]);
    const numbers = (lines: string[]) => lines.filter((l) => l.startsWith('epoch')).map((l) => l.replace(/ {2}\d+ images\/s.*$/, ''));
    expect(rest.lines[0]).toBe(`resumed from ${join(dir, 'part.safetensors')} after epoch 1`);
    expect(numbers(first.lines)).toEqual(numbers(whole.lines).slice(0, 1));
    expect(numbers(rest.lines)).toEqual(numbers(whole.lines).slice(1));
    expect(numbers(rest.lines)[0]).toMatch(/^epoch {2}2 {2}loss /);
  });

  it('without data says in one line where to get CIFAR-10 and exits non-zero', async () => {
    const saved = process.env.NEEDLE_CIFAR10_DIR;
    delete process.env.NEEDLE_CIFAR10_DIR;
    try {
      const empty = join(dir, 'nothing-here');
      const r = await runExample(['cifar10-resnet9', '--data', empty]);
      expect(r.code).toBe(1);
      expect(r.stderr).toHaveLength(1);
      expect(r.stderr[0].split('\n')).toHaveLength(1);
      expect(r.stderr[0]).toMatch(/^CIFAR-10 not found: download the binary version \(cifar-10-binary\.tar\.gz\) from https:\/\/www\.cs\.toronto\.edu\/~kriz\/cifar\.html/);
      expect(r.stderr[0]).toContain(`(${empty} has no test_batch.bin and data_batch_N.bin)`);
    } finally {
      if (saved !== undefined) process.env.NEEDLE_CIFAR10_DIR = saved;
    }
  });
});

describe('ptb-lm', () => {
  it.each(['lstm', 'transformer'])('%s on a small PTB-format corpus: perplexities beat the unigram model, samples printed', async (model) => {
    const r = await runExample(['ptb-lm', '--backend', 'wasm', '--threads', '1', '--data', dir, '--model', model, '--epochs', '3', '--batch-size', '4', '--bptt', '8',
      '--embedding', '16', '--hidden', '32', '--heads', '2', '--lr', '0.01', '--generate', '2', '--seed', '2']);
    expect(r.stderr).toEqual([]);
    expect(r.code).toBe(0);
    expect(r.lines[0]).toMatch(new RegExp(`^ptb-lm: ${model} LanguageModel with \\d+ parameters on PTB from ${dir}: vocabulary 19, `));
    const epochs = r.lines.filter((l) => l.startsWith('epoch'));
    expect(epochs).toHaveLength(3);
    const valid = epochs.map((l) => Number(/valid ppl (\S+)/.exec(l)![1]));
    expect(valid[2]).toBeLessThanOrEqual(valid[0]);
    const final = /^test ppl (\S+) {2}unigram test ppl (\S+) {2}ratio (\S+)/.exec(r.lines.find((l) => l.startsWith('test ppl'))!)!;
    const [testPpl, unigram] = [Number(final[1]), Number(final[2])];
    // Templates of 5-6 words over 19 symbols: a model that learned them is far below the unigram model.
    expect(testPpl).toBeLessThan(unigram * 0.6);
    const samples = r.lines.filter((l) => l.startsWith('sample'));
    expect(samples).toHaveLength(2);
    samples.forEach((s) => expect(s).toMatch(/^sample \d: [a-z<>N ]*$/));
  });

  it('--resume continues a saved run with the same perplexities', async () => {
    const common = ['ptb-lm', '--backend', 'wasm', '--threads', '1', '--data', dir, '--batch-size', '4', '--bptt', '8',
      '--embedding', '8', '--hidden', '8', '--lr', '0.01', '--generate', '0', '--seed', '5', '--eval-words', '200'];
    const whole = await runExample([...common, '--epochs', '2']);
    await runExample([...common, '--epochs', '1', '--save', join(dir, 'lm.safetensors')]);
    const rest = await runExample([...common, '--epochs', '2', '--resume', join(dir, 'lm.safetensors')]);
    const numbers = (lines: string[]) => lines.filter((l) => l.startsWith('epoch') || l.startsWith('test ppl')).map((l) => l.replace(/ {2}\d+ words\/s.*$| {2}\(.*$/, ''));
    expect(rest.stderr).toEqual([]);
    expect(numbers(rest.lines)).toEqual(numbers(whole.lines).slice(1));
    expect(numbers(rest.lines)[0]).toMatch(/^epoch {2}2 {2}train ppl /);
    // A checkpoint of another model is refused, every part checked before any is loaded.
    const other = await runExample([...common, '--model', 'transformer', '--heads', '2', '--epochs', '2', '--resume', join(dir, 'lm.safetensors')]);
    expect(other.code).toBe(1);
    expect(other.stderr.join('\n')).toMatch(/^LanguageModel\.checkStateDict: missing keys \["positionEmbedding\.weight",/);
  });

  it('the unigram perplexity is computed on the targets the model predicts', () => {
    expect(batchifiedTargets([0, 1, 2, 3, 4, 5, 6], 2)).toEqual([1, 2, 4, 5]);
    // train counts: 0 x2, 1 x1, 2 x1 of 4; targets 0 and 2: exp(-(ln .5 + ln .25) / 2) = sqrt(8)
    expect(unigramPerplexity([0, 0, 1, 2], [0, 2], 3)).toBeCloseTo(Math.sqrt(8), 12);
  });
});

describe('the Brown corpus, PTB-style', () => {
  it('strips tags and punctuation, lower-cases, writes numbers as N', () => {
    expect(ptbWords("\tThe/at Fulton/np-tl County's/nn$ 1961/cd ,/, ``/`` $100/nns 3.5/cd 1,000/cd 13th/od re-election/nn ./.")).toEqual(
      ['the', 'fulton', "county's", 'N', 'N', 'N', 'N', '13th', 're-election']);
    expect(ptbWords('')).toEqual([]);
  });

  it('keeps the vocab - 1 most frequent training words (ties alphabetical) and <unk>', () => {
    const s = prepare({ train: [['b', 'a', 'c', 'a'], ['b', 'd']], valid: [['a', 'e']], test: [['c', 'b']] }, 3);
    expect(s.train).toBe('b a <unk> a\nb <unk>\n');
    expect(s.valid).toBe('a <unk>\n');
    expect(s.test).toBe('<unk> b\n');
    expect(s.vocabSize).toBe(3);
    expect(s.unkRate).toBeCloseTo(2 / 6, 12);
  });

  it('splits the 500 files 8:1:1 by name (k % 10 == 8 valid, 9 test)', async () => {
    const b = await loadBrown({ vocab: 2000 });
    const corpus = Corpus.fromTexts(b);
    expect(corpus.dictionary.length).toBe(2001); // + <eos>
    const lines = (t: string) => t.split('\n').length - 1;
    // Counted independently (a few lines of Python over the same files): sentences and words per split
    expect(lines(b.train)).toBe(46_032);
    expect(lines(b.valid)).toBe(5_506);
    expect(lines(b.test)).toBe(5_621);
    // the first sentence of ca01, with the words outside the 1,999 most frequent as <unk> (Python agrees)
    expect(b.train.slice(0, b.train.indexOf('\n'))).toBe('the <unk> county <unk> jury said friday an <unk> of <unk> recent primary election produced no evidence that any <unk> took place');
    expect([corpus.train.length, corpus.valid.length, corpus.test.length]).toEqual([810_986 + 46_032, 101_172 + 5_506, 101_161 + 5_621]); // words + <eos>
    expect(b.unkRate).toBeGreaterThan(0.2);
    expect(b.unkRate).toBeLessThan(0.26);
  });
});

describe('the training loops keep the live buffer count flat', () => {
  let wasm: Backend | undefined;
  beforeAll(async () => {
    wasm = await createWasmBackend({ threads: 2 });
  });
  afterAll(() => wasm?.destroy?.());
  const pick = (name: string): Backend => (name === 'cpu' ? cpu : wasm!);

  it.each(['cpu', 'wasm'])('epochGeneralCifar10 and evaluateCifar10 on %s', async (name) => {
    const backend = pick(name);
    setDefaultBackend(backend);
    try {
      manualSeed(3);
      const before = backend.memory().buffers;
      const ds = new CIFAR10Dataset(parseCifar10Batch(cifarRecords(Array.from({ length: 24 }, (_, i) => i % 10), 5)));
      const loader = new DataLoader(ds, { batchSize: 8, shuffle: true, seed: 1 });
      // A small conv net: ResNet9's loop, at a fraction of its cost.
      const model = new Sequential(new Conv2d(3, 4, 3, { stride: 4, padding: 1 }), new ReLU(), new Flatten(), new Linear(256, 10));
      const opt = new Adam(model.parameters(), { lr: 0.01 });
      const counts: number[] = [];
      const losses: number[] = [];
      for (let epoch = 0; epoch < 4; epoch++) {
        losses.push((await epochGeneralCifar10(loader, model, { opt })).loss);
        const t = await evaluateCifar10(model, loader);
        expect(t.samples).toBe(24);
        counts.push(backend.memory().buffers);
      }
      expect(counts.slice(1)).toEqual([counts[0], counts[0], counts[0]]);
      expect(losses[3]).toBeLessThan(losses[0]);
      opt.dispose();
      model.dispose();
      expect(backend.memory().buffers).toBe(before);
    } finally {
      setDefaultBackend(cpu);
    }
  });

  it.each(['cpu', 'wasm'])('epochGeneralPtb (LSTM and transformer, clipping) on %s', async (name) => {
    const backend = pick(name);
    setDefaultBackend(backend);
    try {
      manualSeed(4);
      const before = backend.memory().buffers;
      const ids = Array.from({ length: 200 }, (_, i) => (i * 3) % 11);
      const data = batchify(ids, 4);
      for (const seqModel of ['lstm', 'transformer'] as const) {
        const model = new LanguageModel({ embeddingSize: 8, outputSize: 11, hiddenSize: 8, seqModel, seqLen: 6, nhead: 2 });
        const opt = new Adam(model.parameters(), { lr: 0.02 });
        const counts: number[] = [];
        const ppl: number[] = [];
        for (let epoch = 0; epoch < 3; epoch++) {
          ppl.push((await epochGeneralPtb(data, model, { seqLen: 6, opt, clip: 1 })).perplexity);
          const v = await epochGeneralPtb(data, model, { seqLen: 6 });
          expect(v.samples).toBe(49 * 4);
          counts.push(backend.memory().buffers);
        }
        expect(counts.slice(1), seqModel).toEqual([counts[0], counts[0]]);
        expect(ppl[2], seqModel).toBeLessThan(ppl[0]);
        opt.dispose();
        model.dispose();
      }
      data.dispose();
      expect(backend.memory().buffers).toBe(before);
    } finally {
      setDefaultBackend(cpu);
    }
  });
});

const realDir = process.env.NEEDLE_CIFAR10_DIR;
const haveReal = realDir !== undefined && existsSync(join(realDir, 'test_batch.bin'));
if (!haveReal) {
  console.warn(`\n*** SKIPPED: the real CIFAR-10 test (set NEEDLE_CIFAR10_DIR to a folder with test_batch.bin and data_batch_N.bin; ${realDir === undefined ? 'it is unset' : `${realDir} has no test_batch.bin`}) ***\n`);
}

describe.skipIf(!haveReal)('ResNet9 on real CIFAR-10 ($NEEDLE_CIFAR10_DIR)', () => {
  it('three epochs on 1024 real training images on wasm beat chance on 512 test images, without leaking', async () => {
    const wasm = await createWasmBackend({ threads: 2 });
    setDefaultBackend(wasm);
    try {
      manualSeed(0);
      const transform = new Normalize([0.4914, 0.4822, 0.4465], [0.247, 0.2435, 0.2616]);
      const [train, test] = await Promise.all([loadCIFAR10(realDir!, { batches: 'present', transform }), loadCIFAR10(realDir!, { train: false, transform })]);
      expect(train.length % 932 === 0 || train.length % 10_000 === 0).toBe(true);
      const first = (n: number) => Array.from({ length: n }, (_, i) => i);
      const model = new ResNet9();
      const opt = new Adam(model.parameters(), { lr: 0.002, weightDecay: 0.001 });
      const loader = new DataLoader(new Subset(train, first(1024)), { batchSize: 32, shuffle: true, seed: 0 });
      await epochGeneralCifar10(loader, model, { opt });
      const afterFirst = wasm.memory().buffers; // gradients and Adam's moments exist from here on
      for (let epoch = 1; epoch < 3; epoch++) await epochGeneralCifar10(loader, model, { opt });
      const t = await evaluateCifar10(model, new DataLoader(new Subset(test, first(512)), { batchSize: 128 }));
      expect(wasm.memory().buffers).toBe(afterFirst);
      console.info(`real CIFAR-10: test accuracy ${(100 * t.accuracy).toFixed(1)}% on 512 images after 3 epochs on 1024`);
      expect(t.accuracy).toBeGreaterThan(0.2); // chance is 10%
      opt.dispose();
      model.dispose();
    } finally {
      setDefaultBackend(cpu);
      wasm.destroy?.();
    }
  });
});
