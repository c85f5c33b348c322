import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import * as A from '../src/index';
import { Tensor, tensor } from '../src/index';
import './helpers';

interface Packed {
  shape: number[];
  data: number[];
}

interface Case {
  name: string;
  op: string;
  options: Record<string, unknown>;
  inputs: Packed[];
  weight: Packed;
  output: Packed;
  grads: Packed[];
}

/** Golden values from PyTorch, written by scripts/gen_fixtures.py. */
const fixtures = JSON.parse(readFileSync(new URL('./fixtures/torch_ops.json', import.meta.url), 'utf8')) as { cases: Case[] };

function run(c: Case, xs: Tensor[]): Tensor {
  const o = c.options as Record<string, never>;
  switch (c.op) {
    case 'conv2d':
      return A.conv2d(xs[0], xs[1], { bias: o.bias ? xs[2] : null, stride: o.stride, padding: o.padding, dilation: o.dilation, groups: o.groups });
    case 'maxPool2d':
      return A.maxPool2d(xs[0], o.kernelSize, { stride: o.stride, padding: o.padding });
    case 'avgPool2d':
      return A.avgPool2d(xs[0], o.kernelSize, { stride: o.stride, padding: o.padding });
    case 'logsumexp':
      return A.logsumexp(xs[0], o.axis, o.keepdims);
    case 'softmax':
      return A.softmax(xs[0], o.axis);
    case 'logSoftmax':
      return A.logSoftmax(xs[0], o.axis);
    case 'matmul':
      return A.matmul(xs[0], xs[1]);
    case 'gelu':
      return A.gelu(xs[0], { approximate: o.approximate });
    case 'erf':
      return A.erf(xs[0]);
    case 'gather':
      return A.gather(xs[0], o.axis, tensor(o.index as number[], { shape: o.indexShape as number[] }));
    default:
      throw new Error(`fixture op ${c.op} has no runner`);
  }
}

function expectClose(name: string, got: Float32Array, shape: readonly number[], want: Packed, atol = 1e-4, rtol = 1e-4): void {
  expect([...shape], `${name}: shape`).toEqual(want.shape);
  expect(got.length).toBe(want.data.length);
  let worst = 0;
  let at = -1;
  want.data.forEach((e, i) => {
    const excess = Math.abs(got[i] - e) - (atol + rtol * Math.abs(e));
    if (excess > worst || Number.isNaN(got[i])) {
      worst = Number.isNaN(got[i]) ? Infinity : excess;
      at = i;
    }
  });
  expect(at, at >= 0 ? `${name}: element ${at} is ${got[at]}, PyTorch gives ${want.data[at]}` : '').toBe(-1);
}

describe('values and gradients match PyTorch', () => {
  it('has the fixture cases', () => {
    expect(fixtures.cases.length).toBeGreaterThanOrEqual(19);
  });

  for (const c of fixtures.cases) {
    it(c.name, async () => {
      const xs = c.inputs.map((p) => tensor(p.data, { shape: p.shape, requiresGrad: true }));
      const out = run(c, xs);
      expectClose(`${c.name} output`, await out.toArray(), out.shape, c.output);
      out.backward(tensor(c.weight.data, { shape: c.weight.shape }));
      for (let i = 0; i < xs.length; i++) {
        expectClose(`${c.name} gradient ${i}`, await xs[i].grad!.toArray(), xs[i].shape, c.grads[i]);
      }
      xs.forEach((x) => x.dispose());
      out.dispose();
    });
  }
});
