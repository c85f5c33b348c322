// Scratch benchmark (not a test): matmul GFLOP/s of the built backend (OTHERS=1 adds elementwise,
// exp and sum timings). Build first:
//   node scripts/build-wasm.mjs && pnpm exec tsup && node scripts/bench.mjs [threads...]
import { createWasmBackend } from '../dist/index.js';

const threadCounts = process.argv.slice(2).map(Number);
const sizes = process.env.SMALL
  ? [[512, 128, 10, true, false], [512, 128, 10, false, false], [128, 512, 10, false, false], [128, 10, 512, false, true], [128, 10, 512, false, false]]
  : [[512, 512, 512, false, false], [1024, 1024, 1024, false, false], [128, 784, 512, false, false], [784, 128, 512, true, false], [128, 512, 784, false, true]];

function bench(backend, [m, k, n, transA, transB]) {
  const a = backend.alloc(m * k);
  const b = backend.alloc(k * n);
  const c = backend.alloc(m * n);
  backend.write(a, Float32Array.from({ length: m * k }, () => Math.random() - 0.5));
  backend.write(b, Float32Array.from({ length: k * n }, () => Math.random() - 0.5));
  const spec = { batch: 1, m, k, n, aBatchStride: 0, bBatchStride: 0, transA, transB };
  const flops = 2 * m * n * k;
  let reps = Math.max(1, Math.round(2e9 / flops));
  for (let i = 0; i < 2; i++) backend.matmul(a, b, c, spec);
  let best = Infinity;
  for (let trial = 0; trial < 5; trial++) {
    const t0 = performance.now();
    for (let i = 0; i < reps; i++) backend.matmul(a, b, c, spec);
    best = Math.min(best, (performance.now() - t0) / reps);
  }
  backend.free(a); backend.free(b); backend.free(c);
  return flops / best / 1e6;
}

/** Microseconds per call of `run` (best of 5 trials of ~100 ms). */
function time(run) {
  for (let i = 0; i < 3; i++) run();
  let best = Infinity;
  for (let trial = 0; trial < 5; trial++) {
    let n = 0;
    const t0 = performance.now();
    while (performance.now() - t0 < 100) {
      run();
      n++;
    }
    best = Math.min(best, ((performance.now() - t0) * 1000) / n);
  }
  return best;
}

function benchOthers(backend) {
  for (const size of [1 << 14, 1 << 16, 1 << 20]) {
    const a = backend.alloc(size);
    const b = backend.alloc(size);
    const c = backend.alloc(size);
    backend.write(a, Float32Array.from({ length: size }, () => Math.random()));
    backend.write(b, Float32Array.from({ length: size }, () => Math.random()));
    const add = time(() => backend.ewise('add', a, b, c, size));
    const exp = time(() => backend.unary('exp', a, c, size));
    const sum = time(() => backend.reduce('sum', a, c, 1, size));
    console.log(`threads=${backend.threads} n=${size}: ewise add ${add.toFixed(1)} us, exp ${exp.toFixed(1)} us, sum ${sum.toFixed(1)} us`);
    backend.free(a); backend.free(b); backend.free(c);
  }
}

for (const threads of threadCounts.length ? threadCounts : [1, 2]) {
  const backend = await createWasmBackend({ threads });
  for (const s of sizes) {
    const gflops = bench(backend, s);
    console.log(`threads=${backend.threads} m=${s[0]} k=${s[1]} n=${s[2]} transA=${s[3]} transB=${s[4]}: ${gflops.toFixed(1)} GFLOP/s`);
  }
  if (process.env.OTHERS) benchOthers(backend);
  backend.destroy();
}
