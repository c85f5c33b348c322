/**
 * Runs in the page: a kernel suite on navigator.gpu compared with the CPU reference. Results go to
 * `window.__needle` for the Playwright test to check.
 */
import { BINARY_OPS, REDUCE_OPS, UNARY_OPS, type Backend, type DeviceBuffer } from '@needle/ndarray';
import { CpuBackend } from '@needle/ndarray-cpu';
import { createWebGPUBackend } from '../../src/index';
import { randomArray, withSpecials } from '../data';

interface Outcome { checks: number; failures: string[]; adapter: string; error?: string }

function close(x: number, y: number, rtol: number): boolean {
  if (Number.isNaN(y)) return Number.isNaN(x);
  if (!Number.isFinite(y)) return x === y;
  return Math.abs(x - y) <= 1e-5 + rtol * Math.abs(y);
}

async function run(): Promise<Outcome> {
  const gpu = await createWebGPUBackend();
  const cpu = new CpuBackend();
  const out: Outcome = { checks: 0, failures: [], adapter: gpu.device.adapterInfo?.description ?? gpu.device.adapterInfo?.vendor ?? '' };
  const check = async (what: string, inputs: Float32Array[], size: number, f: (be: Backend, ins: DeviceBuffer[], o: DeviceBuffer) => void, rtol = 2e-5) => {
    const res: Float32Array[] = [];
    for (const be of [cpu, gpu] as Backend[]) {
      const ins = inputs.map((d) => {
        const b = be.alloc(d.length);
        be.write(b, d);
        return b;
      });
      const o = be.alloc(size);
      f(be, ins, o);
      res.push(await be.read(o));
      for (const b of [...ins, o]) be.free(b);
    }
    out.checks++;
    const i = res[0].findIndex((y, j) => !close(res[1][j], y, rtol));
    if (i >= 0) out.failures.push(`${what}: element ${i} is ${res[1][i]}, expected ${res[0][i]}`);
  };
  for (const n of [5, 1024]) {
    const a = withSpecials(randomArray(n, 1, -3, 3), 2);
    const b = withSpecials(randomArray(n, 3, -3, 3), 4).map((y, i) => (i % 2 ? Math.round(y) : y));
    for (const op of BINARY_OPS) {
      await check(`ewise ${op} n=${n}`, [a, b], n, (be, [x, y], o) => be.ewise(op, x, y, o, n));
      await check(`scalar ${op} n=${n}`, [a], n, (be, [x], o) => be.scalar(op, x, 1.5, o, n));
    }
    for (const op of UNARY_OPS) await check(`unary ${op} n=${n}`, [a], n, (be, [x], o) => be.unary(op, x, o, n));
    await check(`where n=${n}`, [a, a, b], n, (be, [c, x, y], o) => be.where(c, x, y, o, n));
  }
  for (const [outSize, r] of [[6, 7], [3, 300], [1, 5000]]) {
    const a = randomArray(outSize * r, 5).map((x) => Math.round(x * 4) / 4);
    for (const op of REDUCE_OPS) await check(`reduce ${op} ${outSize}x${r}`, [a], outSize, (be, [x], o) => be.reduce(op, x, o, outSize, r), 1e-4);
  }
  for (const [m, k, n, transA, transB] of [[17, 33, 9, false, true], [64, 20, 48, true, false], [3, 5, 7, false, false]] as const) {
    await check(`matmul ${m}x${k}x${n}`, [randomArray(m * k, 6), randomArray(k * n, 7)], m * n,
      (be, [x, y], o) => be.matmul(x, y, o, { batch: 1, m, k, n, aBatchStride: 0, bBatchStride: 0, transA, transB }), 1e-4);
  }
  await check('compact (transpose + flip)', [randomArray(24, 8)], 24, (be, [x], o) => be.compact(x, o, { shape: [4, 6], strides: [1, -4], offset: 20 }), 0);
  gpu.destroy();
  return out;
}

const w = window as unknown as { __needle?: Outcome | { error: string } };
run().then(
  (r) => { w.__needle = r; },
  (e: Error) => { w.__needle = { checks: 0, failures: [], adapter: '', error: `${e.name}: ${e.message}` }; },
);
