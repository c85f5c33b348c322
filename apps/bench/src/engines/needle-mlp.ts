/**
 * needle's MLP training step through @needle/autograd: forward, mean softmax cross-entropy,
 * backward, SGD update written into the parameters in place. Until autograd is built (or when its
 * exports differ from what this file needs) the case is reported as not available, never faked.
 */
import type { NDArray } from '@needle/ndarray';
import type { CaseSpec } from '../cases';
import { NotAvailableError, type Prepared } from './types';
import { sgdTrainingCase, type NeedleContext } from './needle-step';
import { importWorkspacePackage } from './workspace';

/** The part of @needle/autograd's API this step uses (it is loaded dynamically, see workspace.ts). */
interface Tensor {
  readonly data: NDArray;
  readonly grad: Tensor | null;
  backward(): void;
  zeroGrad(): void;
  assign(value: NDArray): Tensor;
  dispose(): void;
  readonly disposed: boolean;
}
interface Autograd {
  Tensor: new (data: NDArray, options?: { requiresGrad?: boolean }) => Tensor;
  /** Builds with the fused ops (linear, and crossEntropy with a reduction) have these. */
  linear?(x: Tensor, weight: Tensor, bias: Tensor | null, options?: { activation?: 'relu' }): Tensor;
  crossEntropy?(logits: Tensor, labels: NDArray, options?: { reduction?: 'mean' }): Tensor;
  transpose?(x: Tensor): Tensor;
  matmul(a: Tensor, b: Tensor): Tensor;
  add(a: Tensor, b: Tensor): Tensor;
  mul(a: Tensor | number, b: Tensor | number): Tensor;
  relu(x: Tensor): Tensor;
  logSoftmax(x: Tensor, axis?: number): Tensor;
  sum(x: Tensor): Tensor;
}
const NEEDED = ['Tensor', 'matmul', 'add', 'mul', 'relu', 'logSoftmax', 'sum'] as const;

export async function prepareNeedleMlp(spec: CaseSpec, inputs: Float32Array[], ctx: NeedleContext): Promise<Prepared> {
  let mod: Record<string, unknown>;
  try {
    mod = await importWorkspacePackage('autograd', ctx.root);
  } catch (e) {
    throw new NotAvailableError(`needs @needle/autograd, which is not built here yet (${(e as Error).message.split(' (')[0]})`);
  }
  return prepareMlpWith(mod, spec, inputs, ctx);
}

/** The step on a given autograd module (exported for a test against autograd's sources). */
export function prepareMlpWith(mod: Record<string, unknown>, spec: CaseSpec, inputs: Float32Array[], ctx: NeedleContext): Prepared {
  const { backend, nd } = ctx;
  const missing = NEEDED.filter((k) => typeof mod[k] !== 'function');
  if (missing.length) throw new NotAvailableError(`@needle/autograd lacks ${missing.join(', ')}`);
  const ag = mod as unknown as Autograd;

  const [batch, nIn, nHidden, nClasses] = spec.dims;
  const constant = (data: Float32Array, shape: number[]) => new ag.Tensor(nd.NDArray.fromData(data, shape, backend));
  const param = (data: Float32Array, shape: number[]) => new ag.Tensor(nd.NDArray.fromData(data, shape, backend), { requiresGrad: true });
  const x = constant(inputs[0], [batch, nIn]);
  const y = constant(inputs[1], [batch, nClasses]);
  const params = [param(inputs[2], [nIn, nHidden]), param(inputs[3], [nHidden]), param(inputs[4], [nHidden, nClasses]), param(inputs[5], [nClasses])];
  const [w1, b1, w2, b2] = params;
  const { linear, crossEntropy, transpose } = ag;
  if (linear && crossEntropy && transpose) {
    // What a PyTorch user writes (F.linear, F.relu, F.cross_entropy with class indices): the fused
    // ops. The weights are stored [in, out] for every engine, so W = w^T (a view). The labels are
    // data, read off the one-hot rows once here, as a data loader would hand them over.
    const labels = nd.NDArray.fromData(classIndices(inputs[1], nClasses), [batch], backend);
    return sgdTrainingCase(ctx, params, () => {
      const h = linear(x, transpose(w1), b1, { activation: 'relu' });
      return crossEntropy(linear(h, transpose(w2), b2), labels, { reduction: 'mean' });
    }, [x, y, labels, ...params]);
  }
  // Older builds (base:* targets): the composition their own bench ran.
  return sgdTrainingCase(ctx, params, () => {
    const logits = ag.add(ag.matmul(ag.relu(ag.add(ag.matmul(x, w1), b1)), w2), b2);
    return ag.mul(ag.sum(ag.mul(ag.logSoftmax(logits, -1), y)), -1 / batch);
  }, [x, y, ...params]);
}

/** The class index of each one-hot row. */
function classIndices(oneHot: Float32Array, classes: number): Float32Array {
  const rows = oneHot.length / classes;
  return Float32Array.from({ length: rows }, (_, r) => {
    const row = oneHot.subarray(r * classes, (r + 1) * classes);
    return row.indexOf(Math.max(...row));
  });
}
