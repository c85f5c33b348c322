/**
 * The training run of the resume tests (resume.test.ts on cpu/wasm, resume-webgpu.test.ts): a small
 * model with BatchNorm and Dropout, an optimizer with state, LR schedulers, a shuffled loader, and
 * a mid-epoch checkpoint of all of it (plus the global generator and the counters) in one
 * safetensors file.
 */
import { Generator, array, defaultGenerator, manualSeed, randn, type GeneratorState, type NDArray } from '@needle/ndarray';
import { Tensor } from '@needle/autograd';
import { DataLoader, TensorDataset } from '@needle/data';
import { Adam, CosineAnnealingLR, LinearLR, SGD, StepLR, type LRScheduler, type Optimizer, type GroupOptions } from '@needle/optim';
import { loadCheckpoint, saveCheckpoint } from '@needle/safetensors';
import { BatchNorm1d, CrossEntropyLoss, Dropout, Linear, ReLU, Sequential } from '../src/index';

/** The dataset: 20 samples of 4 features, 3 classes (on the default backend). */
export interface Data {
  x: NDArray;
  y: NDArray;
}

export function makeData(): Data {
  const x = randn([SAMPLES, 4], { generator: new Generator(3) });
  const y = array(Array.from({ length: SAMPLES }, (_, i) => (i * 7) % 3));
  return { x, y };
}

export interface Setup {
  name: string;
  optimizer: (m: Sequential) => Optimizer<GroupOptions>;
  schedulers: (o: Optimizer<GroupOptions>) => LRScheduler[];
}

export const SETUPS: Setup[] = [
  { name: 'Adam + StepLR', optimizer: (m) => new Adam(m.parameters(), { lr: 0.02, amsgrad: true }), schedulers: (o) => [new StepLR(o, { stepSize: 1, gamma: 0.7 })] },
  {
    name: 'SGD momentum + warm-up chained with cosine',
    optimizer: (m) => new SGD(m.parameters(), { lr: 0.1, momentum: 0.9, nesterov: true, weightDecay: 1e-3 }),
    schedulers: (o) => [new LinearLR(o, { startFactor: 0.5, totalIters: 2 }), new CosineAnnealingLR(o, { tMax: 4 })],
  },
];

export const SAMPLES = 20;
export const BATCH = 4; // 5 batches per epoch
export const TOTAL_STEPS = 13; // 2 epochs and 3 batches
export const STOP_AT = 7; // mid-epoch: epoch 1, after its 2nd batch

/** Everything a run is made of; `seed` varies the fresh objects so a load that missed something shows. */
export function build(setup: Setup, seed: number) {
  manualSeed(1000 + seed); // the global generator: Dropout's masks
  const g = new Generator(seed);
  const model = new Sequential(new Linear(4, 8, { generator: g }), new BatchNorm1d(8), new ReLU(), new Dropout(0.3), new Linear(8, 3, { generator: g }));
  const optimizer = setup.optimizer(model);
  const schedulers = setup.schedulers(optimizer);
  const loaderRng = new Generator(50 + seed); // the shuffle order
  return { model, optimizer, schedulers, loaderRng };
}

/** Where a run is: the step and epoch counters and the shuffle generator's state at the epoch start. */
export interface Progress {
  step: number;
  epoch: number;
  batch: number;
  epochStartShuffle: GeneratorState;
}

/**
 * Train until `stopAt` steps in total, starting from `resume` (a checkpoint) or from scratch.
 * Returns the loss of each step taken (float32 values) and the checkpoint bytes when it stopped early.
 */
export async function train(setup: Setup, data: Data, stopAt: number, resume?: Uint8Array, omit: 'rng' | 'shuffle' | null = null) {
  const run = build(setup, resume ? 99 : 0);
  const { model, optimizer, schedulers, loaderRng } = run;
  const loader = new DataLoader(new TensorDataset(data.x, data.y), { batchSize: BATCH, shuffle: true, generator: loaderRng });
  const parts = { model, optimizer, ...Object.fromEntries(schedulers.map((s, i) => [`scheduler${i}`, s])), rng: defaultGenerator() };
  let progress: Progress = { step: 0, epoch: 0, batch: 0, epochStartShuffle: loaderRng.stateDict() };
  if (resume) {
    const { rng, ...rest } = parts;
    const loaded = await loadCheckpoint(resume, { ...rest, ...(omit === 'rng' ? {} : { rng }), progress: null }, { strict: omit !== 'rng' });
    progress = loaded.data.progress as Progress;
    // Mid-epoch: draw that epoch's order again from the generator state it started with.
    if (omit !== 'shuffle') loaderRng.loadStateDict(progress.epochStartShuffle);
  }
  const lossFn = new CrossEntropyLoss();
  const losses: number[] = [];
  let checkpoint: Uint8Array | undefined;
  let { step, epoch, batch: skip } = progress;
  outer: for (; ; epoch++) {
    const epochStartShuffle = loaderRng.stateDict();
    let batch = 0;
    for await (const [x, y] of loader) {
      if (batch < skip) {
        batch++;
        continue; // batches of the resumed epoch that were already trained on
      }
      model.train();
      const loss = lossFn.call(model.call(new Tensor(x)), y); // the loader disposes x
      optimizer.zeroGrad();
      loss.backward();
      optimizer.step();
      losses.push(await loss.item());
      loss.dispose();
      step++;
      batch++;
      if (step === stopAt) {
        if (stopAt < TOTAL_STEPS) {
          checkpoint = await saveCheckpoint({ ...parts, progress: { step, epoch, batch, epochStartShuffle } satisfies Progress });
        }
        break outer;
      }
    }
    skip = 0;
    for (const s of schedulers) s.step();
  }
  const params = await Promise.all(Object.entries(model.stateDict()).map(async ([k, v]) => [k, Array.from(new Uint32Array((await v.toArray()).buffer))] as const));
  const lrs = optimizer.paramGroups.map((g) => g.lr);
  model.dispose();
  optimizer.dispose();
  return { losses, params: Object.fromEntries(params), lrs, checkpoint, steps: step, epoch };
}

