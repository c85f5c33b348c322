import { defineProgram, type Backend, type ProgramLayouts } from '@needle/ndarray';
import { CpuBackend } from '@needle/ndarray-cpu';
import { describe, expect, test } from 'vitest';
import { programStrides, programVec4 } from '../src/kernels/program';
import { testBackend } from './gpu';
import { expectClose, randomArray, withSpecials } from './helpers';

const gpu = await testBackend();
const cpu = new CpuBackend();

/** Run one program call with explicit layouts on a backend; returns every output buffer's contents. */
async function run(be: Backend, inputs: Float32Array[], outSizes: number[], size: number, layouts?: ProgramLayouts, inPlace = false): Promise<Float32Array[]> {
  const p = defineProgram(3, 1, ([x, y, z], [s]) => x.mul(s).add(y).maximum(z.exp()));
  const ins = inputs.map((d) => {
    const b = be.alloc(d.length);
    be.write(b, d);
    return b;
  });
  const outs = inPlace ? [ins[0]] : outSizes.map((n) => {
    const b = be.alloc(n);
    be.fill(b, -7, n);
    return b;
  });
  be.elementwise!(p, ins, [1.5], outs, size, layouts);
  const r = await Promise.all((inPlace ? ins : outs).map((b) => be.read(b)));
  for (const b of new Set([...ins, ...outs])) be.free(b);
  return inPlace ? [r[0]] : r;
}

describe('which program calls run four elements per invocation', () => {
  const shape = [3, 8];
  const lay = (inputs: ProgramLayouts['inputs'], outputs: ProgramLayouts['outputs'] = [undefined]): ProgramLayouts => ({ shape, inputs, outputs });
  const vec4 = (l: ProgramLayouts | undefined, size = 24) => programVec4(l, programStrides(l, 3, 1), size, 3, 1);
  test('compact calls when the size is a multiple of 4', () => {
    expect(vec4(undefined)).toEqual({ inputs: ['c', 'c', 'c'], outputs: ['c'] });
    expect(vec4(undefined, 22)).toBeUndefined();
  });
  test('strided operands contiguous and aligned along the last axis, or broadcast along it', () => {
    expect(vec4(lay([{ strides: [8, 1], offset: 8 }, { strides: [0, 1], offset: 0 }, { strides: [1, 0], offset: 5 }]))).toEqual({ inputs: ['v', 'v', 'b'], outputs: ['c'] });
    expect(vec4(lay([undefined, undefined, undefined], [{ strides: [16, 1], offset: 4 }]))).toEqual({ inputs: ['c', 'c', 'c'], outputs: ['v'] });
  });
  test('four scalar accesses when a view is unaligned or not contiguous along the last axis', () => {
    expect(vec4(lay([{ strides: [8, 1], offset: 2 }, undefined, undefined]))?.inputs).toEqual(['s', 'c', 'c']);
    expect(vec4(lay([{ strides: [10, 1], offset: 0 }, undefined, undefined]))?.inputs).toEqual(['s', 'c', 'c']);
    expect(vec4(lay([{ strides: [1, 3], offset: 0 }, undefined, undefined], [{ strides: [1, 3], offset: 0 }]))).toEqual({ inputs: ['s', 'c', 'c'], outputs: ['s'] });
  });
  test('not when the four elements would straddle rows', () => {
    expect(vec4({ shape: [4, 6], inputs: [{ strides: [6, 1], offset: 0 }, undefined, undefined], outputs: [undefined] })).toBeUndefined();
  });
});

describe.runIf(gpu)('four-element program kernels equal the CPU reference', () => {
  const g = gpu!;
  const data = (n: number, seed: number) => withSpecials(randomArray(n, seed, -3, 3), seed + 1);

  test('compact operands, and an output written into its input in place', async () => {
    const inputs = [data(64, 1), data(64, 3), data(64, 5)];
    for (const inPlace of [false, true]) {
      const [expected] = await run(cpu, inputs, [64], 64, undefined, inPlace);
      const [actual] = await run(g, inputs, [64], 64, undefined, inPlace);
      // exp is within an ulp or two of the CPU's, like the unfused kernel's (TOL in kernels.test.ts).
      expectClose(actual, expected, 2e-6, 0, `in place: ${inPlace}`);
    }
  });

  test('rows of a matrix, a broadcast row, a broadcast column and a strided output', async () => {
    const layouts: ProgramLayouts = {
      shape: [3, 8],
      inputs: [{ strides: [12, 1], offset: 4 }, { strides: [0, 1], offset: 8 }, { strides: [2, 0], offset: 1 }],
      outputs: [{ strides: [16, 1], offset: 4 }],
    };
    const inputs = [data(40, 7), data(16, 9), data(8, 11)];
    const [expected] = await run(cpu, inputs, [48], 24, layouts);
    const [actual] = await run(g, inputs, [48], 24, layouts);
    expectClose(actual, expected, 2e-6, 0, 'strided');
    // Elements the output view does not cover keep the fill value.
    expect(actual[0]).toBe(-7);
    expect(actual[12]).toBe(-7);
  });

  test('transposed and unaligned views (four scalar accesses) beside compact operands', async () => {
    const layouts: ProgramLayouts = {
      shape: [4, 8],
      inputs: [{ strides: [1, 4], offset: 0 }, undefined, { strides: [9, 1], offset: 3 }],
      outputs: [{ strides: [1, 5], offset: 2 }],
    };
    const inputs = [data(32, 13), data(32, 15), data(40, 17)];
    const [expected] = await run(cpu, inputs, [44], 32, layouts);
    const [actual] = await run(g, inputs, [44], 32, layouts);
    expectClose(actual, expected, 2e-6, 0, 'transposed');
    expect(actual[0]).toBe(-7);
  });
});
