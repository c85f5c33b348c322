/**
 * Targets from another checkout's build (--baseline DIR, the base:* targets) and per-target thread
 * counts (needle:wasm@2): parsing, loading another checkout's packages, and what happens when that
 * build predates something a case or the kernel counter needs.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as ndarray from '@needle/ndarray';
import { createCpuBackend } from '@needle/ndarray-cpu';
import { describe, expect, it } from 'vitest';
import { makeInputs, mlpCase, resnet9Case } from '../src/cases';
import { parse, RELAXED_SIMD_FLAG } from '../src/cli';
import { ForkChannel, PythonChannel, torchAvailable } from '../src/channels';
import { prepareNeedleMlp } from '../src/engines/needle-mlp';
import { prepareNeedleResnet9 } from '../src/engines/needle-models';
import { thisCheckout, type NeedleContext } from '../src/engines/needle-step';
import { NotAvailableError, parseTarget } from '../src/engines/types';
import { kernelsPerStep } from '../src/handler';
import { countKernelCalls } from '../src/kernel-stats';
import { runHarness, threadsOf } from '../src/harness';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');

describe('targets', () => {
  it('parses @threads and base:* targets, and rejects unknown ones', () => {
    expect(parseTarget('needle:wasm@2')).toEqual({ framework: 'needle', backend: 'wasm', threads: 2, engine: 'needle:wasm' });
    expect(parseTarget('base:webgpu')).toEqual({ framework: 'base', backend: 'webgpu', threads: undefined, engine: 'base:webgpu' });
    expect(threadsOf('torch:cpu@2', 1)).toBe(2);
    expect(threadsOf('torch:cpu', 3)).toBe(3);
    for (const bad of ['needle:tpu', 'base:wasm@0', 'needle:wasm@x', 'wasm']) expect(() => parseTarget(bad)).toThrow(/unknown target/);
    const a = parse(['mlp', '--target', 'needle:wasm,needle:wasm@2,base:wasm', '--baseline', repoRoot]);
    expect(a.targets).toEqual(['needle:wasm', 'needle:wasm@2', 'base:wasm']);
    expect(a.baseline).toBe(repoRoot);
    expect(parse(['mlp', '--baseline', repoRoot, '--backend', 'cpu']).targets).toEqual(['needle:cpu', 'tfjs:cpu', 'torch:cpu', 'base:cpu']);
    expect(() => parse(['mlp', '--target', 'base:wasm'])).toThrow(/need --baseline/);
    expect(() => parse(['mlp', '--baseline', os.tmpdir()])).toThrow(/not a needle checkout/);
    expect(() => parse(['mlp', '--torch-blas', ''])).toThrow(/no libblas.so.3/);
    expect(() => parse(['mlp', '--torch-blas', os.tmpdir()])).toThrow(/no libblas.so.3/);
    expect(parse(['mlp']).relaxedSimd).toBe(false);
    expect(parse(['mlp', '--relaxed-simd']).relaxedSimd).toBe(true);
  });
});

describe('--relaxed-simd', () => {
  it("gives the worker V8's relaxed-SIMD flag, and needle:wasm then runs its relaxed build", async () => {
    const details = async (execArgv: string[]) => {
      const result = await runHarness({
        cases: [mlpCase(4, 12, 8, 3)],
        targets: ['needle:wasm'],
        // The built worker, without vitest's Node flags (see below).
        open: () => new ForkChannel(path.join(repoRoot, 'apps', 'bench', 'dist', 'worker.js'), { execArgv }),
        threads: 1, rounds: 1, samplesPerRound: 1, sampleMs: 0, warmupMs: 0, roundMs: 0,
      });
      expect(result.cases[0].entries[0].status).toBe('ok');
      return result.targets[0].info!.details;
    };
    expect(await details([RELAXED_SIMD_FLAG])).toContain('relaxed SIMD kernels');
    expect(await details([])).toContain('baseline SIMD kernels');
  }, 60_000);
});

describe('base:* targets', () => {
  it("compute a step with the other checkout's built packages, in a worker process (this checkout's dist as the baseline)", async () => {
    const result = await runHarness({
      cases: [mlpCase(4, 12, 8, 3), resnet9Case(2)],
      targets: ['base:cpu'],
      baseline: repoRoot,
      // The built worker (pnpm test builds it first), forked as in a real run, without vitest's
      // Node flags (its '@needle/source' condition would resolve the packages to their sources).
      open: () => new ForkChannel(path.join(repoRoot, 'apps', 'bench', 'dist', 'worker.js'), { execArgv: [] }),
      threads: 1,
      rounds: 1,
      samplesPerRound: 1,
      sampleMs: 0,
      warmupMs: 0,
      roundMs: 0,
    });
    expect(`${result.targets[0].status} ${result.targets[0].reason ?? ''}`).toBe('ok ');
    expect(result.targets[0].info!.details).toContain(`the build of ${repoRoot}`);
    for (const c of result.cases) {
      const e = c.entries[0];
      expect(`${c.spec.id}: ${e.status} ${e.reason ?? ''}`).toBe(`${c.spec.id}: ok `);
      // This checkout's build counts its kernels; the SGD update is one program per parameter, and
      // the relu mask and the cross-entropy gradient are one each.
      if (c.spec.kind === 'mlp') expect(e.kernels!.byFamily.elementwise).toBe(4 + 2);
    }
  }, 60_000);

  it('say "not available" when the baseline predates what a case needs', async () => {
    const root = mkdtempSync(path.join(os.tmpdir(), 'needle-old-build-'));
    try {
      for (const [pkg, src] of [['nn', 'export class Linear {}\n'], ['autograd', 'export class Tensor {}\n']]) {
        mkdirSync(path.join(root, 'packages', pkg, 'dist'), { recursive: true });
        writeFileSync(path.join(root, 'packages', pkg, 'dist', 'index.js'), src);
      }
      const ctx: NeedleContext = { ...thisCheckout(createCpuBackend()), root };
      const spec = resnet9Case(2);
      const failure = prepareNeedleResnet9(spec, makeInputs(spec), ctx);
      await expect(failure).rejects.toBeInstanceOf(NotAvailableError);
      await expect(failure).rejects.toThrow(`@needle/nn of ${root} lacks ResNet9`);
      const missing = prepareNeedleResnet9(spec, makeInputs(spec), { ...ctx, root: path.join(root, 'nowhere') });
      await expect(missing).rejects.toThrow(/needs @needle\/nn and @needle\/autograd built/);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  it('update with p.assign(p - lr * grad) where the build has no elementwise programs, to the same values', async () => {
    const backend = createCpuBackend();
    const spec = mlpCase(4, 12, 8, 3);
    const inputs = makeInputs(spec);
    const outputs: Float32Array[] = [];
    const programs: number[] = [];
    for (const nd of [ndarray, { ...ndarray, defineProgram: undefined, elementwise: undefined }]) {
      const p = await prepareNeedleMlp(spec, inputs, { backend, nd: nd as unknown as NeedleContext['nd'] });
      await p.step();
      outputs.push(await p.output());
      // Without programs the update is a sub, a scalar mul and a copy per parameter: 4 'elementwise'
      // launches fewer (autograd's own ops import their own ndarray and still run programs).
      const kernels = await kernelsPerStep({ ...p, backend });
      programs.push(kernels!.byFamily.elementwise ?? 0);
      p.dispose();
    }
    expect(programs[0] - programs[1]).toBe(4);
    expect(Array.from(outputs[1])).toEqual(Array.from(outputs[0]));
    expect(backend.memory().buffers).toBe(0);
  });

  it('count the kernels of a backend without the stats() of the contract by wrapping its kernel methods, as stats() would', async () => {
    const spec = mlpCase(4, 12, 8, 3);
    const inputs = makeInputs(spec);
    const backend = createCpuBackend();
    const p = await prepareNeedleMlp(spec, inputs, thisCheckout(backend));
    await p.step();
    const byStats = await kernelsPerStep({ ...p, backend });
    // The same backend made to look like an older build: a stats() of another shape (02b7fa9's
    // WebGPU backend had one counting pipelines) and no resetStats().
    const methods = Object.fromEntries(['matmul', 'ewise', 'elementwise'].map((f) => [f, (backend as unknown as Record<string, unknown>)[f]]));
    Object.assign(backend, { stats: () => ({ pipelines: 1 }), resetStats: undefined });
    const wrapped = await kernelsPerStep({ ...p, backend });
    expect(wrapped).toEqual({ ...byStats, wrapped: true });
    expect([wrapped!.byFamily.matmul, wrapped!.byFamily.matmulProgram]).toEqual([3, 2]);
    // The wrappers are gone afterwards: the backend's own methods again.
    for (const [f, m] of Object.entries(methods)) expect((backend as unknown as Record<string, unknown>)[f]).toBe(m);
    p.dispose();
    expect(await kernelsPerStep({ step: async () => {}, output: async () => new Float32Array(), dispose: () => {} })).toBeUndefined();
    // A kernel method that calls another internally (02b7fa9's WebGPU ewise -> its elementwise helper) is one launch.
    const nested = {
      elementwise() {},
      ewise() {
        this.elementwise();
      },
    };
    const counted = await countKernelCalls(nested, async () => {
      nested.ewise();
      nested.ewise();
      nested.elementwise();
    });
    expect(counted).toEqual({ total: 3, byFamily: { ewise: 2, elementwise: 1 } });
  });
});

describe('the torch worker', () => {
  it('gets the thread count for OpenBLAS and the library path, and names the BLAS it mapped', async (ctx) => {
    if (!torchAvailable().ok) {
      console.warn(`[bench] skipping the torch worker test: ${torchAvailable().reason}`);
      ctx.skip();
    }
    // An empty folder first on LD_LIBRARY_PATH: the loader falls through to the system BLAS.
    const dir = mkdtempSync(path.join(os.tmpdir(), 'needle-blas-'));
    const channel = new PythonChannel(undefined, { threads: 2, libraryPath: dir });
    try {
      const reply = await channel.request({ op: 'init', target: 'torch:cpu@2', threads: 2 });
      expect(reply.ok).toBe(true);
      const details = reply.ok ? reply.info!.details : '';
      expect(reply.ok && reply.info!.threads).toBe(2);
      expect(details).toMatch(/BLAS \/\S*blas\S*\.so/);
      expect(details).toContain(`OPENBLAS_NUM_THREADS=2, OMP_WAIT_POLICY=${process.env.OMP_WAIT_POLICY ?? 'PASSIVE'}`);
    } finally {
      await channel.close();
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);
});
