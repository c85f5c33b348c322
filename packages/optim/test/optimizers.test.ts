import { describe, expect, it } from 'vitest';
import { NDArray, tidy } from '@needle/ndarray';
import { mean, mul, noGrad, sum, tensor, type Tensor } from '@needle/autograd';
import { Adam, AdamW, SGD, type Optimizer, type GroupOptions } from '../src/index';
import fixtures from './fixtures/optimizers.json';
import { expectClose, liveBuffers, param, setGrad } from './helpers';

interface Case {
  name: string;
  shapes: number[][];
  init: number[][];
  grads: number[][][];
  after: number[][][];
}
const cases = fixtures.cases as Case[];

/** The optimizer each fixture was generated with (scripts/gen_fixtures.py), in needle's names. */
const makers: Record<string, (ps: Tensor[]) => Optimizer<GroupOptions>> = {
  sgd: (ps) => new SGD(ps, { lr: 0.1 }),
  sgd_weight_decay: (ps) => new SGD(ps, { lr: 0.1, weightDecay: 0.05 }),
  sgd_momentum_dampening: (ps) => new SGD(ps, { lr: 0.05, momentum: 0.9, dampening: 0.1, weightDecay: 0.01 }),
  sgd_nesterov: (ps) => new SGD(ps, { lr: 0.05, momentum: 0.9, nesterov: true, weightDecay: 0.05 }),
  adam: (ps) => new Adam(ps, { lr: 0.01 }),
  adam_weight_decay_betas: (ps) => new Adam(ps, { lr: 0.02, betas: [0.8, 0.95], eps: 1e-6, weightDecay: 0.1 }),
  adam_amsgrad: (ps) => new Adam(ps, { lr: 0.01, weightDecay: 0.05, amsgrad: true }),
  adamw: (ps) => new AdamW(ps, { lr: 0.01, weightDecay: 0.1 }),
  adamw_amsgrad: (ps) => new AdamW(ps, { lr: 0.02, weightDecay: 0.3, amsgrad: true }),
  sgd_param_groups: (ps) => new SGD([{ params: [ps[0]], lr: 0.2 }, { params: [ps[1]], momentum: 0.9, weightDecay: 0.1 }], { lr: 0.1, momentum: 0.5 }),
};

function setup(c: Case): Tensor[] {
  return c.shapes.map((s, i) => param(c.init[i], s));
}

