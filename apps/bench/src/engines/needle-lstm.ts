/**
 * needle's LSTM training step, written as a user would: @needle/nn's LSTM and Linear, the last time
 * step's output taken with getitem, CrossEntropyLoss on class indices, backward through
 * @needle/autograd, then the same hand-written SGD update as the other training cases. The
 * recurrent state results (hN, cN) are not used by the loss, so backward() does not free them: the
 * shared step body runs inside a scope, which does.
 */
import type { NDArray } from '@needle/ndarray';
import type { CaseSpec } from '../cases';
import type { Prepared } from './types';
import { loadNeedleStack, sgdTrainingCase, type NeedleContext } from './needle-step';

export async function prepareNeedleLstm(spec: CaseSpec, inputs: Float32Array[], ctx: NeedleContext): Promise<Prepared> {
  const { backend, nd } = ctx;
  const { nn, ag } = await loadNeedleStack(ctx, { nn: ['LSTM', 'Linear', 'CrossEntropyLoss'], autograd: ['Tensor', 'getitem'] });

  const [batch, seq, nIn, hidden, classes] = spec.dims;
  const lstm = new nn.LSTM(nIn, hidden, { backend });
  const fc = new nn.Linear(hidden, classes, { backend });
  const lossFn = new nn.CrossEntropyLoss();
  const owned: NDArray[] = [];
  const put = (data: Float32Array, shape: number[]) => {
    const a = nd.NDArray.fromData(data, shape, backend);
    owned.push(a);
    return a;
  };
  // The seeded weights replace nn's own random initialisation (loadStateDict copies them in place).
  lstm.loadStateDict({
    weightIhL0: put(inputs[2], [4 * hidden, nIn]),
    weightHhL0: put(inputs[3], [4 * hidden, hidden]),
    biasIhL0: put(inputs[4], [4 * hidden]),
    biasHhL0: put(inputs[5], [4 * hidden]),
  });
  fc.loadStateDict({ weight: put(inputs[6], [classes, hidden]), bias: put(inputs[7], [classes]) });
  for (const a of owned.splice(0)) a.dispose();
  const x = new ag.Tensor(nd.NDArray.fromData(inputs[0], [seq, batch, nIn], backend));
  const labels = nd.NDArray.fromData(inputs[1], [batch], backend);
  // PyTorch's order, which the output layout follows: weight_ih, weight_hh, bias_ih, bias_hh, then fc.
  const params = [...lstm.parameters(), ...fc.parameters()];
  return sgdTrainingCase(ctx, params, () => {
    const [out] = lstm.call(x);
    return lossFn.call(fc.call(ag.getitem(out, seq - 1)), labels);
  }, [x, labels, lstm, fc]);
}
