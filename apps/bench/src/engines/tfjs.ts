/** TensorFlow.js (tfjs-core 4.x) on its cpu, wasm and webgpu backends. Never tfjs-node. */
import { createRequire } from 'node:module';
import path from 'node:path';
import { BN_EPS, CONVNET_KERNEL, MLP_LR, RESNET9_BLOCKS, resnet9Params, type CaseSpec } from '../cases';
import { concatFlat } from '../reference';
import { adapterName, installNodeWebGpu } from './gpu';
import { linearFromHwcIn, linearToHwcIn, oneHotRows, permuteArray } from './layouts';
import { NotAvailableError, type Engine, type EngineInfo, type EngineOptions, type Prepared, type Target } from './types';

type Tf = typeof import('@tensorflow/tfjs-core');
type Tensor = import('@tensorflow/tfjs-core').Tensor;
type Scalar = import('@tensorflow/tfjs-core').Scalar;
type Variable = import('@tensorflow/tfjs-core').Variable;

export class TfjsEngine implements Engine {
  private tf!: Tf;
  private gradientsMissing: string | undefined;
  constructor(
    readonly target: Target,
    private readonly backend: 'cpu' | 'wasm' | 'webgpu',
  ) {}

  async init(_options: EngineOptions): Promise<EngineInfo> {
    let details = '';
    if (this.backend === 'webgpu') {
      await installNodeWebGpu();
      details = await adapterName();
    }
    this.tf = await import('@tensorflow/tfjs-core');
    // The core bundle registers no gradients by itself (the `@tensorflow/tfjs` umbrella does this).
    // They ship only as extension-less ES modules: the build bundles them (tsup.config.ts); run from
    // source (vitest) they may fail to load, which only the training case needs.
    try {
      await import('@tensorflow/tfjs-core/dist/register_all_gradients');
    } catch (e) {
      this.gradientsMissing = (e as Error).message.split('\n')[0];
    }
    const tf = this.tf;
    // Production mode, as tfjs recommends for deployed code: it skips debug-only argument checks.
    // (Not IS_TEST, which would add a memory-leak check to every kernel.)
    tf.enableProdMode();
    let threads = 1;
    switch (this.backend) {
      case 'cpu':
        await import('@tensorflow/tfjs-backend-cpu');
        break;
      case 'wasm': {
        const wasm = await import('@tensorflow/tfjs-backend-wasm');
        // The wasm binaries ship in the package's dist folder; point the loader at them on disk.
        const require = createRequire(import.meta.url);
        const dist = path.join(path.dirname(require.resolve('@tensorflow/tfjs-backend-wasm/package.json')), 'dist');
        wasm.setWasmPaths({
          'tfjs-backend-wasm.wasm': path.join(dist, 'tfjs-backend-wasm.wasm'),
          'tfjs-backend-wasm-simd.wasm': path.join(dist, 'tfjs-backend-wasm-simd.wasm'),
          'tfjs-backend-wasm-threaded-simd.wasm': path.join(dist, 'tfjs-backend-wasm-threaded-simd.wasm'),
        });
        break;
      }
      case 'webgpu':
        await import('@tensorflow/tfjs-backend-webgpu');
        break;
      default:
        return this.backend satisfies never;
    }
    const ok = await tf.setBackend(this.backend).catch(() => false);
    if (!ok) throw new NotAvailableError(`tfjs backend '${this.backend}' failed to initialise`);
    await tf.ready();
    if (this.backend === 'wasm') {
      const wasm = await import('@tensorflow/tfjs-backend-wasm');
      const simd = await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT');
      // tfjs-backend-wasm disables its threaded build under Node (tfjs issue #3830): one thread.
      threads = wasm.getThreadsCount();
      details = `simd=${simd}, threads from tfjs=${threads}`;
    }
    return { threads, details: `tfjs-core ${tf.version_core}${details ? `, ${details}` : ''}` };
  }

  /**
   * tfjs has one global active backend. Each target has its own process in a real run, but the
   * smoke test drives several in one: switch back before computing.
   */
  private async activate(): Promise<void> {
    if (this.tf.getBackend() !== this.backend) await this.tf.setBackend(this.backend);
  }

