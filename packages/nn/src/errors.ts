import { NeedleError } from '@needle/ndarray';

/** Throw the framework's error type; the message starts with the module or op that failed. */
export function fail(op: string, detail: string): never {
  throw new NeedleError(op, detail);
}

/** A shape as error messages print it: [2, 3]. */
export function fmt(shape: readonly number[]): string {
  return `[${shape.join(', ')}]`;
}

export function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

export function checkPositiveInt(op: string, name: string, v: number): void {
  if (!Number.isInteger(v) || v < 1) fail(op, `${name} must be a positive integer, got ${v}`);
}
