import type { ElementwiseProgram, MatmulSpec, OperandLayout } from '@needle/ndarray';
import { bindings, f32Bits, PARAM_WORDS, type Access, type KernelSource } from './kernel';
import { programSteps } from './program';
import { PRELUDE } from './wgsl';

/**
 * Matmul layout: a workgroup covers TM rows of C and 4*lanes*CV columns; each invocation computes a
 * TM x 4CV block (CV vec4s of columns per row, the groups lanes*4 columns apart so neighbouring
 * lanes read neighbouring vec4s of B). All invocations of a workgroup share the same rows of A.
 * There is no workgroup memory and no barrier (which software rasterisers run slowly).
 *
 * Cost model on Mesa llvmpipe (22.3, 8-wide AVX2), measured in NOTES.md: every storage-buffer load
 * inside the k loop is a scalar loop over the 8 SIMD lanes with a bounds check per component
 * (~80 cycles per vec4 load, uniform address or not), while an FMA costs well under a cycle even
 * with its accumulator spilled to the stack. So the kernel minimises load instructions per FMA:
 * per 4 k steps it issues TM loads of A and 4*CV loads of B for 16*TM*CV vec4 FMAs.
 * On hardware GPUs the same kernel is a plain register-blocked matmul relying on the cache.
 */
export interface MatmulVariant {
  transA: boolean;
  transB: boolean;
  /** A read as aligned vec4: along k (not transposed) or along rows (transposed). */
  vecA: boolean;
  /** B read as aligned vec4: along columns (not transposed) or along k (transposed). */
  vecB: boolean;
  /** C written as vec4 (n % 4 == 0). */
  vecC: boolean;
  /** k % 4 == 0: no remainder loop (which would double the code, and so the compile time). */
  k4: boolean;
  /**
   * A and B read from texture mirrors of their buffers (textureLoad; see mirrorShape: the row
   * widths' log2 travel as uniforms) instead of storage loads, bound as sampled textures or as
   * read-only storage textures (MirrorKind); false: storage loads. Needs vecA and vecB.
   */
  tex: MirrorKind | false;
  /** Rows per workgroup (a multiple of 4). */
  tm: number;
  /** Column groups (vec4) per invocation. */
  cv: number;
  /** Invocations per workgroup. */
  lanes: number;
  /** An elementwise program applied to the product before it is stored (matmulProgram). */
  epilogue?: EpilogueVariant;
}

/**
 * How a matmul kernel binds the texture mirrors of A and B: 'sampled' (texture_2d, textureLoad
 * with a mip level) or 'storage' (texture_storage_2d<rgba32float, read>). The arithmetic and its
 * order are the same, so both give the storage-load kernel's results bit for bit. On llvmpipe a
 * storage-texture fetch measured ~2.3x cheaper than a sampled one (NOTES.md, session 6): it skips
 * the sampler path's per-lane mip-level handling.
 */
export type MirrorKind = 'sampled' | 'storage';

/**
 * How an epilogue input is read four columns at a time (vec4 outputs): 'v' one aligned vec4 (column
 * stride 1), 'b' one element broadcast (column stride 0), 's' four scalar loads; scalar outputs
 * read every input as 's'.
 */
export type EpilogueMode = 'v' | 'b' | 's';

export interface EpilogueVariant {
  readonly program: ElementwiseProgram;
  readonly modes: readonly EpilogueMode[];
}

/** The read mode of each epilogue input (layouts explicit: strides over [batch, m, n] and an offset). */
export function epilogueModes(layouts: readonly OperandLayout[], vecC: boolean): EpilogueMode[] {
  return layouts.map((l) => {
    if (!vecC) return 's';
    const [s0, s1, s2] = l.strides;
    if (s2 === 1 && l.offset % 4 === 0 && s0 % 4 === 0 && s1 % 4 === 0) return 'v';
    return s2 === 0 ? 'b' : 's';
  });
}

/** The block shape of a matmul, chosen per problem size (overridable for tuning). */
export interface MatmulTile {
  tm: number;
  cv: number;
  lanes: number;
}

