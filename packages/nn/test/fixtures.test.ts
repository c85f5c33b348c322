/**
 * Layer outputs and gradients against PyTorch (scripts/gen_fixtures.py writes ./fixtures). Each case's
 * loss is sum(out * g) with a random g, so every output element contributes a distinct gradient.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { array, type NDArray } from '@needle/ndarray';
import { Tensor, mul, noGrad, sum, tensor } from '@needle/autograd';
import {
  AvgPool2d, BatchNorm1d, BatchNorm2d, Conv2d, CrossEntropyLoss, Embedding, GELU, LayerNorm, Linear, MSELoss, MaxPool2d,
} from '../src/index';
import { expectValues, liveBuffers, type Nested } from './helpers';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Json = any;

function fixture(name: string): Json {
  return JSON.parse(readFileSync(new URL(`./fixtures/${name}.json`, import.meta.url), 'utf8'));
}

/** it.each rows [label, case] for a fixture file holding a list of cases. */
function cases(name: string, label: (c: Json, i: number) => string): [string, Json][] {
  return (fixture(name) as Json[]).map((c, i): [string, Json] => [label(c, i), c]);
}

function nd(v: Nested): NDArray {
  return array(v);
}

/** out = module(x); backward of sum(out * g); returns out and x (grad filled). Caller disposes. */
function forwardBackward(m: { forward(x: Tensor): Tensor }, xv: Nested, gv: Nested): { y: Tensor; x: Tensor } {
  const x = tensor(xv, { requiresGrad: true });
  const y = m.forward(x);
  const yd = y.detach();
  const g = tensor(gv);
  const loss = sum(mul(y, g));
  loss.backward();
  [loss, g].forEach((t) => t.dispose());
  return { y: yd, x };
}

describe('Linear vs PyTorch', () => {
  it.each(cases('linear', (c, i) => `case ${i}: x of rank ${Array.isArray(c.x[0][0]) ? 3 : 2}, bias=${c.bias !== null}`))('%s', async (_i, c: Json) => {
    const lin = new Linear(3, 2, { bias: c.bias !== null });
    const sd: Record<string, NDArray> = { weight: nd(c.weight) };
    if (c.bias !== null) sd.bias = nd(c.bias);
    lin.loadStateDict(sd);
    Object.values(sd).forEach((a) => a.dispose());
    const { y, x } = forwardBackward(lin, c.x, c.g);
    await expectValues(y, c.y, 1e-5);
    await expectValues(x.grad!, c.dx, 1e-5);
    await expectValues(lin.weight.grad!, c.dweight, 1e-5);
    if (c.bias !== null) await expectValues(lin.bias!.grad!, c.dbias, 1e-5);
    [x, y].forEach((t) => t.dispose());
    lin.dispose();
  });
});

describe('GELU vs PyTorch', () => {
  it.each([['tanh', 'gelu'], ['none', 'gelu_exact']] as const)('approximate=%s: values and gradients', async (approximate, file) => {
    const c = fixture(file);
    const { y, x } = forwardBackward(new GELU({ approximate }), c.x, c.g);
    await expectValues(y, c.y, 1e-5);
    await expectValues(x.grad!, c.dx, 1e-5);
    [x, y].forEach((t) => t.dispose());
  });

  it('defaults to the exact form and rejects an unknown approximation', () => {
    expect(new GELU().approximate).toBe('none');
    expect(() => new GELU({ approximate: 'erf' as 'none' })).toThrow(/GELU: approximate must be 'none' or 'tanh', got erf/);
  });
});

describe('BatchNorm vs PyTorch', () => {
  const bnCases: [string, Json][] = [
    ...cases('batchnorm1d', (c) => `1d ${c.train[0].x.length}x${c.numFeatures}${Array.isArray(c.train[0].x[0][0]) ? 'xL' : ''} momentum=${c.momentum}`),
    ...cases('batchnorm2d', (c) => `2d momentum=${c.momentum}`),
  ];
  it.each(bnCases)('%s: train steps, running stats, eval', async (_name, c: Json) => {
    const is2d = Array.isArray(c.train[0].x[0][0]?.[0]);
    const bn = is2d ? new BatchNorm2d(c.numFeatures, { momentum: c.momentum }) : new BatchNorm1d(c.numFeatures, { momentum: c.momentum });
    const w = nd(c.weight);
    const b = nd(c.bias);
    noGrad(() => bn.weight!.assign(w));
    noGrad(() => bn.bias!.assign(b));
    w.dispose();
    b.dispose();
    for (const step of c.train) {
      bn.zeroGrad();
      const { y, x } = forwardBackward(bn, step.x, step.g);
      await expectValues(y, step.y, 1e-4);
      await expectValues(x.grad!, step.dx, 1e-4);
      await expectValues(bn.weight!.grad!, step.dweight, 1e-4);
      await expectValues(bn.bias!.grad!, step.dbias, 1e-4);
      await expectValues(bn.runningMean!, step.runningMean, 1e-5);
      await expectValues(bn.runningVar!, step.runningVar, 1e-5);
      expect(await bn.numBatchesTracked!.item()).toBe(step.numBatchesTracked);
      [x, y].forEach((t) => t.dispose());
    }
    bn.eval();
    bn.zeroGrad();
    const e = c.eval;
    const { y, x } = forwardBackward(bn, e.x, e.g);
    await expectValues(y, e.y, 1e-4);
    await expectValues(x.grad!, e.dx, 1e-4);
    await expectValues(bn.weight!.grad!, e.dweight, 1e-4);
    await expectValues(bn.bias!.grad!, e.dbias, 1e-4);
    [x, y].forEach((t) => t.dispose());
    bn.dispose();
  });
});

