import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NDArray, defineProgram, elementwise, reduceProgram, reduceProgramUnfused, scope, statsDiff, type ProgramReduceOp } from '@needle/ndarray';
import { createWasmBackend, type WasmBackend } from '../src';
import { randomFloats, SPECIAL } from './helpers';

// The fused kernels against this backend's own unfused composition (what the frontend runs without
// them), bit for bit, at the shapes where the wasm kernels have edges: micro-tile remainders
// (m % 5, n % 8), row blocks (m > 120), k slices (k > 256, accumulated in C before the epilogue),
// column blocks (n > 512), batches, operand offsets, and 1 vs 2 threads.

const biasRelu = defineProgram(2, 0, ([y, b]) => y.add(b).maximum(0));
const scaledTanh = defineProgram(3, 1, ([y, r, c], [s]) => y.mul(s).add(r).tanh().sub(c));
const square = defineProgram(1, 0, ([x]) => x.mul(x));
const shifted = defineProgram(2, 1, ([x, y], [s]) => x.sub(y).mul(s));

function sameBits(got: Float32Array, want: Float32Array, what: string): void {
  expect(got.length, `${what}: length`).toBe(want.length);
  const i = got.findIndex((x, k) => !Object.is(x, want[k]) && !(Number.isNaN(x) && Number.isNaN(want[k])));
  expect(i, `${what}: element ${i} is ${got[i]}, the composition gives ${want[i]}`).toBe(-1);
}

/** Random data with a special value every `every` elements (0: none). */
function data(n: number, seed: number, every = 0): Float32Array {
  const d = randomFloats(n, seed);
  if (every) for (let i = 0; i < n; i += every) d[i] = SPECIAL[(i / every + seed) % SPECIAL.length];
  return d;
}

const backends: WasmBackend[] = [];
beforeAll(async () => {
  backends.push(await createWasmBackend({ threads: 1 }), await createWasmBackend({ threads: 2 }));
});
afterAll(() => backends.forEach((b) => b.destroy()));

describe('matmulProgram on wasm equals matmul then elementwise', () => {
  // [batch, m, k, n, transA, transB]
  const shapes: [number, number, number, number, boolean, boolean][] = [
    [1, 128, 33, 10, false, false],
    [1, 127, 300, 600, false, false],
    [1, 121, 40, 9, true, false],
    [3, 7, 513, 17, false, true],
    [2, 13, 5, 130, true, true],
    [1, 1, 1, 1, false, false],
    // Large enough to split on 2 threads: by rows (m > n), by columns (n >= m; epilogue per row of
    // each thread's columns), by batch.
    [1, 600, 300, 40, false, false],
    [1, 40, 200, 700, false, true],
    [4, 64, 64, 64, false, false],
  ];
  for (const [batch, m, k, n, transA, transB] of shapes) {
    it(`${batch}x${m}x${k}x${n}${transA ? ' transA' : ''}${transB ? ' transB' : ''}, bias + relu and a three-input epilogue, on 1 and 2 threads`, () => {
      const results: Float32Array[] = [];
      for (const be of backends) {
        const seed = batch * 1000 + m * 10 + n;
        const a = NDArray.fromData(data(batch * m * k, seed, 17), transA ? [batch, k, m] : [batch, m, k], be);
        const b = NDArray.fromData(data(k * n, seed + 1), transB ? [n, k] : [k, n], be);
        const opA = transA ? a.transpose() : a;
        const opB = transB ? b.transpose() : b;
        const bias = NDArray.fromData(data(n, seed + 2, 3), [n], be);
        const resid = NDArray.fromData(data(batch * m * n, seed + 3), [batch, m, n], be);
        const col = NDArray.fromData(data(m, seed + 4), [m, 1], be);
        const before = be.stats();
        const fused = [
          opA.matmul(opB, { epilogue: { program: biasRelu, inputs: [bias] } }),
          opA.matmul(opB, { epilogue: { program: scaledTanh, inputs: [resid, col], scalars: [0.37] } }),
        ];
        const d = statsDiff(be.stats(), before);
        expect([d.kernels.matmulProgram, d.kernels.matmul, d.kernels.elementwise]).toEqual([2, 0, 0]);
        const product = opA.matmul(opB);
        const [want1] = elementwise(biasRelu, [product, bias]);
        const [want2] = elementwise(scaledTanh, [product, resid, col], [0.37]);
        sameBits(fused[0].toArraySync(), want1.toArraySync(), `bias + relu, ${be.threads} thread(s)`);
        sameBits(fused[1].toArraySync(), want2.toArraySync(), `three-input epilogue, ${be.threads} thread(s)`);
        results.push(fused[1].toArraySync());
        for (const x of [a, b, opA, opB, bias, resid, col, product, want1, want2, ...fused]) if (!x.disposed) x.dispose();
        expect(be.memory().buffers).toBe(0);
      }
      sameBits(results[1], results[0], '2 threads vs 1');
    });
  }

  it('k = 0: the product is zeros, then the epilogue (called on the backend directly)', () => {
    for (const be of backends) {
      const bias = be.alloc(4);
      be.write(bias, Float32Array.from([-1, 2, -0, 3]));
      const out = be.alloc(3 * 4);
      const a = be.alloc(1);
      be.matmulProgram(a, a, out, { batch: 1, m: 3, k: 0, n: 4, aBatchStride: 0, bBatchStride: 0, transA: false, transB: false }, {
        program: biasRelu, inputs: [bias], scalars: [], layouts: [{ strides: [0, 0, 1], offset: 0 }],
      });
      sameBits(be.readSync!(out), Float32Array.from([0, 2, 0, 3, 0, 2, 0, 3, 0, 2, 0, 3]), `k = 0, ${be.threads} thread(s)`);
      [bias, out, a].forEach((x) => be.free(x));
    }
  });

  it('reads operands at offsets and writes into a slice of a bigger array in one launch', () => {
    for (const be of backends) {
      const s = scope();
      const bigA = NDArray.fromData(data(9 * 37, 5, 11), [9, 37], be);
      const bigB = NDArray.fromData(data(3 * 37 * 21, 6), [3, 37, 21], be);
      const bias = NDArray.fromData(data(21, 7), [21], be);
      const a = bigA.get('2:8');
      const b = bigB.get(2);
      const target = NDArray.fromData(new Float32Array(4 * 6 * 21).fill(-7), [4, 6, 21], be);
      const before = be.stats();
      a.matmul(b, { out: target.get(1), epilogue: { program: biasRelu, inputs: [bias] } });
      const d = statsDiff(be.stats(), before);
      expect([d.launches, d.kernels.compact]).toEqual([1, 0]);
      const [want] = elementwise(biasRelu, [a.compact().matmul(b.compact()), bias]);
      sameBits(target.get(1).toArraySync(), want.toArraySync(), `offsets, ${be.threads} thread(s)`);
      expect([...target.get(0).toArraySync(), ...target.get(2).toArraySync()].every((v) => v === -7)).toBe(true);
      s.end();
      expect(be.memory().buffers).toBe(0);
    }
  });
});

