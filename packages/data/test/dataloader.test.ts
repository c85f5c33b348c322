import { array, Generator, manualSeed, NDArray, scope } from '@needle/ndarray';
import { createCpuBackend } from '@needle/ndarray-cpu';
import { describe, expect, it } from 'vitest';
import { collate, DataLoader, Dataset, hostArray, randomSplit, Subset, TensorDataset, type HostArray } from '../src';

const backend = createCpuBackend();

/** Sample i = [[i, 10 + i] as a [2] array, label i]: every value tells which sample it came from. */
class CountingDataset extends Dataset<[HostArray, number]> {
  gets = 0;
  constructor(readonly length: number) {
    super();
  }
  async get(i: number): Promise<[HostArray, number]> {
    this.gets++;
    return [hostArray(Float32Array.from([i, 10 + i]), [2]), i];
  }
}

async function labelsPerBatch(loader: DataLoader<readonly [HostArray, number]>): Promise<number[][]> {
  const out: number[][] = [];
  for await (const [x, y] of loader) {
    const labels = [...y.toArraySync()];
    // The input rows must belong to the same samples as the labels (fields stay aligned).
    expect([...x.toArraySync()]).toEqual(labels.flatMap((i) => [i, 10 + i]));
    out.push(labels);
  }
  return out;
}

