import { describe, expect, it } from 'vitest';
import { backend } from './helpers';
import { LEAK_PATTERNS, runLeakPattern } from './leak-patterns';

// Also run on WASM by `pnpm test:wasm`, and on WebGPU by packages/ndarray-webgpu/test/leaks.test.ts.
describe('the loops a PyTorch user writes do not leak, without tidy', () => {
  for (const p of LEAK_PATTERNS) {
    it(`${p.name}: flat over 200 steps`, () => {
      const { before, live, after } = runLeakPattern(p, backend, 200);
      const first = live[0];
      live.forEach((n, i) => expect(n, `live buffers after step ${i + 1} (after step 1: ${first})`).toBe(first));
      expect(after, 'live buffers after teardown').toBe(before);
    });
  }
});
