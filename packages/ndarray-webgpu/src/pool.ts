import { BufferUsage } from './gpu-constants';

/** A pooled GPU buffer. Handles (WebGPUBuffer) come and go; the GPUBuffer behind them is reused. */
export interface PooledBuffer {
  readonly gpu: GPUBuffer;
  /** Capacity in bytes (the size class). */
  readonly bytes: number;
  /** Stable id for bind-group cache keys. */
  readonly id: number;
  /**
   * Writes recorded into the buffer so far (uploads, copies, dispatches binding it read_write): a
   * texture mirror copied from it stays current while this count is unchanged.
   */
  writes: number;
}

/**
 * Size class of an allocation in bytes: powers of two up to 4 KiB, then four steps per octave, so a
 * reused buffer wastes at most 25% while different sizes of one layer still share a class.
 */
export function sizeClass(bytes: number): number {
  const b = Math.max(16, Math.ceil(bytes / 16) * 16);
  if (b <= 4096) return 2 ** Math.ceil(Math.log2(b));
  const octave = 2 ** Math.floor(Math.log2(b - 1));
  const step = octave / 4;
  return Math.ceil(b / step) * step;
}

/**
 * Storage buffers bucketed by size class. `release` returns a buffer for reuse; idle bytes above
 * `maxIdleBytes` are destroyed (oldest first) through `onEvict`, which lets the backend flush a
 * pending batch that still references the buffer before it is destroyed.
 */
export class BufferPool {
  private readonly idle = new Map<number, PooledBuffer[]>();
  private idleBytes = 0;
  private nextId = 1;
  /** Every buffer this pool created and has not destroyed. */
  readonly all = new Set<PooledBuffer>();

  constructor(
    private readonly device: GPUDevice,
    private readonly maxIdleBytes: number,
    private readonly maxBytes: number,
    private readonly onEvict: (b: PooledBuffer) => void,
  ) {}

  acquire(bytes: number): PooledBuffer {
    let cls = sizeClass(bytes);
    if (cls > this.maxBytes) cls = Math.floor(this.maxBytes / 16) * 16;
    const list = this.idle.get(cls);
    const reused = list?.pop();
    if (reused) {
      this.idleBytes -= reused.bytes;
      return reused;
    }
    const gpu = this.device.createBuffer({
      size: cls,
      usage: BufferUsage.STORAGE | BufferUsage.COPY_SRC | BufferUsage.COPY_DST,
    });
    const b: PooledBuffer = { gpu, bytes: cls, id: this.nextId++, writes: 0 };
    this.all.add(b);
    return b;
  }

  release(b: PooledBuffer): void {
    let list = this.idle.get(b.bytes);
    if (!list) {
      list = [];
      this.idle.set(b.bytes, list);
    }
    list.push(b);
    this.idleBytes += b.bytes;
    if (this.idleBytes > this.maxIdleBytes) this.trim(this.maxIdleBytes);
  }

  /** Destroy idle buffers until at most `target` idle bytes remain (largest classes first). */
  trim(target = 0): void {
    const classes = [...this.idle.keys()].sort((x, y) => y - x);
    for (const cls of classes) {
      const list = this.idle.get(cls)!;
      while (list.length > 0 && this.idleBytes > target) {
        const b = list.shift()!;
        this.idleBytes -= b.bytes;
        this.destroy(b);
      }
      if (list.length === 0) this.idle.delete(cls);
      if (this.idleBytes <= target) return;
    }
  }

  private destroy(b: PooledBuffer): void {
    this.onEvict(b);
    this.all.delete(b);
    b.gpu.destroy();
  }

  /** Bytes held by idle (reusable) buffers. */
  get idleByteCount(): number {
    return this.idleBytes;
  }

  /** Bytes of every GPU buffer the pool holds, idle or handed out. */
  get totalBytes(): number {
    let t = 0;
    for (const b of this.all) t += b.bytes;
    return t;
  }

  destroyAll(): void {
    for (const b of this.all) b.gpu.destroy();
    this.all.clear();
    this.idle.clear();
    this.idleBytes = 0;
  }
}
