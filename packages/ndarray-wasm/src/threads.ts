/**
 * A pool of worker threads that run kernels of the same WebAssembly module over one shared memory.
 *
 * Work is handed over through a small SharedArrayBuffer, not postMessage: the backend's kernels are
 * synchronous, so the calling thread publishes the parts of a kernel (one per thread), bumps a
 * generation counter and runs parts itself. Every part is claimed before it runs (a compare-and-swap
 * on its claim word), by whichever thread gets there first: the caller takes its own part, then any
 * part no worker has claimed yet, so a worker that is late (asleep, or waiting for a core) costs at
 * most the caller doing that part itself, never the wait for the worker (NOTES.md section 21). The
 * caller then waits until every part a worker claimed is done. A part is the same work whoever runs
 * it, so results do not depend on which thread ran what.
 *
 * Both sides poll before they sleep. A worker that has just finished a job polls the generation for
 * `spinMicros` before blocking in Atomics.wait, and the caller polls the acknowledgements as long
 * before blocking: the kernels of a training step follow each other within tens of microseconds, and
 * a futex sleep and wake-up on each side of every split kernel (plus, in a virtual machine, waking an
 * idle virtual CPU) costs more than the smaller kernels' work (NOTES.md, "Threads for every large
 * kernel"). The poll is bounded so an idle pool, or one on a machine busy with other processes,
 * gives its core back.
 */

import { JIT_IMPORTS } from './jit/compile';

/** Kernels a worker can run, by index in the job slot. */
export const WORKER_KERNELS = ['matmul', 'binary', 'unary', 'where', 'reduce', 'sumChunks', 'program', 'strided', 'fill', 'jit', 'sumColumns', 'matmulDepth', 'addSlabs'] as const;
export type WorkerKernel = (typeof WORKER_KERNELS)[number];

export interface Job {
  kernel: WorkerKernel;
  args: number[];
}

/**
 * Arguments whose value depends on the thread that runs a part, not on the part (its scratch
 * memory): for every part, whichever thread claims it, `args[at[i]]` is replaced by
 * `values[thread][i]` (thread 0 the caller, worker w thread w + 1).
 */
export interface ThreadArgs {
  at: readonly number[];
  values: readonly (readonly number[])[];
}

/** Float64 slots per part: kernel index, argument count, up to 22 arguments. */
const SLOTS = 24;
/**
 * The most parts one launch may have. A launch may have more parts than threads: each thread then
 * claims part after part until none is open, so a thread that arrives late or is descheduled
 * mid-launch ends up running fewer of them (NOTES.md section 30).
 */
export const MAX_PARTS = 64;
/**
 * Float64 slots per thread for its own argument values (ThreadArgs): a count, then up to 4
 * (position, value) pairs.
 */
const THREAD_SLOTS = 9;
// Int32 control words: generation, stop flag, the poll flag (nonzero: threads may poll before
// sleeping), the current generation's part count, then three words per part: its claim word (2g
// while open in generation g, 2g + 1 once claimed), the generation it was last done in, and an
// error flag. workerMain spells these offsets as literals. The caller's activity counter (touch)
// has a buffer of its own: it is written often, and on the control words' cache line every write
// would take the line from the polling workers.
const GEN = 0;
const STOP = 1;
const POLL = 2;
const PARTS = 3;
const CLAIM = (part: number) => 4 + 3 * part;
const DONE = (part: number) => 5 + 3 * part;
const FAILED = (part: number) => 6 + 3 * part;
/** How often the caller re-reads the machine's load to set the poll flag. */
const LOAD_CHECK_MS = 250;

interface WorkerInit {
  module: WebAssembly.Module;
  memory: WebAssembly.Memory;
  control: SharedArrayBuffer;
  /** The caller's activity counter (WorkerPool.touch): Int32 word 16 of 48, a cache line of its own. */
  activity: SharedArrayBuffer;
  args: SharedArrayBuffer;
  /** Per-thread argument values (ThreadArgs), THREAD_SLOTS Float64 per thread. */
  threadArgs: SharedArrayBuffer;
  index: number;
  workers: number;
  kernels: readonly string[];
  spinMicros: number;
  /** Compiled programs' imports: import name -> kernels export (src/jit/compile.ts, JIT_IMPORTS). */
  jitImports: Record<string, string>;
}

