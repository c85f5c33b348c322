/**
 * jax-js on its wasm and webgpu devices. Every measured function is jit-compiled (that is how
 * jax-js is meant to be used for speed); compilation happens in the untimed check step.
 * jax-js arrays are reference counted and functions consume their arguments: `.ref` keeps ours.
 */
import { BN_EPS, CONVNET_KERNEL, CONVNET_PAD, MLP_LR, RESNET9_BLOCKS, resnet9Params, type CaseSpec } from '../cases';
import { concatFlat } from '../reference';
import { adapterName, installNodeWebGpu } from './gpu';
import { oneHotRows, permuteArray } from './layouts';
import { NotAvailableError, type Engine, type EngineInfo, type EngineOptions, type Prepared, type Target } from './types';

type Jax = typeof import('@jax-js/jax');
type JArray = import('@jax-js/jax').Array;

export class JaxEngine implements Engine {
  private jax!: Jax;
  constructor(
    readonly target: Target,
    private readonly device: 'wasm' | 'webgpu',
  ) {}

  async init(_options: EngineOptions): Promise<EngineInfo> {
    let details = '';
    if (this.device === 'webgpu') {
      await installNodeWebGpu();
      details = await adapterName();
    }
    this.jax = await import('@jax-js/jax');
    const got = await this.jax.init(this.device);
    if (!got.includes(this.device)) throw new NotAvailableError(`jax-js device '${this.device}' did not start (got ${got.join(', ')})`);
    this.jax.defaultDevice(this.device);
    // jax-js runs wasm kernels on a worker pool only where a global Worker exists (browsers);
    // Node 20 has none, so its wasm device computes on one thread.
    const hasWorker = typeof (globalThis as { Worker?: unknown }).Worker !== 'undefined';
    const threads = this.device === 'wasm' && hasWorker ? (navigator.hardwareConcurrency || 4) : 1;
    return { threads, details: details || 'jit on, float32' };
  }

