/**
 * needle's ResNet9 on CIFAR-10 (hw4): reads the standard binary batches from a folder, trains with
 * Adam and augmentation (random crop with 4 pixels of zero padding, horizontal flips), and reports
 * the test accuracy after every epoch. The loops are ./simple-ml.ts's trainCifar10/evaluateCifar10.
 */
import { access } from 'node:fs/promises';
import { join } from 'node:path';
import { Generator, defaultGenerator, manualSeed } from '@needle/ndarray';
import { Compose, DataLoader, Normalize, RandomCrop, RandomFlipHorizontal, Subset, loadCIFAR10, type Dataset, type HostArray } from '@needle/data';
import { ResNet9 } from '@needle/nn';
import { Adam } from '@needle/optim';
import { backendOption, threadsOption, useBackend } from './backends';
import { checkpointOptions, resumeFrom, saveAfterEpoch } from './checkpoint';
import { defineExample } from './example';
import { epochProgress } from './mnist';
import { evaluateCifar10, trainCifar10 } from './simple-ml';

/** Per-channel mean and standard deviation of CIFAR-10's training images (the usual constants). */
const CIFAR10_MEAN = [0.4914, 0.4822, 0.4465];
const CIFAR10_STD = [0.247, 0.2435, 0.2616];

export const CIFAR10_WHERE = 'CIFAR-10 not found: download the binary version (cifar-10-binary.tar.gz) from https://www.cs.toronto.edu/~kriz/cifar.html, unpack it and pass --data <folder>/cifar-10-batches-bin (or set NEEDLE_CIFAR10_DIR)';

async function exists(path: string): Promise<boolean> {
  try {
    await access(path);
    return true;
  } catch {
    return false;
  }
}

/** The data folder: --data, else $NEEDLE_CIFAR10_DIR, else ./cifar-10-batches-bin; it must hold test_batch.bin and a training batch. */
async function findData(dir: string | undefined): Promise<string> {
  const candidates = dir !== undefined ? [dir] : [process.env.NEEDLE_CIFAR10_DIR, 'cifar-10-batches-bin'].filter((d): d is string => Boolean(d));
  for (const d of candidates) {
    const files = await Promise.all(['test_batch.bin', ...[1, 2, 3, 4, 5].map((i) => `data_batch_${i}.bin`)].map((f) => exists(join(d, f))));
    if (files[0] && files.slice(1).some(Boolean)) return d;
  }
  throw new Error(dir !== undefined ? `${CIFAR10_WHERE} (${dir} has no test_batch.bin and data_batch_N.bin)` : CIFAR10_WHERE);
}

/** The first `limit` samples (CIFAR-10's batches are already in random order). */
function cut<T>(ds: Dataset<T>, limit: number | undefined): Dataset<T> {
  return limit !== undefined && limit < ds.length ? new Subset(ds, Array.from({ length: limit }, (_, i) => i)) : ds;
}