/**
 * How long the caller waits for a part a worker claimed before it gives up on the worker (it died,
 * or hangs), by default: far beyond any part's time (a split kernel's parts are ~100 us of work,
 * and even the largest kernel has at most MAX_PARTS).
 */
export const DEFAULT_HANG_MS = 60_000;

/** Default poll time before a worker or the waiting caller sleeps (see the module comment). */
export const DEFAULT_SPIN_MICROS = 1000;

/**
 * The body of every worker, shipped as source text (Function.prototype.toString), so it must not
 * reference anything outside itself. It runs in a Node worker_threads eval worker or a browser Worker.
 */
function workerMain(nodeWorkerThreads: (() => Promise<typeof import('node:worker_threads')>) | undefined): void {
  const start = (init: WorkerInit, reply: (message: string) => void): void => {
    const instance = new WebAssembly.Instance(init.module, { env: { memory: init.memory } });
    const exports = instance.exports as Record<string, (...args: number[]) => void>;
    // 'jit': a compiled elementwise program (src/jit), by its module number. The job names where
    // the module's bytes lie in the shared heap (the backend keeps them there), so whichever thread
    // claims a part can run it: a worker that lacks the module compiles and instantiates it then,
    // once, and warms it up for V8's optimizing tier as the calling thread did.
    const jitImports: Record<string, unknown> = {};
    for (const [name, exported] of Object.entries(init.jitImports)) jitImports[name] = exports[exported];
    const compiled = new Map<number, (...args: number[]) => void>();
    const jit = (id: number, ptr: number, len: number, warm: number, ...args: number[]): void => {
      let run = compiled.get(id);
      if (!run) {
        const bytes = new Uint8Array(init.memory.buffer, ptr, len).slice();
        const module = new WebAssembly.Module(bytes);
        run = new WebAssembly.Instance(module, { env: { memory: init.memory }, k: jitImports as WebAssembly.ModuleImports }).exports.run as (...a: number[]) => void;
        run(args[0], args[1], args[2], 0, -warm, args[5]);
        compiled.set(id, run);
      }
      run(...args);
    };
    const kernels = init.kernels.map((name) => (name === 'jit' ? jit : exports[name]));
    const control = new Int32Array(init.control);
    const args = new Float64Array(init.args);
    // Literals, as this function cannot see the module's constants: 24 = SLOTS, 2 = POLL,
    // 3 = PARTS, 4 + 3p / 5 + 3p / 6 + 3p = CLAIM / DONE / FAILED of part p, 9 = THREAD_SLOTS.
    const poll = 2;
    const activity = new Int32Array(init.activity);
    const home = init.index + 1;
    const threads = init.workers + 1;
    const own = new Float64Array(init.threadArgs, 8 * 9 * home, 9);
    // Read the generation before announcing readiness: the first job may be published the moment
    // the caller hears 'ready', and a worker that read the counter later would sleep through it.
    let seen = Atomics.load(control, 0);
    const spinMs = init.spinMicros / 1000;
    // 20 ms at the default poll: a training step of the bench's models launches split kernels
    // every few milliseconds.
    const awakeMs = 20 * spinMs;
    let noSpinUntil = 0;
    reply('ready');
    for (;;) {
      // Poll, checking the clock every 64 polls, then sleep until the generation moves. The poll
      // lasts spinMs past the last sign of the caller using the backend (its activity counter,
      // read when the deadline passes), so through a training step, with its small unsplit kernels
      // and JavaScript between the split ones, a worker stays awake for the next split kernel; but
      // not longer than awakeMs after its last job, so a caller that keeps launching only small
      // kernels does not keep a core busy for nothing. A gap between two clock checks means this
      // thread was descheduled: the cores are busy, and a polling thread only delays the ones that
      // have work, so it stops polling for a while.
      let now = Atomics.load(control, 0);
      if (now === seen && spinMs > 0 && Atomics.load(control, poll) !== 0 && performance.now() > noSpinUntil) {
        let last = performance.now();
        const giveUp = last + awakeMs;
        let deadline = last + spinMs;
        let seenActivity = Atomics.load(activity, 16);
        for (let polls = 1; now === seen; polls++) {
          if ((polls & 63) === 0) {
            const t = performance.now();
            if (t - last > 0.05) {
              noSpinUntil = t + 100;
              break;
            }
            if (t > deadline) {
              const a = Atomics.load(activity, 16);
              if (a === seenActivity || t > giveUp || Atomics.load(control, poll) === 0) break;
              seenActivity = a;
              deadline = t + spinMs;
            }
            last = t;
          }
          now = Atomics.load(control, 0);
        }
      }
      while (now === seen) {
        Atomics.wait(control, 0, seen);
        now = Atomics.load(control, 0);
      }
      seen = now;
      if (Atomics.load(control, 1) !== 0) break;
      // This thread's own part first, then any other still open; a claim only succeeds for a part
      // opened in the generation this thread saw, so a late thread never runs newer parts' stale
      // copies (or a newer generation's parts under an old one).
      const open = (seen << 1) | 0;
      const parts = Atomics.load(control, 3);
      // (Read after the generation: if it is a newer generation's, every part of ours is claimed.)
      // With more parts than threads, thread t starts at part floor(t * parts / threads) and goes
      // on to the next open one, so the caller (from part 0) and the workers start on runs of
      // parts of their own and each takes over the others' when it runs out.
      const first = Math.floor((home * parts) / threads);
      for (let j = 0; j < parts; j++) {
        const part = (first + j) % parts;
        if (Atomics.compareExchange(control, 4 + 3 * part, open, open | 1) !== open) continue;
        const base = part * 24;
        try {
          const count = args[base + 1];
          const list: number[] = [];
          for (let i = 0; i < count; i++) list.push(args[base + 2 + i]);
          // This thread's own values of the per-thread arguments (ThreadArgs).
          for (let i = 0; i < own[0]; i++) list[own[1 + 2 * i]] = own[2 + 2 * i];
          kernels[args[base]](...list);
        } catch {
          Atomics.store(control, 6 + 3 * part, 1);
        }
        Atomics.store(control, 5 + 3 * part, seen);
        Atomics.notify(control, 5 + 3 * part);
      }
    }
  };
  if (nodeWorkerThreads) {
    // The port queues the init message until this listener exists.
    void nodeWorkerThreads().then(({ parentPort }) => {
      parentPort!.once('message', (init: WorkerInit) => start(init, (m) => parentPort!.postMessage(m)));
    });
  } else {
    const scope = self as unknown as { onmessage: ((e: MessageEvent) => void) | null; postMessage(m: string): void };
    scope.onmessage = (e: MessageEvent) => {
      scope.onmessage = null;
      start(e.data as WorkerInit, (m) => scope.postMessage(m));
    };
  }
}

