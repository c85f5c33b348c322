/**
 * Memory ownership (see README, "Memory"):
 * - A Storage owns one backend buffer and counts references. Every NDArray, view or not, holds
 *   exactly one reference to its storage; `dispose()` drops it, and the buffer is freed when the
 *   last reference goes.
 * - Scopes collect the arrays created while they are open, so intermediates can be disposed in bulk:
 *   `tidy(fn)` for synchronous code, `scope()` ... `s.end(keep)` across `await`.
 * - A FinalizationRegistry releases the reference of an array that was garbage collected without
 *   being disposed. It is a safety net for forgotten arrays, not the plan: GC timing is arbitrary
 *   and GPU/WASM memory pressure is invisible to it.
 */
import type { Backend, DeviceBuffer } from './backend';
import { fail } from './errors';

export class Storage {
  private refs = 1;
  /**
   * Bumped by every in-place write through an NDArray (set/assign/fill), shared by all views of the
   * buffer. Autograd records it when an op saves an array for its backward pass, so a later write is
   * caught instead of silently changing the gradient (PyTorch's version counter).
   */
  version = 0;
  /** The op of the latest in-place write, for the error message. */
  lastWriter = '';
  constructor(
    readonly backend: Backend,
    readonly buffer: DeviceBuffer,
  ) {}

  get released(): boolean {
    return this.refs <= 0;
  }

  /** Record an in-place write by `op`. */
  modified(op: string): void {
    this.version++;
    this.lastWriter = op;
  }

  retain(): void {
    this.refs++;
  }

  release(): void {
    if (this.refs <= 0) return;
    this.refs--;
    if (this.refs === 0) this.backend.free(this.buffer);
  }
}

/** Anything that owns arrays: tidy and scopes find the arrays inside returned values through it. */
export const OWNED_ARRAYS: unique symbol = Symbol.for('needle.ownedArrays');

/** An object that can be disposed and tracked by scopes (an NDArray, or a wrapper such as a Tensor). */
export interface Disposable {
  readonly disposed: boolean;
  dispose(): void;
}

export interface HasOwnedArrays {
  [OWNED_ARRAYS](): Iterable<Disposable>;
}

/** The garbage-collection safety net: the held value is the storage whose reference to drop. */
const finalizer = new FinalizationRegistry<Storage>((storage) => storage.release());

/**
 * NEEDLE_GC_SAFETY_NET=0 turns the net off. The test suites do, so a leak fails a live-buffer check
 * every time instead of only when the garbage collector happened not to run first.
 */
const safetyNet = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env?.NEEDLE_GC_SAFETY_NET !== '0';

export function registerFinalizer(owner: object, storage: Storage): void {
  if (safetyNet) finalizer.register(owner, storage, owner);
}

export function unregisterFinalizer(owner: object): void {
  finalizer.unregister(owner);
}

/** A set of arrays created while it was open. */
export class Scope {
  readonly tracked = new Set<Disposable>();
  private ended = false;

  /** Stop tracking these (they survive `end`); used for values that must outlive the scope. */
  keep<T>(value: T): T {
    for (const a of collect(value)) this.tracked.delete(a);
    return value;
  }

  /**
   * Close the scope: dispose every array created in it except those found in `keep` (arrays, nested
   * arrays/objects of them, or owners such as tensors), which move to the enclosing scope if any.
   */
  end<T = undefined>(keep?: T): T {
    if (this.ended) fail('scope.end', 'this scope has already ended');
    this.ended = true;
    const i = stack.lastIndexOf(this);
    if (i >= 0) stack.splice(i, 1);
    const kept = new Set(collect(keep));
    const parent = stack[stack.length - 1];
    for (const a of this.tracked) {
      if (kept.has(a)) {
        parent?.tracked.add(a);
      } else if (!a.disposed) {
        a.dispose();
      }
    }
    this.tracked.clear();
    return keep as T;
  }

  [Symbol.dispose](): void {
    if (!this.ended) this.end();
  }
}

const stack: Scope[] = [];

/** Called by every array (and wrapper) on creation. */
export function track(a: Disposable): void {
  stack[stack.length - 1]?.tracked.add(a);
}

/** Called on dispose so scopes do not hold disposed arrays. */
export function untrack(a: Disposable): void {
  stack[stack.length - 1]?.tracked.delete(a);
}

/** Open a scope that works across `await`: `const s = scope(); ...; s.end(keep)`. Supports `using`. */
export function scope(): Scope {
  const s = new Scope();
  stack.push(s);
  return s;
}

/**
 * Run a synchronous function and dispose every array it created except those it returns.
 * For async code use `scope()`: a tidy cannot follow an `await`.
 */
export function tidy<T>(fn: () => T): T {
  const s = scope();
  let result: T;
  try {
    result = fn();
  } catch (e) {
    s.end();
    throw e;
  }
  if (result instanceof Promise) {
    s.end();
    fail('tidy', 'the function returned a Promise; tidy only covers synchronous code: use scope() across await');
  }
  return s.end(result);
}

/** Exempt arrays from the innermost scope, so its end does not dispose them. */
export function keep<T>(value: T): T {
  const s = stack[stack.length - 1];
  return s ? s.keep(value) : value;
}

function isOwner(v: unknown): v is HasOwnedArrays {
  return typeof v === 'object' && v !== null && OWNED_ARRAYS in v;
}

function isDisposable(v: unknown): v is Disposable {
  return typeof v === 'object' && v !== null && 'dispose' in v && 'disposed' in v;
}

/** Every disposable found in a value: itself, owners' arrays, and inside arrays, Maps and plain objects. */
export function* collect(value: unknown, seen = new Set<unknown>()): Generator<Disposable> {
  if (value === null || typeof value !== 'object' || seen.has(value)) return;
  seen.add(value);
  if (isDisposable(value)) yield value;
  if (isOwner(value)) {
    for (const a of value[OWNED_ARRAYS]()) yield* collect(a, seen);
    return;
  }
  if (isDisposable(value)) return;
  if (Array.isArray(value)) {
    for (const v of value) yield* collect(v, seen);
  } else if (value instanceof Map) {
    for (const v of value.values()) yield* collect(v, seen);
  } else if (Object.getPrototypeOf(value) === Object.prototype) {
    for (const v of Object.values(value)) yield* collect(v, seen);
  }
}
