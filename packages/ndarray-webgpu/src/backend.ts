import { defineProgram, instrumentBackend, PROGRAM_REDUCE_OPS } from '@needle/ndarray';
import type {
  Backend,
  BackendStats,
  BinaryOp,
  DeviceBuffer,
  ElementwiseProgram,
  MatmulEpilogue,
  MatmulSpec,
  MemoryInfo,
  OperandLayout,
  ProgramLayouts,
  ProgramReduceOp,
  ReduceOp,
  StridedLayout,
  UnaryOp,
} from '@needle/ndarray';
import { BufferUsage, MapMode, ShaderStage, TextureUsage } from './gpu-constants';
import { elementwiseKernel, type ElementwiseInput } from './kernels/elementwise';
import { f32Bits, grid2d, mirrorShape, PARAM_WORDS, type KernelSource, type MirrorShape } from './kernels/kernel';
import { coalesce, MAX_DIMS, STRIDED_ROW_WORD, stridedKernel, stridedParams, rowsApplies, rowsKernel, rowsParams, transposeApplies, transposeKernel, transposeParams, type StridedMode } from './kernels/layout';
import { epilogueModes, MAX_EPILOGUE_INPUTS, matmulGrid, matmulKernel, matmulParams, matmulRowsApplies, matmulRowsGrid, matmulRowsKernel, matmulSmallKApplies, matmulSmallKGrid, matmulSmallKKernel, matmulVariant, type MatmulTile } from './kernels/matmul';
import { gatherRowsKernel, LOOKUP_WORDS, scatterAddRowsKernel } from './kernels/lookup';
import { MAX_PROGRAM_MIRRORS, programKernel, programLayoutParams, programStrides, programVec4, PROGRAM_MIRROR_SHIFT_WORD, PROGRAM_SCALAR_WORD } from './kernels/program';
import { reduceColumnsApplies, reduceColumnsKernel, reduceKernel, reduceProgramKernel, reduceStrategy4, REDUCE_PROGRAM_LAYOUT_WORDS } from './kernels/reduce';
import { binaryExpr, unaryExpr } from './kernels/wgsl';
import { BufferPool, sizeClass, type PooledBuffer } from './pool';

/** A buffer handle of the WebGPU backend: a view of `size` elements onto a pooled GPUBuffer. */
export class WebGPUBuffer implements DeviceBuffer {
  /** @internal */
  freed = false;
  constructor(
    readonly size: number,
    /** @internal */
    readonly pooled: PooledBuffer,
  ) {}
}

/** What the backend negotiated with the device, for users and tests. */
export interface WebGPULimits {
  /** Largest buffer a kernel can bind, in bytes (caps `alloc`). */
  maxBufferBytes: number;
  /** Workgroups per grid dimension; larger launches fold into a second dimension. */
  maxWorkgroupsPerDimension: number;
  /** Invocations per workgroup used by the 1-D kernels. */
  workgroupSize: number;
}

export interface WebGPUBackendInit {
  device: GPUDevice;
  /**
   * The GPU object the device came from. Held for the backend's lifetime: in Node, a collected
   * `webgpu` instance tears down Dawn under a live device (a crash in its event processing).
   */
  gpu?: GPU;
  /** Destroy the device in `destroy()` (true when the backend requested it itself). */
  ownsDevice: boolean;
  name?: string;
  /** Idle pooled bytes kept for reuse before the oldest idle buffers are destroyed (default 256 MiB). */
  poolIdleBytes?: number;
}

/** Thrown by kernels on bad arguments: names the operation and what was expected. */
function fail(op: string, detail: string): never {
  throw new Error(`webgpu.${op}: ${detail}`);
}

const PARAM_BYTES = PARAM_WORDS * 4;

/** The lowest and highest element one strided operand touches over `shape` (non-empty). */
function extent(shape: readonly number[], l: OperandLayout): [number, number] {
  let lo = l.offset;
  let hi = l.offset;
  shape.forEach((d, i) => {
    const reach = (d - 1) * l.strides[i];
    if (reach < 0) lo += reach;
    else hi += reach;
  });
  return [lo, hi];
}

/** The identity program: a strided `reduce` is a reduce program over its view. */
const IDENTITY = defineProgram(1, 0, ([x]) => x);

/**
 * A texture mirror of a buffer's first floats (see mirrorShape), bound in place of the buffer by
 * the matmul kernels that read their operands with textureLoad.
 */
interface TextureMirror {
  readonly id: number;
  readonly texture: GPUTexture;
  readonly view: GPUTextureView;
  /** log2 of the texels per row. */
  readonly shift: number;
  readonly bytes: number;
  /**
   * What the texture holds: the first `texels` vec4s of buffer `id` as of its `writes`-th write
   * (see PooledBuffer.writes); a matmul reading the same floats of an unchanged buffer skips the copy.
   */
  source: { id: number; writes: number; texels: number } | null;
}

/** What a dispatch binds after the parameter block: buffers, or texture mirrors of buffers. */
type Binding = PooledBuffer | TextureMirror;

function isMirror(b: Binding): b is TextureMirror {
  return 'view' in b;
}

/**
 * Texture mirror shapes kept (up to two textures each, A's and B's of a matmul), and their bytes,
 * before the least recently used go.
 */
const MIRROR_SHAPES = 8;
const MIRROR_BYTES = 64 * 2 ** 20;

/**
 * When the matmul reads A and B through texture mirrors: at least `minMacs` multiply-adds, and at
 * least `minReuse` per float copied (the copy into the mirror must pay for itself).
 */
export interface MatmulTexturePolicy {
  minMacs: number;
  minReuse: number;
  /** Tests: fewer mirror rows than the device allows, so small operands take wider rows. */
  maxRows?: number;
  /** Bytes of mirrors kept (default 64 MiB); the least recently used shapes go first. */
  mirrorBytes?: number;
  /**
   * Bind the mirrors as read-only storage textures instead of sampled ones (only where the device
   * allows it: see WebGPUBackend.storageMirrors).
   */
  storage?: boolean;
  /**
   * The narrow-output and small-k kernels read A and B through mirrors too (storage textures
   * only) from this many multiply-adds (undefined: never): their operands are small, so the copies
   * are cheap, and B's loads repeat in every lane.
   */
  narrowMinMacs?: number;
}

/**
 * When elementwise programs read compact inputs through texture mirrors (read-only storage
 * textures only): calls of at least `minElements` elements that run four elements per invocation.
 */
export interface ProgramTexturePolicy {
  minElements: number;
  /** Bytes of program mirrors kept (default 32 MiB), apart from the matmuls' (whose mirrors programs also read). */
  mirrorBytes?: number;
}

/**
 * On llvmpipe a program's vec4 storage load costs ~25 ns per 8 lanes and a storage-texture fetch ~9
 * (NOTES.md, session 7): over 401k floats p - lr * g took 1.0 ms with buffers, 0.57 with both
 * inputs fetched (the copies into the mirrors ~0.075 ms per 1.6 MB each, and none for a parameter
 * its forward product has just mirrored). Below ~128k floats the copies' fixed costs eat the gain.
 */
const LLVMPIPE_PROGRAM_TEXTURES: ProgramTexturePolicy = { minElements: 2 ** 17 };

/** Program mirror shapes kept (up to MAX_PROGRAM_MIRRORS textures each) and their bytes. */
const PROGRAM_MIRROR_SHAPES = 4;
const PROGRAM_MIRROR_BYTES = 32 * 2 ** 20;

/** Texture mirrors by shape (`width x rows`), least recently used first (Map order), and their bytes. */
interface MirrorCache {
  readonly shapes: Map<string, (TextureMirror | undefined)[]>;
  bytes: number;
}

/**
 * On Mesa's llvmpipe a storage-buffer load is a loop over the SIMD lanes, while a texel fetch is a
 * gather: the 16x8 matmul kernel with both operands read through textures takes ~30% less CPU time
 * on 128x784x512 and 784x128x512 transA, the copies into the textures included (NOTES.md, session
 * 4); read as storage textures, ~20% less again (session 6). Hardware GPUs are not measured, so
 * they keep storage loads.
 */
const LLVMPIPE_TEXTURES: MatmulTexturePolicy = { minMacs: 2 ** 22, minReuse: 32, narrowMinMacs: 2 ** 18 };

/**
 * Whether texture mirrors can be read as read-only rgba32float storage textures: the WGSL language
 * feature, and two storage textures per stage (compatibility-mode devices may allow none). The
 * feature list lives on the GPU object, so without one (a device passed in alone) the answer is no.
 */