interface WorkerHandle {
  terminate(): unknown;
}

function isNodeRuntime(): boolean {
  return typeof process !== 'undefined' && typeof process.versions?.node === 'string';
}

/** Whether this environment can share WebAssembly memory between threads. */
export function threadsSupported(): boolean {
  if (typeof SharedArrayBuffer === 'undefined' || typeof Atomics === 'undefined') return false;
  // Browsers expose SharedArrayBuffer only to cross-origin-isolated pages; the flag says so directly.
  const isolated = (globalThis as { crossOriginIsolated?: boolean }).crossOriginIsolated;
  if (!isNodeRuntime() && isolated !== true) return false;
  if (!isNodeRuntime() && typeof Worker === 'undefined') return false;
  return true;
}

export class WorkerPool {
  private readonly control: Int32Array;
  private readonly args: Float64Array;
  private readonly threadArgs: Float64Array;
  private readonly handles: WorkerHandle[];
  /** Atomics.wait is forbidden on a browser's main thread; there we spin on Atomics.load. */
  private readonly canBlock: boolean;
  private readonly spinMs: number;
  /** performance.now() until which this thread does not poll (it was descheduled while polling). */
  private noSpinUntil = 0;
  /** Whether other processes keep the cores busy (Node: the load average), checked every LOAD_CHECK_MS. */
  private readonly machineBusy: () => boolean;
  private nextLoadCheck = 0;
  private destroyed = false;
  /** Why the pool can no longer be used (a worker never finished a part it claimed), if so. */
  private broken: string | undefined;
  /** Parts the caller ran that were meant for a worker (it had not claimed them yet). */
  private taken = 0;
  /** The caller's activity counter (touch), read by polling workers. */
  private readonly activity: Int32Array;

