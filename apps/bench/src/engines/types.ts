import type { Backend } from '@needle/ndarray';
import type { CaseSpec } from '../cases';

/**
 * The base targets: one framework on one backend, each measured in its own process. A target
 * string may add `@N` (that target's thread count, overriding --threads, so one run can hold
 * `needle:wasm` and `needle:wasm@2`); `base:cpu|wasm|webgpu` are needle targets computed by the
 * packages of another checkout (--baseline DIR, e.g. an older commit's build).
 */
export const TARGETS = [
  'needle:cpu',
  'needle:wasm',
  'needle:webgpu',
  'tfjs:cpu',
  'tfjs:wasm',
  'tfjs:webgpu',
  'jax:wasm',
  'jax:webgpu',
  'torch:cpu',
] as const;
export type BaseTarget = (typeof TARGETS)[number];
/** The needle targets of another checkout's build (--baseline DIR). */
export const BASELINE_TARGETS = ['base:cpu', 'base:wasm', 'base:webgpu'] as const;
/** A base target or a baseline target, optionally with `@threads`: `needle:wasm@2`. */
export type Target = string;

export interface ParsedTarget {
  framework: 'needle' | 'base' | 'tfjs' | 'jax' | 'torch';
  backend: string;
  /** The `@N` suffix, if any. */
  threads?: number;
  /** The target without the suffix, which selects the engine. */
  engine: BaseTarget | (typeof BASELINE_TARGETS)[number];
}

/** Parse a target string; throws an Error naming the valid ones. */
export function parseTarget(target: string): ParsedTarget {
  const m = /^([a-z]+:[a-z]+)(?:@([1-9][0-9]*))?$/.exec(target);
  const engine = m?.[1];
  const known = [...TARGETS, ...BASELINE_TARGETS] as readonly string[];
  if (!m || !engine || !known.includes(engine)) {
    throw new Error(`unknown target '${target}' (targets: ${known.join(', ')}, each optionally with @THREADS, e.g. needle:wasm@2)`);
  }
  const [framework, backend] = engine.split(':');
  return {
    framework: framework as ParsedTarget['framework'],
    backend,
    threads: m[2] ? Number(m[2]) : undefined,
    engine: engine as ParsedTarget['engine'],
  };
}

export function frameworkOf(target: Target): string {
  return parseTarget(target).framework;
}
export function backendOf(target: Target): string {
  return parseTarget(target).backend;
}
/** A target of this checkout's needle (the ratio column divides these by everyone else). */
export function isNeedle(target: Target): boolean {
  return frameworkOf(target) === 'needle';
}

export interface EngineInfo {
  /** Threads the backend computes with. */
  threads: number;
  /** Free text: versions, SIMD, adapter name... */
  details: string;
}

export interface EngineOptions {
  /** Threads to ask for where a backend lets us choose. */
  threads: number;
  /** base:* targets: the root of the checkout whose built packages compute them. */
  baseline?: string;
}

/** A case set up on a target: its inputs uploaded, ready to be stepped. */
export interface Prepared {
  /** One iteration, completed (an async backend's queue drained) before the promise resolves. */
  step(): Promise<void>;
  /** The output of the latest step, read back to the host (the layout of referenceOutput). */
  output(): Promise<Float32Array>;
  dispose(): void;
  /** How this framework's step differs from the case's plain description, printed under the table. */
  note?: string;
  /** needle targets: the backend the case runs on, whose stats() count the kernels per step. */
  backend?: Backend;
}

/** A framework on one backend, driven in-process (inside its worker, or by the smoke test). */
export interface Engine {
  readonly target: Target;
  init(options: EngineOptions): Promise<EngineInfo>;
  /** Throws NotAvailableError when this target cannot run the case (yet). */
  prepare(spec: CaseSpec, inputs: Float32Array[]): Promise<Prepared>;
  close?(): Promise<void> | void;
}

/** The target or case does not exist on this machine or in this framework (reported, not failed). */
export class NotAvailableError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'NotAvailableError';
  }
}
