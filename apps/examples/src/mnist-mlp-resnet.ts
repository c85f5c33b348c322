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
import { defineExample } from './example';
import { mnistOptions, runMnist, mnistRunArgs } from './mnist';

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

export const mnistMlpResnet = defineExample({
  description: "needle's MLPResNet on MNIST (residual blocks with BatchNorm1d and dropout, Adam)",
  details:
    "Trains needle's MLPResNet (hw2) on MNIST: Linear(784, hidden), ReLU, `blocks` residual blocks\n" +
    'ReLU(x + BN(Linear(Dropout(ReLU(BN(Linear(x))))))) of inner width hidden/2, Linear(hidden, 10);\n' +
    'cross-entropy loss, Adam with L2 weight decay. The defaults reach about 2.3-2.5% test error.',
  options: {
    ...mnistOptions({ epochs: 10, batchSize: 100, lr: 0.001 }),
    hidden: { type: 'int', min: 2, default: 100, description: 'width of the residual stream; the blocks inside are half as wide' },
    blocks: { type: 'int', min: 0, default: 3, description: 'number of residual blocks' },
    dropout: { type: 'number', min: 0, max: 0.99, default: 0.1, description: 'dropout probability inside each block' },
    'weight-decay': { type: 'number', min: 0, default: 0.001, description: "Adam's L2 weight decay" },
  },
  async run(args) {
    await useBackend(args.backend);
    manualSeed(args.seed); // initial weights and dropout masks
    const model = mlpResNet(784, args.hidden, args.blocks, 10, args.dropout);
    const lossFn = new CrossEntropyLoss();
    const opt = new Adam(model.parameters(), { lr: args.lr, weightDecay: args['weight-decay'] });
    await runMnist({ name: 'mnist-mlp-resnet', model, opt, lossFn, ...mnistRunArgs(args) });
    opt.dispose();
    model.dispose();
  },
});
