import type { Example } from './example';
import { leastSquares } from './least-squares';
import { mnistMlp } from './mnist-mlp';
import { mnistMlpResnet } from './mnist-mlp-resnet';
import { mnistSoftmax } from './mnist-softmax';

/** Every runnable example, by CLI name. */
export const examples: Record<string, Example> = {
  'least-squares': leastSquares,
  'mnist-softmax': mnistSoftmax,
  'mnist-mlp': mnistMlp,
  'mnist-mlp-resnet': mnistMlpResnet,
};
