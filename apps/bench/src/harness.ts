/**
 * The harness: starts one measuring process per target, checks each target's result against the
 * needle-cpu reference, then times the checked targets in alternating rounds (A, B, C, A, B, C...)
 * so that drift of a shared machine falls on every target alike.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { compareOutputs, makeInputs, metricOf, toleranceOf, type CaseSpec } from './cases';
import { isNeedle, parseTarget, type EngineInfo, type Target } from './engines/types';
import { machineFacts, type MachineFacts } from './machine';
import type { Channel, KernelCount, Reply } from './protocol';
import { referenceFor } from './reference';
import { summarise, type Summary } from './stats';

export interface HarnessOptions {
  cases: CaseSpec[];
  targets: Target[];
  /** How to reach a target's process. */
  open: (target: Target) => Channel;
  /** Threads of every target without an `@N` of its own. */
  threads: number;
  /** The checkout whose built packages compute the base:* targets. */
  baseline?: string;
  rounds: number;
  /** Most samples per target per round. */
  samplesPerRound: number;
  /** Aim of one sample's duration (it batches iterations of fast cases). */
  sampleMs: number;
  /** Untimed warm-up per target and case. */
  warmupMs: number;
  /** Budget of one round per target; slow targets take fewer samples. */
  roundMs: number;
  /** V8 flags `open` gives the Node workers, recorded with the machine facts. */
  nodeFlags?: string[];
  log?: (line: string) => void;
}

export type EntryStatus = 'ok' | 'not available' | 'mismatch' | 'error';

export interface Entry {
  target: Target;
  status: EntryStatus;
  reason?: string;
  threads?: number;
  maxAbsErr?: number;
  summary?: Summary;
  /** needle targets: kernels one warm step launches. */
  kernels?: KernelCount;
  /** How this target's step differs from the case's description (e.g. a framework's workaround). */
  note?: string;
}

export interface Ratio {
  needle: Target;
  competitor: Target;
  /** needle's median throughput / the competitor's: above 1, needle is faster. */
  ratio: number;
}

export interface CaseResult {
  spec: CaseSpec;
  unit: string;
  entries: Entry[];
  ratios: Ratio[];
  /** What the outputs were checked against. */
  reference?: string;
}

export interface TargetStatus {
  target: Target;
  status: 'ok' | 'not available' | 'error';
  info?: EngineInfo;
  reason?: string;
}

export interface BenchResult {
  date: string;
  machine: MachineFacts;
  settings: Pick<HarnessOptions, 'threads' | 'rounds' | 'samplesPerRound' | 'sampleMs' | 'warmupMs' | 'roundMs'>;
  targets: TargetStatus[];
  cases: CaseResult[];
}

export async function runHarness(options: HarnessOptions): Promise<BenchResult> {
  const log = options.log ?? (() => {});
  const machine = machineFacts();
  if (options.nodeFlags?.length) machine.nodeFlags = [...options.nodeFlags];
  const date = new Date().toISOString();
  const channels = new Map<Target, Channel>();
  const targets: TargetStatus[] = [];
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'needle-bench-'));
  try {
    for (const target of options.targets) {
      let reply: Reply;
      let channel: Channel | undefined;
      try {
        channel = options.open(target);
        reply = await channel.request({ op: 'init', target, threads: threadsOf(target, options.threads), baseline: options.baseline });
      } catch (e) {
        reply = { ok: false, unavailable: true, reason: (e as Error).message };
      }
      if (reply.ok) {
        channels.set(target, channel!);
        targets.push({ target, status: 'ok', info: reply.info });
        log(`${target}: ready (${reply.info?.threads} thread(s); ${reply.info?.details})`);
      } else {
        await channel?.close().catch(() => {});
        targets.push({ target, status: reply.unavailable ? 'not available' : 'error', reason: reply.reason });
        log(`${target}: ${reply.unavailable ? 'not available' : 'failed to start'}: ${reply.reason}`);
      }
    }

    const cases: CaseResult[] = [];
    for (const spec of options.cases) {
      cases.push(await runCase(spec, options, channels, targets, tmp, log));
    }
    machine.loadEnd = os.loadavg()[0];
    const { threads, rounds, samplesPerRound, sampleMs, warmupMs, roundMs } = options;
    return { date, machine, settings: { threads, rounds, samplesPerRound, sampleMs, warmupMs, roundMs }, targets, cases };
  } finally {
    for (const c of channels.values()) await c.close().catch(() => {});
    rmSync(tmp, { recursive: true, force: true });
  }
}

