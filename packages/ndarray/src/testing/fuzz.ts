/**
 * A seeded fuzzer of invalid calls. Each case describes one public entry point as argument slots:
 * how to make a valid value for the slot and which kinds of bad value are invalid there. Every round
 * corrupts one slot (sometimes two) with a bad value drawn from a fixed pool, makes the call, and
 * classifies what happened:
 * - `clear`: a NeedleError (the only good outcome);
 * - `raw`: any other exception (TypeError, RangeError, an engine message): a missing check;
 * - `silent`: the call returned a result for an invalid argument;
 * - `leaked`: the call threw but left live buffers behind (new ones, or its arguments' buffers held
 *   by views it made).
 * Used by the ndarray suite on every backend and by the autograd, nn, optim and data test suites.
 */
import { NeedleError } from '../errors';
import { OWNED_ARRAYS } from '../memory';
import { Generator } from '../random';

/** The kinds of bad value the pool holds. */
export const BAD_KINDS = [
  'string', 'numericString', 'null', 'undefined', 'NaN', 'Infinity', 'negative', 'fraction', 'huge',
  'boolean', 'object', 'function', 'emptyArray', 'nestedArray', 'symbol', 'bigint',
  'disposed', 'foreign', 'mismatched', 'rank3',
] as const;
export type BadKind = (typeof BAD_KINDS)[number];

/** Common sets of invalid kinds for typical slots. */
export const INVALID = {
  /** Anything but a number. */
  notNumber: ['string', 'numericString', 'null', 'boolean', 'object', 'function', 'emptyArray', 'nestedArray', 'symbol', 'bigint'],
  /** A positive integer slot (a size, a count). */
  positiveInt: ['string', 'numericString', 'null', 'NaN', 'Infinity', 'negative', 'fraction', 'boolean', 'object', 'function', 'emptyArray', 'symbol'],
  /** A non-negative integer slot. */
  int: ['string', 'numericString', 'null', 'NaN', 'Infinity', 'negative', 'fraction', 'boolean', 'object', 'function', 'emptyArray', 'symbol'],
  /** A finite number slot. */
  finite: ['string', 'numericString', 'null', 'NaN', 'Infinity', 'boolean', 'object', 'function', 'emptyArray', 'symbol', 'bigint'],
  /** An array operand of a given shape (any other value, a disposed one, one from another backend or of an incompatible shape). */
  array: ['string', 'numericString', 'null', 'undefined', 'boolean', 'object', 'function', 'emptyArray', 'nestedArray', 'symbol', 'disposed', 'foreign', 'mismatched'],
  /** An array argument that stands alone (no other array it must match): any other value or a disposed one. */
  lone: ['string', 'numericString', 'null', 'undefined', 'boolean', 'object', 'function', 'emptyArray', 'nestedArray', 'symbol', 'disposed'],
  /** The receiver of a method: a disposed array. */
  receiver: ['disposed'],
  /** An optional flag: anything but true, false or undefined. */
  flag: ['string', 'numericString', 'null', 'NaN', 'object', 'function', 'emptyArray', 'symbol'],
  /** A shape: non-arrays, and arrays holding non-integers. */
  shape: ['string', 'numericString', 'null', 'NaN', 'boolean', 'object', 'function', 'nestedArray', 'symbol'],
  /** An options object. */
  options: ['string', 'numericString', 'null', 'NaN', 'boolean', 'function', 'emptyArray', 'symbol'],
} satisfies Record<string, readonly BadKind[]>;

/** What a case can make: fresh arrays of the API's kind (NDArray or Tensor) on the fuzzed backend. */
export interface FuzzContext {
  /** A live array of `shape` holding small values. */
  make(shape: readonly number[]): unknown;
  /** A disposed array of `shape`. */
  disposed(shape: readonly number[]): unknown;
  /** A live array of `shape` on a second backend. */
  foreign(shape: readonly number[]): unknown;
}

export interface FuzzSlot {
  /** A valid value (made fresh for each call). */
  valid: (ctx: FuzzContext) => unknown;
  /** The bad kinds that are invalid here. */
  invalid: readonly BadKind[];
  /** Shape used for the disposed, foreign and mismatched kinds (default [2, 3]). */
  shape?: readonly number[];
}

