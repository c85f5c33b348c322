/**
 * The messages between the harness (parent) and a measuring process (one per target). Node workers
 * get them over child_process IPC; the PyTorch worker gets the same objects as JSON lines on stdin.
 * Arrays travel through files (raw little-endian float32), which both Node and numpy read directly.
 */
import type { CaseSpec } from './cases';
import type { EngineInfo, Target } from './engines/types';

export type Request =
  /** `baseline`: the checkout whose build computes base:* targets. */
  | { op: 'init'; target: Target; threads: number; baseline?: string }
  /** Load the inputs, run one step, write its output; nothing is timed yet. */
  | { op: 'prepare'; spec: CaseSpec; inputFiles: string[]; outputFile: string }
  /** torch worker only: one step of a flagship-model case in float64, written like `prepare`'s output. */
  | { op: 'reference'; spec: CaseSpec; inputFiles: string[]; outputFile: string }
  /** Warm up, then say how many iterations make one sample of about `sampleMs`. */
  | { op: 'calibrate'; warmupMs: number; sampleMs: number }
  /** One round: `samples` samples of `batch` iterations each. */
  | { op: 'round'; samples: number; batch: number }
  | { op: 'release' }
  | { op: 'exit' };

export type Reply =
  | { ok: true; info?: EngineInfo; perIterMs?: number; batch?: number; times?: number[]; kernels?: KernelCount; note?: string }
  | { ok: false; unavailable: boolean; reason: string };

/** Kernels one step launched after warm-up (needle targets, from backend.stats()). */
export interface KernelCount {
  total: number;
  /** Launches per kernel family, families with none left out. */
  byFamily: Record<string, number>;
  /** Counted by wrapping the backend's kernel methods (a build without stats()), not by stats(). */
  wrapped?: boolean;
}

export interface Channel {
  request(req: Request): Promise<Reply>;
  close(): Promise<void>;
}
