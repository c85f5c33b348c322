/**
 * Where file bytes come from and go to without Node: buffers, Blobs and Files, fetch Responses, and
 * the Origin Private File System. Only standard web APIs (Node 20 has Blob, File and Response too).
 */
import { fail } from '@needle/ndarray';

/** Anything the load functions read a safetensors file from. */
export type SafetensorsSource = Uint8Array | ArrayBuffer | ArrayBufferView | Blob | Response;

/**
 * The bytes of `source` and a name for error messages: the given `name`, else a File's name, a
 * Response's URL, or "buffer". A Uint8Array is used as is (not copied).
 */
export async function readSource(op: string, source: SafetensorsSource, name?: string): Promise<{ bytes: Uint8Array; source: string }> {
  if (source instanceof Uint8Array) return { bytes: source, source: name ?? 'buffer' };
  if (source instanceof ArrayBuffer) return { bytes: new Uint8Array(source), source: name ?? 'buffer' };
  if (ArrayBuffer.isView(source)) return { bytes: new Uint8Array(source.buffer, source.byteOffset, source.byteLength), source: name ?? 'buffer' };
  if (typeof Blob !== 'undefined' && source instanceof Blob) {
    const label = name ?? (typeof File !== 'undefined' && source instanceof File ? source.name : 'blob');
    return { bytes: new Uint8Array(await source.arrayBuffer()), source: label };
  }
  if (typeof Response !== 'undefined' && source instanceof Response) {
    const label = name ?? (source.url || 'response');
    if (!source.ok) fail(op, `${label}: the response has status ${source.status} ${source.statusText}, not a file`);
    return { bytes: new Uint8Array(await source.arrayBuffer()), source: label };
  }
  return fail(op, `expected a Uint8Array, ArrayBuffer, Blob, File or Response, got ${(source as object)?.constructor?.name ?? typeof source}`);
}

/** Wrap file bytes in a Blob (e.g. for a download link: `URL.createObjectURL(blob)`). */
export function toBlob(bytes: Uint8Array): Blob {
  return new Blob([bytes as Uint8Array<ArrayBuffer>], { type: 'application/octet-stream' });
}

// ---- Origin Private File System ------------------------------------------------------------------

async function opfsRoot(op: string): Promise<FileSystemDirectoryHandle> {
  const storage = (globalThis as { navigator?: { storage?: { getDirectory?: () => Promise<FileSystemDirectoryHandle> } } }).navigator?.storage;
  if (typeof storage?.getDirectory !== 'function') {
    fail(op, 'the Origin Private File System is not available here (navigator.storage.getDirectory is missing: an old browser, an insecure http:// page, or Node); save to a Blob or, in Node, use @needle/safetensors/node');
  }
  return storage.getDirectory();
}

function checkFileName(op: string, fileName: unknown): asserts fileName is string {
  if (typeof fileName !== 'string' || fileName.length === 0 || fileName.includes('/') || fileName === '.' || fileName === '..') {
    fail(op, `expected a file name without '/' in the origin's private root directory, got ${JSON.stringify(fileName)}`);
  }
}

/**
 * Write `bytes` to the file `fileName` in the Origin Private File System root, replacing it. The
 * writable stream commits on close, so a reader never sees half a file.
 */
export async function writeToOPFS(fileName: string, bytes: Uint8Array | Blob): Promise<void> {
  const op = 'writeToOPFS';
  checkFileName(op, fileName);
  const root = await opfsRoot(op);
  const handle = await root.getFileHandle(fileName, { create: true });
  if (typeof handle.createWritable !== 'function') {
    fail(op, 'this browser\'s Origin Private File System cannot write from the page (FileSystemFileHandle.createWritable is missing, e.g. Safari before 17); save to a Blob instead');
  }
  const writable = await handle.createWritable();
  try {
    await writable.write(bytes as Uint8Array<ArrayBuffer> | Blob);
    await writable.close();
  } catch (e) {
    await writable.abort().catch(() => undefined);
    throw e;
  }
}

/** The file `fileName` from the Origin Private File System root, or undefined when there is none. */
export async function readFromOPFS(fileName: string): Promise<File | undefined> {
  const op = 'readFromOPFS';
  checkFileName(op, fileName);
  const root = await opfsRoot(op);
  try {
    return await (await root.getFileHandle(fileName)).getFile();
  } catch (e) {
    if ((e as { name?: string }).name === 'NotFoundError') return undefined;
    throw e;
  }
}

/** Delete `fileName` from the Origin Private File System root; true when it existed. */
export async function removeFromOPFS(fileName: string): Promise<boolean> {
  const op = 'removeFromOPFS';
  checkFileName(op, fileName);
  const root = await opfsRoot(op);
  try {
    await root.removeEntry(fileName);
    return true;
  } catch (e) {
    if ((e as { name?: string }).name === 'NotFoundError') return false;
    throw e;
  }
}
