// Optimizer options are checked by type, not only by comparison (issue 12).
import { describe, expect, it } from 'vitest';
import { Adam, SGD, clipGradNorm } from '../src';
import { liveBuffers, param } from './helpers';

describe('optimizer options', () => {
  it("new SGD(params, { lr: '0.1' }) is refused ('0.1' >= 0 is true in JavaScript)", () => {
    const p = param([1, 2], [2]);
    expect(() => new SGD([p], { lr: '0.1' as never })).toThrow("SGD: lr must be a finite number >= 0, got the string '0.1'");
    expect(() => new SGD([p], { lr: 0.1, momentum: '0.9' as never })).toThrow("SGD: momentum must be a finite number >= 0, got the string '0.9'");
    expect(() => new SGD([p], { lr: 0.1, nesterov: 1 as never })).toThrow('SGD: nesterov must be true or false, got 1');
    expect(() => new Adam([p], { betas: [0.9, '0.999'] as never })).toThrow("Adam: betas must lie in [0, 1), got [0.9, the string '0.999']");
    expect(() => new SGD(null as never, { lr: 0.1 })).toThrow('SGD: expected the parameters as an iterable of Tensors (e.g. model.parameters()) or an array of parameter groups, got null');
    expect(() => new SGD([{ params: 3 }] as never, { lr: 0.1 })).toThrow('SGD.addParamGroup: expected a group { params: iterable of Tensors, ...options }, got params 3');
    expect(() => clipGradNorm([p], '1' as never)).toThrow("clipGradNorm: maxNorm must be a number >= 0, got the string '1'");
    const before = liveBuffers();
    p.dispose();
    expect(liveBuffers()).toBe(before - 1);
  });
});
