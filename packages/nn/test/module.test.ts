import { describe, expect, it } from 'vitest';
import { Generator, array, manualSeed, tidy } from '@needle/ndarray';
import { Tensor, noGrad, randn, sum, tensor } from '@needle/autograd';
import { BatchNorm1d, Dropout, Identity, Linear, Module, Parameter, ReLU, Sequential, init } from '../src/index';
import { backend, expectValues, liveBuffers } from './helpers';

class Block extends Module {
  fc1: Linear;
  act = new ReLU();
  fc2: Linear;
  constructor() {
    super();
    this.fc1 = new Linear(3, 4);
    this.fc2 = new Linear(4, 2, { bias: false });
  }
  forward(x: Tensor): Tensor {
    return this.fc2.call(this.act.call(this.fc1.call(x)));
  }
}

class Shared extends Module {
  scale: Parameter;
  a: Linear;
  b: Linear;
  heads: Module[];
  constructor() {
    super();
    this.a = new Linear(2, 2);
    this.b = this.a; // the same layer twice
    this.heads = [new Linear(2, 1), new Sequential(new Linear(2, 1), new ReLU())];
    this.scale = init.ones([1]);
  }
  forward(x: Tensor): Tensor {
    return x;
  }
}

describe('Module discovery', () => {
  it('finds parameters in properties, arrays and Sequential, in PyTorch order', () => {
    const m = new Block();
    expect([...m.namedParameters()].map(([n, p]) => [n, [...p.shape]])).toEqual([
      ['fc1.weight', [4, 3]],
      ['fc1.bias', [4]],
      ['fc2.weight', [2, 4]],
    ]);
    expect([...m.namedChildren()].map(([n]) => n)).toEqual(['fc1', 'act', 'fc2']);
    expect([...m.namedModules()].map(([n, c]) => [n, c.constructor.name])).toEqual([
      ['', 'Block'], ['fc1', 'Linear'], ['act', 'ReLU'], ['fc2', 'Linear'],
    ]);
    expect(m.numParameters()).toBe(12 + 4 + 8);
    const seq = new Sequential(new Linear(2, 3), new ReLU(), new Linear(3, 1));
    expect([...seq.namedParameters()].map(([n]) => n)).toEqual(['0.weight', '0.bias', '2.weight', '2.bias']);
    m.dispose();
    seq.dispose();
  });

  it('counts a shared layer once and names it by its first occurrence; own parameters come first', () => {
    const m = new Shared();
    const names = [...m.namedParameters()].map(([n]) => n);
    expect(names).toEqual(['scale', 'a.weight', 'a.bias', 'heads.0.weight', 'heads.0.bias', 'heads.1.0.weight', 'heads.1.0.bias']);
    expect(m.parameters().length).toBe(7);
    expect(new Set(m.parameters()).size).toBe(7);
    expect([...m.namedChildren()].map(([n]) => n)).toEqual(['a', 'heads.0', 'heads.1']);
    // the state dict lists the shared layer under both names, like PyTorch's
    expect(Object.keys(m.stateDict())).toEqual([
      'scale', 'a.weight', 'a.bias', 'b.weight', 'b.bias', 'heads.0.weight', 'heads.0.bias', 'heads.1.0.weight', 'heads.1.0.bias',
    ]);
    m.dispose();
  });

  it('propagates train/eval to every submodule', () => {
    const m = new Shared();
    expect([...m.modules()].every((c) => c.training)).toBe(true);
    expect(m.eval()).toBe(m);
    expect([...m.modules()].map((c) => c.training)).toEqual([false, false, false, false, false, false]);
    m.train();
    expect([...m.modules()].every((c) => c.training)).toBe(true);
    m.dispose();
  });

  it('prints a PyTorch-style tree', () => {
    const seq = new Sequential(new Linear(2, 3), new ReLU());
    expect(seq.toString()).toBe('Sequential(\n  (0): Linear(inFeatures=2, outFeatures=3, bias=true)\n  (1): ReLU()\n)');
    seq.dispose();
  });
});

