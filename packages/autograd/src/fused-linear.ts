/**
 * linear(x, W, b, activation) = act(x W^T + b) as one primitive whose forward is one kernel launch
 * on a backend with `matmulProgram` (the bias add and activation run as the matmul's epilogue), and
 * whose backward is the activation's derivative from the output (one program), dX = dZ W,
 * dW = dZ^T X and db = sum(dZ) (two matmuls, one reduction). Values equal the composition
 * act(add(matmul(x, transpose(W)), b)) bit for bit: the same float32 steps in the same order.
 */
import { defineProgram, elementwise, type ElementwiseProgram, type MatmulOptions, type NDArray, type ProgramValue } from '@needle/ndarray';
import { isGradEnabled } from './grad-mode';
import { RELU_GRAD, SIGMOID_GRAD, TANH_GRAD, sigmoidOf } from './program-fns';
import { Tensor, constant } from './tensor';
import * as F from './functions';

/** The activations `linear` fuses: PyTorch's F.relu, torch.tanh, torch.sigmoid after F.linear. */
export const LINEAR_ACTIVATIONS = ['none', 'relu', 'tanh', 'sigmoid'] as const;
export type LinearActivation = (typeof LINEAR_ACTIVATIONS)[number];

export interface LinearAttrs {
  activation: LinearActivation;
  hasBias: boolean;
}

const ACTIVATE: Record<LinearActivation, (z: ProgramValue) => ProgramValue> = {
  none: (z) => z,
  relu: (z) => z.maximum(0),
  tanh: (z) => z.tanh(),
  sigmoid: (z) => sigmoidOf(z),
};

// Epilogues by activation: with a bias (inputs: product, bias) and without (input: product).
const WITH_BIAS = Object.fromEntries(LINEAR_ACTIVATIONS.map((a) => [a, defineProgram(2, 0, ([y, b]) => ACTIVATE[a](y.add(b)))])) as Record<LinearActivation, ElementwiseProgram>;
const NO_BIAS = Object.fromEntries(LINEAR_ACTIVATIONS.map((a) => [a, defineProgram(1, 0, ([y]) => ACTIVATE[a](y))])) as Record<LinearActivation, ElementwiseProgram>;

/** The activation's derivative from its output y, times g: the elementwise primitives' own rules. */
const GRAD: Record<Exclude<LinearActivation, 'none'>, ElementwiseProgram> = { relu: RELU_GRAD, tanh: TANH_GRAD, sigmoid: SIGMOID_GRAD };

/** Forward on arrays: x [N, in], w [out, in], b [out] or absent. */
export function linearForward(inputs: readonly NDArray[], { activation, hasBias }: LinearAttrs): NDArray {
  const [x, w, b] = inputs;
  const wt = w.transpose();
  try {
    const options: MatmulOptions | undefined = hasBias
      ? { epilogue: { program: WITH_BIAS[activation], inputs: [b] } }
      : activation === 'none' ? undefined : { epilogue: { program: NO_BIAS[activation] } };
    return x.matmul(wt, options);
  } finally {
    wt.dispose();
  }
}

/** dZ = g act'(z) from the output: one program on arrays, Tensor ops under createGraph. */
function activationGrad(g: Tensor, out: Tensor, activation: LinearActivation): Tensor {
  if (activation === 'none') return g;
  if (!isGradEnabled()) return new Tensor(elementwise(GRAD[activation], [g.data, out.data])[0]);
  switch (activation) {
    case 'relu': return F.mul(g, constant(out.data.gt(0)));
    case 'tanh': return F.mul(g, F.sub(1, F.mul(out, out)));
    case 'sigmoid': return F.mul(g, F.mul(out, F.sub(1, out)));
    default: return activation satisfies never;
  }
}

/** Gradients of x, w and b (null where not needed). */
export function linearBackward(g: Tensor, inputs: readonly Tensor[], out: Tensor, attrs: LinearAttrs, needsGrad: readonly boolean[]): (Tensor | null)[] {
  const [x, w] = inputs;
  const dz = activationGrad(g, out, attrs.activation);
  // dW as the product whose result is compact in the weight's own storage: dZ^T X for a weight
  // stored [out, in]; for W = w^T (a transposed view of an [in, out] leaf) (X^T dZ)^T, so the leaf's
  // gradient, and the optimizer's update of it, are compact rather than transposed.
  const weightGrad = (): Tensor => {
    const wT = w.data.transpose();
    const transposedLeaf = !w.data.isContiguous && wT.isContiguous;
    wT.dispose();
    return transposedLeaf ? F.transpose(F.matmul(F.transpose(x), dz)) : F.matmul(F.transpose(dz), x);
  };
  const grads = [needsGrad[0] ? F.matmul(dz, w) : null, needsGrad[1] ? weightGrad() : null];
  return attrs.hasBias ? [...grads, needsGrad[2] ? F.sum(dz, 0) : null] : grads;
}
