/** needle itself, on each of its backends. */
import { NDArray, type Backend } from '@needle/ndarray';
import { createCpuBackend } from '@needle/ndarray-cpu';
import type { CaseSpec } from '../cases';
import { installNodeWebGpu } from './gpu';
import { NotAvailableError, type Engine, type EngineInfo, type EngineOptions, type Prepared, type Target } from './types';
import { importWorkspacePackage } from './workspace';
import { prepareNeedleConvnet } from './needle-convnet';
import { prepareNeedleLstm } from './needle-lstm';
import { prepareNeedleLm, prepareNeedleResnet9 } from './needle-models';
import { prepareNeedleMlp } from './needle-mlp';

type NeedleBackendName = 'cpu' | 'wasm' | 'webgpu';

export class NeedleEngine implements Engine {
  private backend!: Backend;
  constructor(
    readonly target: Target,
    private readonly backendName: NeedleBackendName,
  ) {}

  async init(options: EngineOptions): Promise<EngineInfo> {
    switch (this.backendName) {
      case 'cpu':
        this.backend = createCpuBackend({ name: 'bench-cpu' });
        // Plain JavaScript loops on the calling thread.
        return { threads: 1, details: 'reference backend, plain JS loops' };
      case 'wasm':
        this.backend = await createFromPackage('ndarray-wasm', { threads: options.threads });
        return { threads: reportedThreads(this.backend) ?? options.threads, details: describe(this.backend) };
      case 'webgpu':
        this.backend = await createFromPackage('ndarray-webgpu', { gpu: await installNodeWebGpu() });
        return { threads: 1, details: describe(this.backend) };
      default:
        return this.backendName satisfies never;
    }
  }

  async prepare(spec: CaseSpec, inputs: Float32Array[]): Promise<Prepared> {
    return { ...(await this.prepareOn(spec, inputs)), backend: this.backend };
  }

  private async prepareOn(spec: CaseSpec, inputs: Float32Array[]): Promise<Prepared> {
    const backend = this.backend;
    const owned: NDArray[] = [];
    const put = (data: Float32Array, shape: number[]) => {
      const a = NDArray.fromData(data, shape, backend);
      owned.push(a);
      return a;
    };
    let last: NDArray | undefined;
    const keepLast = async (a: NDArray) => {
      await backend.sync?.();
      last?.dispose();
      last = a;
    };
    const base = {
      output: async () => {
        if (!last) throw new Error(`${this.target} ${spec.id}: output() before step()`);
        return last.toArray();
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
        return { ...base, step: () => keepLast(a.matmul(b)) };
      }
      case 'ewise': {
        const a = put(inputs[0], [spec.dims[0]]);
        const b = put(inputs[1], [spec.dims[0]]);
        return { ...base, step: () => keepLast(a.add(b)) };
      }
      case 'reduce': {
        const a = put(inputs[0], [spec.dims[0]]);
        return { ...base, step: () => keepLast(a.sum()) };
      }
      case 'mlp':
        return prepareNeedleMlp(spec, inputs, backend);
      case 'convnet':
        return prepareNeedleConvnet(spec, inputs, backend);
      case 'lstm':
        return prepareNeedleLstm(spec, inputs, backend);
      case 'resnet9':
        return prepareNeedleResnet9(spec, inputs, backend);
      case 'lm':
        return prepareNeedleLm(spec, inputs, backend);
      default:
        return spec.kind satisfies never;
    }
  }

  close(): void {
    this.backend?.destroy?.();
  }
}

type Factory = (options?: Record<string, unknown>) => Backend | Promise<Backend>;

/**
 * Create a backend from a workspace package through its `create...Backend` factory, whatever its
 * exact name; NotAvailableError when the package has not landed or fails to start.
 */
async function createFromPackage(pkg: string, options: Record<string, unknown>): Promise<Backend> {
  let mod: Record<string, unknown>;
  try {
    mod = await importWorkspacePackage(pkg);
  } catch (e) {
    throw new NotAvailableError((e as Error).message);
  }
  const factoryName = Object.keys(mod).find((k) => /^create\w*Backend$/.test(k) && typeof mod[k] === 'function');
  if (!factoryName) throw new NotAvailableError(`@needle/${pkg} exports no create...Backend factory (exports: ${Object.keys(mod).join(', ')})`);
  try {
    return await (mod[factoryName] as Factory)(options);
  } catch (e) {
    throw new NotAvailableError(`@needle/${pkg} ${factoryName}() failed: ${(e as Error).message}`);
  }
}

function reportedThreads(backend: Backend): number | undefined {
  const b = backend as unknown as { threads?: unknown; numThreads?: unknown };
  const t = b.threads ?? b.numThreads;
  return typeof t === 'number' ? t : undefined;
}

function describe(backend: Backend): string {
  return `backend '${backend.name}'`;
}
