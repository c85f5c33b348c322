/**
 * Training and evaluation loops for the flagship models, in the spirit of needle hw4's
 * apps/simple_ml.py: `epochGeneralCifar10` / `trainCifar10` / `evaluateCifar10` for image classifiers
 * (ResNet9) and `epochGeneralPtb` / `trainPtb` / `evaluatePtb` for word language models
 * (LanguageModel). Importable on their own: `import { trainCifar10 } from '@needle/examples/simple-ml'`.
 *
 * They use the public packages only. Every statistic (loss sums, correct counts) is accumulated on the
 * device and read once per epoch, so a GPU step is not stalled by a read-back; `onBatch` callers that
 * want a live loss get one read every `readEvery` batches.
 */
import { scope, tidy, type NDArray } from '@needle/ndarray';
import { noGrad, tensor, type Tensor } from '@needle/autograd';
import { getBatch, type DataLoader, type HostArray } from '@needle/data';
import { CrossEntropyLoss, type LanguageModel, type LanguageModelState, type Module } from '@needle/nn';
import { Adam, SGD, clipGradNorm, type GroupOptions, type Optimizer } from '@needle/optim';

/** A classifier: images [N, C, H, W] -> logits [N, classes]. */
export type ImageClassifier = Module & { forward(x: Tensor): Tensor };

/** A loss over logits [N, C] and integer labels [N] (float32 class indices). */
export interface Loss {
  call(logits: Tensor, labels: NDArray): Tensor;
}

export interface EpochResult {
  /** Fraction of predictions (images, or next tokens) that were right. */
  accuracy: number;
  /** Mean loss per sample (per token for language models). */
  loss: number;
  /** Samples (images, or predicted tokens) seen. */
  samples: number;
  seconds: number;
}

/** Progress of an epoch: samples done so far, the total, and a freshly read loss every `readEvery` batches. */
export type OnBatch = (done: number, total: number, loss: number | undefined) => void;

/** Running sums kept on the device (one read at the end of the epoch). */
class DeviceSums {
  private sums: NDArray[] | null = null;

  add(values: readonly NDArray[]): void {
    const s = scope();
    const next = this.sums ? this.sums.map((a, i) => a.add(values[i])) : values.map((v) => v.clone());
    s.end(next);
    this.sums?.forEach((a) => a.dispose());
    this.sums = next;
  }

  async read(): Promise<number[]> {
    const out = this.sums ? await Promise.all(this.sums.map((a) => a.item())) : [];
    this.sums?.forEach((a) => a.dispose());
    this.sums = null;
    return out;
  }
}

// ---- CIFAR-10 ---------------------------------------------------------------------------------------

export interface EpochCifar10Options {
  /** Default: a new CrossEntropyLoss (needle's SoftmaxLoss). */
  lossFn?: Loss;
  /** Train with this optimizer (model in train mode); without one, evaluate (eval mode, no graph). */
  opt?: Optimizer<GroupOptions> | null;
  onBatch?: OnBatch;
  /** Read the loss for `onBatch` every this many batches (default 10; each read is a device sync). */
  readEvery?: number;
}

/**
 * One pass over `loader` (needle's epoch_general_cifar10): with `opt`, a training epoch (forward,
 * loss, backward, step); without, an evaluation in eval mode under noGrad. Returns the accuracy and
 * the mean loss per sample.
 */
export async function epochGeneralCifar10(
  loader: DataLoader<[HostArray, number]>,
  model: ImageClassifier,
  options: EpochCifar10Options = {},
): Promise<EpochResult> {
  const lossFn = options.lossFn ?? new CrossEntropyLoss();
  const opt = options.opt ?? null;
  const readEvery = options.readEvery ?? 10;
  const total = loader.dataset.length;
  if (opt) model.train();
  else model.eval();
  const start = performance.now();
  const sums = new DeviceSums();
  let samples = 0;
  let batches = 0;
  for await (const [xb, yb] of loader) {
    const n = xb.shape[0];
    let loss: Tensor;
    let stats: NDArray[];
    if (opt) {
      const x = tensor(xb);
      const logits = model.call(x);
      // The statistics are taken before backward() releases the graph.
      const correct = tidy(() => logits.data.argmax(1).eq(yb).sum());
      loss = lossFn.call(logits, yb);
      loss.backward();
      opt.step();
      opt.zeroGrad();
      stats = [loss.data.mul(n), correct];
      x.dispose();
    } else {
      [loss, stats] = tidy(() => noGrad(() => {
        const logits = model.call(tensor(xb));
        const l = lossFn.call(logits, yb);
        return [l, [l.data.mul(n), logits.data.argmax(1).eq(yb).sum()]] as const;
      }));
    }
    // Outside any tidy: the running sums must outlive this step.
    sums.add(stats);
    stats.forEach((a) => a.dispose());
    samples += n;
    batches++;
    const current = options.onBatch && batches % readEvery === 0 ? await loss.item() : undefined;
    options.onBatch?.(samples, total, current);
    loss.dispose();
  }
  const [lossSum, correct] = await sums.read();
  if (!opt) model.train();
  return { accuracy: correct / samples, loss: lossSum / samples, samples, seconds: (performance.now() - start) / 1000 };
}

