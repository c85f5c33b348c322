/**
 * The demo's model, data and training loop, free of DOM code: fetch MNIST subsets from the page's
 * server, create the chosen backend, train an MLP with SGD reading the loss after every step, and
 * evaluate. Only the public package APIs are used, as a user's page would.
 */
import { Generator, defaultGenerator, manualSeed, scope, setDefaultBackend, type Backend, type GeneratorState, type NDArray } from '@needle/ndarray';
import { createCpuBackend } from '@needle/ndarray-cpu';
import { createWasmBackend } from '@needle/ndarray-wasm';
import { createWebGPUBackend } from '@needle/ndarray-webgpu';
import { noGrad, tensor, type Tensor } from '@needle/autograd';
import { CrossEntropyLoss, Linear, ReLU, Sequential } from '@needle/nn';
import { SGD } from '@needle/optim';
import { DataLoader, MNISTDataset, gunzipIfNeeded, parseMnistImages, parseMnistLabels } from '@needle/data';
import { loadCheckpoint, saveCheckpoint, type SafetensorsSource } from '@needle/safetensors';

export const BACKENDS = ['wasm', 'webgpu', 'cpu'] as const;
export type BackendName = (typeof BACKENDS)[number];

export interface TrainSettings {
  backend: BackendName;
  /** WASM worker threads, the calling thread included (ignored by the other backends). */
  threads: number;
  steps: number;
  batchSize: number;
  hidden: number;
  lr: number;
  trainSamples: number;
  testSamples: number;
  /** Initial weights and shuffling: the same seed gives the same run on every backend. */
  seed: number;
}

export const DEFAULT_SETTINGS: TrainSettings = {
  backend: 'wasm',
  threads: 2,
  steps: 600,
  batchSize: 64,
  hidden: 128,
  lr: 0.1,
  trainSamples: 10000,
  testSamples: 1000,
  seed: 0,
};

export interface BackendInfo {
  name: BackendName;
  /** Threads the WASM backend actually got (1 where the page is not cross-origin isolated). */
  threads: number;
  /** A readable description: the GPU adapter, or the thread count. */
  detail: string;
}

export interface StepReport {
  step: number;
  loss: number;
  /** Steps per second over roughly the last second. */
  stepsPerSecond: number;
  seconds: number;
}

export interface RunResult {
  settings: TrainSettings;
  backend: BackendInfo;
  crossOriginIsolated: boolean;
  /** The training loss after every step (read from the device each step). */
  losses: number[];
  /** Steps per second from the end of step 1 to the end (step 1 includes shader compilation on WebGPU). */
  stepsPerSecond: number;
  seconds: number;
  testAccuracy: number;
  testLoss: number;
  /** The predicted digit of each of the first PREVIEW_SAMPLES test images, for the page to show. */
  predictions: number[];
  /** Live buffers at the end of step 1 and of the last step: equal when the loop does not leak. */
  buffersAfterFirstStep: number;
  buffersAfterLastStep: number;
  /** The step a resumed run continued after (its `losses` start with the saved run's), else 0. */
  resumedFrom: number;
}

/**
 * Where a run is, saved in its checkpoint beside the model, the optimizer and the generators: the
 * losses so far (their count is the step), the batch within the current epoch, and the shuffle
 * generator's state when that epoch began (the loader draws an epoch's order when it starts, so a
 * mid-epoch resume draws it again from there and skips the batches already done).
 */
export interface DemoProgress {
  settings: TrainSettings;
  losses: number[];
  batch: number;
  epochStartShuffle: GeneratorState;
}

/** A finished (or stopped) run's model and optimizer, kept so the page can save them. */
export interface TrainSession {
  /** A checkpoint of the run as it ended: a safetensors file (`resume` of `train` takes it). */
  checkpoint(): Promise<Uint8Array>;
  /** Free the model, the optimizer and the backend. */
  dispose(): void;
}

/** The settings a checkpoint was trained with (to fetch the same data before resuming), its step and losses. */
export async function checkpointInfo(source: SafetensorsSource): Promise<{ settings: TrainSettings; step: number; losses: number[] }> {
  // Loading reads the tensors too; a throwaway CPU backend holds them until loadCheckpoint frees them.
  const { data } = await loadCheckpoint(source, { progress: null }, { strict: false, backend: createCpuBackend({ name: 'checkpoint-info' }) });
  const progress = data.progress as DemoProgress;
  return { settings: progress.settings, step: progress.losses.length, losses: progress.losses };
}

