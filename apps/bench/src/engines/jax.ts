/**
 * jax-js on its wasm and webgpu devices. Every measured function is jit-compiled (that is how
 * jax-js is meant to be used for speed); compilation happens in the untimed check step.
 * jax-js arrays are reference counted and functions consume their arguments: `.ref` keeps ours.
 */
import { MLP_LR, type CaseSpec } from '../cases';
import { concatFlat } from '../reference';
import { adapterName, installNodeWebGpu } from './gpu';
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
    const { numpy: np, jit, nn, valueAndGrad, tree } = this.jax;
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
        let params: Params = {
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
        // The whole step (forward, backward, SGD update) as one jit-compiled function.
        const step = jit((p: Params, xb: JArray, yb: JArray) => {
          const [l, g] = valueAndGrad(loss)(tree.ref(p), xb, yb);
          const next = tree.map((w: JArray, dw: JArray) => w.sub(dw.mul(MLP_LR)), p, g) as Params;
          return [l, next] as [JArray, Params];
        });
        let lossValue: JArray | undefined;
        return {
          step: async () => {
            const [l, next] = step(params, x.ref, y.ref);
            params = next;
            await this.jax.blockUntilReady([l, params]);
            lossValue?.dispose();
            lossValue = l;
          },
          output: async () => {
            const parts = [lossValue!, params.w1, params.b1, params.w2, params.b2];
            return concatFlat(await Promise.all(parts.map(async (a) => new Float32Array(await a.ref.data()))));
          },
          dispose: () => {
            lossValue?.dispose();
            tree.dispose(params);
            base.dispose();
          },
        };
      }
      case 'convnet':
      case 'lstm':
        throw new NotAvailableError(`${spec.kind} is not benchmarked until needle has the layers`);
      default:
        return spec.kind satisfies never;
    }
  }
}
