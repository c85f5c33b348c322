import type { Backend } from '@needle/ndarray';
import type { CaseSpec } from '../cases';

/** Targets: one framework on one backend, each measured in its own process. */
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
export type Target = (typeof TARGETS)[number];

export function frameworkOf(target: Target): string {
  return target.split(':')[0];
}
export function backendOf(target: Target): string {
  return target.split(':')[1];
}
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
}

/** A case set up on a target: its inputs uploaded, ready to be stepped. */
export interface Prepared {
  /** One iteration, completed (an async backend's queue drained) before the promise resolves. */
  step(): Promise<void>;
  /** The output of the latest step, read back to the host (the layout of referenceOutput). */
  output(): Promise<Float32Array>;
  dispose(): void;
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
