import {
  checkBoolean,
  checkInteger,
  checkNumber,
  checkOptions,
  defaultGenerator,
  describeValue,
  fail,
  formatShape,
  Generator,
  NDArray,
  resolveBackend,
  type Backend,
  type GeneratorState,
} from '@needle/ndarray';
import { checkDataset, type Dataset } from './dataset';
import { isHostArray, type Sample } from './host';

export interface DataLoaderOptions {
  /** Samples per batch (default 1). */
  batchSize?: number;
  /** Visit the samples in a new random order every epoch (default false). */
  shuffle?: boolean;
  /** Seed for the shuffle order; the same seed gives the same sequence of epochs. */
  seed?: number;
  /** Generator for the shuffle order (overrides `seed`; default: @needle/ndarray's global one). */
  generator?: Generator;
  /** Drop the last batch when it has fewer than `batchSize` samples (default false). */
  dropLast?: boolean;
  /** Backend (instance or registered name) the batches are uploaded to (default: the default backend). */
  backend?: Backend | string;
  /**
   * Who disposes a batch. true (default): the loader, when the next batch is requested and when the
   * loop ends (also by `break` or an exception); the loop body must not keep a batch past its step
   * without taking its own reference (`x.clone()`). false: the caller owns every batch and disposes it.
   */
  autoDispose?: boolean;
  /**
   * Check class labels while they are still on the host: the last field of every sample must be an
   * integer in [0, numClasses). Once uploaded, an out-of-range label can no longer be checked (the
   * library never reads device data back) and cross-entropy can only turn it into NaN.
   */
  numClasses?: number;
}

/**
 * Where a loader is in its sequence of epochs (`DataLoader.stateDict()`), as plain JSON-able data:
 * - `generator`: the state of the loader's own shuffle generator before the epoch in progress drew
 *   its order (or, between epochs, before the next one does); null without an own generator;
 * - `order` and `batchesDone`: the order of the epoch in progress and how many of its batches were
 *   handed out; null and 0 between epochs.
 */
export interface DataLoaderState {
  generator: GeneratorState | null;
  order: number[] | null;
  batchesDone: number;
}

/** One NDArray per sample field: [x, y] for a dataset of [image, label] samples. */
export type Batch<S extends Sample> = { -readonly [K in keyof S]: NDArray };

/**
 * Iterates a dataset in batches: `for await (const [x, y] of loader) { ... }`.
 *
 * Each batch is assembled on the host (the samples' fields are copied into one Float32Array per
 * field) and uploaded with a single write per field, never per sample. A field of shape S becomes a
 * batch array of shape [B, ...S]; a number field becomes shape [B].
 *
 * Ownership (see `autoDispose`): by default the loader owns the batches, so a plain training loop
 * does not leak and holds one batch at a time.
 */
export class DataLoader<S extends Sample> implements AsyncIterable<Batch<S>> {
  readonly dataset: Dataset<S>;
  readonly batchSize: number;
  readonly shuffle: boolean;
  readonly dropLast: boolean;
  readonly autoDispose: boolean;
  private readonly generator: Generator | undefined;
  private readonly backendChoice: Backend | string | undefined;
  private readonly numClasses: number | undefined;
  /** The epoch in progress (of the latest loop): its order, the generator state it was drawn from, batches handed out. */
  private epoch: { order: number[]; generatorBefore: GeneratorState | null; batchesDone: number } | null = null;
  /** An epoch taken over from `loadStateDict`, resumed by the next iteration. */
  private resume: { order: number[]; generatorBefore: GeneratorState | null; batchesDone: number } | null = null;

  constructor(dataset: Dataset<S>, options: DataLoaderOptions = {}) {
    checkDataset('DataLoader', dataset);
    checkOptions('DataLoader', options);
    const batchSize = checkInteger('DataLoader', 'batchSize', options.batchSize ?? 1, 1);
    for (const flag of ['shuffle', 'dropLast', 'autoDispose'] as const) {
      if (options[flag] !== undefined) checkBoolean('DataLoader', flag, options[flag]);
    }
    if (options.seed !== undefined) checkNumber('DataLoader', 'seed', options.seed, { integer: true });
    if (options.generator !== undefined && !(options.generator instanceof Generator)) {
      fail('DataLoader', `generator must be a Generator, got ${describeValue(options.generator)}`);
    }
    if (options.backend !== undefined) resolveBackend(options.backend);
    if (options.numClasses !== undefined) checkInteger('DataLoader', 'numClasses', options.numClasses, 1);
    this.numClasses = options.numClasses;
    this.dataset = dataset;
    this.batchSize = batchSize;
    this.shuffle = options.shuffle ?? false;
    this.dropLast = options.dropLast ?? false;
    this.autoDispose = options.autoDispose ?? true;
    // A private generator per loader: two loaders with the same seed see the same epochs, and
    // drawing from one does not move the other.
    this.generator = options.generator ?? (options.seed === undefined ? undefined : new Generator(options.seed));
    this.backendChoice = options.backend;
  }

