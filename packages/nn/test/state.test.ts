import { describe, expect, it } from 'vitest';
import { Generator, array, full as ndFull } from '@needle/ndarray';
import { createCpuBackend } from '@needle/ndarray-cpu';
import { Linear, ReLU, Sequential } from '../src/index';
import { noGrad } from '@needle/autograd';
import { expectValues, liveBuffers } from './helpers';

function mlp(seed: number): Sequential {
  const g = new Generator(seed);
  return new Sequential(new Linear(3, 4, { generator: g }), new ReLU(), new Linear(4, 2, { generator: g }));
}

describe('stateDict / loadStateDict', () => {
  it('round-trips values into another model in place', async () => {
    const a = mlp(1);
    const b = mlp(2);
    const sd = a.stateDict();
    expect(Object.keys(sd)).toEqual(['0.weight', '0.bias', '2.weight', '2.bias']);
    expect(sd['0.weight']).toBe(a.at(0).parameters()[0].data); // borrowed: the live array
    const wB = (b.at(0) as Linear).weight;
    expect(Array.from(await wB.toArray())).not.toEqual(Array.from(await sd['0.weight'].toArray()));
    const result = b.loadStateDict(sd);
    expect(result).toEqual({ missingKeys: [], unexpectedKeys: [] });
    expect((b.at(0) as Linear).weight).toBe(wB); // same Parameter object, new values
    for (const key of Object.keys(sd)) {
      expect(Array.from(await b.stateDict()[key].toArray())).toEqual(Array.from(await sd[key].toArray()));
    }
    a.dispose();
    b.dispose();
  });

  it('copy: true gives owned snapshots that do not follow later changes', async () => {
    const a = mlp(3);
    const before = liveBuffers();
    const snap = a.stateDict({ copy: true });
    expect(liveBuffers()).toBe(before + 4);
    const w = (a.at(2) as Linear).weight;
    const old = Array.from(await w.toArray());
    noGrad(() => w.assign(0));
    await expectValues(snap['2.weight'], [old.slice(0, 4), old.slice(4)]);
    a.loadStateDict(snap);
    expect(Array.from(await w.toArray())).toEqual(old);
    Object.values(snap).forEach((v) => v.dispose());
    expect(liveBuffers()).toBe(before);
    a.dispose();
  });

  it('reports missing and unexpected keys, and writes nothing when it throws', async () => {
    const m = mlp(4);
    const w0 = Array.from(await (m.at(0) as Linear).weight.toArray());
    const good = mlp(5);
    const sd = { ...good.stateDict() };
    const extra = ndFull([1], 0);
    delete (sd as Record<string, unknown>)['2.bias'];
    const bad = { ...sd, 'classifier.weight': extra };
    expect(() => m.loadStateDict(bad)).toThrow(
      /Sequential\.loadStateDict: missing keys \["2\.bias"\]; unexpected keys \["classifier\.weight"\]/,
    );
    expect(Array.from(await (m.at(0) as Linear).weight.toArray())).toEqual(w0);
    const res = m.loadStateDict(bad, { strict: false });
    expect(res).toEqual({ missingKeys: ['2.bias'], unexpectedKeys: ['classifier.weight'] });
    expect(Array.from(await (m.at(0) as Linear).weight.toArray())).not.toEqual(w0);
    extra.dispose();
    m.dispose();
    good.dispose();
  });

  it('rejects mis-shaped values (even when not strict) and values on another backend', () => {
    const m = mlp(6);
    const sd = { ...m.stateDict() };
    const wrong = ndFull([4, 4], 1);
    expect(() => m.loadStateDict({ ...sd, '0.weight': wrong }, { strict: false })).toThrow(
      /Sequential\.loadStateDict: '0\.weight' has shape \[4, 4\], expected \[4, 3\]/,
    );
    const other = createCpuBackend({ name: 'cpu-nn-other', readSync: false });
    const elsewhere = array([1, 2], { backend: other });
    expect(() => m.loadStateDict({ ...sd, '2.bias': elsewhere })).toThrow(/'2\.bias' is on backend 'cpu-nn-other', expected 'cpu-nn-test'/);
    wrong.dispose();
    elsewhere.dispose();
    m.dispose();
  });
});
