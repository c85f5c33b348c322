import { describe, expect, it } from 'vitest';
import { NDArray, array } from '@needle/ndarray';
import { createCpuBackend } from '@needle/ndarray-cpu';
import { tensor } from '@needle/autograd';
import { Adam, CosineAnnealingLR, LinearLR, SGD, StepLR, type OptimizerStateDict, type AdamOptions, type GroupOptions, type LRScheduler } from '../src/index';
import { liveBuffers, param, setGrad } from './helpers';

function disposeDict(sd: OptimizerStateDict<GroupOptions>): void {
  for (const st of Object.values(sd.state)) for (const v of new Set(Object.values(st))) if (v instanceof NDArray) v.dispose();
}

describe('Optimizer.checkStateDict', () => {
  it('throws what loadStateDict would throw, and changes nothing', async () => {
    const a = param([1, 2], [2]);
    const b = param([3, 4, 5], [3]);
    const opt = new Adam([a, b], { lr: 0.1 });
    setGrad(a, [1, -1]);
    setGrad(b, [1, 2, 3]);
    opt.step();
    const sd = opt.stateDict();
    expect(() => opt.checkStateDict(sd)).not.toThrow();
    const m0 = Array.from(await (opt.getState(a)!.expAvg as NDArray).toArray());
    const wrong = array([0, 0, 0]);
    const other = createCpuBackend({ name: 'cpu-optim-other', readSync: false });
    const elsewhere = array([0, 0], { backend: other });
    const cases: [OptimizerStateDict<AdamOptions>, RegExp][] = [
      [null as never, /expected a dict \{ state, paramGroups \}/],
      [{ ...sd, paramGroups: [] }, /the dict has 0 parameter groups, this optimizer 1/],
      [{ ...sd, paramGroups: [{ ...sd.paramGroups[0], params: [0, 0] }] }, /group 0 lists parameter id 0, expected distinct integer ids/],
      [{ ...sd, paramGroups: [{ ...sd.paramGroups[0], lr: -1 }] }, /group 0: lr must be a finite number >= 0, got -1/],
      [{ ...sd, paramGroups: [{ ...sd.paramGroups[0], betas: [1.5, 0.9] } as never] }, /betas must lie in \[0, 1\), got \[1.5, 0.9\]/],
      [{ ...sd, state: { ...sd.state, 7: { step: 1 } } }, /state for parameter 7, which no group of the dict lists/],
      [{ ...sd, state: { ...sd.state, 0: { ...sd.state[0], expAvg: wrong } } }, /state 'expAvg' of parameter 0 has shape \[3\], the parameter \[2\]/],
      [{ ...sd, state: { ...sd.state, 0: { ...sd.state[0], expAvg: elsewhere } } }, /state 'expAvg' of parameter 0 lives on 'cpu-optim-other', the parameter on 'cpu-optim-test'/],
      [{ ...sd, state: { ...sd.state, 0: { ...sd.state[0], expAvg: 'x' as never } } }, /state 'expAvg' of parameter 0 is neither an NDArray nor a number/],
    ];
    for (const [dict, message] of cases) {
      expect(() => opt.checkStateDict(dict)).toThrow(new RegExp(`Adam\\.checkStateDict.*${message.source}`));
      expect(() => opt.loadStateDict(dict)).toThrow(new RegExp(`Adam\\.loadStateDict.*${message.source}`));
    }
    expect(Array.from(await (opt.getState(a)!.expAvg as NDArray).toArray())).toEqual(m0);
    expect(opt.paramGroups[0].lr).toBe(0.1);
    wrong.dispose();
    elsewhere.dispose();
    disposeDict(sd);
    opt.dispose();
    a.dispose();
    b.dispose();
  });
});

