/**
 * The per-step kernel counter the bench prints beside steps/s: backend.stats() around one warm step,
 * on the CPU backend (the counts are the same on every backend: a launch is a Backend method call).
 */
import { describe, expect, it } from 'vitest';
import { mlpCase, makeInputs, matmulCase } from '../src/cases';
import { NeedleEngine } from '../src/engines/needle';
import { kernelsPerStep } from '../src/handler';

describe('kernels per step', () => {
  it('counts one matmul launch for the matmul case and 5 matmuls in an MLP step', async () => {
    const engine = new NeedleEngine('needle:cpu', 'cpu');
    await engine.init({ threads: 1 });
    try {
      const mm = matmulCase(8);
      const p = await engine.prepare(mm, makeInputs(mm));
      await p.step();
      expect(await kernelsPerStep(p)).toEqual({ total: 1, byFamily: { matmul: 1 } });
      p.dispose();

      const spec = mlpCase(4, 12, 8, 3);
      const mlp = await engine.prepare(spec, makeInputs(spec));
      await mlp.step();
      const first = await kernelsPerStep(mlp);
      const second = await kernelsPerStep(mlp);
      // Forward x@W1, h@W2 (bias and relu in the epilogues: matmulProgram); backward
      // dH = dlogits@W2^T, dW2 = h^T@dlogits, dW1 = x^T@dH.
      expect([first!.byFamily.matmulProgram, first!.byFamily.matmul]).toEqual([2, 3]);
      // The SGD update: one fused launch per parameter (W1, b1, W2, b2), written in place (no
      // copy); the relu mask and the cross-entropy gradient; the two reduce programs of the
      // cross-entropy, two bias-gradient reductions and the backward's seed.
      expect(first!.byFamily).toEqual({ matmulProgram: 2, matmul: 3, elementwise: 4 + 2, reduceProgram: 2, reduce: 2, fill: 1 });
      expect(first!.total).toBe(16);
      expect(second).toEqual(first); // deterministic from one warm step to the next
      mlp.dispose();
    } finally {
      engine.close();
    }
  });
});