describe('DataLoader', () => {
  it('batches in order with a last partial batch', async () => {
    const loader = new DataLoader(new CountingDataset(7), { batchSize: 3, backend });
    expect(loader.length).toBe(3);
    const shapes: number[][][] = [];
    for await (const [x, y] of loader) shapes.push([[...x.shape], [...y.shape]]);
    expect(shapes).toEqual([
      [[3, 2], [3]],
      [[3, 2], [3]],
      [[1, 2], [1]],
    ]);
    expect(await labelsPerBatch(loader)).toEqual([[0, 1, 2], [3, 4, 5], [6]]);
  });

  it('dropLast drops the partial batch', async () => {
    const loader = new DataLoader(new CountingDataset(7), { batchSize: 3, dropLast: true, backend });
    expect(loader.length).toBe(2);
    expect(await labelsPerBatch(loader)).toEqual([[0, 1, 2], [3, 4, 5]]);
    const exact = new DataLoader(new CountingDataset(6), { batchSize: 3, dropLast: true, backend });
    expect(await labelsPerBatch(exact)).toEqual([[0, 1, 2], [3, 4, 5]]);
  });

  it('shuffles with a seed: reproducible, a permutation, the Generator order, new each epoch', async () => {
    const make = () => new DataLoader(new CountingDataset(10), { batchSize: 4, shuffle: true, seed: 42, backend });
    const a = make();
    const b = make();
    const epoch1 = await labelsPerBatch(a);
    expect(await labelsPerBatch(b)).toEqual(epoch1);
    expect(epoch1.map((batch) => batch.length)).toEqual([4, 4, 2]);
    // The order is exactly @needle/ndarray's Generator(42).permutation, drawn once per epoch.
    const g = new Generator(42);
    const p1 = g.permutation(10);
    const p2 = g.permutation(10);
    expect(epoch1.flat()).toEqual(p1);
    expect([...p1].sort((x, y) => x - y)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(p1).not.toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    const epoch2 = await labelsPerBatch(a);
    expect(epoch2.flat()).toEqual(p2);
    expect(p2).not.toEqual(p1);
    const other = await labelsPerBatch(new DataLoader(new CountingDataset(10), { batchSize: 4, shuffle: true, seed: 7, backend }));
    expect(other.flat()).not.toEqual(epoch1.flat());
  });

  it('shuffles with a given generator, or the global one reseeded by manualSeed', async () => {
    const withGen = await labelsPerBatch(new DataLoader(new CountingDataset(6), { batchSize: 6, shuffle: true, generator: new Generator(5), backend }));
    expect(withGen.flat()).toEqual(new Generator(5).permutation(6));
    const global = new DataLoader(new CountingDataset(6), { batchSize: 6, shuffle: true, backend });
    manualSeed(8);
    const first = await labelsPerBatch(global);
    manualSeed(8);
    expect(await labelsPerBatch(global)).toEqual(first);
    expect(first.flat()).toEqual(new Generator(8).permutation(6));
  });

  it('a failing dataset get() rejects the loop and releases the batch in hand', async () => {
    class Failing extends CountingDataset {
      override async get(i: number): Promise<[HostArray, number]> {
        if (i === 5) throw new Error('cannot read sample 5');
        return super.get(i);
      }
    }
    const before = backend.memory().buffers;
    const seen: number[] = [];
    await expect(
      (async () => {
        for await (const [, y] of new DataLoader(new Failing(8), { batchSize: 2, backend })) seen.push(...y.toArraySync());
      })(),
    ).rejects.toThrow('cannot read sample 5');
    expect(seen).toEqual([0, 1, 2, 3]);
    expect(backend.memory().buffers).toBe(before);
  });

  it('uploads once per field per batch, not per sample', async () => {
    let writes = 0;
    const counting = createCpuBackend({ name: 'counting-cpu' });
    const write = counting.write.bind(counting);
    counting.write = (buf, data, offset) => {
      writes++;
      write(buf, data, offset);
    };
    const ds = new CountingDataset(8);
    for await (const batch of new DataLoader(ds, { batchSize: 4, backend: counting })) expect(batch.length).toBe(2);
    expect(ds.gets).toBe(8);
    expect(writes).toBe(4); // 2 batches x 2 fields
  });

  it('disposes each batch when the next is requested and at the end: no leak over epochs', async () => {
    const before = backend.memory().buffers;
    const loader = new DataLoader(new CountingDataset(10), { batchSize: 3, shuffle: true, seed: 1, backend });
    const live: number[] = [];
    let kept: NDArray[] = [];
    for (let epoch = 0; epoch < 2; epoch++) {
      for await (const [x, y] of loader) {
        // A training step's own temporaries, disposed by the step (as the README's loop does).
        const s = scope();
        x.mul(2).sum();
        s.end();
        live.push(backend.memory().buffers - before);
        kept = [x, y];
      }
    }
    expect(live).toEqual(new Array(8).fill(2)); // exactly the current batch's two arrays
    expect(backend.memory().buffers).toBe(before);
    expect(kept.every((a) => a.disposed)).toBe(true);
  });

  it('disposes the current batch on break and on an exception; tolerates a batch the body disposed', async () => {
    const before = backend.memory().buffers;
    const loader = new DataLoader(new CountingDataset(9), { batchSize: 2, backend });
    for await (const [x] of loader) {
      x.dispose();
      break;
    }
    expect(backend.memory().buffers).toBe(before);
    await expect(
      (async () => {
        for await (const _batch of loader) throw new Error('step failed');
      })(),
    ).rejects.toThrow('step failed');
    expect(backend.memory().buffers).toBe(before);
  });

  it('keeps a batch the body cloned, and leaves batches to the caller with autoDispose: false', async () => {
    const before = backend.memory().buffers;
    let kept: NDArray | undefined;
    for await (const [x] of new DataLoader(new CountingDataset(4), { batchSize: 2, backend })) kept ??= x.clone();
    expect([...kept!.toArraySync()]).toEqual([0, 10, 1, 11]);
    kept!.dispose();
    const owned: NDArray[][] = [];
    for await (const batch of new DataLoader(new CountingDataset(4), { batchSize: 2, backend, autoDispose: false })) owned.push(batch);
    expect(backend.memory().buffers).toBe(before + 4);
    expect([...owned[0][1].toArraySync()]).toEqual([0, 1]);
    for (const b of owned) for (const a of b) a.dispose();
    expect(backend.memory().buffers).toBe(before);
  });

  it('validates options and samples', async () => {
    expect(() => new DataLoader(new CountingDataset(3), { batchSize: 0 })).toThrow('DataLoader: batchSize must be a positive integer, got 0');
    expect(() => collate([[hostArray(new Float32Array(2), [2])], [hostArray(new Float32Array(3), [3])]], [4, 9], backend)).toThrow(
      'collate: field 0 of sample 9 has shape [3], but [2] in sample 4; samples in a batch must have equal shapes',
    );
    expect(() => collate([[1, 2], [3]], [0, 1], backend)).toThrow('collate: sample 1 has 1 fields, sample 0 has 2');
    const before = backend.memory().buffers;
    // The first field is uploaded before the second fails: it must be released.
    expect(() => collate([[1, 2], [3, hostArray(new Float32Array(1), [1])]], [0, 1], backend)).toThrow('field 1 of sample 1 is an object');
    expect(backend.memory().buffers).toBe(before);
  });
});

describe('Subset and randomSplit', () => {
  it('selects samples by index and splits a dataset by a seeded permutation', async () => {
    const ds = new CountingDataset(10);
    const sub = new Subset(ds, [7, 2]);
    expect(sub.length).toBe(2);
    expect((await sub.get(0))[1]).toBe(7);
    expect(() => new Subset(ds, [3, 10])).toThrow('Subset: indices[1] = 10 is out of range for a dataset of length 10');
    const [a, b] = randomSplit(ds, [7, 3], { seed: 4 });
    const p = new Generator(4).permutation(10);
    expect(a.indices).toEqual(p.slice(0, 7));
    expect(b.indices).toEqual(p.slice(7));
    expect(await labelsPerBatch(new DataLoader(b, { batchSize: 3, backend }))).toEqual([p.slice(7)]);
    expect(() => randomSplit(ds, [5, 4])).toThrow('randomSplit: lengths [5, 4] must be non-negative integers adding up to the dataset length 10 (they add up to 9)');
  });
});

describe('TensorDataset', () => {
  it('serves rows of its arrays as samples: HostArrays for rank >= 2, numbers for 1-d', async () => {
    const x = array([[1, 2], [3, 4], [5, 6]], { backend });
    const y = array([7, 8, 9], { backend });
    const ds = new TensorDataset(x, y);
    expect(ds.length).toBe(3);
    const [row, label] = await ds.get(1);
    expect(row).toEqual({ data: Float32Array.from([3, 4]), shape: [2] });
    expect(label).toBe(8);
    await expect(ds.get(3)).rejects.toThrow('TensorDataset.get: index 3 is out of range for a dataset of length 3');
    const batches: number[][] = [];
    for await (const [bx, by] of new DataLoader(ds, { batchSize: 2, backend })) {
      batches.push([...bx.toArraySync(), ...by.toArraySync()]);
      expect(bx.backend).toBe(backend);
    }
    expect(batches).toEqual([[1, 2, 3, 4, 7, 8], [5, 6, 9]]);
    x.dispose();
    y.dispose();
  });

  it('works on a backend without synchronous reads', async () => {
    const asyncOnly = createCpuBackend({ name: 'async-cpu', readSync: false });
    const x = NDArray.fromData(Float32Array.from([1, 2, 3, 4, 5, 6, 7, 8]), [2, 2, 2], asyncOnly);
    const ds = new TensorDataset(x);
    const [img] = await ds.get(1);
    expect(img).toEqual({ data: Float32Array.from([5, 6, 7, 8]), shape: [2, 2] });
    for await (const [bx] of new DataLoader(ds, { batchSize: 2, backend: asyncOnly })) {
      expect(bx.shape).toEqual([2, 2, 2]);
      expect([...(await bx.toArray())]).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    }
    x.dispose();
  });

  it('requires equal first dimensions', () => {
    const a = array([1, 2, 3], { backend });
    const b = array([[1, 2], [3, 4]], { backend });
    expect(() => new TensorDataset(a, b)).toThrow('TensorDataset: array 1 has shape [2, 2], first dimension 2; array 0 has 3 samples (shape [3])');
    a.dispose();
    b.dispose();
  });
});