export interface TrainCifar10Options {
  /** Epochs to run (default 1). */
  epochs?: number;
  /** First epoch number, for a resumed run (default 1): epochs `startEpoch .. epochs` run. */
  startEpoch?: number;
  /** The optimizer (default: Adam over model.parameters() with `lr` and `weightDecay`, as hw4). */
  opt?: Optimizer<GroupOptions>;
  /** Default 0.001 (hw4's). */
  lr?: number;
  /** Default 0.001 (hw4's). */
  weightDecay?: number;
  lossFn?: Loss;
  onBatch?: (epoch: number, done: number, total: number, loss: number | undefined) => void;
  /** Called after every epoch with its result (evaluate, print, save a checkpoint here). */
  onEpoch?: (epoch: number, result: EpochResult, opt: Optimizer<GroupOptions>) => void | Promise<void>;
}

/**
 * Train an image classifier (needle's train_cifar10). Returns every epoch's training result. An
 * optimizer made here is disposed at the end; one passed in stays the caller's.
 */
export async function trainCifar10(model: ImageClassifier, loader: DataLoader<[HostArray, number]>, options: TrainCifar10Options = {}): Promise<EpochResult[]> {
  const epochs = options.epochs ?? 1;
  const opt = options.opt ?? new Adam(model.parameters(), { lr: options.lr ?? 0.001, weightDecay: options.weightDecay ?? 0.001 });
  const lossFn = options.lossFn ?? new CrossEntropyLoss();
  const results: EpochResult[] = [];
  try {
    for (let epoch = options.startEpoch ?? 1; epoch <= epochs; epoch++) {
      const onBatch = options.onBatch;
      const r = await epochGeneralCifar10(loader, model, { lossFn, opt, onBatch: onBatch && ((d, t, l) => onBatch(epoch, d, t, l)) });
      results.push(r);
      await options.onEpoch?.(epoch, r, opt);
    }
  } finally {
    if (!options.opt) opt.dispose();
  }
  return results;
}

/** Accuracy and mean loss of an image classifier over `loader`, in eval mode (needle's evaluate_cifar10). */
export async function evaluateCifar10(model: ImageClassifier, loader: DataLoader<[HostArray, number]>, options: { lossFn?: Loss; onBatch?: OnBatch } = {}): Promise<EpochResult> {
  return epochGeneralCifar10(loader, model, { lossFn: options.lossFn, onBatch: options.onBatch });
}

// ---- language models ------------------------------------------------------------------------------

export interface EpochPtbOptions {
  /** BPTT window length (default 40, hw4's). */
  seqLen?: number;
  lossFn?: Loss;
  /** Train with this optimizer; without one, evaluate (eval mode, no graph). */
  opt?: Optimizer<GroupOptions> | null;
  /** Clip the gradients' joint 2-norm to this before each step (default: no clipping). */
  clip?: number | null;
  onBatch?: OnBatch;
  readEvery?: number;
}

export interface PtbEpochResult extends EpochResult {
  /** exp(mean loss per token). */
  perplexity: number;
}

/** A detached copy of a language model's state, for the next BPTT window. */
function detachState(s: LanguageModelState): LanguageModelState {
  if (s === null) return null;
  return Array.isArray(s) ? [s[0].detach(), s[1].detach()] : (s as Tensor).detach();
}

function disposeState(s: LanguageModelState): void {
  if (s === null) return;
  for (const t of Array.isArray(s) ? s : [s as Tensor]) t.dispose();
}

/**
 * One pass over a batchified corpus `data` ([nbatch, batchSize] from `batchify`; needle's
 * epoch_general_ptb): windows of `seqLen` rows from `getBatch`, the recurrent state carried from
 * window to window detached (truncated BPTT), gradient clipping when `clip` is set. With `opt` it
 * trains, without it evaluates. Returns the next-token accuracy, the mean loss per token and the
 * perplexity.
 */
