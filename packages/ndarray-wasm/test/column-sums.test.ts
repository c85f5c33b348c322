// Sums over a leading axis (a strided view [cols, rows] with strides [1, rowStride]: a linear
// layer's bias gradient, batch-norm statistics) run as column sums over the rows in place (assembly
// sumColumns), which must give exactly what gathering the view and summing its rows gives, on any
// number of threads.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { StridedLayout } from '@needle/ndarray';
import { createWasmBackend, type WasmBackend } from '../src';
import { costNs, SPLIT_NS } from '../src/split';
import { download, randomFloats, SPECIAL, upload } from './helpers';

let backends: WasmBackend[];

beforeAll(async () => {
  backends = [await createWasmBackend({ threads: 1 }), await createWasmBackend({ threads: 2 }), await createWasmBackend({ threads: 3, spinMicros: 0 })];
});
afterAll(() => backends.forEach((b) => b.destroy()));

/** Bit patterns, every NaN as one: WebAssembly leaves a NaN result's sign and payload open. */
function bits(a: Float32Array): number[] {
  return Array.from(new Uint32Array(a.buffer, a.byteOffset, a.length), (u, i) => (Number.isNaN(a[i]) ? 0x7fc00000 : u));
}

/** The sums through the strided reduce, and through compact + reduce of the compact rows. */
function both(b: WasmBackend, data: Float32Array, cols: number, rows: number, layout: StridedLayout): { direct: Float32Array; gathered: Float32Array; split: boolean } {
  const src = upload(b, data);
  const out = b.alloc(cols);
  const before = b.splitLaunches;
  b.reduce('sum', src, out, cols, rows, layout);
  const split = b.splitLaunches > before;
  const direct = download(b, out);
  const packed = b.alloc(cols * rows);
  b.compact(src, packed, layout);
  b.reduce('sum', packed, out, cols, rows);
  const gathered = download(b, out);
  [src, out, packed].forEach((x) => b.free(x));
  return { direct, gathered, split };
}

function input(size: number, seed: number, specials: boolean): Float32Array {
  const d = randomFloats(size, seed, -3, 3);
  if (specials) for (let i = 5; i < size; i += 89) d[i] = SPECIAL[(i + seed) % SPECIAL.length];
  return d;
}

describe('sums over a leading axis', () => {
  // Columns around the 4-wide vector groups, rows around the 4-row partials and 8-row groups, row
  // strides wider than the columns, offsets.
  const cases: [cols: number, rows: number, pad: number, offset: number][] = [
    [1, 1, 0, 0], [1, 3, 2, 1], [3, 4, 0, 0], [4, 5, 1, 3], [5, 7, 0, 2], [7, 8, 3, 0], [8, 9, 0, 1],
    [9, 12, 5, 7], [4, 13, 0, 0], [17, 16, 2, 0], [10, 128, 0, 0], [512, 128, 0, 0], [13, 1029, 3, 11], [33, 2, 0, 0],
  ];
  for (const specials of [false, true]) {
    it(`equal the gathered rows' sums bit for bit${specials ? ', NaN, infinities and signed zeros mixed in' : ''}, and the float64 sums`, () => {
      const b = backends[0];
      for (const [cols, rows, pad, offset] of cases) {
        const stride = cols + pad;
        const size = offset + (rows - 1) * stride + cols + pad;
        const data = input(size, cols * 31 + rows, specials);
        const layout: StridedLayout = { shape: [cols, rows], strides: [1, stride], offset };
        const { direct, gathered } = both(b, data, cols, rows, layout);
        expect(bits(direct), `${cols} columns x ${rows} rows, stride ${stride}, offset ${offset}`).toEqual(bits(gathered));
        if (specials) continue;
        for (let c = 0; c < cols; c++) {
          let s = 0;
          for (let r = 0; r < rows; r++) s += data[offset + r * stride + c];
          expect(Math.abs(direct[c] - s), `column ${c} of ${cols} x ${rows}`).toBeLessThanOrEqual(Math.abs(s) * 2 ** -23 + 1e-6);
        }
      }
    });
  }

  it('split between threads by 16-column slices above the threshold, the same bits as one thread', () => {
    // 20 columns: two slices (one thread idle of three); 100 columns: uneven slices.
    for (const cols of [20, 100]) {
      let rows = 4;
      while (costNs.reduce('sum', cols, rows) < SPLIT_NS) rows *= 2;
      for (const r of [rows / 2 + 3, rows + 5]) {
        const stride = cols + 3;
        const data = input(2 + (r - 1) * stride + cols, cols + r, true);
        const layout: StridedLayout = { shape: [cols, r], strides: [1, stride], offset: 2 };
        const reference = both(backends[0], data, cols, r, layout);
        expect(reference.split).toBe(false);
        expect(bits(reference.direct)).toEqual(bits(reference.gathered));
        for (const b of backends.slice(1)) {
          const got = both(b, data, cols, r, layout);
          expect(got.split, `${cols} x ${r} on ${b.threads} threads: split`).toBe(costNs.reduce('sum', cols, r) >= SPLIT_NS);
          expect(bits(got.direct), `${cols} x ${r} on ${b.threads} threads`).toEqual(bits(reference.direct));
        }
      }
    }
  });

  it('leaves no buffer behind', () => {
    for (const b of backends) {
      const before = b.memory().buffers;
      both(b, input(64 * 9, 1, false), 64, 9, { shape: [64, 9], strides: [1, 64], offset: 0 });
      expect(b.memory().buffers).toBe(before);
    }
  });
});
