import { checkInteger, describeValue, fail, formatShape, NDArray, resolveBackend, type Backend } from '@needle/ndarray';
import { gunzipIfNeeded } from './gzip';
import { readFileBytes, readFirstExisting } from './node-fs';

/** Word <-> id mapping, ids assigned in order of first appearance. */
export class Dictionary {
  readonly word2idx = new Map<string, number>();
  readonly idx2word: string[] = [];

  /** The word's id, adding it if new. */
  addWord(word: string): number {
    let id = this.word2idx.get(word);
    if (id === undefined) {
      id = this.idx2word.length;
      this.word2idx.set(word, id);
      this.idx2word.push(word);
    }
    return id;
  }

  /** Number of distinct words. */
  get length(): number {
    return this.idx2word.length;
  }
}

/** The end-of-line token the corpus appends to every line (PTB and needle's convention). */
export const EOS = '<eos>';

/**
 * A text corpus in PTB format (one sentence per line, tokens separated by whitespace), as in
 * needle's hw4: one Dictionary shared by the splits, each split a list of word ids.
 */
export class Corpus {
  readonly dictionary = new Dictionary();
  train: number[] = [];
  valid: number[] = [];
  test: number[] = [];

  /** Tokenize the given splits' texts with one shared dictionary (train first, so its ids come first). */
  static fromTexts(texts: { train?: string; valid?: string; test?: string }, options: { maxLines?: number } = {}): Corpus {
    const c = new Corpus();
    if (texts.train !== undefined) c.train = c.tokenize(texts.train, options.maxLines);
    if (texts.valid !== undefined) c.valid = c.tokenize(texts.valid, options.maxLines);
    if (texts.test !== undefined) c.test = c.tokenize(texts.test, options.maxLines);
    return c;
  }

  /**
   * Word ids of `text`, line by line, with '<eos>' after each line's words; adds new words to the
   * dictionary. Reads at most `maxLines` lines. Like Python's line iteration, a final newline does
   * not start an extra (empty) line, but an empty line inside the text yields a lone '<eos>'.
   */
  tokenize(text: string, maxLines?: number): number[] {
    if (typeof text !== 'string') fail('Corpus.tokenize', `expected the text as a string, got ${describeValue(text)}`);
    if (maxLines !== undefined) checkInteger('Corpus.tokenize', 'maxLines', maxLines);
    const lines = text.split('\n');
    if (lines[lines.length - 1] === '') lines.pop();
    const n = maxLines === undefined ? lines.length : Math.min(maxLines, lines.length);
    const ids: number[] = [];
    for (let i = 0; i < n; i++) {
      for (const w of lines[i].split(/\s+/)) if (w !== '') ids.push(this.dictionary.addWord(w));
      ids.push(this.dictionary.addWord(EOS));
    }
    return ids;
  }
}

export interface LoadPTBOptions {
  /** Read at most this many lines of each file. */
  maxLines?: number;
}

/**
 * Node only: read a PTB-format corpus from `dir`: train.txt and test.txt (needle's names), or the
 * original ptb.train.txt / ptb.test.txt; valid.txt / ptb.valid.txt when present. Raw or gzip.
 */
export async function loadPTB(dir: string, options: LoadPTBOptions = {}): Promise<Corpus> {
  const read = async (split: string, required: boolean): Promise<string | undefined> => {
    let file: { path: string; bytes: Uint8Array };
    try {
      file = await readFirstExisting('loadPTB', dir, [`${split}.txt`, `ptb.${split}.txt`]);
    } catch (e) {
      if (required) throw e;
      return undefined;
    }
    // Outside the try: an optional split that exists but is not valid UTF-8 is an error, not absent.
    return decodeUtf8('loadPTB', await gunzipIfNeeded(file.bytes, file.path), file.path);
  };
  const [train, valid, test] = await Promise.all([read('train', true), read('valid', false), read('test', true)]);
  return Corpus.fromTexts({ train, valid, test }, options);
}

/** Read a single text file (Node), e.g. to tokenize a corpus of another layout. */
export async function readText(path: string): Promise<string> {
  const bytes = await gunzipIfNeeded(await readFileBytes('readText', path), path);
  return decodeUtf8('readText', bytes, path);
}

/**
 * Decode UTF-8 strictly: a byte sequence that is not UTF-8 (a Latin-1 file, a binary file) is an
 * error naming the byte offset, instead of U+FFFD replacement characters tokenized as words.
 */
