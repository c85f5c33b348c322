export function median(xs: readonly number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

export interface Summary {
  /** Per-iteration times in ms over all samples. */
  medianMs: number;
  minMs: number;
  maxMs: number;
  /** Throughput (the case's unit) at the median, best (min time) and worst (max time) sample. */
  median: number;
  best: number;
  worst: number;
  samples: number;
}

/** Summarise per-iteration sample times (ms) of an iteration worth `work * scale` units. */
export function summarise(timesMs: readonly number[], work: number, scale: number): Summary {
  const medianMs = median(timesMs);
  const minMs = Math.min(...timesMs);
  const maxMs = Math.max(...timesMs);
  const rate = (ms: number) => (work * scale) / (ms / 1000);
  return { medianMs, minMs, maxMs, median: rate(medianMs), best: rate(minMs), worst: rate(maxMs), samples: timesMs.length };
}
