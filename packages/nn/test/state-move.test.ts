import { describe, expect, it } from 'vitest';
import { Generator, array, full as ndFull } from '@needle/ndarray';
import { createCpuBackend } from '@needle/ndarray-cpu';
import { mean, mul, randn, type Tensor } from '@needle/autograd';
import { SGD, Adam } from '@needle/optim';
import { BatchNorm1d, Linear, ReLU, Sequential } from '../src/index';
import { backend, liveBuffers } from './helpers';

/** Linear, BatchNorm (parameters and buffers), ReLU, Linear. */
function net(seed: number): Sequential {
  const g = new Generator(seed);
  return new Sequential(new Linear(3, 4, { generator: g }), new BatchNorm1d(4), new ReLU(), new Linear(4, 2, { generator: g }));
}

const other = createCpuBackend({ name: 'cpu-nn-move', readSync: false });

async function values(m: Sequential): Promise<Record<string, number[]>> {
  const out: Record<string, number[]> = {};
  for (const [k, v] of Object.entries(m.stateDict())) out[k] = Array.from(await v.toArray());
  return out;
}

describe('checkStateDict', () => {
  it('throws what loadStateDict would throw, names the op, and writes nothing', async () => {
    const m = net(1);
    const before = await values(m);
    const donor = net(2);
    const sd = { ...donor.stateDict() };
    expect(m.checkStateDict(sd)).toEqual({ missingKeys: [], unexpectedKeys: [] });
    const wrong = ndFull([4, 4], 1);
    const elsewhere = array([1, 2], { backend: other });
    const { '3.bias': _dropped, ...missing } = sd;
    const cases: [unknown, RegExp][] = [
      [null, /expected a state dict \(an object or Map of NDArrays by key\), got null/],
      [missing, /missing keys \["3\.bias"\]/],
      [{ ...sd, '0.weight': wrong }, /'0\.weight' has shape \[4, 4\], expected \[4, 3\]/],
      [{ ...sd, '3.bias': elsewhere }, /'3\.bias' is on backend 'cpu-nn-move', expected 'cpu-nn-test' \(use await module\.loadStateDictAsync\(state\), which moves it\)/],
    ];
    for (const [state, message] of cases) {
      expect(() => m.checkStateDict(state as never)).toThrow(new RegExp(`Sequential\\.checkStateDict: .*${message.source}`));
      expect(() => m.loadStateDict(state as never)).toThrow(new RegExp(`Sequential\\.loadStateDict: .*${message.source}`));
    }
    expect(m.checkStateDict(missing, { strict: false })).toEqual({ missingKeys: ['3.bias'], unexpectedKeys: [] });
    expect(m.checkStateDict({ ...sd, '3.bias': elsewhere }, { allowOtherBackends: true })).toEqual({ missingKeys: [], unexpectedKeys: [] });
    expect(await values(m)).toEqual(before);
    wrong.dispose();
    elsewhere.dispose();
    m.dispose();
    donor.dispose();
  });
});

describe('loadStateDictAsync', () => {
  it('loads arrays from another backend by copying them, leaving the caller\'s arrays alone', async () => {
    const src = net(3);
    await src.to(other);
    const m = net(4);
    const here = liveBuffers();
    const there = other.memory().buffers;
    const sd = src.stateDict();
    expect(await m.loadStateDictAsync(sd)).toEqual({ missingKeys: [], unexpectedKeys: [] });
    expect(await values(m)).toEqual(await values(src));
    expect(Object.values(m.stateDict()).every((v) => v.backend === backend)).toBe(true);
    // The temporary copies are gone; the source is untouched.
    expect(liveBuffers()).toBe(here);
    expect(other.memory().buffers).toBe(there);
    expect(Object.values(sd).every((v) => !v.disposed && v.backend === other)).toBe(true);
    src.dispose();
    m.dispose();
  });

  it('checks everything before moving anything', async () => {
    const m = net(5);
    const before = await values(m);
    const here = liveBuffers();
    const wrong = ndFull([7], 1, { backend: other });
    const sd = { ...net(6).stateDict() };
    await expect(m.loadStateDictAsync({ ...sd, '3.bias': wrong })).rejects.toThrow(/Sequential\.loadStateDictAsync: '3\.bias' has shape \[7\], expected \[2\]/);
    expect(await values(m)).toEqual(before);
    expect(liveBuffers()).toBe(here + 9); // the donor's 9 arrays only
    Object.values(sd).forEach((v) => v.dispose());
    wrong.dispose();
    m.dispose();
  });
});

