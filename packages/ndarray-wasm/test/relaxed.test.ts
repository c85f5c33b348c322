// The relaxed-SIMD build of the kernels (option `simd`): the conformance kit, matmul against an exact
// model of both builds' arithmetic, and the same bits on any thread count.
//
// Node 20 validates relaxed SIMD only with V8's --experimental-wasm-relaxed-simd (NODE_OPTIONS does
// not take V8 flags); it is set here, before this file compiles a module, and turned off again at
// the end, so files that vitest runs later in the same process keep plain Node 20's 'auto' (the
// baseline build). Newer engines have relaxed SIMD on regardless.
import { setFlagsFromString } from 'node:v8';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runBackendConformance } from '@needle/ndarray/testing';
import type { MatmulSpec } from '@needle/ndarray';
import { createWasmBackend, relaxedSimdSupported, type WasmBackend } from '../src';
import { kernelBytes, sharedVariant } from '../src/module';
import { download, randomFloats, upload } from './helpers';

const nodeMajor = Number(process.versions.node.split('.')[0]);
setFlagsFromString('--experimental-wasm-relaxed-simd');
afterAll(() => {
  if (nodeMajor < 22) setFlagsFromString('--no-experimental-wasm-relaxed-simd');
});

runBackendConformance('wasm relaxed SIMD (1 thread)', () => createWasmBackend({ threads: 1, simd: 'relaxed' }));
runBackendConformance('wasm relaxed SIMD (2 threads)', () => createWasmBackend({ threads: 2, simd: 'relaxed' }));

/** The kernel's depth blocks (assembly `matmul`: k split into equal blocks of at most KC = 256). */
function depthBlocks(k: number): [number, number][] {
  const kb = Math.ceil(k / 256);
  const kc = Math.ceil(k / kb);
  const blocks: [number, number][] = [];
  for (let p = 0; p < k; p += kc) blocks.push([p, Math.min(k, p + kc)]);
  return blocks;
}

/**
 * C = A @ B (row-major, no transposes) in the order the micro-kernels compute each element: per depth
 * block a float32 chain s = s + a*b from s = 0, rounded once (`fused`, a fused multiply-add: the
 * product is exact in float64) or twice; each block's sum added to C. Exact model of both builds.
 */
function modelMatmul(A: Float32Array, B: Float32Array, m: number, k: number, n: number, fused: boolean): Float32Array {
  const f = Math.fround;
  const C = new Float32Array(m * n);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let c = 0;
      depthBlocks(k).forEach(([p0, p1], block) => {
        let s = 0;
        for (let p = p0; p < p1; p++) {
          const a = A[i * k + p];
          const b = B[p * n + j];
          s = fused ? f(s + a * b) : f(s + f(a * b));
        }
        c = block === 0 ? s : f(c + s);
      });
      C[i * n + j] = c;
    }
  }
  return C;
}

function sameBits(a: Float32Array, b: Float32Array): boolean {
  const x = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const y = new Uint32Array(b.buffer, b.byteOffset, b.length);
  return x.length === y.length && x.every((v, i) => v === y[i]);
}

describe('relaxed SIMD build', () => {
  const backends: WasmBackend[] = [];
  beforeAll(async () => {
    backends.push(
      await createWasmBackend({ simd: 'baseline' }),
      await createWasmBackend({ simd: 'relaxed' }),
      await createWasmBackend({ simd: 'relaxed', threads: 2 }),
      await createWasmBackend({ simd: 'relaxed', threads: 3, spinMicros: 0 }),
    );
  });
  afterAll(() => backends.forEach((b) => b.destroy()));

  it('is a different binary with the same import and exports as the baseline build', () => {
    const relaxedBytes = kernelBytes('relaxed') as Uint8Array<ArrayBuffer>;
    const bytes = kernelBytes('baseline') as Uint8Array<ArrayBuffer>;
    expect(relaxedBytes.length === bytes.length && relaxedBytes.every((v, i) => v === bytes[i])).toBe(false);
    const relaxed = new WebAssembly.Module(relaxedBytes);
    const baseline = new WebAssembly.Module(bytes);
    expect(WebAssembly.Module.imports(relaxed)).toEqual(WebAssembly.Module.imports(baseline));
    expect(WebAssembly.Module.exports(relaxed)).toEqual(WebAssembly.Module.exports(baseline));
    // sharedVariant's one-byte patch applies to it as well.
    expect(sharedVariant(relaxedBytes).filter((v, i) => v !== relaxedBytes[i]).length).toBe(1);
  });

  it('is chosen by auto where the engine validates it, and can be forced either way', async () => {
    expect(relaxedSimdSupported()).toBe(true);
    expect(backends.map((b) => b.simd)).toEqual(['baseline', 'relaxed', 'relaxed', 'relaxed']);
    const auto = await createWasmBackend();
    expect(auto.simd).toBe('relaxed');
    auto.destroy();
    await expect(createWasmBackend({ simd: 'fma' as 'relaxed' })).rejects.toThrow(`createWasmBackend: simd must be 'auto', 'relaxed' or 'baseline', got "fma"`);
  });

  // Edge tiles (m % 5, n % 8), the 4-column kernel (n % 8 <= 4), two and four depth blocks, and
  // products large enough to be split between threads by rows and by columns.
  const shapes: [number, number, number][] = [[7, 50, 13], [11, 300, 12], [23, 784, 21], [128, 200, 10], [40, 150, 300], [130, 260, 70]];
  for (const [m, k, n] of shapes) {
    it(`matmul ${m}x${k}x${n}: baseline rounds each product, relaxed fuses all or none, the same on 1-3 threads`, () => {
      const A = randomFloats(m * k, m + k);
      const B = randomFloats(k * n, n + 3 * k);
      const spec: MatmulSpec = { batch: 1, m, k, n, aBatchStride: 0, bBatchStride: 0, transA: false, transB: false };
      const results = backends.map((b) => {
        const [a, bb, c] = [upload(b, A), upload(b, B), b.alloc(m * n)];
        b.matmul(a, bb, c, spec);
        const r = download(b, c);
        [a, bb, c].forEach((x) => b.free(x));
        return r;
      });
      const unfused = modelMatmul(A, B, m, k, n, false);
      const fused = modelMatmul(A, B, m, k, n, true);
      // The models differ, so the assertions below tell the builds apart.
      expect(sameBits(fused, unfused)).toBe(false);
      expect(sameBits(results[0], unfused)).toBe(true);
      // relaxed_madd is fused where the hardware has FMA (x86 FMA3, ARM64), else mul + add.
      expect(sameBits(results[1], fused) || sameBits(results[1], unfused)).toBe(true);
      for (const r of results.slice(2)) expect(sameBits(r, results[1])).toBe(true);
    });
  }
});
