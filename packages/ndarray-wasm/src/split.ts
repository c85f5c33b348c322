/**
 * When the WASM backend splits a kernel between threads: estimates of each kernel's one-thread time.
 *
 * Splitting costs a hand-over (HANDOVER_NS), and the memory-bound kernels share one memory bus, so
 * a kernel is split only when its one-thread time is estimated at SPLIT_NS or more: on two threads
 * that saves at least SPLIT_NS / 2 - HANDOVER_NS = MIN_SAVED_NS. Matmul parts repeat the packing of one
 * operand, which matmulPlan counts. The per-unit figures are one-thread times measured on the
 * project's 2-core Zen 4 machine (NOTES.md, sections 17 and 20); only their order of magnitude matters.
 */
import type { BinaryOp, ReduceOp, UnaryOp } from '@needle/ndarray';
import { isTranscendental } from './codes';
import { MAX_PARTS } from './threads';

/**
 * What a split launch costs beyond its parts, with the workers polling: publishing, the claims, the
 * caller's wait for the last part, and the second core fetching operands the first one just wrote
 * (a sleeping worker costs more, but then the caller takes its part back: src/threads.ts). On a
 * quiet machine (NOTES.md section 17's profile) even the MLP's 80 us products, 20-40 us of work per
 * thread when split, came out slower on two threads.
 */
export const HANDOVER_NS = 20_000;

/** The least a split must save (estimated) to be worth the risk of a late worker. */
export const MIN_SAVED_NS = 10_000;

/** Kernels estimated at less than this on one thread run on the calling thread alone. */
export const SPLIT_NS = 60_000;

/**
 * A split kernel is cut into parts of about this estimated one-thread time, which the threads
 * claim one after another (src/threads.ts), so a worker that arrives late, or loses its core for a
 * while, runs fewer parts instead of the caller waiting for a fixed share (NOTES.md section 30).
 */
export const PART_NS = 100_000;

/**
 * Where every part repeats some work (a matmul part packs all of one operand), parts are kept at
 * least this many times that work: on a quiet machine the MLP's big products ran 2-5% slower in
 * 6-8 parts than in one per thread (the repeated packing, and each part's pass over the operand it
 * repeats), so they stay at one per thread (NOTES.md section 30).
 */
export const PART_PER_REPEAT = 24;

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
  /** An element gathered or scattered through a strided view, one element per run. */
  strided: 1,
  /**
   * Each row a compiled program reads or writes in place (a row operand: its start, and a fresh
   * cache line where rows are short: col2im's adds over rows of 16, 2 ns an element; NOTES.md 25).
   */
  row: 4,
  /**
   * An element of a sum/max/min; arg reductions cost about four times as much, except over rows
   * of 4 (pooling windows: four rows at a time, arg ops as cheap, no per-row cost; NOTES.md 25).
   */
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
  /**
   * A copy of `total` elements through a view whose innermost contiguous runs are `run` elements
   * long (`total` when it is one run): a gather costs about NS_PER.strided per run (1 ns an element
   * for transposes, 0.5 for im2col's runs of 3, 0.12 for runs of 16, measured: NOTES.md 25).
   */
  strided: (total: number, run: number) => total * (NS_PER.ewise + (run >= total ? 0 : (NS_PER.strided - NS_PER.ewise) / run)),
  /** Every step is a pass of one kernel over the element, every strided operand a gather or scatter. */
  program: (size: number, steps: number, stridedOperands: number) => size * (steps * NS_PER.ewise + stridedOperands * NS_PER.strided),
  reduce: (op: ReduceOp, outSize: number, reduceSize: number) =>
    reduceSize === 4 && op !== 'sum'
      ? outSize * 4 * NS_PER.reduce
      : outSize * reduceSize * (op === 'argmax' || op === 'argmin' ? 4 * NS_PER.reduce : NS_PER.reduce) + outSize * NS_PER.reduceRow,
  /** One thread: both operands packed once, the multiply-adds of whole micro-tiles. */
  matmul: (batch: number, m: number, k: number, n: number) => batch * matmulPartNs(m, k, n),
};

/**
 * The micro-tile of the matmul kernel (assembly MR x NR) and its deepest depth block (KC); a test
 * checks they agree.
 */
export const MATMUL_TILE = { MR: 5, NR: 8, KC: 256 } as const;
const { MR, NR, KC } = MATMUL_TILE;

/**
 * The depth blocks the matmul kernel runs a depth k in (assembly `product`): `count` blocks of
 * `size`, the last one shorter when `size` does not divide k.
 */
export function depthBlocks(k: number): { count: number; size: number } {
  const size = Math.ceil(k / Math.ceil(k / KC));
  return { count: Math.ceil(k / size), size };
}

