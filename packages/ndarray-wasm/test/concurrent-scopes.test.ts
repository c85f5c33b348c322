import { describe, expect, it } from 'vitest';
import { DEPENDENCIES, Generator, NDArray, disposeOnError, full, scope, tidy, type Backend, type Scope } from '@needle/ndarray';
import { createCpuBackend } from '@needle/ndarray-cpu';
import { createWasmBackend } from '../src';

/**
 * A training loop that awaits inside every step (reading the loss, as a loop that logs does), using a
 * scope across the await: least squares by gradient descent on NDArrays. Returns the losses.
 */
async function train(backend: Backend, steps: number, seed: number, keyed: boolean, failed: Scope[] = []): Promise<{ losses: number[]; live: number[] }> {
  const g = new Generator(seed);
  const x = NDArray.fromData(g.fillNormal(new Float32Array(16 * 4), 0, 1), [16, 4], backend);
  const trueW = NDArray.fromData(Float32Array.of(1, -2, 0.5, 3), [4, 1], backend);
  const y = x.matmul(trueW);
  let w = NDArray.fromData(new Float32Array(4), [4, 1], backend);
  const losses: number[] = [];
  const live: number[] = [];
  for (let step = 0; step < steps; step++) {
    const s = keyed ? scope({ backend }) : scope();
    const err = x.matmul(w).sub(y);
    const loss = err.mul(err).mean();
    const next = w.sub(tidy(() => x.transpose().matmul(err).mul(0.05 / 16)));
    // The other loop runs here, creating and disposing its own arrays in its own scopes.
    losses.push(await loss.item());
    await new Promise((r) => setTimeout(r, 0));
    try {
      s.end(next);
    } catch (e) {
      failed.push(s);
      throw e;
    }
    w.dispose();
    w = next;
    live.push(backend.memory().buffers);
  }
  [x, trueW, y, w].forEach((a) => a.dispose());
  return { losses, live };
}

describe('scopes under concurrency', () => {
  it('two async loops on two backends, each with scope({ backend }) across await, under Promise.all', async () => {
    const cpu = createCpuBackend({ name: 'cpu-concurrent' });
    const wasm = await createWasmBackend();
    const alone = await train(cpu, 30, 1, true);
    const aloneWasm = await train(wasm, 30, 2, true);
    const startCpu = cpu.memory().buffers;
    const startWasm = wasm.memory().buffers;
    const [a, b] = await Promise.all([train(cpu, 30, 1, true), train(wasm, 30, 2, true)]);
    // Neither disposed the other's arrays: same losses as when run alone, and it really trained.
    expect(a.losses).toEqual(alone.losses);
    expect(b.losses).toEqual(aloneWasm.losses);
    expect(a.losses[29]).toBeLessThan(a.losses[0] * 0.5);
    // Flat on both backends, and everything freed at the end.
    a.live.forEach((n) => expect(n).toBe(a.live[0]));
    b.live.forEach((n) => expect(n).toBe(b.live[0]));
    expect(cpu.memory().buffers).toBe(startCpu);
    expect(wasm.memory().buffers).toBe(startWasm);
  });

  it('unkeyed scopes under Promise.all fail loudly instead of disposing each other\'s arrays', async () => {
    const cpu = createCpuBackend({ name: 'cpu-concurrent-unkeyed' });
    const wasm = await createWasmBackend();
    const failed: Scope[] = [];
    const results = await Promise.allSettled([train(cpu, 5, 1, false, failed), train(wasm, 5, 2, false, failed)]);
    const errors = results.flatMap((r) => (r.status === 'rejected' ? [String(r.reason)] : []));
    expect(errors.length).toBeGreaterThan(0);
    for (const e of errors) expect(e).toMatch(/scope.end: a scope opened after this one and collecting the same backend is still open.*scope\({ backend }\)/);
    // Once the other loop is done, the failed scopes end cleanly (innermost first).
    for (const s of failed.reverse()) s.end();
  });
});

describe('scope rules', () => {
  it('a keyed scope collects only its backend (by instance or name); an inner tidy still collects everything', () => {
    const cpu = createCpuBackend({ name: 'cpu-keyed' });
    const other = createCpuBackend({ name: 'cpu-other' });
    const outer = scope({ backend: other });
    const s = scope({ backend: 'cpu-keyed' });
    const a = full([2], 1, { backend: cpu });
    const b = full([2], 2, { backend: other });
    const kept = tidy(() => [full([1], 3, { backend: cpu }), full([1], 4, { backend: other })]);
    s.end();
    expect([a.disposed, b.disposed, kept[0].disposed, kept[1].disposed]).toEqual([true, false, true, false]);
    outer.end();
    expect([b.disposed, kept[1].disposed]).toEqual([true, true]);
    expect([cpu.memory().buffers, other.memory().buffers]).toEqual([0, 0]);
  });

  it('disposeOnError frees what fn made only when it throws; otherwise its arrays stay in the enclosing scope', () => {
    const cpu = createCpuBackend({ name: 'cpu-on-error' });
    expect(() => disposeOnError(() => {
      full([3], 1, { backend: cpu });
      throw new Error('part-way');
    })).toThrow('part-way');
    expect(cpu.memory().buffers).toBe(0);
    const s = scope();
    const made = disposeOnError(() => [full([3], 1, { backend: cpu }), full([3], 2, { backend: cpu })]);
    expect(made.map((a) => a.disposed)).toEqual([false, false]);
    s.end();
    expect(made.map((a) => a.disposed)).toEqual([true, true]);
  });

  it('an owner\'s DEPENDENCIES made inside the scope survive with it; others made there are disposed', () => {
    const cpu = createCpuBackend({ name: 'cpu-deps' });
    const outside = full([1], 0, { backend: cpu });
    const s = scope();
    const needed = full([2], 1, { backend: cpu });
    const unneeded = full([2], 2, { backend: cpu });
    const owner = { disposed: false, dispose() { this.disposed = true; }, *[DEPENDENCIES]() { yield needed; yield outside; } };
    s.end(owner);
    expect([needed.disposed, unneeded.disposed, outside.disposed]).toEqual([false, true, false]);
    [needed, outside].forEach((a) => a.dispose());
  });
});