function storageMirrorsSupported(device: GPUDevice, gpu: GPU | undefined): boolean {
  const wgsl = (gpu as { wgslLanguageFeatures?: ReadonlySet<string> } | undefined)?.wgslLanguageFeatures;
  return (wgsl?.has('readonly_and_readwrite_storage_textures') ?? false) && device.limits.maxStorageTexturesPerShaderStage >= 2;
}

/** Dispatches recorded before the batch is submitted anyway (bounded by the uniform arena). */
const MAX_BATCH = 512;

/**
 * The WebGPU backend. Kernels are recorded into one command encoder (one compute pass) and
 * submitted together at the next read, sync, conflicting write, or the end of the current task.
 * Each dispatch's parameters live in a slot of one uniform buffer, bound with a dynamic offset, so
 * bind groups depend only on the buffers and are cached.
 */
export class WebGPUBackend implements Backend {
  readonly name: string;
  readonly device: GPUDevice;
  readonly limits: WebGPULimits;

  private readonly ownsDevice: boolean;
  /** Keeps the GPU instance alive as long as the device (see WebGPUBackendInit.gpu). */
  readonly gpu: GPU | undefined;
  private readonly pool: BufferPool;
  private readonly pipelines = new Map<string, GPUComputePipeline>();
  private readonly groupLayouts = new Map<string, GPUBindGroupLayout>();
  private readonly bindGroups = new Map<string, GPUBindGroup>();
  private readonly bindGroupsOf = new Map<number, string[]>();
  private readonly staging = new Map<number, GPUBuffer[]>();
  /** The matmuls' texture mirrors (slot 0: A's, 1: B's), and the elementwise programs' (slot per input). */
  private readonly productMirrors: MirrorCache = { shapes: new Map(), bytes: 0 };
  private readonly programMirrors: MirrorCache = { shapes: new Map(), bytes: 0 };
  /** Mirrors evicted while the open batch may read them: destroyed once it is submitted. */
  private readonly retired: GPUTexture[] = [];
  private nextMirrorId = 1;
  /**
   * @internal Tuning and tests: when matmuls read their operands through texture mirrors (null:
   * never). Set for Mesa's llvmpipe, where it measured faster; null elsewhere.
   */
  matmulTextures: MatmulTexturePolicy | null;
  /**
   * @internal Tuning and tests: when elementwise programs read compact inputs through texture
   * mirrors (null: never; only where storageMirrors). Set for Mesa's llvmpipe; null elsewhere.
   */
  programTextures: ProgramTexturePolicy | null;
  /** Whether texture mirrors can be bound as read-only storage textures (they are then created for both kinds). */
  private readonly storageMirrors: boolean;
  /** @internal Tuning: the tile of a column-lane matmul (undefined: the default). */
  tileOverride: ((spec: MatmulSpec, textures: boolean) => MatmulTile | undefined) | null = null;

  private readonly uniform: GPUBuffer;
  private readonly slotBytes: number;
  private readonly arena: Uint32Array;

  private encoder: GPUCommandEncoder | null = null;
  private pass: GPUComputePassEncoder | null = null;
  /** The pipeline last set in the open pass. */
  private passPipeline: GPUComputePipeline | null = null;
  private slots = 0;
  /** GPU buffers used by the open (unsubmitted) batch. */
  private readonly referenced = new Set<PooledBuffer>();
  private flushQueued = false;

  private readonly counters = { dispatches: 0, copies: 0, submits: 0 };
  private readonly counter;
  private liveBuffers = 0;
  private liveBytes = 0;
  private error: Error | null = null;
  private lostError: Error | null = null;
  private destroyed = false;

  constructor(init: WebGPUBackendInit) {
    const { device } = init;
    this.name = init.name ?? 'webgpu';
    this.device = device;
    this.ownsDevice = init.ownsDevice;
    this.gpu = init.gpu;
    const lim = device.limits;
    this.limits = {
      maxBufferBytes: Math.min(lim.maxStorageBufferBindingSize, lim.maxBufferSize),
      maxWorkgroupsPerDimension: lim.maxComputeWorkgroupsPerDimension,
      workgroupSize: Math.min(256, lim.maxComputeInvocationsPerWorkgroup, lim.maxComputeWorkgroupSizeX),
    };
    this.pool = new BufferPool(device, init.poolIdleBytes ?? 256 * 2 ** 20, this.limits.maxBufferBytes, (b) => this.evict(b));
    const align = lim.minUniformBufferOffsetAlignment;
    this.slotBytes = Math.ceil(PARAM_BYTES / align) * align;
    this.arena = new Uint32Array((this.slotBytes * MAX_BATCH) / 4);
    this.uniform = device.createBuffer({ size: this.slotBytes * MAX_BATCH, usage: BufferUsage.UNIFORM | BufferUsage.COPY_DST });

    void device.lost.then((info) => {
      if (!this.destroyed) this.lostError = new Error(`webgpu: the device was lost (${info.reason}): ${info.message}`);
    });
    const onError = (ev: Event) => this.recordError((ev as GPUUncapturedErrorEvent).error);
    if (typeof device.addEventListener === 'function') device.addEventListener('uncapturederror', onError);
    else device.onuncapturederror = onError;
    this.counter = instrumentBackend(this);
    const info = (device as { adapterInfo?: GPUAdapterInfo }).adapterInfo;
    this.storageMirrors = storageMirrorsSupported(device, this.gpu);
    const llvmpipe = /llvmpipe/i.test(`${info?.device ?? ''} ${info?.description ?? ''}`);
    this.matmulTextures = llvmpipe ? { ...LLVMPIPE_TEXTURES, storage: this.storageMirrors } : null;
    this.programTextures = llvmpipe && this.storageMirrors ? { ...LLVMPIPE_PROGRAM_TEXTURES } : null;
  }

  // ---- errors ---------------------------------------------------------------------------------

  private recordError(e: GPUError): void {
    const kind = e.constructor?.name ?? 'GPUError';
    this.error ??= new Error(`webgpu: the device reported a ${kind} from earlier work: ${e.message}`);
  }

  /** Surface a device loss (always) or a recorded validation/OOM error (once) at the next call. */
  private check(op: string): void {
    if (this.destroyed) fail(op, 'the backend was destroyed');
    if (this.lostError) throw this.lostError;
    const e = this.error;
    if (e) {
      this.error = null;
      throw e;
    }
  }

  private handle(op: string, buf: DeviceBuffer, what = 'buffer'): PooledBuffer {
    if (!(buf instanceof WebGPUBuffer)) fail(op, `${what} belongs to another backend (expected a WebGPU buffer)`);
    if (buf.freed) fail(op, `${what} was already freed`);
    return buf.pooled;
  }

  private sized(op: string, buf: DeviceBuffer, need: number, what: string): PooledBuffer {
    const p = this.handle(op, buf, what);
    if (need > buf.size) fail(op, `${what} holds ${buf.size} elements, the kernel needs ${need}`);
    return p;
  }

  // ---- batching -------------------------------------------------------------------------------

  private open(): GPUCommandEncoder {
    if (!this.encoder) {
      this.device.pushErrorScope('out-of-memory');
      this.device.pushErrorScope('validation');
      this.encoder = this.device.createCommandEncoder();
      if (!this.flushQueued) {
        // Submit at the end of the current task, so work starts while the caller awaits something.
        this.flushQueued = true;
        queueMicrotask(() => {
          this.flushQueued = false;
          if (!this.destroyed) void this.flush();
        });
      }
    }
    return this.encoder;
  }

  private computePass(): GPUComputePassEncoder {
    const enc = this.open();
    if (!this.pass) {
      this.pass = enc.beginComputePass();
      this.passPipeline = null;
    }
    return this.pass;
  }

  /** An encoder for copy commands, outside any compute pass. */
  private copyEncoder(): GPUCommandEncoder {
    const enc = this.open();
    this.counters.copies++;
    if (this.pass) {
      this.pass.end();
      this.pass = null;
    }
    return enc;
  }