describe('optimizers vs PyTorch (test/fixtures/optimizers.json)', () => {
  it('covers every fixture case', () => {
    expect(cases.map((c) => c.name).sort()).toEqual(Object.keys(makers).sort());
  });

  for (const c of cases) {
    it(`${c.name}: ${c.grads.length} steps match torch`, async () => {
      const ps = setup(c);
      const opt = makers[c.name](ps);
      for (let k = 0; k < c.grads.length; k++) {
        ps.forEach((p, i) => setGrad(p, c.grads[k][i]));
        opt.step();
        for (let i = 0; i < ps.length; i++) await expectClose(ps[i], c.after[k][i], 1e-5, `${c.name} step ${k + 1} param ${i}`);
      }
      opt.dispose();
      ps.forEach((p) => p.dispose());
    });
  }

  it('state saved mid-run and loaded into a fresh optimizer continues identically', async () => {
    for (const name of ['sgd_nesterov', 'adam_amsgrad', 'adamw', 'sgd_param_groups']) {
      const c = cases.find((x) => x.name === name)!;
      const ps = setup(c);
      const opt = makers[name](ps);
      const half = 3;
      for (let k = 0; k < half; k++) {
        ps.forEach((p, i) => setGrad(p, c.grads[k][i]));
        opt.step();
      }
      const saved = opt.stateDict();
      const values = await Promise.all(ps.map((p) => p.toArray()));
      opt.dispose();
      ps.forEach((p) => p.dispose());

      // A new run: parameters restored from the values, a fresh optimizer from the dict.
      const qs = c.shapes.map((s, i) => param(Array.from(values[i]), s));
      const opt2 = makers[name](qs);
      opt2.loadStateDict(saved);
      for (const st of Object.values(saved.state)) for (const v of new Set(Object.values(st))) if (v instanceof NDArray) v.dispose();
      for (let k = half; k < c.grads.length; k++) {
        qs.forEach((p, i) => setGrad(p, c.grads[k][i]));
        opt2.step();
        for (let i = 0; i < qs.length; i++) await expectClose(qs[i], c.after[k][i], 1e-5, `${name} resumed step ${k + 1} param ${i}`);
      }
      opt2.dispose();
      qs.forEach((p) => p.dispose());
    }
  });

  it('stateDict holds copies of the moments and the step count', async () => {
    const c = cases.find((x) => x.name === 'adam')!;
    const ps = setup(c);
    const opt = new Adam(ps, { lr: 0.01 });
    ps.forEach((p, i) => setGrad(p, c.grads[0][i]));
    opt.step();
    const sd = opt.stateDict();
    expect(Object.keys(sd.state)).toEqual(['0', '1']);
    expect(sd.state[0].step).toBe(1);
    // After one step m = (1 - beta1) g and v = (1 - beta2) g^2.
    const g0 = c.grads[0][0];
    expect(Array.from(await (sd.state[0].expAvg as NDArray).toArray()).map((v, i) => v - 0.1 * g0[i]).every((d) => Math.abs(d) < 1e-6)).toBe(true);
    expect(Array.from(await (sd.state[0].expAvgSq as NDArray).toArray()).map((v, i) => v - 0.001 * g0[i] ** 2).every((d) => Math.abs(d) < 1e-7)).toBe(true);
    expect(sd.paramGroups).toEqual([{ lr: 0.01, betas: [0.9, 0.999], eps: 1e-8, weightDecay: 0, amsgrad: false, params: [0, 1] }]);
    // A copy: the optimizer's next step does not change the snapshot.
    const before = await (sd.state[0].expAvg as NDArray).toArray();
    opt.step();
    expect(await (sd.state[0].expAvg as NDArray).toArray()).toEqual(before);
    expect(opt.getState(ps[0])!.step).toBe(2);
    for (const st of Object.values(sd.state)) for (const v of Object.values(st)) if (v instanceof NDArray) v.dispose();
    opt.dispose();
    ps.forEach((p) => p.dispose());
  });

  it('loadStateDict restores group options and rejects mismatched dicts', () => {
    const a = param([1, 2], [2]);
    const b = param([3, 4, 5], [3]);
    const opt = new SGD([a, b], { lr: 0.1, momentum: 0.9 });
    setGrad(a, [1, 1]);
    setGrad(b, [1, 1, 1]);
    opt.step();
    const sd = opt.stateDict();
    sd.paramGroups[0].lr = 0.5;
    const other = new SGD([a, b], { lr: 0.1, momentum: 0.9 });
    other.loadStateDict(sd);
    expect(other.paramGroups[0].lr).toBe(0.5);
    const single = new SGD([a], { lr: 0.1 });
    expect(() => single.loadStateDict(sd)).toThrow(/SGD.loadStateDict: group 0 holds 2 parameters in the dict, 1 here/);
    const swapped = new SGD([b, a], { lr: 0.1, momentum: 0.9 });
    expect(() => swapped.loadStateDict(sd)).toThrow(/state 'momentumBuffer' of parameter 0 has shape \[2\], the parameter \[3\]/);
    for (const st of Object.values(sd.state)) for (const v of Object.values(st)) if (v instanceof NDArray) v.dispose();
    [opt, other, single, swapped].forEach((o) => o.dispose());
    a.dispose();
    b.dispose();
  });
});

