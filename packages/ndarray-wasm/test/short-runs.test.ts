import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Backend, StridedLayout } from '@needle/ndarray';
import { createWasmBackend, type WasmBackend } from '../src';
import { cpu, download, randomFloats, upload } from './helpers';

// Strided copies whose contiguous runs are 4 to 15 floats (assembly stridedRuns, NOTES.md section
// 64: three axes per odometer step, each run as overlapping vectors): compact (gather) and
// ewiseSetitem (scatter) against the CPU backend, element for element, on 1 and 2 threads: the
// im2col windows of padded NHWC inputs with 1-5 channels (runs of 3 x C; 3 keeps the old path),
// views with negative strides, and one large enough to be split between threads.

/** The windows of a padded [b, h + 2, w + 2, c] NHWC buffer as [b, h, w, 3, 3, c] (a 3x3 im2col). */
function im2col(b: number, h: number, w: number, c: number): { layout: StridedLayout; size: number } {
  const ph = h + 2;
  const pw = w + 2;
  return { layout: { shape: [b, h, w, 3, 3, c], strides: [ph * pw * c, pw * c, c, pw * c, c, 1], offset: 0 }, size: b * ph * pw * c };
}

/** [a, r, n, cols] with the leading axes' strides negative (read backwards) and padded rows. */
function flipped(a: number, r: number, n: number, cols: number): { layout: StridedLayout; size: number } {
  const row = cols + 3;
  const plane = r * row + 5;
  const block = n * plane + 7;
  return { layout: { shape: [a, n, r, cols], strides: [-block, -plane, row, 1], offset: (a - 1) * block + (n - 1) * plane }, size: a * block };
}

const CASES: [string, () => { layout: StridedLayout; size: number }][] = [
  ['im2col, 1 channel (runs of 3: the 2-D block path)', () => im2col(2, 5, 6, 1)],
  ['im2col, 2 channels (runs of 6)', () => im2col(2, 6, 7, 2)],
  ['im2col, 3 channels (runs of 9)', () => im2col(3, 8, 9, 3)],
  ['im2col, 4 channels (runs of 12)', () => im2col(1, 7, 5, 4)],
  ['im2col, 5 channels (runs of 15)', () => im2col(2, 4, 6, 5)],
  ['negative leading strides, runs of 4', () => flipped(3, 5, 4, 4)],
  ['negative leading strides, runs of 7', () => flipped(2, 3, 6, 7)],
  ['3 axes only, runs of 13', () => ({ layout: { shape: [5, 6, 13], strides: [200, 20, 1], offset: 3 }, size: 1004 })],
  ['the ConvNet\'s conv1 im2col (split between threads)', () => im2col(32, 32, 32, 3)],
];

/** The first index where the two differ (bit patterns), or -1. */
function firstDifference(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) return 0;
  const x = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const y = new Uint32Array(b.buffer, b.byteOffset, b.length);
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return i;
  return -1;
}

function viewSize(layout: StridedLayout): number {
  return layout.shape.reduce((p, d) => p * d, 1);
}

describe('strided copies with runs of 4-15 floats', () => {
  let backends: WasmBackend[];
  beforeAll(async () => {
    backends = [await createWasmBackend({ threads: 1 }), await createWasmBackend({ threads: 2, partMicros: 20 })];
  });
  afterAll(() => backends.forEach((b) => b.destroy()));

  function gather(be: Backend, data: Float32Array, layout: StridedLayout): Float32Array {
    const src = upload(be, data);
    const n = viewSize(layout);
    const dst = be.alloc(n);
    be.compact(src, dst, layout);
    const out = download(be, dst, n);
    be.free(src);
    be.free(dst);
    return out;
  }

  function scatter(be: Backend, target: Float32Array, values: Float32Array, layout: StridedLayout): Float32Array {
    const src = upload(be, values);
    const dst = upload(be, target);
    be.ewiseSetitem(src, dst, layout);
    const out = download(be, dst, target.length);
    be.free(src);
    be.free(dst);
    return out;
  }

  for (const [name, make] of CASES) {
    it(`${name}: compact and ewiseSetitem equal the CPU backend on 1 and 2 threads`, () => {
      const { layout, size } = make();
      const data = randomFloats(size, size);
      const n = viewSize(layout);
      const wantGather = gather(cpu, data, layout);
      // ewiseSetitem into views of distinct elements only: the windows overlap, so scatter into
      // the flipped and 3-axis views, and into the im2col view's first window position alone.
      const scatterLayout = name.startsWith('im2col') || name.startsWith('the ConvNet')
        ? { shape: [...layout.shape.slice(0, 3), layout.shape[5]], strides: [...layout.strides.slice(0, 3), 1], offset: 0 }
        : layout;
      const values = randomFloats(viewSize(scatterLayout), n + 1);
      const target = randomFloats(size, size + 2);
      const wantScatter = scatter(cpu, target, values, scatterLayout);
      for (const be of backends) {
        const before = be.memory().buffers;
        expect(firstDifference(gather(be, data, layout), wantGather), `compact on ${be.threads} thread(s): first differing element`).toBe(-1);
        expect(firstDifference(scatter(be, target, values, scatterLayout), wantScatter), `ewiseSetitem on ${be.threads} thread(s): first differing element`).toBe(-1);
        expect(be.memory().buffers).toBe(before);
      }
    });
  }

  it('splits the large copy between two threads', () => {
    const be = backends[1];
    const { layout, size } = im2col(32, 32, 32, 3);
    const before = be.splitLaunches;
    gather(be, randomFloats(size, 5), layout);
    expect(be.splitLaunches).toBeGreaterThan(before);
  });
});
