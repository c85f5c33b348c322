import { describe, expect, it } from 'vitest';
import { clipGradNorm, clipGradValue } from '../src/index';
import fixtures from './fixtures/clip_grad_norm.json';
import { expectClose, liveBuffers, param, setGrad } from './helpers';

describe('clipGradNorm vs PyTorch (test/fixtures/clip_grad_norm.json)', () => {
  for (const c of fixtures.cases) {
    it(`maxNorm ${c.max_norm}, normType ${c.norm_type}`, async () => {
      const ps = c.shapes.map((s) => param(new Array<number>(s.reduce((a, b) => a * b, 1)).fill(0), s));
      ps.forEach((p, i) => setGrad(p, c.grads[i]));
      const normType = c.norm_type === 'inf' ? Infinity : Number(c.norm_type);
      const total = clipGradNorm(ps, c.max_norm, normType);
      expect(total.shape).toEqual([]);
      expect(Math.abs((await total.item()) - c.total)).toBeLessThan(1e-5 * c.total);
      for (let i = 0; i < ps.length; i++) await expectClose(ps[i].grad!, c.clipped[i], 1e-5, `grad ${i}`);
      total.dispose();
      ps.forEach((p) => p.dispose());
    });
  }

  it('skips parameters without a gradient, frees its temporaries, and returns 0 with no gradients', async () => {
    const a = param([0, 0], [2]);
    const b = param([0], [1]);
    setGrad(a, [3, 4]);
    const before = liveBuffers();
    const total = clipGradNorm([a, b], 1);
    expect(liveBuffers()).toBe(before + 1); // only the returned norm
    expect(await total.item()).toBeCloseTo(5, 5);
    await expectClose(a.grad!, [0.6, 0.8], 1e-5);
    expect(b.grad).toBeNull();
    total.dispose();
    const zero = clipGradNorm([b], 1);
    expect(await zero.item()).toBe(0);
    zero.dispose();
    expect(() => clipGradNorm([a], -1)).toThrow(/clipGradNorm: maxNorm must be a number >= 0, got -1/);
    a.dispose();
    b.dispose();
  });
});

describe('clipGradValue', () => {
  it('clamps each gradient element', async () => {
    const a = param([0, 0, 0], [3]);
    setGrad(a, [-2, 0.25, 5]);
    clipGradValue([a], 0.5);
    await expectClose(a.grad!, [-0.5, 0.25, 0.5]);
    a.dispose();
  });
});
