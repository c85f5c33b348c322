import { KERNEL_FAMILIES, type Backend } from '@needle/ndarray';
import type { KernelCount } from './protocol';

/**
 * Whether a backend counts its kernels (the contract's stats()/resetStats()). An older build (a
 * base:* target) may predate them, or have a stats() of its own with other fields (02b7fa9's WebGPU
 * backend counted pipelines and dispatches).
 */
export function hasKernelStats(backend: Partial<Backend>): backend is Backend {
  return typeof backend.stats === 'function' && typeof backend.resetStats === 'function';
}

/**
 * Kernels that `run` launches on a backend without stats(): each kernel method of this build's
 * contract (KERNEL_FAMILIES: a launch is one call of one of them) that the backend has is wrapped
 * in place by a counter for the duration of `run`, then put back. Only calls from outside the
 * backend count, not those a kernel method makes to another while it runs: 02b7fa9's WebGPU
 * backend has an internal `elementwise` helper behind its `ewise`, `scalar` and `unary`, which is
 * not the contract's elementwise-program kernel. For a build whose kernel methods carry the
 * contract's names (02b7fa9's are these families less `elementwise`) that is the launches its
 * frontend asked for; a kernel method of another name would be missed.
 */
export async function countKernelCalls(backend: object, run: () => Promise<void>): Promise<KernelCount> {
  const target = backend as Record<string, unknown>;
  const byFamily: Record<string, number> = {};
  const restore: Array<() => void> = [];
  // Kernel methods are synchronous, so a depth counter tells a frontend call from a nested one.
  let depth = 0;
  for (const family of KERNEL_FAMILIES) {
    const original = target[family];
    if (typeof original !== 'function') continue;
    const own = Object.prototype.hasOwnProperty.call(target, family);
    target[family] = function (this: unknown, ...args: unknown[]) {
      if (depth === 0) byFamily[family] = (byFamily[family] ?? 0) + 1;
      depth++;
      try {
        return (original as (...a: unknown[]) => unknown).apply(this, args);
      } finally {
        depth--;
      }
    };
    restore.push(() => {
      if (own) target[family] = original;
      else delete target[family];
    });
  }
  try {
    await run();
  } finally {
    for (const r of restore) r();
  }
  return { total: Object.values(byFamily).reduce((a, b) => a + b, 0), byFamily };
}
