/**
 * Reference results, computed by needle's CPU backend (the living spec of every kernel). Each
 * framework's output for a case is compared with these elementwise before it is timed.
 */
import { readFileSync, rmSync } from 'node:fs';
import { NDArray, tidy, type Backend } from '@needle/ndarray';
import { createCpuBackend } from '@needle/ndarray-cpu';
import { CONVNET_KERNEL, CONVNET_PAD, MLP_LR, type CaseSpec } from './cases';

let cpu: Backend | undefined;
function cpuBackend(): Backend {
  cpu ??= createCpuBackend({ name: 'bench-reference-cpu' });
  return cpu;
}

/** A case's expected output and where it came from (printed under the table). */
export interface Reference {
  output: Float32Array;
  /** e.g. 'float64 loops (src/reference.ts)', 'PyTorch float64'. */
  source: string;
}

/**
 * The expected output of any case, as the harness asks for it. `referenceOutput` where the case has
 * a hand-written one. The flagship models (ResNet9, LanguageModel) have none: their reference is
 * PyTorch's step in float64 (the torch worker's `reference` request; `inputFiles` hold the inputs),
 * which shares no code with any measured target and is closer to the exact step than any float32
 * framework. Where no Python can import torch it falls back to needle's own step on the CPU backend
 * (@needle/nn's models are tested against PyTorch fixtures at 1e-5), and says so.
 */
export async function referenceFor(spec: CaseSpec, inputs: Float32Array[], inputFiles: string[], outputFile: string): Promise<Reference | undefined> {
  if (spec.kind !== 'resnet9' && spec.kind !== 'lm') {
    const output = referenceOutput(spec, inputs);
    const source = spec.kind === 'convnet' || spec.kind === 'lstm' ? 'float64 loops with hand-derived gradients (src/reference.ts)' : 'needle-cpu ops (src/reference.ts)';
    return output && { output, source };
  }
  const torch = await torchReference(spec, inputFiles, outputFile);
  if (torch.output) return { output: torch.output, source: 'PyTorch float64 (python/torch_worker.py, op reference)' };
  const { prepareNeedleLm, prepareNeedleResnet9 } = await import('./engines/needle-models');
  const { thisCheckout } = await import('./engines/needle-step');
  const prepared = await (spec.kind === 'lm' ? prepareNeedleLm : prepareNeedleResnet9)(spec, inputs, thisCheckout(cpuBackend()));
  try {
    await prepared.step();
    return { output: await prepared.output(), source: `needle-cpu's own step, not independent (${torch.reason})` };
  } finally {
    prepared.dispose();
  }
}

/** The torch worker's float64 step, or why there is none. */
async function torchReference(spec: CaseSpec, inputFiles: string[], outputFile: string): Promise<{ output?: Float32Array; reason: string }> {
  // Loaded here: channels.ts reaches the engines, which import this module.
  const { PythonChannel, torchAvailable } = await import('./channels');
  const probe = torchAvailable();
  if (!probe.ok) return { reason: probe.reason };
  const channel = new PythonChannel(undefined, { threads: 1 });
  try {
    const init = await channel.request({ op: 'init', target: 'torch:cpu', threads: 1 });
    const reply = init.ok ? await channel.request({ op: 'reference', spec, inputFiles, outputFile }) : init;
    if (!reply.ok) return { reason: `the torch worker's float64 step failed: ${reply.reason}` };
    const buf = readFileSync(outputFile);
    rmSync(outputFile, { force: true });
    return { output: new Float32Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength)), reason: '' };
  } finally {
    await channel.close().catch(() => {});
  }
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
      return convnetStepReference(spec, inputs);
    case 'lstm':
      return lstmStepReference(spec, inputs);
    // needle's own step, asynchronous: see referenceFor.
    case 'resnet9':
    case 'lm':
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

/**
 * One SGD step of the ConvNet (see convnetCase), written out as direct loops in float64. Deliberately
 * shares nothing with needle: no NDArray kernels, no autograd, no im2col (needle's conv2d is an
 * im2col + matmul; this is the textbook sliding-window sum and its hand-derived adjoints). It is the
 * reference every target is checked against, needle:cpu included. Float64 accumulation makes it
 * closer to the exact result than any float32 framework, so the tolerance only has to absorb their
 * rounding. Output layout: [loss, conv1.weight', conv1.bias', conv2.weight', conv2.bias',
 * fc.weight', fc.bias'] in PyTorch layouts, flattened and concatenated.
 *
 * Max pooling sends the gradient to the first maximum of a window. Exact ties only happen between
 * ReLU zeros, whose gradient the ReLU then drops, so every tie rule (needle shares it among tied
 * maxima; torch picks one) gives the same weights.
 */