export function decodeUtf8(op: string, bytes: Uint8Array, path = 'the text'): string {
  if (!(bytes instanceof Uint8Array)) fail(op, `expected the bytes as a Uint8Array, got ${describeValue(bytes)}`);
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    const at = firstInvalidUtf8(bytes);
    const b = bytes[at];
    return fail(op, `${path} is not valid UTF-8: byte offset ${at} (0x${b === undefined ? 'end' : b.toString(16).padStart(2, '0')}) does not start or continue a UTF-8 sequence; convert the file to UTF-8`);
  }
}

/** Offset of the first byte where `bytes` stops being well-formed UTF-8 (the WHATWG decoder's rules). */
function firstInvalidUtf8(bytes: Uint8Array): number {
  let i = 0;
  while (i < bytes.length) {
    const b = bytes[i];
    let n: number;
    let lo = 0x80;
    let hi = 0xbf;
    if (b < 0x80) n = 0;
    else if (b >= 0xc2 && b <= 0xdf) n = 1;
    else if (b >= 0xe0 && b <= 0xef) {
      n = 2;
      if (b === 0xe0) lo = 0xa0;
      if (b === 0xed) hi = 0x9f;
    } else if (b >= 0xf0 && b <= 0xf4) {
      n = 3;
      if (b === 0xf0) lo = 0x90;
      if (b === 0xf4) hi = 0x8f;
    } else return i;
    for (let k = 1; k <= n; k++) {
      const c = bytes[i + k];
      if (c === undefined) return i;
      if (k === 1 ? c < lo || c > hi : c < 0x80 || c > 0xbf) return i + k;
    }
    i += n + 1;
  }
  return bytes.length;
}

/**
 * Arrange a token sequence in `batchSize` columns (needle's hw4 batchify): the result has shape
 * [nbatch, batchSize] with nbatch = floor(len / batchSize), column j holding tokens
 * j*nbatch .. (j+1)*nbatch - 1 in order; the leftover tokens are dropped. Values are float32 ids.
 */
export function batchify(data: ArrayLike<number>, batchSize: number, options: { backend?: Backend | string } = {}): NDArray {
  if (!Array.isArray(data) && !ArrayBuffer.isView(data)) fail('batchify', `expected the token ids as an array or typed array of numbers, got ${describeValue(data)}`);
  checkInteger('batchify', 'batchSize', batchSize, 1);
  const nbatch = Math.floor(data.length / batchSize);
  if (nbatch === 0) fail('batchify', `${data.length} tokens are fewer than batchSize ${batchSize}: no full row`);
  const out = new Float32Array(nbatch * batchSize);
  for (let i = 0; i < nbatch; i++) {
    for (let j = 0; j < batchSize; j++) out[i * batchSize + j] = data[j * nbatch + i];
  }
  return NDArray.fromData(out, [nbatch, batchSize], resolveBackend(options.backend));
}

/**
 * The BPTT window starting at row i of a batchified source (needle's get_batch):
 * seqLen = min(bptt, nbatch - 1 - i); data = source[i : i+seqLen] of shape [seqLen, batchSize];
 * target = source[i+1 : i+1+seqLen] flattened to [seqLen * batchSize] (the next token of each).
 * Both are new arrays the caller owns, on the source's backend (built by views, no host read).
 */
export function getBatch(source: NDArray, i: number, bptt: number): [NDArray, NDArray] {
  if (!(source instanceof NDArray)) fail('getBatch', `expected the source as an NDArray from batchify, got ${describeValue(source)}`);
  source.assertLive('getBatch');
  checkInteger('getBatch', 'i', i);
  if (source.ndim !== 2) fail('getBatch', `source must be 2-d [nbatch, batchSize] (from batchify), got shape ${formatShape(source.shape)}`);
  const nbatch = source.shape[0];
  checkInteger('getBatch', 'bptt', bptt, 1);
  if (!Number.isInteger(i) || i < 0 || i >= nbatch - 1) {
    fail('getBatch', `i = ${i} is out of range: a source of ${nbatch} rows has windows at i = 0 .. ${nbatch - 2} (each needs a next row for the target)`);
  }
  const seqLen = Math.min(bptt, nbatch - 1 - i);
  const dataView = source.get(`${i}:${i + seqLen}`);
  const targetView = source.get(`${i + 1}:${i + 1 + seqLen}`);
  // Row slices of a compact source are contiguous, so the reshape is a view; clone gives each
  // result its own buffer, independent of the source's lifetime.
  const flat = targetView.reshape([seqLen * source.shape[1]]);
  targetView.dispose();
  const data = dataView.clone();
  dataView.dispose();
  const target = flat.clone();
  flat.dispose();
  return [data, target];
}
