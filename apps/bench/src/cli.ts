/**
 * `pnpm bench [filters...] [flags]`: needle against TensorFlow.js, jax-js and PyTorch.
 * See README.md for the filters, flags and what each number means.
 */
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { allCases, CASE_KINDS, type CaseSpec } from './cases';
import { ForkChannel, InProcessChannel, PythonChannel, torchAvailable } from './channels';
import { BASELINE_TARGETS, parseTarget, TARGETS, type Target } from './engines/types';
import { runHarness, threadsOf } from './harness';
import type { Channel } from './protocol';
import { formatMarkdown, formatTable } from './report';

const USAGE = `usage: pnpm bench [case filters...] [--backend cpu,wasm,webgpu] [--framework needle,tfjs,jax,torch]
  case filters: ${CASE_KINDS.join(', ')} or a case id (e.g. matmul-512); none = all cases
  --backend LIST     only targets on these backends (repeatable or comma separated)
  --framework LIST   only these frameworks (needle is always kept unless --no-needle)
  --target LIST      exact targets, e.g. needle:cpu,tfjs:wasm; TARGET@N runs it with N threads
                     (needle:wasm,needle:wasm@2 measures both in one run)
  --baseline DIR     add base:cpu, base:wasm, base:webgpu: needle computed by the built packages of
                     the checkout at DIR (e.g. an older commit, see README.md)
  --torch-blas DIR   run torch:cpu with LD_LIBRARY_PATH=DIR (e.g. an unpacked OpenBLAS, see
                     scripts/prepare-openblas.sh); the notes say which BLAS torch loaded
  --large            add the 2048 matmul
  --threads N        threads for backends that take a count (torch; needle-wasm) (default 1)
  --relaxed-simd     give every Node worker V8's --experimental-wasm-relaxed-simd (on by default
                     in Node >= 22 and Chrome >= 114; Node 20 needs the flag): needle:wasm then
                     runs its relaxed-SIMD (FMA) kernels, and so does any other engine that uses it
  --rounds N         alternating rounds (default 5)
  --samples N        most samples per target per round (default 3)
  --sample-ms MS     aim of one sample (default 50); --warmup-ms MS (default 300); --round-ms MS (default 300)
  --quick            3 rounds, 1 sample, 100 ms warm-up: a fast look, noisier
  --in-process       run every target in this process (debugging; no isolation)
  --markdown         print the table as Markdown
  --out FILE         JSON output (default apps/bench/results/bench-<timestamp>.json)
  --list             list cases and targets, run nothing`;

export function parse(argv: string[]) {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      backend: { type: 'string', multiple: true },
      framework: { type: 'string', multiple: true },
      target: { type: 'string', multiple: true },
      baseline: { type: 'string' },
      'torch-blas': { type: 'string' },
      large: { type: 'boolean', default: false },
      threads: { type: 'string', default: '1' },
      'relaxed-simd': { type: 'boolean', default: false },
      rounds: { type: 'string' },
      samples: { type: 'string' },
      'sample-ms': { type: 'string' },
      'warmup-ms': { type: 'string' },
      'round-ms': { type: 'string' },
      quick: { type: 'boolean', default: false },
      'in-process': { type: 'boolean', default: false },
      markdown: { type: 'boolean', default: false },
      out: { type: 'string' },
      list: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  const list = (v: string[] | undefined) => (v ?? []).flatMap((s) => s.split(',')).map((s) => s.trim()).filter(Boolean);
  const int = (v: string | undefined, d: number, name: string) => {
    if (v === undefined) return d;
    const n = Number(v);
    if (!Number.isFinite(n) || n < 0) throw new Error(`--${name} expects a non-negative number, got '${v}'`);
    return n;
  };

  const every = allCases({ large: values.large });
  const cases: CaseSpec[] = positionals.length
    ? every.filter((c) => positionals.some((f) => f === c.kind || f === c.id || (f.endsWith('*') && c.id.startsWith(f.slice(0, -1)))))
    : every;
  if (positionals.length && cases.length === 0) throw new Error(`no case matches ${positionals.join(' ')} (cases: ${every.map((c) => c.id).join(', ')})`);

  const backends = list(values.backend);
  const frameworks = list(values.framework);
  const exact = list(values.target);
  for (const t of exact) parseTarget(t);
  const baseline = values.baseline === undefined ? undefined : path.resolve(values.baseline);
  if (baseline !== undefined && !existsSync(path.join(baseline, 'packages', 'ndarray'))) throw new Error(`--baseline ${baseline}: not a needle checkout (no packages/ndarray)`);
  if (baseline === undefined && exact.some((t) => parseTarget(t).framework === 'base')) throw new Error('base:* targets need --baseline DIR');
  // An empty value (a failed `$(sh prepare-openblas.sh)`) would resolve to the current folder and
  // quietly leave torch on the system BLAS: insist on the library itself.
  const torchBlas = values['torch-blas'] === undefined ? undefined : path.resolve(values['torch-blas']);
  if (torchBlas !== undefined && (!values['torch-blas'] || !existsSync(path.join(torchBlas, 'libblas.so.3')))) {
    throw new Error(`--torch-blas '${values['torch-blas']}': no libblas.so.3 in ${torchBlas} (apps/bench/scripts/prepare-openblas.sh prints a folder that has one)`);
  }
  const candidates: string[] = [...TARGETS, ...(baseline ? BASELINE_TARGETS : [])];
  const targets = exact.length
    ? exact
    : candidates.filter((t) => {
        const { framework, backend } = parseTarget(t);
        if (backends.length && !backends.includes(backend)) return false;
        if (frameworks.length && framework !== 'needle' && framework !== 'base' && !frameworks.includes(framework)) return false;
        return true;
      });
  const quick = values.quick;
  return {
    help: values.help,
    list: values.list,
    cases,
    targets: targets as Target[],
    threads: int(values.threads, 1, 'threads'),
    baseline,
    torchBlas,
    relaxedSimd: values['relaxed-simd'],
    rounds: int(values.rounds, quick ? 3 : 5, 'rounds'),
    samplesPerRound: int(values.samples, quick ? 1 : 3, 'samples'),
    sampleMs: int(values['sample-ms'], quick ? 30 : 50, 'sample-ms'),
    warmupMs: int(values['warmup-ms'], quick ? 100 : 300, 'warmup-ms'),
    roundMs: int(values['round-ms'], quick ? 100 : 300, 'round-ms'),
    inProcess: values['in-process'],
    markdown: values.markdown,
    out: values.out,
  };
}