  /** Number of batches per epoch. */
  get length(): number {
    const n = this.dataset.length;
    return this.dropLast ? Math.floor(n / this.batchSize) : Math.ceil(n / this.batchSize);
  }

  /**
   * The sample order of the next epoch (a permutation when shuffling). Drawing it advances the
   * generator, as starting an epoch does.
   */
  order(): number[] {
    const n = this.dataset.length;
    if (!this.shuffle) return Array.from({ length: n }, (_, i) => i);
    // Resolved at draw time so a later manualSeed() is honoured when no generator was given.
    return (this.generator ?? defaultGenerator()).permutation(n);
  }

  /**
   * The loader's position, for resuming a run in the middle of an epoch (PyTorch users know it from
   * torchdata's StatefulDataLoader): taken inside the loop after a step, a later `loadStateDict` of
   * it makes the next iteration continue that epoch with the batch after the last one handed out,
   * in the same order, and later epochs draw the orders they would have drawn. A shuffle without a
   * generator of the loader's own draws from the global generator, whose state is the caller's to
   * save (checkpoint `defaultGenerator()` too); the order of the epoch in progress is kept either way.
   */
  stateDict(): DataLoaderState {
    const current = this.epoch ?? this.resume;
    return {
      generator: current ? current.generatorBefore : (this.generator?.stateDict() ?? null),
      order: current ? [...current.order] : null,
      batchesDone: current ? current.batchesDone : 0,
    };
  }

  /** Check `state` as `loadStateDict` does, changing nothing. */
  checkStateDict(state: DataLoaderState): void {
    const op = 'DataLoader.checkStateDict';
    if (typeof state !== 'object' || state === null) fail(op, `expected a state from DataLoader.stateDict(), got ${describeValue(state)}`);
    const extra = Object.keys(state).filter((k) => !['generator', 'order', 'batchesDone'].includes(k));
    if (extra.length > 0) fail(op, `unknown state keys ${extra.join(', ')}; a DataLoader state has generator, order, batchesDone`);
    const { generator, order, batchesDone } = state;
    if (generator !== null && generator !== undefined) {
      if (!this.generator) fail(op, 'the state holds a shuffle generator state, but this loader has no generator of its own (pass `generator` or `seed` as the saved run did)');
      this.generator.checkStateDict(generator);
    } else if (this.generator && this.shuffle) {
      fail(op, 'the state holds no generator state, but this loader shuffles with a generator of its own; the state comes from a loader made differently');
    }
    const n = this.dataset.length;
    if (order === null || order === undefined) {
      if (batchesDone !== 0) fail(op, `batchesDone is ${String(batchesDone)} without an epoch order; expected 0`);
      return;
    }
    if (!Array.isArray(order) || order.length !== n) fail(op, `order must be an array of the dataset's ${n} indices, got ${Array.isArray(order) ? `${order.length} entries` : describeValue(order)}`);
    const seen = new Uint8Array(n);
    order.forEach((i, k) => {
      if (!Number.isInteger(i) || i < 0 || i >= n || seen[i]) fail(op, `order[${k}] is ${String(i)}; the order must hold each index 0..${n - 1} once (the dataset has ${n} samples)`);
      seen[i] = 1;
    });
    if (!Number.isInteger(batchesDone) || batchesDone < 0 || batchesDone > this.length) fail(op, `batchesDone is ${String(batchesDone)}, expected an integer in [0, ${this.length}] (batches per epoch)`);
  }

