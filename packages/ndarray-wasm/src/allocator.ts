/**
 * A first-fit free-list allocator over a byte range that can only grow at the top: the JS side of
 * the WASM backend's heap. It never touches memory itself; the backend grows the WebAssembly.Memory
 * when `top` passes its end.
 *
 * Free blocks are kept sorted by address and merged with their neighbours on free, and a free block
 * that reaches `top` lowers `top`, so a long training loop that allocates and frees the same sizes
 * settles on a fixed footprint.
 */
export class FreeListAllocator {
  /** Free blocks, sorted by address, never adjacent (always merged). */
  private readonly starts: number[] = [];
  private readonly sizes: number[] = [];
  /** First byte past the highest block ever in use. */
  top: number;

  constructor(
    readonly base: number,
    readonly align = 64,
  ) {
    if (base % align !== 0) throw new Error(`FreeListAllocator: base ${base} is not a multiple of the alignment ${align}`);
    this.top = base;
  }

  /** Round a request up to the alignment (at least one unit, so every block has a distinct address). */
  blockSize(bytes: number): number {
    return Math.max(this.align, Math.ceil(bytes / this.align) * this.align);
  }

  /** Reserve `size` bytes (already a blockSize) and return the address. */
  allocate(size: number): number {
    // Best fit keeps large blocks whole for large requests; the list is short in practice
    // (merged neighbours), so a linear scan is cheaper than a tree.
    let best = -1;
    for (let i = 0; i < this.sizes.length; i++) {
      const s = this.sizes[i];
      if (s >= size && (best < 0 || s < this.sizes[best])) {
        best = i;
        if (s === size) break;
      }
    }
    if (best >= 0) {
      const addr = this.starts[best];
      if (this.sizes[best] === size) {
        this.starts.splice(best, 1);
        this.sizes.splice(best, 1);
      } else {
        this.starts[best] += size;
        this.sizes[best] -= size;
      }
      return addr;
    }
    const addr = this.top;
    this.top += size;
    return addr;
  }

  /** Return a block obtained from allocate (same size). */
  release(addr: number, size: number): void {
    // Binary search for the insertion point.
    let lo = 0;
    let hi = this.starts.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.starts[mid] < addr) lo = mid + 1;
      else hi = mid;
    }
    let start = addr;
    let end = addr + size;
    let at = lo;
    let remove = 0;
    if (at > 0 && this.starts[at - 1] + this.sizes[at - 1] === start) {
      at--;
      start = this.starts[at];
      remove++;
    }
    if (lo < this.starts.length && this.starts[lo] === end) {
      end += this.sizes[lo];
      remove++;
    }
    if (end === this.top) {
      this.starts.splice(at, remove);
      this.sizes.splice(at, remove);
      this.top = start;
      return;
    }
    this.starts.splice(at, remove, start);
    this.sizes.splice(at, remove, end - start);
  }

  /** Number of free blocks below top (fragmentation indicator, for tests). */
  get freeBlocks(): number {
    return this.starts.length;
  }
}