function convnetStepReference(spec: CaseSpec, inputs: Float32Array[]): Float32Array {
  const { loss, grads } = convnetLossAndGrads(spec, inputs);
  const sgd = (w: Float32Array, g: Float64Array) => Float32Array.from(w, (v, i) => v - MLP_LR * g[i]);
  return concatFlat([Float32Array.of(loss), ...grads.map((g, i) => sgd(inputs[2 + i], g))]);
}

/**
 * The ConvNet's mean cross-entropy (float64) and its gradients with respect to the six parameters
 * (inputs[2..7], same layouts). Exported for the finite-difference test of this reference.
 */
export function convnetLossAndGrads(spec: CaseSpec, inputs: Float32Array[]): { loss: number; grads: Float64Array[] } {
  const [n, c0, s0, c1, c2, classes] = spec.dims;
  const [x, labels, w1, b1, w2, b2, w3, b3] = inputs;
  const s1 = s0 / 2;
  const s2 = s0 / 4;
  const flat = c2 * s2 * s2;

  const a1 = convForward(x, n, c0, s0, w1, b1, c1);
  const r1 = a1.map((v) => Math.max(v, 0));
  const [p1, arg1] = maxPool2(r1, n, c1, s0);
  const a2 = convForward(p1, n, c1, s1, w2, b2, c2);
  const r2 = a2.map((v) => Math.max(v, 0));
  const [p2, arg2] = maxPool2(r2, n, c2, s1); // [n, flat] when read row by row (NCHW flatten)

  // Linear: z = p2 @ w3^T + b3, w3 [classes, flat]; then mean softmax cross-entropy.
  const { loss, dw: dw3, db: db3, dx: dp2 } = linearCrossEntropy(p2, n, flat, w3, b3, classes, labels);

  const da2 = unpoolReluGrad(dp2, arg2, a2);
  const { dw: dw2, db: db2, dx: dp1 } = convBackward(da2, p1, n, c1, s1, w2, c2, true);
  const da1 = unpoolReluGrad(dp1!, arg1, a1);
  const { dw: dw1, db: db1 } = convBackward(da1, x, n, c0, s0, w1, c1, false);

  return { loss, grads: [dw1, db1, dw2, db2, dw3, db3] };
}

/** "Same" convolution (stride 1, CONVNET_PAD zeros around): x [n, ci, s, s] -> [n, co, s, s]. */
function convForward(x: ArrayLike<number>, n: number, ci: number, s: number, w: Float32Array, b: Float32Array, co: number): Float64Array {
  const k = CONVNET_KERNEL;
  const pad = CONVNET_PAD;
  const out = new Float64Array(n * co * s * s);
  for (let i = 0; i < n; i++) {
    for (let o = 0; o < co; o++) {
      const obase = (i * co + o) * s * s;
      for (let y = 0; y < s; y++) {
        for (let xx = 0; xx < s; xx++) {
          let acc = b[o];
          for (let c = 0; c < ci; c++) {
            const xbase = (i * ci + c) * s * s;
            const wbase = (o * ci + c) * k * k;
            for (let u = 0; u < k; u++) {
              const yy = y + u - pad;
              if (yy < 0 || yy >= s) continue;
              for (let v = 0; v < k; v++) {
                const xc = xx + v - pad;
                if (xc < 0 || xc >= s) continue;
                acc += x[xbase + yy * s + xc] * w[wbase + u * k + v];
              }
            }
          }
          out[obase + y * s + xx] = acc;
        }
      }
    }
  }
  return out;
}

/** Adjoints of convForward: dL/dw [co, ci, k, k], dL/db [co], and dL/dx [n, ci, s, s] if asked. */
function convBackward(
  dOut: Float64Array,
  x: ArrayLike<number>,
  n: number,
  ci: number,
  s: number,
  w: Float32Array,
  co: number,
  wantDx: boolean,
): { dw: Float64Array; db: Float64Array; dx?: Float64Array } {
  const k = CONVNET_KERNEL;
  const pad = CONVNET_PAD;
  const dw = new Float64Array(co * ci * k * k);
  const db = new Float64Array(co);
  const dx = wantDx ? new Float64Array(n * ci * s * s) : undefined;
  for (let i = 0; i < n; i++) {
    for (let o = 0; o < co; o++) {
      for (let y = 0; y < s; y++) {
        for (let xx = 0; xx < s; xx++) {
          const g = dOut[((i * co + o) * s + y) * s + xx];
          // Most output gradients are zero (ReLU and pooling drop them): skip their windows.
          if (g === 0) continue;
          db[o] += g;
          for (let c = 0; c < ci; c++) {
            const xbase = (i * ci + c) * s * s;
            const wbase = (o * ci + c) * k * k;
            for (let u = 0; u < k; u++) {
              const yy = y + u - pad;
              if (yy < 0 || yy >= s) continue;
              for (let v = 0; v < k; v++) {
                const xc = xx + v - pad;
                if (xc < 0 || xc >= s) continue;
                dw[wbase + u * k + v] += g * x[xbase + yy * s + xc];
                if (dx) dx[xbase + yy * s + xc] += g * w[wbase + u * k + v];
              }
            }
          }
        }
      }
    }
  }
  return { dw, db, dx };
}