export async function epochGeneralPtb(data: NDArray, model: LanguageModel, options: EpochPtbOptions = {}): Promise<PtbEpochResult> {
  const seqLen = options.seqLen ?? 40;
  const lossFn = options.lossFn ?? new CrossEntropyLoss();
  const opt = options.opt ?? null;
  const readEvery = options.readEvery ?? 10;
  const nbatch = data.shape[0];
  const total = (nbatch - 1) * data.shape[1];
  if (opt) model.train();
  else model.eval();
  const start = performance.now();
  const sums = new DeviceSums();
  let state: LanguageModelState = null;
  let samples = 0;
  let batches = 0;
  const params = opt ? model.parameters() : [];
  try {
    for (let i = 0; i < nbatch - 1; i += seqLen) {
      const [x, y] = getBatch(data, i, seqLen);
      const n = y.shape[0];
      const prev: LanguageModelState = state;
      // The step runs in a tidy: what the loss did not reach (e.g. an LSTM's final c) is freed with
      // it, and only the loss, the statistics and the detached state leave it.
      const [loss, stats, next] = tidy(() => {
        const run = (): [Tensor, NDArray[], LanguageModelState] => {
          const [logits, h] = model.call(x, prev);
          const l = lossFn.call(logits, y);
          const st = noGrad(() => [l.data.mul(n), logits.data.argmax(1).eq(y).sum()]);
          const d = detachState(h);
          if (opt) l.backward();
          return [l, st, d];
        };
        return opt ? run() : noGrad(run);
      });
      sums.add(stats);
      stats.forEach((a) => a.dispose());
      disposeState(prev);
      state = next;
      if (opt) {
        if (options.clip != null) clipGradNorm(params, options.clip).dispose();
        opt.step();
        opt.zeroGrad();
      }
      [x, y].forEach((a) => a.dispose());
      samples += n;
      batches++;
      const current = options.onBatch && batches % readEvery === 0 ? await loss.item() : undefined;
      options.onBatch?.(samples, total, current);
      loss.dispose();
    }
  } finally {
    disposeState(state);
  }
  const [lossSum, correct] = await sums.read();
  if (!opt) model.train();
  const loss = lossSum / samples;
  return { accuracy: correct / samples, loss, perplexity: Math.exp(loss), samples, seconds: (performance.now() - start) / 1000 };
}

export interface TrainPtbOptions extends Omit<EpochPtbOptions, 'opt' | 'onBatch'> {
  epochs?: number;
  startEpoch?: number;
  /** The optimizer (default: SGD over model.parameters() with `lr` and `weightDecay`, as hw4). */
  opt?: Optimizer<GroupOptions>;
  /** Default 4.0 (hw4's SGD rate). */
  lr?: number;
  weightDecay?: number;
  onBatch?: (epoch: number, done: number, total: number, loss: number | undefined) => void;
  onEpoch?: (epoch: number, result: PtbEpochResult, opt: Optimizer<GroupOptions>) => void | Promise<void>;
}

/** Train a language model on a batchified corpus (needle's train_ptb). Returns every epoch's result. */
export async function trainPtb(model: LanguageModel, data: NDArray, options: TrainPtbOptions = {}): Promise<PtbEpochResult[]> {
  const epochs = options.epochs ?? 1;
  const opt = options.opt ?? new SGD(model.parameters(), { lr: options.lr ?? 4.0, weightDecay: options.weightDecay ?? 0 });
  const lossFn = options.lossFn ?? new CrossEntropyLoss();
  const results: PtbEpochResult[] = [];
  try {
    for (let epoch = options.startEpoch ?? 1; epoch <= epochs; epoch++) {
      const onBatch = options.onBatch;
      const r = await epochGeneralPtb(data, model, {
        seqLen: options.seqLen, lossFn, opt, clip: options.clip, readEvery: options.readEvery,
        onBatch: onBatch && ((d, t, l) => onBatch(epoch, d, t, l)),
      });
      results.push(r);
      await options.onEpoch?.(epoch, r, opt);
    }
  } finally {
    if (!options.opt) opt.dispose();
  }
  return results;
}

/** Next-token accuracy, mean loss and perplexity of a language model on a batchified corpus (needle's evaluate_ptb). */
export async function evaluatePtb(model: LanguageModel, data: NDArray, options: { seqLen?: number; lossFn?: Loss; onBatch?: OnBatch } = {}): Promise<PtbEpochResult> {
  return epochGeneralPtb(data, model, { seqLen: options.seqLen, lossFn: options.lossFn, onBatch: options.onBatch });
}
