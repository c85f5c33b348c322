import { fail } from '@needle/ndarray';

let gradEnabled = true;

/** Whether ops currently record a graph. */
export function isGradEnabled(): boolean {
  return gradEnabled;
}

/** Run `fn` with graph recording switched on or off, restoring the previous mode afterwards. */
export function withGradMode<T>(enabled: boolean, fn: () => T, op = 'noGrad'): T {
  const previous = gradEnabled;
  gradEnabled = enabled;
  try {
    const result = fn();
    if (result instanceof Promise) {
      // The mode is one global flag: work after the first await would run under whatever mode is
      // current by then, so an async body cannot be covered correctly.
      result.catch(() => undefined);
      fail(op, 'the function returned a Promise; grad mode only covers synchronous code (wrap the synchronous part)');
    }
    return result;
  } finally {
    gradEnabled = previous;
  }
}

/**
 * Run synchronous `fn` without recording a graph: results do not require grad and belong to the
 * caller (use for evaluation and parameter updates).
 */
export function noGrad<T>(fn: () => T): T {
  return withGradMode(false, fn, 'noGrad');
}

/** Run synchronous `fn` with graph recording on, even inside noGrad. */
export function enableGrad<T>(fn: () => T): T {
  return withGradMode(true, fn, 'enableGrad');
}
