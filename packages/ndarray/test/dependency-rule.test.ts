import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';

/** CONTRIBUTING.md section 1: the stack above the ndarray interface, and every backend, depend on @needle/ndarray only. */
const root = new URL('../../../', import.meta.url);
const manifest = (pkg: string) =>
  JSON.parse(readFileSync(new URL(`packages/${pkg}/package.json`, root), 'utf8')) as { dependencies?: Record<string, string>; peerDependencies?: Record<string, string> };

describe('package dependency rule', () => {
  for (const pkg of ['autograd', 'nn', 'optim', 'data', 'safetensors', 'ndarray-cpu', 'ndarray-wasm', 'ndarray-webgpu']) {
    it(`@needle/${pkg} depends on no concrete backend`, () => {
      const deps = Object.keys({ ...manifest(pkg).dependencies, ...manifest(pkg).peerDependencies });
      expect(deps.filter((d) => d.startsWith('@needle/ndarray-'))).toEqual([]);
    });
  }
  for (const pkg of ['ndarray-cpu', 'ndarray-wasm', 'ndarray-webgpu']) {
    it(`backend @needle/${pkg} knows nothing of gradients`, () => {
      const deps = Object.keys(manifest(pkg).dependencies ?? {});
      expect(deps.filter((d) => d.startsWith('@needle/') && d !== '@needle/ndarray')).toEqual([]);
    });
  }
});
