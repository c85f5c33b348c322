/**
 * The fused updates (one elementwise-program launch per parameter) against the unfused rules they
 * replace, written here op by op as they were before fusion: equal bit for bit, NaN and Inf
 * included, over several steps of every option combination. The WASM re-run of this suite
 * (`pnpm test:wasm`, which resolves createCpuBackend to a WASM backend) checks WASM's fused path.
 */
import { describe, expect, it } from 'vitest';
import { NDArray, Generator, statsDiff, tidy, type Backend } from '@needle/ndarray';
import { createCpuBackend } from '@needle/ndarray-cpu';
import { Tensor } from '@needle/autograd';
import { Adam, AdamW, SGD, type AdamOptions, type SGDOptions } from '../src/index';

type Sgd = Omit<SGDOptions, 'lr'> & { lr: number };

function unfusedSgd(p: NDArray, g: NDArray, buf: NDArray | undefined, o: Sgd): [NDArray, NDArray | undefined] {
  let d = o.weightDecay !== 0 ? g.add(p.mul(o.weightDecay)) : g;
  let b: NDArray | undefined;
  if (o.momentum !== 0) {
    b = buf ? buf.mul(o.momentum).add(d.mul(1 - o.dampening)) : d.clone();
    d = o.nesterov ? d.add(b.mul(o.momentum)) : b;
  }
  return [p.sub(d.mul(o.lr)), b];
}

function unfusedAdam(p0: NDArray, g0: NDArray, st: { m?: NDArray; v?: NDArray; max?: NDArray }, step: number, o: AdamOptions, decoupled: boolean) {
  const [beta1, beta2] = o.betas;
  let p = p0;
  let g = g0;
  if (o.weightDecay !== 0) {
    if (decoupled) p = p.mul(1 - o.lr * o.weightDecay);
    else g = g.add(p.mul(o.weightDecay));
  }
  const m = st.m ? st.m.mul(beta1).add(g.mul(1 - beta1)) : g.mul(1 - beta1);
  const gg = g.mul(g);
  const v = st.v ? st.v.mul(beta2).add(gg.mul(1 - beta2)) : gg.mul(1 - beta2);
  const vhat = o.amsgrad ? (st.max ? st.max.maximum(v) : v.clone()) : v;
  const denom = vhat.sqrt().div(Math.sqrt(1 - beta2 ** step)).add(o.eps);
  return { p: p.sub(m.div(denom).mul(o.lr / (1 - beta1 ** step))), m, v, max: o.amsgrad ? vhat : undefined };
}

const N = 300;
function data(g: Generator, specials: boolean): Float32Array {
  const d = g.fillUniform(new Float32Array(N), -2, 2);
  if (specials) [NaN, Infinity, -Infinity, 0, -0, 1e-30, 3e38].forEach((x, i) => (d[i * 13] = x));
  return d;
}

async function bits(a: NDArray): Promise<number[]> {
  return Array.from(new Uint32Array((await a.toArray()).buffer)).map((u) => (Number.isNaN(new Float32Array(new Uint32Array([u]).buffer)[0]) ? -1 : u));
}

async function expectSame(got: NDArray, want: NDArray, what: string): Promise<void> {
  expect(await bits(got), what).toEqual(await bits(want));
}

const backends: [string, () => Backend | Promise<Backend>][] = [['cpu', () => createCpuBackend({ name: 'cpu-fused-test' })]];

describe.each(backends)('fused optimizer updates on %s', (_, make) => {
  it('SGD (momentum, dampening, weight decay, nesterov): bit for bit the unfused rule, one launch per parameter', async () => {
    const backend = await make();
    const g = new Generator(7);
    const configs: Sgd[] = [];
    for (const momentum of [0, 0.9]) for (const weightDecay of [0, 0.01]) for (const nesterov of momentum ? [false, true] : [false]) {
      for (const dampening of nesterov ? [0] : [0, 0.25]) configs.push({ lr: 0.1, momentum, weightDecay, nesterov, dampening });
    }
    for (const o of configs) {
      for (const specials of [false, true]) {
        const live = backend.memory().buffers;
        const p = new Tensor(NDArray.fromData(data(g, specials), [N], backend), { requiresGrad: true });
        let ref = p.data.clone();
        let refBuf: NDArray | undefined;
        const opt = new SGD([p], o);
        for (let step = 0; step < 3; step++) {
          const grad = NDArray.fromData(data(g, specials), [N], backend);
          p.grad = new Tensor(grad.clone());
          const before = backend.stats();
          opt.step();
          const d = statsDiff(backend.stats(), before);
          expect(d.launches, `${JSON.stringify(o)} launches`).toBe(1);
          const [np, nb] = tidy(() => unfusedSgd(ref, grad, refBuf, o));
          ref.dispose();
          refBuf?.dispose();
          ref = np;
          refBuf = nb;
          grad.dispose();
          await expectSame(p.data, ref, `${JSON.stringify(o)} step ${step} param`);
          if (refBuf) await expectSame(opt.getState(p)!.momentumBuffer as NDArray, refBuf, `${JSON.stringify(o)} step ${step} buffer`);
        }
        ref.dispose();
        refBuf?.dispose();
        opt.dispose();
        p.dispose();
        expect(backend.memory().buffers).toBe(live);
      }
    }
  });

  it('Adam and AdamW (bias correction, weight decay, amsgrad): bit for bit the unfused rule, one launch per parameter', async () => {
    const backend = await make();
    const g = new Generator(11);
    for (const decoupled of [false, true]) for (const weightDecay of [0, 0.05]) for (const amsgrad of [false, true]) {
      const o: AdamOptions = { lr: 0.01, betas: [0.9, 0.999], eps: 1e-8, weightDecay, amsgrad };
      for (const specials of [false, true]) {
        const live = backend.memory().buffers;
        const p = new Tensor(NDArray.fromData(data(g, specials), [N], backend), { requiresGrad: true });
        let ref = { p: p.data.clone(), m: undefined as NDArray | undefined, v: undefined as NDArray | undefined, max: undefined as NDArray | undefined };
        const opt = decoupled ? new AdamW([p], o) : new Adam([p], o);
        for (let step = 1; step <= 3; step++) {
          const grad = NDArray.fromData(data(g, specials), [N], backend);
          p.grad = new Tensor(grad.clone());
          const before = backend.stats();
          opt.step();
          expect(statsDiff(backend.stats(), before).launches, 'launches').toBe(1);
          const next = tidy(() => unfusedAdam(ref.p, grad, ref, step, o, decoupled));
          [ref.p, ref.m, ref.v, ref.max].forEach((a) => a?.dispose());
          ref = next;
          grad.dispose();
          const label = `${decoupled ? 'AdamW' : 'Adam'} wd ${weightDecay} amsgrad ${amsgrad} step ${step}`;
          await expectSame(p.data, ref.p, `${label} param`);
          const st = opt.getState(p)!;
          await expectSame(st.expAvg as NDArray, ref.m!, `${label} expAvg`);
          await expectSame(st.expAvgSq as NDArray, ref.v!, `${label} expAvgSq`);
          if (amsgrad) await expectSame(st.maxExpAvgSq as NDArray, ref.max!, `${label} maxExpAvgSq`);
        }
        [ref.p, ref.m, ref.v, ref.max].forEach((a) => a?.dispose());
        opt.dispose();
        p.dispose();
        expect(backend.memory().buffers).toBe(live);
      }
    }
  });
});