export function matmulTile(s: MatmulSpec, maxInvocations: number): MatmulTile {
  const tm = s.m >= 16 ? 16 : s.m > 4 ? 8 : 4;
  // Each load instruction costs a loop over the SIMD lanes on llvmpipe, so the block of C an
  // invocation owns is as large as pays: 8 lanes (one AVX2 batch) with up to 8 vec4 column groups
  // each (16x32 accumulators, spilled to the stack, which is still far cheaper than the loads they
  // save). Measured on 128x784x512: 16x1 7, 16x4 13, 16x8 16 GFLOP per CPU-second; 32x8 reached 20
  // but took 8 s to compile (16x8: 2 s), so 16x8 is the largest tile. Narrow outputs take fewer groups
  // so no lanes idle, and tiles shrink until the grid has a few workgroups for the threads.
  let cv = s.n >= 256 ? wideGroups(s.n, tm) : s.n >= 128 ? 4 : s.n >= 64 ? 2 : 1;
  const groups = (c: number) => Math.ceil(s.n / (32 * c)) * Math.ceil(s.m / tm);
  while (cv > 1 && groups(cv) < 4) cv = cv > 4 ? 4 : cv / 2;
  if (cv > 1) return { tm, cv, lanes: Math.min(8, maxInvocations) };
  // Narrow outputs (e.g. the 10 logits of a classifier): most lanes of a batch would idle, so give
  // each workgroup more rows instead (128x512x10: 16 rows x 8 lanes 1.8, 32 x 4 2.3 GFLOP/cpu-s).
  if (s.n <= 16 && s.m >= 32) return { tm: 32, cv, lanes: Math.min(4, maxInvocations) };
  const lanesNeeded = Math.ceil(s.n / 4);
  let lanes = 8;
  while (lanes < lanesNeeded && lanes < 64) lanes *= 2;
  return { tm, cv, lanes: Math.min(lanes, maxInvocations) };
}

/**
 * Column groups per invocation for wide outputs (n >= 256): 5 to 8, whichever the cost model says
 * is cheapest once the last, partly empty, column block is counted (its idle lanes run the whole
 * loop). Per 4 k steps of one 8-lane batch: (tm + 4cv) vec4 loads at ~80 cycles and 16 tm cv
 * FMAs at ~1 (spilled accumulators); n = 512 keeps 8 (two full blocks), n = 784 takes 5 (five
 * blocks of 160 columns instead of four of 256, the last with 16).
 */
function wideGroups(n: number, tm: number): number {
  const vec4s = Math.ceil(n / 4);
  let best = 8;
  let bestCost = Infinity;
  for (const cv of [8, 7, 6, 5]) {
    const cost = Math.ceil(vec4s / (8 * cv)) * (80 * (tm + 4 * cv) + 16 * tm * cv);
    if (cost < bestCost) {
      best = cv;
      bestCost = cost;
    }
  }
  return best;
}

/** `textures`: read A and B through texture mirrors where both are vec4-readable (the caller copies them). */
export function matmulVariant(s: MatmulSpec, maxInvocations: number, tile: MatmulTile = matmulTile(s, maxInvocations), textures: MirrorKind | false = false): MatmulVariant {
  const aAligned = s.aBatchStride % 4 === 0 && (s.aOffset ?? 0) % 4 === 0;
  const bAligned = s.bBatchStride % 4 === 0 && (s.bOffset ?? 0) % 4 === 0;
  const vecA = aAligned && (s.transA ? s.m % 4 === 0 : s.k % 4 === 0);
  const vecB = bAligned && (s.transB ? s.k % 4 === 0 : s.n % 4 === 0);
  return {
    transA: s.transA,
    transB: s.transB,
    vecA,
    vecB,
    vecC: s.n % 4 === 0 && (s.outOffset ?? 0) % 4 === 0,
    k4: s.k % 4 === 0,
    tex: vecA && vecB ? textures : false,
    ...tile,
  };
}


/** Workgroup grid of a matmul (z: batch entries per dispatch are added by the caller). */
export function matmulGrid(s: MatmulSpec, v: MatmulVariant): [number, number] {
  return [Math.ceil(Math.ceil(s.n / 4) / (v.lanes * v.cv)), Math.ceil(s.m / v.tm)];
}

/**
 * The uniform block every matmul kernel declares: sizes, batch strides, the first batch entry of
 * this dispatch, operand offsets, the epilogue's const zero, the log2 of the texel row widths of
 * A's and B's texture mirrors (words 10 and 11), then the epilogue's scalars (word 12) and input
 * layouts (word 28: offset and the [batch, m, n] strides of each input).
 */
const MATMUL_PARAMS = 'm: u32, k: u32, n: u32, abs: u32, bbs: u32, base: u32, aoff: u32, boff: u32, coff: u32, zero: u32, tas: u32, tbs: u32, s: array<vec4<f32>, 4>, l: array<vec4<i32>, 5>,';
const MIRROR_SHIFT_WORD = 10;
const EPILOGUE_SCALAR_WORD = 12;
const EPILOGUE_LAYOUT_WORD = 28;
/** Most epilogue inputs (a stage binds 8 storage buffers: a, b, out and five). */
export const MAX_EPILOGUE_INPUTS = 5;

