/**
 * Node-only file access. The Node modules are loaded with dynamic imports inside these functions,
 * so importing @needle/data in a browser never touches them; only calling a load* helper does.
 */
import { fail } from '@needle/ndarray';

interface NodeFs {
  readFile(path: string): Promise<Uint8Array>;
  access(path: string): Promise<void>;
}

async function nodeFs(op: string): Promise<NodeFs> {
  try {
    const spec = 'node:fs/promises';
    return (await import(/* @vite-ignore */ spec)) as NodeFs;
  } catch {
    return fail(op, 'reading files needs Node (node:fs); in a browser, fetch the bytes and use the parse* functions');
  }
}

/** Join a directory and a file name with '/', which Node accepts on every platform. */
export function joinPath(dir: string, name: string): string {
  return dir.endsWith('/') || dir.endsWith('\\') ? dir + name : `${dir}/${name}`;
}

/**
 * Read the first of `names` that exists in `dir` (e.g. 'x' then 'x.gz'). Returns the path read and
 * its bytes; fails listing every path tried.
 */
export async function readFirstExisting(op: string, dir: string, names: readonly string[]): Promise<{ path: string; bytes: Uint8Array }> {
  const fs = await nodeFs(op);
  for (const name of names) {
    const path = joinPath(dir, name);
    try {
      await fs.access(path);
    } catch {
      continue;
    }
    const buf = await fs.readFile(path);
    return { path, bytes: new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength) };
  }
  return fail(op, `none of these files exists: ${names.map((n) => joinPath(dir, n)).join(', ')}`);
}

/** Read one file (Node). */
export async function readFileBytes(op: string, path: string): Promise<Uint8Array> {
  const fs = await nodeFs(op);
  let buf: Uint8Array;
  try {
    buf = await fs.readFile(path);
  } catch (e) {
    return fail(op, `cannot read ${path}: ${(e as Error).message}`);
  }
  return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
}

/** Whether `path` exists (Node). */
export async function fileExists(path: string): Promise<boolean> {
  const fs = await nodeFs('fileExists');
  try {
    await fs.access(path);
    return true;
  } catch {
    return false;
  }
}
