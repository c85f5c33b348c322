import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NDArray, defineProgram, elementwise, tidy, zeros, type ElementwiseProgram } from '@needle/ndarray';
import { createWasmBackend, programCompileStats, type WasmBackend } from '../src';
import { cpu, randomFloats, SPECIAL } from './helpers';

// Elementwise launches whose inputs are transposed views (last stride neither 0 nor 1) and whose
// other operands are rows: the backend copies those inputs into compact scratch first so that the
// compiled program runs in row mode (backend.ts rowsByGathering, NOTES.md section 60). Results
// bit for bit against the CPU backend (programs of exact ops only), on the compiled and the
// interpreted path, on 1, 2 and 3 threads; compiled modules' operand kinds show which path ran.

const data = (n: number, seed: number) => {
  const v = randomFloats(n, seed);
  for (let i = 0; i < v.length; i += 37) v[i] = SPECIAL[(i / 37) % SPECIAL.length];
  return v;
};

function bitsEqual(a: Float32Array, b: Float32Array): boolean {
  if (a.length !== b.length) return false;
  const x = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const y = new Uint32Array(b.buffer, b.byteOffset, b.length);
  // Any NaN matches any NaN (WebAssembly leaves NaN signs and payloads of arithmetic open).
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i] && !(Number.isNaN(a[i]) && Number.isNaN(b[i]))) return false;
  return true;
}

interface Launch {
  /** The same launch on a backend: its result as an array of that backend. */
  run(be: WasmBackend | typeof cpu): NDArray;
}

/** A copy of NCHW data into the interior of a zeroed, padded NHWC buffer (the ConvNet's input transform). */
function padCopy(b: number, c: number, h: number, w: number): Launch {
  const copy = defineProgram(1, 0, ([x]) => [x]);
  const x = data(b * c * h * w, 1);
  return {
    run(be) {
      const src = NDArray.fromData(x, [b, c, h, w], be);
      const padded = zeros([b, h + 2, w + 2, c], { backend: be });
      tidy(() => {
        elementwise(copy, [src.permute([0, 2, 3, 1])], [], { out: [padded.get(':', `1:${h + 1}`, `1:${w + 1}`, ':')] });
      });
      src.dispose();
      return padded;
    },
  };
}

/**
 * A max-pool-backward-like program: a transposed gradient broadcast over 2 x 2 windows, a compact
 * argmax record and a per-window index: where(argmax == index, gradient, 0) + 0.
 */
function poolBackward(b: number, c: number, h: number, w: number): Launch {
  const program = defineProgram(3, 0, ([g, arg, idx]) => [arg.eq(idx).select(g, 0).add(0)]);
  const g = data(b * c * h * w, 2);
  const arg = Float32Array.from({ length: b * h * w * c }, (_, i) => (i * 7) % 4);
  const idx = Float32Array.from([0, 1, 2, 3]);
  return {
    run(be) {
      const gn = NDArray.fromData(g, [b, c, h, w], be);
      const an = NDArray.fromData(arg, [b, h, 1, w, 1, c], be);
      const ix = NDArray.fromData(idx, [1, 1, 2, 1, 2, 1], be);
      const out = tidy(() => elementwise(program, [gn.permute([0, 2, 3, 1]).reshape([b, h, 1, w, 1, c]), an, ix])[0]);
      for (const a of [gn, an, ix]) a.dispose();
      return out;
    },
  };
}

/** Two transposed inputs, one of them broadcast along the middle axis, a compact one and a scalar. */
function twoTransposed(n: number, m: number): Launch {
  const program = defineProgram(3, 1, ([a, t, u], [s]) => [a.mul(s).add(t).sub(u.maximum(a))]);
  const a = data(n * 2 * m, 3);
  const t = data(2 * m * n, 4);
  const u = data(m * n, 5);
  return {
    run(be) {
      const an = NDArray.fromData(a, [n, 2, m], be);
      const tn = NDArray.fromData(t, [2, m, n], be);
      const un = NDArray.fromData(u, [m, n], be);
      const out = tidy(() => elementwise(program, [an, tn.permute([2, 0, 1]), un.permute([1, 0]).reshape([n, 1, m]).broadcastTo([n, 2, m])], [1.5])[0]);
      for (const x of [an, tn, un]) x.dispose();
      return out;
    },
  };
}