/** `mirrorShifts`: log2 of the texel row widths of A's and B's texture mirrors (texture kernels). */
export function matmulParams(s: MatmulSpec, batchBase: number, epilogue?: { scalars: readonly number[]; layouts: readonly OperandLayout[] }, mirrorShifts?: readonly [number, number]): Uint32Array {
  const w = new Uint32Array(PARAM_WORDS);
  w[0] = s.m;
  w[1] = s.k;
  w[2] = s.n;
  w[3] = s.aBatchStride;
  w[4] = s.bBatchStride;
  w[5] = batchBase;
  w[6] = s.aOffset ?? 0;
  w[7] = s.bOffset ?? 0;
  w[8] = s.outOffset ?? 0;
  if (mirrorShifts) [w[MIRROR_SHIFT_WORD], w[MIRROR_SHIFT_WORD + 1]] = mirrorShifts;
  if (epilogue) {
    epilogue.scalars.forEach((x, i) => (w[EPILOGUE_SCALAR_WORD + i] = f32Bits(x)));
    const l = new Int32Array(w.buffer, EPILOGUE_LAYOUT_WORD * 4, 4 * MAX_EPILOGUE_INPUTS);
    epilogue.layouts.forEach((x, k) => l.set([x.offset, ...x.strides], 4 * k));
  }
  return w;
}

/** Bindings of a matmul kernel: a, b (buffers, or their texture mirrors), c, then the epilogue inputs. */
function mirrorAccess(tex: MirrorKind | false): Access {
  return tex === 'storage' ? 'storage-texture' : tex === 'sampled' ? 'texture' : 'read';
}

function matmulStorage(epilogue: EpilogueVariant | undefined, tex: MirrorKind | false = false): Access[] {
  const ab = mirrorAccess(tex);
  return [ab, ab, 'read_write', ...(epilogue?.modes ?? []).map((): Access => 'read')];
}

function matmulDecl(vecA: boolean, vecB: boolean, vecC: boolean, epilogue: EpilogueVariant | undefined, tex: MirrorKind | false = false): string {
  const ab = mirrorAccess(tex);
  return bindings(MATMUL_PARAMS, [
    { name: 'a', access: ab, type: vecA ? 'vec4<f32>' : 'f32' },
    { name: 'b', access: ab, type: vecB ? 'vec4<f32>' : 'f32' },
    { name: 'c', access: 'read_write', type: vecC ? 'vec4<f32>' : 'f32' },
    ...(epilogue?.modes ?? []).map((_, k) => ({ name: `e${k}`, access: 'read' as const, type: 'vec4<f32>' })),
  ]);
}

/**
 * The epilogue as a WGSL function `epi(t, row, col)`: it reads the product the kernel has just
 * stored at that element of C (four columns with `vecC`), the epilogue inputs through their
 * layouts, evaluates the program and stores its value over the product. Reading the stored product
 * back, instead of evaluating the program on the accumulators in registers, keeps one copy of the
 * program in the shader (not one per accumulator: the 16x8 tile has 128, and compile time grows
 * with code size), costs one more load per output vec4, and is exactly the contract's "product
 * rounded to float32 as if stored". Each output element belongs to one invocation, so no barrier.
 */
function epilogueFn(e: EpilogueVariant, vecC: boolean): string {
  const idx = (k: number, col: string) => `u32(p.l[${k}].x + i32(t) * p.l[${k}].y + i32(row) * p.l[${k}].z + i32(${col}) * p.l[${k}].w)`;
  const ld = (k: number, i: string) => `e${k}[(${i}) >> 2u][(${i}) & 3u]`;
  const lanes = vecC ? ['.x', '.y', '.z', '.w'] : [''];
  const loads = e.modes.map((mode, k) => {
    if (!vecC) return `  let x${k + 1} = ${ld(k, `i${k}`)};`;
    if (mode === 'v') return `  let x${k + 1} = e${k}[i${k} >> 2u];`;
    if (mode === 'b') return `  let x${k + 1} = vec4<f32>(${ld(k, `i${k}`)});`;
    return `  let x${k + 1} = vec4<f32>(${[0, 1, 2, 3].map((j) => ld(k, j ? `u32(i32(i${k}) + ${j} * p.l[${k}].w)` : `i${k}`)).join(', ')});`;
  });
  const out = e.program.outputs[0];
  const body = lanes.flatMap((c, lane) => programSteps(e.program, (j) => `v${j}_${lane}`, (q) => `x${q}${c}`));
  const result = vecC ? `vec4<f32>(${lanes.map((_, lane) => `v${out}_${lane}`).join(', ')})` : `v${out}_0`;
  return `fn epi(t: u32, row: u32, col: u32) {
  let o = p.coff + (t * p.m + row) * p.n + col;
  let x0 = ${vecC ? 'c[o >> 2u]' : 'c[o]'};
${e.modes.map((_, k) => `  let i${k} = ${idx(k, 'col')};`).join('\n')}
${loads.join('\n')}
${body.join('\n')}
  ${vecC ? 'c[o >> 2u]' : 'c[o]'} = ${result};
}`;
}

function epilogueKey(e: EpilogueVariant | undefined): string {
  return e ? `:epi:${e.modes.join('')}:${e.program.key}` : '';
}

/**
 * `ta(i)`/`tb(i)`: vec4 number i of A or B read from its texture mirror (row widths' log2 in the
 * uniform words `tas`/`tbs`); empty without mirrors.
 */
