/**
 * `--save FILE` / `--resume FILE` of the longer examples: one safetensors checkpoint
 * (@needle/safetensors) holding every part a run needs to continue bit for bit: the model, the
 * optimizer, the global random generator (initial weights, augmentation, dropout), the example's
 * own generators (e.g. the loader's shuffle) and the number of the last finished epoch.
 */
import { loadCheckpointFile, saveCheckpointFile } from '@needle/safetensors/node';

export const checkpointOptions = {
  save: { type: 'string', placeholder: 'FILE', description: 'write a checkpoint (model, optimizer, random state, epoch) to FILE after every epoch' },
  resume: { type: 'string', placeholder: 'FILE', description: 'continue the run saved in FILE (same flags as the saved run), from the epoch after its last' },
} as const;

/**
 * Load `file` into `parts` (every part is checked before any is changed) and return the epoch to
 * start from: the saved epoch + 1. Without `file`, epoch 1.
 */
export async function resumeFrom(file: string | undefined, parts: Record<string, unknown>): Promise<number> {
  if (file === undefined) return 1;
  const { data } = await loadCheckpointFile(file, { ...parts, epoch: null });
  const epoch = data.epoch;
  if (typeof epoch !== 'number' || !Number.isInteger(epoch) || epoch < 1) throw new Error(`--resume ${file}: the checkpoint's epoch is ${String(epoch)}, expected a positive integer`);
  return epoch + 1;
}

/** Write the run's state after `epoch` to `file` (atomically: an interrupted write keeps the old file). */
export async function saveAfterEpoch(file: string | undefined, parts: Record<string, unknown>, epoch: number): Promise<void> {
  if (file !== undefined) await saveCheckpointFile(file, { ...parts, epoch });
}
