/**
 * Softmax regression on MNIST (needle's first homework): one Linear layer from the 784 pixels to
 * 10 logits, cross-entropy loss, minibatch SGD.
 */
import { manualSeed } from '@needle/ndarray';
import { CrossEntropyLoss, Linear } from '@needle/nn';
import { SGD } from '@needle/optim';
import { useBackend } from './backends';
import { defineExample } from './example';
import { mnistOptions, runMnist, mnistRunArgs } from './mnist';

export const mnistSoftmax = defineExample({
  description: 'softmax regression on MNIST (a Linear layer, SGD): < 8% test error',
  details:
    'Trains softmax regression on MNIST (needle\'s hw0): one Linear(784, 10) layer from the pixels to\n' +
    'the logits, cross-entropy loss, minibatch SGD. The defaults reach under 8% test error (about 7.6%).',
  options: mnistOptions({ epochs: 10, batchSize: 100, lr: 0.5 }),
  async run(args) {
    await useBackend(args.backend);
    manualSeed(args.seed); // the initial weights
    const model = new Linear(784, 10);
    const lossFn = new CrossEntropyLoss();
    const opt = new SGD(model.parameters(), { lr: args.lr });
    await runMnist({ name: 'mnist-softmax', model, opt, lossFn, ...mnistRunArgs(args) });
    opt.dispose();
    model.dispose();
  },
});