export const PREVIEW_SAMPLES = 32;

export type MnistSplit = 'train' | 't10k';

/** Fetch `n` samples of a split (evenly spaced over the file, chosen by the server) and parse them here. */
export async function fetchMnist(split: MnistSplit, n: number, base = '/mnist/'): Promise<MNISTDataset> {
  const get = async (kind: 'images-idx3' | 'labels-idx1'): Promise<Uint8Array> => {
    const url = `${base}${split}-${kind}-ubyte?n=${n}`;
    const res = await fetch(url);
    if (!res.ok) throw new Error(`fetching ${url}: HTTP ${res.status} ${await res.text()}`);
    // A server may hand out the .gz files as they are; gunzipIfNeeded passes raw IDX through.
    return gunzipIfNeeded(new Uint8Array(await res.arrayBuffer()), url);
  };
  const [images, labels] = await Promise.all([get('images-idx3'), get('labels-idx1')]);
  return new MNISTDataset(parseMnistImages(images), parseMnistLabels(labels), { flatten: true });
}

/** Create the backend a run asks for; the caller destroys it. */
export async function createBackend(name: BackendName, threads: number): Promise<{ backend: Backend; info: BackendInfo }> {
  switch (name) {
    case 'cpu': {
      const backend = createCpuBackend({ name: 'cpu' });
      return { backend, info: { name, threads: 1, detail: 'pure TypeScript reference' } };
    }
    case 'wasm': {
      const backend = await createWasmBackend({ threads });
      const got = backend.threads;
      const why = got < threads && !globalThis.crossOriginIsolated ? ' (page not cross-origin isolated)' : '';
      return { backend, info: { name, threads: got, detail: `${got} thread${got === 1 ? '' : 's'}${why}` } };
    }
    case 'webgpu': {
      const backend = await createWebGPUBackend();
      const a = backend.device.adapterInfo;
      const adapter = [a?.vendor, a?.architecture, a?.description].filter(Boolean).join(' ') || 'unknown adapter';
      return { backend, info: { name, threads: 1, detail: adapter } };
    }
    default:
      name satisfies never;
      throw new Error(`unknown backend '${String(name)}' (expected one of ${BACKENDS.join(', ')})`);
  }
}

/** Yield to the browser so it can repaint and handle input; a training loop of awaits on resolved reads never would. */
const nextTask = () => new Promise<void>((resolve) => setTimeout(resolve, 0));

/**
 * Train Linear(784, hidden), ReLU, Linear(hidden, 10) with SGD for `settings.steps`
 * minibatches (as many epochs over the training subset as that takes), then measure test accuracy.
 * `onStep` is called after every step; `shouldStop` is polled to end training early. With `resume`
 * (a checkpoint from a session of the same settings, `steps` and `backend` aside) the run continues
 * after the saved step with exactly the numbers the saved run would have gone on with. The returned
 * session keeps the model for a checkpoint; dispose it before the next run.
 */
