// fail and the shape format are @needle/ndarray's, shared by every package; nn adds its own checks.
export { fail, formatShape as fmt } from '@needle/ndarray';
import { array, checkBoolean, checkInteger, checkNumber, checkOptions, describeValue, fail, type Backend, type NDArray } from '@needle/ndarray';

export function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

export function checkPositiveInt(op: string, name: string, v: number): void {
  checkInteger(op, name, v, 1);
}

/** A dropout probability in [0, 1). */
export function checkProbability(op: string, name: string, p: unknown): number {
  checkNumber(op, name, p, { min: 0 });
  if (!((p as number) < 1)) fail(op, `${name} must be in [0, 1), got ${p as number}`);
  return p as number;
}

/** A constructor's options bag, and its boolean flags (undefined means the default). */
export function checkModuleOptions<T extends object>(op: string, options: T | undefined, flags: readonly string[] = []): T {
  const o = checkOptions(op, options);
  for (const f of flags) {
    const v = (o as Record<string, unknown>)[f];
    if (v !== undefined) checkBoolean(op, f, v);
  }
  return o;
}

/** Integer indices given on the host: a (nested) array of numbers or an integer typed array. */
export type HostIndices = readonly number[] | readonly (readonly number[])[] | Int32Array | Uint8Array | Uint16Array | Uint32Array;

export function isHostIndices(v: unknown): v is HostIndices {
  return Array.isArray(v) || v instanceof Int32Array || v instanceof Uint8Array || v instanceof Uint16Array || v instanceof Uint32Array;
}

/**
 * Check host indices against [0, n) while they are still on the host (on the device they cannot be
 * checked: the library never reads back) and upload them as float32 class indices. The caller
 * disposes the result.
 */
export function uploadIndices(op: string, what: string, v: HostIndices, n: number, backend: Backend): NDArray {
  const flat: unknown[] = Array.isArray(v) ? (v as unknown[]).flat(Infinity) : Array.from(v as ArrayLike<number>);
  const bad = flat.findIndex((x) => typeof x !== 'number' || !Number.isInteger(x) || x < 0 || x >= n);
  if (bad >= 0) fail(op, `${what} ${bad} (in row-major order) is ${describeValue(flat[bad])}, expected an integer in [0, ${n})`);
  return array(v as number[], { backend });
}