/** 2x2, stride-2 max pooling of [n, c, s, s]; also the flat index of each window's (first) maximum. */
function maxPool2(a: Float64Array, n: number, c: number, s: number): [Float64Array, Int32Array] {
  const h = s / 2;
  const out = new Float64Array(n * c * h * h);
  const arg = new Int32Array(out.length);
  for (let plane = 0; plane < n * c; plane++) {
    for (let y = 0; y < h; y++) {
      for (let xx = 0; xx < h; xx++) {
        let best = -Infinity;
        let at = -1;
        for (let u = 0; u < 2; u++) {
          for (let v = 0; v < 2; v++) {
            const idx = (plane * s + 2 * y + u) * s + 2 * xx + v;
            if (a[idx] > best) {
              best = a[idx];
              at = idx;
            }
          }
        }
        out[(plane * h + y) * h + xx] = best;
        arg[(plane * h + y) * h + xx] = at;
      }
    }
  }
  return [out, arg];
}

/** The gradient through ReLU(pre) then max pooling: route each pooled gradient to its argmax, if pre > 0. */
function unpoolReluGrad(dPooled: Float64Array, arg: Int32Array, pre: Float64Array): Float64Array {
  const d = new Float64Array(pre.length);
  for (let j = 0; j < dPooled.length; j++) {
    if (pre[arg[j]] > 0) d[arg[j]] += dPooled[j];
  }
  return d;
}

/**
 * One SGD step of the LSTM classifier (see lstmCase), written out in float64 loops: the forward
 * recurrence, then backpropagation through time by hand. Like the ConvNet reference it shares
 * nothing with needle (no NDArray, no autograd) and every target is checked against it. Output
 * layout: [loss, weight_ih', weight_hh', bias_ih', bias_hh', fc.weight', fc.bias'] in PyTorch's
 * layouts, flattened and concatenated.
 */
function lstmStepReference(spec: CaseSpec, inputs: Float32Array[]): Float32Array {
  const { loss, grads } = lstmLossAndGrads(spec, inputs);
  const sgd = (w: Float32Array, g: Float64Array) => Float32Array.from(w, (v, i) => v - MLP_LR * g[i]);
  return concatFlat([Float32Array.of(loss), ...grads.map((g, i) => sgd(inputs[2 + i], g))]);
}

/**
 * The LSTM classifier's mean cross-entropy (float64) and its gradients with respect to the six
 * parameters (inputs[2..7], same layouts). PyTorch's cell, gate order i, f, g, o:
 *   a = W_ih x_t + b_ih + W_hh h_{t-1} + b_hh  (4H rows: i, f, g, o blocks)
 *   i, f, o = sigmoid(a_i, a_f, a_o);  g = tanh(a_g);  c_t = f c_{t-1} + i g;  h_t = o tanh(c_t)
 * with h_0 = c_0 = 0. Exported for the finite-difference test of this reference.
 */