  /** Submit the open batch. The promise settles once the batch's error scopes are known. */
  private flush(): Promise<void> {
    const enc = this.encoder;
    if (!enc) return Promise.resolve();
    if (this.pass) this.pass.end();
    if (this.slots > 0) this.device.queue.writeBuffer(this.uniform, 0, this.arena, 0, (this.slots * this.slotBytes) / 4);
    this.device.queue.submit([enc.finish()]);
    this.counters.submits++;
    for (const t of this.retired) t.destroy();
    this.retired.length = 0;
    this.encoder = null;
    this.pass = null;
    this.slots = 0;
    this.referenced.clear();
    const validation = this.device.popErrorScope();
    const oom = this.device.popErrorScope();
    return Promise.all([validation, oom]).then(
      ([v, o]) => {
        const e = v ?? o;
        if (e) this.recordError(e);
      },
      () => undefined, // popErrorScope rejects only when the device is lost, reported by device.lost
    );
  }

  private evict(b: PooledBuffer): void {
    if (this.referenced.has(b)) void this.flush();
    for (const key of this.bindGroupsOf.get(b.id) ?? []) this.bindGroups.delete(key);
    this.bindGroupsOf.delete(b.id);
  }

  private pipeline(k: KernelSource): GPUComputePipeline {
    let p = this.pipelines.get(k.key);
    if (!p) {
      const module = this.device.createShaderModule({ code: k.code(), label: k.key });
      p = this.device.createComputePipeline({
        label: k.key,
        layout: this.device.createPipelineLayout({ bindGroupLayouts: [this.layout(k)] }),
        compute: { module, entryPoint: 'main' },
      });
      this.pipelines.set(k.key, p);
    }
    return p;
  }

  private layout(k: KernelSource): GPUBindGroupLayout {
    const sig = k.storage.join(',');
    let l = this.groupLayouts.get(sig);
    if (!l) {
      l = this.device.createBindGroupLayout({
        entries: [
          { binding: 0, visibility: ShaderStage.COMPUTE, buffer: { type: 'uniform', hasDynamicOffset: true, minBindingSize: PARAM_BYTES } },
          ...k.storage.map((a, i): GPUBindGroupLayoutEntry => (a === 'texture'
            ? { binding: i + 1, visibility: ShaderStage.COMPUTE, texture: { sampleType: 'unfilterable-float' } }
            : a === 'storage-texture'
              ? { binding: i + 1, visibility: ShaderStage.COMPUTE, storageTexture: { access: 'read-only', format: 'rgba32float' } }
              : { binding: i + 1, visibility: ShaderStage.COMPUTE, buffer: { type: a === 'read' ? 'read-only-storage' : 'storage' } })),
        ],
      });
      this.groupLayouts.set(sig, l);
    }
    return l;
  }

  private bindGroup(k: KernelSource, buffers: readonly Binding[]): GPUBindGroup {
    const sig = k.storage.join(',');
    const key = `${sig}|${buffers.map((b) => (isMirror(b) ? `t${b.id}` : b.id)).join(',')}`;
    let g = this.bindGroups.get(key);
    if (!g) {
      if (this.bindGroups.size > 8192) {
        this.bindGroups.clear();
        this.bindGroupsOf.clear();
      }
      g = this.device.createBindGroup({
        layout: this.layout(k),
        entries: [
          { binding: 0, resource: { buffer: this.uniform, offset: 0, size: PARAM_BYTES } },
          ...buffers.map((b, i): GPUBindGroupEntry => ({ binding: i + 1, resource: isMirror(b) ? b.view : { buffer: b.gpu } })),
        ],
      });
      this.bindGroups.set(key, g);
      // By buffer id, and by minus the id for mirrors (whose groups go when they are evicted).
      for (const b of buffers) {
        const id = isMirror(b) ? -b.id : b.id;
        let keys = this.bindGroupsOf.get(id);
        if (!keys) this.bindGroupsOf.set(id, (keys = []));
        keys.push(key);
      }
    }
    return g;
  }

  /** Record one dispatch into the open batch. */
  private dispatch(k: KernelSource, buffers: readonly Binding[], params: Uint32Array, groups: readonly [number, number, number]): void {
    if (this.slots === MAX_BATCH) void this.flush();
    const pass = this.computePass();
    const pipeline = this.pipeline(k);
    const slot = this.slots++;
    this.arena.set(params, (slot * this.slotBytes) / 4);
    // dawn.node's calls cost ~5-7 us each here: the pipeline is set only when it changes in the pass.
    if (this.passPipeline !== pipeline) pass.setPipeline(pipeline);
    this.passPipeline = pipeline;
    pass.setBindGroup(0, this.bindGroup(k, buffers), [slot * this.slotBytes]);
    pass.dispatchWorkgroups(groups[0], groups[1], groups[2]);
    this.counters.dispatches++;
    buffers.forEach((b, i) => {
      if (isMirror(b)) return;
      this.referenced.add(b);
      if (k.storage[i] === 'read_write') b.writes++;
    });
  }

  /** Record a buffer-to-buffer copy in the open batch; the destination counts as written. */
  private copyBuffer(src: PooledBuffer, srcOffset: number, dst: PooledBuffer, dstOffset: number, bytes: number): void {
    this.copyEncoder().copyBufferToBuffer(src.gpu, srcOffset, dst.gpu, dstOffset, bytes);
    dst.writes++;
  }

  /**
   * Texture mirror number `slot` of `shape` (mirrorShape), with the first `elements` floats of
   * `src` copied in (recorded in the open batch: commands run in order, so one mirror serves every
   * matmul of a batch). No copy when the mirror already holds those floats of `src` and nothing has
   * written `src` since (the MLP's batch is read by the forward product and by the weight gradient's).
   */
  private mirror(src: PooledBuffer, elements: number, shape: MirrorShape, slot: number, keep?: TextureMirror): TextureMirror {
    // A mirror of this shape holding those floats already, in any slot (the MLP's logits gradient is
    // B of one product and A of the next), else slot `slot` (or the other, when `keep` holds it).
    const key = `${shape.width}x${shape.rows}`;
    const texels = Math.ceil(elements / 4);
    const list = this.productMirrors.shapes.get(key) ?? [];
    const held = list.find((t) => t && t !== keep && t.source?.id === src.id && t.source.writes === src.writes && t.source.texels >= texels);
    if (held) {
      this.touch(this.productMirrors, key);
      return held;
    }
    const at = list[slot] && list[slot] === keep ? 1 - slot : slot;
    const m = this.mirrorSlot(this.productMirrors, MIRROR_SHAPES, this.matmulTextures?.mirrorBytes ?? MIRROR_BYTES, shape, at, keep);
    this.fillMirror(m, src, elements);
    return m;
  }

  /**
   * The mirrors of a program's mirrored inputs (distinct buffers, `elements` floats each): the
   * held ones as they are, the others in program mirror slots of `shape` that no other input of
   * the call takes, refilled.
   */
  private programMirrorsFor(sources: readonly { src: PooledBuffer; held: TextureMirror | undefined }[], elements: number, shape: MirrorShape | null): TextureMirror[] {
    const taken = sources.flatMap((x) => (x.held ? [x.held] : []));
    const cap = this.programTextures?.mirrorBytes ?? PROGRAM_MIRROR_BYTES;
    return sources.map(({ src, held }) => {
      if (held) return held;
      const list = this.programMirrors.shapes.get(`${shape!.width}x${shape!.rows}`) ?? [];
      let slot = 0;
      while (list[slot] && taken.includes(list[slot]!)) slot++;
      const m = this.mirrorSlot(this.programMirrors, PROGRAM_MIRROR_SHAPES, cap, shape!, slot, taken);
      this.fillMirror(m, src, elements);
      taken.push(m);
      return m;
    });
  }

  /**
   * A storage-texture mirror, of any shape in either cache, holding the first `elements` floats
   * of `src` as they are now (undefined: none; only where mirrors are storage textures).
   */
  private heldMirror(src: PooledBuffer, elements: number, exclude: readonly (TextureMirror | undefined)[] = []): TextureMirror | undefined {
    if (!this.storageMirrors) return undefined;
    const texels = Math.ceil(elements / 4);
    for (const cache of [this.productMirrors, this.programMirrors]) {
      for (const [key, list] of cache.shapes) {
        const m = list.find((t) => t && !exclude.includes(t) && t.source?.id === src.id && t.source.writes === src.writes && t.source.texels >= texels);
        if (m) {
          this.touch(cache, key);
          return m;
        }
      }
    }
    return undefined;
  }

  /** Mark a shape of a cache most recently used (re-inserted last: Map order is least recently used first). */
  private touch(cache: MirrorCache, key: string): (TextureMirror | undefined)[] {
    const list = cache.shapes.get(key) ?? [];
    cache.shapes.delete(key);
    cache.shapes.set(key, list);
    return list;
  }

