/**
 * Memory ownership (see README, "Memory"):
 * - A Storage owns one backend buffer and counts references. Every NDArray, view or not, holds
 *   exactly one reference to its storage; `dispose()` drops it, and the buffer is freed when the
 *   last reference goes.
 * - Scopes collect the arrays created while they are open, so intermediates can be disposed in bulk:
 *   `tidy(fn)` for synchronous code, `scope()` ... `s.end(keep)` across `await`.
 * - A FinalizationRegistry releases the reference of an array that was garbage collected without
 *   being disposed. It is a safety net for forgotten arrays, not the plan: GC timing is arbitrary
 *   and GPU/WASM memory pressure is invisible to it. An array is registered only once no scope
 *   holds it (created outside every scope, or surviving the last one): a scope's set keeps its
 *   arrays reachable, so the net could never fire for them, and registering (then unregistering)
 *   every intermediate of a training step costs about a microsecond each.
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

/**
 * Implemented by arrays: put the array under the safety net (idempotent). Scopes call it on an
 * array they stop holding without disposing it, when no other scope takes it over.
 */
export const ARM_FINALIZER: unique symbol = Symbol.for('needle.armFinalizer');

interface Finalizable {
  [ARM_FINALIZER](): void;
}

/** `a` left the last scope alive: the safety net takes over (arrays only; wrappers own no buffer). */
function leftScopes(a: Disposable): void {
  const f = (a as Partial<Finalizable>)[ARM_FINALIZER];
  if (f !== undefined) f.call(a);
}

export function unregisterFinalizer(owner: object): void {
  finalizer.unregister(owner);
}

/**
 * Optional protocol for owners: the values that must survive a scope together with the owner when
 * they were created inside it (a tensor's graph inputs, which its backward pass will read).
 */
export const DEPENDENCIES: unique symbol = Symbol.for('needle.dependencies');

/**
 * Optional protocol: called on a value a scope lets survive that it created: `explicit` when the
 * value was named in `end(keep)`/`keep()`, false when it survives only as a dependency of one.
 */
export const ON_KEPT: unique symbol = Symbol.for('needle.onKept');

export interface HasDependencies {
  [DEPENDENCIES](): Iterable<unknown>;
}

interface KeptHook {
  [ON_KEPT](explicit: boolean): void;
}

/** What scopes key on: arrays and tensors carry their backend. */
function backendOf(a: Disposable): unknown {
  return (a as { backend?: unknown }).backend;
}

export interface ScopeOptions {
  /**
   * Collect only arrays on this backend (instance or registered name). Two async loops that run at
   * the same time on different backends each use their own keyed scope, and neither collects the
   * other's arrays. An unkeyed scope collects every array created while it is the innermost one.
   */
  backend?: unknown;
}

/** A set of arrays created while it was open. */
export class Scope {
  readonly tracked = new Set<Disposable>();
  private ended = false;
  /** The backend this scope collects for (undefined: all). Resolved lazily by name when given one. */
  private readonly key: unknown;

  constructor(options: ScopeOptions = {}) {
    this.key = options.backend;
  }

  /** Whether the two scopes may collect the same arrays. */
  overlaps(other: Scope): boolean {
    return this.key === undefined || other.key === undefined || this.accepts(other.key) || other.accepts(this.key);
  }

  /** Whether this scope collects arrays on `backend`. */
  accepts(backend: unknown): boolean {
    const k = this.key;
    if (k === undefined) return true;
    if (k === backend) return true;
    return typeof k === 'string' && (backend as { name?: unknown } | undefined)?.name === k;
  }

  /**
   * Stop tracking these (they survive `end`); used for values that must outlive the scope. Owners
   * that declare dependencies (a tensor's graph) keep those created in this scope too.
   */
  keep<T>(value: T): T {
    for (const a of this.survivors(value)) {
      if (this.tracked.delete(a)) leftScopes(a);
    }
    return value;
  }

  /**
   * Close the scope: dispose every array created in it except those found in `keep` (arrays, nested
   * arrays/objects of them, or owners such as tensors, with the graph they depend on), which move to
   * the enclosing scope that collects their backend, if any. Later values are disposed first.
   */
  end<T = undefined>(keep?: T): T {
    if (this.ended) fail('scope.end', 'this scope has already ended');
    const i = stack.lastIndexOf(this);
    // A scope opened later and still open, collecting the same arrays, means this one's arrays went
    // there: async code running concurrently (or an inner scope never ended). Ending would silently
    // leave them to the other scope's end, which may be another loop's.
    for (let j = i + 1; j < stack.length; j++) {
      if (stack[j].overlaps(this)) {
        fail('scope.end', 'a scope opened after this one and collecting the same backend is still open: ' +
          'end scopes innermost first; async code running concurrently (two loops under Promise.all) must ' +
          'key its scopes by backend, scope({ backend }), one backend per loop');
      }
    }
    const kept = this.survivors(keep);
    this.ended = true;
    if (i >= 0) stack.splice(i, 1);
    const items = [...this.tracked];
    this.tracked.clear();
    for (let j = items.length - 1; j >= 0; j--) {
      const a = items[j];
      if (kept.has(a)) {
        moveOut(i, a);
      } else if (!a.disposed) {
        a.dispose();
      }
    }
    return keep as T;
  }

