import type { Example } from './example';
import { cifar10Resnet9 } from './cifar10-resnet9';
import { leastSquares } from './least-squares';
import { mnistMlp } from './mnist-mlp';
import { mnistMlpResnet } from './mnist-mlp-resnet';
import { mnistSoftmax } from './mnist-softmax';
import { ptbLm } from './ptb-lm';

/** Every runnable example, by CLI name. */
export const examples: Record<string, Example> = {
  'least-squares': leastSquares,
  'mnist-softmax': mnistSoftmax,
  'mnist-mlp': mnistMlp,
  'mnist-mlp-resnet': mnistMlpResnet,
  'cifar10-resnet9': cifar10Resnet9,
  'ptb-lm': ptbLm,
};