export function lstmLossAndGrads(spec: CaseSpec, inputs: Float32Array[]): { loss: number; grads: Float64Array[] } {
  const [n, seq, nIn, hid, classes] = spec.dims;
  const [x, labels, wih, whh, bih, bhh, wfc, bfc] = inputs;
  const g4 = 4 * hid;
  const sigmoid = (v: number) => 1 / (1 + Math.exp(-v));

  // Per time step, every sample's activated gates [n, 4H] (i, f, g, o after their nonlinearity),
  // cell state and hidden state [n, H]; index t + 1 holds step t's states, index 0 the zero state.
  const gates: Float64Array[] = [];
  const cs: Float64Array[] = [new Float64Array(n * hid)];
  const hs: Float64Array[] = [new Float64Array(n * hid)];
  for (let t = 0; t < seq; t++) {
    const act = new Float64Array(n * g4);
    const c = new Float64Array(n * hid);
    const h = new Float64Array(n * hid);
    const hPrev = hs[t];
    const cPrev = cs[t];
    for (let b = 0; b < n; b++) {
      const xo = (t * n + b) * nIn;
      for (let r = 0; r < g4; r++) {
        let acc = bih[r] + bhh[r];
        for (let k = 0; k < nIn; k++) acc += wih[r * nIn + k] * x[xo + k];
        for (let k = 0; k < hid; k++) acc += whh[r * hid + k] * hPrev[b * hid + k];
        // Rows 2H..3H are the candidate g (tanh); the other three blocks are sigmoid gates.
        act[b * g4 + r] = r >= 2 * hid && r < 3 * hid ? Math.tanh(acc) : sigmoid(acc);
      }
      for (let j = 0; j < hid; j++) {
        const a = b * g4;
        const cv = act[a + hid + j] * cPrev[b * hid + j] + act[a + j] * act[a + 2 * hid + j];
        c[b * hid + j] = cv;
        h[b * hid + j] = act[a + 3 * hid + j] * Math.tanh(cv);
      }
    }
    gates.push(act);
    cs.push(c);
    hs.push(h);
  }

  // Linear on the last hidden state, then mean softmax cross-entropy.
  const hLast = hs[seq];
  const { loss, dw: dwfc, db: dbfc, dx: dhLast } = linearCrossEntropy(hLast, n, hid, wfc, bfc, classes, labels);
  let dh = dhLast;

  // Backpropagation through time: dh and dc flow from step t to t - 1.
  const dwih = new Float64Array(g4 * nIn);
  const dwhh = new Float64Array(g4 * hid);
  const db = new Float64Array(g4);
  let dc = new Float64Array(n * hid);
  const da = new Float64Array(n * g4);
  for (let t = seq - 1; t >= 0; t--) {
    const act = gates[t];
    const c = cs[t + 1];
    const cPrev = cs[t];
    const hPrev = hs[t];
    const dcPrev = new Float64Array(n * hid);
    const dhPrev = new Float64Array(n * hid);
    for (let b = 0; b < n; b++) {
      const a = b * g4;
      for (let j = 0; j < hid; j++) {
        const i = act[a + j];
        const f = act[a + hid + j];
        const gg = act[a + 2 * hid + j];
        const o = act[a + 3 * hid + j];
        const tc = Math.tanh(c[b * hid + j]);
        const dhv = dh[b * hid + j];
        const dcv = dc[b * hid + j] + dhv * o * (1 - tc * tc);
        // Adjoints of the pre-activations, through each gate's nonlinearity.
        da[a + j] = dcv * gg * i * (1 - i);
        da[a + hid + j] = dcv * cPrev[b * hid + j] * f * (1 - f);
        da[a + 2 * hid + j] = dcv * i * (1 - gg * gg);
        da[a + 3 * hid + j] = dhv * tc * o * (1 - o);
        dcPrev[b * hid + j] = dcv * f;
      }
      const xo = (t * n + b) * nIn;
      for (let r = 0; r < g4; r++) {
        const d = da[a + r];
        db[r] += d;
        for (let k = 0; k < nIn; k++) dwih[r * nIn + k] += d * x[xo + k];
        for (let k = 0; k < hid; k++) {
          dwhh[r * hid + k] += d * hPrev[b * hid + k];
          dhPrev[b * hid + k] += d * whh[r * hid + k];
        }
      }
    }
    dh = dhPrev;
    dc = dcPrev;
  }

  // b_ih and b_hh enter the pre-activation the same way, so they get the same gradient.
  return { loss, grads: [dwih, dwhh, db, db.slice(), dwfc, dbfc] };
}

/**
 * The classifier head shared by the training-step references: z = x @ w^T + b (x [n, f], w [classes, f]),
 * mean softmax cross-entropy against integer labels, and its gradients for w, b and x, in float64.
 */
function linearCrossEntropy(
  x: ArrayLike<number>, n: number, f: number, w: ArrayLike<number>, b: ArrayLike<number>, classes: number, labels: ArrayLike<number>,
): { loss: number; dw: Float64Array; db: Float64Array; dx: Float64Array } {
  let loss = 0;
  const dw = new Float64Array(classes * f);
  const db = new Float64Array(classes);
  const dx = new Float64Array(n * f);
  for (let i = 0; i < n; i++) {
    const z = new Float64Array(classes);
    for (let k = 0; k < classes; k++) {
      let acc = b[k];
      for (let j = 0; j < f; j++) acc += x[i * f + j] * w[k * f + j];
      z[k] = acc;
    }
    const m = Math.max(...z);
    let se = 0;
    for (let k = 0; k < classes; k++) se += Math.exp(z[k] - m);
    const lse = m + Math.log(se);
    const label = labels[i];
    loss += (lse - z[label]) / n;
    for (let k = 0; k < classes; k++) {
      const dz = (Math.exp(z[k] - lse) - (k === label ? 1 : 0)) / n;
      db[k] += dz;
      for (let j = 0; j < f; j++) {
        dw[k * f + j] += dz * x[i * f + j];
        dx[i * f + j] += dz * w[k * f + j];
      }
    }
  }
  return { loss, dw, db, dx };
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
