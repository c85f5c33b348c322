import { checkInteger, defaultGenerator, describeValue, fail, formatShape, Generator, NDArray } from '@needle/ndarray';
import { hostArray, type SampleField } from './host';

/**
 * A map-style dataset: a length and random access to samples. `get` may return a Promise, so a
 * dataset can read lazily from an asynchronous source (a file, a GPU array).
 */
export abstract class Dataset<T> {
  abstract readonly length: number;
  abstract get(index: number): T | Promise<T>;

  /** Throw a clear error for an index outside [0, length). */
  protected checkIndex(op: string, index: number): void {
    if (!Number.isInteger(index) || index < 0 || index >= this.length) {
      fail(op, `index ${describeValue(index)} is out of range for a dataset of length ${this.length}`);
    }
  }
}

/**
 * A dataset over NDArrays that share their first dimension (PyTorch's TensorDataset; needle has no
 * separate host type, so it holds NDArrays). Sample i is [arrays[0][i], arrays[1][i], ...]: a
 * HostArray for each array of rank >= 2, a number for each 1-d array (labels).
 *
 * The arrays are read to the host once, on the first `get` (asynchronously, so any backend works),
 * and the samples are served from that snapshot: later writes to the arrays are not seen. The
 * dataset does not own the arrays; the caller still disposes them.
 */
export class TensorDataset extends Dataset<SampleField[]> {
  readonly arrays: readonly NDArray[];
  readonly length: number;
  private host: Promise<Float32Array[]> | undefined;

  constructor(...arrays: NDArray[]) {
    super();
    if (arrays.length === 0) fail('TensorDataset', 'needs at least one array');
    arrays.forEach((a, k) => {
      if (!(a instanceof NDArray)) fail('TensorDataset', `array ${k} is ${describeValue(a)}, expected an NDArray`);
      a.assertLive('TensorDataset');
      if (a.ndim === 0) fail('TensorDataset', `array ${k} is 0-d; every array needs a first (sample) dimension`);
    });
    const n = arrays[0].shape[0];
    arrays.forEach((a, k) => {
      if (a.shape[0] !== n) {
        fail('TensorDataset', `array ${k} has shape ${formatShape(a.shape)}, first dimension ${a.shape[0]}; array 0 has ${n} samples (shape ${formatShape(arrays[0].shape)})`);
      }
    });
    this.arrays = arrays;
    this.length = n;
  }

  async get(index: number): Promise<SampleField[]> {
    this.checkIndex('TensorDataset.get', index);
    // A failed read (e.g. an array disposed too early) must not poison every later get.
    this.host ??= Promise.all(this.arrays.map((a) => a.toArray())).catch((e: unknown) => {
      this.host = undefined;
      throw e;
    });
    const host = await this.host;
    return this.arrays.map((a, k) => {
      const rest = a.shape.slice(1);
      if (rest.length === 0) return host[k][index];
      const size = rest.reduce((p, d) => p * d, 1);
      return hostArray(host[k].slice(index * size, (index + 1) * size), rest);
    });
  }
}

/** A Dataset, or any object with an integer length and a get method (datasets may be duck-typed). */
export function checkDataset(op: string, dataset: unknown): void {
  const d = dataset as Partial<Dataset<unknown>> | null;
  if (d === null || typeof d !== 'object' || typeof d.get !== 'function' || !Number.isInteger(d.length)) {
    fail(op, `expected a Dataset (an object with length and get(index)), got ${describeValue(dataset)}`);
  }
  checkInteger(op, 'dataset.length', d.length);
}

/** The samples of `dataset` at `indices`, in that order (PyTorch's Subset). */
export class Subset<T> extends Dataset<T> {
  readonly dataset: Dataset<T>;
  readonly indices: readonly number[];

  constructor(dataset: Dataset<T>, indices: readonly number[]) {
    super();
    checkDataset('Subset', dataset);
    if (!Array.isArray(indices as unknown)) fail('Subset', `expected the indices as an array of integers, got ${describeValue(indices)}`);
    indices.forEach((i, k) => {
      if (!Number.isInteger(i) || i < 0 || i >= dataset.length) {
        fail('Subset', `indices[${k}] = ${describeValue(i)} is out of range for a dataset of length ${dataset.length}`);
      }
    });
    this.dataset = dataset;
    this.indices = [...indices];
  }

  get length(): number {
    return this.indices.length;
  }

  get(index: number): T | Promise<T> {
    this.checkIndex('Subset.get', index);
    return this.dataset.get(this.indices[index]);
  }
}

/**
 * Split a dataset into non-overlapping random subsets of the given lengths, which must add up to
 * the dataset's length (PyTorch's random_split). The order is `generator.permutation(length)`.
 */
export function randomSplit<T>(dataset: Dataset<T>, lengths: readonly number[], options: { seed?: number; generator?: Generator } = {}): Subset<T>[] {
  checkDataset('randomSplit', dataset);
  if (!Array.isArray(lengths as unknown) || lengths.some((n) => typeof n !== 'number')) {
    fail('randomSplit', `expected the lengths as an array of integers, got ${describeValue(lengths)}`);
  }
  const total = lengths.reduce((a, b) => a + b, 0);
  if (lengths.some((n) => !Number.isInteger(n) || n < 0) || total !== dataset.length) {
    fail('randomSplit', `lengths ${formatShape(lengths)} must be non-negative integers adding up to the dataset length ${dataset.length} (they add up to ${total})`);
  }
  const g = options.generator ?? (options.seed === undefined ? defaultGenerator() : new Generator(options.seed));
  const order = g.permutation(dataset.length);
  let at = 0;
  return lengths.map((n) => {
    const part = new Subset(dataset, order.slice(at, at + n));
    at += n;
    return part;
  });
}
