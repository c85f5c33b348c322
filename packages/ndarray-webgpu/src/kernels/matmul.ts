import type { MatmulSpec } from '@needle/ndarray';
import { bindings, PARAM_WORDS, type KernelSource } from './kernel';

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
  /** Rows per workgroup (a multiple of 4). */
  tm: number;
  /** Column groups (vec4) per invocation. */
  cv: number;
  /** Invocations per workgroup. */
  lanes: number;
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
  let cv = s.n >= 256 ? 8 : s.n >= 128 ? 4 : s.n >= 64 ? 2 : 1;
  const groups = (c: number) => Math.ceil(s.n / (32 * c)) * Math.ceil(s.m / tm);
  while (cv > 1 && groups(cv) < 4) cv /= 2;
  if (cv > 1) return { tm, cv, lanes: Math.min(8, maxInvocations) };
  // Narrow outputs (e.g. the 10 logits of a classifier): most lanes of a batch would idle, so give
  // each workgroup more rows instead (128x512x10: 16 rows x 8 lanes 1.8, 32 x 4 2.3 GFLOP/cpu-s).
  if (s.n <= 16 && s.m >= 32) return { tm: 32, cv, lanes: Math.min(4, maxInvocations) };
  const lanesNeeded = Math.ceil(s.n / 4);
  let lanes = 8;
  while (lanes < lanesNeeded && lanes < 64) lanes *= 2;
  return { tm, cv, lanes: Math.min(lanes, maxInvocations) };
}

export function matmulVariant(s: MatmulSpec, maxInvocations: number, tile: MatmulTile = matmulTile(s, maxInvocations)): MatmulVariant {
  const aAligned = s.aBatchStride % 4 === 0;
  const bAligned = s.bBatchStride % 4 === 0;
  return {
    transA: s.transA,
    transB: s.transB,
    vecA: aAligned && (s.transA ? s.m % 4 === 0 : s.k % 4 === 0),
    vecB: bAligned && (s.transB ? s.k % 4 === 0 : s.n % 4 === 0),
    vecC: s.n % 4 === 0,
    k4: s.k % 4 === 0,
    ...tile,
  };
}

/** Workgroup grid of a matmul (z: batch entries per dispatch are added by the caller). */
export function matmulGrid(s: MatmulSpec, v: MatmulVariant): [number, number] {
  return [Math.ceil(Math.ceil(s.n / 4) / (v.lanes * v.cv)), Math.ceil(s.m / v.tm)];
}

export function matmulParams(s: MatmulSpec, batchBase: number): Uint32Array {
  const w = new Uint32Array(PARAM_WORDS);
  w[0] = s.m;
  w[1] = s.k;
  w[2] = s.n;
  w[3] = s.aBatchStride;
  w[4] = s.bBatchStride;
  w[5] = batchBase;
  return w;
}

export function matmulKernel(v: MatmulVariant): KernelSource {
  const bits = [v.transA, v.transB, v.vecA, v.vecB, v.vecC, v.k4].map((b) => (b ? 1 : 0)).join('');
  return {
    key: `matmul:${bits}:${v.tm}x${v.cv}x${v.lanes}`,
    storage: ['read', 'read', 'read_write'],
    code() {
      const decl = bindings('m: u32, k: u32, n: u32, abs: u32, bbs: u32, base: u32,', [
        { name: 'a', access: 'read', type: v.vecA ? 'vec4<f32>' : 'f32' },
        { name: 'b', access: 'read', type: v.vecB ? 'vec4<f32>' : 'f32' },
        { name: 'c', access: 'read_write', type: v.vecC ? 'vec4<f32>' : 'f32' },
      ]);
      const sa = v.vecA ? 'a[i >> 2u][i & 3u]' : 'a[i]';
      const sb = v.vecB ? 'b[i >> 2u][i & 3u]' : 'b[i]';
      // Flat index of opA(i, q) and opB(q, j) in the stored layouts.
      const aIdx = (i: string, q: string) => (v.transA ? `ab + (${q}) * p.m + ${i}` : `ab + ${i} * p.k + ${q}`);
      const bIdx = (q: string, j: string) => (v.transB ? `bb + ${j} * p.k + ${q}` : `bb + (${q}) * p.n + ${j}`);
      const R = Array.from({ length: v.tm }, (_, i) => i);
      const G = Array.from({ length: v.cv }, (_, i) => i);
      const K4 = [0, 1, 2, 3];
      const comp = ['x', 'y', 'z', 'w'];

      const loadA: string[] = [];
      if (v.vecA && !v.transA) {
        for (const r of R) loadA.push(`let a${r} = a[(${aIdx(`r${r}`, 'q')}) >> 2u];`);
      } else if (v.vecA && v.transA) {
        // Rows in groups of four: vec4 along the stored rows of A^T, the group start clamped so the
        // load stays in range (rows past m are never stored).
        for (let g = 0; g < v.tm / 4; g++) {
          for (const kk of K4) loadA.push(`let t${g}_${kk} = a[(${aIdx(`rg${g}`, `q + ${kk}u`)}) >> 2u];`);
          for (let r = 0; r < 4; r++) loadA.push(`let a${g * 4 + r} = vec4<f32>(${K4.map((kk) => `t${g}_${kk}.${comp[r]}`).join(', ')});`);
        }
      } else {
        for (const r of R) loadA.push(`let a${r} = vec4<f32>(${K4.map((kk) => `la(${aIdx(`r${r}`, `q + ${kk}u`)})`).join(', ')});`);
      }
      // b{g}_{kk}: the 4 columns of group g at k step q + kk.
      const loadB: string[][] = G.map(() => []);
      for (const g of G) {
        if (v.vecB && !v.transB) {
          for (const kk of K4) loadB[g].push(`let b${g}_${kk} = b[(${bIdx(`q + ${kk}u`, `v${g}`)}) >> 2u];`);
        } else if (v.vecB && v.transB) {
          for (const j of K4) loadB[g].push(`let u${g}_${j} = b[(${bIdx('q', `c${g}_${j}`)}) >> 2u];`);
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
      return `${decl}
fn la(i: u32) -> f32 { return ${sa}; }
fn lb(i: u32) -> f32 { return ${sb}; }
@compute @workgroup_size(${v.lanes}, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let row0 = wid.y * ${v.tm}u;
  let t = wid.z + p.base;
  let ab = t * p.abs;
  let bb = t * p.bbs;
  let cb = t * p.m * p.n;
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
}
`;
    },
  };
}
