/**
 * The conformance suite every backend runs (one call in the backend's test file):
 *
 *   import { runBackendConformance } from '@needle/ndarray/testing';
 *   runBackendConformance('wasm', () => createWasmBackend());
 *
 * It checks every kernel directly (including MatmulSpec's transposes and batch strides), every view
 * path of NDArray, the error paths and the memory accounting, against host-side reference values and
 * fixed numbers. Every test also asserts that it leaves the backend's live buffer count unchanged.
 */
import { afterAll, beforeAll, beforeEach, afterEach, describe, expect, it } from 'vitest';
import { BINARY_OPS, UNARY_OPS, REDUCE_OPS, PROGRAM_REDUCE_OPS, canReadSync, type Backend, type MatmulSpec } from '../backend';
import { NDArray } from '../ndarray';
import { array, arange, eye, full, ones, rand, randn, zeros } from '../creation';
import { concatenate, stack, split, unstack } from '../ops/join';
import { where } from '../ops/elementwise';
import { div, ge, lt, maximum, minimum, pow, sub } from '../functions';
import { scope, tidy, type Scope } from '../memory';
import { Generator } from '../random';
import { shapeSize } from '../shape';
import { statsDiff } from '../stats';
import { defineProgram, elementwise, elementwiseUnfused } from '../ops/program';
import { reduceProgram, reduceProgramUnfused } from '../ops/reduce';
import { flatIndicesAlong, gather, gatherRowsUnfused, indexAddInto, indexSelect, oneHot } from '../ops/rows';
import {
  at,
  f32,
  firstMismatch,
  generate,
  randomData,
  refBinary,
  refMatmul,
  refReduce,
  refStrided,
  refUnary,
  type Tolerance,
} from './reference';

export { runBackendFuzz, ndarrayFuzzCases, ndarrayFuzzContext, type BackendFuzzOptions, type FuzzContextOptions } from './fuzz-ndarray';
export {
  BAD_KINDS,
  INVALID,
  disposeAll,
  formatFindings,
  formatFuzzReport,
  fuzzInvalidCalls,
  type BadKind,
  type FuzzCase,
  type FuzzContext,
  type FuzzFinding,
  type FuzzOptions,
  type FuzzReport,
  type FuzzSlot,
} from './fuzz';
export { firstMismatch, refBinary, refUnary, refReduce, refMatmul, refStrided, generate, randomData, type Tolerance } from './reference';

export interface ConformanceOptions {
  /** Skip the whole suite, with this reason printed loudly (e.g. no WebGPU adapter). */
  skip?: string | false;
  /** Tolerance for exact-in-float32 arithmetic (add, mul, compact, ...). */
  exact?: Tolerance;
  /** Tolerance for transcendental functions and division (exp, log, tanh, sqrt, pow, div). */
  transcendental?: Tolerance;
  /**
   * Fused elementwise programs against the unfused composition on the same backend (default: bit
   * for bit; a shader compiler that contracts a*b+c into an fma may need an ulp or two).
   */
  program?: Tolerance;
  /** Relative tolerance for matmul and sums, scaled by sqrt(reduction length). */
  accumulate?: Tolerance;
  /** Release the backend after the suite (default: call backend.destroy if present). */
  destroy?: (backend: Backend) => void | Promise<void>;
}

const EXACT: Tolerance = { rtol: 1e-6, atol: 1e-7 };
const TRANSCENDENTAL: Tolerance = { rtol: 2e-5, atol: 1e-6 };
const ACCUMULATE: Tolerance = { rtol: 1e-5, atol: 1e-5 };

