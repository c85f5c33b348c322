/** Printing a BenchResult: a plain-text table for the terminal, Markdown for BENCHMARKS.md. */
import { formatKernels, type BenchResult, type CaseResult, type Entry } from './harness';
import { isNeedle } from './engines/types';

function num(x: number | undefined): string {
  if (x === undefined || !Number.isFinite(x)) return '';
  if (x >= 100) return x.toFixed(0);
  if (x >= 10) return x.toFixed(1);
  if (x >= 1) return x.toFixed(2);
  return x.toPrecision(2);
}

function ratioCell(c: CaseResult, e: Entry): string {
  if (isNeedle(e.target)) return '';
  return c.ratios
    .filter((r) => r.competitor === e.target)
    .map((r) => `${r.needle.split(':')[1]} ${r.ratio >= 10 ? r.ratio.toFixed(0) : r.ratio.toPrecision(2)}x`)
    .join(', ');
}

const HEADER = ['case', 'target', 'threads', 'median', 'min', 'max', 'unit', 'kernels/step', 'check', 'needle ÷ this'];

function rows(result: BenchResult): string[][] {
  const out: string[][] = [];
  for (const c of result.cases) {
    for (const e of c.entries) {
      const s = e.summary;
      const status = e.status === 'ok' ? (e.maxAbsErr !== undefined ? `ok (err ${e.maxAbsErr.toExponential(0)})` : 'ok') : e.status;
      out.push([
        c.spec.id,
        e.target,
        e.threads !== undefined ? String(e.threads) : '',
        s ? num(s.median) : '',
        // min/max of throughput: min comes from the slowest sample, max from the fastest.
        s ? num(s.worst) : '',
        s ? num(s.best) : '',
        s ? c.unit : '',
        e.kernels ? String(e.kernels.total) : '',
        status,
        ratioCell(c, e),
      ]);
    }
  }
  return out;
}

export function formatTable(result: BenchResult): string {
  const all = [HEADER, ...rows(result)];
  const widths = HEADER.map((_, i) => Math.max(...all.map((r) => r[i].length)));
  const line = (r: string[]) => r.map((cell, i) => ((i >= 2 && i <= 5) || i === 7 ? cell.padStart(widths[i]) : cell.padEnd(widths[i]))).join('  ').trimEnd();
  const lines = [line(HEADER), widths.map((w) => '-'.repeat(w)).join('  ')];
  let prev = '';
  for (const r of all.slice(1)) {
    if (prev && r[0] !== prev) lines.push('');
    prev = r[0];
    lines.push(line(r));
  }
  return [...lines, '', ...notes(result)].join('\n');
}

export function formatMarkdown(result: BenchResult): string {
  const esc = (s: string) => s.replace(/\|/g, '\\|');
  const lines = [`| ${HEADER.join(' | ')} |`, `| ${HEADER.map((_, i) => ((i >= 2 && i <= 5) || i === 7 ? '---:' : '---')).join(' | ')} |`];
  for (const r of rows(result)) lines.push(`| ${r.map(esc).join(' | ')} |`);
  return [...lines, '', ...notes(result).map((n) => `- ${n}`)].join('\n');
}

function notes(result: BenchResult): string[] {
  const m = result.machine;
  const out = [
    `machine: ${m.cpu}, ${m.cores} cores, ${m.memoryGiB} GiB, ${m.platform}, node ${m.node}${m.nodeFlags?.length ? ` (workers: ${m.nodeFlags.join(' ')})` : ''}; load average ${m.loadStart.toFixed(2)} at start, ${m.loadEnd?.toFixed(2) ?? '?'} at end`,
    `settings: ${result.settings.rounds} alternating rounds, up to ${result.settings.samplesPerRound} samples/round of ~${result.settings.sampleMs} ms, ${result.settings.warmupMs} ms warm-up; threads requested ${result.settings.threads}`,
  ];
  for (const t of result.targets) {
    out.push(t.status === 'ok' ? `${t.target}: ${t.info?.threads} thread(s), ${t.info?.details}` : `${t.target}: ${t.status} (${t.reason})`);
  }
  const reasons = new Map<string, string>();
  for (const c of result.cases) {
    for (const e of c.entries) {
      if (e.status !== 'ok' && e.reason && result.targets.find((t) => t.target === e.target)?.status === 'ok') {
        reasons.set(`${c.spec.id} ${e.target}`, `${e.status}: ${e.reason}`);
      }
    }
  }
  for (const [k, v] of reasons) out.push(`${k}: ${v}`);
  for (const c of result.cases) if (c.reference) out.push(`${c.spec.id}: checked against ${c.reference}`);
  for (const c of result.cases) for (const e of c.entries) if (e.note) out.push(`${c.spec.id} ${e.target}: ${e.note}`);
  for (const c of result.cases) {
    for (const e of c.entries) if (e.kernels) out.push(`${c.spec.id} ${e.target}: ${formatKernels(e.kernels)} per step after warm-up`);
  }
  return out;
}