function mirrorFetchFns(tex: MirrorKind | false): string {
  if (!tex) return '';
  return ['a', 'b'].map((x) => `fn t${x}(i: u32) -> vec4<f32> { return textureLoad(${x}, vec2<u32>(i & ((1u << p.t${x}s) - 1u), i >> p.t${x}s)${tex === 'sampled' ? ', 0' : ''}); }`).join('\n');
}

/** The key suffix of a narrow or small-k kernel reading mirrors ('' without, so older keys stay). */
function mirrorKey(tex: MirrorKind | false): string {
  return tex ? `:t${tex === 'storage' ? 2 : 1}` : '';
}

export function matmulKernel(v: MatmulVariant): KernelSource {
  const bits = [v.transA, v.transB, v.vecA, v.vecB, v.vecC, v.k4].map((b) => (b ? 1 : 0)).join('') + (v.tex === 'storage' ? 2 : v.tex ? 1 : 0);
  return {
    key: `matmul:${bits}:${v.tm}x${v.cv}x${v.lanes}${epilogueKey(v.epilogue)}`,
    storage: matmulStorage(v.epilogue, v.tex),
    code() {
      const decl = matmulDecl(v.vecA, v.vecB, v.vecC, v.epilogue, v.tex);
      // vec4 number `i` of A or B: a storage load, or the texel of the mirror that holds it.
      const a4 = (i: string) => (v.tex ? `ta(${i})` : `a[${i}]`);
      const b4 = (i: string) => (v.tex ? `tb(${i})` : `b[${i}]`);
      const sa = v.vecA ? `${a4('i >> 2u')}[i & 3u]` : 'a[i]';
      const sb = v.vecB ? `${b4('i >> 2u')}[i & 3u]` : 'b[i]';
      // Flat index of opA(i, q) and opB(q, j) in the stored layouts.
      const aIdx = (i: string, q: string) => (v.transA ? `ab + (${q}) * p.m + ${i}` : `ab + ${i} * p.k + ${q}`);
      const bIdx = (q: string, j: string) => (v.transB ? `bb + ${j} * p.k + ${q}` : `bb + (${q}) * p.n + ${j}`);
      const R = Array.from({ length: v.tm }, (_, i) => i);
      const G = Array.from({ length: v.cv }, (_, i) => i);
      const K4 = [0, 1, 2, 3];
      const comp = ['x', 'y', 'z', 'w'];

      const loadA: string[] = [];
      if (v.vecA && !v.transA) {
        for (const r of R) loadA.push(`let a${r} = ${a4(`(${aIdx(`r${r}`, 'q')}) >> 2u`)};`);
      } else if (v.vecA && v.transA) {
        // Rows in groups of four: vec4 along the stored rows of A^T, the group start clamped so the
        // load stays in range (rows past m are never stored).
        for (let g = 0; g < v.tm / 4; g++) {
          for (const kk of K4) loadA.push(`let t${g}_${kk} = ${a4(`(${aIdx(`rg${g}`, `q + ${kk}u`)}) >> 2u`)};`);
          for (let r = 0; r < 4; r++) loadA.push(`let a${g * 4 + r} = vec4<f32>(${K4.map((kk) => `t${g}_${kk}.${comp[r]}`).join(', ')});`);
        }
      } else {
        for (const r of R) loadA.push(`let a${r} = vec4<f32>(${K4.map((kk) => `la(${aIdx(`r${r}`, `q + ${kk}u`)})`).join(', ')});`);
      }
      // b{g}_{kk}: the 4 columns of group g at k step q + kk.
      const loadB: string[][] = G.map(() => []);
      for (const g of G) {
        if (v.vecB && !v.transB) {
          for (const kk of K4) loadB[g].push(`let b${g}_${kk} = ${b4(`(${bIdx(`q + ${kk}u`, `v${g}`)}) >> 2u`)};`);
        } else if (v.vecB && v.transB) {
          for (const j of K4) loadB[g].push(`let u${g}_${j} = ${b4(`(${bIdx('q', `c${g}_${j}`)}) >> 2u`)};`);
          for (const kk of K4) loadB[g].push(`let b${g}_${kk} = vec4<f32>(${K4.map((j) => `u${g}_${j}.${comp[kk]}`).join(', ')});`);
        } else {
          for (const kk of K4) loadB[g].push(`let b${g}_${kk} = vec4<f32>(${K4.map((j) => `lb(${bIdx(`q + ${kk}u`, `c${g}_${j}`)})`).join(', ')});`);
        }
      }
      // Column group by column group: its four B vectors stay in registers while every row uses them.
      const fma = G.flatMap((g) => [...loadB[g], ...R.map((r) => `acc${r}_${g} += a${r}.x * b${g}_0 + a${r}.y * b${g}_1 + a${r}.z * b${g}_2 + a${r}.w * b${g}_3;`)]);
      const tail = [
        ...G.map((g) => `let bt${g} = vec4<f32>(${K4.map((j) => `lb(${bIdx('q', `c${g}_${j}`)})`).join(', ')});`),
        ...R.map((r) => `let at${r} = la(${aIdx(`r${r}`, 'q')});`),
        ...R.flatMap((r) => G.map((g) => `acc${r}_${g} += at${r} * bt${g};`)),
      ];
      const store = R.flatMap((r) => G.map((g) => {
        const row = `row0 + ${r}u`;
        if (v.vecC) return `if (${row} < p.m && col${g} < p.n) { c[(cb + (${row}) * p.n + col${g}) >> 2u] = acc${r}_${g}; }`;
        return K4.map((j) => `if (${row} < p.m && col${g} + ${j}u < p.n) { c[cb + (${row}) * p.n + col${g} + ${j}u] = acc${r}_${g}.${comp[j]}; }`).join('\n  ');
      }));
      const groups = v.vecA && v.transA
        ? Array.from({ length: v.tm / 4 }, (_, g) => `let rg${g} = min(row0 + ${g * 4}u, p.m - 4u);`)
        : [];
      const cols = G.flatMap((g) => [
        // Column groups of one invocation are lanes*4 apart, so neighbouring lanes read neighbouring vec4s.
        `let col${g} = (wid.x * ${v.lanes * v.cv}u + ${g * v.lanes}u + lid.x) * 4u;`,
        ...(v.vecB && !v.transB ? [`let v${g} = min(col${g}, p.n - 4u);`] : []),
        ...K4.map((j) => `let c${g}_${j} = min(col${g} + ${j}u, p.n - 1u);`),
      ]);
      const ind = (lines: string[], n: number) => lines.map((l) => ' '.repeat(n) + l).join('\n');
      // The epilogue runs over the invocation's block once all of it is stored.
      const epi = v.epilogue
        ? `  for (var r = 0u; r < ${v.tm}u; r++) {
    let row = row0 + r;
    if (row < p.m) {
${ind(G.flatMap((g) => (v.vecC ? [`if (col${g} < p.n) { epi(t, row, col${g}); }`] : K4.map((j) => `if (col${g} + ${j}u < p.n) { epi(t, row, col${g} + ${j}u); }`))), 6)}
    }
  }
`
        : '';
      const texFns = mirrorFetchFns(v.tex);
      return `${v.epilogue ? `${PRELUDE}\n` : ''}${decl}
${v.epilogue ? epilogueFn(v.epilogue, v.vecC) : ''}
${texFns}
fn la(i: u32) -> f32 { return ${sa}; }
fn lb(i: u32) -> f32 { return ${sb}; }
@compute @workgroup_size(${v.lanes}, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let row0 = wid.y * ${v.tm}u;
  let t = wid.z + p.base;
  let ab = p.aoff + t * p.abs;
  let bb = p.boff + t * p.bbs;
  let cb = p.coff + t * p.m * p.n;
${ind(R.map((r) => `let r${r} = min(row0 + ${r}u, p.m - 1u);`), 2)}
${ind(groups, 2)}
${ind(cols, 2)}
${ind(R.flatMap((r) => G.map((g) => `var acc${r}_${g} = vec4<f32>(0.0);`)), 2)}
  let k4 = p.k & ~3u;
  for (var q = 0u; q < k4; q += 4u) {
${ind([...loadA, ...fma], 4)}
  }
${v.k4 ? '' : `  for (var q = k4; q < p.k; q++) {
${ind(tail, 4)}
  }
`}  ${store.join('\n  ')}
${epi}}
`;
    },
  };
}

