/**
 * A training run checkpointed mid-epoch and resumed in fresh objects is bit-identical to one that
 * never stopped: model (parameters and BatchNorm buffers), optimizer (moments, step counts, lrs),
 * LR schedulers, the global generator (Dropout's masks), the loader's shuffle and the counters all
 * come back from one safetensors checkpoint. Runs on cpu and (in the wasm re-run) on wasm.
 */
import { describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { defaultGenerator } from '@needle/ndarray';
import { Tensor } from '@needle/autograd';
import { DataLoader, TensorDataset } from '@needle/data';
import { loadCheckpointFile, saveCheckpointFile } from '@needle/safetensors/node';
import { CrossEntropyLoss } from '../src/index';
import { SETUPS, STOP_AT, TOTAL_STEPS, build, makeData, train } from './resume-run';
import { liveBuffers } from './helpers';

describe('resume from a checkpoint is bit-identical', () => {
  for (const setup of SETUPS) {
    it(`${setup.name}: stop mid-epoch at step ${STOP_AT}, resume in fresh objects, finish at ${TOTAL_STEPS}`, async () => {
      const data = makeData();
      const before = liveBuffers();

      const straight = await train(setup, data, TOTAL_STEPS);
      expect(straight.losses).toHaveLength(TOTAL_STEPS);
      const first = await train(setup, data, STOP_AT);
      expect(first.checkpoint).toBeInstanceOf(Uint8Array);
      expect(first.losses).toEqual(straight.losses.slice(0, STOP_AT));
      const resumed = await train(setup, data, TOTAL_STEPS, first.checkpoint);

      // Float32 bits: every loss after the resume and every parameter and buffer at the end.
      expect(resumed.losses).toEqual(straight.losses.slice(STOP_AT));
      expect(resumed.params).toEqual(straight.params);
      expect(resumed.lrs).toEqual(straight.lrs);
      expect([resumed.steps, resumed.epoch]).toEqual([TOTAL_STEPS, 2]);
      // The run did change things (a resume that loaded nothing would not match, see below).
      expect(straight.params['0.weight']).not.toEqual(first.params['0.weight']);
      expect(liveBuffers()).toBe(before);
      data.x.dispose();
      data.y.dispose();
    });
  }

  it('each part matters: without the global generator (Dropout) or the epoch\'s shuffle state, the resumed run diverges', async () => {
    const setup = SETUPS[0];
    const data = makeData();
    const straight = await train(setup, data, TOTAL_STEPS);
    const first = await train(setup, data, STOP_AT);
    for (const omit of ['rng', 'shuffle'] as const) {
      const resumed = await train(setup, data, TOTAL_STEPS, first.checkpoint, omit);
      expect(resumed.losses, `resumed without ${omit}`).not.toEqual(straight.losses.slice(STOP_AT));
    }
    data.x.dispose();
    data.y.dispose();
  });
});

it('README example (checkpoints): three epochs straight equal two, a save, and a resumed third', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'needle-resume-readme-'));
  const path = join(dir, 'run.safetensors');
  const data = makeData();
  const before = liveBuffers();
  const runEpochs = async (epochs: number, resume: boolean): Promise<number[]> => {
    const { model, optimizer, schedulers, loaderRng: shuffle } = build(SETUPS[0], resume ? 5 : 0);
    const scheduler = schedulers[0];
    const loader = new DataLoader(new TensorDataset(data.x, data.y), { batchSize: 4, shuffle: true, generator: shuffle });
    const lossFn = new CrossEntropyLoss();
    const losses: number[] = [];
    const trainOneEpoch = async (): Promise<void> => {
      for await (const [x, y] of loader) {
        const loss = lossFn.call(model.call(new Tensor(x)), y);
        optimizer.zeroGrad();
        loss.backward();
        optimizer.step();
        losses.push(await loss.item());
        loss.dispose();
      }
    };
    // ---- README code starts here ----
    const parts = { model, optimizer, scheduler, rng: defaultGenerator(), shuffle };
    let start = 0;
    if (resume) {
      // Build the same objects first; every part is checked before any is loaded.
      const { data } = await loadCheckpointFile(path, { ...parts, epoch: null });
      start = (data.epoch as number) + 1;
    }
    for (let epoch = start; epoch < epochs; epoch++) {
      await trainOneEpoch(); // for await (const [x, y] of loader) { ... optimizer.step(); }
      scheduler.step();
      await saveCheckpointFile(path, { ...parts, epoch });
    }
    // ---- README code ends here ----
    model.dispose();
    optimizer.dispose();
    return losses;
  };
  const straight = await runEpochs(3, false);
  expect(straight).toHaveLength(15);
  await runEpochs(2, false);
  const resumed = await runEpochs(3, true);
  expect(resumed).toEqual(straight.slice(10));
  expect(liveBuffers()).toBe(before);
  data.x.dispose();
  data.y.dispose();
  rmSync(dir, { recursive: true, force: true });
});
