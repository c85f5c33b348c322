/**
 * A two-layer MLP on MNIST (needle's hw0 network, here with biases): Linear(784, hidden), ReLU,
 * Linear(hidden, 10), cross-entropy loss, minibatch SGD.
 */
import { manualSeed } from '@needle/ndarray';
import { CrossEntropyLoss, Linear, ReLU, Sequential } from '@needle/nn';
import { SGD } from '@needle/optim';
import { useBackend } from './backends';
import { mnistOptions, num, runMnist } from './mnist';
import type { Example } from './registry';

export const mnistMlp: Example = {
  description: 'two-layer MLP on MNIST (Linear-ReLU-Linear, SGD): < 2% test error',
  options: { ...mnistOptions({ epochs: 20, batchSize: 100, lr: 0.2 }), hidden: { type: 'string', default: '400' } },
  async run(args) {
    await useBackend(String(args.backend));
    const seed = num(args, 'seed')!;
    manualSeed(seed);
    const hidden = num(args, 'hidden')!;
    const model = new Sequential(new Linear(784, hidden), new ReLU(), new Linear(hidden, 10));
    const lossFn = new CrossEntropyLoss();
    const opt = new SGD(model.parameters(), { lr: num(args, 'lr')! });
    await runMnist({
      name: 'mnist-mlp', model, opt, lossFn, seed,
      epochs: num(args, 'epochs')!,
      batchSize: num(args, 'batch-size')!,
      trainLimit: num(args, 'train-limit'),
      testLimit: num(args, 'test-limit'),
    });
    opt.dispose();
    model.dispose();
  },
};
