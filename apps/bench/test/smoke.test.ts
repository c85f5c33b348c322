/**
 * Smoke test: every benchmark case runs once, at a tiny size, on each target that starts on this
 * machine, through the real harness (checked against the needle-cpu reference) but in-process and
 * with no meaningful timing. It keeps the harness from rotting; it measures nothing.
 */
import { describe, expect, it } from 'vitest';
import { createCpuBackend } from '@needle/ndarray-cpu';
import { allCases, lstmCase, makeInputs } from '../src/cases';
import { InProcessChannel, PythonChannel, torchAvailable } from '../src/channels';
import { parse } from '../src/cli';
import { prepareNeedleLstm } from '../src/engines/needle-lstm';
import { thisCheckout } from '../src/engines/needle-step';
import type { Target } from '../src/engines/types';
import { runHarness } from '../src/harness';
import { formatMarkdown, formatTable } from '../src/report';

// WebGPU competitors are left out: on llvmpipe they take seconds to start and compile, and their
// numbers are only meaningful in a real run. needle's own WebGPU backend is included.
const SMOKE_TARGETS: Target[] = ['needle:cpu', 'needle:wasm', 'needle:webgpu', 'tfjs:cpu', 'tfjs:wasm', 'jax:wasm', 'torch:cpu'];

describe('bench smoke', () => {
  it('runs every case once at a tiny size and checks it against the reference', async () => {
    const result = await runHarness({
      cases: allCases({ tiny: true }),
      targets: SMOKE_TARGETS,
      open: (t) => {
        if (t !== 'torch:cpu') return new InProcessChannel();
        const probe = torchAvailable();
        if (!probe.ok) throw new Error(probe.reason);
        return new PythonChannel();
      },
      threads: 1,
      rounds: 1,
      samplesPerRound: 1,
      sampleMs: 0,
      warmupMs: 0,
      roundMs: 0,
    });

    if (process.env.BENCH_SMOKE_PRINT) console.log(formatTable(result));
    for (const t of result.targets) {
      // A competitor (or a needle backend still being written) that cannot start here is skipped.
      if (t.status !== 'ok') console.warn(`[bench smoke] skipping ${t.target}: ${t.reason}`);
    }
    const started = new Set(result.targets.filter((t) => t.status === 'ok').map((t) => t.target));
    expect(started.has('needle:cpu')).toBe(true);
    for (const c of result.cases) {
      for (const e of c.entries) {
        if (!started.has(e.target)) continue;
        // Never a wrong answer or a crash; 'not available' is allowed (a package not built yet).
        expect([`${c.spec.id} ${e.target}: ok`, `${c.spec.id} ${e.target}: not available`]).toContain(`${c.spec.id} ${e.target}: ${e.status}${e.status === 'ok' || e.status === 'not available' ? '' : ` (${e.reason})`}`);
        if (e.status === 'ok') expect(e.summary!.median).toBeGreaterThan(0);
      }
    }
    // The reference engine computes every case that has a reference.
    const entry = (id: string, target: Target) => result.cases.find((c) => c.spec.id === id)!.entries.find((e) => e.target === target)!;
    for (const id of ['matmul-16', 'ewise-add-1000', 'reduce-sum-1000']) {
      expect(entry(id, 'needle:cpu').status).toBe('ok');
    }
    // The ConvNet step exists for every framework: where a target started, it must have run and
    // matched the independent reference (needle via @needle/nn, tfjs in NHWC, jax-js, torch).
    const convnet = result.cases.find((c) => c.spec.kind === 'convnet')!;
    expect(convnet.spec.id).toBe('convnet-3x8x8-4-6-5-b2');
    expect(entry(convnet.spec.id, 'needle:cpu').status).toBe('ok');
    for (const t of SMOKE_TARGETS) {
      if (!started.has(t)) continue;
      const e = entry(convnet.spec.id, t);
      // tfjs-backend-wasm has no Conv2DBackpropFilter kernel: the one honest gap.
      if (t === 'tfjs:wasm' && e.status === 'not available') expect(e.reason).toMatch(/Conv2DBackpropFilter/);
      else expect(`${t}: ${e.status} ${e.reason ?? ''}`).toBe(`${t}: ok `);
    }
    // The LSTM step likewise, on every framework that has it.
    const lstm = result.cases.find((c) => c.spec.kind === 'lstm')!;
    expect(lstm.spec.id).toBe('lstm-4-5-3-s3-b2');
    for (const t of SMOKE_TARGETS) {
      if (!started.has(t)) continue;
      const e = entry(lstm.spec.id, t);
      expect(`${t}: ${e.status} ${e.reason ?? ''}`).toBe(`${t}: ok `);
    }
    // The flagship models on every framework, checked against PyTorch's float64 step (or needle-cpu's
    // where torch is missing). tfjs-backend-wasm lacks two gradient kernels, the honest gaps.
    const wasmGaps = { resnet9: /no Conv2DBackpropFilter, Conv2DBackpropInput kernel|no Conv2DBackpropFilter kernel/, lm: /no UnsortedSegmentSum kernel/ };
    for (const [kind, id] of [['resnet9', 'resnet9-b2'], ['lm', 'lm-lstm-v7-e4-h5-s3-b2']] as const) {
      const c = result.cases.find((x) => x.spec.kind === kind)!;
      expect(c.spec.id).toBe(id);
      expect(c.reference).toMatch(torchAvailable().ok ? /^PyTorch float64/ : /^needle-cpu's own step, not independent/);
      for (const t of SMOKE_TARGETS) {
        if (!started.has(t)) continue;
        const e = entry(id, t);
        if (t === 'tfjs:wasm' && e.status === 'not available') expect(e.reason).toMatch(wasmGaps[kind]);
        else expect(`${t}: ${e.status} ${e.reason ?? ''}`).toBe(`${t}: ok `);
      }
    }
    // jax-js's language model says how its embedding differs.
    if (started.has('jax:wasm')) expect(entry('lm-lstm-v7-e4-h5-s3-b2', 'jax:wasm').note).toMatch(/one-hot matmul/);
    expect(formatTable(result)).toContain('matmul-16');
    expect(formatMarkdown(result)).toContain('| matmul-16 | needle:cpu |');
    // Every target starts a process and the WebGPU ones compile shaders: ~30-45 s on a loaded 2-core machine.
  }, 180_000);

  it('frees everything an LSTM step allocates but the loss (hN and cN are unused by the loss)', async () => {
    const backend = createCpuBackend({ name: 'smoke-lstm' });
    const spec = lstmCase(2, 3, 4, 5, 3);
    const prepared = await prepareNeedleLstm(spec, makeInputs(spec), thisCheckout(backend));
    await prepared.step();
    const after = backend.memory().buffers;
    for (let i = 0; i < 3; i++) {
      await prepared.step();
      expect(backend.memory().buffers).toBe(after);
    }
    prepared.dispose();
    expect(backend.memory().buffers).toBe(0);
  });

  it('parses filters and flags', () => {
    const a = parse(['matmul', '--backend', 'wasm']);
    expect(a.cases.map((c) => c.id)).toEqual(['matmul-128', 'matmul-256', 'matmul-512', 'matmul-1024']);
    expect(a.targets).toEqual(['needle:wasm', 'tfjs:wasm', 'jax:wasm']);
    expect(parse(['matmul', '--large']).cases.at(-1)!.id).toBe('matmul-2048');
    expect(parse(['mlp', '--framework', 'torch']).targets).toEqual(['needle:cpu', 'needle:wasm', 'needle:webgpu', 'torch:cpu']);
    expect(() => parse(['nothing-like-this'])).toThrow(/no case matches/);
  });
});