/** An in-place update of a transposed view: the input is the output, so it is not copied. */
function inPlaceTransposed(n: number, m: number): Launch {
  const program = defineProgram(2, 0, ([x, y]) => [x.add(y)]);
  const x = data(n * m, 6);
  const y = data(n * m, 7);
  return {
    run(be) {
      const xn = NDArray.fromData(x, [m, n], be);
      const yn = NDArray.fromData(y, [n, m], be);
      tidy(() => {
        const view = xn.permute([1, 0]);
        elementwise(program, [view, yn], [], { out: [view] });
      });
      yn.dispose();
      return xn;
    },
  };
}

const CASES: [string, () => Launch][] = [
  ['NCHW into a padded NHWC buffer, 3 channels (rows of 3 merged into rows of 3w)', () => padCopy(4, 3, 20, 20)],
  ['NCHW into a padded NHWC buffer, 8 channels', () => padCopy(2, 8, 18, 16)],
  ['a pooling backward over a transposed, broadcast gradient', () => poolBackward(4, 8, 8, 8)],
  ['two transposed inputs, one broadcast', () => twoTransposed(48, 64)],
  ['an in-place transposed output (not copied)', () => inPlaceTransposed(80, 64)],
  ['below the size threshold (not copied)', () => poolBackward(1, 4, 4, 4)],
];

describe('elementwise inputs read across their last axis, copied into rows first', () => {
  const backends: WasmBackend[] = [];
  let eager: WasmBackend;
  let interpreted: WasmBackend;
  beforeAll(async () => {
    eager = await createWasmBackend({ threads: 1, compilePrograms: 'eager' });
    interpreted = await createWasmBackend({ threads: 1, compilePrograms: false });
    backends.push(eager, interpreted, await createWasmBackend({ threads: 2 }), await createWasmBackend({ threads: 3, partMicros: 3 }));
  });
  afterAll(() => {
    for (const be of backends) be.destroy();
  });

  it('compiles the copied launches in row mode, and leaves the others as they were', () => {
    const kinds = (launch: Launch) => {
      const before = programCompileStats().kinds;
      launch.run(eager).dispose();
      const after = programCompileStats().kinds;
      return { s: after.s - before.s, rows: after.r + after.z - before.r - before.z > 0 };
    };
    // First in this file: modules are cached per process by program structure and operand kinds.
    expect(kinds(padCopy(4, 3, 20, 20))).toEqual({ s: 0, rows: true });
    expect(kinds(poolBackward(2, 8, 8, 8))).toEqual({ s: 0, rows: true });
    expect(kinds(twoTransposed(48, 64))).toEqual({ s: 0, rows: true });
    expect(kinds(inPlaceTransposed(80, 64)).s).toBe(1);
    expect(kinds(poolBackward(1, 4, 4, 4)).s).toBe(1);
  });

  for (const [name, make] of CASES) {
    it(name, () => {
      const launch = make();
      const ref = launch.run(cpu);
      const expected = ref.toArraySync();
      ref.dispose();
      for (const be of backends) {
        const before = be.memory().buffers;
        // Three launches: the compiled path starts at the second (or the first, eagerly).
        for (let i = 0; i < 3; i++) {
          const out = launch.run(be);
          expect(bitsEqual(out.toArraySync(), expected), `${name} on ${be.threads} thread(s), launch ${i}`).toBe(true);
          out.dispose();
        }
        expect(be.memory().buffers).toBe(before);
      }
    });
  }

  it('reports a view outside its buffer as before', () => {
    const program: ElementwiseProgram = defineProgram(1, 0, ([x]) => [x.neg()]);
    const src = eager.alloc(64 * 64);
    const dst = eager.alloc(64 * 64);
    try {
      expect(() => eager.elementwise(program, [src], [], [dst], 64 * 64, { shape: [64, 64], inputs: [{ strides: [1, 65], offset: 0 }], outputs: [undefined] })).toThrow(/outside a buffer of 4096/);
    } finally {
      eager.free(src);
      eager.free(dst);
    }
  });
});
