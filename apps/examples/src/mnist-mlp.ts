/**
 * A two-layer MLP on MNIST (needle's hw0 network, here with biases): Linear(784, hidden), ReLU,
 * Linear(hidden, 10), cross-entropy loss, minibatch SGD.
 */
import { manualSeed } from '@needle/ndarray';
import { CrossEntropyLoss, Linear, ReLU, Sequential } from '@needle/nn';
import { SGD } from '@needle/optim';
import { useBackend } from './backends';
import { defineExample } from './example';
import { mnistOptions, runMnist, mnistRunArgs } from './mnist';

export const mnistMlp = defineExample({
  description: 'two-layer MLP on MNIST (Linear-ReLU-Linear, SGD): < 2% test error',
  details:
    'Trains a two-layer MLP on MNIST: Linear(784, hidden), ReLU, Linear(hidden, 10), cross-entropy\n' +
    'loss, minibatch SGD. The defaults reach under 2% test error (about 1.8%).',
  options: {
    ...mnistOptions({ epochs: 20, batchSize: 100, lr: 0.2 }),
    hidden: { type: 'int', min: 1, default: 400, description: 'width of the hidden layer' },
  },
  async run(args) {
    await useBackend(args.backend);
    const { hidden } = args;
    manualSeed(args.seed);
    const model = new Sequential(new Linear(784, hidden), new ReLU(), new Linear(hidden, 10));
    const lossFn = new CrossEntropyLoss();
    const opt = new SGD(model.parameters(), { lr: args.lr });
    await runMnist({ name: 'mnist-mlp', model, opt, lossFn, ...mnistRunArgs(args) });
    opt.dispose();
    model.dispose();
  },
});