  /** Everything in `value`, plus the dependencies this scope tracks; tells the tracked ones they survive. */
  private survivors(value: unknown): Set<Disposable> {
    if (value === null || typeof value !== 'object') return new Set();
    const named = new Set(collect(value));
    if (named.size === 0) return named;
    const kept = new Set(named);
    const pending: Disposable[] = [...named];
    while (pending.length > 0) {
      const owner = pending.pop()!;
      if (!hasDependencies(owner)) continue;
      for (const dep of owner[DEPENDENCIES]()) {
        if (!isDisposable(dep) || kept.has(dep) || !this.tracked.has(dep)) continue;
        for (const a of collect(dep)) {
          if (kept.has(a)) continue;
          kept.add(a);
          pending.push(a);
        }
      }
    }
    for (const a of kept) {
      if (this.tracked.has(a) && hasKeptHook(a)) a[ON_KEPT](named.has(a));
    }
    return kept;
  }

  [Symbol.dispose](): void {
    if (!this.ended) this.end();
  }
}

/** Open scopes, innermost last. */
const stack: Scope[] = [];

/** The innermost open scope below position `below` that collects arrays on `backend`. */
function enclosing(below: number, backend: unknown): Scope | undefined {
  for (let j = Math.min(below, stack.length) - 1; j >= 0; j--) {
    if (stack[j].accepts(backend)) return stack[j];
  }
  return undefined;
}

/** A surviving `a` leaves the scope at stack position `at` for the next enclosing one, if any. */
function moveOut(at: number, a: Disposable): void {
  const s = enclosing(at, backendOf(a));
  if (s) s.tracked.add(a);
  else leftScopes(a);
}

/**
 * Called by every array (and wrapper) on creation: it joins the innermost scope for its backend.
 * Returns whether a scope took it (false: no scope holds it, the safety net's case).
 */
export function track(a: Disposable): boolean {
  const s = enclosing(stack.length, backendOf(a));
  if (!s) return false;
  s.tracked.add(a);
  return true;
}

/**
 * Called by a wrapper (a tensor) on creation: it joins the innermost scope for its backend only when
 * that scope holds the array it wraps, so wrapping an array made outside a scope leaves both alone.
 */
export function trackWith(wrapper: Disposable, inner: Disposable): void {
  const s = enclosing(stack.length, backendOf(wrapper));
  if (s?.tracked.has(inner)) s.tracked.add(wrapper);
}

/** Called on dispose so scopes do not hold disposed arrays. */
export function untrack(a: Disposable): void {
  enclosing(stack.length, backendOf(a))?.tracked.delete(a);
}

/**
 * Open a scope that works across `await`: `const s = scope(); ...; s.end(keep)`. Supports `using`.
 * Concurrent async code (two loops under `Promise.all`) must key its scopes by backend,
 * `scope({ backend })`, or the loops collect each other's arrays; see ScopeOptions.
 */
export function scope(options?: ScopeOptions): Scope {
  const s = new Scope(options);
  stack.push(s);
  return s;
}

/** Run `fn` in a new scope, which is ended (its arrays disposed) if `fn` throws; the caller ends it otherwise. */
function runInNewScope<T>(fn: () => T): [Scope, T] {
  const s = scope();
  try {
    return [s, fn()];
  } catch (e) {
    s.end();
    throw e;
  }
}

/**
 * Run a synchronous function and dispose every array it created except those it returns.
 * For async code use `scope()`: a tidy cannot follow an `await`.
 */
export function tidy<T>(fn: () => T): T {
  const [s, result] = runInNewScope(fn);
  if (result instanceof Promise) {
    s.end();
    fail('tidy', 'the function returned a Promise; tidy only covers synchronous code: use scope() across await');
  }
  return s.end(result);
}

/**
 * Run a synchronous function; if it throws, dispose every array it created before rethrowing. On
 * success nothing is disposed: its arrays stay where they would have been without it. For code that
 * must not leak when it fails part-way (composite ops, whose intermediates are a graph on success).
 */
export function disposeOnError<T>(fn: () => T): T {
  const [s, result] = runInNewScope(fn);
  const i = stack.lastIndexOf(s);
  if (i >= 0) stack.splice(i, 1);
  for (const a of s.tracked) moveOut(i, a);
  s.tracked.clear();
  return result;
}

/**
 * Exempt arrays from every open scope, so no scope's end disposes them (with a scope keyed by
 * backend, an array may sit in a scope below the innermost one).
 */
export function keep<T>(value: T): T {
  for (let j = stack.length - 1; j >= 0; j--) stack[j].keep(value);
  return value;
}

function hasDependencies(v: unknown): v is HasDependencies {
  return typeof v === 'object' && v !== null && DEPENDENCIES in v;
}

function hasKeptHook(v: unknown): v is KeptHook {
  return typeof v === 'object' && v !== null && ON_KEPT in v;
}

function isOwner(v: unknown): v is HasOwnedArrays {
  return typeof v === 'object' && v !== null && OWNED_ARRAYS in v;
}

function isDisposable(v: unknown): v is Disposable {
  return typeof v === 'object' && v !== null && 'dispose' in v && 'disposed' in v;
}

/**
 * Every disposable found in a value: itself, owners' arrays, and inside arrays, Maps and plain
 * objects, in that order. Pushes into `found` (an array, not a generator: this runs at the end of
 * every scope, and nested generators allocate an object per level).
 */
export function collect(value: unknown, found: Disposable[] = [], seen = new Set<unknown>()): Disposable[] {
  if (value === null || typeof value !== 'object' || seen.has(value)) return found;
  seen.add(value);
  if (isDisposable(value)) found.push(value);
  if (isOwner(value)) {
    for (const a of value[OWNED_ARRAYS]()) collect(a, found, seen);
    return found;
  }
  if (isDisposable(value)) return found;
  if (Array.isArray(value)) {
    for (const v of value) collect(v, found, seen);
  } else if (value instanceof Map) {
    for (const v of value.values()) collect(v, found, seen);
  } else if (Object.getPrototypeOf(value) === Object.prototype) {
    for (const v of Object.values(value)) collect(v, found, seen);
  }
  return found;
}