export const cifar10Resnet9 = defineExample({
  description: "needle's ResNet9 on CIFAR-10 (--data DIR with the binary batches; Adam, crop + flip augmentation)",
  details:
    "Trains needle's ResNet9 (hw4) on CIFAR-10 read from the binary batches in --data DIR\n" +
    '(data_batch_1.bin ... data_batch_5.bin, whichever are present, and test_batch.bin): per-channel\n' +
    'normalisation, random 32x32 crops of the image padded by 4 and horizontal flips; cross-entropy,\n' +
    'Adam with L2 weight decay (hw4 uses lr 0.001; 0.002 learns faster here). Prints the training\n' +
    'loss and accuracy and the test accuracy after every epoch; --save/--resume checkpoint the run.\n' +
    'Without the data it says where to get it.',
  options: {
    backend: backendOption,
    threads: threadsOption,
    data: { type: 'string', placeholder: 'DIR', description: 'folder with the CIFAR-10 binary batches', defaultText: '$NEEDLE_CIFAR10_DIR or ./cifar-10-batches-bin' },
    epochs: { type: 'int', min: 1, default: 20, description: 'passes over the training set' },
    'batch-size': { type: 'int', min: 1, default: 128, description: 'training images per step' },
    lr: { type: 'number', min: 0, exclusiveMin: true, default: 0.002, description: "Adam's learning rate" },
    'weight-decay': { type: 'number', min: 0, default: 0.001, description: "Adam's L2 weight decay" },
    augment: { type: 'choice', choices: ['on', 'off'], default: 'on', description: 'random crop (padding 4) and horizontal flip of the training images' },
    'train-limit': { type: 'int', min: 1, description: 'train on the first N training images', defaultText: 'all' },
    'test-limit': { type: 'int', min: 1, description: 'test on the first N test images', defaultText: 'all' },
    seed: { type: 'int', min: 0, default: 0, description: 'seed of the initial weights, the shuffling and the augmentation' },
    ...checkpointOptions,
  },
  async run(args) {
    const dir = await findData(args.data);
    await useBackend(args.backend, { threads: args.threads });
    manualSeed(args.seed);
    const normalize = new Normalize(CIFAR10_MEAN, CIFAR10_STD);
    const augment = args.augment === 'on' ? new Compose([new RandomCrop(32, 4), new RandomFlipHorizontal(), normalize]) : normalize;
    const [trainFull, testFull] = await Promise.all([
      loadCIFAR10(dir, { train: true, batches: 'present', transform: augment }),
      loadCIFAR10(dir, { train: false, transform: normalize }),
    ]);
    const train: Dataset<[HostArray, number]> = cut(trainFull, args['train-limit']);
    const test: Dataset<[HostArray, number]> = cut(testFull, args['test-limit']);
    // The shuffle order's own generator, so a checkpoint can hold its state.
    const shuffle = new Generator(args.seed);
    const trainLoader = new DataLoader(train, { batchSize: args['batch-size'], shuffle: true, generator: shuffle });
    const testLoader = new DataLoader(test, { batchSize: 256 });
    const model = new ResNet9();
    const opt = new Adam(model.parameters(), { lr: args.lr, weightDecay: args['weight-decay'] });
    const parts = { model, optimizer: opt, rng: defaultGenerator(), shuffle };
    const run = { example: 'cifar10-resnet9', trainSamples: train.length };
    const startEpoch = await resumeFrom(args.resume, parts, run);
    if (args.resume !== undefined) console.log(`resumed from ${args.resume} after epoch ${startEpoch - 1}`);
    console.log(`cifar10-resnet9: ResNet9 with ${model.numParameters()} parameters, ${train.length} training / ${test.length} test images from ${dir}, batch ${args['batch-size']}, ${args.epochs} epochs, ${args.backend}`);
    const start = performance.now();
    const progress = epochProgress(args.epochs);
    let lastAccuracy = NaN;
    await trainCifar10(model, trainLoader, {
      epochs: args.epochs, startEpoch, opt,
      onBatch: progress.onBatch,
      onEpoch: async (epoch, r) => {
        progress.endEpoch();
        const t = await evaluateCifar10(model, testLoader);
        lastAccuracy = t.accuracy;
        console.log(
          `epoch ${String(epoch).padStart(2)}  loss ${r.loss.toFixed(4)}  train acc ${(100 * r.accuracy).toFixed(2)}%  ` +
          `test acc ${(100 * t.accuracy).toFixed(2)}%  test loss ${t.loss.toFixed(4)}  ${(r.samples / r.seconds).toFixed(0)} images/s  ${r.seconds.toFixed(1)} s`,
        );
        await saveAfterEpoch(args.save, parts, run, epoch);
      },
    });
    const seconds = (performance.now() - start) / 1000;
    console.log(`test accuracy ${(100 * lastAccuracy).toFixed(2)}%  (${seconds.toFixed(1)} s in all)`);
    opt.dispose();
    model.dispose();
  },
});
