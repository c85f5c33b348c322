/**
 * needle itself, on each of its backends: this checkout's build (needle:*), or the built packages of
 * another checkout (base:*, --baseline DIR), which then computes every array of the step.
 */
import { readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import type { Backend, NDArray } from '@needle/ndarray';
import { createCpuBackend } from '@needle/ndarray-cpu';
import type { CaseSpec } from '../cases';
import { installNodeWebGpu } from './gpu';
import { NotAvailableError, parseTarget, type Engine, type EngineInfo, type EngineOptions, type Prepared, type Target } from './types';
import { importWorkspacePackage } from './workspace';
import { prepareNeedleConvnet } from './needle-convnet';
import { prepareNeedleLstm } from './needle-lstm';
import { prepareNeedleLm, prepareNeedleResnet9 } from './needle-models';
import { prepareNeedleMlp } from './needle-mlp';
import { thisCheckout, type NeedleContext } from './needle-step';
import { hasKernelStats } from '../kernel-stats';

type NeedleBackendName = 'cpu' | 'wasm' | 'webgpu';

export class NeedleEngine implements Engine {
  private backend!: Backend;
  private ctx!: NeedleContext;
  constructor(
    readonly target: Target,
    private readonly backendName: NeedleBackendName,
  ) {}

  async init(options: EngineOptions): Promise<EngineInfo> {
    const root = parseTarget(this.target).framework === 'base' ? options.baseline : undefined;
    if (parseTarget(this.target).framework === 'base' && !root) throw new NotAvailableError('base:* targets need --baseline DIR (a built checkout of needle)');
    let info: EngineInfo;
    switch (this.backendName) {
      case 'cpu':
        this.backend = root ? await createFromPackage('ndarray-cpu', { name: 'bench-cpu' }, root) : createCpuBackend({ name: 'bench-cpu' });
        // Plain JavaScript loops on the calling thread.
        info = { threads: 1, details: 'reference backend, plain JS loops' };
        break;
      case 'wasm':
        this.backend = await createFromPackage('ndarray-wasm', { threads: options.threads }, root);
        info = { threads: reportedThreads(this.backend) ?? options.threads, details: describe(this.backend) };
        break;
      case 'webgpu':
        this.backend = await createFromPackage('ndarray-webgpu', { gpu: await installNodeWebGpu() }, root);
        info = { threads: 1, details: describe(this.backend) };
        break;
      default:
        return this.backendName satisfies never;
    }
    if (root) {
      let nd: NeedleContext['nd'];
      try {
        nd = (await importWorkspacePackage('ndarray', root)) as unknown as NeedleContext['nd'];
      } catch (e) {
        throw new NotAvailableError((e as Error).message);
      }
      this.ctx = { backend: this.backend, nd, root };
      info.details += `, the build of ${root}${commitOf(root)}`;
    } else {
      this.ctx = thisCheckout(this.backend);
    }
    if (!hasKernelStats(this.backend)) info.details += ', no backend.stats()/resetStats() in this build (kernels counted by wrapping its kernel methods)';
    return info;
  }

  async prepare(spec: CaseSpec, inputs: Float32Array[]): Promise<Prepared> {
    return { ...(await this.prepareOn(spec, inputs)), backend: this.backend };
  }

  private async prepareOn(spec: CaseSpec, inputs: Float32Array[]): Promise<Prepared> {
    const { backend, nd } = this.ctx;
    const owned: NDArray[] = [];
    const put = (data: Float32Array, shape: number[]) => {
      const a = nd.NDArray.fromData(data, shape, backend);
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
        return prepareNeedleMlp(spec, inputs, this.ctx);
      case 'convnet':
        return prepareNeedleConvnet(spec, inputs, this.ctx);
      case 'lstm':
        return prepareNeedleLstm(spec, inputs, this.ctx);
      case 'resnet9':
        return prepareNeedleResnet9(spec, inputs, this.ctx);
      case 'lm':
        return prepareNeedleLm(spec, inputs, this.ctx);
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
async function createFromPackage(pkg: string, options: Record<string, unknown>, root?: string): Promise<Backend> {
  let mod: Record<string, unknown>;
  try {
    mod = await importWorkspacePackage(pkg, root);
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

/** ' at <commit>' of a git checkout (read from its files, no git process), or ''. */
function commitOf(root: string): string {
  try {
    let gitDir = path.join(root, '.git');
    // A worktree's .git is a file pointing at its git dir.
    if (statSync(gitDir).isFile()) gitDir = readFileSync(gitDir, 'utf8').replace(/^gitdir:\s*/, '').trim();
    const head = readFileSync(path.join(gitDir, 'HEAD'), 'utf8').trim();
    const ref = /^ref: (.+)$/.exec(head)?.[1];
    const sha = ref ? readFileSync(path.join(gitDir, ref), 'utf8').trim() : head;
    return ` at ${sha.slice(0, 7)}`;
  } catch {
    return '';
  }
}

function describe(backend: Backend): string {
  // The wasm backend says which build of its kernels runs (relaxed SIMD or the baseline).
  const simd = (backend as unknown as { simd?: unknown }).simd;
  return `backend '${backend.name}'${typeof simd === 'string' ? `, ${simd} SIMD kernels` : ''}`;
}
