/**
 * needle's flagship-model training steps, written as a user would: @needle/nn's ResNet9 (training
 * mode, batch statistics) and LanguageModel (LSTM) with the seeded weights loaded by name,
 * CrossEntropyLoss, backward, then the same hand-written SGD update as the other training cases.
 * The LanguageModel's final state is not used by the loss; the shared step body's scope frees it.
 */
import type { NDArray } from '@needle/ndarray';
import { lmParams, resnet9Params, type CaseSpec } from '../cases';
import type { Prepared } from './types';
import { loadNeedleStack, sgdTrainingCase, type NeedleContext } from './needle-step';

/** PyTorch's snake_case state-dict names in needle's camelCase (seq_model.weight_ih_l0 -> seqModel.weightIhL0). */
function camel(name: string): string {
  return name.replace(/_([a-z0-9])/g, (_m, ch: string) => ch.toUpperCase());
}

function seeded(names: Array<{ name: string; shape: number[] }>, values: Float32Array[], ctx: NeedleContext): Record<string, NDArray> {
  return Object.fromEntries(names.map(({ name, shape }, i) => [camel(name), ctx.nd.NDArray.fromData(values[i], shape, ctx.backend)]));
}

export async function prepareNeedleResnet9(spec: CaseSpec, inputs: Float32Array[], ctx: NeedleContext): Promise<Prepared> {
  const { backend, nd } = ctx;
  const { nn, ag } = await loadNeedleStack(ctx, { nn: ['ResNet9', 'CrossEntropyLoss'], autograd: ['Tensor'] });
  const [batch] = spec.dims;
  const model = new nn.ResNet9({ backend });
  const sd = seeded(resnet9Params(), inputs.slice(2), ctx);
  // The BatchNorm buffers keep their initial values (running mean 0, variance 1), as torch's do.
  model.loadStateDict(sd, { strict: false });
  Object.values(sd).forEach((a) => a.dispose());
  const x = new ag.Tensor(nd.NDArray.fromData(inputs[0], [batch, 3, 32, 32], backend));
  const labels = nd.NDArray.fromData(inputs[1], [batch], backend);
  const lossFn = new nn.CrossEntropyLoss();
  const params = model.parameters();
  return sgdTrainingCase(ctx, params, () => lossFn.call(model.call(x), labels), [x, labels, model]);
}

export async function prepareNeedleLm(spec: CaseSpec, inputs: Float32Array[], ctx: NeedleContext): Promise<Prepared> {
  const { backend, nd } = ctx;
  const { nn } = await loadNeedleStack(ctx, { nn: ['LanguageModel', 'CrossEntropyLoss'], autograd: [] });
  const [batch, seq, vocab, embeddingSize, hiddenSize] = spec.dims;
  const model = new nn.LanguageModel({ embeddingSize, outputSize: vocab, hiddenSize, seqModel: 'lstm', backend });
  const sd = seeded(lmParams(spec), inputs.slice(2), ctx);
  model.loadStateDict(sd);
  Object.values(sd).forEach((a) => a.dispose());
  const ids = nd.NDArray.fromData(inputs[0], [seq, batch], backend);
  const targets = nd.NDArray.fromData(inputs[1], [seq * batch], backend);
  const lossFn = new nn.CrossEntropyLoss();
  // PyTorch's order: embedding, the LSTM's four tensors, the Linear.
  const params = model.parameters();
  return sgdTrainingCase(ctx, params, () => lossFn.call(model.call(ids)[0], targets), [ids, targets, model]);
}
