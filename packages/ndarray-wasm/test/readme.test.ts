// The README's opening example, run as written (imports from ../src instead of @needle/ndarray-wasm).
import { randn, setDefaultBackend, tidy } from '@needle/ndarray';
import { expect, it } from 'vitest';
import { createWasmBackend } from '../src';

it('README example: threaded matmul, tidy, no live buffers at the end', async () => {
  const log: unknown[][] = [];
  const console = { log: (...args: unknown[]) => log.push(args) };

  // ---- README code starts here ----
  const backend = await createWasmBackend({ threads: 2 });
  setDefaultBackend(backend);

  const x = randn([256, 512]);
  const y = tidy(() => x.matmul(x.transpose()).maximum(0).sum(1)); // temporaries freed by tidy
  console.log(y.shape, y.toArraySync().slice(0, 3)); // [ 256 ] Float32Array(3) [...]
  // ---- (checked here, before the arrays go) ----
  const xs = x.toArraySync();
  const rowSum = (i: number) => {
    let s = 0;
    for (let j = 0; j < 256; j++) {
      let d = 0;
      for (let p = 0; p < 512; p++) d += xs[i * 512 + p] * xs[j * 512 + p];
      s += Math.max(d, 0);
    }
    return s;
  };
  const ys = y.toArraySync();
  for (const i of [0, 1, 255]) expect(ys[i]).toBeCloseTo(rowSum(i), 1);
  // ---- README code continues ----
  x.dispose();
  y.dispose();
  console.log(backend.memory()); // { buffers: 0, bytes: 0 }
  backend.destroy(); // stops the worker threads
  // ---- README code ends here ----

  expect(backend.threads).toBe(2);
  expect(log[0][0]).toEqual([256]);
  expect(log[1][0]).toEqual({ buffers: 0, bytes: 0 });
});