  private constructor(
    readonly workers: number,
    spinMicros: number,
    private readonly hangMs: number,
    machineBusy: () => boolean,
    control: SharedArrayBuffer,
    activity: SharedArrayBuffer,
    args: SharedArrayBuffer,
    threadArgs: SharedArrayBuffer,
    handles: WorkerHandle[],
  ) {
    this.control = new Int32Array(control);
    this.activity = new Int32Array(activity);
    this.args = new Float64Array(args);
    this.threadArgs = new Float64Array(threadArgs);
    this.handles = handles;
    this.spinMs = spinMicros / 1000;
    this.machineBusy = machineBusy;
    let canBlock = true;
    try {
      Atomics.wait(this.control, STOP, 1, 0);
    } catch {
      canBlock = false;
    }
    this.canBlock = canBlock;
  }

  /**
   * Start `workers` helper threads over `memory` (shared) running `module`; idle threads poll for
   * `spinMicros` before they sleep. `machineBusy` replaces the load-average check (tests); `hangMs`
   * is how long the caller waits for a part a worker claimed before it fails the launch.
   */
  static async create(workers: number, module: WebAssembly.Module, memory: WebAssembly.Memory, spinMicros = DEFAULT_SPIN_MICROS, machineBusy?: () => boolean, hangMs = DEFAULT_HANG_MS): Promise<WorkerPool> {
    const jitImports: Record<string, string> = { ...JIT_IMPORTS };
    const control = new SharedArrayBuffer(4 * CLAIM(Math.max(MAX_PARTS, workers + 1)));
    const activity = new SharedArrayBuffer(4 * 48);
    const args = new SharedArrayBuffer(8 * SLOTS * Math.max(MAX_PARTS, workers + 1));
    const threadArgs = new SharedArrayBuffer(8 * THREAD_SLOTS * (workers + 1));
    const isNode = isNodeRuntime();
    // The import is spelled in this string, not in workerMain, where a bundler would rewrite it. A
    // dynamic import works whether Node evaluates the worker as CommonJS or (--input-type=module) ESM.
    const source = `(${workerMain.toString()})(${isNode ? "() => import('node:worker_threads')" : 'undefined'});`;
    const handles: WorkerHandle[] = [];
    const ready: Promise<void>[] = [];
    // Polling threads take cores from whoever else wants them, and a busy machine deschedules them
    // mid-poll anyway: in Node, poll only while the 1-minute load average leaves room for this
    // pool's own threads. Browsers tell nothing of the load; there only the descheduling check
    // (workerMain) holds polling back.
    let busy = machineBusy ?? (() => false);
    if (isNode) {
      const [osSpecifier, specifier] = ['node:os', 'node:worker_threads'];
      if (!machineBusy) {
        const os = (await import(/* @vite-ignore */ osSpecifier)) as typeof import('node:os');
        const cores = os.availableParallelism();
        busy = () => os.loadavg()[0] > cores + 0.5;
      }
      const { Worker: NodeWorker } = (await import(/* @vite-ignore */ specifier)) as typeof import('node:worker_threads');
      for (let index = 0; index < workers; index++) {
        const worker = new NodeWorker(source, { eval: true });
        // A forgotten backend must not keep the process alive.
        worker.unref();
        handles.push(worker);
        ready.push(new Promise((resolve, reject) => {
          worker.once('message', () => resolve());
          worker.once('error', reject);
        }));
        worker.postMessage({ module, memory, control, activity, args, index, workers, kernels: WORKER_KERNELS, spinMicros, jitImports, threadArgs } satisfies WorkerInit);
      }
    } else {
      const url = URL.createObjectURL(new Blob([source], { type: 'text/javascript' }));
      try {
        for (let index = 0; index < workers; index++) {
          const worker = new Worker(url);
          handles.push(worker);
          ready.push(new Promise((resolve, reject) => {
            worker.onmessage = () => resolve();
            worker.onerror = (e) => reject(new Error(`ndarray-wasm: worker ${index} failed to start: ${e.message}`));
          }));
          worker.postMessage({ module, memory, control, activity, args, index, workers, kernels: WORKER_KERNELS, spinMicros, jitImports, threadArgs } satisfies WorkerInit);
        }
        await Promise.all(ready);
      } finally {
        URL.revokeObjectURL(url);
      }
    }
    try {
      await Promise.all(ready);
    } catch (error) {
      for (const h of handles) void h.terminate();
      throw error;
    }
    return new WorkerPool(workers, spinMicros, hangMs, busy, control, activity, args, threadArgs, handles);
  }

