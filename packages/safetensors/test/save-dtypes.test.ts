// Saving float32 arrays as other dtypes (`save(..., { dtypes })`): what torch's files hold comes
// back byte for byte, F16/BF16 round to nearest even, and values a dtype cannot hold refuse the save.
import { describe, expect, it } from 'vitest';
import { NDArray } from '@needle/ndarray';
import { decode, load, save, type SafetensorsDType } from '../src/index';
import { floatBitsToBfloat16, floatBitsToHalf, halfToFloatBits } from '../src/convert';
import { fixture, liveBuffers, expectThrowsMessage } from './helpers';

const f32 = (bits: number): number => new Float32Array(new Uint32Array([bits]).buffer)[0];
const bitsOfFloat = (x: number): number => new Uint32Array(new Float32Array([x]).buffer)[0];

describe('save with dtypes', () => {
  it("re-saving torch's dtypes file with each tensor's own dtype gives torch's raw bytes back", async () => {
    const original = decode(fixture('dtypes.safetensors'));
    const { tensors } = await load(fixture('dtypes.safetensors'));
    const dtypes = Object.fromEntries(Object.entries(original.tensors).map(([name, t]) => [name, t.dtype])) as Record<string, SafetensorsDType>;
    const again = decode(await save(tensors, undefined, { dtypes }));
    let checked = 0;
    for (const [name, t] of Object.entries(original.tensors)) {
      const got = again.tensors[name];
      expect(got.dtype, name).toBe(t.dtype);
      expect(got.shape, name).toEqual(t.shape);
      if (name === 'f64') {
        // Loading rounded these doubles to float32: what comes back is that float32, widened exactly.
        expect(Array.from(got.data as Float64Array)).toEqual(Array.from(t.data as Float64Array, Math.fround));
        continue;
      }
      const want = Array.from(t.data as ArrayLike<number | bigint>);
      const have = Array.from(got.data as ArrayLike<number | bigint>);
      if (name === 'f16_spread') {
        // A signaling F16 NaN was made quiet on load (as torch does), so it comes back quiet.
        const quiet = want.map((h) => (((h as number) & 0x7c00) === 0x7c00 && ((h as number) & 0x3ff) !== 0 ? (h as number) | 0x200 : h));
        expect(have).toEqual(quiet);
        expect(quiet.filter((h, i) => h !== want[i]).length).toBeGreaterThan(10);
      } else {
        expect(have, name).toEqual(want);
      }
      checked++;
    }
    expect(checked).toBe(Object.keys(original.tensors).length - 1);
    for (const a of Object.values(tensors)) a.dispose();
  });

  it('F16: every half is kept exactly, and values between two halves round to the nearer, ties to even', () => {
    // Finite halves in increasing order of value (positive side; the sign is a separate bit).
    const halves = Array.from({ length: 0x7c00 }, (_, h) => h);
    const value = (h: number): number => f32(halfToFloatBits(h));
    // Mismatches are collected and compared once (an expect per value would take seconds).
    const wrong: string[] = [];
    const check = (got: number, want: number, what: string) => {
      if (got !== want) wrong.push(`${what}: got ${got}, expected ${want}`);
    };
    for (const h of [...halves, 0x7c00]) {
      check(floatBitsToHalf(halfToFloatBits(h)), h, `half ${h}`);
      check(floatBitsToHalf(halfToFloatBits(h | 0x8000)), h | 0x8000, `half -${h}`);
    }
    for (let h = 0; h < 0x7bff; h++) {
      const mid = (value(h) + value(h + 1)) / 2; // exact in float32: halves have 11 significant bits
      check(Math.fround(mid), mid, `midpoint ${h} representable`);
      const tie = bitsOfFloat(mid);
      check(floatBitsToHalf(tie), h % 2 === 0 ? h : h + 1, `tie between halves ${h} and ${h + 1}`);
      check(floatBitsToHalf(tie - 1), h, `just below the tie above ${h}`);
      check(floatBitsToHalf(tie + 1), h + 1, `just above the tie above ${h}`);
    }
    expect(wrong.slice(0, 5)).toEqual([]);
    // Past the largest half, 65504: below the tie at 65520 it stays, from the tie on it is Infinity.
    expect(floatBitsToHalf(bitsOfFloat(65519.99))).toBe(0x7bff);
    expect(floatBitsToHalf(bitsOfFloat(65520))).toBe(0x7c00);
    expect(floatBitsToHalf(bitsOfFloat(3e38))).toBe(0x7c00);
    expect(floatBitsToHalf(bitsOfFloat(-Infinity))).toBe(0xfc00);
    // Below half the smallest subnormal (2^-25, a tie to even zero) everything is a signed zero.
    expect(floatBitsToHalf(bitsOfFloat(2 ** -25))).toBe(0);
    expect(floatBitsToHalf(bitsOfFloat(-(2 ** -26)))).toBe(0x8000);
    expect(floatBitsToHalf(bitsOfFloat(2 ** -25 * 1.0000001))).toBe(1);
    // A NaN whose payload sits only in the 13 dropped bits gets the quiet bit, not Infinity.
    expect(floatBitsToHalf(0x7f800001)).toBe(0x7e00);
    expect(floatBitsToHalf(0xffc00000)).toBe(0xfe00);
  });

  it('BF16: the upper half of the float32, rounded to nearest even; NaN stays NaN', () => {
    const wrong: string[] = [];
    const check = (got: number, want: number, what: string) => {
      if (got !== want) wrong.push(`${what}: got ${got}, expected ${want}`);
    };
    for (let b = 0; b < 0x7f80; b += 7) {
      const bits = b << 16;
      check(floatBitsToBfloat16(bits), b, `bfloat16 ${b}`);
      check(floatBitsToBfloat16(bits + 0x8000), b % 2 === 0 ? b : b + 1, `tie above ${b}`);
      check(floatBitsToBfloat16(bits + 0x7fff), b, `below the tie above ${b}`);
      check(floatBitsToBfloat16(bits + 0x8001), b + 1, `above the tie above ${b}`);
      check(floatBitsToBfloat16((bits | 0x80000000) >>> 0), b | 0x8000, `bfloat16 -${b}`);
    }
    expect(wrong.slice(0, 5)).toEqual([]);
    expect(floatBitsToBfloat16(bitsOfFloat(3.4028235e38))).toBe(0x7f80); // rounds up past the largest bfloat16
    expect(floatBitsToBfloat16(0x7f800001)).toBe(0x7fc0); // payload only in the dropped bits: made quiet
    expect(floatBitsToBfloat16(0x7f810000)).toBe(0x7f81); // a signaling bfloat16 NaN comes back as it was
  });

  it('values a dtype cannot hold refuse the whole save, naming tensor, index and value; nothing is disposed', async () => {
    const before = liveBuffers();
    const a = NDArray.fromData(new Float32Array([0, 1, 2.5]), [3]);
    const b = NDArray.fromData(new Float32Array([1, 0, 1]), [3]);
    await expectThrowsMessage(() => save({ a, b }, undefined, { dtypes: { a: 'I64' } }), "safetensors.save: tensor 'a' cannot be saved as I64: it holds 2.5 at flat index 2");
    await expectThrowsMessage(() => save({ a }, undefined, { dtypes: { a: 'BOOL' } }), 'holds 2.5 at flat index 2; only 0 and 1');
    const odd = NDArray.fromData(new Float32Array([-1, NaN]), [2]);
    await expectThrowsMessage(() => save({ odd }, undefined, { dtypes: { odd: 'U8' } }), 'holds -1 at flat index 0; expected integers in [0, 255]');
    const nan = odd.get({ start: 1 });
    await expectThrowsMessage(() => save({ nan }, undefined, { dtypes: { nan: 'I32' } }), 'holds NaN at flat index 0');
    nan.dispose();
    odd.dispose();
    await expectThrowsMessage(() => save({ a }, undefined, { dtypes: { c: 'I64' } }), "options.dtypes names tensor 'c', which is not among the tensors saved");
    await expectThrowsMessage(() => save({ a }, undefined, { dtypes: { a: 'int64' as SafetensorsDType } }), "options.dtypes['a'] is", 'expected one of BOOL');
    await expectThrowsMessage(() => save({ a }, undefined, { dtype: 'I64' } as never), "unknown option 'dtype'");
    expect(a.disposed || b.disposed).toBe(false);
    const ok = decode(await save({ a, b }, undefined, { dtypes: { b: 'BOOL', a: 'F16' } }));
    expect(Array.from(ok.tensors.b.data as Uint8Array)).toEqual([1, 0, 1]);
    expect(Array.from(ok.tensors.a.data as Uint16Array)).toEqual([0, 0x3c00, 0x4100]);
    a.dispose();
    b.dispose();
    expect(liveBuffers()).toBe(before);
  });

  it("a BatchNorm counter saved as I64 is what torch writes for num_batches_tracked", async () => {
    const n = NDArray.fromData(new Float32Array([3]), []);
    const file = decode(await save({ num_batches_tracked: n }, undefined, { dtypes: { num_batches_tracked: 'I64' } }));
    expect(file.tensors.num_batches_tracked.dtype).toBe('I64');
    expect(Array.from(file.tensors.num_batches_tracked.data as BigInt64Array)).toEqual([3n]);
    n.dispose();
  });
});