  /**
   * Texture number `slot` of `shape` in `cache`, created if missing; room is made by destroying
   * the least recently used shapes of that cache, never this one nor one holding a texture of
   * `keep` (the other operands of the same dispatch).
   */
  private mirrorSlot(cache: MirrorCache, maxShapes: number, maxBytes: number, shape: MirrorShape, slot: number, keep?: TextureMirror | readonly TextureMirror[]): TextureMirror {
    const { width, shift, rows } = shape;
    const key = `${width}x${rows}`;
    const list = this.touch(cache, key);
    let m = list[slot];
    if (!m) {
      const bytes = width * rows * 16;
      const kept = keep === undefined ? [] : Array.isArray(keep) ? keep : [keep as TextureMirror];
      const shapes = () => [...cache.shapes.keys()].filter((k) => k !== key && !cache.shapes.get(k)!.some((t) => t && kept.includes(t)));
      let victims = shapes();
      while (victims.length > 0 && (cache.shapes.size > maxShapes || cache.bytes + bytes > maxBytes)) {
        for (const t of cache.shapes.get(victims[0])!) {
          if (!t) continue;
          // The open batch may still read it: destroyed after that batch's submit, no new dispatch binds it.
          if (this.encoder) this.retired.push(t.texture);
          else t.texture.destroy();
          cache.bytes -= t.bytes;
          for (const k of this.bindGroupsOf.get(-t.id) ?? []) this.bindGroups.delete(k);
          this.bindGroupsOf.delete(-t.id);
        }
        cache.shapes.delete(victims[0]);
        victims = shapes();
      }
      const usage = TextureUsage.TEXTURE_BINDING | TextureUsage.COPY_DST | (this.storageMirrors ? TextureUsage.STORAGE_BINDING : 0);
      const texture = this.device.createTexture({ size: [width, rows, 1], format: 'rgba32float', usage });
      m = list[slot] = { id: this.nextMirrorId++, texture, view: texture.createView(), shift, bytes, source: null };
      cache.bytes += bytes;
    }
    return m;
  }

  /** Copy the first `elements` floats of `src` into mirror `m` unless it holds them already: whole rows in one copy, the rest of the last row in a second. */
  private fillMirror(m: TextureMirror, src: PooledBuffer, elements: number): void {
    const width = 1 << m.shift;
    const texels = Math.ceil(elements / 4);
    const held = m.source;
    if (held && held.id === src.id && held.writes === src.writes && held.texels >= texels) return;
    m.source = { id: src.id, writes: src.writes, texels };
    const full = Math.floor(texels / width);
    const rest = texels - full * width;
    const enc = this.copyEncoder();
    const rowBytes = width * 16;
    if (full > 0) enc.copyBufferToTexture({ buffer: src.gpu, bytesPerRow: rowBytes, rowsPerImage: full }, { texture: m.texture }, [width, full, 1]);
    if (rest > 0) enc.copyBufferToTexture({ buffer: src.gpu, offset: full * rowBytes, bytesPerRow: rowBytes }, { texture: m.texture, origin: [0, full, 0] }, [rest, 1, 1]);
    this.referenced.add(src);
  }

  /** A 1-D launch of `threads` invocations; `rowWord` receives the invocations per grid row. */
  private dispatch1d(k: KernelSource, buffers: readonly Binding[], params: Uint32Array, threads: number, rowWord: number, perGroup = this.limits.workgroupSize): void {
    const [x, y] = grid2d(Math.ceil(threads / perGroup), this.limits.maxWorkgroupsPerDimension);
    params[rowWord] = x * perGroup;
    this.dispatch(k, buffers, params, [x, y, 1]);
  }

  // ---- buffers --------------------------------------------------------------------------------

  alloc(size: number): DeviceBuffer {
    this.check('alloc');
    if (!Number.isInteger(size) || size < 0) fail('alloc', `size must be a non-negative integer, got ${size}`);
    const bytes = size * 4;
    if (bytes > this.limits.maxBufferBytes) {
      fail('alloc', `${size} elements (${bytes} bytes) exceed this device's largest bindable buffer (${this.limits.maxBufferBytes} bytes)`);
    }
    const pooled = this.pool.acquire(bytes);
    this.liveBuffers++;
    this.liveBytes += bytes;
    return new WebGPUBuffer(size, pooled);
  }

  free(buf: DeviceBuffer): void {
    const p = this.handle('free', buf);
    (buf as WebGPUBuffer).freed = true;
    this.liveBuffers--;
    this.liveBytes -= buf.size * 4;
    // Kernels already recorded with this buffer stay ordered before any later reuse of it: the
    // queue runs them in order, and `write` flushes first if the open batch still references it.
    if (!this.destroyed) this.pool.release(p);
  }

  write(buf: DeviceBuffer, data: Float32Array, offset = 0): void {
    this.check('write');
    const p = this.handle('write', buf);
    if (!Number.isInteger(offset) || offset < 0 || offset + data.length > buf.size) {
      fail('write', `cannot write ${data.length} elements at offset ${offset} into a buffer of ${buf.size}`);
    }
    if (data.length === 0) return;
    // queue.writeBuffer runs before the open batch. Into a buffer that batch uses, the data goes
    // through a staging buffer copied in the batch's order instead, so the batch is not cut in two
    // (a submit costs ~0.2 ms of Dawn calls; crossEntropy uploads a class row every step); if the
    // pool hands out a staging buffer the batch uses too, the batch is submitted first after all.
    if (this.referenced.has(p)) {
      const t = this.pool.acquire(data.length * 4);
      if (!this.referenced.has(t)) {
        this.device.queue.writeBuffer(t.gpu, 0, data);
        t.writes++;
        this.copyBuffer(t, 0, p, offset * 4, data.length * 4);
        this.referenced.add(t);
        this.pool.release(t);
        return;
      }
      this.pool.release(t);
      void this.flush();
    }
    this.device.queue.writeBuffer(p.gpu, offset * 4, data);
    p.writes++;
  }

  async read(buf: DeviceBuffer, size?: number): Promise<Float32Array> {
    this.check('read');
    const p = this.handle('read', buf);
    const n = size ?? buf.size;
    if (!Number.isInteger(n) || n < 0 || n > buf.size) fail('read', `cannot read ${n} elements from a buffer of ${buf.size}`);
    if (n === 0) {
      await this.flush();
      this.check('read');
      return new Float32Array(0);
    }
    const bytes = n * 4;
    const cls = sizeClass(bytes);
    const staging = this.staging.get(cls)?.pop()
      ?? this.device.createBuffer({ size: cls, usage: BufferUsage.MAP_READ | BufferUsage.COPY_DST });
    this.copyEncoder().copyBufferToBuffer(p.gpu, 0, staging, 0, bytes);
    const errors = this.flush();
    let out: Float32Array;
    try {
      await staging.mapAsync(MapMode.READ, 0, bytes);
      out = new Float32Array(staging.getMappedRange(0, bytes).slice(0));
      staging.unmap();
    } catch (e) {
      await errors;
      staging.destroy();
      this.check('read');
      throw new Error(`webgpu.read: mapping the result failed: ${(e as Error).message}`, { cause: e });
    }
    await errors;
    this.releaseStaging(cls, staging);
    this.check('read');
    return out;
  }

  private releaseStaging(cls: number, b: GPUBuffer): void {
    if (this.destroyed) {
      b.destroy();
      return;
    }
    let list = this.staging.get(cls);
    if (!list) this.staging.set(cls, (list = []));
    if (list.length < 4) list.push(b);
    else b.destroy();
  }

  memory(): MemoryInfo {
    return { buffers: this.liveBuffers, bytes: this.liveBytes };
  }

  /** GPU memory the pool holds beyond live buffers (idle, kept for reuse), and in total. */
  poolMemory(): { idleBytes: number; totalBytes: number } {
    return { idleBytes: this.pool.idleByteCount, totalBytes: this.pool.totalBytes };
  }

  /**
   * The contract's counters (kernel launches by family, bytes moved) and this backend's own since the
   * last reset: recorded dispatches and buffer copies (a launch may record several of either, or a
   * copy instead of a dispatch), queue submits; and the compiled pipelines (the cache, never reset).
   */
  stats(): BackendStats & { pipelines: number; dispatches: number; copies: number; submits: number } {
    return { ...this.counter.snapshot(), pipelines: this.pipelines.size, ...this.counters };
  }

