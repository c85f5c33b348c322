/**
 * When the WASM backend splits a kernel between threads: estimates of each kernel's one-thread time.
 *
 * Splitting costs a hand-over (about a microsecond while the workers poll, ~15 us once they sleep),
 * and the memory-bound kernels share one memory bus, so a kernel is split only when its one-thread
 * time is estimated at SPLIT_NS or more. The per-unit figures are one-thread times measured on the
 * project's 2-core Zen 4 machine (NOTES.md, section 17); only their order of magnitude matters.
 */
import type { BinaryOp, ReduceOp, UnaryOp } from '@needle/ndarray';
import { isTranscendental } from './codes';

export const SPLIT_NS = 20_000;

/** Sums of rows longer than this are float64 sums of chunks this long, added in order. */
export const SUM_CHUNK = 1 << 16;

/** Nanoseconds per unit of work on one thread. */
export const NS_PER = {
  /** A multiply-add of matmul (~40 GFLOP/s). */
  madd: 0.025,
  /** An element of matmul's operands, packed once per thread (narrow products are packing-bound). */
  pack: 0.3,
  /** An element of a contiguous binary/unary/where/fill/copy, or of one step of a program. */
  ewise: 0.15,
  /** exp/log/tanh. */
  transcendental: 1.8,
  /** pow runs element by element through libm. */
  pow: 30,
  /** An element gathered or scattered through a strided view. */
  strided: 1,
  /** An element of a sum/max/min; arg reductions cost about four times as much. */
  reduce: 0.25,
  /** Each output element of a reduction (the per-row overhead of short rows). */
  reduceRow: 5,
} as const;

/** Estimated one-thread nanoseconds of each kernel. */
export const costNs = {
  binary: (op: BinaryOp, size: number) => size * (op === 'pow' ? NS_PER.pow : NS_PER.ewise),
  unary: (op: UnaryOp, size: number) => size * (isTranscendental(op) ? NS_PER.transcendental : NS_PER.ewise),
  where: (size: number) => size * NS_PER.ewise,
  fill: (size: number) => size * NS_PER.ewise,
  /** A copy of `total` elements through a view, `contiguous` when it is one run. */
  strided: (total: number, contiguous: boolean) => total * (contiguous ? NS_PER.ewise : NS_PER.strided),
  /** Every step is a pass of one kernel over the element, every strided operand a gather or scatter. */
  program: (size: number, steps: number, stridedOperands: number) => size * (steps * NS_PER.ewise + stridedOperands * NS_PER.strided),
  reduce: (op: ReduceOp, outSize: number, reduceSize: number) =>
    outSize * reduceSize * (op === 'argmax' || op === 'argmin' ? 4 * NS_PER.reduce : NS_PER.reduce) + outSize * NS_PER.reduceRow,
  matmul: (batch: number, m: number, k: number, n: number) => batch * (m * n * k * NS_PER.madd + (m * k + k * n) * NS_PER.pack),
};

/** Threads (of `threads`) to run a kernel estimated at `ns` one-thread nanoseconds on. */
export function threadsFor(threads: number, ns: number): number {
  return ns >= SPLIT_NS ? threads : 1;
}
