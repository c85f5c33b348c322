// DataLoader.stateDict()/loadStateDict(): a run stopped in the middle of an epoch and resumed from
// the saved state sees exactly the batches an uninterrupted run sees, in this epoch and the next.
import { defaultGenerator, manualSeed } from '@needle/ndarray';
import { createCpuBackend } from '@needle/ndarray-cpu';
import { describe, expect, it } from 'vitest';
import { DataLoader, Dataset, hostArray, type DataLoaderState, type HostArray } from '../src';

const backend = createCpuBackend();

class Numbered extends Dataset<[HostArray, number]> {
  constructor(readonly length: number) {
    super();
  }
  async get(i: number): Promise<[HostArray, number]> {
    return [hostArray(Float32Array.from([i]), [1]), i];
  }
}

type Loader = DataLoader<readonly [HostArray, number]>;

/** Labels of every batch of `epochs` epochs; `stopAt` = [epoch, batch] returns the state taken after that batch. */
async function run(loader: Loader, epochs: number, stopAt?: [number, number]): Promise<{ batches: number[][]; state?: DataLoaderState }> {
  const batches: number[][] = [];
  for (let e = 0; e < epochs; e++) {
    let b = 0;
    for await (const [, y] of loader) {
      batches.push([...y.toArraySync()]);
      if (stopAt && stopAt[0] === e && stopAt[1] === b) return { batches, state: JSON.parse(JSON.stringify(loader.stateDict())) as DataLoaderState };
      b++;
    }
  }
  return { batches };
}

describe('DataLoader state', () => {
  for (const [name, options] of [
    ['a seeded shuffle', { shuffle: true, seed: 7 }],
    ['a shuffle from the global generator', { shuffle: true }],
    ['no shuffle', {}],
  ] as const) {
    it(`${name}: stopping after batch 2 of epoch 1 and resuming gives the uninterrupted batches`, async () => {
      const make = () => new DataLoader(new Numbered(10), { batchSize: 3, backend, ...options });
      manualSeed(3);
      const whole = await run(make(), 3);
      manualSeed(3);
      const first = await run(make(), 3, [1, 2]);
      // The global generator is the caller's part of the checkpoint (as a training script saves it).
      const globalState = defaultGenerator().stateDict();
      expect(first.state!.batchesDone).toBe(3);
      manualSeed(99); // whatever happened in between
      defaultGenerator().loadStateDict(globalState);
      const resumed = make().loadStateDict(first.state!);
      const rest = await run(resumed, 2); // the rest of epoch 1, then epoch 2
      expect([...first.batches, ...rest.batches]).toEqual(whole.batches);
      expect(whole.batches.length).toBe(12);
      if (options.shuffle) expect(whole.batches.slice(0, 4)).not.toEqual(whole.batches.slice(4, 8));
    });
  }

  it('between epochs the state holds only the generator; a fresh loader given it draws the next epochs', async () => {
    const make = () => new DataLoader(new Numbered(8), { batchSize: 4, shuffle: true, seed: 1, backend });
    const a = make();
    await run(a, 1);
    const state = a.stateDict();
    expect(state.order).toBeNull();
    expect(state.batchesDone).toBe(0);
    const next = await run(a, 1);
    expect((await run(make().loadStateDict(state), 1)).batches).toEqual(next.batches);
  });

  it('a bad state is refused by name and changes nothing', () => {
    const loader = new DataLoader(new Numbered(4), { batchSize: 2, shuffle: true, seed: 1, backend });
    const good = loader.stateDict();
    const bad = (patch: object) => ({ ...good, order: [3, 2, 1, 0], batchesDone: 1, ...patch }) as DataLoaderState;
    expect(() => loader.loadStateDict(bad({ order: [0, 1, 1, 3] }))).toThrow(/DataLoader.checkStateDict: order\[2\] is 1; the order must hold each index 0..3 once/);
    expect(() => loader.loadStateDict(bad({ order: [0, 1] }))).toThrow(/order must be an array of the dataset's 4 indices, got 2 entries/);
    expect(() => loader.loadStateDict(bad({ batchesDone: 3 }))).toThrow(/batchesDone is 3, expected an integer in \[0, 2\]/);
    expect(() => loader.loadStateDict(bad({ extra: 1 }))).toThrow(/unknown state keys extra/);
    expect(() => loader.loadStateDict(bad({ generator: null }))).toThrow(/holds no generator state, but this loader shuffles with a generator of its own/);
    expect(() => new DataLoader(new Numbered(4), { batchSize: 2, backend }).loadStateDict(bad({}))).toThrow(/this loader has no generator of its own/);
    expect(() => loader.loadStateDict(null as never)).toThrow(/expected a state from DataLoader.stateDict\(\), got null/);
    expect(loader.stateDict()).toEqual(good);
  });
});