/** Invocations per workgroup of the narrow-output kernel. */
const ROW_LANES = 8;

/**
 * Rows of C per invocation of the narrow-output kernel: 8 once there are rows for two workgroups
 * of them (per 4 k steps 8 + n loads for 8 rows instead of 4 + n for 4), else 4.
 */
export function matmulRowsPerLane(s: MatmulSpec): number {
  return s.m >= 16 * ROW_LANES ? 8 : 4;
}

/**
 * Whether the narrow-output kernel applies: at most 16 columns, and the operands readable as
 * aligned vec4s (A along k, or along rows when transposed; B's four k rows as one contiguous block,
 * or along k when transposed).
 */
export function matmulRowsApplies(s: MatmulSpec): boolean {
  const aligned = s.aBatchStride % 4 === 0 && s.bBatchStride % 4 === 0 && (s.aOffset ?? 0) % 4 === 0 && (s.bOffset ?? 0) % 4 === 0;
  if (s.n > 16 || s.m < 8 || !aligned) return false;
  const vecA = s.transA ? s.m % 4 === 0 : s.k % 4 === 0;
  const vecB = s.transB ? s.k % 4 === 0 : true;
  return vecA && vecB;
}

export function matmulRowsGrid(s: MatmulSpec): [number, number] {
  return [Math.ceil(s.m / (matmulRowsPerLane(s) * ROW_LANES)), 1];
}

