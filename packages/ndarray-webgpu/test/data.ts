/** Deterministic uniform [0, 1) generator (mulberry32), so failures reproduce. */
export function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function randomArray(n: number, seed: number, lo = -2, hi = 2): Float32Array {
  const r = rng(seed);
  return Float32Array.from({ length: n }, () => lo + (hi - lo) * r());
}

/** Sprinkle special values (NaN, +-inf, +-0, ties) into an array, deterministically. */
export function withSpecials(a: Float32Array, seed: number, fraction = 0.1): Float32Array {
  const r = rng(seed);
  const specials = [NaN, Infinity, -Infinity, 0, -0, 1, -1, 2, 0.5];
  const out = a.slice();
  for (let i = 0; i < out.length; i++) if (r() < fraction) out[i] = specials[Math.floor(r() * specials.length)];
  return out;
}

