import { describe, expect, test } from 'vitest';
// The loops are nn's (one definition, run on CPU and WASM by nn's suite): imported by path, so this
// package takes no dependency on @needle/nn or @needle/optim for one test.
import { LEAK_PATTERNS, runLeakPattern } from '../../nn/test/leak-patterns';
import { testBackend } from './gpu';

const gpu = await testBackend();
const STEPS = 200;

describe.runIf(gpu)('the loops a PyTorch user writes do not leak on WebGPU, without tidy', () => {
  for (const p of LEAK_PATTERNS) {
    test(`${p.name}: flat over ${STEPS} steps`, () => {
      const { before, live, after } = runLeakPattern(p, gpu!, STEPS);
      expect(new Set(live).size, `live buffers per step: ${live.slice(0, 5).join(', ')}, ...`).toBe(1);
      expect(after, 'live buffers after teardown').toBe(before);
    });
  }
});