export async function train(
  settings: TrainSettings,
  data: { train: MNISTDataset; test: MNISTDataset },
  onStep: (r: StepReport) => void = () => {},
  shouldStop: () => boolean = () => false,
  resume?: SafetensorsSource,
): Promise<{ result: RunResult; session: TrainSession }> {
  const { backend, info } = await createBackend(settings.backend, settings.threads);
  setDefaultBackend(backend);
  let model: Sequential | undefined;
  let opt: SGD | undefined;
  try {
    manualSeed(settings.seed); // the initial weights, identical on every backend (host-side RNG)
    model = new Sequential(new Linear(784, settings.hidden), new ReLU(), new Linear(settings.hidden, 10));
    const lossFn = new CrossEntropyLoss();
    opt = new SGD(model.parameters(), { lr: settings.lr });
    // The shuffle's generator is part of the checkpoint, as is the global one.
    const shuffle = new Generator(settings.seed);
    const loader = new DataLoader(data.train, { batchSize: settings.batchSize, shuffle: true, generator: shuffle, dropLast: true });
    const parts = { model, optimizer: opt, rng: defaultGenerator() };
    let losses: number[] = [];
    let skip = 0;
    if (resume !== undefined) {
      const { data: saved } = await loadCheckpoint(resume, { ...parts, progress: null });
      const progress = saved.progress as DemoProgress;
      losses = [...progress.losses];
      skip = progress.batch;
      shuffle.loadStateDict(progress.epochStartShuffle);
    }
    const resumedFrom = losses.length;
    let batch = 0;
    let epochStartShuffle = shuffle.stateDict();
    const start = performance.now();
    let afterFirst = start;
    let buffersAfterFirstStep = 0;
    let buffersAfterLastStep = 0;
    let lastYield = start;
    // The live rate: steps over a window of about one second.
    let windowStart = start;
    let windowSteps = 0;
    let rate = 0;
    model.train();
    training: while (losses.length < settings.steps) {
      epochStartShuffle = shuffle.stateDict();
      batch = 0;
      for await (const [xb, yb] of loader) {
        if (batch < skip) {
          batch++; // a resumed epoch's batches that the saved run had trained on
          continue;
        }
        const x = tensor(xb);
        const loss = lossFn.call(model.call(x), yb);
        loss.backward();
        opt.step();
        opt.zeroGrad();
        batch++;
        // Reading the loss every step costs a GPU round trip; it is the demo's point to show it live.
        losses.push(await loss.item());
        loss.dispose();
        x.dispose();
        const now = performance.now();
        if (losses.length === resumedFrom + 1) {
          afterFirst = now;
          windowStart = now;
          buffersAfterFirstStep = backend.memory().buffers;
        } else {
          windowSteps++;
          if (now - windowStart > 1000 || rate === 0) {
            rate = (1000 * windowSteps) / (now - windowStart);
            windowStart = now;
            windowSteps = 0;
          }
        }
        onStep({ step: losses.length, loss: losses.at(-1)!, stepsPerSecond: rate, seconds: (now - start) / 1000 });
        if (losses.length >= settings.steps || shouldStop()) {
          buffersAfterLastStep = backend.memory().buffers;
          break training;
        }
        if (now - lastYield > 50) {
          await nextTask();
          lastYield = performance.now();
        }
      }
      skip = 0;
    }
    const end = performance.now();
    const test = await evaluate(model, lossFn, new DataLoader(data.test, { batchSize: 500 }));
    model.train();
    const steps = losses.length - resumedFrom;
    const result: RunResult = {
      settings,
      backend: info,
      crossOriginIsolated: globalThis.crossOriginIsolated === true,
      losses,
      stepsPerSecond: steps > 1 ? (1000 * (steps - 1)) / (end - afterFirst) : NaN,
      seconds: (end - start) / 1000,
      testAccuracy: test.accuracy,
      testLoss: test.loss,
      predictions: test.predictions,
      buffersAfterFirstStep,
      buffersAfterLastStep,
      resumedFrom,
    };
    const [m, o] = [model, opt];
    const progress: DemoProgress = { settings, losses: [...losses], batch, epochStartShuffle };
    // The global generator's state now, not at the next checkpoint() call: another run may move it.
    const rng = new Generator().loadStateDict(defaultGenerator().stateDict());
    let disposed = false;
    const session: TrainSession = {
      checkpoint: () => saveCheckpoint({ model: m, optimizer: o, rng, progress }),
      dispose: () => {
        if (disposed) return;
        disposed = true;
        o.dispose();
        m.dispose();
        backend.destroy?.();
      },
    };
    return { result, session };
  } catch (e) {
    opt?.dispose();
    model?.dispose();
    backend.destroy?.();
    throw e;
  }
}

/** Accuracy and mean loss over a dataset, in eval mode and without a graph. */
async function evaluate(
  model: { call(x: Tensor): Tensor; eval(): unknown },
  lossFn: { call(logits: Tensor, labels: NDArray): Tensor },
  loader: DataLoader<[{ data: Float32Array; shape: readonly number[] }, number]>,
): Promise<{ accuracy: number; loss: number; predictions: number[] }> {
  model.eval();
  const predictions: number[] = [];
  let right = 0;
  let lossSum = 0;
  let samples = 0;
  for await (const [xb, yb] of loader) {
    const s = scope();
    const [predicted, correct, loss] = noGrad(() => {
      const logits = model.call(tensor(xb));
      const p = logits.data.argmax(1);
      return [p, p.eq(yb).sum(), lossFn.call(logits, yb).data.mul(xb.shape[0])];
    });
    if (predictions.length < PREVIEW_SAMPLES) {
      predictions.push(...Array.from(await predicted.toArray()).slice(0, PREVIEW_SAMPLES - predictions.length));
    }
    right += await correct.item();
    lossSum += await loss.item();
    samples += xb.shape[0];
    s.end();
  }
  return { accuracy: right / samples, loss: lossSum / samples, predictions };
}