/**
 * Narrow outputs (n <= 16: a classifier's logits, their gradients): lanes over rows instead of
 * columns. Each invocation owns 4 rows and every column, so its 4 rows of A are its own vec4 loads
 * and B's values are the same for all lanes: per 4 k steps, 4 + n vec4 loads feed 16n FMAs, where
 * the column-lane kernel, with n = 10 filling 3 of 8 lanes, needed ~48 loads for fewer useful FMAs.
 * Without a transposed B, rows q..q+3 of B are 4n contiguous floats, so n aligned vec4 loads hold
 * them whatever n is (q is a multiple of 4 and the batch stride too); element (kk, j) is component
 * (kk*n + j) % 4 of vector (kk*n + j) / 4, both fixed in the shader text.
 */
export function matmulRowsKernel(s: MatmulSpec, epilogue?: EpilogueVariant, tex: MirrorKind | false = false): KernelSource {
  const { n, transA, transB } = s;
  const k4 = s.k % 4 === 0;
  const groups = Math.ceil(n / 4);
  const rows = matmulRowsPerLane(s);
  const a4 = (i: string) => (tex ? `ta(${i})` : `a[${i}]`);
  const b4 = (i: string) => (tex ? `tb(${i})` : `b[${i}]`);
  return {
    key: `matmul-rows:${n}:${rows === 4 ? '' : `r${rows}:`}${transA ? 1 : 0}${transB ? 1 : 0}${k4 ? 1 : 0}${mirrorKey(tex)}${epilogueKey(epilogue)}`,
    storage: matmulStorage(epilogue, tex),
    code() {
      const decl = matmulDecl(true, true, false, epilogue, tex);
      const R = Array.from({ length: rows }, (_, i) => i);
      const G = Array.from({ length: groups }, (_, g) => g);
      const K4 = [0, 1, 2, 3];
      const comp = ['x', 'y', 'z', 'w'];
      const lines: string[] = [];
      if (transA) {
        // A stored k x m: four of the lane's rows at k step q + kk are one vec4 (m % 4 == 0).
        for (let h = 0; h < rows / 4; h++) for (const kk of K4) lines.push(`let t${h}_${kk} = ${a4(`(ab + (q + ${kk}u) * p.m + rg${h}) >> 2u`)};`);
        for (const i of R) lines.push(`let a${i} = vec4<f32>(${K4.map((kk) => `t${i >> 2}_${kk}.${comp[i & 3]}`).join(', ')});`);
      } else {
        for (const i of R) lines.push(`let a${i} = ${a4(`(ab + r${i} * p.k + q) >> 2u`)};`);
      }
      // bv(kk, j): B's value at k step q + kk, column j, as WGSL text.
      let bv: (kk: number, j: number) => string;
      if (transB) {
        for (let j = 0; j < n; j++) lines.push(`let u${j} = ${b4(`(bb + ${j}u * p.k + q) >> 2u`)};`);
        bv = (kk, j) => `u${j}.${comp[kk]}`;
      } else {
        lines.push('let w0i = (bb + q * p.n) >> 2u;');
        for (let v = 0; v < n; v++) lines.push(`let w${v} = ${b4(`w0i + ${v}u`)};`);
        bv = (kk, j) => `w${(kk * n + j) >> 2}.${comp[(kk * n + j) & 3]}`;
      }
      for (const g of G) {
        for (const kk of K4) {
          lines.push(`let b${g}_${kk} = vec4<f32>(${K4.map((j) => (4 * g + j < n ? bv(kk, 4 * g + j) : '0.0')).join(', ')});`);
        }
        for (const i of R) lines.push(`acc${i}_${g} += a${i}.x * b${g}_0 + a${i}.y * b${g}_1 + a${i}.z * b${g}_2 + a${i}.w * b${g}_3;`);
      }
      const la = transA ? '(ab + q * p.m + r_)' : '(ab + r_ * p.k + q)';
      const lb = transB ? '(bb + j_ * p.k + q)' : '(bb + q * p.n + j_)';
      const tail = [
        ...R.map((i) => `let at${i} = ld_a(${la.replace('r_', `r${i}`)});`),
        ...G.map((g) => `let bt${g} = vec4<f32>(${K4.map((j) => (4 * g + j < n ? `ld_b(${lb.replace('j_', `${4 * g + j}u`)})` : '0.0')).join(', ')});`),
        ...R.flatMap((i) => G.map((g) => `acc${i}_${g} += at${i} * bt${g};`)),
      ];
      const store = R.flatMap((i) => G.flatMap((g) => K4.filter((j) => 4 * g + j < n).map((j) =>
        `if (row0 + ${i}u < p.m) { c[cb + (row0 + ${i}u) * p.n + ${4 * g + j}u] = acc${i}_${g}.${comp[j]}; }`)));
      const ind = (ls: string[], w: number) => ls.map((l) => ' '.repeat(w) + l).join('\n');
      const epi = epilogue
        ? `  for (var i = 0u; i < ${rows}u; i++) {
    if (row0 + i < p.m) {
      for (var j = 0u; j < p.n; j++) { epi(t, row0 + i, j); }
    }
  }
`
        : '';
      return `${epilogue ? `${PRELUDE}\n` : ''}${decl}
${epilogue ? epilogueFn(epilogue, false) : ''}
${mirrorFetchFns(tex)}
fn ld_a(i: u32) -> f32 { return ${a4('i >> 2u')}[i & 3u]; }
fn ld_b(i: u32) -> f32 { return ${b4('i >> 2u')}[i & 3u]; }
@compute @workgroup_size(${ROW_LANES}, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let row0 = (wid.x * ${ROW_LANES}u + lid.x) * ${rows}u;
  let t = wid.z + p.base;
  let ab = p.aoff + t * p.abs;
  let bb = p.boff + t * p.bbs;
  let cb = p.coff + t * p.m * p.n;
${ind(R.map((i) => `let r${i} = min(row0 + ${i}u, p.m - 1u);`), 2)}
${transA ? Array.from({ length: rows / 4 }, (_, h) => `  let rg${h} = min(row0 + ${4 * h}u, p.m - 4u);`).join('\n') : ''}
${ind(R.flatMap((i) => G.map((g) => `var acc${i}_${g} = vec4<f32>(0.0);`)), 2)}
  let k4 = p.k & ~3u;
  for (var q = 0u; q < k4; q += 4u) {
${ind(lines, 4)}
  }
${k4 ? '' : `  for (var q = k4; q < p.k; q++) {
${ind(tail, 4)}
  }
`}${ind(store, 2)}
${epi}}
`;
    },
  };
}