  async prepare(spec: CaseSpec, inputs: Float32Array[]): Promise<Prepared> {
    const { numpy: np, lax, jit, nn, valueAndGrad, tree } = this.jax;
    // Arrays land on the default device; in-process runs (the smoke test) may have changed it.
    this.jax.defaultDevice(this.device);
    const owned: JArray[] = [];
    const put = (data: Float32Array, shape: number[]) => {
      const a = np.array(data).reshape(shape);
      owned.push(a);
      return a;
    };
    let last: JArray | undefined;
    const keepLast = async (a: JArray) => {
      await a.blockUntilReady();
      last?.dispose();
      last = a;
    };
    const base = {
      output: async () => {
        if (!last) throw new Error(`${this.target} ${spec.id}: output() before step()`);
        return new Float32Array(await last.ref.data());
      },
      dispose: () => {
        last?.dispose();
        for (const a of owned) a.dispose();
      },
    };
    /**
     * A training case's Prepared: the whole step (forward, backward, SGD update) as one jit-compiled
     * function of the parameters and two data arrays, the loss of the last step kept for output().
     */
    const sgdTraining = <P extends Record<string, JArray>>(
      loss: (p: P, a: JArray, b: JArray) => JArray,
      initial: P,
      [a, b]: [JArray, JArray],
      output: (read: (v: JArray) => Promise<Float32Array>, lossValue: JArray, params: P) => Promise<Float32Array>,
      note?: string,
    ): Prepared => {
      // jax-js's tree types do not follow a generic parameter tree; inside, the tree is a plain record.
      type Tree = Record<string, JArray>;
      const lossOf = loss as unknown as (p: Tree, a: JArray, b: JArray) => JArray;
      const step = jit((p: Tree, xa: JArray, xb: JArray) => {
        const [l, g] = valueAndGrad(lossOf)(tree.ref(p), xa, xb);
        const next = tree.map((w: JArray, dw: JArray) => w.sub(dw.mul(MLP_LR)), p, g) as Tree;
        return [l, next] as [JArray, Tree];
      });
      let params: Tree = initial;
      let lossValue: JArray | undefined;
      const read = async (v: JArray) => new Float32Array(await v.ref.data());
      return {
        ...(note === undefined ? {} : { note }),
        step: async () => {
          const [l, next] = step(params, a.ref, b.ref);
          params = next;
          await this.jax.blockUntilReady([l, params]);
          lossValue?.dispose();
          lossValue = l;
        },
        output: () => {
          if (!lossValue) throw new Error(`${this.target} ${spec.id}: output() before step()`);
          return output(read, lossValue, params as P);
        },
        dispose: () => {
          lossValue?.dispose();
          tree.dispose(params);
          base.dispose();
        },
      };
    };
    switch (spec.kind) {
      case 'matmul': {
        const [n] = spec.dims;
        const a = put(inputs[0], [n, n]);
        const b = put(inputs[1], [n, n]);
        const f = jit((x: JArray, y: JArray) => np.matmul(x, y));
        return { ...base, step: () => keepLast(f(a.ref, b.ref)) };
      }
      case 'ewise': {
        const a = put(inputs[0], [spec.dims[0]]);
        const b = put(inputs[1], [spec.dims[0]]);
        const f = jit((x: JArray, y: JArray) => np.add(x, y));
        return { ...base, step: () => keepLast(f(a.ref, b.ref)) };
      }
      case 'reduce': {
        const a = put(inputs[0], [spec.dims[0]]);
        const f = jit((x: JArray) => np.sum(x));
        return { ...base, step: () => keepLast(f(a.ref)) };
      }
      case 'mlp': {
        const [batch, nIn, nHidden, nClasses] = spec.dims;
        const x = put(inputs[0], [batch, nIn]);
        const y = put(inputs[1], [batch, nClasses]);
        type Params = { w1: JArray; b1: JArray; w2: JArray; b2: JArray };
        const params: Params = {
          w1: np.array(inputs[2]).reshape([nIn, nHidden]),
          b1: np.array(inputs[3]),
          w2: np.array(inputs[4]).reshape([nHidden, nClasses]),
          b2: np.array(inputs[5]),
        };
        const loss = (p: Params, xb: JArray, yb: JArray) => {
          const h = nn.relu(np.matmul(xb, p.w1).add(p.b1));
          const logits = np.matmul(h, p.w2).add(p.b2);
          return nn.logSoftmax(logits, -1).mul(yb).sum().mul(-1 / batch);
        };
        return sgdTraining(loss, params, [x, y], async (read, l, p) => concatFlat(await Promise.all([l, p.w1, p.b1, p.w2, p.b2].map(read))));
      }
      case 'convnet': {
        const [batch, channels, size, c1, c2, classes] = spec.dims;
        const k = CONVNET_KERNEL;
        const pad = CONVNET_PAD;
        const flat = c2 * (size / 4) * (size / 4);
        // lax.convGeneralDilated takes PyTorch's layouts (NCHW, OIHW) as they are; the dense kernel
        // is kept [in, out] as in jax/flax (transposed on the host, back again in output()).
        const x = put(inputs[0], [batch, channels, size, size]);
        const oneHot = oneHotRows(inputs[1], classes);
        const y = put(oneHot, [batch, classes]);
        type Params = { w1: JArray; b1: JArray; w2: JArray; b2: JArray; w3: JArray; b3: JArray };
        const params: Params = {
          w1: np.array(inputs[2]).reshape([c1, channels, k, k]),
          b1: np.array(inputs[3]),
          w2: np.array(inputs[4]).reshape([c2, c1, k, k]),
          b2: np.array(inputs[5]),
          w3: np.array(permuteArray(inputs[6], [classes, flat], [1, 0])).reshape([flat, classes]),
          b3: np.array(inputs[7]),
        };
        const padding: Array<[number, number]> = [[pad, pad], [pad, pad]];
        // conv + bias + ReLU, then a 2x2 max pool (reduceWindow over the two spatial axes, jax's
        // idiom for max pooling).
        const block = (h: JArray, w: JArray, b: JArray, co: number) => {
          const a = nn.relu(lax.convGeneralDilated(h, w, [1, 1], padding).add(b.reshape([1, co, 1, 1])));
          return lax.reduceWindow(a, (win: JArray) => np.max(win), [2, 2], [2, 2]);
        };
        const loss = (p: Params, xb: JArray, yb: JArray) => {
          const h1 = block(xb, p.w1, p.b1, c1);
          const h2 = block(h1, p.w2, p.b2, c2);
          const logits = np.matmul(h2.reshape([batch, flat]), p.w3).add(p.b3);
          return nn.logSoftmax(logits, -1).mul(yb).sum().mul(-1 / batch);
        };
        return sgdTraining(loss, params, [x, y], async (read, l, p) => {
          const parts = await Promise.all([l, p.w1, p.b1, p.w2, p.b2, p.w3, p.b3].map(read));
          parts[5] = permuteArray(parts[5], [flat, classes], [1, 0]);
          return concatFlat(parts);
        });
      }
      case 'lstm': {
        const [batch, seq, nIn, hidden, classes] = spec.dims;
        // jax-js has no lax.scan (0.1.x), so the recurrence is a plain loop that jit unrolls into
        // one compiled step of `seq` cells, as a Python loop inside jax.jit would be. Weights are
        // kept [in, out] as in jax/flax (transposed on the host, back again in output()); gate
        // order i, f, g, o as PyTorch's.
        const x = put(inputs[0], [seq * batch, nIn]);
        const oneHot = oneHotRows(inputs[1], classes);
        const y = put(oneHot, [batch, classes]);
        const tr = (w: Float32Array, rows: number, cols: number) => np.array(permuteArray(w, [rows, cols], [1, 0])).reshape([cols, rows]);
        type Params = { wih: JArray; whh: JArray; bih: JArray; bhh: JArray; wfc: JArray; bfc: JArray };
        const params: Params = {
          wih: tr(inputs[2], 4 * hidden, nIn),
          whh: tr(inputs[3], 4 * hidden, hidden),
          bih: np.array(inputs[4]),
          bhh: np.array(inputs[5]),
          wfc: tr(inputs[6], classes, hidden),
          bfc: np.array(inputs[7]),
        };
        const loss = (p: Params, xb: JArray, yb: JArray) => {
          // The input projection of all time steps at once; only h @ W_hh stays in the loop.
          const xp = np.matmul(xb, p.wih).add(p.bih.add(p.bhh)).reshape([seq, batch, 4 * hidden]);
          const steps = np.split(xp, seq, 0);
          let h = np.zeros([batch, hidden]);
          let c = np.zeros([batch, hidden]);
          // jax-js ops consume their arguments: `.ref` for every value used more than once.
          for (const xt of steps) {
            const [ai, af, ag, ao] = np.split(xt.reshape([batch, 4 * hidden]).add(np.matmul(h, p.whh.ref)), 4, 1);
            c = nn.sigmoid(af).mul(c).add(nn.sigmoid(ai).mul(np.tanh(ag)));
            h = nn.sigmoid(ao).mul(np.tanh(c.ref));
          }
          c.dispose();
          p.whh.dispose();
          const logits = np.matmul(h, p.wfc).add(p.bfc);
          return nn.logSoftmax(logits, -1).mul(yb).sum().mul(-1 / batch);
        };
        return sgdTraining(loss, params, [x, y], async (read, l, p) => {
          const [loss0, wih, whh, bih, bhh, wfc, bfc] = await Promise.all([l, p.wih, p.whh, p.bih, p.bhh, p.wfc, p.bfc].map(read));
          const back = (w: Float32Array, rows: number, cols: number) => permuteArray(w, [rows, cols], [1, 0]);
          return concatFlat([loss0, back(wih, nIn, 4 * hidden), back(whh, hidden, 4 * hidden), bih, bhh, back(wfc, hidden, classes), bfc]);
        });
      }
      case 'resnet9': {
        const [batch] = spec.dims;
        const names = resnet9Params();
        const x = put(inputs[0], [batch, 3, 32, 32]);
        const y = put(oneHotRows(inputs[1], 10), [batch, 10]);
        // lax.convGeneralDilated takes PyTorch's NCHW / OIHW layouts as they are; the two Linear
        // weights are kept [in, out] as in jax/flax (transposed on the host, back in output()).
        const isLinearWeight = (name: string) => name === 'model.7.weight' || name === 'model.9.weight';
        type Params = Record<string, JArray>;
        const params: Params = Object.fromEntries(
          names.map(({ name, shape }, i) => [
            name,
            isLinearWeight(name) ? np.array(permuteArray(inputs[2 + i], shape, [1, 0])).reshape([shape[1], shape[0]]) : np.array(inputs[2 + i]).reshape(shape),
          ]),
        );
        const block = (at: string) => RESNET9_BLOCKS.find((b) => b.at === at)!;
        // ConvBN: conv with bias, BatchNorm2d in training mode (batch mean and biased variance over
        // N, H, W, as flax's BatchNorm and PyTorch compute them), ReLU. The running statistics are
        // not part of the compared output, so they are not kept.
        const convBN = (h: JArray, p: Params, at: string) => {
          const { cout, k, stride } = block(at);
          const pad = Math.floor(k / 2);
          const per = (v: JArray) => v.reshape([1, cout, 1, 1]);
          const z = lax.convGeneralDilated(h, p[`model.${at}.conv.weight`], [stride, stride], [[pad, pad], [pad, pad]]).add(per(p[`model.${at}.conv.bias`]));
          const centered = z.ref.sub(np.mean(z, [0, 2, 3], { keepdims: true }));
          const variance = np.mean(centered.ref.mul(centered.ref), [0, 2, 3], { keepdims: true });
          const normed = centered.div(np.sqrt(variance.add(BN_EPS)));
          return nn.relu(normed.mul(per(p[`model.${at}.bn.weight`])).add(per(p[`model.${at}.bn.bias`])));
        };
        const loss = (p: Params, xb: JArray, yb: JArray) => {
          let h = convBN(convBN(xb, p, '0'), p, '1');
          h = convBN(convBN(h.ref, p, '2.fn.0'), p, '2.fn.1').add(h);
          h = convBN(convBN(h, p, '3'), p, '4');
          h = convBN(convBN(h.ref, p, '5.fn.0'), p, '5.fn.1').add(h);
          const fc = nn.relu(np.matmul(h.reshape([batch, 128]), p['model.7.weight']).add(p['model.7.bias']));
          const logits = np.matmul(fc, p['model.9.weight']).add(p['model.9.bias']);
          return nn.logSoftmax(logits, -1).mul(yb).sum().mul(-1 / batch);
        };
        return sgdTraining(loss, params, [x, y], async (read, l, p) => {
          const parts: Float32Array[] = [await read(l)];
          for (const { name, shape } of names) {
            const v = await read(p[name]);
            parts.push(isLinearWeight(name) ? permuteArray(v, [shape[1], shape[0]], [1, 0]) : v);
          }
          return concatFlat(parts);
        });
      }
      case 'lm': {
        const [batch, seq, vocab, emb, hidden] = spec.dims;
        // Word ids as int32; the next words as one-hot rows for the loss.
        const ids = np.array(Int32Array.from(inputs[0]), { dtype: np.int32 });
        owned.push(ids);
        const y = put(oneHotRows(inputs[1], vocab), [seq * batch, vocab]);
        // The embedding table as it is ([vocab, emb], a row per word); the LSTM's and the Linear's
        // weights [in, out] as in jax/flax (transposed on the host, back in output()).
        const tr = (w: Float32Array, rows: number, cols: number) => np.array(permuteArray(w, [rows, cols], [1, 0])).reshape([cols, rows]);
        type Params = { emb: JArray; wih: JArray; whh: JArray; bih: JArray; bhh: JArray; wl: JArray; bl: JArray };
        const params: Params = {
          emb: np.array(inputs[2]).reshape([vocab, emb]),
          wih: tr(inputs[3], 4 * hidden, emb),
          whh: tr(inputs[4], 4 * hidden, hidden),
          bih: np.array(inputs[5]),
          bhh: np.array(inputs[6]),
          wl: tr(inputs[7], vocab, hidden),
          bl: np.array(inputs[8]),
        };
        const loss = (p: Params, idb: JArray, yb: JArray) => {
          // The embedding lookup as one-hot rows times the table: the gather (np.take(p.emb, ids, 0))
          // cannot be used here, because jax-js 0.1.25's jit rejects its gradient, a scatter, when
          // the cotangent comes from a matmul ("jit: routine primitive scatter input is not imm").
          // Same values; it costs a [seq * batch, vocab] x [vocab, emb] matmul each way.
          const e = np.matmul(nn.oneHot(idb, vocab), p.emb);
          // The input projection of all time steps at once; only h @ W_hh stays in the loop (no
          // lax.scan in jax-js 0.1.x: jit unrolls it, as in the LSTM case).
          const xp = np.matmul(e, p.wih).add(p.bih.add(p.bhh)).reshape([seq, batch, 4 * hidden]);
          const steps = np.split(xp, seq, 0);
          let h = np.zeros([batch, hidden]);
          let c = np.zeros([batch, hidden]);
          const outs: JArray[] = [];
          for (const xt of steps) {
            const [ai, af, ag, ao] = np.split(xt.reshape([batch, 4 * hidden]).add(np.matmul(h, p.whh.ref)), 4, 1);
            c = nn.sigmoid(af).mul(c).add(nn.sigmoid(ai).mul(np.tanh(ag)));
            h = nn.sigmoid(ao).mul(np.tanh(c.ref));
            outs.push(h.ref);
          }
          c.dispose();
          h.dispose();
          p.whh.dispose();
          // Linear to the vocabulary on every position, mean cross-entropy against the next words.
          const logits = np.matmul(np.concatenate(outs, 0), p.wl).add(p.bl);
          return nn.logSoftmax(logits, -1).mul(yb).sum().mul(-1 / (seq * batch));
        };
        return sgdTraining(loss, params, [ids, y], async (read, l, p) => {
          const [loss0, e, wih, whh, bih, bhh, wl, bl] = await Promise.all([l, p.emb, p.wih, p.whh, p.bih, p.bhh, p.wl, p.bl].map(read));
          const back = (w: Float32Array, rows: number, cols: number) => permuteArray(w, [rows, cols], [1, 0]);
          return concatFlat([loss0, e, back(wih, emb, 4 * hidden), back(whh, hidden, 4 * hidden), bih, bhh, back(wl, hidden, vocab), bl]);
        },
          'embedding as a one-hot matmul: jax-js 0.1.25 jit rejects the gradient of np.take after a matmul');
      }
      default:
        return spec.kind satisfies never;
    }
  }
}
