import { fail } from '@needle/ndarray';

/** True when the bytes start with the gzip magic 1f 8b. */
export function isGzip(bytes: Uint8Array): boolean {
  return bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b;
}

/**
 * Decompress gzip data (detected by its magic bytes 1f 8b); other bytes are returned unchanged.
 * Uses the standard DecompressionStream, global in browsers and in Node >= 18, so it needs no
 * Node module. `source` names the data in error messages (a file name).
 */
export async function gunzipIfNeeded(bytes: Uint8Array, source = 'data'): Promise<Uint8Array> {
  if (!isGzip(bytes)) return bytes;
  if (typeof DecompressionStream === 'undefined') {
    fail('gunzip', `${source} is gzip-compressed but this runtime has no DecompressionStream; decompress it first`);
  }
  const stream = new DecompressionStream('gzip');
  const writer = stream.writable.getWriter();
  // Errors surface on the reading side; the writer's own rejections would otherwise go unhandled.
  writer.write(bytes as Uint8Array<ArrayBuffer>).catch(() => undefined);
  writer.close().catch(() => undefined);
  const reader = stream.readable.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      chunks.push(value);
      total += value.length;
    }
  } catch (e) {
    fail('gunzip', `${source} starts with the gzip magic 1f 8b but is not valid gzip data (truncated or corrupt): ${(e as Error).message}`);
  }
  if (chunks.length === 1) return chunks[0];
  const out = new Uint8Array(total);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}