  resetStats(): void {
    this.counter.reset();
    this.counters.dispatches = 0;
    this.counters.copies = 0;
    this.counters.submits = 0;
  }

  /** Destroy idle pooled buffers (live ones are untouched). */
  trimPool(): void {
    this.pool.trim(0);
  }

  // ---- elementwise ----------------------------------------------------------------------------

  private pointwise(op: string, name: string, expr: string, inputs: readonly [string, DeviceBuffer][], out: DeviceBuffer, size: number, scalar = 0): void {
    this.check(op);
    if (!Number.isInteger(size) || size < 0) fail(op, `size must be a non-negative integer, got ${size}`);
    const o = this.sized(op, out, size, 'out');
    const ins: ElementwiseInput[] = [];
    const bufs: PooledBuffer[] = [];
    for (const [n, b] of inputs) {
      const p = this.sized(op, b, size, `input ${n}`);
      const aliasOut = p === o;
      ins.push({ name: n, aliasOut });
      if (!aliasOut) bufs.push(p);
    }
    bufs.push(o);
    if (size === 0) return;
    const vec4 = size % 4 === 0;
    const k = elementwiseKernel(name, expr, ins, vec4, this.limits.workgroupSize);
    const params = new Uint32Array(PARAM_WORDS);
    const n = vec4 ? size / 4 : size;
    params[0] = n;
    params[2] = f32Bits(scalar);
    this.dispatch1d(k, bufs, params, n, 1);
  }

  fill(out: DeviceBuffer, value: number, size: number): void {
    this.fillKernel(out, value, size);
  }

  /** fill for the backend's own use (not a launch the frontend asked for, so not counted as one). */
  private fillKernel(out: DeviceBuffer, value: number, size: number): void {
    this.pointwise('fill', 'fill', 's', [], out, size, value);
  }

  ewise(op: BinaryOp, a: DeviceBuffer, b: DeviceBuffer, out: DeviceBuffer, size: number): void {
    this.pointwise(`ewise(${op})`, `ewise.${op}`, binaryExpr(op, 'x', 'y'), [['x', a], ['y', b]], out, size);
  }

  scalar(op: BinaryOp, a: DeviceBuffer, scalar: number, out: DeviceBuffer, size: number): void {
    this.pointwise(`scalar(${op})`, `scalar.${op}`, binaryExpr(op, 'x', 's'), [['x', a]], out, size, scalar);
  }

  unary(op: UnaryOp, a: DeviceBuffer, out: DeviceBuffer, size: number): void {
    this.pointwise(`unary(${op})`, `unary.${op}`, unaryExpr(op), [['x', a]], out, size);
  }

  where(cond: DeviceBuffer, x: DeviceBuffer, y: DeviceBuffer, out: DeviceBuffer, size: number): void {
    // NaN in cond counts as true, as on the CPU (NaN != 0).
    this.pointwise('where', 'where', 'select(y, x, c != 0.0 || isnan_(c))', [['c', cond], ['x', x], ['y', y]], out, size);
  }

  gatherRows(a: DeviceBuffer, indices: DeviceBuffer, out: DeviceBuffer, rows: number, rowSize: number, count: number, missing: number): void {
    this.lookup('gatherRows', gatherRowsKernel, count * rowSize, a, indices, out, [rows * rowSize, count, count * rowSize], rows, rowSize, count, missing);
  }

  scatterAddRows(a: DeviceBuffer, indices: DeviceBuffer, out: DeviceBuffer, rows: number, rowSize: number, count: number): void {
    this.lookup('scatterAddRows', scatterAddRowsKernel, rowSize, a, indices, out, [count * rowSize, count, rows * rowSize], rows, rowSize, count, 0);
  }

  /** Both lookups: check sizes (`need`: a, indices, out), one dispatch of `threads` invocations (the output's elements, or its columns). */
  private lookup(op: string, kernel: (workgroup: number) => KernelSource, threads: number, a: DeviceBuffer, indices: DeviceBuffer, out: DeviceBuffer, need: readonly number[], rows: number, rowSize: number, count: number, missing: number): void {
    this.check(op);
    for (const [name, v] of [['rows', rows], ['rowSize', rowSize], ['count', count]] as const) {
      if (!Number.isInteger(v) || v < 0) fail(op, `${name} must be a non-negative integer, got ${v}`);
    }
    const bufs = [this.sized(op, a, need[0], 'a'), this.sized(op, indices, need[1], 'indices'), this.sized(op, out, need[2], 'out')];
    if (threads === 0 || count === 0) return;
    const params = new Uint32Array(PARAM_WORDS);
    params[0] = threads;
    params[LOOKUP_WORDS.rows] = rows;
    params[LOOKUP_WORDS.rowSize] = rowSize;
    params[LOOKUP_WORDS.count] = count;
    params[LOOKUP_WORDS.missing] = f32Bits(missing);
    this.dispatch1d(kernel(this.limits.workgroupSize), bufs, params, threads, 1);
  }

  /**
   * Strided elementwise operands (index arithmetic in the kernel, layouts in the uniform block),
   * reduce inputs, and matmul operand offsets (uniform words added to each operand's base).
   */
  readonly layouts = { elementwise: true, reduce: true, maxDims: 8, matmulOffsets: true } as const;

  /**
   * An elementwise program as one dispatch of a WGSL kernel compiled for it (cached by its key, the
   * binding layout and which operands are strided at which rank: one pipeline for every layout).
   */
  elementwise(program: ElementwiseProgram, inputs: readonly DeviceBuffer[], scalars: readonly number[], outputs: readonly DeviceBuffer[], size: number, layouts?: ProgramLayouts): void {
    const op = 'elementwise';
    this.check(op);
    if (!Number.isInteger(size) || size < 0) fail(op, `size must be a non-negative integer, got ${size}`);
    if (scalars.length > 16) fail(op, `at most 16 scalars fit the uniform block, got ${scalars.length}`);
    const bufs: PooledBuffer[] = [];
    const binding = (p: PooledBuffer) => {
      let b = bufs.indexOf(p);
      if (b < 0) b = bufs.push(p) - 1;
      return b;
    };
    const strides = programStrides(layouts, inputs.length, outputs.length);
    if (strides && layouts) {
      let n = 1;
      for (const d of layouts.shape) n *= d;
      if (n !== size || strides.rank > this.layouts.maxDims) fail(op, `layouts shape [${layouts.shape.join(', ')}] must have ${size} elements and at most ${this.layouts.maxDims} axes`);
    }
    const operand = (b: DeviceBuffer, what: string, l: OperandLayout | undefined): PooledBuffer => {
      if (!l || !layouts) return this.sized(op, b, size, what);
      const p = this.handle(op, b, what);
      const [lo, hi] = extent(layouts.shape, l);
      if (size > 0 && (lo < 0 || hi >= b.size)) fail(op, `${what}'s view (strides [${l.strides.join(', ')}], offset ${l.offset}) reaches elements ${lo}..${hi}, outside a buffer of ${b.size}`);
      return p;
    };
    const inputP = inputs.map((b, k) => operand(b, `input ${k}`, strides && layouts?.inputs[k]));
    const outputP = outputs.map((b, k) => operand(b, `output ${k}`, strides && layouts?.outputs[k]));
    const vec4 = size > 0 ? programVec4(layouts, strides, size, inputs.length, outputs.length) : undefined;
    // Compact inputs read through texture mirrors (their buffers are bound only if something else
    // reads them): a mirror already holding the buffer's floats, at any size; at least
    // minElements, a program mirror filled for the call.
    const mirrored = inputP.map(() => -1);
    const sources: { src: PooledBuffer; held: TextureMirror | undefined }[] = [];
    const tp = this.programTextures;
    const fill = tp && vec4 && size >= tp.minElements ? mirrorShape(size, this.device.limits.maxTextureDimension2D) : null;
    // Without mirrors to find or fill (the LSTM's programs), nothing to look for.
    if (tp && this.storageMirrors && vec4 && (fill || this.productMirrors.shapes.size + this.programMirrors.shapes.size > 0)) {
      const used = new Set(program.steps.flatMap((st) => (st.op === 'input' ? [st.index] : [])));
      const most = Math.min(MAX_PROGRAM_MIRRORS, this.device.limits.maxStorageTexturesPerShaderStage);
      inputP.forEach((p, q) => {
        if (!used.has(q) || vec4.inputs[q] !== 'c') return;
        let j = sources.findIndex((x) => x.src === p);
        if (j < 0) {
          if (sources.length === most) return;
          const held = this.heldMirror(p, size, sources.map((x) => x.held));
          if (!held && !fill) return;
          j = sources.push({ src: p, held }) - 1;
        }
        mirrored[q] = j;
      });
    }
    const inputBinding = inputP.map((p, q) => (mirrored[q] >= 0 ? -1 : binding(p)));
    const outputBinding = outputP.map((p) => binding(p));
    if (new Set(outputBinding).size !== outputBinding.length) fail(op, 'two outputs are the same buffer');
    if (bufs.length > 8) fail(op, `${bufs.length} distinct buffers; a WebGPU kernel binds at most 8`);
    if (size === 0) return;
    const k = programKernel(program, inputBinding, outputBinding, bufs.length, this.limits.workgroupSize, strides, vec4, sources.length > 0 ? mirrored : undefined);
    const params = new Uint32Array(PARAM_WORDS);
    const threads = vec4 ? size / 4 : size;
    params[0] = threads;
    scalars.forEach((s, i) => (params[PROGRAM_SCALAR_WORD + i] = f32Bits(s)));
    if (strides && layouts) programLayoutParams(params, layouts);
    const textures = this.programMirrorsFor(sources, size, fill);
    textures.forEach((t, j) => (params[PROGRAM_MIRROR_SHIFT_WORD] |= t.shift << (8 * j)));
    this.dispatch1d(k, [...bufs, ...textures], params, threads, 1);
  }

