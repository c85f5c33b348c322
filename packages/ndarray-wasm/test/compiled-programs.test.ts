import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NDArray, defineProgram, elementwise, elementwiseUnfused, type ElementwiseProgram, type ProgramValue } from '@needle/ndarray';
import { createWasmBackend, programCompileStats, type WasmBackend } from '../src';
import { NS_PER, SPLIT_NS } from '../src/split';
import { cpu, randomFloats, SPECIAL } from './helpers';

// Compiled elementwise programs (src/jit) against the block interpreter (the `program` kernel, with
// compilePrograms off) bit for bit, raw bits including NaN payloads, and against the unfused
// composition on this backend and on the CPU backend: random programs over every op, constants,
// scalars, `where`, several outputs, in-place outputs, sizes with tails of 1-3 elements and more
// than one 256-element block, and strided, broadcast and scalar operands and strided outputs.

const BINARY = ['add', 'sub', 'mul', 'div', 'pow', 'maximum', 'minimum', 'eq', 'ne', 'ge', 'gt', 'le', 'lt'] as const;
const UNARY = ['neg', 'log', 'exp', 'tanh', 'sqrt', 'abs', 'sign'] as const;
const CONSTANTS = [0, -0, 1, 2, 0.5, -1.5, 3, Infinity, NaN];

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = Math.imul(s ^ (s >>> 15), s | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface Case {
  program: ElementwiseProgram;
  /** Whether the program uses exp, log or tanh (the CPU backend's libm differs in the last bits). */
  transcendental: boolean;
  rows: number;
  cols: number;
  /**
   * Per input: 0 compact, 1 a row broadcast [cols], 2 a column broadcast [rows, 1], 3 a scalar [1],
   * 4 transposed, 5 every other column of a wider array, 6 columns 1..cols of a wider array.
   */
  layouts: number[];
  scalars: number[];
  /** Per output: 0 a new array, 1 in place into input 0 (compact), 2 a transposed view, 3 columns 0..cols of a wider array. */
  outs: number[];
}

function randomCase(seed: number): Case {
  const r = rng(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)];
  const nIn = 1 + Math.floor(r() * 5);
  const nSc = Math.floor(r() * 3);
  let transcendental = false;
  const program = defineProgram(nIn, nSc, (ins, scs) => {
    const vals: ProgramValue[] = [...ins, ...scs];
    const operand = (): ProgramValue | number => (r() < 0.2 ? pick(CONSTANTS) : pick(vals));
    const steps = 2 + Math.floor(r() * 14);
    for (let i = 0; i < steps; i++) {
      const x = r() < 0.6 ? vals[vals.length - 1 - Math.floor(r() * Math.min(3, vals.length))] : pick(vals);
      const k = r();
      let v: ProgramValue;
      if (k < 0.55) {
        const fn = pick(BINARY);
        const y = fn === 'pow' && r() < 0.5 ? 2 : operand();
        v = x[fn](y);
      } else if (k < 0.85) {
        const fn = pick(UNARY);
        v = x[fn]();
        if (fn === 'exp' || fn === 'log' || fn === 'tanh') transcendental = true;
      } else {
        v = x.select(operand(), operand());
      }
      vals.push(v);
    }
    const nOut = 1 + Math.floor(r() * 3);
    const outs: (ProgramValue | number)[] = [vals[vals.length - 1]];
    for (let k = 1; k < nOut; k++) outs.push(r() < 0.1 ? pick(CONSTANTS) : pick(vals));
    return outs as ProgramValue[];
  });
  // Sizes: tails of 0-3 elements, one or several blocks.
  // Rows of a multiple of 4 elements let strided rows be read with vector loads.
  const cols = r() < 0.4 ? 4 * (1 + Math.floor(r() * 4)) : 1 + Math.floor(r() * 9);
  const rows = 1 + Math.floor(r() * (r() < 0.3 ? 120 : 12));
  const layouts = Array.from({ length: nIn }, () => (r() < 0.4 ? 0 : Math.floor(r() * 7)));
  // Input 0 has the full shape (compact, transposed or sliced), so the result is [rows, cols].
  if (layouts[0] >= 1 && layouts[0] <= 3) layouts[0] = 0;
  const scalars = Array.from({ length: nSc }, () => (r() < 0.2 ? pick(SPECIAL) : r() * 4 - 2));
  const outs = program.outputs.map((_, k) => {
    const o = Math.floor(r() * 4);
    return o === 1 && (k !== 0 || layouts[0] !== 0) ? 0 : o;
  });
  return { program, transcendental, rows, cols, layouts, scalars, outs };
}

