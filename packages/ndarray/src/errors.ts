/** The one error type of @needle/ndarray: the message starts with the operation that failed. */
export class NeedleError extends Error {
  constructor(
    readonly op: string,
    detail: string,
  ) {
    super(`${op}: ${detail}`);
    this.name = 'NeedleError';
  }
}

/** Throw a NeedleError naming the op (every @needle package reports errors through this). */
export function fail(op: string, detail: string): never {
  throw new NeedleError(op, detail);
}

/** Format a shape the way error messages print it: [2, 3]. */
export function formatShape(shape: readonly number[]): string {
  return `[${shape.join(', ')}]`;
}
