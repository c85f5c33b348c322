// Scratch browser check entry (bundled by scripts/browser-check.mjs): the backend in a page, with and
// without cross-origin isolation.
import { createWasmBackend } from '../src';

async function main(): Promise<string> {
  const backend = await createWasmBackend({ threads: 2 });
  const m = 96, k = 80, n = 72;
  const a = backend.alloc(m * k);
  const b = backend.alloc(k * n);
  const c = backend.alloc(m * n);
  backend.write(a, Float32Array.from({ length: m * k }, (_, i) => (i % 7) - 3));
  backend.write(b, Float32Array.from({ length: k * n }, (_, i) => (i % 5) - 2));
  backend.matmul(a, b, c, { batch: 1, m, k, n, aBatchStride: 0, bBatchStride: 0, transA: false, transB: false });
  const got = await backend.read(c);
  let maxErr = 0;
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let p = 0; p < k; p++) s += (((i * k + p) % 7) - 3) * (((p * n + j) % 5) - 2);
      maxErr = Math.max(maxErr, Math.abs(s - got[i * n + j]));
    }
  }
  // Large enough to be split between the threads.
  const size = 300_001;
  const x = Float32Array.from({ length: size }, (_, i) => ((i % 1000) - 500) / 100);
  const e = backend.alloc(size);
  backend.write(e, x);
  backend.unary('exp', e, e, size);
  const ex = await backend.read(e);
  let expErr = 0;
  for (let i = 0; i < size; i++) expErr = Math.max(expErr, Math.abs(ex[i] - Math.exp(x[i])) / Math.exp(x[i]));
  const result = `isolated=${globalThis.crossOriginIsolated} threads=${backend.threads} maxErr=${maxErr} expRelErr=${expErr.toExponential(1)}`;
  backend.destroy();
  return result;
}

main().then(
  (r) => { document.title = `done ${r}`; },
  (e: Error) => { document.title = `error ${e.message}`; },
);
