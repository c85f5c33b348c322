import { fail } from './errors';

/**
 * The whole state of a Generator as plain JSON-able values: the four xoshiro128** words (uint32)
 * and the cached second value of the last Box-Muller pair (null when none is cached).
 */
export interface GeneratorState {
  state: [number, number, number, number];
  spareNormal: number | null;
}

/**
 * Seeded host-side randomness (xoshiro128**, seeded by splitmix32), so one seed gives the same
 * initial weights, dropout masks and shuffles on every backend.
 */
export class Generator {
  private s0 = 0;
  private s1 = 0;
  private s2 = 0;
  private s3 = 0;
  private spareNormal: number | undefined;

  constructor(seed = 0) {
    this.seed(seed);
  }

  /** Reset the state from a 32-bit integer seed. */
  seed(seed: number): this {
    let x = seed >>> 0;
    const next = () => {
      x = (x + 0x9e3779b9) >>> 0;
      let z = x;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.s0 = next();
    this.s1 = next();
    this.s2 = next();
    this.s3 = next();
    this.spareNormal = undefined;
    return this;
  }

  /**
   * A snapshot of the state (a copy): `loadStateDict` of it makes this or any other generator
   * continue with exactly the numbers this one would draw next.
   */
  stateDict(): GeneratorState {
    // The XOR steps leave the words as signed int32s; the snapshot holds them as uint32.
    return { state: [this.s0 >>> 0, this.s1 >>> 0, this.s2 >>> 0, this.s3 >>> 0], spareNormal: this.spareNormal ?? null };
  }

  /** Restore a state from `stateDict()`, after checking it (a bad state leaves this one as it was). */
  loadStateDict(state: GeneratorState): this {
    validateGeneratorState(state, 'Generator.loadStateDict');
    [this.s0, this.s1, this.s2, this.s3] = state.state;
    this.spareNormal = state.spareNormal ?? undefined;
    return this;
  }

  /** Validate a state as `loadStateDict` does, without loading it. */
  checkStateDict(state: GeneratorState): void {
    validateGeneratorState(state, 'Generator.checkStateDict');
  }

  /** Next uniform 32-bit unsigned integer. */
  nextUint32(): number {
    const result = Math.imul(rotl(Math.imul(this.s1, 5), 7), 9) >>> 0;
    const t = this.s1 << 9;
    this.s2 ^= this.s0;
    this.s3 ^= this.s1;
    this.s1 ^= this.s2;
    this.s0 ^= this.s3;
    this.s2 ^= t;
    this.s3 = rotl(this.s3, 11);
    return result;
  }

  /** Uniform in [0, 1) with 24 bits, exactly representable in float32. */
  uniform(): number {
    return (this.nextUint32() >>> 8) / 16777216;
  }

  /** Standard normal (Box-Muller, pairs cached). */
  normal(): number {
    if (this.spareNormal !== undefined) {
      const v = this.spareNormal;
      this.spareNormal = undefined;
      return v;
    }
    let u = 0;
    while (u === 0) u = this.uniform();
    const v = this.uniform();
    const r = Math.sqrt(-2 * Math.log(u));
    this.spareNormal = r * Math.sin(2 * Math.PI * v);
    return r * Math.cos(2 * Math.PI * v);
  }

  /** Uniform integer in [low, high). */
  randint(low: number, high: number): number {
    return low + Math.floor(this.uniform() * (high - low));
  }

  /** A random permutation of 0..n-1 (Fisher-Yates). */
  permutation(n: number): number[] {
    const p = Array.from({ length: n }, (_, i) => i);
    for (let i = n - 1; i > 0; i--) {
      const j = Math.floor(this.uniform() * (i + 1));
      const t = p[i];
      p[i] = p[j];
      p[j] = t;
    }
    return p;
  }

  /** Fill a Float32Array with uniform values in [low, high). */
  fillUniform(out: Float32Array, low = 0, high = 1): Float32Array {
    for (let i = 0; i < out.length; i++) out[i] = low + (high - low) * this.uniform();
    return out;
  }

  /** Fill a Float32Array with normal values. */
  fillNormal(out: Float32Array, mean = 0, std = 1): Float32Array {
    for (let i = 0; i < out.length; i++) out[i] = mean + std * this.normal();
    return out;
  }
}

function validateGeneratorState(state: GeneratorState, op: string): void {
  if (typeof state !== 'object' || state === null) fail(op, `expected { state: [4 uint32], spareNormal: number | null }, got ${state === null ? 'null' : typeof state}`);
  const words: unknown = state.state;
  if (!Array.isArray(words) || words.length !== 4 || !words.every((w) => Number.isInteger(w) && w >= 0 && w <= 0xffffffff)) {
    fail(op, `state.state must be an array of 4 integers in [0, 2^32), got ${JSON.stringify(words)}`);
  }
  // xoshiro's all-zero state is a fixed point: it would draw 0 forever.
  if (words.every((w) => w === 0)) fail(op, 'state.state is all zeros, which no seed produces (the generator would only draw 0)');
  const spare: unknown = state.spareNormal;
  if (spare !== null && spare !== undefined && !(typeof spare === 'number' && Number.isFinite(spare))) {
    fail(op, `state.spareNormal must be a finite number or null, got ${JSON.stringify(spare)}`);
  }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}

let globalGenerator = new Generator(0);

/** The generator used when none is passed. */
export function defaultGenerator(): Generator {
  return globalGenerator;
}

/** Seed the global generator (like torch.manual_seed). */
export function manualSeed(seed: number): Generator {
  globalGenerator = new Generator(seed);
  return globalGenerator;
}
