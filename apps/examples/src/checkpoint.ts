/**
 * `--save PATH` / `--resume PATH` of the flagship examples, in the MNIST examples' format (see
 * runMnist in ./mnist.ts): one safetensors checkpoint (@needle/safetensors) holding every part a run
 * needs to continue bit for bit (the model, the optimizer, the global random generator for the
 * initial weights, augmentation and dropout, the example's own generators such as the loader's
 * shuffle) and a `progress` record: the example's name, the last finished epoch and the number of
 * training samples, checked on resume.
 */
import { loadCheckpointFile, saveCheckpointFile } from '@needle/safetensors/node';

export const checkpointOptions = {
  save: { type: 'string', placeholder: 'PATH', description: 'write a checkpoint (model, optimizer, random state, epoch) to PATH after each epoch' },
  resume: { type: 'string', placeholder: 'PATH', description: 'continue the run saved in PATH by --save (same example and flags), from the epoch after it' },
} as const;

export interface RunIdentity {
  /** The example's CLI name. */
  example: string;
  /** Training samples (images, or tokens) of the run: a resumed run must train on the same data. */
  trainSamples: number;
}

/**
 * Load `path` into `parts` (every part is checked before any is changed) and return the epoch to
 * start from, the saved epoch + 1; without `path`, epoch 1.
 */
export async function resumeFrom(path: string | undefined, parts: Record<string, unknown>, run: RunIdentity): Promise<number> {
  if (path === undefined) return 1;
  const { data } = await loadCheckpointFile(path, { ...parts, progress: null });
  const progress = data.progress as RunIdentity & { epoch: number };
  if (progress?.example !== run.example || progress.trainSamples !== run.trainSamples) {
    throw new Error(`--resume ${path}: the checkpoint is of ${progress?.example} on ${progress?.trainSamples} training samples, this run is ${run.example} on ${run.trainSamples}`);
  }
  return progress.epoch + 1;
}

/** Write the run's state after `epoch` to `path` (atomically: an interrupted write keeps the old file). */
export async function saveAfterEpoch(path: string | undefined, parts: Record<string, unknown>, run: RunIdentity, epoch: number): Promise<void> {
  if (path !== undefined) await saveCheckpointFile(path, { ...parts, progress: { ...run, epoch } });
}