export interface FuzzCase {
  /** The entry point, as reports name it (e.g. 'NDArray.reshape'). */
  name: string;
  slots: readonly FuzzSlot[];
  /** Make the call with one value per slot. May return a promise. */
  call: (...args: never[]) => unknown;
}

export interface FuzzFinding {
  outcome: 'raw' | 'silent' | 'leaked';
  call: string;
  detail: string;
}

export interface FuzzReport {
  calls: number;
  clear: number;
  raw: number;
  silent: number;
  leaked: number;
  /** The first findings of each bad outcome (a few per case), for the failure message. */
  findings: FuzzFinding[];
  /** Milliseconds spent per case, to find a case that makes the fuzz slow. */
  msByCase: Map<string, number>;
}

export interface FuzzOptions {
  cases: readonly FuzzCase[];
  ctx: FuzzContext;
  /** Live buffer count of the fuzzed backend (and any other the calls may allocate on). */
  liveBuffers: () => number;
  /** Rounds to run (default 2000). */
  rounds?: number;
  seed?: number;
}

function badValue(kind: BadKind, slot: FuzzSlot, ctx: FuzzContext): unknown {
  const shape = slot.shape ?? [2, 3];
  switch (kind) {
    case 'string': return 'x';
    case 'numericString': return '1';
    case 'null': return null;
    case 'undefined': return undefined;
    case 'NaN': return NaN;
    case 'Infinity': return Infinity;
    case 'negative': return -3;
    case 'fraction': return 1.5;
    case 'huge': return 1e12;
    case 'boolean': return true;
    case 'object': return { value: 1 };
    case 'function': return () => 0;
    case 'emptyArray': return [];
    case 'nestedArray': return [[1, 2], [3]];
    case 'symbol': return Symbol('bad');
    case 'bigint': return 3n;
    case 'disposed': return ctx.disposed(shape);
    case 'foreign': return ctx.foreign(shape);
    // No axis of 7 or 1 appears in the valid shapes the cases use, so [7] never broadcasts with them.
    case 'mismatched': return ctx.make([7]);
    case 'rank3': return ctx.make([2, 2, 2]);
    default: return kind satisfies never;
  }
}

function show(v: unknown): string {
  if (typeof v === 'symbol') return 'Symbol(bad)';
  if (typeof v === 'bigint') return `${v}n`;
  if (typeof v === 'function') return '() => 0';
  if (v === undefined) return 'undefined';
  if (typeof v === 'number') return String(v);
  if (v !== null && typeof v === 'object' && 'shape' in v) {
    const dead = (v as { disposed?: boolean }).disposed ? 'disposed ' : '';
    return `${dead}${(v as object).constructor.name}[${(v as { shape: number[] }).shape.join(',')}]`;
  }
  if (Array.isArray(v)) return `[${v.map(show).join(',')}]`;
  if (v !== null && typeof v === 'object') {
    // Shallow on purpose: an options object may hold a backend, whose heap must not be printed.
    if ('alloc' in v && 'name' in v) return `Backend(${String((v as { name: unknown }).name)})`;
    const proto = Object.getPrototypeOf(v);
    if (proto !== Object.prototype && proto !== null) return (v as object).constructor?.name ?? 'object';
    return `{${Object.entries(v).map(([k, x]) => `${k}: ${x !== null && typeof x === 'object' && !Array.isArray(x) ? '{...}' : show(x)}`).join(', ')}}`;
  }
  return typeof v === 'string' ? JSON.stringify(v) : String(v);
}

/** Dispose whatever a call returned or was given: arrays, tensors, modules' arrays, nested lists. */
export function disposeAll(v: unknown, seen = new Set<unknown>()): void {
  if (v === null || typeof v !== 'object' || seen.has(v)) return;
  seen.add(v);
  if (Array.isArray(v)) {
    v.forEach((x) => disposeAll(x, seen));
    return;
  }
  const d = v as { disposed?: boolean; dispose?: () => void };
  if (typeof d.dispose === 'function' && (OWNED_ARRAYS in v || 'shape' in v)) {
    if (!d.disposed) d.dispose();
    return;
  }
  if (typeof d.dispose === 'function') {
    try {
      d.dispose();
    } catch {
      // A module or loader may refuse a second dispose; it holds nothing then.
    }
  }
}

