import { describe, expect, it } from 'vitest';
import { resolveSlice, parseIndex } from '../src/indexing';

describe('slice resolution follows Python', () => {
  // Expected values are Python's slice(start, stop, step).indices(n) turned into lengths.
  const cases: [number | undefined, number | undefined, number | undefined, number, number, number][] = [
    // start, stop, step, n -> start, length
    [undefined, undefined, undefined, 5, 0, 5],
    [1, undefined, 2, 5, 1, 2],
    [-2, undefined, undefined, 5, 3, 2],
    [undefined, undefined, -1, 5, 4, 5],
    [3, -6, -1, 5, 3, 4],
    [4, -1, -1, 5, 4, 0],
    [10, undefined, undefined, 5, 5, 0],
    [undefined, 2, -1, 5, 4, 2],
    [-100, 100, 3, 7, 0, 3],
  ];
  for (const [start, stop, step, n, s0, len] of cases) {
    it(`${start ?? ''}:${stop ?? ''}:${step ?? ''} on ${n}`, () => {
      const r = resolveSlice('t', { start, stop, step }, n);
      expect(r.length).toBe(len);
      if (len > 0) expect(r.start).toBe(s0);
    });
  }

  it('parses strings, ellipsis and new axes into a layout', () => {
    const v = parseIndex('get', [4, 5, 6], [30, 6, 1], 0, ['1:3', '...', null, -1]);
    expect(v).toEqual({ shape: [2, 5, 1], strides: [30, 6, 0], offset: 30 + 5 });
    expect(() => parseIndex('get', [4], [1], 0, ['1:x'])).toThrow(/cannot parse index/);
    expect(() => parseIndex('get', [4], [1], 0, ['...', '...'])).toThrow(/at most one/);
  });
});
