import { describe, expect, it } from 'vitest';
import { CosineAnnealingLR, LinearLR, SGD, StepLR, type LRScheduler } from '../src/index';
import fixtures from './fixtures/schedulers.json';
import { param } from './helpers';

type Case = (typeof fixtures.cases)[number];
const byName = (name: string): Case => fixtures.cases.find((c) => c.name === name)!;

/** lrs seen at the start of each epoch, stepping the schedulers after each epoch (PyTorch's loop). */
function run(lr: number, epochs: number, make: (opt: SGD) => LRScheduler[]): number[] {
  const p = param([0], [1]);
  const opt = new SGD([p], { lr });
  const scheds = make(opt);
  const lrs: number[] = [];
  for (let e = 0; e < epochs; e++) {
    lrs.push(opt.paramGroups[0].lr);
    opt.step(); // no gradient: a no-op, as in a real epoch's position
    for (const s of scheds) s.step();
  }
  p.dispose();
  return lrs;
}

function expectLrs(got: number[], want: number[]): void {
  expect(got.length).toBe(want.length);
  got.forEach((v, i) => expect(Math.abs(v - want[i]), `epoch ${i}: got ${v}, expected ${want[i]}`).toBeLessThan(1e-12));
}

describe('LR schedulers vs PyTorch (test/fixtures/schedulers.json)', () => {
  it('StepLR', () => {
    const c = byName('step_lr');
    expectLrs(run(c.lr, c.lrs.length, (o) => [new StepLR(o, { stepSize: c.step_size!, gamma: c.gamma })]), c.lrs);
    // PyTorch's closed form: base * gamma ** floor(epoch / stepSize).
    expectLrs(c.lrs, c.lrs.map((_, e) => 0.1 * 0.5 ** Math.floor(e / 3)));
  });

  it('CosineAnnealingLR, past tMax too', () => {
    const c = byName('cosine_annealing');
    const lrs = run(c.lr, c.lrs.length, (o) => [new CosineAnnealingLR(o, { tMax: c.t_max!, etaMin: c.eta_min })]);
    expectLrs(lrs, c.lrs);
    const closed = (e: number): number => c.eta_min! + ((c.lr - c.eta_min!) * (1 + Math.cos((Math.PI * e) / c.t_max!))) / 2;
    lrs.forEach((v, e) => expect(v).toBeCloseTo(closed(e), 12));
  });

  it('LinearLR warm-up', () => {
    const c = byName('linear_lr');
    const lrs = run(c.lr, c.lrs.length, (o) => [new LinearLR(o, { startFactor: c.start_factor, endFactor: c.end_factor, totalIters: c.total_iters })]);
    expectLrs(lrs, c.lrs);
    lrs.forEach((v, e) => expect(v).toBeCloseTo(0.1 * (0.1 + (0.9 * Math.min(e, 4)) / 4), 12));
  });

  it('LinearLR warm-up chained with cosine annealing', () => {
    const c = byName('linear_then_cosine_chained');
    const lrs = run(c.lr, c.lrs.length, (o) => [new LinearLR(o, { startFactor: c.start_factor, totalIters: c.total_iters }), new CosineAnnealingLR(o, { tMax: c.t_max! })]);
    expectLrs(lrs, c.lrs);
  });

  it('getLastLr, per-group base lrs and resuming from a state dict', () => {
    const a = param([0], [1]);
    const b = param([0], [1]);
    const opt = new SGD([{ params: [a], lr: 1 }, { params: [b] }], { lr: 0.1 });
    const s = new StepLR(opt, { stepSize: 2, gamma: 0.1 });
    expect(s.getLastLr()).toEqual([1, 0.1]);
    expect(opt.paramGroups.map((g) => g.initialLr)).toEqual([1, 0.1]);
    s.step();
    s.step();
    expect(s.lastEpoch).toBe(2);
    expect(s.getLastLr().map((v) => +v.toPrecision(12))).toEqual([0.1, 0.01]);
    const saved = s.stateDict();
    const optState = opt.stateDict();

    const opt2 = new SGD([{ params: [a], lr: 1 }, { params: [b] }], { lr: 0.1 });
    opt2.loadStateDict(optState);
    const s2 = new StepLR(opt2, { stepSize: 2, gamma: 0.1 });
    s2.loadStateDict(saved);
    for (const sch of [s, s2]) {
      sch.step();
      sch.step();
    }
    expect(s2.getLastLr()).toEqual(s.getLastLr());
    expect(opt2.paramGroups.map((g) => g.lr)).toEqual(opt.paramGroups.map((g) => g.lr));
    expect(s.getLastLr().map((v) => +v.toPrecision(12))).toEqual([0.01, 0.001]);
    a.dispose();
    b.dispose();
  });

  it('validates its options', () => {
    const p = param([0], [1]);
    const opt = new SGD([p], { lr: 0.1 });
    expect(() => new StepLR(opt, { stepSize: 0 })).toThrow(/StepLR: stepSize must be a positive integer, got 0/);
    expect(() => new LinearLR(opt, { startFactor: 0 })).toThrow(/LinearLR: startFactor must be a finite number > 0 and <= 1, got 0/);
    expect(() => new CosineAnnealingLR(new SGD([param([0], [1])], { lr: 0.1 }), { tMax: 5, lastEpoch: 3 })).toThrow(/has no initialLr/);
    p.dispose();
  });
});