describe('Optimizer.to', () => {
  it('moves the state to another backend; stepping there continues exactly', async () => {
    const other = createCpuBackend({ name: 'cpu-optim-to', readSync: false });
    const run = async (moveAfter: number | null): Promise<number[]> => {
      const p = param([0.5, -1, 2], [3]);
      const opt = new SGD([p], { lr: 0.1, momentum: 0.9 });
      for (let k = 0; k < 4; k++) {
        if (k === moveAfter) {
          p.zeroGrad();
          const before = { here: liveBuffers(), there: other.memory().buffers };
          // In place, as module.to does for the parameter: the same Tensor, new storage.
          p.replaceData(await p.data.to(other));
          expect(await opt.to(other)).toBe(opt);
          expect(opt.getState(p)!.momentumBuffer).toBeInstanceOf(NDArray);
          expect((opt.getState(p)!.momentumBuffer as NDArray).backend).toBe(other);
          // The parameter and its momentum buffer left this backend and arrived there.
          expect(liveBuffers()).toBe(before.here - 2);
          expect(other.memory().buffers).toBe(before.there + 2);
        }
        p.grad = tensor(Float32Array.from([k + 1, -0.5 * k, 0.25]), { shape: [3], backend: p.backend });
        opt.step();
      }
      const out = Array.from(await p.toArray());
      opt.dispose();
      p.dispose();
      return out;
    };
    const here0 = liveBuffers();
    const there0 = other.memory().buffers;
    const straight = await run(null);
    const moved = await run(2);
    expect(moved).toEqual(straight);
    expect(liveBuffers()).toBe(here0);
    expect(other.memory().buffers).toBe(there0);
  });

  it('keeps two state entries that share one array shared after the move, and numbers as they are', async () => {
    const other = createCpuBackend({ name: 'cpu-optim-to', readSync: false });
    const p = param([1, 2], [2]);
    const opt = new Adam([p], { lr: 0.1, amsgrad: true });
    setGrad(p, [1, 1]);
    opt.step();
    const there = other.memory().buffers;
    await opt.to(other);
    const st = opt.getState(p)!;
    expect(st.step).toBe(1);
    expect(other.memory().buffers).toBe(there + 3);
    opt.dispose();
    expect(other.memory().buffers).toBe(there);
    p.dispose();
  });
});

describe('LRScheduler.checkStateDict', () => {
  const makers: Record<string, (o: SGD) => LRScheduler> = {
    StepLR: (o) => new StepLR(o, { stepSize: 2 }),
    CosineAnnealingLR: (o) => new CosineAnnealingLR(o, { tMax: 5 }),
    LinearLR: (o) => new LinearLR(o, { totalIters: 3 }),
  };
  for (const [name, make] of Object.entries(makers)) {
    it(`${name}: throws what loadStateDict would, and changes nothing`, () => {
      const p = param([0], [1]);
      const opt = new SGD([p], { lr: 0.1 });
      const s = make(opt);
      s.step();
      const saved = s.stateDict();
      expect(() => s.checkStateDict(saved)).not.toThrow();
      const cases: [unknown, RegExp][] = [
        [null, /expected a state \{ lastEpoch, stepCount, baseLrs, lastLr \}/],
        [{ ...saved, lastEpoch: -1 }, /lastEpoch must be an integer >= 0, got -1/],
        [{ ...saved, stepCount: 1.5 }, /stepCount must be an integer >= 1, got 1.5/],
        [{ ...saved, baseLrs: [0.1, 0.2] }, /the state has 2 baseLrs, the optimizer 1 param groups/],
        [{ ...saved, lastLr: ['0.1'] }, /lastLr must be an array of finite numbers, got \["0.1"\]/],
      ];
      for (const [state, message] of cases) {
        expect(() => s.checkStateDict(state as never)).toThrow(new RegExp(`${name}\\.checkStateDict: ${message.source}`));
        expect(() => s.loadStateDict(state as never)).toThrow(new RegExp(`${name}\\.loadStateDict: ${message.source}`));
      }
      expect(s.stateDict()).toEqual(saved);
      p.dispose();
    });
  }

  it('a warm-up chained with a decay resumes both schedules exactly', () => {
    const build = () => {
      const p = param([0], [1]);
      const opt = new SGD([p], { lr: 1 });
      return { p, opt, warm: new LinearLR(opt, { startFactor: 0.25, totalIters: 3 }), decay: new StepLR(opt, { stepSize: 2, gamma: 0.5 }) };
    };
    const a = build();
    const lrs: number[] = [];
    for (let e = 0; e < 7; e++) {
      a.warm.step();
      a.decay.step();
      lrs.push(a.opt.paramGroups[0].lr);
    }
    const b = build();
    for (let e = 0; e < 3; e++) {
      b.warm.step();
      b.decay.step();
    }
    const saved = { opt: b.opt.stateDict(), warm: b.warm.stateDict(), decay: b.decay.stateDict() };
    const c = build();
    c.opt.loadStateDict(saved.opt);
    c.warm.loadStateDict(JSON.parse(JSON.stringify(saved.warm)));
    c.decay.loadStateDict(JSON.parse(JSON.stringify(saved.decay)));
    const resumed: number[] = lrs.slice(0, 3);
    for (let e = 3; e < 7; e++) {
      c.warm.step();
      c.decay.step();
      resumed.push(c.opt.paramGroups[0].lr);
    }
    expect(resumed).toEqual(lrs);
    for (const x of [a, b, c]) x.p.dispose();
  });
});