/** Random data with special values mixed in. */
function data(n: number, seed: number): Float32Array {
  const d = randomFloats(n, seed, -3, 3);
  for (let i = seed % 5; i < n; i += 5) d[i] = SPECIAL[(i + seed) % SPECIAL.length];
  return d;
}

/** Run a case on one backend: the outputs' values (their arrays disposed). */
function run(c: Case, be: WasmBackend | typeof cpu, seed: number, unfused = false): Float32Array[] {
  const { rows: R, cols: C } = c;
  const owned: NDArray[] = [];
  const own = (a: NDArray) => (owned.push(a), a);
  try {
    const inputs = c.layouts.map((l, i) => {
      const s = seed + 17 * i;
      switch (l) {
        case 1: return own(NDArray.fromData(data(C, s), [C], be));
        case 2: return own(NDArray.fromData(data(R, s), [R, 1], be));
        case 3: return own(NDArray.fromData(data(1, s), [1], be));
        case 4: return own(own(NDArray.fromData(data(R * C, s), [C, R], be)).transpose());
        case 5: return own(own(NDArray.fromData(data(2 * R * C, s), [R, 2 * C], be)).get({}, { step: 2 }));
        case 6: return own(own(NDArray.fromData(data(R * (C + 3), s), [R, C + 3], be)).get({}, { start: 1, stop: C + 1 }));
        default: return own(NDArray.fromData(data(R * C, s), [R, C], be));
      }
    });
    if (unfused) return elementwiseUnfused(c.program, inputs, c.scalars).map((a) => own(a).toArraySync() as Float32Array);
    const out = c.outs.map((o) => {
      if (o === 1) return inputs[0];
      if (o === 2) return own(own(NDArray.fromData(new Float32Array(R * C).fill(7), [C, R], be)).transpose());
      if (o === 3) return own(own(NDArray.fromData(new Float32Array(R * (C + 4)).fill(7), [R, C + 4], be)).get({}, { stop: C }));
      return undefined;
    });
    const results = elementwise(c.program, inputs, c.scalars, { out });
    results.forEach((a, k) => c.outs[k] === 0 && own(a));
    return results.map((a) => a.toArraySync() as Float32Array);
  } finally {
    owned.forEach((a) => a.disposed || a.dispose());
  }
}

function bits(a: Float32Array): Uint32Array {
  return new Uint32Array(a.buffer, a.byteOffset, a.length);
}

function expectSameBits(got: Float32Array, want: Float32Array, what: string, nanPayloads: boolean): void {
  expect(got.length, `${what}: length`).toBe(want.length);
  const g = bits(got);
  const w = bits(want);
  const i = g.findIndex((x, k) => x !== w[k] && (nanPayloads || !(Number.isNaN(got[k]) && Number.isNaN(want[k]))));
  expect(i, `${what}: element ${i} is ${got[i]} (0x${g[i]?.toString(16)}), expected ${want[i]} (0x${w[i]?.toString(16)})`).toBe(-1);
}