describe('LayerNorm vs PyTorch', () => {
  it.each(cases('layernorm', (c) => JSON.stringify(c.normalizedShape)))('normalizedShape %s', async (_n, c: Json) => {
    const ln = new LayerNorm(c.normalizedShape, { eps: c.eps });
    const sd = { weight: nd(c.weight), bias: nd(c.bias) };
    ln.loadStateDict(sd);
    Object.values(sd).forEach((a) => a.dispose());
    const { y, x } = forwardBackward(ln, c.x, c.g);
    await expectValues(y, c.y, 1e-4);
    await expectValues(x.grad!, c.dx, 1e-4);
    await expectValues(ln.weight!.grad!, c.dweight, 1e-4);
    await expectValues(ln.bias!.grad!, c.dbias, 1e-4);
    [x, y].forEach((t) => t.dispose());
    ln.dispose();
  });
});

describe('losses vs PyTorch', () => {
  it.each(cases('cross_entropy', (c) => c.reduction))('CrossEntropyLoss reduction=%s (with logits in the hundreds)', async (_r, c: Json) => {
    const before = liveBuffers();
    const z = tensor(c.logits, { requiresGrad: true });
    const labels = tensor(c.labels);
    const loss = new CrossEntropyLoss({ reduction: c.reduction }).call(z, labels);
    const out = loss.detach();
    const g = tensor(c.g);
    const total = sum(mul(loss, g));
    total.backward();
    await expectValues(out, c.loss, 1e-5);
    await expectValues(z.grad!, c.dlogits, 1e-5);
    [z, labels, out, g, total].forEach((t) => t.dispose());
    expect(liveBuffers()).toBe(before);
  });

  it.each(cases('mse', (c) => c.reduction))('MSELoss reduction=%s', async (_r, c: Json) => {
    const p = tensor(c.prediction, { requiresGrad: true });
    const t = tensor(c.target);
    const loss = new MSELoss({ reduction: c.reduction }).call(p, t);
    loss.backward();
    await expectValues(loss, c.loss, 1e-5);
    await expectValues(p.grad!, c.dprediction, 1e-5);
    [p, t, loss].forEach((x) => x.dispose());
  });
});

describe('Conv2d vs PyTorch', () => {
  it.each(cases('conv2d', (c) => `k=${JSON.stringify(c.kernelSize)} stride=${JSON.stringify(c.stride)} padding=${JSON.stringify(c.padding)} dilation=${c.dilation} groups=${c.groups}`))('%s', async (_n, c: Json) => {
    const conv = new Conv2d(c.inChannels, c.outChannels, c.kernelSize, {
      stride: c.stride, padding: c.padding, dilation: c.dilation, groups: c.groups, bias: c.bias !== null,
    });
    const sd: Record<string, NDArray> = { weight: nd(c.weight) };
    if (c.bias !== null) sd.bias = nd(c.bias);
    conv.loadStateDict(sd);
    Object.values(sd).forEach((a) => a.dispose());
    const { y, x } = forwardBackward(conv, c.x, c.g);
    await expectValues(y, c.y, 1e-4);
    await expectValues(x.grad!, c.dx, 1e-4);
    await expectValues(conv.weight.grad!, c.dweight, 1e-4);
    if (c.bias !== null) await expectValues(conv.bias!.grad!, c.dbias, 1e-4);
    [x, y].forEach((t) => t.dispose());
    conv.dispose();
  });
});

describe('pooling vs PyTorch', () => {
  it.each(cases('pool2d', (c) => `${c.kind} k=${c.kernelSize} stride=${c.stride} padding=${c.padding}`))('%s', async (_n, c: Json) => {
    const options = { stride: c.stride ?? undefined, padding: c.padding };
    const layer = c.kind === 'max' ? new MaxPool2d(c.kernelSize, options) : new AvgPool2d(c.kernelSize, options);
    const { y, x } = forwardBackward(layer, c.x, c.g);
    await expectValues(y, c.y, 1e-5);
    await expectValues(x.grad!, c.dx, 1e-5);
    [x, y].forEach((t) => t.dispose());
  });
});

describe('Embedding vs PyTorch', () => {
  it('looks up rows and accumulates gradients of repeated ids', async () => {
    const c = fixture('embedding');
    const emb = new Embedding(c.numEmbeddings, c.embeddingDim);
    const w = nd(c.weight);
    emb.loadStateDict({ weight: w });
    w.dispose();
    const ids = tensor(c.ids);
    const y = emb.call(ids);
    const out = y.detach();
    const g = tensor(c.g);
    const loss = sum(mul(y, g));
    loss.backward();
    await expectValues(out, c.y, 1e-6, [2, 3, 3]);
    await expectValues(emb.weight.grad!, c.dweight, 1e-5);
    [ids, out, g, loss].forEach((t) => t.dispose());
    emb.dispose();
  });
});