  /**
   * Run the jobs (up to MAX_PARTS; missing entries are skipped) and return once all are done. With
   * one job per thread, the calling thread runs jobs[0] through `runLocal` and worker w is meant
   * for jobs[w + 1]; with more, thread t starts at job floor(t * jobs / threads). Every thread then
   * goes on claiming open jobs, the caller too, so it runs every job no worker has claimed by the
   * time it gets to it. `threadArgs` gives the arguments that take each thread's own value.
   */
  run(jobs: (Job | undefined)[], runLocal: (job: Job) => void, threadArgs?: ThreadArgs): void {
    if (this.destroyed) throw new Error('ndarray-wasm: the worker pool was destroyed');
    if (this.broken) throw new Error(this.broken);
    if (jobs.length > MAX_PARTS) throw new Error(`ndarray-wasm: ${jobs.length} jobs, at most ${MAX_PARTS} a launch`);
    const { control, args } = this;
    const parts = jobs.length;
    const threads = this.workers + 1;
    const own = this.threadArgs;
    const substitutions = threadArgs?.at.length ?? 0;
    if (substitutions > (THREAD_SLOTS - 1) / 2 || (threadArgs && threadArgs.values.length < threads)) throw new Error(`ndarray-wasm: threadArgs must give at most ${(THREAD_SLOTS - 1) / 2} values for each of ${threads} threads`);
    for (let t = 0; t < threads; t++) {
      own[t * THREAD_SLOTS] = substitutions;
      for (let i = 0; i < substitutions; i++) {
        own[t * THREAD_SLOTS + 1 + 2 * i] = threadArgs!.at[i];
        own[t * THREAD_SLOTS + 2 + 2 * i] = threadArgs!.values[t][i];
      }
    }
    for (let p = 0; p < parts; p++) {
      const job = jobs[p];
      const base = p * SLOTS;
      if (!job) continue;
      if (job.args.length > SLOTS - 2) throw new Error(`ndarray-wasm: job ${job.kernel} has too many arguments`);
      args[base] = WORKER_KERNELS.indexOf(job.kernel);
      args[base + 1] = job.args.length;
      for (let i = 0; i < job.args.length; i++) args[base + 2 + i] = job.args[i];
    }
    if (this.spinMs > 0) this.checkLoad();
    // Every part of the previous generation was claimed and is done, so no thread reads these
    // words' old values for anything.
    const gen = (Atomics.load(control, GEN) + 1) | 0;
    const open = (gen << 1) | 0;
    for (let p = 0; p < parts; p++) {
      if (jobs[p]) {
        Atomics.store(control, CLAIM(p), open);
      } else {
        Atomics.store(control, CLAIM(p), open | 1);
        Atomics.store(control, DONE(p), gen);
      }
    }
    Atomics.store(control, PARTS, parts);
    Atomics.store(control, GEN, gen);
    Atomics.notify(control, GEN);
    let localError: unknown;
    let localPart = -1;
    for (let p = 0; p < parts; p++) {
      if (Atomics.compareExchange(control, CLAIM(p), open, open | 1) !== open) continue;
      if (threads > 1 && p >= Math.floor(parts / threads)) this.taken++;
      if (localError === undefined) {
        try {
          let job = jobs[p]!;
          if (substitutions > 0) {
            const local = job.args.slice();
            for (let i = 0; i < substitutions; i++) local[threadArgs!.at[i]] = threadArgs!.values[0][i];
            job = { kernel: job.kernel, args: local };
          }
          runLocal(job);
        } catch (error) {
          localError = error;
          localPart = p;
        }
      }
      Atomics.store(control, DONE(p), gen);
    }
    this.awaitParts(gen, parts, jobs);
    if (localError !== undefined) throw new Error(`ndarray-wasm: kernel ${jobs[localPart]?.kernel ?? '?'} failed in part ${localPart}: ${(localError as Error).message}`, { cause: localError });
    for (let p = 0; p < parts; p++) {
      if (Atomics.load(control, FAILED(p)) !== 0) {
        Atomics.store(control, FAILED(p), 0);
        throw new Error(`ndarray-wasm: kernel ${jobs[p]?.kernel ?? '?'} failed in part ${p}`);
      }
    }
  }

