import { describe, expect, it } from 'vitest';
import { array, tidy } from '@needle/ndarray';
import { Tensor, add, mul, noGrad, randn, sum, tensor, zeros } from '@needle/autograd';
import {
  BatchNorm1d, BatchNorm2d, CrossEntropyLoss, Flatten, Identity, LayerNorm, LayerNorm1d, Linear, LogSoftmax, MSELoss, Module,
  Parameter, ReLU, Residual, Sequential, Sigmoid, Softmax, SoftmaxLoss, Tanh, init,
} from '../src/index';
import { expectValues, liveBuffers } from './helpers';

describe('simple layers', () => {
  it('activations and Softmax compute their functions', async () => {
    const x = tensor([[-2, 0, 1], [3, -1, 0.5]]);
    const outs = [new ReLU(), new Tanh(), new Sigmoid(), new Softmax(), new LogSoftmax(0)].map((m) => m.call(x));
    await expectValues(outs[0], [[0, 0, 1], [3, 0, 0.5]]);
    await expectValues(outs[1], [[Math.tanh(-2), 0, Math.tanh(1)], [Math.tanh(3), Math.tanh(-1), Math.tanh(0.5)]]);
    await expectValues(outs[2], [[1 / (1 + Math.exp(2)), 0.5, 1 / (1 + Math.exp(-1))], [1 / (1 + Math.exp(-3)), 1 / (1 + Math.exp(1)), 1 / (1 + Math.exp(-0.5))]]);
    const e = [Math.exp(-2), 1, Math.exp(1)];
    const s = e[0] + e[1] + e[2];
    await expectValues(outs[3].get(0), e.map((v) => v / s));
    // log-softmax over axis 0 of column 0: [-2, 3]
    const lse = Math.log(Math.exp(-2) + Math.exp(3));
    await expectValues(outs[4].get(':', 0), [-2 - lse, 3 - lse]);
    outs.forEach((t) => t.dispose());
    x.dispose();
  });

  it('Flatten keeps the batch axis; Identity and Residual', async () => {
    const x = randn([2, 3, 4]);
    const f = new Flatten().call(x);
    expect([...f.shape]).toEqual([2, 12]);
    expect([...new Flatten(0).call(x).shape]).toEqual([24]);
    expect(new Identity().call(x)).toBe(x);
    const lin = new Linear(4, 4);
    noGrad(() => lin.weight.assign(0));
    noGrad(() => lin.bias!.assign(1));
    const r = new Residual(lin).call(x);
    const xv = await x.toArray();
    expect(Array.from(await r.toArray())).toEqual(Array.from(xv, (v) => Math.fround(v + 1)));
    expect([...new Residual(lin).namedParameters()].map(([n]) => n)).toEqual(['fn.weight', 'fn.bias']);
    expect(() => new Residual(new Linear(4, 2)).call(x)).toThrow(/Residual: fn \(Linear\) must return a Tensor of the input's shape \[2, 3, 4\], got \[2, 3, 2\]/);
    [x, f, r].forEach((t) => t.dispose());
    lin.dispose();
  });

  it('Linear works on any batch rank and names the shape it expected', async () => {
    const lin = new Linear(3, 2, { bias: false });
    noGrad(() => lin.weight.assign(array([[1, 0, 0], [1, 1, 1]])));
    const y = lin.call(tensor([[[1, 2, 3]], [[4, 5, 6]]]));
    await expectValues(y, [[[1, 6]], [[4, 15]]], 0, [2, 1, 2]);
    expect(() => lin.call(tensor([[1, 2]]))).toThrow(/Linear: input of shape \[1, 2\] does not end in inFeatures=3/);
    expect(lin.bias).toBeNull();
    expect(lin.parameters().length).toBe(1);
    expect(() => new Linear(0, 2)).toThrow(/Linear: inFeatures must be a positive integer, got 0/);
    lin.dispose();
  });

  it('Sequential runs in order and supports at/append/iteration', async () => {
    const seq = new Sequential(new Linear(2, 2), new ReLU());
    noGrad(() => (seq.at(0) as Linear).weight.assign(array([[1, 0], [0, -1]])));
    noGrad(() => (seq.at(0) as Linear).bias!.assign(0));
    seq.append(new Sigmoid());
    expect(seq.length).toBe(3);
    expect([...seq].map((m) => m.constructor.name)).toEqual(['Linear', 'ReLU', 'Sigmoid']);
    const y = seq.call(tensor([[2, 3]]));
    await expectValues(y, [[1 / (1 + Math.exp(-2)), 0.5]]);
    expect(() => seq.at(5)).toThrow(/Sequential\.at: index 5 is out of range for 3 layers/);
    expect(() => new Sequential(new ReLU(), 3 as unknown as Module)).toThrow(/Sequential: layer 1 is not a Module/);
    y.dispose();
    seq.dispose();
  });
});

describe('normalisation layers', () => {
  it('BatchNorm exposes running statistics as buffers in the state dict and loads them', async () => {
    const bn = new BatchNorm1d(3);
    expect(Object.keys(bn.stateDict())).toEqual(['weight', 'bias', 'runningMean', 'runningVar', 'numBatchesTracked']);
    expect(bn.buffers().length).toBe(3);
    expect(bn.parameters().length).toBe(2);
    const seq = new Sequential(new Linear(2, 3), bn);
    expect([...seq.namedBuffers()].map(([n]) => n)).toEqual(['1.runningMean', '1.runningVar', '1.numBatchesTracked']);
    const rm = array([1, 2, 3]);
    const rv = array([4, 4, 4]);
    const sd = { ...seq.stateDict({ copy: true }) };
    const old = [sd['1.runningMean'], sd['1.runningVar']];
    sd['1.runningMean'] = rm;
    sd['1.runningVar'] = rv;
    seq.loadStateDict(sd);
    Object.values(sd).forEach((a) => a.dispose());
    old.forEach((a) => a.dispose());
    bn.eval();
    // eval: (x - mean) / sqrt(var + eps)
    const y = bn.call(tensor([[3, 2, 1]]));
    const d = Math.sqrt(4 + 1e-5);
    await expectValues(y, [[2 / d, 0, -2 / d]]);
    y.dispose();
    seq.dispose();
  });

  it('BatchNorm checks its input and training batch size; without tracking it has no buffers', () => {
    const bn = new BatchNorm1d(4);
    expect(() => bn.call(tensor([[1, 2, 3]]))).toThrow(/BatchNorm1d: input of shape \[1, 3\] does not fit numFeatures=4; expected \[N, 4\] or \[N, 4, L\]/);
    expect(() => bn.call(tensor([[1, 2, 3, 4]]))).toThrow(/BatchNorm1d: expected more than 1 value per channel when training, got input of shape \[1, 4\]/);
    expect(() => new BatchNorm2d(2).call(tensor([[1, 2]]))).toThrow(/BatchNorm2d: .* expected \[N, 2, H, W\]/);
    const free = new BatchNorm1d(4, { trackRunningStats: false, affine: false });
    expect(Object.keys(free.stateDict())).toEqual([]);
    bn.dispose();
  });

  it('LayerNorm normalises each sample over the trailing axes', async () => {
    const ln = new LayerNorm1d(4, { elementwiseAffine: false });
    const y = ln.call(tensor([[1, 2, 3, 4], [10, 10, 10, 14]]));
    const s1 = Math.sqrt(1.25 + 1e-5);
    const s2 = Math.sqrt(3 + 1e-5);
    await expectValues(y, [[-1.5 / s1, -0.5 / s1, 0.5 / s1, 1.5 / s1], [-1 / s2, -1 / s2, -1 / s2, 3 / s2]], 1e-5);
    expect(ln.parameters().length).toBe(0);
    expect(() => new LayerNorm([2, 3]).call(tensor([[1, 2, 3]]))).toThrow(/LayerNorm: input of shape \[1, 3\] does not end in normalizedShape \[2, 3\]/);
    y.dispose();
  });
});

describe('losses', () => {
  it('CrossEntropyLoss takes NDArray labels, SoftmaxLoss is the same loss, and shapes are checked', async () => {
    const logits = tensor([[2, 1, 0], [0, 0, 3]]);
    const labels = array([0, 2]);
    const a = new CrossEntropyLoss().call(logits, labels);
    const b = new SoftmaxLoss().call(logits, labels);
    const l0 = Math.log(Math.exp(2) + Math.exp(1) + 1) - 2;
    const l1 = Math.log(2 + Math.exp(3)) - 3;
    await expectValues(a, (l0 + l1) / 2);
    expect(await b.item()).toBe(await a.item());
    expect(() => new CrossEntropyLoss().call(logits, array([0, 1, 2]))).toThrow(
      /CrossEntropyLoss: labels of shape \[3\] do not match logits \[2, 3\]; expected class indices of shape \[2\]/,
    );
    expect(() => new CrossEntropyLoss().call(tensor([1, 2]), labels)).toThrow(/expected logits of shape \[N, C\], got \[2\]/);
    expect(() => new MSELoss().call(logits, tensor([1, 2, 3]))).toThrow(/MSELoss: prediction of shape \[2, 3\] and target of shape \[3\] differ/);
    [logits, a, b].forEach((t) => t.dispose());
    labels.dispose();
  });

  it('CrossEntropyLoss frees its graph on backward (labels view and one-hot mask included)', () => {
    const before = liveBuffers();
    const z = randn([4, 5], { requiresGrad: true });
    const y = tensor([0, 4, 2, 1]);
    const loss = new CrossEntropyLoss().call(z, y);
    loss.backward();
    loss.dispose();
    expect(liveBuffers()).toBe(before + 3); // z, its grad, y
    [z, y].forEach((t) => t.dispose());
    expect(liveBuffers()).toBe(before);
  });
});

describe('custom modules', () => {
  class WithBuffer extends Module {
    scale = init.ones([2]);
    steps: Tensor;
    blocks = { first: new Linear(2, 2), second: [new Linear(2, 2)] };
    constructor() {
      super();
      this.steps = this.registerBuffer('steps', tensor([0]));
    }
    forward(x: Tensor): Tensor {
      return this.blocks.second[0].call(this.blocks.first.call(x)).mul(this.scale);
    }
  }

  it('finds parameters in plain objects, registers buffers, and call is typed by forward', async () => {
    const m = new WithBuffer();
    expect(Object.keys(m.stateDict())).toEqual([
      'scale', 'steps', 'blocks.first.weight', 'blocks.first.bias', 'blocks.second.0.weight', 'blocks.second.0.bias',
    ]);
    const out: Tensor = m.call(randn([3, 2]));
    expect([...out.shape]).toEqual([3, 2]);
    const s = sum(out);
    s.backward();
    expect(m.scale.grad).not.toBeNull();
    expect(m.blocks.second[0].weight.grad).not.toBeNull();
    expect(out.disposed).toBe(true); // a graph intermediate, released by backward
    m.dispose();
    expect(m.steps.disposed).toBe(true);
    expect(m.scale.disposed).toBe(true);
    s.dispose();
  });
});

describe('README: writing a layer', () => {
  it('the Scale example keeps its buffer in the state dict and counts calls', async () => {
    class Scale extends Module {
      weight: Parameter;
      calls: Tensor;
      constructor(dim: number) {
        super();
        this.weight = init.ones([dim]);
        this.calls = this.registerBuffer('calls', zeros([]));
      }
      forward(x: Tensor): Tensor {
        noGrad(() => tidy(() => this.calls.assign(add(this.calls, 1))));
        return mul(x, this.weight);
      }
    }
    const before = liveBuffers();
    const s = new Scale(2);
    const x = tensor([1, 2]);
    for (let i = 0; i < 3; i++) noGrad(() => s.call(x)).dispose();
    expect(await s.calls.item()).toBe(3);
    expect(Object.keys(s.stateDict())).toEqual(['weight', 'calls']);
    const model = new Sequential(new Linear(3, 3), s);
    model.apply((m) => {
      if (m instanceof Linear) {
        const w = init.xavierUniform(m.weight.shape);
        noGrad(() => m.weight.assign(w));
        w.dispose();
      }
    });
    expect(liveBuffers()).toBe(before + 2 + 1 + 2); // Scale's two, x, Linear's two
    x.dispose();
    model.dispose();
    expect(liveBuffers()).toBe(before);
  });
});
