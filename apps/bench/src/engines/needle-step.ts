import * as ndarray from '@needle/ndarray';
import type { Backend, NDArray } from '@needle/ndarray';
import { MLP_LR } from '../cases';
import { concatFlat } from '../reference';
import { NotAvailableError, type Prepared } from './types';
import { importWorkspacePackage } from './workspace';

type Nd = typeof import('@needle/ndarray');
type Nn = typeof import('@needle/nn');
type Ag = typeof import('@needle/autograd');

/**
 * Where a needle step runs: the backend, and the @needle/ndarray module its arrays come from. For
 * this checkout's targets that is the bench's own dependency; for base:* targets it is the other
 * checkout's build (`root`), whose NDArray, scope and kernels the step must use throughout (arrays
 * of one build cannot be given to another's backend).
 */
export interface NeedleContext {
  backend: Backend;
  nd: Nd;
  /** The other checkout's root (base:* targets); undefined for this checkout. */
  root?: string;
}

/** The context of this checkout's needle on a backend. */
export function thisCheckout(backend: Backend): NeedleContext {
  return { backend, nd: ndarray };
}

/** What a needle training step needs of a loss tensor (autograd is loaded dynamically). */
interface LossTensor {
  readonly data: NDArray;
  backward(): void;
  dispose(): void;
  readonly disposed: boolean;
}

/** Something a case created and frees in dispose() (arrays, tensors, modules). */
interface Owned {
  dispose(): void;
  readonly disposed?: boolean;
}

/**
 * A needle training-step case: the timed step computes the loss, backward, the shared SGD update of
 * `params` (learning rate MLP_LR), then frees everything the step allocated except the loss, and
 * waits for the backend so asynchronous devices are timed to completion. output() is the last loss
 * then every parameter, flattened in order; dispose() frees the loss and `owned`.
 */
export function sgdTrainingCase(ctx: NeedleContext, params: readonly UpdatableParameter[], computeLoss: () => LossTensor, owned: readonly Owned[]): Prepared {
  const { backend, nd } = ctx;
  let loss: LossTensor | undefined;
  const release = () => {
    if (loss && !loss.disposed) loss.dispose();
  };
  return {
    async step(): Promise<void> {
      release();
      const s = nd.scope();
      let l: LossTensor;
      try {
        l = computeLoss();
        l.backward();
        sgdUpdate(ctx, params, MLP_LR);
      } catch (e) {
        s.end();
        throw e;
      }
      loss = s.end(l);
      await backend.sync?.();
    },
    async output(): Promise<Float32Array> {
      if (!loss) throw new Error('sgdTrainingCase: output() before step()');
      return concatFlat(await Promise.all([loss, ...params].map((t) => t.data.toArray())));
    },
    dispose(): void {
      release();
      for (const o of owned) if (!o.disposed) o.dispose();
    },
  };
}

/**
 * Load @needle/nn and @needle/autograd of the context's checkout (dynamically, so a missing build is
 * reported as "not available" instead of breaking every needle target) and check they export what
 * a case uses: an older build that predates a model says so instead of crashing.
 */
export async function loadNeedleStack(ctx: NeedleContext, needs: { nn: readonly string[]; autograd: readonly string[] }): Promise<{ nn: Nn; ag: Ag }> {
  let nn: Nn;
  let ag: Ag;
  try {
    // Both through the same resolution as nn's own import of autograd, so Tensor is one class.
    ag = (await importWorkspacePackage('autograd', ctx.root)) as unknown as Ag;
    nn = (await importWorkspacePackage('nn', ctx.root)) as unknown as Nn;
  } catch (e) {
    throw new NotAvailableError(`needs @needle/nn and @needle/autograd built (${(e as Error).message.split(' (')[0]})`);
  }
  const where = ctx.root ? ` of ${ctx.root}` : '';
  for (const [mod, name, keys] of [[nn, 'nn', needs.nn], [ag, 'autograd', needs.autograd]] as const) {
    const missing = keys.filter((k) => typeof (mod as Record<string, unknown>)[k] !== 'function');
    if (missing.length) throw new NotAvailableError(`@needle/${name}${where} lacks ${missing.join(', ')}`);
  }
  return { nn, ag };
}

/** What the SGD update needs of a parameter. */
interface UpdatableParameter {
  readonly data: NDArray;
  readonly grad: { readonly data: NDArray } | null;
  zeroGrad(): void;
}

/** p - lr * grad as one fused elementwise program per ndarray build that has them. */
const sgdPrograms = new WeakMap<object, unknown>();

/**
 * The hand-written update every training case times: p -= lr * grad, then the gradient dropped.
 * With elementwise programs (this build) it is one kernel launch per parameter written into it in
 * place (the values of p.sub(grad.mul(lr)), bit for bit). NDArray ops record no graph, and the write
 * goes to the NDArray (`Tensor.assign` on a grad-requiring leaf would need noGrad), so no grad mode
 * is touched. A build without them (the base:* targets of an older checkout) runs the update its
 * own bench ran, `p.assign(p.data - lr * grad)` (which is `data.set([], ...)`): three kernels.
 */
function sgdUpdate(ctx: NeedleContext, params: readonly UpdatableParameter[], lr: number): void {
  const { nd } = ctx;
  const fused = typeof nd.defineProgram === 'function' && typeof nd.elementwise === 'function';
  if (fused && !sgdPrograms.has(nd)) sgdPrograms.set(nd, nd.defineProgram(2, 1, ([p, grad], [rate]) => p.sub(grad.mul(rate))));
  for (const p of params) {
    if (fused) nd.elementwise(sgdPrograms.get(nd) as ReturnType<Nd['defineProgram']>, [p.data, p.grad!.data], [lr], { out: [p.data] });
    else p.data.set([], p.data.sub(p.grad!.data.mul(lr)));
    p.zeroGrad();
  }
}