  /**
   * Wait for the queued work: cpu and wasm kernels run synchronously; webgpu defers submission.
   * Flush it the way tfjs-backend-webgpu does itself before every submit (see its read paths):
   * end the open compute pass first, and submit only when an encoder exists. Submitting with the
   * pass still open makes Dawn reject the whole command buffer ("Command buffer recording ended
   * before [ComputePassEncoder] was ended"), which silently dropped the step's results; with no
   * encoder (a step whose work was already flushed by a read) submitQueue() throws on null.
   */
  private async drain(): Promise<void> {
    if (this.backend !== 'webgpu') return;
    const b = this.tf.backend() as unknown as {
      submitQueue?(): void;
      endComputePassEncoder?(): void;
      commandEncoder?: GPUCommandEncoder | null;
      device?: GPUDevice;
    };
    if (!b.submitQueue || !b.endComputePassEncoder || !b.device) return;
    if (b.commandEncoder) {
      b.endComputePassEncoder();
      b.submitQueue();
    }
    await b.device.queue.onSubmittedWorkDone();
  }

  async prepare(spec: CaseSpec, inputs: Float32Array[]): Promise<Prepared> {
    const tf = this.tf;
    await this.activate();
    const owned: Tensor[] = [];
    let last: Tensor | undefined;
    const keepLast = (t: Tensor) => {
      last?.dispose();
      last = t;
    };
    const base = {
      output: async () => {
        if (!last) throw new Error(`${this.target} ${spec.id}: output() before step()`);
        return new Float32Array(await last.data());
      },
      dispose: () => {
        last?.dispose();
        for (const t of owned) t.dispose();
      },
    };
    /** A training case's Prepared: tf.train.sgd minimizing `lossFn` over `vars`; output() gets [loss, ...vars] read. */
    const sgdTraining = (lossFn: () => Scalar, vars: Variable[], output: (values: Float32Array[]) => Float32Array): Prepared => {
      const opt = tf.train.sgd(MLP_LR);
      return {
        step: async () => {
          await this.activate();
          keepLast(opt.minimize(lossFn, true, vars)!);
          await this.drain();
        },
        output: async () => {
          if (!last) throw new Error(`${this.target} ${spec.id}: output() before step()`);
          return output(await Promise.all([last, ...vars].map(async (t) => new Float32Array(await t.data()))));
        },
        dispose: () => {
          base.dispose();
          opt.dispose();
        },
      };
    };
    switch (spec.kind) {
      case 'matmul': {
        const [n] = spec.dims;
        const a = tf.tensor2d(inputs[0], [n, n]);
        const b = tf.tensor2d(inputs[1], [n, n]);
        owned.push(a, b);
        return { ...base, step: async () => { await this.activate(); keepLast(tf.matMul(a, b)); await this.drain(); } };
      }
      case 'ewise': {
        const a = tf.tensor1d(inputs[0]);
        const b = tf.tensor1d(inputs[1]);
        owned.push(a, b);
        return { ...base, step: async () => { await this.activate(); keepLast(tf.add(a, b)); await this.drain(); } };
      }
      case 'reduce': {
        const a = tf.tensor1d(inputs[0]);
        owned.push(a);
        return { ...base, step: async () => { await this.activate(); keepLast(tf.sum(a)); await this.drain(); } };
      }
      case 'mlp': {
        if (this.gradientsMissing) throw new NotAvailableError(`tfjs gradients could not be loaded here: ${this.gradientsMissing}`);
        const [batch, nIn, nHidden, nClasses] = spec.dims;
        const x = tf.tensor2d(inputs[0], [batch, nIn]);
        const y = tf.tensor2d(inputs[1], [batch, nClasses]);
        const w1 = tf.variable(tf.tensor2d(inputs[2], [nIn, nHidden]));
        const b1 = tf.variable(tf.tensor1d(inputs[3]));
        const w2 = tf.variable(tf.tensor2d(inputs[4], [nHidden, nClasses]));
        const b2 = tf.variable(tf.tensor1d(inputs[5]));
        owned.push(x, y, w1, b1, w2, b2);
        const lossFn = () =>
          tf.tidy(() => {
            const h = tf.relu(tf.add(tf.matMul(x, w1), b1));
            const logits = tf.add(tf.matMul(h, w2), b2);
            // Mean over the batch of softmax cross-entropy, like the reference and torch's default.
            return tf.losses.softmaxCrossEntropy(y, logits, undefined, undefined, tf.Reduction.MEAN) as Scalar;
          });
        return sgdTraining(lossFn, [w1, b1, w2, b2], concatFlat);
      }
      case 'convnet': {
        if (this.gradientsMissing) throw new NotAvailableError(`tfjs gradients could not be loaded here: ${this.gradientsMissing}`);
        // The backward pass needs these kernels; tfjs-backend-wasm 4.22 ships no
        // Conv2DBackpropFilter, so it cannot train a conv layer (and tfjs does not fall back to
        // another backend). Say so instead of failing halfway through the step.
        const lacking = ['Conv2DBackpropFilter', 'Conv2DBackpropInput', 'MaxPoolGrad'].filter((kn) => !tf.getKernel(kn, this.backend));
        if (lacking.length) throw new NotAvailableError(`tfjs-backend-${this.backend} ${tf.version_core} has no ${lacking.join(', ')} kernel, so it cannot train a Conv2D`);
        const [batch, channels, size, c1, c2, classes] = spec.dims;
        const k = CONVNET_KERNEL;
        const s4 = size / 4;
        // tfjs's layouts (see layouts.ts): NHWC images, conv filters [kh, kw, in, out], the dense
        // kernel [in, out] over an NHWC flatten.
        const hwio = (w: Float32Array, o: number, i: number) => permuteArray(w, [o, i, k, k], [2, 3, 1, 0]);
        const x = tf.tensor4d(permuteArray(inputs[0], [batch, channels, size, size], [0, 2, 3, 1]), [batch, size, size, channels]);
        const oneHot = oneHotRows(inputs[1], classes);
        const y = tf.tensor2d(oneHot, [batch, classes]);
        const w1 = tf.variable(tf.tensor4d(hwio(inputs[2], c1, channels), [k, k, channels, c1]));
        const b1 = tf.variable(tf.tensor1d(inputs[3]));
        const w2 = tf.variable(tf.tensor4d(hwio(inputs[4], c2, c1), [k, k, c1, c2]));
        const b2 = tf.variable(tf.tensor1d(inputs[5]));
        const w3 = tf.variable(tf.tensor2d(linearToHwcIn(inputs[6], classes, c2, s4, s4), [s4 * s4 * c2, classes]));
        const b3 = tf.variable(tf.tensor1d(inputs[7]));
        const vars = [w1, b1, w2, b2, w3, b3];
        owned.push(x, y, ...vars);
        // The fused conv/matmul ops (bias and ReLU folded in) are what tfjs-layers' Conv2D and Dense
        // call, so this is tfjs's fast path. 'same' padding of a 3x3 stride-1 kernel is 1 on every side.
        const lossFn = () =>
          tf.tidy(() => {
            const h1 = tf.maxPool(tf.fused.conv2d({ x, filter: w1, strides: 1, pad: 'same', bias: b1, activation: 'relu' }), 2, 2, 'valid');
            const h2 = tf.maxPool(tf.fused.conv2d({ x: h1, filter: w2, strides: 1, pad: 'same', bias: b2, activation: 'relu' }), 2, 2, 'valid');
            const logits = tf.fused.matMul({ a: tf.reshape(h2, [batch, s4 * s4 * c2]), b: w3, bias: b3 });
            return tf.losses.softmaxCrossEntropy(y, logits, undefined, undefined, tf.Reduction.MEAN) as Scalar;
          });
        return sgdTraining(lossFn, vars, ([l, v1, vb1, v2, vb2, v3, vb3]) => {
          const oihw = (w: Float32Array, o: number, i: number) => permuteArray(w, [k, k, i, o], [3, 2, 0, 1]);
          return concatFlat([l, oihw(v1, c1, channels), vb1, oihw(v2, c2, c1), vb2, linearFromHwcIn(v3, classes, c2, s4, s4), vb3]);
        });
      }
      case 'lstm': {
        if (this.gradientsMissing) throw new NotAvailableError(`tfjs gradients could not be loaded here: ${this.gradientsMissing}`);
        const [batch, seq, nIn, hidden, classes] = spec.dims;
        // tfjs-layers is not a dependency, so the cell is written with tf ops, the way
        // tfjs-layers' LSTMCell computes it (one matmul per step for the four gates, then a split),
        // in PyTorch's gate order i, f, g, o. The weights are kept in tfjs-layers' [in, out]
        // layout (transposed on the host, back in output()), so every matmul is a plain one.
        const x = tf.tensor3d(inputs[0], [seq, batch, nIn]);
        const oneHot = oneHotRows(inputs[1], classes);
        const y = tf.tensor2d(oneHot, [batch, classes]);
        const wih = tf.variable(tf.tensor2d(permuteArray(inputs[2], [4 * hidden, nIn], [1, 0]), [nIn, 4 * hidden]));
        const whh = tf.variable(tf.tensor2d(permuteArray(inputs[3], [4 * hidden, hidden], [1, 0]), [hidden, 4 * hidden]));
        const bih = tf.variable(tf.tensor1d(inputs[4]));
        const bhh = tf.variable(tf.tensor1d(inputs[5]));
        const wfc = tf.variable(tf.tensor2d(permuteArray(inputs[6], [classes, hidden], [1, 0]), [hidden, classes]));
        const bfc = tf.variable(tf.tensor1d(inputs[7]));
        const vars = [wih, whh, bih, bhh, wfc, bfc];
        owned.push(x, y, ...vars);
        const lossFn = () =>
          tf.tidy(() => {
            // The input projection of every time step at once (one big matmul), as tfjs-layers and
            // PyTorch do; only the recurrent matmul stays inside the loop.
            const xp = tf.add(tf.matMul(tf.reshape(x, [seq * batch, nIn]), wih), tf.add(bih, bhh));
            const steps = tf.unstack(tf.reshape(xp, [seq, batch, 4 * hidden]));
            let h: Tensor = tf.zeros([batch, hidden]);
            let c: Tensor = tf.zeros([batch, hidden]);
            for (const xt of steps) {
              const [ai, af, ag, ao] = tf.split(tf.add(xt, tf.matMul(h, whh)), 4, 1);
              c = tf.add(tf.mul(tf.sigmoid(af), c), tf.mul(tf.sigmoid(ai), tf.tanh(ag)));
              h = tf.mul(tf.sigmoid(ao), tf.tanh(c));
            }
            const logits = tf.add(tf.matMul(h, wfc), bfc);
            return tf.losses.softmaxCrossEntropy(y, logits, undefined, undefined, tf.Reduction.MEAN) as Scalar;
          });
        return sgdTraining(lossFn, vars, ([l, vih, vhh, vbih, vbhh, vfc, vbfc]) => {
          const back = (w: Float32Array, rows: number, cols: number) => permuteArray(w, [rows, cols], [1, 0]);
          return concatFlat([l, back(vih, nIn, 4 * hidden), back(vhh, hidden, 4 * hidden), vbih, vbhh, back(vfc, hidden, classes), vbfc]);
        });
      }
      case 'resnet9': {
        if (this.gradientsMissing) throw new NotAvailableError(`tfjs gradients could not be loaded here: ${this.gradientsMissing}`);
        const lacking = ['Conv2DBackpropFilter', 'Conv2DBackpropInput'].filter((kn) => !tf.getKernel(kn, this.backend));
        if (lacking.length) throw new NotAvailableError(`tfjs-backend-${this.backend} ${tf.version_core} has no ${lacking.join(', ')} kernel, so it cannot train a Conv2D`);
        const [batch] = spec.dims;
        const names = resnet9Params();
        // tfjs's layouts, as in the ConvNet case: NHWC images, filters [kh, kw, in, out], dense
        // kernels [in, out] (the flatten is of a 1 x 1 map, so NHWC and NCHW orders agree).
        const x = tf.tensor4d(permuteArray(inputs[0], [batch, 3, 32, 32], [0, 2, 3, 1]), [batch, 32, 32, 3]);
        const y = tf.tensor2d(oneHotRows(inputs[1], 10), [batch, 10]);
        const toTf = (v: Float32Array, shape: number[]) =>
          shape.length === 4 ? tf.tensor4d(permuteArray(v, shape, [2, 3, 1, 0]), [shape[2], shape[3], shape[1], shape[0]])
          : shape.length === 2 ? tf.tensor2d(permuteArray(v, shape, [1, 0]), [shape[1], shape[0]])
          : tf.tensor1d(v);
        const vars = names.map(({ shape }, i) => tf.variable(toTf(inputs[2 + i], shape)));
        const p = Object.fromEntries(names.map(({ name }, i) => [name, vars[i]]));
        owned.push(x, y, ...vars);
        // ConvBN the way tfjs-layers computes Conv2D + BatchNormalization in training: the conv
        // with its bias, tf.moments over N, H, W (biased variance), tf.batchNorm, ReLU. PyTorch pads
        // k // 2 on every side, which tfjs takes as explicit padding.
        const convBN = (h: Tensor, at: string): Tensor => {
          const { k, stride } = RESNET9_BLOCKS.find((b) => b.at === at)!;
          const pad = Math.floor(k / 2);
          const z = tf.add(tf.conv2d(h as import('@tensorflow/tfjs-core').Tensor4D, p[`model.${at}.conv.weight`] as import('@tensorflow/tfjs-core').Tensor4D, stride, [[0, 0], [pad, pad], [pad, pad], [0, 0]]), p[`model.${at}.conv.bias`]);
          const { mean, variance } = tf.moments(z, [0, 1, 2]);
          return tf.relu(tf.batchNorm(z, mean, variance, p[`model.${at}.bn.bias`], p[`model.${at}.bn.weight`], BN_EPS));
        };
        const lossFn = () =>
          tf.tidy(() => {
            let h = convBN(convBN(x, '0'), '1');
            h = tf.add(convBN(convBN(h, '2.fn.0'), '2.fn.1'), h);
            h = convBN(convBN(h, '3'), '4');
            h = tf.add(convBN(convBN(h, '5.fn.0'), '5.fn.1'), h);
            const fc = tf.relu(tf.add(tf.matMul(tf.reshape(h, [batch, 128]), p['model.7.weight']), p['model.7.bias']));
            const logits = tf.add(tf.matMul(fc, p['model.9.weight']), p['model.9.bias']);
            return tf.losses.softmaxCrossEntropy(y, logits, undefined, undefined, tf.Reduction.MEAN) as Scalar;
          });
        return sgdTraining(lossFn, vars, ([loss, ...values]) => {
          const parts: Float32Array[] = [loss];
          for (const [i, { shape }] of names.entries()) {
            const v = values[i];
            parts.push(
              shape.length === 4 ? permuteArray(v, [shape[2], shape[3], shape[1], shape[0]], [3, 2, 0, 1])
              : shape.length === 2 ? permuteArray(v, [shape[1], shape[0]], [1, 0])
              : v,
            );
          }
          return concatFlat(parts);
        });
      }
      case 'lm': {
        if (this.gradientsMissing) throw new NotAvailableError(`tfjs gradients could not be loaded here: ${this.gradientsMissing}`);
        // The gradient of tf.gather (the embedding lookup) is an UnsortedSegmentSum.
        const lacking = ['GatherV2', 'UnsortedSegmentSum'].filter((kn) => !tf.getKernel(kn, this.backend));
        if (lacking.length) throw new NotAvailableError(`tfjs-backend-${this.backend} ${tf.version_core} has no ${lacking.join(', ')} kernel, which an embedding's gradient needs`);
        const [batch, seq, vocab, emb, hidden] = spec.dims;
        const ids = tf.tensor1d(Int32Array.from(inputs[0]), 'int32');
        const y = tf.tensor2d(oneHotRows(inputs[1], vocab), [seq * batch, vocab]);
        // As in the LSTM case: the cell in tf ops the way tfjs-layers' LSTMCell computes it, the
        // weights [in, out] (transposed on the host, back in output()); the embedding table as it is.
        const tr = (w: Float32Array, rows: number, cols: number) => tf.tensor2d(permuteArray(w, [rows, cols], [1, 0]), [cols, rows]);
        const table = tf.variable(tf.tensor2d(inputs[2], [vocab, emb]));
        const wih = tf.variable(tr(inputs[3], 4 * hidden, emb));
        const whh = tf.variable(tr(inputs[4], 4 * hidden, hidden));
        const bih = tf.variable(tf.tensor1d(inputs[5]));
        const bhh = tf.variable(tf.tensor1d(inputs[6]));
        const wl = tf.variable(tr(inputs[7], vocab, hidden));
        const bl = tf.variable(tf.tensor1d(inputs[8]));
        const vars = [table, wih, whh, bih, bhh, wl, bl];
        owned.push(ids, y, ...vars);
        const lossFn = () =>
          tf.tidy(() => {
            const xp = tf.add(tf.matMul(tf.gather(table, ids), wih), tf.add(bih, bhh));
            const steps = tf.unstack(tf.reshape(xp, [seq, batch, 4 * hidden]));
            let h: Tensor = tf.zeros([batch, hidden]);
            let c: Tensor = tf.zeros([batch, hidden]);
            const outs: Tensor[] = [];
            for (const xt of steps) {
              const [ai, af, ag, ao] = tf.split(tf.add(xt, tf.matMul(h, whh)), 4, 1);
              c = tf.add(tf.mul(tf.sigmoid(af), c), tf.mul(tf.sigmoid(ai), tf.tanh(ag)));
              h = tf.mul(tf.sigmoid(ao), tf.tanh(c));
              outs.push(h);
            }
            const logits = tf.add(tf.matMul(tf.concat(outs, 0), wl), bl);
            return tf.losses.softmaxCrossEntropy(y, logits, undefined, undefined, tf.Reduction.MEAN) as Scalar;
          });
        return sgdTraining(lossFn, vars, ([l, e, vih, vhh, vbih, vbhh, vl, vbl]) => {
          const back = (w: Float32Array, rows: number, cols: number) => permuteArray(w, [rows, cols], [1, 0]);
          return concatFlat([l, e, back(vih, emb, 4 * hidden), back(vhh, hidden, 4 * hidden), vbih, vbhh, back(vl, hidden, vocab), vbl]);
        });
      }
      default:
        return spec.kind satisfies never;
    }
  }

  close(): void {
    this.tf?.disposeVariables();
  }
}