async function runCase(
  spec: CaseSpec,
  options: HarnessOptions,
  channels: Map<Target, Channel>,
  targets: TargetStatus[],
  tmp: string,
  log: (line: string) => void,
): Promise<CaseResult> {
  const metric = metricOf(spec);
  const entries = new Map<Target, Entry>();
  for (const t of targets) {
    if (t.status !== 'ok') entries.set(t.target, { target: t.target, status: t.status, reason: t.reason });
    else entries.set(t.target, { target: t.target, status: 'ok', threads: t.info?.threads });
  }
  const live = targets.filter((t) => t.status === 'ok').map((t) => t.target);
  const inputs = makeInputs(spec);
  const inputFiles = inputs.map((a, i) => {
    const f = path.join(tmp, `${spec.id}.in${i}.f32`);
    writeFileSync(f, a);
    return f;
  });
  const ref = await referenceFor(spec, inputs, inputFiles, path.join(tmp, `${spec.id}.reference.f32`));
  if (!ref) {
    for (const t of live) {
      entries.set(t, { target: t, status: 'not available', reason: `no ${spec.kind} layers in needle yet, so no reference and nothing to compare` });
    }
    log(`${spec.id}: not available (needle has no ${spec.kind} yet)`);
    return finish(spec, metric.unit, options.targets, entries);
  }
  const reference = ref.output;
  log(`${spec.id}: reference from ${ref.source}`);
  const tol = toleranceOf(spec, inputs);

  // Check before timing: a target whose output differs from the reference is never timed.
  const plan: Array<{ target: Target; channel: Channel; batch: number; samples: number; times: number[] }> = [];
  for (const target of live) {
    const channel = channels.get(target)!;
    const outputFile = path.join(tmp, `${spec.id}.${target.replace(/[:@]/g, '-')}.out.f32`);
    const prep = await channel.request({ op: 'prepare', spec, inputFiles, outputFile });
    if (!prep.ok) {
      entries.set(target, { target, status: prep.unavailable ? 'not available' : 'error', reason: prep.reason });
      log(`${spec.id} ${target}: ${prep.unavailable ? 'not available' : 'error'}: ${prep.reason}`);
      continue;
    }
    const buf = readFileSync(outputFile);
    rmSync(outputFile, { force: true });
    const out = new Float32Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength));
    const check = compareOutputs(out, reference, tol);
    if (!check.ok) {
      entries.set(target, { target, status: 'mismatch', reason: check.detail, maxAbsErr: check.maxAbsErr });
      log(`${spec.id} ${target}: MISMATCH with the needle-cpu reference: ${check.detail}`);
      await channel.request({ op: 'release' });
      continue;
    }
    entries.get(target)!.maxAbsErr = check.maxAbsErr;
    if (prep.note) entries.get(target)!.note = prep.note;
    const cal = await channel.request({ op: 'calibrate', warmupMs: options.warmupMs, sampleMs: options.sampleMs });
    if (!cal.ok) {
      entries.set(target, { target, status: 'error', reason: cal.reason });
      continue;
    }
    if (cal.kernels) {
      entries.get(target)!.kernels = cal.kernels;
      log(`${spec.id} ${target}: ${formatKernels(cal.kernels)} per step`);
    }
    const sampleDur = cal.perIterMs! * cal.batch!;
    const samples = Math.max(1, Math.min(options.samplesPerRound, Math.floor(options.roundMs / sampleDur)));
    plan.push({ target, channel, batch: cal.batch!, samples, times: [] });
  }

  for (let r = 0; r < options.rounds; r++) {
    for (const p of plan) {
      if (entries.get(p.target)!.status !== 'ok') continue;
      const reply = await p.channel.request({ op: 'round', samples: p.samples, batch: p.batch });
      if (!reply.ok) entries.set(p.target, { target: p.target, status: 'error', reason: reply.reason });
      else p.times.push(...reply.times!);
    }
  }
  for (const p of plan) {
    await p.channel.request({ op: 'release' });
    const e = entries.get(p.target)!;
    if (e.status === 'ok') {
      e.summary = summarise(p.times, metric.work, metric.scale);
      log(`${spec.id} ${p.target}: ${e.summary.median.toPrecision(4)} ${metric.unit} (median of ${e.summary.samples})`);
    }
  }
  for (const f of inputFiles) rmSync(f, { force: true });
  return { ...finish(spec, metric.unit, options.targets, entries), reference: ref.source };
}

/** The threads a target asks for: its own `@N`, else the run's --threads. */
export function threadsOf(target: Target, threads: number): number {
  return parseTarget(target).threads ?? threads;
}

/** '64 kernels (ewise 16, compact 14, ...)', families by count. */
export function formatKernels(k: KernelCount): string {
  const parts = Object.entries(k.byFamily).sort((a, b) => b[1] - a[1]).map(([f, n]) => `${f} ${n}`);
  return `${k.total} kernels (${parts.join(', ')})${k.wrapped ? ', counted by wrapping its kernel methods (no stats() in that build)' : ''}`;
}

function finish(spec: CaseSpec, unit: string, order: Target[], entries: Map<Target, Entry>): CaseResult {
  const list = order.map((t) => entries.get(t)!).filter(Boolean);
  const ratios: Ratio[] = [];
  for (const n of list) {
    if (!isNeedle(n.target) || !n.summary) continue;
    for (const c of list) {
      if (isNeedle(c.target) || !c.summary) continue;
      ratios.push({ needle: n.target, competitor: c.target, ratio: n.summary.median / c.summary.median });
    }
  }
  return { spec, unit, entries: list, ratios };
}