describe('Module.to', () => {
  it('moves parameters, buffers and grads in place and frees the old storage', async () => {
    const here0 = liveBuffers();
    const there0 = other.memory().buffers;
    const m = net(7);
    const params = m.parameters();
    const expected = await values(m);
    const x = randn([5, 3], { generator: new Generator(1) });
    const loss = mean(m.call(x));
    loss.backward();
    loss.dispose();
    x.dispose();
    const grads = await Promise.all(params.map(async (p) => Array.from(await p.grad!.toArray())));
    const afterStep = await values(m); // the forward in training mode updated BatchNorm's running stats
    expect(afterStep['1.runningMean']).not.toEqual(expected['1.runningMean']);
    expect(await m.to(other)).toBe(m);
    expect(m.parameters()).toEqual(params); // the same Parameter objects
    for (const t of [...m.parameters(), ...m.buffers()]) expect(t.backend).toBe(other);
    for (const p of params) expect(p.grad!.backend).toBe(other);
    expect(await values(m)).toEqual(afterStep);
    expect(await Promise.all(params.map(async (p) => Array.from(await p.grad!.toArray())))).toEqual(grads);
    expect(liveBuffers()).toBe(here0);
    // 6 parameters + their 6 grads + 3 buffers.
    expect(other.memory().buffers).toBe(there0 + 15);
    // Moving to where it already is copies nothing.
    await m.to(other);
    expect(other.memory().buffers).toBe(there0 + 15);
    await m.to(backend);
    expect(liveBuffers()).toBe(here0 + 15);
    expect(other.memory().buffers).toBe(there0);
    m.dispose();
    expect(liveBuffers()).toBe(here0);
  });

  it('with optimizer.to, training on the new backend continues as if it had never moved', async () => {
    const run = async (makeOpt: (m: Sequential) => SGD | Adam, moveAt: number | null): Promise<number[][]> => {
      const m = net(8);
      const opt = makeOpt(m);
      const g = new Generator(2);
      for (let k = 0; k < 4; k++) {
        if (k === moveAt) {
          await m.to(other);
          await opt.to(other);
        }
        const b = m.parameters()[0].backend;
        const x = randn([6, 3], { generator: g, backend: b });
        const y = m.call(x) as Tensor;
        const loss = mean(mul(y, y));
        m.zeroGrad();
        loss.backward();
        opt.step();
        loss.dispose();
        x.dispose();
      }
      const out = await Promise.all(Object.values(m.stateDict()).map(async (v) => Array.from(await v.toArray())));
      opt.dispose();
      m.dispose();
      return out;
    };
    const here0 = liveBuffers();
    const there0 = other.memory().buffers;
    for (const make of [(m: Sequential) => new SGD(m.parameters(), { lr: 0.1, momentum: 0.9 }), (m: Sequential) => new Adam(m.parameters(), { lr: 0.01 })]) {
      const straight = await run(make, null);
      const moved = await run(make, 2);
      expect(moved).toEqual(straight);
    }
    expect(liveBuffers()).toBe(here0);
    expect(other.memory().buffers).toBe(there0);
  });

  it('a failed copy moves nothing and leaks nothing', async () => {
    const m = net(9);
    const w = (m.at(3) as Linear).weight;
    w.data.dispose(); // the copy of this parameter will throw
    const there0 = other.memory().buffers;
    await expect(m.to(other)).rejects.toThrow(/disposed/);
    expect(other.memory().buffers).toBe(there0);
    expect(m.parameters()[0].backend).toBe(backend);
    for (const t of [...m.parameters(), ...m.buffers()]) if (t !== w) t.dispose();
  });
});
