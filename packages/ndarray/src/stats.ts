import { KERNEL_FAMILIES, type Backend, type BackendStats, type KernelFamily } from './backend';

/**
 * The counters behind `backend.stats()`. A backend creates one with `instrumentBackend(this)` at the
 * end of its constructor, so counting lives in one place (these wrappers), not in every kernel.
 */
export class StatsCounter {
  private kernels = zeroKernels();
  private allocations = 0;
  private bytesAllocated = 0;
  private bytesUploaded = 0;
  private bytesDownloaded = 0;

  launch(family: KernelFamily): void {
    this.kernels[family]++;
  }

  alloc(bytes: number): void {
    this.allocations++;
    this.bytesAllocated += bytes;
  }

  upload(bytes: number): void {
    this.bytesUploaded += bytes;
  }

  download(bytes: number): void {
    this.bytesDownloaded += bytes;
  }

  snapshot(): BackendStats {
    const kernels = { ...this.kernels };
    let launches = 0;
    for (const f of KERNEL_FAMILIES) launches += kernels[f];
    return {
      kernels,
      launches,
      allocations: this.allocations,
      bytesAllocated: this.bytesAllocated,
      bytesUploaded: this.bytesUploaded,
      bytesDownloaded: this.bytesDownloaded,
    };
  }

  reset(): void {
    this.kernels = zeroKernels();
    this.allocations = 0;
    this.bytesAllocated = 0;
    this.bytesUploaded = 0;
    this.bytesDownloaded = 0;
  }
}

function zeroKernels(): Record<KernelFamily, number> {
  const k = {} as Record<KernelFamily, number>;
  for (const f of KERNEL_FAMILIES) k[f] = 0;
  return k;
}

type Method = (...args: never[]) => unknown;

/**
 * Wrap `backend`'s kernel methods, `alloc`, `write`, `read` and `readSync` (own properties shadowing
 * the class's methods) so each call is counted, and return the counter `stats()` reads. Call it once,
 * after every method the backend offers exists (e.g. after an optional `readSync` was set).
 * A call that throws is still counted: it was launched.
 */
export function instrumentBackend(backend: Backend): StatsCounter {
  const counter = new StatsCounter();
  const target = backend as unknown as Record<string, Method>;
  const wrap = (name: string, count: (args: unknown[]) => void): void => {
    const original = target[name];
    if (typeof original !== 'function') return;
    target[name] = function (this: unknown, ...args: unknown[]) {
      count(args);
      return (original as (...a: unknown[]) => unknown).apply(this, args);
    } as Method;
  };
  for (const family of KERNEL_FAMILIES) wrap(family, () => counter.launch(family));
  wrap('alloc', (args) => counter.alloc(4 * (args[0] as number)));
  wrap('write', (args) => counter.upload((args[1] as Float32Array).byteLength));
  const readBytes = (args: unknown[]): void => counter.download(4 * ((args[1] as number | undefined) ?? (args[0] as { size: number }).size));
  wrap('read', readBytes);
  wrap('readSync', readBytes);
  return counter;
}

/** `after - before` per counter: what ran between two `stats()` snapshots. */
export function statsDiff(after: BackendStats, before: BackendStats): BackendStats {
  const kernels = {} as Record<KernelFamily, number>;
  for (const f of KERNEL_FAMILIES) kernels[f] = after.kernels[f] - before.kernels[f];
  return {
    kernels,
    launches: after.launches - before.launches,
    allocations: after.allocations - before.allocations,
    bytesAllocated: after.bytesAllocated - before.bytesAllocated,
    bytesUploaded: after.bytesUploaded - before.bytesUploaded,
    bytesDownloaded: after.bytesDownloaded - before.bytesDownloaded,
  };
}
