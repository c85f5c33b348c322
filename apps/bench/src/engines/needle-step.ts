import { defineProgram, elementwise, scope, type Backend, type NDArray } from '@needle/ndarray';
import { NotAvailableError } from './types';
import { importWorkspacePackage } from './workspace';

/** What a needle training step needs of a loss tensor (autograd is loaded dynamically). */
interface LossTensor {
  backward(): void;
  dispose(): void;
  readonly disposed: boolean;
}

/**
 * The timed body shared by needle's training-step cases: compute the loss, backward, update the
 * parameters, then free everything the step allocated except the loss (which `output` reads), and
 * wait for the backend so asynchronous devices are timed to completion.
 */
export function needleTrainingStep<T extends LossTensor>(backend: Backend, computeLoss: () => T, update: () => void) {
  let loss: T | undefined;
  const release = () => {
    if (loss && !loss.disposed) loss.dispose();
  };
  return {
    async step(): Promise<void> {
      release();
      const s = scope();
      let l: T;
      try {
        l = computeLoss();
        l.backward();
        update();
      } catch (e) {
        s.end();
        throw e;
      }
      loss = s.end(l);
      await backend.sync?.();
    },
    /** The last step's loss (after at least one step). */
    loss(): T {
      if (!loss) throw new Error('needleTrainingStep: no step has run yet');
      return loss;
    },
    release,
  };
}

type Nn = typeof import('@needle/nn');
type Ag = typeof import('@needle/autograd');

/**
 * Load @needle/nn and @needle/autograd (dynamically, so a missing build is reported as "not available"
 * instead of breaking every needle target) and check they export what a case uses.
 */
export async function loadNeedleStack(needs: { nn: readonly string[]; autograd: readonly string[] }): Promise<{ nn: Nn; ag: Ag }> {
  let nn: Nn;
  let ag: Ag;
  try {
    // Both through the same resolution as nn's own import of autograd, so Tensor is one class.
    ag = (await importWorkspacePackage('autograd')) as unknown as Ag;
    nn = (await importWorkspacePackage('nn')) as unknown as Nn;
  } catch (e) {
    throw new NotAvailableError(`needs @needle/nn and @needle/autograd built (${(e as Error).message.split(' (')[0]})`);
  }
  for (const [mod, name, keys] of [[nn, 'nn', needs.nn], [ag, 'autograd', needs.autograd]] as const) {
    const missing = keys.filter((k) => typeof (mod as Record<string, unknown>)[k] !== 'function');
    if (missing.length) throw new NotAvailableError(`@needle/${name} lacks ${missing.join(', ')}`);
  }
  return { nn, ag };
}

/** What the SGD update needs of a parameter. */
interface UpdatableParameter {
  readonly data: NDArray;
  readonly grad: { readonly data: NDArray } | null;
  zeroGrad(): void;
}

/** p - lr * grad as one fused elementwise program (the values of p.sub(grad.mul(lr)), bit for bit). */
const SGD_STEP = defineProgram(2, 1, ([p, grad], [lr]) => p.sub(grad.mul(lr)));

/**
 * The hand-written update every training case times: p -= lr * grad, one kernel launch per
 * parameter written into it in place, then the gradient dropped. NDArray ops record no graph, and
 * the write goes to the NDArray (`Tensor.assign` on a grad-requiring leaf would need noGrad), so no
 * grad mode is touched.
 */
export function sgdUpdate(params: readonly UpdatableParameter[], lr: number): void {
  for (const p of params) {
    elementwise(SGD_STEP, [p.data, p.grad!.data], [lr], { out: [p.data] });
    p.zeroGrad();
  }
}
