/**
 * A pool of worker threads that run kernels of the same WebAssembly module over one shared memory.
 *
 * Work is handed over through a small SharedArrayBuffer, not postMessage: the backend's kernels are
 * synchronous, so the calling thread publishes one job per worker, bumps a generation counter that
 * the idle workers block on (Atomics.wait), runs its own share, and waits until every worker has
 * acknowledged the generation. Wake-up costs tens of microseconds, so callers only split kernels big
 * enough to pay for it.
 */

/** Kernels a worker can run, by index in the job slot. */
export const WORKER_KERNELS = ['matmul', 'binary', 'unary', 'where', 'reduce', 'sumPartial', 'program'] as const;
export type WorkerKernel = (typeof WORKER_KERNELS)[number];

export interface Job {
  kernel: WorkerKernel;
  args: number[];
}

/** Float64 slots per worker: kernel index + up to 23 arguments. */
const SLOTS = 24;
// Int32 control words: generation, stop flag, then one acknowledged generation per worker, then one
// error flag per worker.
const GEN = 0;
const STOP = 1;
const ACK = 2;

interface WorkerInit {
  module: WebAssembly.Module;
  memory: WebAssembly.Memory;
  control: SharedArrayBuffer;
  args: SharedArrayBuffer;
  index: number;
  workers: number;
  kernels: readonly string[];
}

/**
 * The body of every worker, shipped as source text (Function.prototype.toString), so it must not
 * reference anything outside itself. It runs in a Node worker_threads eval worker or a browser Worker.
 */
function workerMain(nodeWorkerThreads: (() => Promise<typeof import('node:worker_threads')>) | undefined): void {
  const start = (init: WorkerInit, reply: (message: string) => void): void => {
    const instance = new WebAssembly.Instance(init.module, { env: { memory: init.memory } });
    const exports = instance.exports as Record<string, (...args: number[]) => void>;
    const kernels = init.kernels.map((name) => exports[name]);
    const control = new Int32Array(init.control);
    const args = new Float64Array(init.args);
    // Literals, as this function cannot see the module's constants: 24 = SLOTS, 2 = ACK.
    const base = init.index * 24;
    const ack = 2 + init.index;
    const errorFlag = 2 + init.workers + init.index;
    // Read the generation before announcing readiness: the first job may be published the moment
    // the caller hears 'ready', and a worker that read the counter later would sleep through it.
    let seen = Atomics.load(control, 0);
    reply('ready');
    for (;;) {
      Atomics.wait(control, 0, seen);
      seen = Atomics.load(control, 0);
      if (Atomics.load(control, 1) !== 0) break;
      const kernel = args[base];
      if (kernel >= 0) {
        try {
          const count = args[base + 1];
          const list: number[] = [];
          for (let i = 0; i < count; i++) list.push(args[base + 2 + i]);
          kernels[kernel](...list);
        } catch {
          Atomics.store(control, errorFlag, 1);
        }
      }
      Atomics.store(control, ack, seen);
      Atomics.notify(control, ack);
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
  private readonly handles: WorkerHandle[];
  /** Atomics.wait is forbidden on a browser's main thread; there we spin on Atomics.load. */
  private readonly canBlock: boolean;
  private destroyed = false;

  private constructor(
    readonly workers: number,
    control: SharedArrayBuffer,
    args: SharedArrayBuffer,
    handles: WorkerHandle[],
  ) {
    this.control = new Int32Array(control);
    this.args = new Float64Array(args);
    this.handles = handles;
    let canBlock = true;
    try {
      Atomics.wait(this.control, STOP, 1, 0);
    } catch {
      canBlock = false;
    }
    this.canBlock = canBlock;
  }

  /** Start `workers` helper threads over `memory` (shared) running `module`. */
  static async create(workers: number, module: WebAssembly.Module, memory: WebAssembly.Memory): Promise<WorkerPool> {
    const control = new SharedArrayBuffer(4 * (2 + 2 * workers));
    const args = new SharedArrayBuffer(8 * SLOTS * workers);
    const isNode = isNodeRuntime();
    // The import is spelled in this string, not in workerMain, where a bundler would rewrite it. A
    // dynamic import works whether Node evaluates the worker as CommonJS or (--input-type=module) ESM.
    const source = `(${workerMain.toString()})(${isNode ? "() => import('node:worker_threads')" : 'undefined'});`;
    const handles: WorkerHandle[] = [];
    const ready: Promise<void>[] = [];
    if (isNode) {
      const specifier = 'node:worker_threads';
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
        worker.postMessage({ module, memory, control, args, index, workers, kernels: WORKER_KERNELS } satisfies WorkerInit);
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
          worker.postMessage({ module, memory, control, args, index, workers, kernels: WORKER_KERNELS } satisfies WorkerInit);
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
    return new WorkerPool(workers, control, args, handles);
  }

  /**
   * Run jobs[0] on the calling thread via `runLocal` and jobs[1..] on workers (missing entries idle),
   * returning once all are done.
   */
  run(jobs: (Job | undefined)[], runLocal: (job: Job) => void): void {
    if (this.destroyed) throw new Error('ndarray-wasm: the worker pool was destroyed');
    const { control, args } = this;
    for (let w = 0; w < this.workers; w++) {
      const job = jobs[w + 1];
      const base = w * SLOTS;
      if (!job) {
        args[base] = -1;
        continue;
      }
      if (job.args.length > SLOTS - 2) throw new Error(`ndarray-wasm: job ${job.kernel} has too many arguments`);
      args[base] = WORKER_KERNELS.indexOf(job.kernel);
      args[base + 1] = job.args.length;
      for (let i = 0; i < job.args.length; i++) args[base + 2 + i] = job.args[i];
    }
    const gen = Atomics.add(control, GEN, 1) + 1;
    Atomics.notify(control, GEN);
    let localError: unknown;
    try {
      if (jobs[0]) runLocal(jobs[0]);
    } catch (error) {
      localError = error;
    }
    for (let w = 0; w < this.workers; w++) {
      const slot = ACK + w;
      for (;;) {
        const seen = Atomics.load(control, slot);
        if (seen === gen) break;
        if (this.canBlock) Atomics.wait(control, slot, seen);
      }
    }
    if (localError !== undefined) throw localError;
    for (let w = 0; w < this.workers; w++) {
      const flag = ACK + this.workers + w;
      if (Atomics.load(control, flag) !== 0) {
        Atomics.store(control, flag, 0);
        const job = jobs[w + 1];
        throw new Error(`ndarray-wasm: kernel ${job?.kernel ?? '?'} failed in worker ${w}`);
      }
    }
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
