/**
 * Reference results, computed by needle's CPU backend (the living spec of every kernel). Each
 * framework's output for a case is compared with these elementwise before it is timed.
 */
import { NDArray, tidy, type Backend } from '@needle/ndarray';
import { createCpuBackend } from '@needle/ndarray-cpu';
import { MLP_LR, type CaseSpec } from './cases';

let cpu: Backend | undefined;
function cpuBackend(): Backend {
  cpu ??= createCpuBackend({ name: 'bench-reference-cpu' });
  return cpu;
}

/** The expected output of a case on these inputs, or undefined when the case has no reference yet. */
export function referenceOutput(spec: CaseSpec, inputs: Float32Array[]): Float32Array | undefined {
  const backend = cpuBackend();
  const arr = (data: Float32Array, shape: number[]) => NDArray.fromData(data, shape, backend);
  switch (spec.kind) {
    case 'matmul': {
      const [n] = spec.dims;
      return tidy(() => arr(inputs[0], [n, n]).matmul(arr(inputs[1], [n, n])).toArraySync());
    }
    case 'ewise':
      return tidy(() => arr(inputs[0], [spec.dims[0]]).add(arr(inputs[1], [spec.dims[0]])).toArraySync());
    case 'reduce':
      return tidy(() => arr(inputs[0], [spec.dims[0]]).sum().toArraySync());
    case 'mlp':
      return tidy(() => mlpStepReference(spec, inputs, arr));
    case 'convnet':
    case 'lstm':
      return undefined;
    default:
      return spec.kind satisfies never;
  }
}

/**
 * One SGD step of the MLP with hand-written gradients (independent of @needle/autograd, so the
 * autograd path is checked against something it does not share code with). Output layout, which
 * every framework reproduces: [loss, W1', b1', W2', b2'] flattened and concatenated.
 */
function mlpStepReference(
  spec: CaseSpec,
  inputs: Float32Array[],
  arr: (data: Float32Array, shape: number[]) => NDArray,
): Float32Array {
  const [batch, nIn, nHidden, nClasses] = spec.dims;
  const x = arr(inputs[0], [batch, nIn]);
  const y = arr(inputs[1], [batch, nClasses]);
  const w1 = arr(inputs[2], [nIn, nHidden]);
  const b1 = arr(inputs[3], [nHidden]);
  const w2 = arr(inputs[4], [nHidden, nClasses]);
  const b2 = arr(inputs[5], [nClasses]);

  const z1 = x.matmul(w1).add(b1);
  const h = z1.maximum(0);
  const z2 = h.matmul(w2).add(b2);
  // log-softmax through the max shift, as every framework does, so exp never overflows.
  const m = z2.max(1, true);
  const shifted = z2.sub(m);
  const lse = shifted.exp().sum(1, true).log();
  const logp = shifted.sub(lse);
  const loss = y.mul(logp).sum().neg().div(batch);

  const dz2 = logp.exp().sub(y).div(batch);
  const dw2 = h.transpose().matmul(dz2);
  const db2 = dz2.sum(0);
  const dz1 = dz2.matmul(w2.transpose()).mul(z1.gt(0));
  const dw1 = x.transpose().matmul(dz1);
  const db1 = dz1.sum(0);

  const parts = [loss, w1.sub(dw1.mul(MLP_LR)), b1.sub(db1.mul(MLP_LR)), w2.sub(dw2.mul(MLP_LR)), b2.sub(db2.mul(MLP_LR))];
  return concatFlat(parts.map((p) => p.toArraySync()));
}

export function concatFlat(parts: Float32Array[]): Float32Array {
  const out = new Float32Array(parts.reduce((s, p) => s + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}