let compiled: WasmBackend;
let interpreted: WasmBackend;
/** Two threads: a shared memory, which the compiled modules import as shared. */
let threaded: WasmBackend;
beforeAll(async () => {
  compiled = await createWasmBackend({ compilePrograms: true });
  interpreted = await createWasmBackend({ compilePrograms: false });
  threaded = await createWasmBackend({ compilePrograms: true, threads: 2 });
});
afterAll(() => {
  compiled.destroy();
  interpreted.destroy();
  threaded.destroy();
});

describe('compiled elementwise programs', () => {
  it('equal the interpreter bit for bit, and the composition, on 300 random programs', () => {
    const before = programCompileStats();
    const launches = compiled.compiledProgramLaunches;
    for (let seed = 1; seed <= 300; seed++) {
      const c = randomCase(seed);
      const what = `seed ${seed}: ${c.program.key} over [${c.rows}, ${c.cols}], layouts ${c.layouts}, outs ${c.outs}`;
      const want = run(c, interpreted, seed);
      // A program is compiled at its second launch.
      const first = run(c, compiled, seed);
      const got = run(c, compiled, seed);
      first.forEach((g, k) => expectSameBits(g, want[k], `${what}, output ${k}, first launch vs the interpreter`, true));
      got.forEach((g, k) => expectSameBits(g, want[k], `${what}, output ${k} vs the interpreter`, true));
      const composed = run(c, compiled, seed, true);
      got.forEach((g, k) => expectSameBits(g, composed[k], `${what}, output ${k} vs the composition`, false));
      if (!c.transcendental) {
        const reference = run(c, cpu, seed);
        got.forEach((g, k) => expectSameBits(g, reference[k], `${what}, output ${k} vs the CPU backend`, false));
      }
    }
    const after = programCompileStats();
    expect(after.refused).toBe(before.refused);
    // Every operand kind was compiled.
    for (const k of ['c', 'r', 'z', 'b', 's'] as const) expect(after.kinds[k], `modules with '${k}' operands`).toBeGreaterThan(before.kinds[k] + 10);
    expect(after.modules).toBeGreaterThan(before.modules + 200);
    // Every second launch ran compiled code.
    expect(compiled.compiledProgramLaunches - launches).toBeGreaterThanOrEqual(300);
    expect(interpreted.compiledProgramLaunches).toBe(0);
    expect(compiled.memory()).toEqual({ buffers: 0, bytes: 0 });
  });

  it('tanh of vectors whose lanes are all below 0.5 (its series only) as the interpreter', () => {
    // Small values, a few of each sign near 0.5, signed zeros, subnormals and specials mixed in
    // (vectors of small lanes only, and mixed vectors), and a tail.
    const n = 4099;
    const x = randomFloats(n, 11, -0.55, 0.55);
    [0.5, -0.5, 0.49999997, -0.49999997, 0, -0, 1e-40, -1e-40, NaN, Infinity].forEach((v, i) => (x[37 * i + 5] = v));
    const p = defineProgram(1, 0, ([v]) => v.tanh());
    const results = [interpreted, compiled].map((be) => {
      const a = NDArray.fromData(x, [n], be);
      elementwise(p, [a])[0].dispose();
      const [t] = elementwise(p, [a]);
      const v = t.toArraySync() as Float32Array;
      [a, t].forEach((u) => u.dispose());
      return v;
    });
    expectSameBits(results[1], results[0], 'tanh', true);
  });

  it('x ** 2, x ** 0.5 and x ** -0.5 (constant exponents, vector shortcuts) as the interpreter', () => {
    const n = 1027;
    const x = randomFloats(n, 12, -3, 1e6);
    [0, -0, -1, 1e-40, -1e-40, NaN, Infinity, -Infinity, 1, 4].forEach((v, i) => (x[29 * i + 3] = v));
    const p = defineProgram(1, 1, ([v], [s]) => [v.pow(2), v.pow(0.5), v.pow(-0.5), v.pow(s)]);
    const results = [interpreted, compiled].map((be) => {
      const a = NDArray.fromData(x, [n], be);
      elementwise(p, [a], [-0.5]).forEach((o) => o.dispose());
      const outs = elementwise(p, [a], [-0.5]);
      const v = outs.map((o) => o.toArraySync() as Float32Array);
      [a, ...outs].forEach((u) => u.dispose());
      return v;
    });
    results[1].forEach((v, k) => expectSameBits(v, results[0][k], `pow output ${k}`, true));
  });

  it("where() over comparisons (their lane masks, NOTES.md section 41) as the interpreter", () => {
    // Max pooling's chain of running maxima and their index (NaN first, ties keep the earlier),
    // comparisons used only as conditions, as a condition and a value, as a condition and an output,
    // and conditions that are where() results; NaNs, signed zeros and a tail mixed in.
    const n = 1031;
    const xs = [0, 1, 2].map((s) => randomFloats(n, 21 + s, -2, 2));
    xs.forEach((x, s) => [NaN, 0, -0, Infinity, -Infinity, 1, 1].forEach((v, i) => (x[53 * i + 7 * s + 2] = v)));
    xs[1][300] = xs[0][300];
    const p = defineProgram(3, 1, ([a, b, c], [k]) => {
      const bBetter = b.ne(b).select(1, b.gt(a)).select(1, 0);
      const m1 = a.ne(a).select(0, bBetter).select(b, a);
      const i1 = a.ne(a).select(0, bBetter);
      const cBetter = c.ge(m1);
      const m2 = m1.ne(m1).select(0, c.ne(c).select(1, cBetter)).select(c, m1);
      const i2 = cBetter.select(2, i1);
      return [m2, i2.add(cBetter), c.lt(k).select(m2, i2), a.eq(k)];
    });
    const results = [interpreted, compiled].map((be) => {
      const arrays = xs.map((x) => NDArray.fromData(x, [n], be));
      elementwise(p, arrays, [0.25]).forEach((o) => o.dispose());
      const outs = elementwise(p, arrays, [0.25]);
      const v = outs.map((o) => o.toArraySync() as Float32Array);
      [...arrays, ...outs].forEach((u) => u.dispose());
      return v;
    });
    results[1].forEach((v, k) => expectSameBits(v, results[0][k], `where over comparisons, output ${k}`, true));
  });

  it('compile a program at its second launch, never one defined anew for each call', () => {
    const x = NDArray.fromData(data(1000, 3), [1000], compiled);
    const before = compiled.compiledProgramLaunches;
    for (let i = 0; i < 3; i++) elementwise(defineProgram(1, 0, ([v]) => v.mul(i + 0.5)), [x])[0].dispose();
    expect(compiled.compiledProgramLaunches).toBe(before);
    const p = defineProgram(1, 0, ([v]) => v.mul(3.5));
    for (let i = 0; i < 3; i++) elementwise(p, [x])[0].dispose();
    expect(compiled.compiledProgramLaunches).toBe(before + 2);
    x.dispose();
  });

  it("compile at the first launch with compilePrograms: 'eager', and reject other values", async () => {
    const eager = await createWasmBackend({ compilePrograms: 'eager' });
    try {
      const x = NDArray.fromData(data(1000, 4), [1000], eager);
      elementwise(defineProgram(1, 0, ([v]) => v.mul(4.5)), [x])[0].dispose();
      expect(eager.compiledProgramLaunches).toBe(1);
      x.dispose();
    } finally {
      eager.destroy();
    }
    await expect(createWasmBackend({ compilePrograms: 'yes' as never })).rejects.toThrow("createWasmBackend: compilePrograms must be true, false or 'eager', got yes");
  });

  it('run on a threaded backend (shared memory)', () => {
    const launches = threaded.compiledProgramLaunches;
    for (let seed = 1001; seed <= 1040; seed++) {
      const c = randomCase(seed);
      run(c, threaded, seed);
      const got = run(c, threaded, seed);
      const want = run(c, interpreted, seed);
      got.forEach((g, k) => expectSameBits(g, want[k], `seed ${seed}: ${c.program.key}, output ${k}`, true));
    }
    expect(threaded.compiledProgramLaunches - launches).toBeGreaterThanOrEqual(40);
    expect(threaded.memory()).toEqual({ buffers: 0, bytes: 0 });
  });

  it('split between threads above the threshold, bit for bit the interpreter (row, block and flat modes)', async () => {
    const three = await createWasmBackend({ threads: 3, spinMicros: 0 });
    // Parts of ~3 us: each launch cut into many more parts than threads (NOTES.md section 30).
    const fine = await createWasmBackend({ threads: 2, partMicros: 3 });
    try {
      const act = defineProgram(3, 1, ([x, b, c], [s]) => {
        const u = x.add(b).mul(s).tanh();
        return [c.eq(1).select(u, u.mul(0.5).add(0.5)), x.mul(b).maximum(c)];
      });
      // Each case's arrays, the views it passes last (the arrays are disposed after the run).
      const cases: [string, (be: WasmBackend, own: (a: NDArray) => NDArray) => NDArray[]][] = [
        // Rows of 64 with a row broadcast and a slice: row mode, split on whole rows.
        // (Sizes above split.ts's SPLIT_NS at the program's estimated cost per element.)
        ['rows', (be, own) => [own(NDArray.fromData(data(900 * 64, 1), [900, 64], be)), own(NDArray.fromData(data(64, 2), [64], be)), own(own(NDArray.fromData(data(900 * 80, 3), [900, 80], be)).get({}, { stop: 64 }))]],
        // A transposed input: gathered blocks.
        ['blocks', (be, own) => [own(own(NDArray.fromData(data(301 * 457, 4), [457, 301], be)).transpose()), own(NDArray.fromData(data(457, 5), [457], be)), own(NDArray.fromData(data(301 * 457, 6), [301, 457], be))]],
        // Compact, 3 elements past a multiple of 4.
        ['flat', (be, own) => [7, 8, 9].map((seed) => own(NDArray.fromData(data(120003, seed), [120003], be)))],
      ];
      for (const [what, make] of cases) {
        const results = [interpreted, threaded, three, fine].map((be) => {
          const owned: NDArray[] = [];
          const ins = make(be, (a) => (owned.push(a), a));
          elementwise(act, ins, [0.75]).forEach((a) => a.dispose());
          // The second launch runs compiled code. Any thread may run any part (the caller takes
          // back what a worker has not claimed; a worker compiles the module when it first claims
          // one), so a few launches give different threads different parts.
          const [splits, compiledRuns] = [be.splitLaunches, be.compiledProgramLaunches];
          const values: Float32Array[][] = [];
          for (let i = 0; i < 4; i++) {
            const outs = elementwise(act, ins, [0.75]);
            values.push(outs.map((o) => o.toArraySync() as Float32Array));
            outs.forEach((a) => a.dispose());
          }
          owned.forEach((a) => a.dispose());
          return { values, split: be.splitLaunches > splits, compiled: be.compiledProgramLaunches > compiledRuns };
        });
        expect(results.map((r) => r.compiled), `${what}: compiled`).toEqual([false, true, true, true]);
        expect(results.map((r) => r.split), `${what}: split on 1, 2, 3 threads and in fine parts`).toEqual([false, true, true, true]);
        for (const r of results) r.values.forEach((launch, i) => launch.forEach((v, k) => expectSameBits(v, results[0].values[0][k], `${what}, launch ${i}, output ${k}`, true)));
      }
      expect(three.memory()).toEqual({ buffers: 0, bytes: 0 });
      expect(fine.splitParts / fine.splitLaunches).toBeGreaterThan(8);
    } finally {
      three.destroy();
      fine.destroy();
    }
  });

  it('split a program over short rows read in place for the rows (col2im\'s adds), bit for bit', () => {
    // Per element alone (a load or store per operand) the estimate is below the split threshold;
    // each row read in place adds NS_PER.row (NOTES.md 25), which takes it above.
    const [rows, cols] = [8192, 16];
    expect(rows * cols * 3 * NS_PER.ewise).toBeLessThan(SPLIT_NS);
    const add = defineProgram(2, 0, ([x, y]) => [x.add(y)]);
    const results = [interpreted, threaded].map((be) => {
      const a = NDArray.fromData(data(rows * 144, 11), [rows, 144], be);
      const b = NDArray.fromData(data(rows * 32, 12), [rows, 32], be);
      const [x, y] = [a.get({}, { start: 16, stop: 32 }), b.get({}, { stop: 16 })];
      elementwise(add, [x, y], []).forEach((o) => o.dispose());
      const splits = be.splitLaunches;
      const [out] = elementwise(add, [x, y], []);
      const values = out.toArraySync() as Float32Array;
      [a, b, x, y, out].forEach((t) => t.dispose());
      return { values, split: be.splitLaunches > splits };
    });
    expect(results.map((r) => r.split)).toEqual([false, true]);
    expectSameBits(results[1].values, results[0].values, 'short rows', true);
    expect(threaded.memory()).toEqual({ buffers: 0, bytes: 0 });
  });

  it('rows of 4-D views in planes (NOTES.md section 44): in place, broadcast per row, split mid-plane, bit for bit', () => {
    // x: the interior of a padded NHWC image (rows of 16 channels, 33 rows to a plane), y: channels
    // 16..32 of a wider one, z: one value per row; one output in place into x (a row output), one
    // new. 9 * 37 * 31 rows: two threads split them in the middle of a plane.
    const [B, H, W, C] = [9, 37, 31, 16];
    const p = defineProgram(3, 1, ([x, y, z], [s]) => [x.add(y.mul(z)), y.sub(x).mul(s)]);
    const results = [interpreted, compiled, threaded].map((be) => {
      const padded = NDArray.fromData(data(B * (H + 2) * (W + 2) * C, 31), [B, H + 2, W + 2, C], be);
      const wide = NDArray.fromData(data(B * H * W * 3 * C, 32), [B, H, W, 3 * C], be);
      const perRow = NDArray.fromData(data(B * H * W, 33), [B, H, W, 1], be);
      const x = padded.get({}, { start: 1, stop: H + 1 }, { start: 1, stop: W + 1 });
      const y = wide.get({}, {}, {}, { start: C, stop: 2 * C });
      const z = perRow.broadcastTo([B, H, W, C]);
      const runs = [0, 1].map(() => {
        const before = be.splitLaunches;
        const copy = NDArray.fromData(padded.toArraySync() as Float32Array, padded.shape, be);
        const view = copy.get({}, { start: 1, stop: H + 1 }, { start: 1, stop: W + 1 });
        const [, second] = elementwise(p, [view, y, z], [0.75], { out: [view] });
        const out = [copy.toArraySync() as Float32Array, second.toArraySync() as Float32Array];
        [copy, view, second].forEach((t) => t.dispose());
        return { out, split: be.splitLaunches > before };
      });
      [padded, wide, perRow, x, y, z].forEach((t) => t.dispose());
      expect(be.memory()).toEqual({ buffers: 0, bytes: 0 });
      return runs[1];
    });
    expect(results.map((r) => r.split)).toEqual([false, false, true]);
    for (const r of results.slice(1)) r.out.forEach((v, k) => expectSameBits(v, results[0].out[k], `output ${k}`, true));
  });

  it('compile in a few milliseconds each', () => {
    // ~0.5 ms for a 55-step program on an idle core (NOTES.md section 20); loose for a busy machine.
    const s = programCompileStats();
    expect(s.modules).toBeGreaterThan(0);
    expect(s.ms / s.modules).toBeLessThan(10);
    expect(s.warmMs / s.modules).toBeLessThan(10);
  });
});