describe('reduceProgram on wasm equals elementwise then reduce', () => {
  // [outSize, reduceSize]: rows of 4 (the four-rows-at-a-time reduce), around the one-pass
  // logsumexp limit (4096), and rows long enough for the sum to be split between threads.
  const shapes: [number, number][] = [[37, 4], [5, 33], [3, 4096], [2, 4097], [2, 300_001]];
  const ops: ProgramReduceOp[] = ['sum', 'max', 'min', 'argmax', 'argmin', 'logsumexp'];
  for (const [outSize, reduceSize] of shapes) {
    it(`${outSize}x${reduceSize}, every reduction, special values and non-finite rows, on 1 and 2 threads`, () => {
      const results = new Map<string, Float32Array>();
      for (const be of backends) {
        const n = outSize * reduceSize;
        const xData = data(n, outSize + reduceSize, 97);
        // Row 1 all -Infinity (logsumexp -Infinity), row 2 holds +Infinity (logsumexp +Infinity).
        if (outSize > 2) {
          xData.fill(-Infinity, reduceSize, 2 * reduceSize);
          xData[2 * reduceSize + 1] = Infinity;
        }
        const x = NDArray.fromData(xData, [outSize, reduceSize], be);
        const y = NDArray.fromData(data(reduceSize, 3), [reduceSize], be);
        const xStored = NDArray.fromData(xData, [reduceSize, outSize], be);
        const xt = xStored.transpose();
        for (const op of ops) {
          for (const [label, program, inputs, scalars] of [
            ['square', square, [x], []],
            ['shifted, broadcast and transposed inputs', shifted, [xt, y], [1.5]],
          ] as const) {
            const before = be.stats();
            const got = reduceProgram(op, program, [...inputs], [...scalars], { axis: 1 });
            const d = statsDiff(be.stats(), before);
            expect([d.launches, d.kernels.reduceProgram], `${op} ${label}: launches`).toEqual([1, 1]);
            const want = reduceProgramUnfused(op, program, [...inputs], [...scalars], { axis: 1 });
            const g = got.toArraySync();
            sameBits(g, want.toArraySync(), `${op} of ${label}, ${be.threads} thread(s)`);
            const key = `${op} ${label}`;
            if (results.has(key)) sameBits(g, results.get(key)!, `${key}: 2 threads vs 1`);
            else results.set(key, g);
            got.dispose();
            want.dispose();
          }
        }
        for (const a of [x, y, xt, xStored]) a.dispose();
        expect(be.memory().buffers).toBe(0);
      }
    });
  }
});
