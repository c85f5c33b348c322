/**
 * Random chains of views and ops on the CPU backend, checked against an independent model in which
 * an array is a shape plus a function from multi-index to value. The model knows nothing of strides,
 * offsets or compaction, so any stride-arithmetic bug in NDArray shows up as a mismatch.
 */
import { describe, expect, it } from 'vitest';
import { Generator, NDArray, scope, type BinaryOp, type UnaryOp } from '@needle/ndarray';
import { createCpuBackend } from '@needle/ndarray-cpu';

interface Model {
  shape: number[];
  at: (idx: number[]) => number;
}

const size = (shape: number[]) => shape.reduce((a, b) => a * b, 1);

function indices(shape: number[]): number[][] {
  const out: number[][] = [];
  const rec = (prefix: number[]) => {
    if (prefix.length === shape.length) {
      out.push(prefix);
      return;
    }
    for (let i = 0; i < shape[prefix.length]; i++) rec([...prefix, i]);
  };
  rec([]);
  return out;
}

function materialize(m: Model): Model {
  const values = indices(m.shape).map((i) => Math.fround(m.at(i)));
  const strides = m.shape.map((_, d) => size(m.shape.slice(d + 1)));
  return { shape: m.shape, at: (idx) => values[idx.reduce((s, v, d) => s + v * strides[d], 0)] };
}

const binaryOps: BinaryOp[] = ['add', 'sub', 'mul', 'maximum', 'minimum', 'ge', 'eq'];
const unaryOps: UnaryOp[] = ['neg', 'abs', 'exp', 'tanh', 'sign'];
const hostBinary: Record<string, (x: number, y: number) => number> = {
  add: (x, y) => x + y, sub: (x, y) => x - y, mul: (x, y) => x * y, maximum: Math.max, minimum: Math.min,
  ge: (x, y) => (x >= y ? 1 : 0), eq: (x, y) => (x === y ? 1 : 0),
};
const hostUnary: Record<string, (x: number) => number> = {
  neg: (x) => -x, abs: Math.abs, exp: Math.exp, tanh: Math.tanh, sign: Math.sign,
};

