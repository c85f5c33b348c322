/** Writing WebAssembly binaries: bytes, LEB128, and the opcodes compiled programs use. */

// ---- bytes ---------------------------------------------------------------------------------------

export class Bytes {
  private buf = new Uint8Array(256);
  length = 0;

  byte(...bs: number[]): this {
    for (const b of bs) {
      if (this.length === this.buf.length) {
        const grown = new Uint8Array(2 * this.buf.length);
        grown.set(this.buf);
        this.buf = grown;
      }
      this.buf[this.length++] = b;
    }
    return this;
  }

  u32(v: number): this {
    do {
      let b = v & 0x7f;
      v >>>= 7;
      if (v !== 0) b |= 0x80;
      this.byte(b);
    } while (v !== 0);
    return this;
  }

  s32(v: number): this {
    for (;;) {
      const b = v & 0x7f;
      v >>= 7;
      if ((v === 0 && (b & 0x40) === 0) || (v === -1 && (b & 0x40) !== 0)) return this.byte(b);
      this.byte(b | 0x80);
    }
  }

  f32(v: number): this {
    const w = new DataView(new ArrayBuffer(4));
    w.setFloat32(0, v, true);
    return this.byte(w.getUint8(0), w.getUint8(1), w.getUint8(2), w.getUint8(3));
  }

  name(s: string): this {
    this.u32(s.length);
    for (let i = 0; i < s.length; i++) this.byte(s.charCodeAt(i));
    return this;
  }

  append(o: Bytes): this {
    for (const b of o.bytes()) this.byte(b);
    return this;
  }

  bytes(): Uint8Array {
    return this.buf.subarray(0, this.length);
  }
}

// Opcodes (WebAssembly core and SIMD binary format).
export const I32 = 0x7f;
export const F32 = 0x7d;
export const V128 = 0x7b;
export const OP = {
  block: 0x02, loop: 0x03, if: 0x04, end: 0x0b, br: 0x0c, brIf: 0x0d, return: 0x0f, call: 0x10, drop: 0x1a, select: 0x1b,
  localGet: 0x20, localSet: 0x21, i32Load: 0x28, f32Load: 0x2a, i32Const: 0x41,
  i32LtS: 0x48, i32GeU: 0x4f, i32GtU: 0x4b, i32GtS: 0x4a, i32GeS: 0x4e, i32Add: 0x6a, i32Sub: 0x6b, i32Mul: 0x6c, i32DivU: 0x6e, i32RemU: 0x70, i32And: 0x71, i32Shl: 0x74,
} as const;
export const SIMD = {
  load: 0x00, store: 0x0b, const: 0x0c, f32x4Splat: 0x13, extract: 0x1f, replace: 0x20,
  eq: 0x41, ne: 0x42, lt: 0x43, gt: 0x44, le: 0x45, ge: 0x46,
  and: 0x4e, or: 0x50, bitselect: 0x52,
  load32Lane: 0x56, store32Lane: 0x5a, load32Zero: 0x5c,
  abs: 0xe0, neg: 0xe1, sqrt: 0xe3, add: 0xe4, sub: 0xe5, mul: 0xe6, div: 0xe7,
} as const;

/** One function body: instructions, with helpers for the few shapes this generator writes. */
export class Code extends Bytes {
  get(l: number): this { return this.byte(OP.localGet).u32(l); }
  set(l: number): this { return this.byte(OP.localSet).u32(l); }
  i32(v: number): this { return this.byte(OP.i32Const).s32(v); }
  op(o: number): this { return this.byte(o); }
  simd(o: number): this { return this.byte(0xfd).u32(o); }
  /** A load or store with its memarg (alignment exponent, byte offset). */
  mem(o: number, align: number, offset: number): this { return this.byte(o).u32(align).u32(offset); }
  simdMem(o: number, align: number, offset: number): this { return this.simd(o).u32(align).u32(offset); }
  /** i32.load of word `word` of the record at local `base`. */
  word(base: number, word: number): this { return this.get(base).mem(OP.i32Load, 2, 4 * word); }
}