  // ---- strided --------------------------------------------------------------------------------

  private strided(op: string, mode: StridedMode, layout: StridedLayout, a: DeviceBuffer | null, out: DeviceBuffer, value = 0): void {
    this.check(op);
    const { shape, strides, offset } = layout;
    if (shape.length !== strides.length) fail(op, `layout has ${shape.length} axes but ${strides.length} strides`);
    let n = 1;
    for (const d of shape) {
      if (!Number.isInteger(d) || d < 0) fail(op, `layout shape must hold non-negative integers, got [${shape.join(', ')}]`);
      n *= d;
    }
    const viewBuf = mode === 'compact' ? a! : out;
    const compactBuf = mode === 'compact' ? out : a;
    const viewP = this.handle(op, viewBuf, mode === 'compact' ? 'input' : 'out');
    const compactP = compactBuf ? this.sized(op, compactBuf, n, mode === 'compact' ? 'out' : 'input') : null;
    if (n === 0) return;
    const c = coalesce(layout);
    let lo = c.offset;
    let hi = c.offset;
    c.shape.forEach((d, i) => {
      const span = (d - 1) * c.strides[i];
      if (span < 0) lo += span;
      else hi += span;
    });
    if (lo < 0 || hi >= viewBuf.size) {
      fail(op, `the view (shape [${shape.join(', ')}], strides [${strides.join(', ')}], offset ${offset}) reaches elements ${lo}..${hi} of a buffer of ${viewBuf.size}`);
    }
    if (c.shape.length > MAX_DIMS) fail(op, `views with more than ${MAX_DIMS} non-mergeable axes are not supported (got ${c.shape.length})`);
    let temp: PooledBuffer | null = null;
    let src = compactP;
    if (mode === 'setitem' && compactP === viewP) {
      // Reading and writing one buffer in a dispatch is not allowed: scatter from a copy.
      temp = this.pool.acquire(n * 4);
      this.copyBuffer(compactP, 0, temp, 0, n * 4);
      this.referenced.add(temp);
      src = temp;
    }
    if (c.shape.length === 1 && c.strides[0] === 1 && mode !== 'fillView') {
      if (mode === 'compact') this.copyBuffer(viewP, c.offset * 4, src!, 0, n * 4);
      else this.copyBuffer(src!, 0, viewP, c.offset * 4, n * 4);
      this.referenced.add(viewP);
      this.referenced.add(src!);
    } else if (mode === 'compact' && transposeApplies(c)) {
      const params = transposeParams(c);
      this.dispatch1d(transposeKernel(this.limits.workgroupSize), [viewP, src!], params, params[4], 5);
    } else if (mode === 'compact' && rowsApplies(c)) {
      const params = rowsParams(c);
      this.dispatch1d(rowsKernel(this.limits.workgroupSize), [viewP, src!], params, params[3], 4);
    } else {
      const k = stridedKernel(mode, c.shape.length, this.limits.workgroupSize);
      const params = stridedParams(c.shape, c.strides, c.offset, n, value);
      const bufs = mode === 'fillView' ? [viewP] : mode === 'compact' ? [viewP, src!] : [src!, viewP];
      this.dispatch1d(k, bufs, params, n, STRIDED_ROW_WORD);
    }
    if (temp) this.pool.release(temp);
  }

  compact(a: DeviceBuffer, out: DeviceBuffer, layout: StridedLayout): void {
    this.strided('compact', 'compact', layout, a, out);
  }

  ewiseSetitem(a: DeviceBuffer, out: DeviceBuffer, layout: StridedLayout): void {
    this.strided('ewiseSetitem', 'setitem', layout, a, out);
  }

  scalarSetitem(value: number, out: DeviceBuffer, layout: StridedLayout): void {
    this.strided('scalarSetitem', 'fillView', layout, null, out, value);
  }

  // ---- reduce ---------------------------------------------------------------------------------

  /**
   * With a strided `layout`, the view is first gathered into a pooled scratch buffer by the strided
   * copy kernel, recorded in the same batch (one more dispatch, no launch or buffer for the
   * frontend), then reduced as a compact input: the result equals compact + reduce bit for bit.
   */
  reduce(op: ReduceOp, a: DeviceBuffer, out: DeviceBuffer, outSize: number, reduceSize: number, layout?: StridedLayout): void {
    const name = `reduce(${op})`;
    this.check(name);
    if (!Number.isInteger(outSize) || outSize < 0 || !Number.isInteger(reduceSize) || reduceSize < 0) {
      fail(name, `outSize and reduceSize must be non-negative integers, got ${outSize} and ${reduceSize}`);
    }
    if (layout) {
      const n = outSize * reduceSize;
      if (layout.shape.reduce((p, d) => p * d, 1) !== n) fail(name, `layout shape [${layout.shape.join(', ')}] must have outSize * reduceSize = ${n} elements`);
      const ap = this.handle(name, a, 'input');
      const c = coalesce(layout);
      if (ap !== this.handle(name, out, 'out') && c.shape.length <= this.layouts.maxDims) {
        // One pass: the reduce kernel reads the view through its layout (the identity program's
        // load), with the strategy, and so the order of the sum, that the compact input would get.
        const [lo, hi] = extent(c.shape, c);
        if (n > 0 && (lo < 0 || hi >= a.size)) fail(name, `the view (shape [${layout.shape.join(', ')}], strides [${layout.strides.join(', ')}], offset ${layout.offset}) reaches elements ${lo}..${hi} of a buffer of ${a.size}`);
        if (n > 0 && reduceColumnsApplies(op, c, outSize, reduceSize)) {
          // Down the columns of a row-major matrix (a bias gradient over the batch): vec4 rows.
          const op_ = this.sized(name, out, outSize, 'out');
          const params = new Uint32Array(PARAM_WORDS);
          params.set([outSize / 4, 0, reduceSize, c.offset / 4, c.strides[1] / 4]);
          // A mirror a product has just filled with these floats (the MLP's bias gradient reads dH,
          // B of its weight gradient) is fetched from instead, without a copy (NOTES.md, session 7).
          const held = this.heldMirror(ap, hi + 1);
          if (held) params[5] = held.shift;
          this.dispatch1d(reduceColumnsKernel(op as 'sum' | 'max' | 'min', 64, held !== undefined), [held ?? ap, op_], params, outSize / 4, 1, 64);
          return;
        }
        this.reduceProgramKernels(name, op, IDENTITY, [a], [], out, outSize, reduceSize, { shape: c.shape, inputs: [{ strides: c.strides, offset: c.offset }], outputs: [] }, 0);
        return;
      }
      // out shares the view's buffer (its elements may overlap the view's): gather first.
      const scratch = new WebGPUBuffer(n, this.pool.acquire(Math.max(n, 1) * 4));
      try {
        this.strided(name, 'compact', layout, a, scratch);
        // The class's own method, not the instrumented property: this is still the one launch.
        WebGPUBackend.prototype.reduce.call(this, op, scratch, out, outSize, reduceSize);
      } finally {
        this.pool.release(scratch.pooled);
      }
      return;
    }
    const ap = this.sized(name, a, outSize * reduceSize, 'input');
    let op_ = this.sized(name, out, outSize, 'out');
    if (outSize === 0) return;
    if (reduceSize === 0) {
      if (op !== 'sum') fail(name, 'cannot reduce blocks of zero elements (no identity)');
      this.fillKernel(out, 0, outSize);
      return;
    }
    let temp: PooledBuffer | null = null;
    if (ap === op_) {
      temp = this.pool.acquire(outSize * 4);
      op_ = temp;
    }
    const params = new Uint32Array(PARAM_WORDS);
    params[0] = outSize;
    params[2] = reduceSize;
    // Short blocks: one invocation each. Long blocks: a workgroup each, so the work spreads out.
    // Blocks of a multiple of 4 (not arg*) read vec4s, a quarter of the load instructions: one
    // invocation per block then pays off for longer blocks too, as long as there are enough blocks
    // for several workgroups (llvmpipe: 512 blocks of 128, 'group' 1.1 CPU ms -> see NOTES.md).
    const vec4 = reduceSize % 4 === 0 && op !== 'argmax' && op !== 'argmin';
    if (vec4 && reduceStrategy4(outSize, reduceSize)) {
      this.dispatch1d(reduceKernel(op, 'thread4', 64), [ap, op_], params, outSize, 1, 64);
    } else if (reduceSize <= 64 || outSize >= 16384) {
      this.dispatch1d(reduceKernel(op, 'thread', this.limits.workgroupSize), [ap, op_], params, outSize, 1);
    } else {
      const wg = Math.min(reduceSize <= 4096 ? 64 : 256, this.limits.workgroupSize);
      const [x, y] = grid2d(outSize, this.limits.maxWorkgroupsPerDimension);
      params[1] = x;
      this.dispatch(reduceKernel(op, 'group', wg), [ap, op_], params, [x, y, 1]);
    }
    if (temp) {
      this.copyBuffer(temp, 0, ap, 0, outSize * 4);
      this.pool.release(temp);
    }
  }

