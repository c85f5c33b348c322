/**
 * needle's MLPResNet on MNIST (hw2): Linear(784, hidden), ReLU, then `blocks` residual blocks, then
 * Linear(hidden, 10). A block is
 *   ReLU(x + Norm(Linear(Dropout(ReLU(Norm(Linear(x)))))))   with the inner width hidden / 2,
 * Norm being BatchNorm1d. Trained with Adam and L2 weight decay, as in the homework.
 */
import { manualSeed } from '@needle/ndarray';
import { BatchNorm1d, CrossEntropyLoss, Dropout, Linear, ReLU, Residual, Sequential } from '@needle/nn';
import { Adam } from '@needle/optim';
import { useBackend } from './backends';
import { mnistOptions, num, runMnist } from './mnist';
import type { Example } from './registry';

export function residualBlock(dim: number, hidden: number, dropProb: number): Sequential {
  return new Sequential(
    new Residual(new Sequential(
      new Linear(dim, hidden),
      new BatchNorm1d(hidden),
      new ReLU(),
      new Dropout(dropProb),
      new Linear(hidden, dim),
      new BatchNorm1d(dim),
    )),
    new ReLU(),
  );
}

export function mlpResNet(inputDim: number, hidden: number, blocks: number, classes: number, dropProb: number): Sequential {
  return new Sequential(
    new Linear(inputDim, hidden),
    new ReLU(),
    ...Array.from({ length: blocks }, () => residualBlock(hidden, Math.floor(hidden / 2), dropProb)),
    new Linear(hidden, classes),
  );
}

export const mnistMlpResnet: Example = {
  description: "needle's MLPResNet on MNIST (residual blocks with BatchNorm1d and dropout, Adam)",
  options: {
    ...mnistOptions({ epochs: 10, batchSize: 100, lr: 0.001 }),
    hidden: { type: 'string', default: '100' },
    blocks: { type: 'string', default: '3' },
    dropout: { type: 'string', default: '0.1' },
    'weight-decay': { type: 'string', default: '0.001' },
  },
  async run(args) {
    await useBackend(String(args.backend));
    const seed = num(args, 'seed')!;
    manualSeed(seed); // initial weights and dropout masks
    const model = mlpResNet(784, num(args, 'hidden')!, num(args, 'blocks')!, 10, num(args, 'dropout')!);
    const lossFn = new CrossEntropyLoss();
    const opt = new Adam(model.parameters(), { lr: num(args, 'lr')!, weightDecay: num(args, 'weight-decay')! });
    await runMnist({
      name: 'mnist-mlp-resnet', model, opt, lossFn, seed,
      epochs: num(args, 'epochs')!,
      batchSize: num(args, 'batch-size')!,
      trainLimit: num(args, 'train-limit'),
      testLimit: num(args, 'test-limit'),
    });
    opt.dispose();
    model.dispose();
  },
};