describe('optimizer behaviour', () => {
  it('skips parameters without a gradient and zeroGrad drops gradients', async () => {
    const a = param([1, 2], [2]);
    const b = param([3], [1]);
    const opt = new SGD([a, b], { lr: 0.5 });
    setGrad(a, [2, 4]);
    opt.step();
    await expectClose(a, [0, 0]);
    await expectClose(b, [3]);
    opt.zeroGrad();
    expect(a.grad).toBeNull();
    expect(b.grad).toBeNull();
    a.dispose();
    b.dispose();
  });

  it('validates options and parameters with clear errors', () => {
    const a = param([1], [1]);
    expect(() => new SGD([a], { lr: -1 })).toThrow(/SGD: lr must be a finite number >= 0, got -1/);
    expect(() => new SGD([a], { lr: 0.1, nesterov: true })).toThrow(/nesterov momentum requires momentum > 0 and dampening 0/);
    expect(() => new Adam([a], { betas: [0.9, 1] })).toThrow(/Adam: betas must lie in \[0, 1\), got \[0.9, 1\]/);
    expect(() => new SGD([], { lr: 0.1 })).toThrow(/SGD: got an empty parameter list/);
    expect(() => new SGD([{ params: [a] }, { params: [a] }], { lr: 0.1 })).toThrow(/already belongs to a parameter group/);
    const y = mul(a, 2);
    expect(() => new SGD([y], { lr: 0.1 })).toThrow(/SGD.addParamGroup: params\[0\] of shape \[1\] is not a leaf tensor/);
    y.dispose();
    a.dispose();
  });

  it('minimizes a real loss through backward (Adam and SGD with momentum)', async () => {
    for (const make of [(ps: Tensor[]) => new Adam(ps, { lr: 0.1 }), (ps: Tensor[]) => new SGD(ps, { lr: 0.1, momentum: 0.9 })]) {
      const w = param([3, -2, 1], [3]);
      const target = tensor([0.5, 0.5, 0.5]);
      const opt = make([w]);
      let first = 0;
      let last = 0;
      for (let i = 0; i < 100; i++) {
        const d = w.sub(target);
        const loss = mean(mul(d, d));
        loss.backward();
        opt.step();
        opt.zeroGrad();
        const v = await loss.item();
        if (i === 0) first = v;
        last = v;
        loss.dispose();
      }
      expect(first).toBeCloseTo(((2.5 ** 2) + (2.5 ** 2) + 0.25) / 3, 5);
      expect(last).toBeLessThan(1e-3 * first);
      opt.dispose();
      w.dispose();
      target.dispose();
    }
  });
});

describe('memory', () => {
  it('updates do not grow the graph or leak buffers over many steps', async () => {
    for (const make of [
      (ps: Tensor[]) => new SGD(ps, { lr: 0.01, momentum: 0.9, nesterov: true, weightDecay: 1e-3 }),
      (ps: Tensor[]) => new Adam(ps, { lr: 0.01, amsgrad: true, weightDecay: 1e-3 }),
      (ps: Tensor[]) => new AdamW(ps, { lr: 0.01 }),
    ]) {
      const w = param(Array.from({ length: 12 }, (_, i) => i / 12 - 0.5), [4, 3]);
      const b = param([0.1, 0.2, 0.3], [3]);
      const x = tensor(Array.from({ length: 8 }, (_, i) => Array.from({ length: 4 }, (_, j) => Math.sin(i + j))));
      const opt = make([w, b]);
      const step = (): void => {
        const loss = sum(mul(x.matmul(w).add(b), 0.5).tanh());
        loss.backward();
        opt.step();
        opt.zeroGrad();
        loss.dispose();
      };
      step();
      const after1 = liveBuffers();
      for (let i = 0; i < 200; i++) step();
      expect(liveBuffers()).toBe(after1);
      // Stepping inside a user's tidy must not free the optimizer's state when the tidy ends.
      tidy(() => step());
      expect(liveBuffers()).toBe(after1);
      // The parameters stay leaves: the update is not recorded.
      expect(w.isLeaf).toBe(true);
      expect(noGrad(() => w.requiresGrad)).toBe(true);
      opt.dispose();
      const afterDispose = liveBuffers();
      expect(afterDispose).toBeLessThan(after1);
      [w, b, x].forEach((t) => t.dispose());
    }
  });
});
