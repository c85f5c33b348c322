import { readFileSync } from 'node:fs';
import { expect } from 'vitest';
import { NDArray, setDefaultBackend } from '@needle/ndarray';
import { createCpuBackend } from '@needle/ndarray-cpu';

/** Every test runs on the CPU backend without synchronous reads (the library must not need them). */
export const backend = createCpuBackend({ name: 'cpu-safetensors-test', readSync: false });
setDefaultBackend(backend);

export function liveBuffers(): number {
  return backend.memory().buffers;
}

export function fixture(name: string): Uint8Array {
  return new Uint8Array(readFileSync(new URL(`./fixtures/${name}`, import.meta.url)));
}

export interface ExpectedTensor {
  dtype: string;
  shape: number[];
  /** float32 bit patterns of the values (null where the file holds its own reference tensor). */
  bits: number[] | null;
}

export const expected = JSON.parse(readFileSync(new URL('./fixtures/expected.json', import.meta.url), 'utf8')) as Record<
  string,
  { metadata: Record<string, string> | null; tensors: Record<string, ExpectedTensor> }
>;

/** The float32 bit patterns of an array (so -0 and NaN payloads compare exactly). */
export async function bitsOf(a: NDArray | Float32Array): Promise<number[]> {
  const values = a instanceof NDArray ? await a.toArray() : a;
  return Array.from(new Uint32Array(values.buffer, values.byteOffset, values.length));
}

/** An array holding exactly these float32 bit patterns. */
export function fromBits(bits: number[], shape: number[]): NDArray {
  return NDArray.fromData(new Float32Array(Uint32Array.from(bits).buffer), shape);
}

/** The JSON header of a file, as text (padding included). */
export function headerText(bytes: Uint8Array): string {
  const n = new DataView(bytes.buffer, bytes.byteOffset).getUint32(0, true);
  return new TextDecoder().decode(bytes.subarray(8, 8 + n));
}

/** A file from a header object (or raw header text) and data bytes, the header padded to 8. */
export function makeFile(header: object | string, data: Uint8Array | number = 0, options: { pad?: boolean } = {}): Uint8Array {
  let json = new TextEncoder().encode(typeof header === 'string' ? header : JSON.stringify(header));
  if (options.pad ?? true) {
    const padded = new Uint8Array(Math.ceil(json.length / 8) * 8).fill(0x20);
    padded.set(json);
    json = padded;
  }
  const body = typeof data === 'number' ? new Uint8Array(data) : data;
  const out = new Uint8Array(8 + json.length + body.length);
  new DataView(out.buffer).setUint32(0, json.length, true);
  out.set(json, 8);
  out.set(body, 8 + json.length);
  return out;
}

export async function expectThrowsMessage(fn: () => unknown, ...parts: (string | RegExp)[]): Promise<void> {
  let error: unknown;
  try {
    await fn();
  } catch (e) {
    error = e;
  }
  expect(error, 'expected an error').toBeInstanceOf(Error);
  for (const p of parts) expect((error as Error).message).toMatch(p);
}