/** The V8 flag that turns on WebAssembly relaxed SIMD in Node 20 (shipped by default from V8 11.4). */
export const RELAXED_SIMD_FLAG = '--experimental-wasm-relaxed-simd';

function openChannel(target: Target, inProcess: boolean, threads: number, torchBlas: string | undefined, relaxedSimd: boolean): Channel {
  if (parseTarget(target).framework === 'torch') {
    const probe = torchAvailable();
    if (!probe.ok) throw new Error(probe.reason);
    return new PythonChannel(undefined, { threads: threadsOf(target, threads), libraryPath: torchBlas });
  }
  if (inProcess) return new InProcessChannel();
  return new ForkChannel(undefined, relaxedSimd ? { execArgv: [...process.execArgv, RELAXED_SIMD_FLAG] } : {});
}

async function main(): Promise<void> {
  let args: ReturnType<typeof parse>;
  try {
    args = parse(process.argv.slice(2));
  } catch (e) {
    console.error(`${(e as Error).message}\n\n${USAGE}`);
    process.exit(2);
  }
  if (args.help) {
    console.log(USAGE);
    return;
  }
  if (args.list) {
    console.log(`cases:   ${args.cases.map((c) => c.id).join(', ')}\ntargets: ${args.targets.join(', ')}`);
    return;
  }
  console.error(`needle bench: ${args.cases.length} case(s) x ${args.targets.length} target(s)`);
  if (args.relaxedSimd && args.inProcess) {
    // In one process the flag must be set before any wasm module is compiled, i.e. now.
    (await import('node:v8')).setFlagsFromString(RELAXED_SIMD_FLAG);
  }
  const result = await runHarness({
    ...args,
    nodeFlags: args.relaxedSimd ? [RELAXED_SIMD_FLAG] : [],
    open: (t) => openChannel(t, args.inProcess, args.threads, args.torchBlas, args.relaxedSimd),
    log: (l) => console.error(`  ${l}`),
  });
  console.log(args.markdown ? formatMarkdown(result) : formatTable(result));
  const here = path.dirname(fileURLToPath(import.meta.url));
  const out = args.out ?? path.join(here, '..', 'results', `bench-${result.date.replace(/[:.]/g, '-')}.json`);
  mkdirSync(path.dirname(out), { recursive: true });
  writeFileSync(out, `${JSON.stringify(result, null, 2)}\n`);
  console.error(`wrote ${path.relative(process.cwd(), out)}`);
}

// Run only as the entry point, so tests can import parse().
if (process.argv[1] && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) {
  main().catch((e) => {
    console.error(e);
    process.exit(1);
  });
}
