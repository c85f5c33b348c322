// Scratch benchmark entry (bundled and run by scripts/bench-mlp.mjs): training steps/s of an MLP
// 784-512-10 on a batch of 128, the same step as apps/bench's mlp case, on this backend.
import { NDArray, scope } from '@needle/ndarray';
import * as ag from '@needle/autograd';
import { createWasmBackend } from '../src';

const threads = Number(process.argv[2] ?? 1);
const backend = await createWasmBackend({ threads });
let seed = 1;
const next = () => ((seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0) / 4294967296);
const rand = (n: number, scale: number) => Float32Array.from({ length: n }, () => (next() - 0.5) * scale);
const [batch, nIn, nHidden, nClasses] = [128, 784, 512, 10];
const onehot = new Float32Array(batch * nClasses);
for (let i = 0; i < batch; i++) onehot[i * nClasses + (i % nClasses)] = 1;
const x = new ag.Tensor(NDArray.fromData(rand(batch * nIn, 1), [batch, nIn], backend));
const y = new ag.Tensor(NDArray.fromData(onehot, [batch, nClasses], backend));
const param = (n: number, shape: number[], s: number) => new ag.Tensor(NDArray.fromData(rand(n, s), shape, backend), { requiresGrad: true });
const params = [param(nIn * nHidden, [nIn, nHidden], 0.1), param(nHidden, [nHidden], 0.1), param(nHidden * nClasses, [nHidden, nClasses], 0.1), param(nClasses, [nClasses], 0.1)];
const [w1, b1, w2, b2] = params;

function step(): number {
  const s = scope();
  const logits = ag.add(ag.matmul(ag.relu(ag.add(ag.matmul(x, w1), b1)), w2), b2);
  const l = ag.mul(ag.sum(ag.mul(ag.logSoftmax(logits, -1), y)), -1 / batch);
  l.backward();
  for (const p of params) {
    p.data.assign(p.data.sub(p.grad!.data.mul(0.1)));
    p.zeroGrad();
  }
  const kept = s.end(l);
  const v = kept.data.toArraySync()[0];
  kept.dispose();
  return v;
}

for (let i = 0; i < 20; i++) step();
if (process.env.PROFILE) {
  const stats = new Map<string, [number, number]>();
  const b = backend as unknown as Record<string, (...args: unknown[]) => unknown>;
  for (const name of ['alloc', 'free', 'write', 'readSync', 'fill', 'compact', 'ewiseSetitem', 'scalarSetitem', 'ewise', 'scalar', 'unary', 'where', 'reduce', 'matmul']) {
    const orig = b[name].bind(backend);
    b[name] = (...args: unknown[]) => {
      const key = name === 'compact' || name === 'ewiseSetitem' ? `${name} ${JSON.stringify(args[2])}` : name === 'matmul' ? `matmul ${JSON.stringify(args[3])}` : ['ewise', 'scalar', 'unary', 'reduce'].includes(name) ? `${name} ${args[0]} ${args[args.length - 1]}` : name;
      const t0 = performance.now();
      const r = orig(...args);
      const e = stats.get(key) ?? [0, 0];
      stats.set(key, [e[0] + 1, e[1] + performance.now() - t0]);
      return r;
    };
  }
  const t0 = performance.now();
  for (let i = 0; i < 50; i++) step();
  const total = performance.now() - t0;
  const rows = [...stats].sort((p, q) => q[1][1] - p[1][1]);
  let inKernels = 0;
  for (const [k, [n, t]] of rows) {
    inKernels += t;
    console.log(`${(t / 50).toFixed(3)} ms/step  ${(n / 50).toFixed(1)} calls  ${k}`);
  }
  console.log(`total ${(total / 50).toFixed(3)} ms/step, in backend ${(inKernels / 50).toFixed(3)}`);
  process.exit(0);
}
const live = backend.memory().buffers;
let best = 0;
let loss = 0;
for (let trial = 0; trial < 5; trial++) {
  const t0 = performance.now();
  let n = 0;
  while (performance.now() - t0 < 400) {
    loss = step();
    n++;
  }
  best = Math.max(best, (n * 1000) / (performance.now() - t0));
}
console.log(`mlp 784-512-10 b128, threads=${backend.threads}: ${best.toFixed(1)} steps/s (loss ${loss.toFixed(4)}, live buffers ${live} -> ${backend.memory().buffers})`);
backend.destroy();
