import type { ParseArgsConfig } from 'node:util';
import { leastSquares } from './least-squares';
import { mnistMlp } from './mnist-mlp';
import { mnistMlpResnet } from './mnist-mlp-resnet';
import { mnistSoftmax } from './mnist-softmax';

export interface Example {
  description: string;
  options: NonNullable<ParseArgsConfig['options']>;
  run(args: Record<string, string | boolean | undefined>): Promise<void>;
}

/** Every runnable example, by CLI name. */
export const examples: Record<string, Example> = {
  'least-squares': leastSquares,
  'mnist-softmax': mnistSoftmax,
  'mnist-mlp': mnistMlp,
  'mnist-mlp-resnet': mnistMlpResnet,
};
