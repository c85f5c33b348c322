/**
 * needle's ConvNet training step, written as a user would: @needle/nn layers in a Sequential,
 * CrossEntropyLoss on class indices, backward through @needle/autograd, then a plain SGD update
 * written into the parameters in place (the same update as the MLP case; @needle/optim is not a
 * dependency of the bench, and a hand-written update keeps the measured work identical to the other
 * frameworks'). The packages are loaded dynamically, like the MLP step, so that a missing build is
 * reported as not available instead of breaking every needle target.
 */
import type { NDArray } from '@needle/ndarray';
import { CONVNET_KERNEL, CONVNET_PAD, type CaseSpec } from '../cases';
import type { Prepared } from './types';
import { loadNeedleStack, sgdTrainingCase, type NeedleContext } from './needle-step';

export async function prepareNeedleConvnet(spec: CaseSpec, inputs: Float32Array[], ctx: NeedleContext): Promise<Prepared> {
  const { backend, nd } = ctx;
  const { nn, ag } = await loadNeedleStack(ctx, { nn: ['Sequential', 'Conv2d', 'ReLU', 'MaxPool2d', 'Flatten', 'Linear', 'CrossEntropyLoss'], autograd: ['Tensor'] });

  const [batch, channels, size, c1, c2, classes] = spec.dims;
  const k = CONVNET_KERNEL;
  const flat = c2 * (size / 4) * (size / 4);
  const opts = { padding: CONVNET_PAD, backend };
  const model = new nn.Sequential(
    new nn.Conv2d(channels, c1, k, opts),
    new nn.ReLU(),
    new nn.MaxPool2d(2),
    new nn.Conv2d(c1, c2, k, opts),
    new nn.ReLU(),
    new nn.MaxPool2d(2),
    new nn.Flatten(),
    new nn.Linear(flat, classes, { backend }),
  );
  const lossFn = new nn.CrossEntropyLoss();
  const owned: NDArray[] = [];
  const put = (data: Float32Array, shape: number[]) => {
    const a = nd.NDArray.fromData(data, shape, backend);
    owned.push(a);
    return a;
  };
  // The seeded weights replace nn's own random initialisation (loadStateDict copies them in place).
  model.loadStateDict({
    '0.weight': put(inputs[2], [c1, channels, k, k]),
    '0.bias': put(inputs[3], [c1]),
    '3.weight': put(inputs[4], [c2, c1, k, k]),
    '3.bias': put(inputs[5], [c2]),
    '7.weight': put(inputs[6], [classes, flat]),
    '7.bias': put(inputs[7], [classes]),
  });
  for (const a of owned.splice(0)) a.dispose();
  const x = new ag.Tensor(nd.NDArray.fromData(inputs[0], [batch, channels, size, size], backend));
  const labels = nd.NDArray.fromData(inputs[1], [batch], backend);
  const params = model.parameters();
  return sgdTrainingCase(ctx, params, () => lossFn.call(model.call(x), labels), [x, labels, model]);
}