/** Largest k the small-k kernel unrolls (its code grows with k). */
export const SMALL_K_MAX = 16;

/**
 * Rows of A per aligned vec4 block of the small-k kernel (not transposed): g rows hold g*k floats,
 * a whole number of vec4s: 1 when k % 4 == 0, 2 when k is even, else 4.
 */
function smallKRowGroup(k: number): number {
  return k % 4 === 0 ? 1 : k % 2 === 0 ? 2 : 4;
}

/**
 * Whether the small-k kernel applies: 1 <= k <= SMALL_K_MAX with k % 4 != 0 (the column-lane
 * kernel needs k % 4 == 0 for vec4 loads and otherwise loads every value of A and B alone), at
 * least 32 columns (narrower outputs take the rows kernel), n % 4 == 0 (vec4 columns of B and C),
 * vec4-aligned offsets and batch strides, and m % 4 == 0 with a transposed A, else m a multiple of
 * A's row group (so the clamped last group stays aligned).
 */
export function matmulSmallKApplies(s: MatmulSpec): boolean {
  if (s.k < 1 || s.k > SMALL_K_MAX || s.k % 4 === 0 || s.n < 32 || s.n % 4 !== 0) return false;
  const aligned = [s.aBatchStride, s.bBatchStride, s.aOffset ?? 0, s.bOffset ?? 0, s.outOffset ?? 0].every((x) => x % 4 === 0);
  const g = s.transA ? 4 : smallKRowGroup(s.k);
  return aligned && s.m >= g && s.m % g === 0;
}

/** Rows and vec4 column groups per invocation of the small-k kernel (8 lanes a workgroup). */
export function smallKTile(s: MatmulSpec): { tm: number; cv: number } {
  const tm = Math.min(16, 4 * Math.ceil(s.m / 4));
  let cv = s.n >= 256 ? 4 : s.n >= 64 ? 2 : 1;
  while (cv > 1 && Math.ceil(s.n / (32 * cv)) * Math.ceil(s.m / tm) < 4) cv /= 2;
  return { tm, cv };
}

export function matmulSmallKGrid(s: MatmulSpec): [number, number] {
  const { tm, cv } = smallKTile(s);
  return [Math.ceil(s.n / (32 * cv)), Math.ceil(s.m / tm)];
}

/**
 * Products with a short inner dimension that is not a multiple of 4 (layer 2's input gradient of
 * a 10-class classifier, 128x10x512 with B transposed; a 3x3 single-channel convolution's k = 9):
 * k is unrolled in the shader, so every operand is read as aligned vec4 blocks whatever k is.
 * Each invocation owns TM rows x CV vec4 column groups (8 lanes over neighbouring groups, as in
 * the column-lane kernel). A's TM rows are TM*k contiguous floats (groups of g rows, see
 * smallKRowGroup), or with A transposed k vec4s of four rows; B's four columns of a group are k
 * vec4s along the rows of B, or with B transposed 4k contiguous floats. Per invocation that is
 * TM*k/4 + CV*k vec4 loads, where the column-lane kernel with scalar loads needs 4*(TM + 4*CV) per
 * four k steps. Each output sums its k products in order.
 */