export function runBackendConformance(
  name: string,
  factory: () => Backend | Promise<Backend>,
  options: ConformanceOptions = {},
): void {
  if (options.skip) {
    console.warn(`\n!!! conformance suite for backend '${name}' SKIPPED: ${options.skip}\n`);
    describe.skip(`backend conformance: ${name}`, () => {
      it('skipped', () => undefined);
    });
    return;
  }
  const exactTol = options.exact ?? EXACT;
  const transTol = options.transcendental ?? TRANSCENDENTAL;
  const accTol = options.accumulate ?? ACCUMULATE;
  const programTol = options.program ?? { rtol: 0, atol: 0 };

  describe(`backend conformance: ${name}`, () => {
    let backend: Backend;
    let liveBefore = 0;
    let testScope: Scope | undefined;
    const g = new Generator(1234);

    beforeAll(async () => {
      backend = await factory();
    });
    afterAll(async () => {
      if (options.destroy) await options.destroy(backend);
      else backend.destroy?.();
    });
    // Every test runs inside a scope; when the scope ends, the backend must hold exactly as many
    // buffers as before: each frontend op must release its temporaries.
    beforeEach(() => {
      liveBefore = backend.memory().buffers;
      testScope = scope();
    });
    afterEach(() => {
      testScope?.end();
      testScope = undefined;
      expect(backend.memory().buffers, 'live buffers after the test (leak or double free)').toBe(liveBefore);
    });

    const opts = () => ({ backend });
    const fromData = (data: Float32Array, shape: readonly number[]) => NDArray.fromData(data, shape, backend);
    const readBuf = async (buf: import('../backend').DeviceBuffer, size: number) => backend.read(buf, size);
    async function expectClose(actual: NDArray | Float32Array, expected: ArrayLike<number>, tol: Tolerance = exactTol, what = '') {
      const data = actual instanceof NDArray ? await actual.toArray() : actual;
      const mismatch = firstMismatch(data, expected, tol);
      expect(mismatch, `${what} ${mismatch ?? ''}`).toBeUndefined();
    }
    async function expectNested(actual: NDArray, expected: unknown) {
      expect(await actual.toNested()).toEqual(expected);
    }
    function scaled(tol: Tolerance, n: number): Tolerance {
      const s = Math.sqrt(Math.max(n, 1));
      return { rtol: tol.rtol * s, atol: tol.atol * s };
    }

    // ---- buffers and raw kernels ---------------------------------------------------------------

    describe('buffers', () => {
      it('alloc/write/read round-trips and memory() counts buffers and bytes', async () => {
        const before = backend.memory();
        const buf = backend.alloc(10);
        expect(backend.memory().buffers).toBe(before.buffers + 1);
        expect(backend.memory().bytes).toBe(before.bytes + 40);
        const data = Float32Array.from({ length: 10 }, (_, i) => i * 1.5 - 3);
        backend.write(buf, data);
        await expectClose(await readBuf(buf, 10), data);
        backend.write(buf, Float32Array.of(100, 200), 4);
        await expectClose(await readBuf(buf, 10), [-3, -1.5, 0, 1.5, 100, 200, 6, 7.5, 9, 10.5]);
        expect((await readBuf(buf, 3)).length).toBe(3);
        backend.free(buf);
        expect(backend.memory()).toEqual(before);
      });

      it('many allocations of mixed sizes are freed back to the starting count', async () => {
        const before = backend.memory();
        const bufs = [1, 7, 64, 1000, 3, 4096, 5].map((n) => backend.alloc(n));
        bufs.forEach((b, i) => backend.fill(b, i, b.size));
        for (const [i, b] of bufs.entries()) await expectClose(await readBuf(b, b.size), new Float32Array(b.size).fill(i));
        bufs.forEach((b) => backend.free(b));
        expect(backend.memory()).toEqual(before);
      });

      it('readSync is either absent or agrees with read', async () => {
        const a = fromData(Float32Array.of(1, 2, 3), [3]);
        if (canReadSync(backend)) {
          expect(Array.from(a.toArraySync())).toEqual([1, 2, 3]);
        } else {
          expect(() => a.toArraySync()).toThrow(/cannot read synchronously/);
        }
      });
    });

    describe('stats', () => {
      it('counts one launch per kernel call, by family, and the bytes allocated, written and read', async () => {
        const a = backend.alloc(8);
        const b = backend.alloc(8);
        backend.write(a, Float32Array.from({ length: 8 }, (_, i) => i));
        backend.write(b, new Float32Array(8).fill(2));
        await backend.sync?.();
        backend.resetStats();
        const zero = backend.stats();
        expect(zero.launches).toBe(0);
        expect(Object.values(zero.kernels).every((n) => n === 0)).toBe(true);
        expect([zero.allocations, zero.bytesAllocated, zero.bytesUploaded, zero.bytesDownloaded]).toEqual([0, 0, 0, 0]);

        const c = backend.alloc(8);
        backend.ewise('add', a, b, c, 8);
        backend.ewise('mul', a, b, c, 8);
        backend.scalar('mul', c, 3, c, 8);
        backend.write(a, new Float32Array(6), 2);
        backend.compact(a, b, { shape: [4], strides: [2], offset: 0 });
        await readBuf(c, 5);
        const s = backend.stats();
        expect(s.kernels).toEqual({ ...zero.kernels, ewise: 2, scalar: 1, compact: 1 });
        expect(s.launches).toBe(4);
        expect(s.allocations).toBe(1);
        expect(s.bytesAllocated).toBe(32);
        expect(s.bytesUploaded).toBe(24);
        expect(s.bytesDownloaded).toBe(20);
        // A snapshot does not move with later work.
        backend.fill(c, 0, 8);
        expect(s.launches).toBe(4);
        expect(statsDiff(backend.stats(), s).kernels.fill).toBe(1);
        [a, b, c].forEach((x) => backend.free(x));
      });

      it('counts kernels, not frontend ops: a + b on compact arrays is one ewise launch', async () => {
        const x = fromData(Float32Array.of(1, 2, 3, 4), [2, 2]);
        const y = fromData(Float32Array.of(10, 20, 30, 40), [2, 2]);
        const before = backend.stats();
        const z = x.add(y);
        // The transposed view is compacted first, or read in place by a one-step program where the
        // backend's elementwise takes layouts.
        const t = x.transpose().add(1);
        const d = statsDiff(backend.stats(), before);
        expect(d.kernels.ewise).toBe(1);
        if (backend.layouts?.elementwise) {
          expect([d.kernels.scalar, d.kernels.compact, d.kernels.elementwise, d.launches]).toEqual([0, 0, 1, 2]);
        } else {
          expect([d.kernels.scalar, d.kernels.compact, d.launches]).toEqual([1, 1, 3]);
        }
        expect(d.allocations).toBeGreaterThanOrEqual(2);
        await expectClose(z, [11, 22, 33, 44]);
        await expectClose(t, [2, 4, 3, 5]);
      });
    });

    describe('elementwise programs', () => {
      // Programs over the awkward values: NaN, +-Inf, +-0, huge and tiny numbers.
      const specials = [NaN, Infinity, -Infinity, 0, -0, 1, -1, 3e38, -3e38, 1e-38, 88.8, -104, 0.5];
      const data = (n: number, low = -3, high = 3) => {
        const d = randomData(g, n, low, high);
        for (let i = 0; i < n; i += 7) d[i] = specials[(i / 7) % specials.length];
        return d;
      };
      const programs = {
        'sgd momentum nesterov': defineProgram(3, 4, ([p, gr, buf], [lr, mom, damp, wd]) => {
          const d = gr.add(p.mul(wd));
          const b = buf.mul(mom).add(d.mul(damp));
          return [p.sub(d.add(b.mul(mom)).mul(lr)), b];
        }),
        'adam with bias correction': defineProgram(4, 6, ([p, gr, m, v], [b1, omb1, b2, omb2, stepSize, eps]) => {
          const m2 = m.mul(b1).add(gr.mul(omb1));
          const v2 = v.mul(b2).add(gr.mul(gr).mul(omb2));
          return [p.sub(m2.div(v2.sqrt().div(b2).add(eps)).mul(stepSize)), m2, v2];
        }),
        'transcendentals and constants': defineProgram(2, 0, ([x, y]) => [
          x.exp().log().add(y.tanh()),
          x.abs().sqrt().mul(-0.5).sign(),
          x.pow(y).neg(),
          y.div(x).minimum(x.maximum(y)),
        ]),
        'comparisons and select (NaN condition is true)': defineProgram(3, 1, ([c, x, y], [s]) => [
          c.gt(0).select(x, y),
          c.select(x.mul(s), 2),
          x.eq(y).add(x.ne(y)).add(x.le(s)).sub(x.lt(y)).add(x.ge(y)),
        ]),
        // Steps of scalars and constants only: the composition computes them on the host (Math),
        // so the fused path must get them as values, not run the backend's own exp/log/pow.
        'uniform steps (scalars and constants only)': defineProgram(1, 2, ([x], [s, t]) => {
          const u = s.exp().mul(t.abs().log().tanh()).add(s.pow(t));
          return [x.mul(u), x.add(s.gt(0).select(s.sqrt(), 3)), u.sub(x.mul(0))];
        }),
        'scalar on the left, constant outputs': defineProgram(1, 1, ([x], [s]) => {
          const one = x.mul(0).add(1); // 1, NaN where x is NaN or Inf
          return [one.sub(x).div(s), one.mul(s), x];
        }),
      };
      for (const [name, program] of Object.entries(programs)) {
        it(`${name}: fused equals the unfused composition`, async () => {
          for (const n of [1, 5, 256, 257, 1000, 60001]) {
            const inputs = Array.from({ length: program.inputs }, () => fromData(data(n), [n]));
            const scalars = Array.from({ length: program.scalars }, (_, i) => [0.1, 0.9, 0.999, 1e-8, -2, 3][i % 6]);
            const fused = elementwise(program, inputs, scalars);
            const unfused = elementwiseUnfused(program, inputs, scalars);
            expect(fused.length).toBe(program.outputs.length);
            for (let k = 0; k < fused.length; k++) {
              await expectClose(fused[k], await unfused[k].toArray(), programTol, `${name}, size ${n}, output ${k}:`);
            }
          }
        });
      }

      it('fixed values; one launch where the backend fuses; outputs written in place count as writes', async () => {
        const axpy = defineProgram(2, 1, ([x, y], [a]) => [x.mul(a).add(y), x.sub(y)]);
        expect(axpy.key).toBe(defineProgram(2, 1, ([x, y], [a]) => [x.mul(a).add(y), x.sub(y)]).key);
        const x = fromData(Float32Array.of(1, 2, 3, 4), [2, 2]);
        const y = fromData(Float32Array.of(10, 20, 30, 40), [2, 2]);
        const before = backend.stats();
        const [r, d] = elementwise(axpy, [x, y], [0.5]);
        const launched = statsDiff(backend.stats(), before);
        if (backend.elementwise) expect(launched.launches).toBe(1);
        expect(launched.kernels.elementwise).toBe(backend.elementwise ? 1 : 0);
        expect(r.shape).toEqual([2, 2]);
        await expectNested(r, [[10.5, 21], [31.5, 42]]);
        await expectNested(d, [[-9, -18], [-27, -36]]);
        // In place into an input: y <- 0.5 x + y, x <- x - y (the old y), versions bumped once each.
        const vx = x.version;
        const vy = y.version;
        const outs = elementwise(axpy, [x, y], [0.5], { out: [y, x] });
        expect(outs[0]).toBe(y);
        expect(outs[1]).toBe(x);
        await expectClose(y, [10.5, 21, 31.5, 42]);
        await expectClose(x, [-9, -18, -27, -36]);
        expect([x.version, y.version]).toEqual([vx + 1, vy + 1]);
        // Broadcast and non-compact inputs.
        const col = fromData(Float32Array.of(100, 200), [2, 1]);
        const [b] = elementwise(axpy, [x.transpose(), col], [1]);
        await expectNested(b, [[91, 73], [182, 164]]);
      });

      it('rejects bad programs and arguments with clear errors', () => {
        const p = defineProgram(2, 1, ([x, y], [s]) => x.add(y).mul(s));
        const x = fromData(Float32Array.of(1, 2, 3), [3]);
        const y = fromData(Float32Array.of(1, 2), [2]);
        expect(() => elementwise(p, [x], [1])).toThrow(/elementwise: program takes 2 inputs, got 1/);
        expect(() => elementwise(p, [x, x], [])).toThrow(/program takes 1 scalars, got 0/);
        expect(() => elementwise(p, [x, y], [1])).toThrow(/elementwise.*\[3\].*\[2\]/);
        expect(() => elementwise(p, [x, x], [1], { out: [y] })).toThrow(/out\[0\] has shape \[2\], expected the result's \[3\]/);
        expect(() => elementwise({ ...p, steps: [{ op: 'binary', fn: 'add', a: 0, b: 5 }] }, [x, x], [1])).toThrow(/step 0 refers to value 0|earlier steps/);
        expect(() => defineProgram(1, 0, ([a]) => a.add(a).add(a).add(a).add(a).add(a).add(a).add(a).add(a).add(a).add(a).add(a).add(a).add(a).add(a).add(a).add(a).add(a).add(a).add(a).add(a).add(a).add(a).add(a).add(a).add(a).add(a).add(a).add(a).add(a).add(a).add(a).add(a).add(a).add(a).add(a).add(a).add(a).add(a).add(a).add(a).add(a).add(a).add(a).add(a).add(a).add(a).add(a).add(a).add(a).add(a).add(a).add(a).add(a).add(a).add(a).add(a).add(a).add(a).add(a).add(a).add(a).add(a).add(a).add(a))).toThrow(/step count must be an integer in \[0, 64\]/);
      });
    });

    describe('elementwise programs over strided views', () => {
      const specials = [NaN, Infinity, -Infinity, 0, -0, 1, -1, 3e38, -3e38, 1e-38, 88.8, -104, 0.5];
      const data = (n: number) => {
        const d = randomData(g, n, -3, 3);
        for (let i = 0; i < n; i += 5) d[i] = specials[(i / 5) % specials.length];
        return d;
      };
      const strided = () => Boolean(backend.layouts?.elementwise);
      // Equal bit for bit where the program tolerance is zero (-0 is not 0; any NaN matches NaN).
      async function expectSame(actual: NDArray, expected: Float32Array, what: string) {
        const got = await actual.toArray();
        if (programTol.rtol !== 0 || programTol.atol !== 0) return expectClose(got, expected, programTol, what);
        const i = got.findIndex((x, k) => !Object.is(x, expected[k]) && !(Number.isNaN(x) && Number.isNaN(expected[k])));
        expect(i, `${what} element ${i}: got ${got[i]}, expected ${expected[i]}`).toBe(-1);
      }
      const KINDS = ['compact', 'broadcast', 'transposed', 'sliced', 'flipped', 'offset', 'sliced+flipped'] as const;
      type Kind = (typeof KINDS)[number];
      /** A view of `shape` of the given kind over a fresh buffer of random data. */
      const view = (kind: Kind, shape: readonly number[]): NDArray => {
        const n = shape.length;
        const size = (sh: readonly number[]) => shapeSize(sh);
        switch (kind) {
          case 'compact': return fromData(data(size(shape)), shape);
          case 'broadcast': {
            // Drop the leading axis and set every other remaining axis to 1.
            const src = shape.slice(1).map((d, i) => (i % 2 === 0 ? 1 : d));
            return fromData(data(size(src)), src).broadcastTo(shape);
          }
          case 'transposed': {
            const rev = [...shape].reverse();
            return fromData(data(size(rev)), rev).permute(rev.map((_, i) => n - 1 - i));
          }
          case 'sliced': {
            const big = shape.map((d) => 2 * d + 1);
            return fromData(data(size(big)), big).get(...shape.map((d) => `1:${2 * d + 1}:2`));
          }
          case 'flipped': return fromData(data(size(shape)), shape).flip();
          case 'offset': {
            const big = shape.map((d, i) => d + (i === 0 ? 3 : i === n - 1 ? 1 : 0));
            return fromData(data(size(big)), big).get(...shape.map((d, i) => (i === 0 ? `3:` : i === n - 1 ? `1:` : ':')));
          }
          case 'sliced+flipped': {
            const big = shape.map((d) => 3 * d);
            return fromData(data(size(big)), big).get(...shape.map((d, i) => (i % 2 === 0 ? `::3` : `${3 * d - 1}::-3`)));
          }
          default: return kind satisfies never;
        }
      };
      const programs = {
        'sgd momentum nesterov': defineProgram(3, 4, ([p, gr, buf], [lr, mom, damp, wd]) => {
          const d = gr.add(p.mul(wd));
          const b = buf.mul(mom).add(d.mul(damp));
          return [p.sub(d.add(b.mul(mom)).mul(lr)), b];
        }),
        'transcendentals, comparisons and select': defineProgram(3, 1, ([x, y, c], [s]) => [
          x.exp().log().add(y.tanh()).div(s),
          c.gt(0).select(x.pow(y), y.maximum(x).sign()),
          x.sub(y).mul(c),
        ]),
        'one unary step': defineProgram(1, 0, ([x]) => x.neg()),
      };
      const shapes = [[7, 5], [3, 4, 33], [300, 9], [2, 3, 1, 4], [1], []];

      for (const [name, program] of Object.entries(programs)) {
        it(`${name}: fused over views equals the compact-then-program composition, one launch`, async () => {
          let trial = 0;
          for (const shape of shapes) {
            for (let rep = 0; rep < 2; rep++, trial++) {
              const inputs = Array.from({ length: program.inputs }, (_, k) => view(KINDS[(trial + 3 * k) % KINDS.length], shape));
              const scalars = Array.from({ length: program.scalars }, (_, i) => [0.1, 0.9, 0.999, 1e-8][i % 4]);
              const expected = elementwiseUnfused(program, inputs.map((a) => a.compact()), scalars);
              const before = backend.stats();
              const fused = elementwise(program, inputs, scalars);
              const d = statsDiff(backend.stats(), before);
              if (strided()) {
                expect(d.kernels.compact, `${name} ${JSON.stringify(shape)}: compact launches`).toBe(0);
                expect(d.launches, `${name} ${JSON.stringify(shape)}: launches`).toBe(1);
              }
              for (let k = 0; k < fused.length; k++) {
                await expectSame(fused[k], await expected[k].toArray(), `${name} ${JSON.stringify(shape)} kinds ${inputs.map((a) => JSON.stringify(a.strides)).join(' ')} output ${k}:`);
              }
            }
          }
        });
      }

      it('writes outputs through views in place and leaves the rest of their buffers alone', async () => {
        const program = programs['transcendentals, comparisons and select'];
        const outKinds = ['transposed', 'sliced', 'offset', 'sliced+flipped', 'flipped'] as const;
        let trial = 0;
        for (const shape of [[7, 5], [3, 4, 33], [2, 3, 1, 4], []]) {
          trial++;
          const inputs = [0, 1, 2].map((k) => view(KINDS[(trial + 2 * k) % KINDS.length], shape));
          const expected = elementwiseUnfused(program, inputs.map((a) => a.compact()), [0.5]);
          const outs = [0, 1, 2].map((k) => view(outKinds[(trial + k) % outKinds.length], shape));
          // What each whole buffer must hold afterwards: the old contents with the view replaced.
          const bases = outs.map((o) => o.asStrided([o.buffer.size], [1], 0));
          const want = await Promise.all(outs.map(async (o, k) => {
            const copy = bases[k].clone();
            copy.asStrided(o.shape, o.strides, o.offset).assign(expected[k]);
            return copy.toArray();
          }));
          const versions = outs.map((o) => o.version);
          const before = backend.stats();
          const result = elementwise(program, inputs, [0.5], { out: outs, writer: 'testWriter' });
          const d = statsDiff(backend.stats(), before);
          if (strided()) expect(d.launches, `launches, shape ${JSON.stringify(shape)}`).toBe(1);
          result.forEach((r, k) => expect(r).toBe(outs[k]));
          expect(outs.map((o) => o.version)).toEqual(versions.map((v) => v + 1));
          expect(outs[0].lastWriter).toBe('testWriter');
          for (let k = 0; k < 3; k++) {
            await expectSame(outs[k], await expected[k].toArray(), `out ${k} view, shape ${JSON.stringify(shape)}:`);
            await expectSame(bases[k], want[k], `out ${k} whole buffer, shape ${JSON.stringify(shape)}:`);
          }
        }
      });

      it('in-place updates through views; inputs overlapping an output are read before any write', async () => {
        const axpy = defineProgram(2, 1, ([x, y], [a]) => x.mul(a).add(y));
        // y.get(t) <- 2 * y.get(t - 1) + y.get(t) (rows of one buffer: disjoint and aligned views).
        const y = fromData(Float32Array.from({ length: 12 }, (_, i) => i), [4, 3]);
        elementwise(axpy, [y.get(1), y.get(2)], [2], { out: [y.get(2)] });
        await expectNested(y, [[0, 1, 2], [3, 4, 5], [12, 15, 18], [9, 10, 11]]);
        // A column written from a transposed view of its own buffer (overlapping, not aligned).
        const m = fromData(Float32Array.of(1, 2, 3, 4), [2, 2]);
        elementwise(axpy, [m.transpose(), m], [10], { out: [m] });
        await expectNested(m, [[11, 32], [23, 44]]);
        // A shifted view of the output's own buffer: x[1:] <- x[:-1] + x[1:], as if read first.
        const x = fromData(Float32Array.of(1, 2, 3, 4, 5), [5]);
        elementwise(axpy, [x.get('0:4'), x.get('1:')], [1], { out: [x.get('1:')] });
        await expectNested(x, [1, 3, 5, 7, 9]);
        // Flipped onto itself.
        const f = fromData(Float32Array.of(1, 2, 3), [3]);
        elementwise(axpy, [f.flip(), f], [100], { out: [f] });
        await expectNested(f, [301, 202, 103]);
      });

      it('outputs into disjoint ranges of one buffer (the two rows of [2, ...]); overlapping ones are refused', async () => {
        const program = programs['sgd momentum nesterov'];
        for (const shape of [[7, 5], [3, 4, 33], []]) {
          const inputs = [0, 1, 2].map((k) => view(KINDS[k], shape));
          const expected = elementwiseUnfused(program, inputs.map((a) => a.compact()), [0.1, 0.9, 0.5, 0.01]);
          // Row 1 first, then row 0 of a third row's worth of filled buffer: offsets, both orders.
          const both = fromData(new Float32Array(3 * shapeSize(shape)).fill(7), [3, ...shape]);
          const rows = [both.get(2), both.get(0)];
          const version = both.version;
          const before = backend.stats();
          const result = elementwise(program, inputs, [0.1, 0.9, 0.5, 0.01], { out: rows });
          const d = statsDiff(backend.stats(), before);
          // One launch where the backend takes one buffer as two outputs, else a copy for the second.
          if (strided()) expect(d.launches, `launches, shape ${JSON.stringify(shape)}`).toBe(backend.layouts?.sharedOutputs ? 1 : 2);
          result.forEach((r, k) => expect(r).toBe(rows[k]));
          expect(both.version).toBeGreaterThan(version);
          for (let k = 0; k < 2; k++) await expectSame(rows[k], await expected[k].toArray(), `row output ${k}, shape ${JSON.stringify(shape)}:`);
          await expectSame(both.get(1), new Float32Array(shapeSize(shape)).fill(7), `the row between, shape ${JSON.stringify(shape)}:`);
        }
        // The same row twice, and two interleaved columns (disjoint elements, but ranges that meet:
        // refused, as the rule is about ranges). Nothing is written.
        const buf = zeros([3, 4], opts());
        const two = defineProgram(1, 0, ([x]) => [x.neg(), x.abs()]);
        const x = fromData(Float32Array.of(1, -2, 3), [3]);
        expect(() => elementwise(two, [x], [], { out: [buf.get(':', 0), buf.get(':', 0)] })).toThrow(/out\[0\] and out\[1\] share a buffer and their element ranges meet/);
        expect(() => elementwise(two, [x], [], { out: [buf.get(':', 0), buf.get(':', 1)] })).toThrow(/element ranges meet/);
        await expectNested(buf, [[0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]]);
      });

      it('array ops on views (binary, scalar, unary, where) equal compact-then-kernel bit for bit, one launch', async () => {
        const shape = [6, 35];
        const ops: [string, (v: NDArray[]) => NDArray][] = [
          ...BINARY_OPS.map((op): [string, (v: NDArray[]) => NDArray] => [`x ${op} y`, ([a, b]) => a[op](b)]),
          ...BINARY_OPS.map((op): [string, (v: NDArray[]) => NDArray] => [`x ${op} 0.75`, ([a]) => a[op](0.75)]),
          ['2 - x', ([a]) => sub(2, a)],
          ['-1.5 / x', ([a]) => div(-1.5, a)],
          ['3 ** x', ([a]) => pow(3, a)],
          ...UNARY_OPS.map((op): [string, (v: NDArray[]) => NDArray] => [op, ([a]) => a[op]()]),
          ['where(c, x, y)', ([a, b, c]) => where(c, a, b)],
          ['where(c, x, 0.5)', ([a, , c]) => where(c, a, 0.5)],
          ['where(c, -2, y)', ([, b, c]) => where(c, -2, b)],
          ['where(c, 1, NaN)', ([, , c]) => where(c, 1, NaN)],
        ];
        let trial = 0;
        for (const [name, f] of ops) {
          trial++;
          const views = [0, 1, 2].map((k) => view(KINDS[(trial + 2 * k) % KINDS.length], k === 1 ? shape.slice(1) : shape));
          const expected = f(views.map((v) => v.compact()));
          const before = backend.stats();
          const got = f(views);
          const d = statsDiff(backend.stats(), before);
          if (strided()) {
            expect(d.kernels.compact + d.kernels.fill, `${name}: compact/fill launches`).toBe(0);
            expect(d.launches, `${name}: launches`).toBe(1);
          }
          expect(got.shape).toEqual(expected.shape);
          await expectSame(got, await expected.toArray(), `${name} over ${views.map((v) => JSON.stringify(v.strides)).join(' ')}:`);
        }
      });

      it('reductions over views (axis 0, inner, several, all; broadcast, transposed, sliced, flipped) equal compact-then-reduce bit for bit, one launch', async () => {
        const cases: [readonly number[], number | number[] | undefined][] = [
          [[37, 6], 0], [[37, 6], 1], [[5, 4, 9], [0, 2]], [[5, 4, 9], 1], [[5, 4, 9], undefined], [[300, 3], 0], [[8], 0],
        ];
        let trial = 0;
        for (const [shape, axis] of cases) {
          for (const op of REDUCE_OPS) {
            trial++;
            const v = view(KINDS[trial % KINDS.length], shape);
            const ax = (op === 'argmax' || op === 'argmin') && Array.isArray(axis) ? axis[0] : axis;
            const run = (a: NDArray) => (op === 'argmax' || op === 'argmin' ? a[op](ax as number | undefined) : a[op](ax));
            const expected = run(v.compact());
            const before = backend.stats();
            const got = run(v);
            const d = statsDiff(backend.stats(), before);
            if (backend.layouts?.reduce && !v.isKernelReady) {
              expect(d.kernels.compact, `${op} over ${JSON.stringify(v.strides)} axis ${JSON.stringify(ax)}: compacts`).toBe(0);
              expect(d.kernels.reduce, `${op}: reduce launches`).toBe(1);
            }
            expect(got.shape).toEqual(expected.shape);
            await expectSame(got, await expected.toArray(), `${op} over ${JSON.stringify(v.shape)} strides ${JSON.stringify(v.strides)} axis ${JSON.stringify(ax)}:`);
          }
        }
      });

      it('set/assign with a strided or broadcast value: one copy launch into the view, versions bumped once, shifts read first', async () => {
        const a = fromData(Float32Array.from({ length: 12 }, (_, i) => i), [3, 4]);
        const src = fromData(Float32Array.from({ length: 12 }, (_, i) => 100 + i), [4, 3]);
        const v0 = a.version;
        const before = backend.stats();
        a.set([':', '1:4'], src.transpose().get(':', '0:3'));
        const d = statsDiff(backend.stats(), before);
        if (strided()) expect([d.launches, d.kernels.elementwise]).toEqual([1, 1]);
        expect([a.version, a.lastWriter]).toEqual([v0 + 1, 'set']);
        await expectNested(a, [[0, 100, 103, 106], [4, 101, 104, 107], [8, 102, 105, 108]]);
        a.get(0).assign(fromData(Float32Array.of(-1, -2), [2, 1]).get(0));
        await expectNested(a.get(0), [-1, -1, -1, -1]);
        // NumPy semantics for a value viewing the target's own buffer: a[1:] = a[:-1] shifts.
        const x = fromData(Float32Array.of(1, 2, 3, 4, 5), [5]);
        x.set('1:', x.get(':4'));
        await expectNested(x, [1, 1, 2, 3, 4]);
        x.assign(x.flip());
        await expectNested(x, [4, 3, 2, 1, 1]);
      });

      it('refuses an output view that reaches an element twice, naming it', async () => {
        const p = defineProgram(1, 0, ([x]) => x.neg());
        const x = fromData(Float32Array.of(1, 2, 3), [3]);
        const row = fromData(Float32Array.of(0, 0, 0), [1, 3]);
        expect(() => elementwise(p, [x.broadcastTo([2, 3])], [], { out: [row.broadcastTo([2, 3])] })).toThrow(/elementwise: out\[0\] \(shape \[2, 3\], strides \[0, 1\]\) reaches some elements more than once/);
        const w = fromData(new Float32Array(8), [8]);
        expect(() => elementwise(p, [x.broadcastTo([2, 3])], [], { out: [w.asStrided([2, 3], [2, 1], 0)] })).toThrow(/out\[0\].*more than once/);
        // Distinct elements under unusual strides are fine: [3, 3] with strides [2, 3] hits 9 elements.
        const big = fromData(new Float32Array(11), [11]);
        const nine = fromData(Float32Array.from({ length: 9 }, (_, i) => i + 1), [3, 3]);
        elementwise(p, [nine], [], { out: [big.asStrided([3, 3], [2, 3], 0)] });
        await expectNested(big, [-1, 0, -4, -2, -7, -5, -3, -8, -6, 0, -9]);
      });
    });

    describe('kernels', () => {
      const sizes = [1, 3, 4, 5, 16, 17, 63, 64, 65, 1000, 4099];

      it('fill', async () => {
        for (const n of sizes) {
          const buf = backend.alloc(n + 3);
          backend.fill(buf, -1, n + 3);
          backend.fill(buf, 2.5, n);
          const expected = new Float32Array(n + 3).fill(2.5);
          expected.fill(-1, n);
          await expectClose(await readBuf(buf, n + 3), expected, exactTol, `fill n=${n}`);
          backend.free(buf);
        }
      });

      for (const op of BINARY_OPS) {
        it(`ewise ${op} and scalar ${op}`, async () => {
          for (const n of [1, 5, 17, 1031]) {
            const x = randomData(g, n, op === 'pow' ? 0.1 : -3, 3);
            const y = randomData(g, n, -3, 3);
            // Make comparisons see equal values too.
            for (let i = 0; i < n; i += 3) y[i] = x[i];
            const a = backend.alloc(n);
            const b = backend.alloc(n);
            const out = backend.alloc(n);
            backend.write(a, x);
            backend.write(b, y);
            const tol = op === 'div' || op === 'pow' ? transTol : exactTol;
            backend.ewise(op, a, b, out, n);
            await expectClose(await readBuf(out, n), refBinary(op, x, y), tol, `ewise ${op} n=${n}`);
            const s = f32(y[0]);
            backend.scalar(op, a, s, out, n);
            await expectClose(await readBuf(out, n), refBinary(op, x, new Float32Array(n).fill(s)), tol, `scalar ${op} n=${n}`);
            [a, b, out].forEach((buf) => backend.free(buf));
          }
        });
      }

      it('pow handles negative bases with integer exponents and special cases', async () => {
        const x = Float32Array.of(-2, -2, -3, 2, 0, 4, -1.5, 0);
        const y = Float32Array.of(2, 3, 0, -1, 2, 0.5, 2, 0);
        const a = fromData(x, [8]);
        const b = fromData(y, [8]);
        await expectClose(a.pow(b), [4, -8, 1, 0.5, 0, 2, 2.25, 1], transTol);
        await expectClose(a.pow(2), [4, 4, 9, 4, 0, 16, 2.25, 0], transTol);
        await expectClose(a.pow(3), [-8, -8, -27, 8, 0, 64, -3.375, 0], transTol);
        const frac = (await a.pow(0.5).toArray());
        expect(Number.isNaN(frac[0])).toBe(true);
      });

      for (const op of UNARY_OPS) {
        it(`unary ${op}`, async () => {
          for (const n of [1, 6, 19, 1029]) {
            const x = randomData(g, n, op === 'log' || op === 'sqrt' ? 0.01 : -4, 4);
            const a = backend.alloc(n);
            const out = backend.alloc(n);
            backend.write(a, x);
            backend.unary(op, a, out, n);
            const tol = op === 'neg' || op === 'abs' || op === 'sign' ? exactTol : transTol;
            await expectClose(await readBuf(out, n), refUnary(op, x), tol, `unary ${op} n=${n}`);
            backend.free(a);
            backend.free(out);
          }
        });
      }

      it('unary special values', async () => {
        const x = fromData(Float32Array.of(0, -1, Infinity, -Infinity, 30, -30, 1e-3), [7]);
        const log = await x.log().toArray();
        expect(log[0]).toBe(-Infinity);
        expect(Number.isNaN(log[1])).toBe(true);
        expect(log[2]).toBe(Infinity);
        await expectClose(x.tanh(), [0, Math.tanh(-1), 1, -1, 1, -1, Math.tanh(1e-3)], transTol, 'tanh saturates');
        const exp = await x.exp().toArray();
        expect(exp[2]).toBe(Infinity);
        expect(exp[3]).toBe(0);
        await expectClose(x.sign(), [0, -1, 1, -1, 1, -1, 1]);
        await expectClose(x.abs(), [0, 1, Infinity, Infinity, 30, 30, f32(1e-3)]);
      });

      it('where', async () => {
        for (const n of [1, 7, 1030]) {
          const c = randomData(g, n, -1, 1).map((v) => (v > 0 ? 1 : 0));
          const x = randomData(g, n);
          const y = randomData(g, n);
          const bufs = [c, x, y].map((d) => {
            const b = backend.alloc(n);
            backend.write(b, d);
            return b;
          });
          const out = backend.alloc(n);
          backend.where(bufs[0], bufs[1], bufs[2], out, n);
          await expectClose(await readBuf(out, n), c.map((v, i) => (v !== 0 ? x[i] : y[i])));
          [...bufs, out].forEach((b) => backend.free(b));
        }
      });

      for (const op of REDUCE_OPS) {
        it(`reduce ${op}`, async () => {
          for (const [outSize, reduceSize] of [[1, 1], [1, 7], [5, 1], [3, 64], [7, 33], [2, 4097], [1000, 10], [1, 100000]]) {
            const x = randomData(g, outSize * reduceSize);
            const a = backend.alloc(x.length);
            const out = backend.alloc(outSize);
            backend.write(a, x);
            backend.reduce(op, a, out, outSize, reduceSize);
            const tol = op === 'sum' ? scaled(accTol, reduceSize) : exactTol;
            await expectClose(await readBuf(out, outSize), refReduce(op, x, outSize, reduceSize), tol, `reduce ${op} ${outSize}x${reduceSize}`);
            backend.free(a);
            backend.free(out);
          }
        });
      }

      it('argmax/argmin return the first extreme index on ties', async () => {
        const a = fromData(Float32Array.of(1, 5, 5, 0, 0, 1, 2, 2, 2), [3, 3]);
        await expectClose(a.argmax(1), [1, 2, 0]);
        await expectClose(a.argmin(1), [0, 0, 0]);
        await expectClose(a.argmax(0), [2, 0, 0]);
        await expectClose(a.argmax(), [1]);
      });

      it('compact, ewiseSetitem and scalarSetitem over strided layouts', async () => {
        const base = Float32Array.from({ length: 120 }, (_, i) => i);
        const layouts = [
          { shape: [4, 5], strides: [1, 4], offset: 0 },
          { shape: [2, 3, 4], strides: [60, 20, 5], offset: 1 },
          { shape: [3, 4], strides: [-20, 1], offset: 100 },
          { shape: [5, 2], strides: [0, 7], offset: 3 },
          { shape: [], strides: [], offset: 17 },
          { shape: [7], strides: [3], offset: 2 },
          { shape: [2, 2, 2, 3], strides: [40, 10, 3, 1], offset: 5 },
        ];
        for (const layout of layouts) {
          const size = shapeSize(layout.shape);
          const src = backend.alloc(120);
          backend.write(src, base);
          const out = backend.alloc(size);
          backend.compact(src, out, layout);
          const expected = refStrided(base, layout.shape, layout.strides, layout.offset);
          await expectClose(await readBuf(out, size), expected, exactTol, `compact ${JSON.stringify(layout)}`);
          if (!layout.strides.includes(0)) {
            const vals = Float32Array.from({ length: size }, (_, i) => -1 - i);
            const v = backend.alloc(size);
            backend.write(v, vals);
            backend.ewiseSetitem(v, src, layout);
            const host = base.slice();
            let i = 0;
            generate(layout.shape, (idx) => {
              host[layout.offset + idx.reduce((s, k, d) => s + k * layout.strides[d], 0)] = vals[i++];
              return 0;
            });
            await expectClose(await readBuf(src, 120), host, exactTol, `ewiseSetitem ${JSON.stringify(layout)}`);
            backend.scalarSetitem(0.5, src, layout);
            generate(layout.shape, (idx) => {
              host[layout.offset + idx.reduce((s, k, d) => s + k * layout.strides[d], 0)] = 0.5;
              return 0;
            });
            await expectClose(await readBuf(src, 120), host, exactTol, `scalarSetitem ${JSON.stringify(layout)}`);
            backend.free(v);
          }
          backend.free(src);
          backend.free(out);
        }
      });

      it('matmul: every combination of transposes, batch strides and odd sizes', async () => {
        const shapes = [
          [1, 1, 1], [1, 5, 1], [2, 3, 4], [5, 1, 3], [17, 9, 33], [64, 64, 64], [65, 31, 7], [4, 130, 67], [33, 128, 1],
        ];
        for (const [m, k, n] of shapes) {
          for (const transA of [false, true]) {
            for (const transB of [false, true]) {
              for (const [batch, shareA, shareB] of [[1, false, false], [3, false, false], [2, true, false], [2, false, true]] as const) {
                const spec: MatmulSpec = {
                  batch, m, k, n, transA, transB,
                  aBatchStride: shareA ? 0 : m * k,
                  bBatchStride: shareB ? 0 : k * n,
                };
                const x = randomData(g, (shareA ? 1 : batch) * m * k);
                const y = randomData(g, (shareB ? 1 : batch) * k * n);
                const a = backend.alloc(x.length);
                const b = backend.alloc(y.length);
                const out = backend.alloc(batch * m * n);
                backend.write(a, x);
                backend.write(b, y);
                backend.matmul(a, b, out, spec);
                await expectClose(await readBuf(out, batch * m * n), refMatmul(x, y, spec), scaled(accTol, k), `matmul ${JSON.stringify(spec)}`);
                [a, b, out].forEach((buf) => backend.free(buf));
              }
            }
          }
        }
      });

      it('matmul at a larger size (256 x 300 x 200)', async () => {
        const spec: MatmulSpec = { batch: 1, m: 256, k: 300, n: 200, transA: false, transB: false, aBatchStride: 0, bBatchStride: 0 };
        const x = randomData(g, 256 * 300);
        const y = randomData(g, 300 * 200);
        const a = backend.alloc(x.length);
        const b = backend.alloc(y.length);
        const out = backend.alloc(256 * 200);
        backend.write(a, x);
        backend.write(b, y);
        backend.matmul(a, b, out, spec);
        await expectClose(await readBuf(out, 256 * 200), refMatmul(x, y, spec), scaled(accTol, 300));
        [a, b, out].forEach((buf) => backend.free(buf));
      });
    });

    // ---- NDArray on this backend -----------------------------------------------------------------

    describe('creation', () => {
      it('from nested arrays, typed arrays and scalars', async () => {
        const a = array([[1, 2, 3], [4, 5, 6]], opts());
        expect(a.shape).toEqual([2, 3]);
        await expectNested(a, [[1, 2, 3], [4, 5, 6]]);
        const b = array(Float32Array.of(1, 2, 3, 4), { ...opts(), shape: [2, 2] });
        await expectNested(b, [[1, 2], [3, 4]]);
        const c = array(Int32Array.of(7, 8), opts());
        await expectNested(c, [7, 8]);
        const s = array(3.5, opts());
        expect(s.shape).toEqual([]);
        expect(await s.item()).toBe(3.5);
        expect(await s.toNested()).toBe(3.5);
      });

      it('zeros, ones, full, arange, eye', async () => {
        await expectNested(zeros([2, 2], opts()), [[0, 0], [0, 0]]);
        await expectNested(ones([3], opts()), [1, 1, 1]);
        await expectNested(full([1, 2], 7, opts()), [[7, 7]]);
        await expectNested(arange(5, undefined, 1, opts()), [0, 1, 2, 3, 4]);
        await expectNested(arange(1, 2, 0.25, opts()), [1, 1.25, 1.5, 1.75]);
        await expectNested(arange(5, 0, -2, opts()), [5, 3, 1]);
        await expectNested(eye(2, 3, opts()), [[1, 0, 0], [0, 1, 0]]);
        expect(zeros([0, 3], opts()).size).toBe(0);
      });

      it('rand and randn give the seeded host generator numbers on every backend', async () => {
        const r = rand([4, 5], { ...opts(), generator: new Generator(7) });
        await expectClose(r, new Generator(7).fillUniform(new Float32Array(20)));
        const n = randn([3, 3], { ...opts(), generator: new Generator(7), mean: 1, std: 2 });
        await expectClose(n, new Generator(7).fillNormal(new Float32Array(9), 1, 2));
        const u = await rand([1000], { ...opts(), generator: new Generator(1), low: -1, high: 3 }).toArray();
        expect(Math.min(...u)).toBeGreaterThanOrEqual(-1);
        expect(Math.max(...u)).toBeLessThan(3);
      });
    });

    describe('views', () => {
      const base = () => arange(24, undefined, 1, opts()).reshape([2, 3, 4]);
      const ref = generate([2, 3, 4], (idx) => idx[0] * 12 + idx[1] * 4 + idx[2]);

      it('reshape: views when possible, -1 inferred, copies only when it must', async () => {
        const a = base();
        const r = a.reshape([6, -1]);
        expect(r.shape).toEqual([6, 4]);
        expect(r.buffer).toBe(a.buffer);
        await expectClose(r, ref);
        const t = a.permute([0, 2, 1]); // [2, 4, 3]
        const merged = t.reshape([2, 12]); // needs a copy: axes 1,2 are not mergeable
        expect(merged.buffer).not.toBe(a.buffer);
        await expectClose(merged, generate([2, 4, 3], ([i, j, k]) => i * 12 + k * 4 + j));
        const split = t.reshape([2, 2, 2, 3]); // splitting one axis of a transposed view is a view
        expect(split.buffer).toBe(a.buffer);
        await expectClose(split, generate([2, 2, 2, 3], ([i, j0, j1, k]) => i * 12 + k * 4 + j0 * 2 + j1));
        const sliced = a.get(':', '1:3');
        const flat = sliced.reshape([2, 8]); // rows of a slice stay contiguous: a view
        expect(flat.buffer).toBe(a.buffer);
        await expectClose(flat, generate([2, 8], ([i, j]) => i * 12 + 4 + j));
      });

      it('permute, transpose, broadcastTo', async () => {
        const a = base();
        const p = a.permute([2, 0, 1]);
        expect(p.shape).toEqual([4, 2, 3]);
        await expectClose(p, generate([4, 2, 3], ([k, i, j]) => at(ref, [2, 3, 4], [i, j, k])));
        const t = a.transpose();
        expect(t.shape).toEqual([2, 4, 3]);
        await expectClose(t, generate([2, 4, 3], ([i, k, j]) => at(ref, [2, 3, 4], [i, j, k])));
        const t02 = a.transpose(0, 2);
        await expectClose(t02, generate([4, 3, 2], ([k, j, i]) => at(ref, [2, 3, 4], [i, j, k])));
        const row = array([1, 2, 3], opts()).reshape([3, 1]);
        const bc = row.broadcastTo([2, 3, 4]);
        expect(bc.strides).toEqual([0, 1, 0]);
        await expectClose(bc, generate([2, 3, 4], ([, j]) => j + 1));
      });

      it('slicing: start/stop/step, negative indices and steps, integer indices, new axes, ellipsis', async () => {
        const a = base();
        const s1 = a.get(1, '::2', '-3:');
        expect(s1.shape).toEqual([2, 3]);
        await expectClose(s1, generate([2, 3], ([j, k]) => at(ref, [2, 3, 4], [1, j * 2, k + 1])));
        const s2 = a.get('...', '::-1');
        await expectClose(s2, generate([2, 3, 4], ([i, j, k]) => at(ref, [2, 3, 4], [i, j, 3 - k])));
        const s3 = a.get(-1, null, { start: 2, stop: 0, step: -1 });
        expect(s3.shape).toEqual([1, 2, 4]);
        await expectClose(s3, generate([1, 2, 4], ([, j, k]) => at(ref, [2, 3, 4], [1, 2 - j, k])));
        const s4 = a.get(0, 1, 2);
        expect(s4.shape).toEqual([]);
        expect(await s4.item()).toBe(6);
        const empty = a.get(':', '2:1');
        expect(empty.shape).toEqual([2, 0, 4]);
        expect((await empty.toArray()).length).toBe(0);
        const s5 = a.get('1:', ':', '1::2').get(0, '::-1');
        await expectClose(s5, generate([3, 2], ([j, k]) => at(ref, [2, 3, 4], [1, 2 - j, 1 + 2 * k])));
      });

      it('flip, expandDims, squeeze, isContiguous', async () => {
        const a = base();
        const f = a.flip([0, 2]);
        await expectClose(f, generate([2, 3, 4], ([i, j, k]) => at(ref, [2, 3, 4], [1 - i, j, 3 - k])));
        const fa = a.flip();
        await expectClose(fa, Array.from(ref).reverse());
        const e = a.expandDims(1);
        expect(e.shape).toEqual([2, 1, 3, 4]);
        expect(e.expandDims(-1).shape).toEqual([2, 1, 3, 4, 1]);
        expect(e.squeeze().shape).toEqual([2, 3, 4]);
        expect(e.squeeze(1).shape).toEqual([2, 3, 4]);
        expect(a.isContiguous).toBe(true);
        expect(a.transpose().isContiguous).toBe(false);
        expect(a.get(1).isContiguous).toBe(true);
        expect(a.get(1).isKernelReady).toBe(false);
        await expectClose(e, ref);
      });

      it('asStrided: overlapping sliding windows (im2col)', async () => {
        const x = arange(16, undefined, 1, opts()).reshape([4, 4]);
        const win = x.asStrided([3, 3, 2, 2], [4, 1, 4, 1]);
        await expectClose(win, generate([3, 3, 2, 2], ([i, j, p, q]) => (i + p) * 4 + (j + q)));
        const cols = win.reshape([9, 4]); // the im2col matrix; needs a copy
        await expectClose(cols.get(4), [5, 6, 9, 10]);
        expect(() => x.asStrided([4, 4], [4, 2])).toThrow(/asStrided.*outside the buffer/);
      });

      it('compact of every kind of view matches the host gather', async () => {
        const data = randomData(g, 60);
        const a = fromData(data, [3, 4, 5]);
        const views = [
          a.transpose(0, 2), a.get('::2', '1:', '::-2'), a.broadcastTo([2, 3, 4, 5]), a.flip(1).permute([1, 2, 0]),
          a.get(':', 2).expandDims(0), a.get('...', -1),
        ];
        for (const v of views) {
          const c = v.compact();
          expect(c.isKernelReady).toBe(true);
          await expectClose(c, refStrided(data, v.shape, v.strides, v.offset));
          const cl = v.clone();
          expect(cl.buffer).not.toBe(a.buffer);
        }
      });

      it('views keep the buffer alive after the base is disposed', async () => {
        const a = arange(6, undefined, 1, opts());
        const v = a.reshape([2, 3]).transpose();
        a.dispose();
        await expectNested(v, [[0, 3], [1, 4], [2, 5]]);
      });
    });

    describe('setitem', () => {
      it('scalars and arrays into views, visible through other views', async () => {
        const a = zeros([3, 4], opts());
        const t = a.transpose();
        a.set([1, ':'], 5);
        a.set([':', '::3'], array([[1], [2], [3]], opts())); // broadcast along columns 0 and 3
        t.set([2, '::-1'], array([7, 8, 9], opts())); // column 2 of a, reversed
        await expectNested(a, [[1, 0, 9, 1], [2, 5, 8, 2], [3, 0, 7, 3]]);
        a.set([], 0.25);
        await expectClose(a, new Float32Array(12).fill(0.25));
        a.set(['...', -1], arange(3, undefined, 1, opts()));
        await expectNested(a.get(':', 3), [0, 1, 2]);
        expect(() => a.set([0], array([1, 2, 3], opts()))).toThrow(/set.*\[3\].*\[4\]/);
        // overlapping source and target in one buffer behave as if the value were copied first
        const r = arange(6, undefined, 1, opts());
        r.set('1:', r.get(':-1'));
        await expectNested(r, [0, 0, 1, 2, 3, 4]);
        const m = arange(6, undefined, 1, opts()).reshape([2, 3]);
        m.set([], m.get('::-1', '::-1'));
        await expectNested(m, [[5, 4, 3], [2, 1, 0]]);
      });
    });

    describe('elementwise', () => {
      it('broadcasting binary ops against host reference, incl. non-compact inputs', async () => {
        const xs = randomData(g, 4 * 3);
        const ys = randomData(g, 4);
        const x = fromData(xs, [4, 3]);
        const y = fromData(ys, [4, 1]);
        for (const op of BINARY_OPS) {
          if (op === 'pow') continue;
          const expected = generate([4, 3], ([i, j]) => f32(refBinary(op, Float32Array.of(xs[i * 3 + j]), Float32Array.of(ys[i]))[0]));
          const tol = op === 'div' ? transTol : exactTol;
          await expectClose(x[op](y), expected, tol, `${op} broadcast`);
          // transposed operand: [3, 4] viewed as [4, 3]
          const xt = fromData(generate([3, 4], ([j, i]) => xs[i * 3 + j]), [3, 4]).transpose();
          await expectClose(xt[op](y), expected, tol, `${op} non-compact`);
        }
      });

      it('scalar on either side, and method/free forms agree', async () => {
        const x = array([1, 2, 4], opts());
        await expectNested(x.sub(1), [0, 1, 3]);
        await expectClose(sub(10, x), [9, 8, 6]);
        await expectClose(div(1, x), [1, 0.5, 0.25], transTol);
        await expectClose(pow(2, x), [2, 4, 16], transTol);
        await expectClose(lt(2, x), [0, 0, 1]);
        await expectClose(ge(2, x), [1, 1, 0]);
        await expectClose(x.maximum(2), [2, 2, 4]);
        await expectClose(x.minimum(2), [1, 2, 2]);
      });

      it('broadcasting of three shapes and size-0 arrays', async () => {
        const a = ones([2, 1, 3], opts());
        const b = arange(4, undefined, 1, opts()).reshape([4, 1]);
        const c = a.add(b);
        expect(c.shape).toEqual([2, 4, 3]);
        await expectClose(c, generate([2, 4, 3], ([, j]) => 1 + j));
        const z = zeros([0, 3], opts());
        expect(z.add(ones([3], opts())).shape).toEqual([0, 3]);
      });

      it('where with Inf in the unselected branch keeps selected values exact', async () => {
        const cond = array([1, 0, 1, 0], opts());
        await expectClose(where(cond, array([1, 2, 3, 4], opts()), -Infinity), [1, -Infinity, 3, -Infinity]);
        await expectClose(cond.reshape([4, 1]).where(array([[1, 2]], opts()), Infinity), [1, 2, Infinity, Infinity, 1, 2, Infinity, Infinity]);
      });

      it('maximum and minimum keep their first operand on ties, also with a scalar first (signed zeros)', async () => {
        const z = array([0, -0, 1], opts());
        const bits = async (a: NDArray) => [...(await a.toArray())].map((v) => (Object.is(v, -0) ? '-0' : String(v)));
        expect(await bits(maximum(-0, z))).toEqual(['-0', '-0', '1']);
        expect(await bits(minimum(0, z))).toEqual(['0', '0', '0']);
        expect(await bits(z.maximum(-0))).toEqual(['0', '-0', '1']);
        expect(await bits(z.neg().minimum(0))).toEqual(['-0', '0', '-1']);
      });

      it('NaN propagates through maximum and minimum', async () => {
        const x = array([NaN, 1, 2], opts());
        const m = await x.maximum(array([0, NaN, 1], opts())).toArray();
        expect(Number.isNaN(m[0]) && Number.isNaN(m[1]) && m[2] === 2).toBe(true);
      });
    });

    describe('reductions', () => {
      const data = randomData(g, 2 * 3 * 4);
      const shape = [2, 3, 4];

      it('sum, max, min, mean over each axis, several axes and all, with keepdims', async () => {
        const a = fromData(data, shape);
        for (const axes of [0, 1, 2, -1, [0, 2], [1, 2], [0, 1, 2]]) {
          const list = (typeof axes === 'number' ? [axes] : axes).map((x) => (x + 3) % 3);
          const keptShape = shape.map((d, i) => (list.includes(i) ? 1 : d));
          const fold = (init: number, f: (acc: number, v: number) => number) =>
            generate(keptShape, (idx) => {
              let acc = init;
              generate(shape.map((d, i) => (list.includes(i) ? d : 1)), (sub) => {
                acc = f(acc, at(data, shape, idx.map((v, i) => (list.includes(i) ? sub[i] : v))));
                return 0;
              });
              return acc;
            });
          const n = list.reduce((s, i) => s * shape[i], 1);
          await expectClose(a.sum(axes), fold(0, (x, v) => x + v), scaled(accTol, n), `sum ${axes}`);
          await expectClose(a.max(axes), fold(-Infinity, Math.max), exactTol, `max ${axes}`);
          await expectClose(a.min(axes), fold(Infinity, Math.min), exactTol, `min ${axes}`);
          await expectClose(a.mean(axes), fold(0, (x, v) => x + v).map((v) => v / n), scaled(accTol, n), `mean ${axes}`);
          expect(a.sum(axes, true).shape).toEqual(keptShape);
          expect(a.sum(axes).shape).toEqual(shape.filter((_, i) => !list.includes(i)));
        }
        expect(a.sum().shape).toEqual([]);
        expect(a.max(undefined, true).shape).toEqual([1, 1, 1]);
      });

      it('argmax/argmin along axes and flattened, on non-contiguous input', async () => {
        const a = fromData(data, shape).transpose(0, 2); // [4, 3, 2]
        const host = refStrided(data, a.shape, a.strides, a.offset);
        const am = await a.argmax(1).toArray();
        const expected = generate([4, 2], ([i, k]) => {
          let best = 0;
          for (let j = 1; j < 3; j++) if (at(host, [4, 3, 2], [i, j, k]) > at(host, [4, 3, 2], [i, best, k])) best = j;
          return best;
        });
        await expectClose(am, expected);
        expect(a.argmin(-1, true).shape).toEqual([4, 3, 1]);
        const flat = await a.argmax().item();
        expect(host[flat]).toBe(Math.max(...host));
      });

      it('sums over zero elements give 0; max over zero elements is an error', async () => {
        const z = zeros([3, 0], opts());
        await expectNested(z.sum(1), [0, 0, 0]);
        expect(() => z.max(1)).toThrow(/max.*zero elements/);
      });
    });

    describe('matmul (frontend)', () => {
      it('2-D, batched, broadcast batch, vectors, transposed views', async () => {
        const xa = randomData(g, 2 * 3 * 4);
        const xb = randomData(g, 4 * 5);
        const a = fromData(xa, [2, 3, 4]);
        const b = fromData(xb, [4, 5]);
        const spec = (batch: number, m: number, k: number, n: number, aS: number, bS: number): MatmulSpec => ({ batch, m, k, n, aBatchStride: aS, bBatchStride: bS, transA: false, transB: false });
        const c = a.matmul(b);
        expect(c.shape).toEqual([2, 3, 5]);
        await expectClose(c, refMatmul(xa, xb, spec(2, 3, 4, 5, 12, 0)), scaled(accTol, 4));
        // transposed views reach the kernel without a copy and give the same answer
        const bt = fromData(generate([5, 4], ([j, p]) => xb[p * 5 + j]), [5, 4]).transpose();
        await expectClose(a.matmul(bt), refMatmul(xa, xb, spec(2, 3, 4, 5, 12, 0)), scaled(accTol, 4));
        const at2 = fromData(generate([2, 4, 3], ([t, p, i]) => xa[t * 12 + i * 4 + p]), [2, 4, 3]).transpose();
        await expectClose(at2.matmul(b), refMatmul(xa, xb, spec(2, 3, 4, 5, 12, 0)), scaled(accTol, 4));
        // broadcast batch: [2,1,3,4] @ [3,4,5] -> [2,3,3,5]
        const xc = randomData(g, 3 * 4 * 5);
        const cc = fromData(xc, [3, 4, 5]);
        const big = a.reshape([2, 1, 3, 4]).matmul(cc);
        expect(big.shape).toEqual([2, 3, 3, 5]);
        const host = await big.toArray();
        for (let t = 0; t < 2; t++) {
          for (let u = 0; u < 3; u++) {
            const expected = refMatmul(xa.subarray(t * 12, t * 12 + 12), xc.subarray(u * 20, u * 20 + 20), spec(1, 3, 4, 5, 0, 0));
            expect(firstMismatch(host.subarray((t * 3 + u) * 15, (t * 3 + u + 1) * 15), expected, scaled(accTol, 4))).toBeUndefined();
          }
        }
        // vectors
        const v = array([1, 2, 3, 4], opts());
        expect(b.transpose().matmul(v).shape).toEqual([5]);
        expect(v.matmul(b).shape).toEqual([5]);
        expect(await v.matmul(v).item()).toBe(30);
        // k = 0
        await expectClose(zeros([2, 0], opts()).matmul(zeros([0, 3], opts())), new Float32Array(6));
      });

      it('shape errors name the op and the shapes', () => {
        const a = zeros([2, 3], opts());
        expect(() => a.matmul(zeros([4, 2], opts()))).toThrow(/matmul.*\[2, 3\].*\[4, 2\]/);
        expect(() => zeros([2, 2, 3], opts()).matmul(zeros([3, 3, 2], opts()))).toThrow(/matmul.*broadcast/);
      });
    });

    describe('fused matmul epilogues, operand offsets and reduce programs', () => {
      const specials = [NaN, Infinity, -Infinity, 0, -0, 3e38, -3e38, 1e-38, 88.8, -104];
      const data = (n: number, every = 0) => {
        const d = randomData(g, n, -2, 2);
        if (every) for (let i = 0; i < n; i += every) d[i] = specials[(i / every) % specials.length];
        return d;
      };
      const arr = (shape: readonly number[], every = 0) => fromData(data(shapeSize(shape), every), shape);
      // Bit for bit where the program tolerance is zero (-0 is not 0; any NaN matches NaN).
      async function expectSame(actual: NDArray, expected: NDArray, what: string) {
        expect(actual.shape, `${what}: shape`).toEqual(expected.shape);
        const got = await actual.toArray();
        const want = await expected.toArray();
        if (programTol.rtol !== 0 || programTol.atol !== 0) return expectClose(got, want, programTol, what);
        const i = got.findIndex((x, k) => !Object.is(x, want[k]) && !(Number.isNaN(x) && Number.isNaN(want[k])));
        expect(i, `${what} element ${i}: got ${got[i]}, expected ${want[i]}`).toBe(-1);
      }
      const biasRelu = defineProgram(2, 0, ([y, b]) => y.add(b).maximum(0));
      const mask = defineProgram(2, 0, ([y, h]) => h.gt(0).select(y, 0));
      const mixed = defineProgram(3, 1, ([y, b, r], [s]) => y.mul(s).add(b).tanh().add(r));

      it('matmul with an epilogue equals the matmul then the program, in one launch', async () => {
        const cases: { a: NDArray; b: NDArray; program: typeof biasRelu; inputs: (shape: number[]) => NDArray[]; scalars?: number[] }[] = [
          { a: arr([5, 7]), b: arr([7, 9]), program: biasRelu, inputs: () => [arr([9])] },
          { a: arr([2, 3, 4]), b: arr([4, 5]), program: mask, inputs: (sh) => [arr(sh, 3)] },
          { a: arr([17, 3]).transpose(), b: arr([20, 17]).transpose(), program: mixed, inputs: () => [arr([3, 1]), arr([20])], scalars: [0.7] },
          { a: arr([3, 33, 17], 7), b: arr([3, 17, 20]), program: mixed, inputs: () => [arr([33, 1]), arr([3, 1, 20])], scalars: [-1.5] },
          { a: arr([2, 1, 6, 5]), b: arr([3, 5, 4]), program: mask, inputs: (sh) => [arr([sh[3], sh[2]]).transpose()] },
          { a: arr([7]), b: arr([7, 9]), program: biasRelu, inputs: () => [arr([9])] },
          { a: arr([6, 7]), b: arr([7]), program: biasRelu, inputs: () => [arr([6])] },
          { a: arr([1, 40]), b: arr([40, 130]), program: biasRelu, inputs: () => [arr([130], 11)] },
          { a: zeros([2, 0], opts()), b: zeros([0, 3], opts()), program: biasRelu, inputs: () => [arr([3])] },
        ];
        for (const [i, c] of cases.entries()) {
          const shape = c.a.matmul(c.b).shape;
          const inputs = c.inputs([...shape]);
          const product = c.a.matmul(c.b);
          const [expected] = elementwise(c.program, [product, ...inputs], c.scalars ?? []);
          const before = backend.stats();
          const got = c.a.matmul(c.b, { epilogue: { program: c.program, inputs, scalars: c.scalars } });
          const d = statsDiff(backend.stats(), before);
          await expectSame(got, expected, `case ${i} (${JSON.stringify(c.a.shape)} @ ${JSON.stringify(c.b.shape)})`);
          if (backend.matmulProgram && c.a.size > 0 && c.b.size > 0) {
            // One launch for product and program (case 4's broadcast batches also copy a and b).
            expect([d.kernels.matmulProgram, d.kernels.matmul, d.kernels.elementwise], `case ${i}: matmulProgram, matmul, elementwise launches`).toEqual([1, 0, 0]);
            if (i !== 4) expect(d.launches, `case ${i}: launches`).toBe(1);
          }
        }
      });

      it('matmul reads contiguous slices and writes into out views', async () => {
        const bigA = arr([9, 6]);
        const bigB = arr([3, 6, 5]);
        const a = bigA.get('2:7');
        const b = bigB.get(1);
        const expected = a.compact().matmul(b.compact());
        let before = backend.stats();
        await expectSame(a.matmul(b), expected, 'offset operands');
        let d = statsDiff(backend.stats(), before);
        if (backend.layouts?.matmulOffsets) expect([d.launches, d.kernels.compact], 'offset operands: launches, compacts').toEqual([1, 0]);
        // Into a row block of a bigger array (contiguous: written in place where offsets are supported).
        const target = zeros([4, 5, 5], opts());
        before = backend.stats();
        const r = a.matmul(b, { out: target.get(2) });
        d = statsDiff(backend.stats(), before);
        expect(r.buffer).toBe(target.buffer);
        if (backend.layouts?.matmulOffsets) expect(d.launches, 'out slice: launches').toBe(1);
        await expectSame(target.get(2), expected, 'out slice');
        await expectSame(target.get(1), zeros([5, 5], opts()), 'rows around the out slice untouched');
        // Into a transposed view (not contiguous: one copy), with an epilogue.
        const t = zeros([5, 5], opts());
        const bias = arr([5]);
        a.matmul(b, { out: t.transpose(), epilogue: { program: biasRelu, inputs: [bias] } });
        const [withBias] = elementwise(biasRelu, [expected, bias]);
        await expectSame(t.transpose(), withBias, 'out transposed view with an epilogue');
        // k = 0 into a slice at an offset: that slice becomes 0, the rest of the buffer stays.
        const held = ones([3, 2, 5], opts());
        zeros([2, 0], opts()).matmul(zeros([0, 5], opts()), { out: held.get(1) });
        await expectNested(held.get(1), [[0, 0, 0, 0, 0], [0, 0, 0, 0, 0]]);
        await expectNested(held.get(2), [[1, 1, 1, 1, 1], [1, 1, 1, 1, 1]]);
        // An out that is also an operand is computed into a temporary first.
        const sq = arr([4, 4]);
        const sqExpected = sq.matmul(sq);
        sq.matmul(sq.clone(), { out: sq });
        await expectSame(sq, sqExpected, 'out aliasing an operand');
      });

      it('matmul epilogue and out errors name the op and the shapes', () => {
        const a = zeros([2, 3], opts());
        const b = zeros([3, 4], opts());
        expect(() => a.matmul(b, { epilogue: { program: biasRelu, inputs: [] } })).toThrow(/matmul: the epilogue program takes 2 inputs.*got 0/);
        expect(() => a.matmul(b, { epilogue: { program: biasRelu, inputs: [zeros([3], opts())] } })).toThrow(/matmul: epilogue input 0 of shape \[3\] does not broadcast to the product's shape \[2, 4\]/);
        expect(() => a.matmul(b, { epilogue: { program: mixed, inputs: [zeros([4], opts()), zeros([4], opts())] } })).toThrow(/takes 1 scalars, got 0/);
        expect(() => a.matmul(b, { out: zeros([4, 2], opts()) })).toThrow(/matmul: out has shape \[4, 2\], expected the product's \[2, 4\]/);
        expect(() => a.matmul(b, { out: zeros([4], opts()).broadcastTo([2, 4]) })).toThrow(/matmul: out .*more than once/);
      });

      it('reduceProgram equals the program then the reduction, in one launch', async () => {
        const square = defineProgram(1, 0, ([x]) => x.mul(x));
        const centred = defineProgram(3, 1, ([x, m, y], [s]) => x.sub(m).mul(y).mul(s));
        const cases: { program: typeof square; inputs: NDArray[]; axis?: number | number[]; keepdims?: boolean; scalars?: number[] }[] = [
          { program: square, inputs: [arr([7, 5], 4)], axis: 1 },
          { program: square, inputs: [arr([7, 5], 4)], axis: 0, keepdims: true },
          { program: square, inputs: [arr([300, 9], 13)] },
          { program: centred, inputs: [arr([3, 4, 33], 5), arr([3, 1, 33]), arr([33, 4]).transpose()], axis: [0, 2], scalars: [0.25] },
          { program: centred, inputs: [arr([9, 300]).transpose(), arr([300, 1]), arr([9])], axis: 1, scalars: [-2] },
          { program: centred, inputs: [arr([6, 130], 3), arr([6, 1]), arr([130]).broadcastTo([6, 130])], axis: -1, keepdims: true, scalars: [1] },
        ];
        for (const op of PROGRAM_REDUCE_OPS) {
          for (const [i, c] of cases.entries()) {
            const options = { axis: c.axis, keepdims: c.keepdims };
            const expected = reduceProgramUnfused(op, c.program, c.inputs, c.scalars ?? [], options);
            const before = backend.stats();
            const got = reduceProgram(op, c.program, c.inputs, c.scalars ?? [], options);
            const d = statsDiff(backend.stats(), before);
            await expectSame(got, expected, `${op} case ${i}`);
            if (backend.reduceProgram && backend.layouts?.elementwise) {
              expect([d.launches, d.kernels.reduceProgram], `${op} case ${i}: launches, reduceProgram`).toEqual([1, 1]);
            }
          }
        }
        // Into a slice of a bigger buffer (several reductions filling one array), and a strided view.
        const x = arr([7, 5], 4);
        const buf = zeros([10], opts());
        const before = backend.stats();
        const r = reduceProgram('logsumexp', square, [x], [], { axis: 1, out: buf.get('2:9') });
        const d = statsDiff(backend.stats(), before);
        expect(r.buffer).toBe(buf.buffer);
        if (backend.reduceProgram) expect(d.launches, 'reduceProgram into a slice: launches').toBe(1);
        await expectSame(buf.get('2:9'), reduceProgramUnfused('logsumexp', square, [x], [], { axis: 1 }), 'into a slice');
        await expectNested(buf.get('0:2'), [0, 0]);
        await expectNested(buf.get('9:'), [0]);
        const col = zeros([5, 2], opts());
        reduceProgram('max', square, [x], [], { axis: 0, out: col.get(':', 1) });
        await expectSame(col.get(':', 1), reduceProgramUnfused('max', square, [x], [], { axis: 0 }), 'into a strided column');
        await expectNested(col.get(':', 0), [0, 0, 0, 0, 0]);
        expect(() => reduceProgram('sum', square, [x], [], { axis: 1, out: zeros([5], opts()) })).toThrow(/reduceProgram: out has shape \[5\], expected the result's \[7\]/);
        // Reducing over nothing: a sum is 0, anything else has no identity.
        const empty = zeros([3, 0], opts());
        await expectNested(reduceProgram('sum', square, [empty], [], { axis: 1 }), [0, 0, 0]);
        expect(() => reduceProgram('logsumexp', square, [empty], [], { axis: 1 })).toThrow(/logsumexp: cannot reduce over zero elements/);
        expect(() => reduceProgram('sum', square, [empty, empty])).toThrow(/reduceProgram: program takes 1 inputs, got 2/);
        expect(() => reduceProgram('prod' as never, square, [empty])).toThrow(/reduceProgram: unknown reduction 'prod'/);
      });

      it('logsumexp: fixed values, stable for large inputs, infinities and NaN', async () => {
        const x = fromData(Float32Array.from([1, 2, 3, 1000, 1000, -Infinity, -Infinity, -Infinity, -Infinity, Infinity, 1, -Infinity, NaN, 0, 0]), [5, 3]);
        // log(e + e^2 + e^3) = 3.40760596...; 1000 + log(1 + 1 + e^-Inf) = 1000 + log 2.
        const rows = await x.logsumexp(1).toArray();
        await expectClose(rows.subarray(0, 2), [3.4076059644443806, 1000 + Math.log(2)], transTol, 'logsumexp rows');
        expect(rows[2]).toBe(-Infinity);
        expect(rows[3]).toBe(Infinity);
        expect(Number.isNaN(rows[4])).toBe(true);
        await expectClose(zeros([2, 4], opts()).logsumexp(), [Math.log(8)], transTol, 'logsumexp of zeros');
        expect(x.logsumexp(0, true).shape).toEqual([1, 3]);
      });
    });

    describe('row lookups (indexSelect, indexAddInto)', () => {
      // Host model of both kernels: an index selects a row when it is an integer in [0, n).
      const valid = (v: number, n: number) => Number.isInteger(v) && v >= 0 && v < n;
      const hostSelect = (x: Float32Array, n: number, R: number, idx: readonly number[], missing: number) => {
        const out = new Float32Array(idx.length * R);
        idx.forEach((v, i) => {
          for (let j = 0; j < R; j++) out[i * R + j] = valid(v, n) ? x[v * R + j] : missing;
        });
        return out;
      };
      const hostScatter = (t: Float32Array, R: number, n: number, idx: readonly number[], src: Float32Array) => {
        const out = Float32Array.from(t);
        idx.forEach((v, i) => {
          if (!valid(v, n)) return;
          for (let j = 0; j < R; j++) out[v * R + j] = Math.fround(out[v * R + j] + src[i * R + j]);
        });
        return out;
      };
      const BAD = [7, -1, 1.5, NaN, Infinity];

      it('indexSelect: fixed rows, invalid indices give the missing value, one gatherRows launch', async () => {
        const x = array([[1, 2, 3], [4, 5, 6], [7, 8, 9], [10, 11, 12]], opts());
        const ids = array([2, 0, 2, 7, -1, 1.5, 3], opts());
        const before = backend.stats();
        const got = indexSelect(x, 0, ids);
        const d = statsDiff(backend.stats(), before);
        expect(got.shape).toEqual([7, 3]);
        const nan = [NaN, NaN, NaN];
        expect(await got.toNested()).toEqual([[7, 8, 9], [1, 2, 3], [7, 8, 9], nan, nan, nan, [10, 11, 12]]);
        if (backend.gatherRows) expect([d.launches, d.kernels.gatherRows], 'launches, gatherRows').toEqual([1, 1]);
        await expectNested(indexSelect(x, 0, array([9, 1], opts()), { missing: 0 }), [[0, 0, 0], [4, 5, 6]]);
        await expectNested(indexSelect(x, 1, array([[2], [0]], opts())), [[[3], [1]], [[6], [4]], [[9], [7]], [[12], [10]]]);
        await expectNested(indexSelect(x, -2, array(1, opts())), [4, 5, 6]);
        await expectNested(indexSelect(x, 0, zeros([0], opts())), []);
      });

      it('indexSelect over every axis of strided views equals the host gather and the one-hot composition', async () => {
        const base = fromData(randomData(g, 2 * 5 * 6, 0.5, 2), [2, 5, 6]);
        const views = [base, base.transpose(0, 2), base.get(':', '1:5', '::-2'), base.reshape([10, 6]).transpose()];
        for (const [vi, v] of views.entries()) {
          const host = await v.toArray(); // compact host copy, row-major over v's shape
          for (let ax = 0; ax < v.ndim; ax++) {
            const n = v.shape[ax];
            const idx = [n - 1, 0, BAD[vi % BAD.length], 1 % n, n - 1];
            const got = indexSelect(v, ax, array(idx, opts()));
            // Host: move axis ax first in the compact copy, gather, move it back.
            const moved = NDArray.fromData(host, v.shape, backend).permute([ax, ...v.shape.map((_, i) => i).filter((i) => i !== ax)]).compact();
            const R = moved.size / n;
            const rows = hostSelect(await moved.toArray(), n, R, idx, NaN);
            const before = v.shape.slice(0, ax);
            const after = v.shape.slice(ax + 1);
            let want = NDArray.fromData(rows, [idx.length, ...before, ...after], backend);
            if (before.length) want = want.permute([...before.map((_, i) => 1 + i), 0, ...after.map((_, i) => 1 + before.length + i)]);
            expect(got.shape, `view ${vi} axis ${ax}: shape`).toEqual(want.shape);
            await expectClose(got, await want.toArray(), { rtol: 0, atol: 0 }, `view ${vi} axis ${ax}`);
            const flat = array(idx, opts());
            const rowsNd = moved.reshape([n, -1]);
            await expectClose(gatherRowsUnfused(rowsNd, flat, NaN), rows, { rtol: 0, atol: 0 }, `view ${vi} axis ${ax}: the one-hot composition`);
          }
        }
      });

      it('indexAddInto: repeated indices accumulate in order, invalid ones add nothing, into views, one version bump', async () => {
        // The kernel adds in index order (the host model's bits); the one-hot fallback sums through
        // the backend's matmul, whose order is its own.
        const addTol: Tolerance = backend.scatterAddRows ? { rtol: 0, atol: 0 } : scaled(accTol, 8);
        const t = fromData(Float32Array.from({ length: 12 }, (_, i) => i), [4, 3]);
        const ids = [1, 3, 1, ...BAD, 0];
        const src = fromData(randomData(g, ids.length * 3, -2, 2), [ids.length, 3]);
        const want = hostScatter(await t.toArray(), 3, 4, ids, await src.toArray());
        const v0 = t.version;
        const before = backend.stats();
        expect(indexAddInto(t, 0, array(ids, opts()), src)).toBe(t);
        const d = statsDiff(backend.stats(), before);
        expect(t.version, 'version bumped once').toBe(v0 + 1);
        await expectClose(t, want, addTol, 'axis 0');
        if (backend.scatterAddRows) expect([d.launches, d.kernels.scatterAddRows], 'launches, scatterAddRows').toEqual([1, 1]);
        // Along axis 1 of a transposed view: the write goes through the view into the base buffer.
        const b2 = fromData(randomData(g, 15, -1, 1), [5, 3]);
        const hostB = await b2.toArray();
        const view = b2.transpose(); // [3, 5], axis 1 indexes b2's rows
        const idx2 = [4, 4, 0, 2.5];
        const s2 = fromData(randomData(g, 3 * 4, -1, 1), [3, 4]);
        // view[:, idx2[j]] += s2[:, j]  is  b2[idx2[j], :] += s2[:, j]
        const s2T = await s2.transpose().compact().toArray();
        const want2 = hostScatter(hostB, 3, 5, idx2, s2T);
        const v1 = b2.version;
        indexAddInto(view, 1, array(idx2, opts()), s2);
        expect(b2.version, 'version bumped once through a view').toBe(v1 + 1);
        await expectClose(b2, want2, addTol, 'axis 1 of a transposed view');
        // A source that lives in the target's buffer is read before anything is written.
        const self = fromData(Float32Array.from([1, 2, 3, 4]), [4]);
        indexAddInto(self.get('0:2'), 0, array([1, 1], opts()), self.get('2:4'));
        await expectNested(self, [1, 9, 3, 4]);
        // The gradient of indexSelect: zeros plus the rows, in the same bits as the host sum.
        const gsrc = fromData(randomData(g, 6 * 5, -3, 3), [6, 5]);
        const gids = [2, 2, 2, 0, 5, 2];
        const acc = zeros([6, 5], opts());
        indexAddInto(acc, 0, array(gids, opts()), gsrc);
        await expectClose(acc, hostScatter(new Float32Array(30), 5, 6, gids, await gsrc.toArray()), addTol, 'into zeros');
      });

      it('gather (torch.gather) through flat positions, and oneHot', async () => {
        const x = array([[1, 2, 3], [4, 5, 6]], opts());
        await expectNested(gather(x, 1, array([[2, 0], [1, 1]], opts())), [[3, 1], [5, 5]]);
        await expectNested(gather(x, 0, array([[1, 0, 1]], opts())), [[4, 2, 6]]);
        await expectNested(gather(x, 1, array([[3], [0.5]], opts())), [[NaN], [NaN]]);
        await expectNested(gather(x, -1, array([[-1], [2]], opts()), { missing: 0 }), [[0], [6]]);
        // [2, 3, 4] along axis 1 with index [2, 2, 4]: position = i0 * 12 + index * 4 + i2.
        const idxData = [2, 0, 1, 9, 1, 1, 0, 2, 0, 2, 2, 1, 0, 0, 1, 1];
        const idx = fromData(Float32Array.from(idxData), [2, 2, 4]);
        const want = idxData.map((v, p) => {
          const i0 = Math.floor(p / 8);
          const i2 = p % 4;
          return v >= 0 && v < 3 ? i0 * 12 + v * 4 + i2 : -1;
        });
        await expectNested(flatIndicesAlong([2, 3, 4], 1, idx), want);
        // On a transposed view: the positions address the view's own row-major order.
        const base = fromData(randomData(g, 12, -1, 1), [4, 3]);
        const view = base.transpose(); // [3, 4]
        const hostView = await view.toArray();
        const vIdx = [[3, 0], [2, 2], [0, 1]]; // [3, 2] along axis 1
        const got = await gather(view, 1, array(vIdx, opts())).toArray();
        expect(Array.from(got)).toEqual(vIdx.flatMap((r, i) => r.map((c) => hostView[i * 4 + c])));
        await expectNested(oneHot(array([2, 0, 5, 1.5], opts()), 3), [[0, 0, 1], [1, 0, 0], [0, 0, 0], [0, 0, 0]]);
        expect(() => gather(x, 1, array([1, 2], opts()))).toThrow(/gather: index of shape \[2\] must have the rank of x \[2, 3\] and its sizes outside axis 1/);
        expect(() => oneHot(array([1], opts()), 0)).toThrow(/oneHot: n must be/);
      });

      it('lookup errors name the op, the shapes and what was expected', () => {
        const x = zeros([4, 3], opts());
        const ids = array([0, 1], opts());
        expect(() => indexSelect(x, 2, ids)).toThrow(/indexSelect: axis 2 is out of range for an array of 2 dimensions/);
        expect(() => indexSelect(zeros([], opts()), 0, ids)).toThrow(/indexSelect: cannot index a 0-d array/);
        expect(() => indexSelect(x, 0, [0, 1] as never)).toThrow(/indexSelect: expected an NDArray operand/);
        expect(() => indexSelect(x, 0, ids, { missing: '0' as never })).toThrow(/indexSelect: missing must be a number/);
        expect(() => indexAddInto(x, 0, ids, zeros([3, 3], opts()))).toThrow(/indexAddInto: source has shape \[3, 3\], expected \[2, 3\] \(target \[4, 3\] with axis 0 replaced by the indices' shape \[2\]\)/);
        expect(() => indexAddInto(x, 1, ids, zeros([4, 3], opts()))).toThrow(/indexAddInto: source has shape \[4, 3\], expected \[4, 2\]/);
      });
    });

    describe('joining and padding', () => {
      it('concatenate, stack, split, unstack', async () => {
        const a = array([[1, 2], [3, 4]], opts());
        const b = array([[5, 6]], opts());
        await expectNested(concatenate([a, b]), [[1, 2], [3, 4], [5, 6]]);
        await expectNested(concatenate([a, a.transpose()], 1), [[1, 2, 1, 3], [3, 4, 2, 4]]);
        await expectNested(stack([a, a.mul(10)], 1), [[[1, 2], [10, 20]], [[3, 4], [30, 40]]]);
        const parts = split(arange(7, undefined, 1, opts()), 3);
        expect(parts.map((p) => p.shape[0])).toEqual([3, 3, 1]);
        await expectNested(parts[2], [6]);
        const [p, q] = split(a, [1, 1], 1);
        await expectNested(q, [[2], [4]]);
        expect(p.buffer).toBe(a.buffer);
        const rows = unstack(a, 1);
        await expectNested(rows[1], [2, 4]);
        expect(() => concatenate([a, zeros([2, 3], opts())])).toThrow(/concatenate.*\[2, 2\].*\[2, 3\]/);
        expect(() => split(a, [1, 2])).toThrow(/split/);
      });

      it('pad, dilate, undilate', async () => {
        const a = array([[1, 2], [3, 4]], opts());
        await expectNested(a.pad([[1, 0], [0, 2]], -1), [[-1, -1, -1, -1], [1, 2, -1, -1], [3, 4, -1, -1]]);
        const d = a.dilate([0, 1], 1);
        await expectNested(d, [[1, 0, 2, 0], [0, 0, 0, 0], [3, 0, 4, 0], [0, 0, 0, 0]]);
        await expectNested(d.undilate([0, 1], 1), [[1, 2], [3, 4]]);
        await expectNested(a.dilate(1, 2), [[1, 0, 0, 2, 0, 0], [3, 0, 0, 4, 0, 0]]);
      });
    });

    describe('memory', () => {
      it('dispose frees, double dispose and use after dispose throw', async () => {
        const before = backend.memory().buffers;
        const a = zeros([5], opts());
        const v = a.reshape([5, 1]);
        expect(backend.memory().buffers).toBe(before + 1);
        a.dispose();
        expect(backend.memory().buffers).toBe(before + 1); // the view still holds it
        expect(() => a.dispose()).toThrow(/already disposed/);
        expect(() => a.add(1)).toThrow(/disposed/);
        await expect(a.toArray()).rejects.toThrow(/disposed/);
        v.dispose();
        expect(backend.memory().buffers).toBe(before);
        expect(backend.memory().bytes >= 0).toBe(true);
      });

      it('tidy frees intermediates and keeps what it returns', () => {
        const before = backend.memory().buffers;
        const x = ones([10], opts());
        const [y, z] = tidy(() => {
          const t = x.mul(2).add(1).exp();
          return [t.sum(), { nested: t.max() }] as const;
        });
        expect(backend.memory().buffers).toBe(before + 3);
        y.dispose();
        z.nested.dispose();
        x.dispose();
        expect(backend.memory().buffers).toBe(before);
        expect(() => tidy(() => Promise.resolve(1))).toThrow(/tidy.*Promise/);
      });

      it('scope works across await and supports using', async () => {
        const before = backend.memory().buffers;
        const s = scope();
        const a = ones([4], opts()).mul(3);
        await new Promise((r) => setTimeout(r, 1));
        const total = a.sum();
        const kept = s.end(total);
        expect(await kept.item()).toBe(12);
        expect(backend.memory().buffers).toBe(before + 1);
        kept.dispose();
        {
          using t = zeros([3], opts());
          expect(t.size).toBe(3);
        }
        expect(backend.memory().buffers).toBe(before);
      });

      it('a loop of ops leaves the live count unchanged', () => {
        let w = rand([8, 8], opts());
        const after1: number[] = [];
        for (let step = 0; step < 50; step++) {
          const next = tidy(() => w.sub(w.matmul(w.transpose()).mul(0.001)).maximum(-1));
          w.dispose();
          w = next;
          after1.push(backend.memory().buffers);
        }
        expect(new Set(after1).size).toBe(1);
        w.dispose();
      });
    });

    describe('errors', () => {
      it('incompatible shapes, bad axes, out-of-range indices, wrong data length', async () => {
        const a = zeros([2, 3], opts());
        expect(() => a.add(zeros([3, 2], opts()))).toThrow(/add: shapes \[2, 3\] and \[3, 2\] cannot be broadcast/);
        expect(() => a.sum(2)).toThrow(/sum: axis 2 is out of range/);
        expect(() => a.permute([0, 0])).toThrow(/permute/);
        expect(() => a.get(2)).toThrow(/get: index 2 is out of bounds for axis 0 with size 2/);
        expect(() => a.get(0, 0, 0)).toThrow(/too many indices/);
        expect(() => a.reshape([4, 2])).toThrow(/reshape.*\[2, 3\].*\[4, 2\]/);
        expect(() => a.broadcastTo([3, 3])).toThrow(/broadcastTo/);
        expect(() => a.squeeze(0)).toThrow(/squeeze/);
        expect(() => NDArray.fromData(new Float32Array(5), [2, 3], backend)).toThrow(/fromData.*5.*\[2, 3\].*6/);
        expect(() => array([[1, 2], [3]], opts())).toThrow(/ragged/);
        expect(() => a.get('1:2:0')).toThrow(/step/);
        await expect(a.item()).rejects.toThrow(/item: expected an array with one element, got shape \[2, 3\]/);
      });

      it('arrays from two backends in one op are rejected; to() moves data', async () => {
        const other = await factory();
        if (other === backend) return; // a singleton factory cannot give a second instance
        try {
          const a = ones([2], opts());
          const b = ones([2], { backend: other });
          expect(() => a.add(b)).toThrow(/add: arrays live on different backends/);
          const moved = await b.to(backend);
          await expectNested(moved.add(a), [2, 2]);
          b.dispose();
          expect(other.memory().buffers).toBe(0);
        } finally {
          other.destroy?.();
        }
      });
    });
  });
}
