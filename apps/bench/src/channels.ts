/** Ways to reach a measuring process: a forked Node worker, the Python worker, or in-process. */
import { fork, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { Handler } from './handler';
import type { Channel, Reply, Request } from './protocol';

/** One request in flight at a time; the answer to request i is the i-th reply. */
abstract class ProcessChannel implements Channel {
  private waiting: Array<(r: Reply) => void> = [];
  private exitReason: string | undefined;
  protected abstract child: ChildProcess;

  protected onReply(reply: Reply): void {
    this.waiting.shift()?.(reply);
  }

  protected onExit(reason: string): void {
    this.exitReason = reason;
    for (const w of this.waiting.splice(0)) w({ ok: false, unavailable: false, reason });
  }

  protected abstract send(req: Request): void;

  request(req: Request): Promise<Reply> {
    if (this.exitReason) return Promise.resolve({ ok: false, unavailable: false, reason: this.exitReason });
    return new Promise((resolve) => {
      this.waiting.push(resolve);
      this.send(req);
    });
  }

  async close(): Promise<void> {
    if (this.exitReason) return;
    const exited = new Promise<void>((resolve) => this.child.once('exit', () => resolve()));
    await this.request({ op: 'exit' });
    // A worker that does not leave within 5 s (a GPU driver thread, say) is ended.
    const timer = setTimeout(() => this.child.kill(), 5000);
    await exited;
    clearTimeout(timer);
  }
}

/** The built worker script next to this file (dist/worker.js). */
export function workerScript(): string {
  return path.join(path.dirname(fileURLToPath(import.meta.url)), 'worker.js');
}

export class ForkChannel extends ProcessChannel {
  protected child: ChildProcess;
  private stderr = '';

  /** `execArgv`: Node flags of the worker (default: this process's, as fork does). */
  constructor(script = workerScript(), options: { execArgv?: string[] } = {}) {
    super();
    if (!existsSync(script)) throw new Error(`worker script ${script} is missing: build apps/bench first (pnpm exec tsup)`);
    this.child = fork(script, [], {
      execArgv: options.execArgv ?? process.execArgv,
      // Piped, not inherited: Dawn prints validation messages on stdout, which would corrupt the
      // table (and --markdown output) that the harness prints there.
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
      env: { ...process.env, EGL_PLATFORM: process.env.EGL_PLATFORM ?? 'surfaceless' },
    });
    const keepTail = (d: Buffer) => {
      // Keep the tail only, to explain a crash; Dawn and tfjs print warnings here.
      this.stderr = (this.stderr + d.toString()).slice(-2000);
    };
    this.child.stdout!.on('data', keepTail);
    this.child.stderr!.on('data', keepTail);
    this.child.on('message', (m: Reply) => this.onReply(m));
    this.child.on('exit', (code, signal) => this.onExit(`worker exited (code ${code}, signal ${signal}): ${this.stderr.trim().split('\n').slice(-3).join(' | ')}`));
  }

  protected send(req: Request): void {
    this.child.send(req);
  }
}

/** The PyTorch worker script (python/torch_worker.py), found from src/ or dist/. */
export function torchScript(): string {
  return path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'python', 'torch_worker.py');
}

/**
 * The Python that can `import torch`: $NEEDLE_BENCH_PYTHON if set, else the first of python3 on the
 * PATH and Debian's /usr/bin/python3 (where apt's python3-torch lands, while a pyenv shim may
 * shadow it on the PATH). Probed once; an import of torch takes a second or two.
 */
let torchProbe: { ok: boolean; python: string; reason: string } | undefined;
export function torchAvailable(): { ok: boolean; python: string; reason: string } {
  if (torchProbe) return torchProbe;
  const env = process.env.NEEDLE_BENCH_PYTHON;
  const candidates = env ? [env] : ['python3', '/usr/bin/python3'];
  const failures: string[] = [];
  for (const python of candidates) {
    const r = spawnSync(python, ['-c', 'import torch, numpy; print(torch.__version__)'], { encoding: 'utf8', timeout: 60_000 });
    if (r.status === 0) {
      torchProbe = { ok: true, python, reason: r.stdout.trim() };
      return torchProbe;
    }
    failures.push(`${python}: ${(r.stderr || String(r.error ?? '')).trim().split('\n').slice(-1)[0]}`);
  }
  torchProbe = { ok: false, python: candidates[0], reason: `no Python can import torch (${failures.join('; ')})` };
  return torchProbe;
}

export interface PythonOptions {
  /** The thread count the worker will be asked for, also given to OpenBLAS's own pool (OPENBLAS_NUM_THREADS). */
  threads?: number;
  /** Put in front of LD_LIBRARY_PATH: a folder holding another libblas.so.3 (an unpacked OpenBLAS). */
  libraryPath?: string;
}

export class PythonChannel extends ProcessChannel {
  protected child: ChildProcess;
  private stderr = '';

  constructor(script = torchScript(), options: PythonOptions = {}) {
    super();
    const env: NodeJS.ProcessEnv = { ...process.env };
    if (options.libraryPath) env.LD_LIBRARY_PATH = [options.libraryPath, env.LD_LIBRARY_PATH].filter(Boolean).join(':');
    // torch.set_num_threads sizes torch's own pool; OpenBLAS (pthread build) sizes its pool from this.
    if (options.threads) env.OPENBLAS_NUM_THREADS = String(options.threads);
    // With OpenBLAS's pthread pool beside torch's OpenMP pool, OpenMP threads that spin while
    // OpenBLAS computes (GNU OpenMP's default) take its cores: a 2-thread MLP step ran ~8x slower
    // than with 1 thread in a check on 2 cores (BENCHMARKS.md, method). Passive waiting removes that.
    if (options.libraryPath && (options.threads ?? 1) > 1) env.OMP_WAIT_POLICY ??= 'PASSIVE';
    this.child = spawn(torchAvailable().python, ['-u', script], { stdio: ['pipe', 'pipe', 'pipe'], env });
    createInterface({ input: this.child.stdout! }).on('line', (line) => {
      if (line.startsWith('{')) this.onReply(JSON.parse(line) as Reply);
    });
    this.child.stderr!.on('data', (d: Buffer) => {
      this.stderr = (this.stderr + d.toString()).slice(-2000);
    });
    this.child.on('exit', (code, signal) => this.onExit(`python worker exited (code ${code}, signal ${signal}): ${this.stderr.trim().split('\n').slice(-3).join(' | ')}`));
  }

  protected send(req: Request): void {
    this.child.stdin!.write(`${JSON.stringify(req)}\n`);
  }
}

/** The protocol served in this very process (the smoke test; nothing is isolated). */
export class InProcessChannel implements Channel {
  private handler = new Handler();
  request(req: Request): Promise<Reply> {
    return this.handler.handle(req);
  }
  async close(): Promise<void> {
    await this.handler.handle({ op: 'exit' });
  }
}