  // ---- matmul ---------------------------------------------------------------------------------

  matmul(a: DeviceBuffer, b: DeviceBuffer, out: DeviceBuffer, spec: MatmulSpec): void {
    this.product('matmul', a, b, out, spec);
  }

  /**
   * The product with the epilogue program compiled into the matmul kernel (cached by program key,
   * matmul variant and how each epilogue input is read): the kernel stores its block of C, reads it
   * back and stores the program's value over it, so the program sees the product rounded to float32.
   */
  matmulProgram(a: DeviceBuffer, b: DeviceBuffer, out: DeviceBuffer, spec: MatmulSpec, epilogue: MatmulEpilogue): void {
    const op = 'matmulProgram';
    this.check(op);
    const { program, inputs, scalars } = epilogue;
    if (program.outputs.length !== 1) fail(op, `the epilogue program must have exactly one output, got ${program.outputs.length}`);
    if (program.inputs !== inputs.length + 1) fail(op, `the epilogue program takes ${program.inputs} inputs (the product and ${program.inputs - 1} more), got ${inputs.length} epilogue inputs`);
    if (inputs.length > MAX_EPILOGUE_INPUTS) fail(op, `at most ${MAX_EPILOGUE_INPUTS} epilogue inputs fit one kernel's bindings, got ${inputs.length}`);
    if (scalars.length > 16) fail(op, `at most 16 scalars fit the uniform block, got ${scalars.length}`);
    if (scalars.length !== program.scalars) fail(op, `the epilogue program takes ${program.scalars} scalars, got ${scalars.length}`);
    const { batch, m, n } = spec;
    const size = batch * m * n;
    const shape = [batch, m, n];
    const layouts = inputs.map((buf, k): OperandLayout => {
      const l = epilogue.layouts[k] ?? { strides: [m * n, n, 1], offset: 0 };
      if (l.strides.length !== 3) fail(op, `epilogue input ${k}'s layout must have 3 strides (over [batch, m, n]), got [${l.strides.join(', ')}]`);
      const [lo, hi] = extent(shape, l);
      this.handle(op, buf, `epilogue input ${k}`);
      if (size > 0 && (lo < 0 || hi >= buf.size)) fail(op, `epilogue input ${k}'s view (strides [${l.strides.join(', ')}], offset ${l.offset}) reaches elements ${lo}..${hi}, outside a buffer of ${buf.size}`);
      return l;
    });
    const outP = this.handle(op, out, 'out');
    if (inputs.some((x) => this.handle(op, x) === outP)) fail(op, 'an epilogue input is the out buffer (the contract forbids it: the kernel overwrites out while it reads the inputs)');
    this.product(op, a, b, out, spec, { program, inputs: inputs.map((x) => (x as WebGPUBuffer).pooled), scalars, layouts });
  }

  /** matmul and matmulProgram: checks, operand copies where out aliases one, then one dispatch per 65535 batch entries. */
  private product(op: string, a: DeviceBuffer, b: DeviceBuffer, out: DeviceBuffer, spec: MatmulSpec, epilogue?: { program: ElementwiseProgram; inputs: PooledBuffer[]; scalars: readonly number[]; layouts: OperandLayout[] }): void {
    this.check(op);
    const { batch, m, k, n, aBatchStride, bBatchStride } = spec;
    const aOffset = spec.aOffset ?? 0;
    const bOffset = spec.bOffset ?? 0;
    const outOffset = spec.outOffset ?? 0;
    for (const [key, v] of Object.entries({ batch, m, k, n, aBatchStride, bBatchStride, aOffset, bOffset, outOffset })) {
      if (!Number.isInteger(v) || v < 0) fail(op, `spec.${key} must be a non-negative integer, got ${v}`);
    }
    const last = Math.max(batch - 1, 0);
    const empty = batch === 0 || m === 0 || n === 0;
    const ap = this.sized(op, a, empty || k === 0 ? 0 : aOffset + last * aBatchStride + m * k, 'a');
    const bp = this.sized(op, b, empty || k === 0 ? 0 : bOffset + last * bBatchStride + k * n, 'b');
    const cp = this.sized(op, out, empty ? 0 : outOffset + batch * m * n, 'out');
    if (empty) return;
    if (k === 0 && !epilogue) {
      if (outOffset === 0) this.fillKernel(out, 0, batch * m * n);
      else this.strided(op, 'fillView', { shape: [batch * m * n], strides: [1], offset: outOffset }, null, out, 0);
      return;
    }
    const temps: PooledBuffer[] = [];
    const unalias = (p: PooledBuffer, elems: number): PooledBuffer => {
      if (p !== cp) return p;
      const t = this.pool.acquire(elems * 4);
      this.copyBuffer(p, 0, t, 0, elems * 4);
      temps.push(t);
      return t;
    };
    const A = unalias(ap, a.size);
    const B = bp === ap ? A : unalias(bp, b.size);
    let kernel: KernelSource;
    let gx: number;
    let gy: number;
    let operands: [Binding, Binding] = [A, B];
    let mirrors: { a: [number, MirrorShape]; b: [number, MirrorShape] } | undefined;
    let shifts: [number, number] | undefined;
    // The floats of A and B the product reads (from the buffers' starts: kernel indices are
    // absolute); one buffer for both is mirrored once, as far as either reaches.
    let aElems = aOffset + last * aBatchStride + m * k;
    let bElems = bOffset + last * bBatchStride + k * n;
    if (A === B) aElems = bElems = Math.max(aElems, bElems);
    const macs = batch * m * n * k;
    const tp = this.matmulTextures;
    const maxRows = Math.min(tp?.maxRows ?? Infinity, this.device.limits.maxTextureDimension2D);
    const shapes = (wanted: boolean): { a: [number, MirrorShape]; b: [number, MirrorShape] } | undefined => {
      const aShape = wanted ? mirrorShape(aElems, maxRows) : null;
      const bShape = wanted ? mirrorShape(bElems, maxRows) : null;
      return aShape && bShape ? { a: [aElems, aShape], b: [bElems, bShape] } : undefined;
    };
    const rows = matmulRowsApplies(spec);
    if (rows || matmulSmallKApplies(spec)) {
      // Mirrored as storage textures only (the kernels were measured with those: NOTES.md, session 7).
      mirrors = shapes(tp !== null && tp.storage === true && this.storageMirrors && tp.narrowMinMacs !== undefined && macs >= tp.narrowMinMacs);
      const tex = mirrors ? 'storage' : false;
      const modes = epilogue ? epilogueModes(epilogue.layouts, !rows) : undefined;
      const epi = epilogue && modes && { program: epilogue.program, modes };
      kernel = rows ? matmulRowsKernel(spec, epi, tex) : matmulSmallKKernel(spec, epi, tex);
      [gx, gy] = rows ? matmulRowsGrid(spec) : matmulSmallKGrid(spec);
    } else {
      mirrors = shapes(tp !== null && macs >= tp.minMacs && macs >= tp.minReuse * (aElems + bElems));
      const tex = mirrors ? (tp?.storage && this.storageMirrors ? 'storage' : 'sampled') : false;
      const plain = matmulVariant(spec, this.limits.workgroupSize, this.tileOverride?.(spec, tex !== false), tex);
      const variant = epilogue ? { ...plain, epilogue: { program: epilogue.program, modes: epilogueModes(epilogue.layouts, plain.vecC) } } : plain;
      kernel = matmulKernel(variant);
      [gx, gy] = matmulGrid(spec, variant);
      if (!variant.tex) mirrors = undefined;
    }
    const maxDim = this.limits.maxWorkgroupsPerDimension;
    if (gx > maxDim || gy > maxDim) fail(op, `a ${m}x${n} result needs a ${gx}x${gy} grid; this device allows ${maxDim} per dimension`);
    if (mirrors) {
      const ta = this.mirror(A, ...mirrors.a, 0);
      const tb = B === A ? ta : this.mirror(B, ...mirrors.b, 1, ta);
      operands = [ta, tb];
      shifts = [ta.shift, tb.shift];
    }
    for (let base = 0; base < batch; base += maxDim) {
      const z = Math.min(maxDim, batch - base);
      this.dispatch(kernel, [...operands, cp, ...(epilogue?.inputs ?? [])], matmulParams(spec, base, epilogue, shifts), [gx, gy, z]);
    }
    for (const t of temps) this.pool.release(t);
  }