  /**
   * Continue from `stateDict()`'s state (checked first; a bad state changes nothing): the next loop
   * over this loader resumes the saved epoch.
   */
  loadStateDict(state: DataLoaderState): this {
    this.checkStateDict(state);
    if (state.generator && this.generator) this.generator.loadStateDict(state.generator);
    this.resume = state.order ? { order: [...state.order], generatorBefore: state.generator ?? null, batchesDone: state.batchesDone } : null;
    // Resuming the epoch also restores the generator as it was after that epoch drew its order.
    if (this.resume && this.shuffle && this.generator) this.generator.permutation(this.dataset.length);
    return this;
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<Batch<S>, void, undefined> {
    const backend = resolveBackend(this.backendChoice);
    let epoch = this.resume;
    this.resume = null;
    if (!epoch) {
      const generatorBefore = this.shuffle && this.generator ? this.generator.stateDict() : null;
      epoch = { order: this.order(), generatorBefore, batchesDone: 0 };
    }
    this.epoch = epoch;
    const { order } = epoch;
    const count = this.length;
    let previous: NDArray[] | undefined;
    try {
      for (let b = epoch.batchesDone; b < count; b++) {
        // The previous batch is released before the next is built, so at most one is alive.
        if (previous) disposeBatch(previous);
        previous = undefined;
        const indices = order.slice(b * this.batchSize, (b + 1) * this.batchSize);
        const samples = await Promise.all(indices.map((i) => this.dataset.get(i)));
        const batch = collate(samples, indices, backend, this.numClasses);
        if (this.autoDispose) previous = batch;
        // Counted before the loop body runs: a state taken in the body resumes after this batch.
        epoch.batchesDone = b + 1;
        yield batch as Batch<S>;
      }
    } finally {
      if (previous) disposeBatch(previous);
      // A second loop started meanwhile owns the position now.
      if (this.epoch === epoch) this.epoch = null;
    }
  }
}

function disposeBatch(batch: NDArray[]): void {
  // The loop body may already have disposed a batch array itself; that is allowed.
  for (const a of batch) if (!a.disposed) a.dispose();
}

/**
 * Stack samples field by field into host buffers and upload each once. `indices` are the dataset
 * indices, for error messages. With `numClasses`, the last field must hold class indices in
 * [0, numClasses) (checked on the host, before the upload).
 */
export function collate(samples: readonly Sample[], indices: readonly number[], backend: Backend, numClasses?: number): NDArray[] {
  if (!Array.isArray(samples as unknown)) fail('collate', `expected an array of samples, got ${describeValue(samples)}`);
  if (samples.length === 0) fail('collate', 'cannot build a batch from zero samples');
  const first = samples[0];
  if (!Array.isArray(first) || first.length === 0) {
    fail('collate', `sample ${indices[0]} is not a non-empty array of fields (got ${describe(first)}); a dataset's get() must return e.g. [image, label]`);
  }
  const out: NDArray[] = [];
  try {
    for (let f = 0; f < first.length; f++) {
      const field0 = first[f];
      const shape = typeof field0 === 'number' ? [] : isHostArray(field0) ? field0.shape : fail('collate', `field ${f} of sample ${indices[0]} is ${describe(field0)}, expected a number or a HostArray {data: Float32Array, shape}`);
      const size = typeof field0 === 'number' ? 1 : field0.data.length;
      const data = new Float32Array(samples.length * size);
      samples.forEach((s, k) => {
        if (s.length !== first.length) {
          fail('collate', `sample ${indices[k]} has ${s.length} fields, sample ${indices[0]} has ${first.length}`);
        }
        const v = s[f];
        if (typeof field0 === 'number') {
          if (typeof v !== 'number') fail('collate', `field ${f} of sample ${indices[k]} is ${describe(v)}, but it is a number in sample ${indices[0]}`);
          if (numClasses !== undefined && f === first.length - 1 && !(Number.isInteger(v) && v >= 0 && v < numClasses)) {
            fail('collate', `the label (field ${f}) of sample ${indices[k]} is ${v}, expected a class index in [0, ${numClasses}) (numClasses ${numClasses})`);
          }
          data[k] = v;
        } else {
          if (!isHostArray(v) || !sameShape(v.shape, shape)) {
            fail('collate', `field ${f} of sample ${indices[k]} has shape ${isHostArray(v) ? formatShape(v.shape) : describe(v)}, but ${formatShape(shape)} in sample ${indices[0]}; samples in a batch must have equal shapes`);
          }
          if (numClasses !== undefined && f === first.length - 1) {
            const bad = v.data.findIndex((c) => !(Number.isInteger(c) && c >= 0 && c < numClasses));
            if (bad >= 0) fail('collate', `the labels (field ${f}) of sample ${indices[k]} hold ${v.data[bad]} at element ${bad}, expected class indices in [0, ${numClasses})`);
          }
          data.set(v.data, k * size);
        }
      });
      out.push(NDArray.fromData(data, [samples.length, ...shape], backend));
    }
  } catch (e) {
    for (const a of out) a.dispose();
    throw e;
  }
  return out;
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return `an array of length ${v.length}`;
  return typeof v === 'object' ? `an object (${Object.keys(v as object).join(', ') || 'no keys'})` : `a ${typeof v}`;
}
