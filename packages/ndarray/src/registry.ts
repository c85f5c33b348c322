import type { Backend } from './backend';
import { describeValue } from './check';
import { claimSoleCopy } from './copies';
import { fail } from './errors';

claimSoleCopy();

export type BackendFactory = () => Backend | Promise<Backend>;

const factories = new Map<string, BackendFactory>();
const instances = new Map<string, Backend>();
let defaultName: string | undefined;

/**
 * Register a backend factory under a name. The factory runs once, on first use. Factories may be
 * async (WebGPU needs an adapter): such a backend must be created with `await initBackend(name)`.
 */
export function registerBackend(name: string, factory: BackendFactory, options: { overwrite?: boolean } = {}): void {
  if (factories.has(name) && !options.overwrite) fail('registerBackend', `a backend named '${name}' is already registered`);
  factories.set(name, factory);
  const old = instances.get(name);
  if (old && options.overwrite) {
    instances.delete(name);
  }
}

/** Names of all registered backends. */
export function listBackends(): string[] {
  return [...new Set([...factories.keys(), ...instances.keys()])];
}

/** Create (once) and return a registered backend, awaiting an async factory. */
export async function initBackend(name: string): Promise<Backend> {
  const existing = instances.get(name);
  if (existing) return existing;
  const factory = factories.get(name);
  if (!factory) fail('initBackend', `no backend named '${name}' is registered (registered: ${listBackends().join(', ') || 'none'})`);
  const backend = await factory();
  instances.set(name, backend);
  return backend;
}

/** Return a backend by name (or the default), creating it if its factory is synchronous. */
export function getBackend(name?: string): Backend {
  const key = name ?? defaultName ?? soleBackendName();
  const existing = instances.get(key);
  if (existing) return existing;
  const factory = factories.get(key);
  if (!factory) fail('getBackend', `no backend named '${key}' is registered (registered: ${listBackends().join(', ') || 'none'})`);
  const made = factory();
  if (made instanceof Promise) {
    made.catch(() => undefined);
    fail('getBackend', `backend '${key}' is created asynchronously; call 'await initBackend("${key}")' (or 'await setBackend("${key}")') first`);
  }
  instances.set(key, made);
  return made;
}

function soleBackendName(): string {
  const names = listBackends();
  if (names.length === 1) return names[0];
  if (names.length === 0) {
    fail('getBackend', 'no backend is registered: register one first, e.g. registerCpuBackend() from @needle/ndarray-cpu');
  }
  fail('getBackend', `several backends are registered (${names.join(', ')}) and none is the default: call setDefaultBackend(name)`);
}

/** Make a backend the default for new arrays. Accepts a registered name or a backend instance. */
export function setDefaultBackend(backend: string | Backend): void {
  if (typeof backend === 'string') {
    getBackend(backend);
    defaultName = backend;
  } else {
    instances.set(backend.name, backend);
    defaultName = backend.name;
  }
}

/** Async form of setDefaultBackend that also creates an async backend (like tf.setBackend). */
export async function setBackend(name: string): Promise<Backend> {
  const backend = await initBackend(name);
  defaultName = name;
  return backend;
}

/** The current default backend. */
export function defaultBackend(): Backend {
  return getBackend();
}

/** Resolve a backend argument: an instance, a registered name, or the default. */
export function resolveBackend(backend: Backend | string | undefined): Backend {
  if (backend === undefined) return getBackend();
  if (typeof backend === 'string') return getBackend(backend);
  if (typeof backend !== 'object' || backend === null || typeof (backend as Backend).alloc !== 'function') {
    fail('backend', `expected a Backend or a registered backend name, got ${describeValue(backend)}`);
  }
  return backend;
}