  /**
   * Note that the calling thread is using the backend (every kernel and buffer call does): a
   * polling worker keeps polling while this moves, so a split kernel finds it awake. A plain store,
   * a few nanoseconds; the workers read it only when their poll would otherwise end.
   */
  touch(): void {
    this.activity[16]++;
  }

  /**
   * Parts the calling thread ran that were meant for a worker (among the first ones a worker
   * starts from: see run), since creation (diagnostics).
   */
  get partsTakenBack(): number {
    return this.taken;
  }

  /**
   * Wait until every part of generation `gen` is done: poll (as the workers do, giving up when
   * descheduled), then sleep, or on a browser's main thread, where sleeping is not allowed, keep
   * polling. A part a worker claimed and has not finished after hangMs means the worker died or
   * hangs: nothing can run that part again safely (it may have written half its output, and
   * kernels that update in place must not run twice), so the launch fails, naming the kernel, and
   * so does every later one.
   */
  private awaitParts(gen: number, parts: number, jobs: readonly (Job | undefined)[]): void {
    const { control } = this;
    let spin = this.spinMs > 0 && Atomics.load(control, POLL) !== 0 && performance.now() > this.noSpinUntil;
    let last = performance.now();
    const deadline = last + this.spinMs;
    for (let p = 0; p < parts; p++) {
      const slot = DONE(p);
      let since = -1;
      for (let polls = 1; ; polls++) {
        const seen = Atomics.load(control, slot);
        if (seen === gen) break;
        if ((polls & 63) !== 0) continue;
        const t = performance.now();
        if (spin) {
          if (t - last > 0.05) this.noSpinUntil = t + 100;
          if (t - last > 0.05 || t > deadline) spin = false;
          last = t;
          if (spin) continue;
        }
        if (since < 0) since = t;
        else if (t - since >= this.hangMs) {
          this.broken = `ndarray-wasm: kernel ${jobs[p]?.kernel ?? '?'}: a worker claimed part ${p} of ${parts} and did not finish it in ${this.hangMs} ms (it died or hangs); this backend's worker pool cannot be used any more, create a new backend`;
          throw new Error(this.broken);
        }
        if (this.canBlock) Atomics.wait(control, slot, seen, since + this.hangMs - t);
      }
    }
  }

  /** Set the poll flag from the machine's load, at most every LOAD_CHECK_MS. */
  private checkLoad(): void {
    const now = performance.now();
    if (now < this.nextLoadCheck) return;
    this.nextLoadCheck = now + LOAD_CHECK_MS;
    Atomics.store(this.control, POLL, this.machineBusy() ? 0 : 1);
  }

  /** Stop and terminate every worker. Idempotent. */
  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    Atomics.store(this.control, STOP, 1);
    Atomics.add(this.control, GEN, 1);
    Atomics.notify(this.control, GEN);
    for (const h of this.handles) void h.terminate();
  }
}
