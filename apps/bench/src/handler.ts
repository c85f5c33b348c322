/**
 * The measuring side of the protocol, for the JavaScript targets: it runs inside the forked worker
 * process (worker.ts), or in-process for the smoke test.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { makeEngine } from './engines';
import { NotAvailableError, type Engine, type Prepared } from './engines/types';
import { countKernelCalls, hasKernelStats } from './kernel-stats';
import type { KernelCount, Reply, Request } from './protocol';

export class Handler {
  private engine: Engine | undefined;
  private prepared: Prepared | undefined;

  async handle(req: Request): Promise<Reply> {
    try {
      return await this.dispatch(req);
    } catch (e) {
      return { ok: false, unavailable: e instanceof NotAvailableError, reason: (e as Error).message ?? String(e) };
    }
  }

  private async dispatch(req: Request): Promise<Reply> {
    switch (req.op) {
      case 'init': {
        this.engine = makeEngine(req.target);
        const info = await this.engine.init({ threads: req.threads, baseline: req.baseline });
        return { ok: true, info };
      }
      case 'prepare': {
        this.release();
        const inputs = req.inputFiles.map(readF32);
        this.prepared = await this.need().prepare(req.spec, inputs);
        await this.prepared.step();
        writeFileSync(req.outputFile, await this.prepared.output());
        return { ok: true, note: this.prepared.note };
      }
      case 'reference':
        throw new NotAvailableError('the float64 reference step is computed by the torch worker only');
      case 'calibrate': {
        const p = this.needPrepared();
        // At least two more steps, and at least warmupMs of them: JITs, caches and pools settle.
        let n = 0;
        const t0 = performance.now();
        let t = t0;
        while (n < 2 || t - t0 < req.warmupMs) {
          await p.step();
          n++;
          t = performance.now();
        }
        const perIterMs = (t - t0) / n;
        return { ok: true, perIterMs, batch: Math.max(1, Math.round(req.sampleMs / perIterMs)), kernels: await kernelsPerStep(p) };
      }
      case 'round': {
        const p = this.needPrepared();
        const times: number[] = [];
        for (let s = 0; s < req.samples; s++) {
          const t0 = performance.now();
          for (let i = 0; i < req.batch; i++) await p.step();
          times.push((performance.now() - t0) / req.batch);
        }
        return { ok: true, times };
      }
      case 'release':
        this.release();
        return { ok: true };
      case 'exit':
        this.release();
        await this.engine?.close?.();
        this.engine = undefined;
        return { ok: true };
      default:
        return req satisfies never;
    }
  }

  private release(): void {
    this.prepared?.dispose();
    this.prepared = undefined;
  }

  private need(): Engine {
    if (!this.engine) throw new Error('init first');
    return this.engine;
  }

  private needPrepared(): Prepared {
    if (!this.prepared) throw new Error('prepare first');
    return this.prepared;
  }
}

/**
 * One more (untimed) step, warm, counted by the backend's stats() (or, on a build without them, by
 * wrapping its kernel methods); undefined for other frameworks.
 */
export async function kernelsPerStep(p: Prepared): Promise<KernelCount | undefined> {
  if (!p.backend) return undefined;
  if (!hasKernelStats(p.backend)) return { ...(await countKernelCalls(p.backend, () => p.step())), wrapped: true };
  p.backend.resetStats();
  await p.step();
  const s = p.backend.stats();
  if (typeof s?.launches !== 'number' || typeof s.kernels !== 'object') return undefined;
  const byFamily: Record<string, number> = {};
  for (const [family, n] of Object.entries(s.kernels)) if (n > 0) byFamily[family] = n;
  return { total: s.launches, byFamily };
}

function readF32(file: string): Float32Array {
  const buf = readFileSync(file);
  // Copy into a fresh, aligned buffer: Buffer slices may sit at an odd offset of a shared pool.
  const out = new Float32Array(buf.byteLength / 4);
  new Uint8Array(out.buffer).set(buf);
  return out;
}
