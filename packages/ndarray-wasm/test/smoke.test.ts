import { describe, expect, it } from 'vitest';
import { createWasmBackend } from '../src';
import { cpu, download, randomFloats, upload, expectClose } from './helpers';

describe('smoke', () => {
  it('matmul', async () => {
    for (const threads of [1, 2]) {
      const w = await createWasmBackend({ threads });
      expect(w.threads).toBe(threads);
      const m = 67, k = 300, n = 600;
      const A = randomFloats(m * k, 1), B = randomFloats(k * n, 2);
      const spec = { batch: 1, m, k, n, aBatchStride: 0, bBatchStride: 0, transA: false, transB: false };
      const ca = upload(cpu, A), cb = upload(cpu, B), cc = cpu.alloc(m * n);
      cpu.matmul(ca, cb, cc, spec);
      const wa = upload(w, A), wb = upload(w, B), wc = w.alloc(m * n);
      w.matmul(wa, wb, wc, spec);
      expectClose(download(w, wc), download(cpu, cc), 1e-4, 1e-4, 'mm');
      w.destroy();
    }
  });
});
