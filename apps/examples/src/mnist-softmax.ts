/**
 * Softmax regression on MNIST (needle's first homework): one Linear layer from the 784 pixels to
 * 10 logits, cross-entropy loss, minibatch SGD.
 */
import { manualSeed } from '@needle/ndarray';
import { CrossEntropyLoss, Linear } from '@needle/nn';
import { SGD } from '@needle/optim';
import { useBackend } from './backends';
import { mnistOptions, num, runMnist } from './mnist';
import type { Example } from './registry';

export const mnistSoftmax: Example = {
  description: 'softmax regression on MNIST (a Linear layer, SGD): < 8% test error',
  options: mnistOptions({ epochs: 10, batchSize: 100, lr: 0.5 }),
  async run(args) {
    await useBackend(String(args.backend));
    const seed = num(args, 'seed')!;
    manualSeed(seed); // the initial weights
    const model = new Linear(784, 10);
    const lossFn = new CrossEntropyLoss();
    const opt = new SGD(model.parameters(), { lr: num(args, 'lr')! });
    await runMnist({
      name: 'mnist-softmax', model, opt, lossFn, seed,
      epochs: num(args, 'epochs')!,
      batchSize: num(args, 'batch-size')!,
      trainLimit: num(args, 'train-limit'),
      testLimit: num(args, 'test-limit'),
    });
    opt.dispose();
    model.dispose();
  },
};