export function matmulSmallKKernel(s: MatmulSpec, epilogue?: EpilogueVariant, tex: MirrorKind | false = false): KernelSource {
  const { k, transA, transB } = s;
  const { tm, cv } = smallKTile(s);
  const lanes = 8;
  const a4 = (i: string) => (tex ? `ta(${i})` : `a[${i}]`);
  const b4 = (i: string) => (tex ? `tb(${i})` : `b[${i}]`);
  return {
    key: `matmul-smallk:${k}:${transA ? 1 : 0}${transB ? 1 : 0}:${tm}x${cv}${mirrorKey(tex)}${epilogueKey(epilogue)}`,
    storage: matmulStorage(epilogue, tex),
    code() {
      const decl = matmulDecl(true, true, true, epilogue, tex);
      const R = Array.from({ length: tm }, (_, i) => i);
      const G = Array.from({ length: cv }, (_, i) => i);
      const Q = Array.from({ length: k }, (_, q) => q);
      const comp = ['x', 'y', 'z', 'w'];
      const lines: string[] = [];
      // av(r, q): A's value at row row0 + r, k step q, as WGSL text.
      let av: (r: number, q: number) => string;
      if (transA) {
        // A stored k x m: four rows at step q are one vec4; the group start clamped (m % 4 == 0).
        for (let i = 0; i < tm / 4; i++) {
          lines.push(`let rg${i} = min(row0 + ${4 * i}u, p.m - 4u);`);
          for (const q of Q) lines.push(`let y${i}_${q} = ${a4(`(ab + ${q}u * p.m + rg${i}) >> 2u`)};`);
        }
        av = (r, q) => `y${r >> 2}_${q}.${comp[r & 3]}`;
      } else {
        // g rows of A are g*k contiguous floats from a vec4 boundary; the last group clamped.
        const g = smallKRowGroup(k);
        const per = (g * k) / 4;
        for (let i = 0; i < tm / g; i++) {
          lines.push(`let x${i}b = (ab + min(row0 + ${g * i}u, p.m - ${g}u) * ${k}u) >> 2u;`);
          for (let v = 0; v < per; v++) lines.push(`let x${i}_${v} = ${a4(`x${i}b + ${v}u`)};`);
        }
        av = (r, q) => {
          const f = (r % g) * k + q;
          return `x${Math.floor(r / g)}_${f >> 2}.${comp[f & 3]}`;
        };
      }
      const acc: string[] = [];
      for (const g of G) {
        lines.push(`let col${g} = (wid.x * ${lanes * cv}u + ${g * lanes}u + lid.x) * 4u;`, `let cs${g} = min(col${g}, p.n - 4u);`);
        // bv(q): the group's four columns at step q, as a vec4 expression.
        let bv: (q: number) => string;
        if (transB) {
          // B stored n x k: the four columns are 4k contiguous floats from cs * k (a multiple of 4).
          lines.push(`let w${g}b = (bb + cs${g} * ${k}u) >> 2u;`);
          for (const v of Q) lines.push(`let w${g}_${v} = ${b4(`w${g}b + ${v}u`)};`);
          const el = (j: number, q: number) => `w${g}_${(j * k + q) >> 2}.${comp[(j * k + q) & 3]}`;
          bv = (q) => `vec4<f32>(${[0, 1, 2, 3].map((j) => el(j, q)).join(', ')})`;
        } else {
          for (const q of Q) lines.push(`let w${g}_${q} = ${b4(`(bb + ${q}u * p.n + cs${g}) >> 2u`)};`);
          bv = (q) => `w${g}_${q}`;
        }
        for (const q of Q) if (transB) lines.push(`let bq${g}_${q} = ${bv(q)};`);
        const b = (q: number) => (transB ? `bq${g}_${q}` : bv(q));
        for (const r of R) {
          lines.push(`let acc${r}_${g} = ${Q.map((q) => `${av(r, q)} * ${b(q)}`).join(' + ')};`);
          acc.push(`if (row0 + ${r}u < p.m && col${g} < p.n) { c[(cb + (row0 + ${r}u) * p.n + col${g}) >> 2u] = acc${r}_${g}; }`);
        }
      }
      const ind = (ls: string[], w: number) => ls.map((l) => ' '.repeat(w) + l).join('\n');
      const epi = epilogue
        ? `  for (var r = 0u; r < ${tm}u; r++) {
    let row = row0 + r;
    if (row < p.m) {
${ind(G.map((g) => `if (col${g} < p.n) { epi(t, row, col${g}); }`), 6)}
    }
  }
`
        : '';
      return `${epilogue ? `${PRELUDE}\n` : ''}${decl}
${epilogue ? epilogueFn(epilogue, true) : ''}
${mirrorFetchFns(tex)}
@compute @workgroup_size(${lanes}, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let row0 = wid.y * ${tm}u;
  let t = wid.z + p.base;
  let ab = p.aoff + t * p.abs;
  let bb = p.boff + t * p.bbs;
  let cb = p.coff + t * p.m * p.n;
${ind(lines, 2)}
${ind(acc, 2)}
${epi}}
`;
    },
  };
}