/**
 * The most elements of the slabs a product split by depth keeps its blocks in (16 MiB): a deep
 * product with a large output splits by rows or columns instead.
 */
export const DEPTH_SLAB_LIMIT = 1 << 22;
const roundUp = (x: number, q: number) => Math.ceil(x / q) * q;

/** One batch element's `rows` x `cols` block of a matmul with depth k: its packing and multiply-adds. */
function matmulPartNs(rows: number, k: number, cols: number): number {
  return (rows * k + k * cols) * NS_PER.pack + roundUp(rows, MR) * roundUp(cols, NR) * k * NS_PER.madd;
}

/** Threads (of `threads`) to run a kernel estimated at `ns` one-thread nanoseconds on. */
export function threadsFor(threads: number, ns: number): number {
  return ns >= SPLIT_NS ? threads : 1;
}

/**
 * How many parts to cut a kernel split over `threads` threads into: one per `partNs` (default
 * PART_NS) of its estimated one-thread time `ns` (at least one per thread, at most MAX_PARTS), and,
 * where each part repeats `repeatNs` of work, few enough that a part is PART_PER_REPEAT times that.
 */
export function partsFor(threads: number, ns: number, partNs = PART_NS, repeatNs = 0): number {
  let parts = Math.floor(ns / partNs);
  if (repeatNs > 0) parts = Math.min(parts, Math.floor(ns / (PART_PER_REPEAT * repeatNs)));
  return Math.max(threads, Math.min(parts, MAX_PARTS));
}

export type MatmulSplit = 'batch' | 'columns' | 'rows' | 'depth';

/**
 * How to run a matmul on `threads` threads: by batch, else by columns (each part packs all of opA
 * and its columns of opB) or by rows (all of opB and its rows of opA), whichever part costs less,
 * counting the packing each part repeats and the work on padded micro-tiles; and only when the
 * split saves at least MIN_SAVED_NS over one thread after the hand-over. The MLP's 10-wide
 * products (~80 us on one thread, computed on 16 or 12 columns) do not: they stay on one thread
 * (NOTES.md section 21). `parts` (partsFor) counts the packing every part repeats.
 *
 * A single product at least 2 x `threads` depth blocks deep can also split by depth: each part
 * computes whole depth blocks (the kernel's own, depthBlocks) into slabs, and the slabs are then
 * added in block order, as the kernel adds each block to C: the same bits, with no operand packed
 * twice, at the price of the slabs' pass (a convolution's weight gradient, 32 x 144 over a depth
 * of 8192, whose every row or column part packs all of an 8192 x 144 operand; NOTES.md section 50).
 */
export function matmulPlan(threads: number, batch: number, m: number, k: number, n: number, partNs = PART_NS): { threads: number; by: MatmulSplit; parts: number } {
  const one = costNs.matmul(batch, m, k, n);
  const single = { threads: 1, by: 'rows' as MatmulSplit, parts: 1 };
  if (threads < 2 || one < SPLIT_NS) return single;
  // What every part repeats: packing all of opA (columns) or opB (rows); nothing by batch.
  const options: { by: MatmulSplit; ns: number; repeat: number }[] = [];
  if (batch >= threads * 2 || (batch >= threads && batch % threads === 0)) options.push({ by: 'batch', ns: Math.ceil(batch / threads) * matmulPartNs(m, k, n), repeat: 0 });
  options.push({ by: 'columns', ns: batch * matmulPartNs(m, k, Math.min(n, roundUp(Math.ceil(n / threads), NR))), repeat: batch * m * k * NS_PER.pack });
  options.push({ by: 'rows', ns: batch * matmulPartNs(Math.min(m, roundUp(Math.ceil(m / threads), MR)), k, n), repeat: batch * k * n * NS_PER.pack });
  const blocks = depthBlocks(k);
  if (batch === 1 && blocks.count >= 2 * threads && blocks.count * m * n <= DEPTH_SLAB_LIMIT) {
    // The blocks' stores into the slabs, then their sum in order (a read of each slab), counted
    // as if on one thread (it is split only where that pays).
    const slabs = blocks.count * m * n * 2 * NS_PER.ewise;
    options.push({ by: 'depth', ns: Math.ceil(blocks.count / threads) * matmulPartNs(m, blocks.size, n) + slabs, repeat: 0 });
  }
  const best = options.reduce((a, b) => (b.ns < a.ns ? b : a));
  if (one - (best.ns + HANDOVER_NS) < MIN_SAVED_NS) return single;
  return { threads, by: best.by, parts: partsFor(threads, one, partNs, best.repeat) };
}