  // ---- reduce programs -------------------------------------------------------------------------

  /**
   * A reduction over a program's values, the program compiled into the reduce kernel's loads (the
   * values are never stored); logsumexp as two passes (max, then the sum of exp(v - max)). The
   * same strategies as `reduce`, chosen the same way.
   */
  reduceProgram(op: ProgramReduceOp, program: ElementwiseProgram, inputs: readonly DeviceBuffer[], scalars: readonly number[], out: DeviceBuffer, outSize: number, reduceSize: number, layouts?: ProgramLayouts, outOffset = 0): void {
    this.reduceProgramKernels(`reduceProgram(${op})`, op, program, inputs, scalars, out, outSize, reduceSize, layouts, outOffset);
  }

  /** reduceProgram's checks and dispatch, shared with the one-pass strided `reduce`. */
  private reduceProgramKernels(name: string, op: ProgramReduceOp, program: ElementwiseProgram, inputs: readonly DeviceBuffer[], scalars: readonly number[], out: DeviceBuffer, outSize: number, reduceSize: number, layouts: ProgramLayouts | undefined, outOffset: number): void {
    this.check(name);
    if (!(PROGRAM_REDUCE_OPS as readonly string[]).includes(op)) fail(name, `unknown reduction '${op}'`);
    for (const [key, v] of Object.entries({ outSize, reduceSize, outOffset })) {
      if (!Number.isInteger(v) || v < 0) fail(name, `${key} must be a non-negative integer, got ${v}`);
    }
    if (program.outputs.length !== 1) fail(name, `the program must have exactly one output, got ${program.outputs.length}`);
    if (program.inputs !== inputs.length) fail(name, `the program takes ${program.inputs} inputs, got ${inputs.length}`);
    if (scalars.length > 16) fail(name, `at most 16 scalars fit the uniform block, got ${scalars.length}`);
    const size = outSize * reduceSize;
    const strides = programStrides(layouts, inputs.length, 0);
    if (strides && layouts) {
      if (layouts.shape.reduce((p, d) => p * d, 1) !== size || strides.rank > this.layouts.maxDims) fail(name, `layouts shape [${layouts.shape.join(', ')}] must have outSize * reduceSize = ${size} elements and at most ${this.layouts.maxDims} axes`);
      const words = strides.rank + strides.inputs.filter(Boolean).length * (strides.rank + 1);
      if (words > REDUCE_PROGRAM_LAYOUT_WORDS) fail(name, `${strides.inputs.filter(Boolean).length} strided inputs of rank ${strides.rank} exceed the uniform block`);
    }
    const bufs: PooledBuffer[] = [];
    const binding = (p: PooledBuffer) => {
      let i = bufs.indexOf(p);
      if (i < 0) i = bufs.push(p) - 1;
      return i;
    };
    const inputBinding = inputs.map((b, k) => {
      const l = strides && layouts?.inputs[k];
      if (!l || !layouts) return binding(this.sized(name, b, size, `input ${k}`));
      const p = this.handle(name, b, `input ${k}`);
      const [lo, hi] = extent(layouts.shape, l);
      if (size > 0 && (lo < 0 || hi >= b.size)) fail(name, `input ${k}'s view (strides [${l.strides.join(', ')}], offset ${l.offset}) reaches elements ${lo}..${hi}, outside a buffer of ${b.size}`);
      return binding(p);
    });
    // out may share a buffer with an input (other elements): it is then bound once, read_write.
    const outBinding = binding(this.sized(name, out, outOffset + outSize, 'out'));
    if (bufs.length > 8) fail(name, `${bufs.length} distinct buffers; a WebGPU kernel binds at most 8`);
    if (outSize === 0) return;
    if (reduceSize === 0 && op !== 'sum') fail(name, 'cannot reduce blocks of zero elements (no identity)');
    const params = new Uint32Array(PARAM_WORDS);
    params[0] = outSize;
    params[2] = reduceSize;
    params[3] = outOffset;
    scalars.forEach((s, i) => (params[PROGRAM_SCALAR_WORD + i] = f32Bits(s)));
    if (strides && layouts) programLayoutParams(params, layouts);
    const load = { program, inputBinding, outBinding, bindingCount: bufs.length, strides };
    // The strategy `reduce` would pick for the stored values, so the sum order is the composition's.
    const arg = op === 'argmax' || op === 'argmin';
    if (reduceSize % 4 === 0 && !arg && reduceStrategy4(outSize, reduceSize)) {
      // Inputs that are not vec4 views ('s') take the kernel's four-scalar-load form for all inputs.
      const v4 = programVec4(layouts, strides, size, inputs.length, 0);
      const vec4 = v4 && !v4.inputs.includes('s') ? v4 : undefined;
      this.dispatch1d(reduceProgramKernel(op, 'thread4', 64, { ...load, vec4 }), bufs, params, outSize, 1, 64);
    } else if (reduceSize <= 64 || outSize >= 16384) {
      this.dispatch1d(reduceProgramKernel(op, 'thread', this.limits.workgroupSize, load), bufs, params, outSize, 1);
    } else {
      const wg = Math.min(reduceSize <= 4096 ? 64 : 256, this.limits.workgroupSize);
      const [x, y] = grid2d(outSize, this.limits.maxWorkgroupsPerDimension);
      params[1] = x;
      this.dispatch(reduceProgramKernel(op, 'group', wg, load), bufs, params, [x, y, 1]);
    }
  }

  // ---- lifecycle ------------------------------------------------------------------------------

  async sync(): Promise<void> {
    this.check('sync');
    const errors = this.flush();
    await this.device.queue.onSubmittedWorkDone();
    await errors;
    this.check('sync');
  }

  destroy(): void {
    if (this.destroyed) return;
    // Submit what was recorded (this also balances the open error scopes on a shared device).
    void this.flush();
    this.destroyed = true;
    this.encoder = null;
    this.pass = null;
    this.pool.destroyAll();
    for (const list of this.staging.values()) for (const b of list) b.destroy();
    this.staging.clear();
    this.uniform.destroy();
    for (const cache of [this.productMirrors, this.programMirrors]) {
      for (const list of cache.shapes.values()) for (const t of list) t?.texture.destroy();
      cache.shapes.clear();
    }
    for (const t of this.retired) t.destroy();
    this.retired.length = 0;
    this.bindGroups.clear();
    if (this.ownsDevice) this.device.destroy();
  }
}
