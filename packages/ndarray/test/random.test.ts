import { describe, expect, it } from 'vitest';
import { Generator, manualSeed, defaultGenerator } from '@needle/ndarray';

describe('Generator', () => {
  it('is deterministic per seed and differs between seeds', () => {
    const a = new Generator(42).fillUniform(new Float32Array(8));
    const b = new Generator(42).fillUniform(new Float32Array(8));
    const c = new Generator(43).fillUniform(new Float32Array(8));
    expect(Array.from(a)).toEqual(Array.from(b));
    expect(Array.from(a)).not.toEqual(Array.from(c));
  });

  it('gives these fixed numbers for seed 0 (a change here changes every initialisation)', () => {
    const g = new Generator(0);
    const u = [g.nextUint32(), g.nextUint32(), g.nextUint32()];
    expect(u).toEqual(FIXED_SEED0);
  });

  it('uniform has mean 1/2 and variance 1/12; normal has mean 0 and variance 1', () => {
    const g = new Generator(7);
    const n = 200_000;
    const u = g.fillUniform(new Float32Array(n));
    const mean = u.reduce((s, x) => s + x, 0) / n;
    const variance = u.reduce((s, x) => s + (x - mean) ** 2, 0) / n;
    expect(Math.abs(mean - 0.5)).toBeLessThan(0.005);
    expect(Math.abs(variance - 1 / 12)).toBeLessThan(0.002);
    const z = g.fillNormal(new Float32Array(n));
    const zm = z.reduce((s, x) => s + x, 0) / n;
    const zv = z.reduce((s, x) => s + (x - zm) ** 2, 0) / n;
    expect(Math.abs(zm)).toBeLessThan(0.01);
    expect(Math.abs(zv - 1)).toBeLessThan(0.02);
    expect(u.reduce((m, x) => Math.min(m, x), 1)).toBeGreaterThanOrEqual(0);
    expect(u.reduce((m, x) => Math.max(m, x), 0)).toBeLessThan(1);
  });

  it('permutation is a permutation; randint stays in range', () => {
    const g = new Generator(3);
    const p = g.permutation(100);
    expect([...p].sort((x, y) => x - y)).toEqual(Array.from({ length: 100 }, (_, i) => i));
    expect(p).not.toEqual(Array.from({ length: 100 }, (_, i) => i));
    for (let i = 0; i < 1000; i++) {
      const r = g.randint(-3, 4);
      expect(r >= -3 && r < 4 && Number.isInteger(r)).toBe(true);
    }
  });

  it('manualSeed resets the global generator', () => {
    manualSeed(5);
    const a = defaultGenerator().uniform();
    manualSeed(5);
    expect(defaultGenerator().uniform()).toBe(a);
  });

  it('stateDict/loadStateDict resume the exact sequence, including a cached normal', () => {
    const g = new Generator(11);
    for (let i = 0; i < 37; i++) g.nextUint32();
    g.normal(); // leaves the pair's second value cached: the next normal() draws no uniforms
    const saved = g.stateDict();
    expect(saved.state.every((w) => Number.isInteger(w) && w >= 0 && w < 2 ** 32)).toBe(true);
    expect(typeof saved.spareNormal).toBe('number');
    // Through JSON, as a checkpoint stores it.
    const restored = new Generator(999).loadStateDict(JSON.parse(JSON.stringify(saved)));
    const draw = (x: Generator) => [x.normal(), x.normal(), x.uniform(), x.nextUint32(), ...x.permutation(5)];
    const expected = draw(g);
    expect(draw(restored)).toEqual(expected);
    // The snapshot is a copy: drawing more from g did not change it.
    expect(draw(new Generator(0).loadStateDict(saved))).toEqual(expected);
  });

  it('the default generator resumes from a state too', () => {
    manualSeed(21);
    defaultGenerator().uniform();
    const saved = defaultGenerator().stateDict();
    expect(saved.spareNormal).toBe(null);
    const a = [defaultGenerator().uniform(), defaultGenerator().normal()];
    manualSeed(0);
    defaultGenerator().loadStateDict(saved);
    expect([defaultGenerator().uniform(), defaultGenerator().normal()]).toEqual(a);
  });

  it('loadStateDict rejects malformed states and leaves the generator as it was', () => {
    const g = new Generator(4);
    const before = g.stateDict();
    const bad: [unknown, RegExp][] = [
      [null, /Generator.loadStateDict: expected \{ state/],
      [{ state: [1, 2, 3], spareNormal: null }, /array of 4 integers in \[0, 2\^32\), got \[1,2,3\]/],
      [{ state: [1, 2, 3, -1], spareNormal: null }, /array of 4 integers/],
      [{ state: [1, 2, 3, 2 ** 32], spareNormal: null }, /array of 4 integers/],
      [{ state: [1, 2, 3, 0.5], spareNormal: null }, /array of 4 integers/],
      [{ state: [0, 0, 0, 0], spareNormal: null }, /all zeros/],
      [{ state: [1, 2, 3, 4], spareNormal: 'x' }, /spareNormal must be a finite number or null, got "x"/],
    ];
    for (const [state, message] of bad) {
      expect(() => g.loadStateDict(state as never)).toThrow(message);
      expect(() => g.checkStateDict(state as never)).toThrow(message.source.startsWith('Generator.loadStateDict') ? /Generator.checkStateDict/ : message);
    }
    expect(g.stateDict()).toEqual(before);
  });
});

const FIXED_SEED0 = [3809008728, 1133695204, 53579671];