/** Run the schedule and classify every outcome. */
export async function fuzzInvalidCalls(options: FuzzOptions): Promise<FuzzReport> {
  const { cases, ctx, liveBuffers } = options;
  const rounds = options.rounds ?? 2000;
  // The library's own seeded generator: the fuzz schedule is the same on every run and backend.
  const gen = new Generator(options.seed ?? 12);
  const random = (): number => gen.uniform();
  const pick = <T>(xs: readonly T[]): T => xs[gen.randint(0, xs.length)];
  const report: FuzzReport = { calls: 0, clear: 0, raw: 0, silent: 0, leaked: 0, findings: [], msByCase: new Map() };
  const perCase = new Map<string, number>();
  const note = (finding: FuzzFinding, name: string) => {
    const n = perCase.get(name) ?? 0;
    if (n < 3) report.findings.push(finding);
    perCase.set(name, n + 1);
  };
  const corruptible = cases.filter((c) => c.slots.some((s) => s.invalid.length > 0));
  for (let round = 0; round < rounds; round++) {
    const c = pick(corruptible);
    const candidates = c.slots.map((s, i) => i).filter((i) => c.slots[i].invalid.length > 0);
    const first = pick(candidates);
    const bad = new Map<number, BadKind>([[first, pick(c.slots[first].invalid)]]);
    // One round in five corrupts a second slot too (errors must not depend on argument order).
    if (candidates.length > 1 && random() < 0.2) {
      const j = pick(candidates);
      if (!bad.has(j)) bad.set(j, pick(c.slots[j].invalid));
    }
    const started = performance.now();
    const base = liveBuffers();
    const args = c.slots.map((s, i) => (bad.has(i) ? badValue(bad.get(i)!, s, ctx) : s.valid(ctx)));
    const call = `${c.name}(${args.map(show).join(', ')})`;
    const before = liveBuffers();
    let result: unknown;
    let thrown: unknown;
    let threw = false;
    try {
      result = await c.call(...(args as never[]));
    } catch (error) {
      threw = true;
      thrown = error;
    }
    report.calls++;
    if (threw) {
      const after = liveBuffers();
      if (thrown instanceof NeedleError) report.clear++;
      else {
        report.raw++;
        note({ outcome: 'raw', call, detail: thrown instanceof Error ? `${thrown.name}: ${thrown.message}` : `threw ${String(thrown)}` }, c.name);
      }
      if (after !== before) {
        report.leaked++;
        note({ outcome: 'leaked', call, detail: `${after - before} live buffers left behind` }, c.name);
      }
    } else {
      report.silent++;
      note({ outcome: 'silent', call, detail: `returned ${show(result)}` }, c.name);
      disposeAll(result);
    }
    disposeAll(args);
    // Views a failed call made of its arguments (never disposed) keep their buffers alive past them.
    if (threw && liveBuffers() !== base) {
      report.leaked++;
      note({ outcome: 'leaked', call, detail: `${liveBuffers() - base} buffers still held after its arguments were disposed` }, c.name);
    }
    report.msByCase.set(c.name, (report.msByCase.get(c.name) ?? 0) + performance.now() - started);
  }
  return report;
}

/** One line of counts, as the suites print it. */
export function formatFuzzReport(name: string, r: FuzzReport): string {
  const slowest = [...r.msByCase].sort((x, y) => y[1] - x[1]).slice(0, 3).map(([n, ms]) => `${n} ${ms.toFixed(0)} ms`).join(', ');
  return `fuzz ${name}: ${r.calls} invalid calls -> ${r.clear} clear NeedleErrors, ${r.raw} raw JS errors, ${r.silent} silent results, ${r.leaked} calls leaking buffers (slowest: ${slowest})`;
}

/** The findings as a readable list (for an assertion message). */
export function formatFindings(r: FuzzReport): string {
  return r.findings.map((f) => `  [${f.outcome}] ${f.call}: ${f.detail}`).join('\n');
}
