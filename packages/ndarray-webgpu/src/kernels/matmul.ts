import type { MatmulSpec } from '@needle/ndarray';
import { bindings, PARAM_WORDS, type KernelSource } from './kernel';

/**
 * Matmul layout: a workgroup covers TM rows of C and 4*lanes columns; each invocation computes a
 * TM x 4 block (one vec4 of columns per row). All invocations of a workgroup share the same rows,
 * so every load of A has a workgroup-uniform address. Software rasterisers (llvmpipe, SwiftShader)
 * run a workgroup's invocations in SIMD lanes and turn uniform loads into one scalar load plus a
 * broadcast, while per-lane loads become gathers: this layout needs 4 gathered floats of B per k
 * step for 4*TM FMAs, and no workgroup memory or barriers (which these rasterisers run slowly).
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
  /** Rows per workgroup. */
  tm: number;
  /** Invocations per workgroup (each covers 4 columns). */
  lanes: number;
}

export function matmulVariant(s: MatmulSpec, maxInvocations: number): MatmulVariant {
  const aAligned = s.aBatchStride % 4 === 0;
  const bAligned = s.bBatchStride % 4 === 0;
  const lanesNeeded = Math.ceil(s.n / 4);
  let lanes = 8;
  while (lanes < lanesNeeded && lanes < 64) lanes *= 2;
  return {
    transA: s.transA,
    transB: s.transB,
    vecA: aAligned && (s.transA ? s.m % 4 === 0 : s.k % 4 === 0),
    vecB: bAligned && (s.transB ? s.k % 4 === 0 : s.n % 4 === 0),
    vecC: s.n % 4 === 0,
    // 16 rows measured fastest on llvmpipe (7 vs 5 GFLOP/s for 4 rows, 3 for 32: register spills).
    tm: s.m >= 16 ? 16 : s.m > 4 ? 8 : 4,
    lanes: Math.min(lanes, maxInvocations),
  };
}

/** Workgroup grid of a matmul (z: batch entries per dispatch are added by the caller). */
export function matmulGrid(s: MatmulSpec, v: MatmulVariant): [number, number] {
  return [Math.ceil(Math.ceil(s.n / 4) / v.lanes), Math.ceil(s.m / v.tm)];
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
  const bits = [v.transA, v.transB, v.vecA, v.vecB, v.vecC].map((b) => (b ? 1 : 0)).join('');
  return {
    key: `matmul:${bits}:${v.tm}x${v.lanes}`,
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
      const loadB: string[] = [];
      if (v.vecB && !v.transB) {
        for (const kk of K4) loadB.push(`let b${kk} = b[(${bIdx(`q + ${kk}u`, 'col0')}) >> 2u];`);
      } else if (v.vecB && v.transB) {
        for (const j of K4) loadB.push(`let u${j} = b[(${bIdx('q', `c${j}`)}) >> 2u];`);
        for (const kk of K4) loadB.push(`let b${kk} = vec4<f32>(${K4.map((j) => `u${j}.${comp[kk]}`).join(', ')});`);
      } else {
        for (const kk of K4) loadB.push(`let b${kk} = vec4<f32>(${K4.map((j) => `lb(${bIdx(`q + ${kk}u`, `c${j}`)})`).join(', ')});`);
      }
      const fma = R.map((r) => `acc${r} += a${r}.x * b0 + a${r}.y * b1 + a${r}.z * b2 + a${r}.w * b3;`);
      const tail = [
        `let bt = vec4<f32>(${K4.map((j) => `lb(${bIdx('q', `c${j}`)})`).join(', ')});`,
        ...R.map((r) => `acc${r} += la(${aIdx(`r${r}`, 'q')}) * bt;`),
      ];
      const store = R.map((r) => {
        const row = `row0 + ${r}u`;
        if (v.vecC) return `if (${row} < p.m) { c[(cb + (${row}) * p.n + col0) >> 2u] = acc${r}; }`;
        return K4.map((j) => `if (${row} < p.m && col0 + ${j}u < p.n) { c[cb + (${row}) * p.n + col0 + ${j}u] = acc${r}.${comp[j]}; }`).join('\n  ');
      });
      const groups = v.vecA && v.transA
        ? Array.from({ length: v.tm / 4 }, (_, g) => `let rg${g} = min(row0 + ${g * 4}u, p.m - 4u);`)
        : [];
      const ind = (lines: string[], n: number) => lines.map((l) => ' '.repeat(n) + l).join('\n');
      return `${decl}
fn la(i: u32) -> f32 { return ${sa}; }
fn lb(i: u32) -> f32 { return ${sb}; }
@compute @workgroup_size(${v.lanes}, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let col0 = (wid.x * ${v.lanes}u + lid.x) * 4u;
  let row0 = wid.y * ${v.tm}u;
  if (col0 >= p.n) { return; }
  let t = wid.z + p.base;
  let ab = t * p.abs;
  let bb = t * p.bbs;
  let cb = t * p.m * p.n;
${ind(R.map((r) => `let r${r} = min(row0 + ${r}u, p.m - 1u);`), 2)}
${ind(groups, 2)}
${ind(K4.map((j) => `let c${j} = min(col0 + ${j}u, p.n - 1u);`), 2)}
${ind(R.map((r) => `var acc${r} = vec4<f32>(0.0);`), 2)}
  let k4 = p.k & ~3u;
  for (var q = 0u; q < k4; q += 4u) {
${ind([...loadA, ...loadB, ...fma], 4)}
  }
  for (var q = k4; q < p.k; q++) {
${ind(tail, 4)}
  }
  ${store.join('\n  ')}
}
`;
    },
  };
}
