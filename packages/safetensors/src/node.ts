/**
 * Node file helpers (`@needle/safetensors/node`), kept out of the main entry so it stays
 * browser-safe. Writes go to a temporary file renamed over the target, so a crash mid-save leaves the
 * previous file whole.
 */
import { readFile, rename, rm, writeFile } from 'node:fs/promises';
import type { NDArray } from '@needle/ndarray';
import { save, load, type ArrayOrTensor, type LoadOptions, type SaveOptions } from './arrays';
import { saveCheckpoint, loadCheckpoint, type CheckpointParts, type LoadCheckpointOptions, type LoadedCheckpoint } from './checkpoint';
import type { Decoded, Metadata } from './codec';

let writes = 0;

/** Write `bytes` to `path` atomically (temporary file in the same directory, then rename). */
export async function writeFileAtomic(path: string, bytes: Uint8Array): Promise<void> {
  // Unique per process and call, so concurrent saves never share a temporary file.
  const tmp = `${path}.${process.pid}.${++writes}.tmp`;
  try {
    await writeFile(tmp, bytes);
    await rename(tmp, path);
  } catch (e) {
    await rm(tmp, { force: true });
    throw e;
  }
}

/** `save` to a file (written atomically: a crash leaves the old file or the new one, never half). */
export async function saveFile(path: string, tensors: Record<string, ArrayOrTensor> | Map<string, ArrayOrTensor>, metadata?: Metadata, options?: SaveOptions): Promise<void> {
  await writeFileAtomic(path, await save(tensors, metadata, options));
}

/** `load` from a file; errors name the path. */
export async function loadFile(path: string, options: LoadOptions = {}): Promise<Decoded<NDArray>> {
  return load(await readFile(path), { ...options, source: options.source ?? path });
}

/** `saveCheckpoint` to a file. */
export async function saveCheckpointFile(path: string, parts: CheckpointParts, metadata?: Metadata): Promise<void> {
  await writeFileAtomic(path, await saveCheckpoint(parts, metadata));
}

/** `loadCheckpoint` from a file; errors name the path. */
export async function loadCheckpointFile(path: string, parts: CheckpointParts, options: LoadCheckpointOptions = {}): Promise<LoadedCheckpoint> {
  return loadCheckpoint(await readFile(path), parts, { ...options, source: options.source ?? path });
}
