import { scope, type Backend } from '@needle/ndarray';

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
