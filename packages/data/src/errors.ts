import { NeedleError } from '@needle/ndarray';

/** Throw the framework's one error type; the message starts with the operation (or file) that failed. */
export function fail(op: string, detail: string): never {
  throw new NeedleError(op, detail);
}

/** Format a shape the way every needle error prints it: [2, 3]. */
export function fmt(shape: readonly number[]): string {
  return `[${shape.join(', ')}]`;
}