describe('Parameter and init', () => {
  it('is a grad-requiring leaf that tidy does not collect', async () => {
    const p = tidy(() => new Parameter(array([1, 2, 3])));
    expect(p).toBeInstanceOf(Tensor);
    expect(p.requiresGrad).toBe(true);
    expect(p.isLeaf).toBe(true);
    await expectValues(p, [1, 2, 3]);
    const t = tensor([4, 5]);
    const q = new Parameter(t);
    t.dispose(); // q shares storage with its own reference
    await expectValues(q, [4, 5]);
    p.dispose();
    q.dispose();
  });

  it('draws reproducibly from the generator with the right bounds', async () => {
    const a = init.kaimingUniform([50, 20], { generator: new Generator(3) });
    const b = init.kaimingUniform([50, 20], { generator: new Generator(3) });
    const va = await a.toArray();
    expect(Array.from(await b.toArray())).toEqual(Array.from(va));
    const bound = Math.sqrt(2) * Math.sqrt(3 / 20);
    expect(Math.max(...va.map(Math.abs))).toBeLessThanOrEqual(bound);
    expect(Math.max(...va.map(Math.abs))).toBeGreaterThan(0.9 * bound);
    manualSeed(7);
    const c = init.xavierNormal([200, 100]);
    const vc = await c.toArray();
    const std = Math.sqrt(vc.reduce((s, v) => s + v * v, 0) / vc.length);
    expect(std).toBeGreaterThan(0.95 * Math.sqrt(2 / 300));
    expect(std).toBeLessThan(1.05 * Math.sqrt(2 / 300));
    manualSeed(7);
    const d = init.xavierNormal([200, 100]);
    expect(Array.from(await d.toArray())).toEqual(Array.from(vc));
    const x = init.xavierUniform([4, 6, 3, 3], { gain: init.calculateGain('tanh') });
    const xb = (5 / 3) * Math.sqrt(6 / (6 * 9 + 4 * 9));
    expect(Math.max(...(await x.toArray()).map(Math.abs))).toBeLessThanOrEqual(xb);
    const kn = init.kaimingNormal([300, 10], { mode: 'fanOut', nonlinearity: 'relu' });
    const vk = await kn.toArray();
    const sk = Math.sqrt(vk.reduce((s, v) => s + v * v, 0) / vk.length);
    expect(Math.abs(sk - Math.sqrt(2 / 300))).toBeLessThan(0.05 * Math.sqrt(2 / 300));
    await expectValues(init.zeros([2]), [0, 0]);
    await expectValues(init.ones([2, 1]), [[1], [1]]);
    expect(() => init.xavierUniform([5])).toThrow(/xavierUniform: cannot compute fans for shape \[5\]/);
    expect(init.kaimingUniform([5], { fanIn: 5 }).shape).toEqual([5]);
    [a, b, c, d, x, kn].forEach((t) => t.dispose());
  });

  it('Linear initialises like PyTorch: weight [out, in], U(-1/sqrt(in), 1/sqrt(in))', async () => {
    const l = new Linear(16, 8, { generator: new Generator(1) });
    expect([...l.weight.shape]).toEqual([8, 16]);
    const w = await l.weight.toArray();
    const b = await l.bias!.toArray();
    for (const v of [...w, ...b]) expect(Math.abs(v)).toBeLessThanOrEqual(0.25);
    expect(Math.max(...w.map(Math.abs))).toBeGreaterThan(0.2);
    l.dispose();
  });
});

describe('zeroGrad and dispose', () => {
  it('zeroGrad drops every gradient; dispose frees every parameter', () => {
    const before = liveBuffers();
    const m = new Block();
    const x = randn([5, 3]);
    const loss = sum(m.call(x));
    loss.backward();
    expect(m.parameters().every((p) => p.grad !== null)).toBe(true);
    m.zeroGrad();
    expect(m.parameters().every((p) => p.grad === null)).toBe(true);
    loss.dispose();
    x.dispose();
    m.dispose();
    expect(m.parameters().every((p) => p.disposed)).toBe(true);
    expect(liveBuffers()).toBe(before);
  });
});

describe('Dropout', () => {
  it('is the identity in eval mode and drops about p with 1/(1-p) scaling in training', async () => {
    const d = new Dropout(0.25, { generator: new Generator(11) });
    const x = tensor(new Float32Array(4000).fill(2), { shape: [40, 100] });
    d.eval();
    expect(d.call(x)).toBe(x);
    d.train();
    const y = d.call(x);
    const v = await y.toArray();
    const zeros = v.filter((e) => e === 0).length;
    expect(zeros / v.length).toBeGreaterThan(0.22);
    expect(zeros / v.length).toBeLessThan(0.28);
    expect(v.every((e) => e === 0 || Math.abs(e - 2 / 0.75) < 1e-6)).toBe(true);
    // seeded: the same generator seed gives the same mask
    const y2 = new Dropout(0.25, { generator: new Generator(11) }).call(x);
    expect(Array.from(await y2.toArray())).toEqual(Array.from(v));
    [x, y, y2].forEach((t) => t.dispose());
    expect(new Identity().call(x)).toBe(x);
    expect(backend.name).toBe('cpu-nn-test');
  });
});

describe('ownership', () => {
  it('a model built inside tidy keeps its parameters and buffers; dispose frees them all', async () => {
    const before = liveBuffers();
    const model = tidy(() => new Sequential(new Linear(3, 2), new BatchNorm1d(2)));
    expect(model.parameters().every((p) => !p.disposed)).toBe(true);
    expect(model.buffers().every((b) => !b.disposed)).toBe(true);
    expect(liveBuffers()).toBe(before + 4 + 3);
    await expectValues(model.buffers()[1], [1, 1]); // runningVar starts at ones
    model.dispose();
    expect(liveBuffers()).toBe(before);
  });

  it('eval() reaches a Dropout nested in containers; apply visits every module', async () => {
    const model = new Sequential(new Linear(4, 4), new Sequential(new Dropout(0.5, { generator: new Generator(1) })));
    const x = tensor([[1, 2, 3, 4]]);
    model.eval();
    const a = noGrad(() => model.call(x));
    const b = noGrad(() => model.call(x));
    expect(Array.from(await a.toArray())).toEqual(Array.from(await b.toArray()));
    const visited: string[] = [];
    model.apply((m) => visited.push(m.constructor.name));
    expect(visited).toEqual(['Sequential', 'Linear', 'Sequential', 'Dropout']);
    const frozen = new Parameter(array([1]), { requiresGrad: false });
    expect(frozen.requiresGrad).toBe(false);
    [x, a, b, frozen].forEach((t) => t.dispose());
    model.dispose();
  });
});
