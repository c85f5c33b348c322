import { NeedleError } from '@needle/ndarray';

/** Throw the framework's error type; the message starts with the operation that failed. */
export function fail(op: string, detail: string): never {
  throw new NeedleError(op, detail);
}

/** A shape as error messages print it: [2, 3]. */
export function fmt(shape: readonly number[]): string {
  return `[${shape.join(', ')}]`;
}