describe('random chains of views and ops match an index-function model', () => {
  const backend = createCpuBackend();

  for (let seed = 1; seed <= 60; seed++) {
    it(`chain ${seed}`, async () => {
      const g = new Generator(seed);
      const pick = <T>(xs: readonly T[]): T => xs[g.randint(0, xs.length)];
      const s = scope();
      const shape0 = Array.from({ length: g.randint(1, 4) }, () => g.randint(1, 5));
      const data0 = Float32Array.from({ length: size(shape0) }, () => Math.round((g.uniform() * 8 - 4) * 4) / 4);
      let arr = NDArray.fromData(data0, shape0, backend);
      const strides0 = shape0.map((_, d) => size(shape0.slice(d + 1)));
      let model: Model = { shape: shape0, at: (idx) => data0[idx.reduce((a, v, d) => a + v * strides0[d], 0)] };
      const log: string[] = [];

      for (let step = 0; step < 8; step++) {
        const nd = model.shape.length;
        const kind = pick(['permute', 'slice', 'flip', 'reshape', 'broadcast', 'expand', 'squeeze', 'binary', 'unary', 'reduce', 'setitem']);
        const prev = model;
        if (kind === 'permute' && nd >= 2) {
          const perm = g.permutation(nd);
          arr = arr.permute(perm);
          model = { shape: perm.map((p) => prev.shape[p]), at: (idx) => prev.at(perm.map((_, d) => idx[perm.indexOf(d)])) };
          log.push(`permute(${perm})`);
        } else if (kind === 'slice' && nd >= 1) {
          const ax = g.randint(0, nd);
          const n = prev.shape[ax];
          const step = pick([1, 2, -1, -2, 3]);
          const start = g.randint(0, n);
          // Python slice semantics for a start and open end in the step's direction.
          const len = step > 0 ? Math.ceil((n - start) / step) : Math.ceil((start + 1) / -step);
          const index = prev.shape.map((_, d) => (d === ax ? { start, step } : {}));
          arr = arr.get(...index);
          model = {
            shape: prev.shape.map((d, i) => (i === ax ? len : d)),
            at: (idx) => prev.at(idx.map((v, i) => (i === ax ? start + v * step : v))),
          };
          log.push(`slice(axis ${ax}, ${start}::${step})`);
        } else if (kind === 'flip' && nd >= 1) {
          const ax = g.randint(0, nd);
          arr = arr.flip(ax);
          model = { shape: prev.shape, at: (idx) => prev.at(idx.map((v, i) => (i === ax ? prev.shape[ax] - 1 - v : v))) };
          log.push(`flip(${ax})`);
        } else if (kind === 'reshape' && size(prev.shape) > 0) {
          const total = size(prev.shape);
          const divisors = Array.from({ length: total }, (_, i) => i + 1).filter((d) => total % d === 0);
          const a = pick(divisors);
          const newShape = pick([[total], [a, total / a], [total / a, a, 1], [1, a, total / a]]);
          arr = arr.reshape(newShape);
          // Row-major flattening of the old index space, re-split under the new shape.
          const oldStr = prev.shape.map((_, d) => size(prev.shape.slice(d + 1)));
          const newStr = newShape.map((_, d) => size(newShape.slice(d + 1)));
          model = {
            shape: newShape,
            at: (idx) => {
              let flat = idx.reduce((s2, v, d) => s2 + v * newStr[d], 0);
              return prev.at(oldStr.map((st) => {
                const v = Math.floor(flat / st);
                flat -= v * st;
                return v;
              }));
            },
          };
          log.push(`reshape(${newShape})`);
        } else if (kind === 'broadcast') {
          const lead = g.randint(1, 3);
          arr = arr.broadcastTo([lead, ...prev.shape]);
          model = { shape: [lead, ...prev.shape], at: (idx) => prev.at(idx.slice(1)) };
          log.push(`broadcastTo(lead ${lead})`);
        } else if (kind === 'expand') {
          const ax = g.randint(0, nd + 1);
          arr = arr.expandDims(ax);
          const shape = [...prev.shape];
          shape.splice(ax, 0, 1);
          model = { shape, at: (idx) => prev.at(idx.filter((_, i) => i !== ax)) };
          log.push(`expandDims(${ax})`);
        } else if (kind === 'squeeze' && prev.shape.includes(1)) {
          const ax = prev.shape.indexOf(1);
          arr = arr.squeeze(ax);
          model = { shape: prev.shape.filter((_, i) => i !== ax), at: (idx) => prev.at([...idx.slice(0, ax), 0, ...idx.slice(ax)]) };
          log.push(`squeeze(${ax})`);
        } else if (kind === 'binary') {
          const op = pick(binaryOps);
          // The other operand: a broadcastable shape (some axes 1, maybe fewer dims).
          const drop = g.randint(0, Math.min(nd, 2) + 1);
          const oShape = prev.shape.slice(drop).map((d) => (g.uniform() < 0.3 ? 1 : d));
          const oData = Float32Array.from({ length: size(oShape) }, () => Math.round((g.uniform() * 8 - 4) * 4) / 4);
          const other = NDArray.fromData(oData, oShape, backend);
          const oStr = oShape.map((_, d) => size(oShape.slice(d + 1)));
          const swap = g.uniform() < 0.5;
          arr = swap ? other[op](arr) : arr[op](other);
          model = materialize({
            shape: prev.shape,
            at: (idx) => {
              const oi = idx.slice(drop).map((v, i) => (oShape[i] === 1 ? 0 : v));
              const o = oData[oi.reduce((s2, v, d) => s2 + v * oStr[d], 0)];
              return swap ? hostBinary[op](o, prev.at(idx)) : hostBinary[op](prev.at(idx), o);
            },
          });
          log.push(`${swap ? 'other.' : ''}${op}(${swap ? 'x' : 'other'} ${JSON.stringify(oShape)})`);
        } else if (kind === 'unary') {
          const op = pick(unaryOps);
          arr = arr[op]();
          model = materialize({ shape: prev.shape, at: (idx) => hostUnary[op](prev.at(idx)) });
          log.push(op);
        } else if (kind === 'reduce' && nd >= 1 && size(prev.shape) > 0) {
          const ax = g.randint(0, nd);
          const op = pick(['sum', 'max', 'min'] as const);
          const keep = g.uniform() < 0.5;
          arr = arr[op](ax, keep);
          const reduced = (idx: number[]) => {
            const vals = Array.from({ length: prev.shape[ax] }, (_, k) => prev.at([...idx.slice(0, ax), k, ...idx.slice(ax)]));
            return op === 'sum' ? vals.reduce((a2, b2) => a2 + b2, 0) : op === 'max' ? Math.max(...vals) : Math.min(...vals);
          };
          const outShape = prev.shape.filter((_, i) => i !== ax);
          model = materialize(keep
            ? { shape: prev.shape.map((d, i) => (i === ax ? 1 : d)), at: (idx) => reduced(idx.filter((_, i) => i !== ax)) }
            : { shape: outShape, at: reduced });
          log.push(`${op}(${ax}, keepdims=${keep})`);
        } else if (kind === 'setitem' && nd >= 1 && size(prev.shape) > 0) {
          // Write a constant into every other element along one axis of a compact copy.
          const ax = g.randint(0, nd);
          const c = arr.clone();
          c.set(prev.shape.map((_, d) => (d === ax ? '::2' : ':')), 9.5);
          arr = c;
          model = materialize({ shape: prev.shape, at: (idx) => (idx[ax] % 2 === 0 ? 9.5 : prev.at(idx)) });
          log.push(`set(axis ${ax} ::2, 9.5)`);
        }
        expect(arr.shape, log.join(' -> ')).toEqual(model.shape);
      }
      const expected = indices(model.shape).map((i) => Math.fround(model.at(i)));
      const actual = Array.from(await arr.toArray());
      const tol = (x: number, y: number) => Math.abs(x - y) <= 1e-4 * Math.max(1, Math.abs(y)) || (Number.isNaN(x) && Number.isNaN(y));
      const bad = actual.findIndex((v, i) => !tol(v, expected[i]));
      expect(bad, `chain ${log.join(' -> ')}: element ${bad} got ${actual[bad]} expected ${expected[bad]}`).toBe(-1);
      s.end();
      expect(backend.memory().buffers).toBe(0);
    });
  }
});
