import type { MatmulSpec } from '@needle/ndarray';
import { bindings, PARAM_WORDS, type KernelSource } from './kernel';

/** Each invocation computes a 4x4 block of C; a workgroup of WX x WY invocations covers 4WX x 4WY. */
export const MM_WX = 8;
export const MM_WY = 8;

/** Which operands can be read as aligned vec4 (decided from the shapes; part of the program key). */
export interface MatmulVariant {
  transA: boolean;
  transB: boolean;
  vecA: boolean;
  vecB: boolean;
  vecC: boolean;
}

export function matmulVariant(s: MatmulSpec): MatmulVariant {
  const aAligned = s.aBatchStride % 4 === 0;
  const bAligned = s.bBatchStride % 4 === 0;
  return {
    transA: s.transA,
    transB: s.transB,
    // vec4 along the contiguous axis of each stored matrix, only when every row starts aligned.
    vecA: aAligned && (s.transA ? s.m % 4 === 0 : s.k % 4 === 0),
    vecB: bAligned && (s.transB ? s.k % 4 === 0 : s.n % 4 === 0),
    vecC: s.n % 4 === 0,
  };
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

/**
 * Register-blocked matmul without workgroup memory: k advances four at a time, each step loading a
 * 4x4 block of opA and of opB (as vec4 where aligned) and doing 64 FMAs from registers. Software
 * rasterisers (llvmpipe, SwiftShader) run barrier-free kernels far faster than shared-memory tiling,
 * and caches give the reuse that shared memory would. Out-of-range rows/columns are clamped on load
 * and masked on store, so the inner loop has no branches.
 */
export function matmulKernel(v: MatmulVariant): KernelSource {
  const bits = [v.transA, v.transB, v.vecA, v.vecB, v.vecC].map((b) => (b ? 1 : 0)).join('');
  return {
    key: `matmul:${bits}:${MM_WX}x${MM_WY}`,
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
      const R = [0, 1, 2, 3];
      const comp = ['x', 'y', 'z', 'w'];

      const loadA: string[] = [];
      if (v.vecA && !v.transA) {
        for (const r of R) loadA.push(`let a${r} = a[(${aIdx(`r${r}`, 'q')}) >> 2u];`);
      } else if (v.vecA && v.transA) {
        for (const kk of R) loadA.push(`let t${kk} = a[(${aIdx('row0', `q + ${kk}u`)}) >> 2u];`);
        for (const r of R) loadA.push(`let a${r} = vec4<f32>(${R.map((kk) => `t${kk}.${comp[r]}`).join(', ')});`);
      } else {
        for (const r of R) loadA.push(`let a${r} = vec4<f32>(${R.map((kk) => `la(${aIdx(`r${r}`, `q + ${kk}u`)})`).join(', ')});`);
      }
      const loadB: string[] = [];
      if (v.vecB && !v.transB) {
        for (const kk of R) loadB.push(`let b${kk} = b[(${bIdx(`q + ${kk}u`, 'col0')}) >> 2u];`);
      } else if (v.vecB && v.transB) {
        for (const j of R) loadB.push(`let u${j} = b[(${bIdx('q', `c${j}`)}) >> 2u];`);
        for (const kk of R) loadB.push(`let b${kk} = vec4<f32>(${R.map((j) => `u${j}.${comp[kk]}`).join(', ')});`);
      } else {
        for (const kk of R) loadB.push(`let b${kk} = vec4<f32>(${R.map((j) => `lb(${bIdx(`q + ${kk}u`, `c${j}`)})`).join(', ')});`);
      }
      const fma = R.map((r) => `acc${r} += a${r}.x * b0 + a${r}.y * b1 + a${r}.z * b2 + a${r}.w * b3;`);
      const tail = [
        `let bt = vec4<f32>(${R.map((j) => `lb(${bIdx('q', `c${j}`)})`).join(', ')});`,
        ...R.map((r) => `acc${r} += la(${aIdx(`r${r}`, 'q')}) * bt;`),
      ];
      const store = R.map((r) => {
        const row = `row0 + ${r}u`;
        if (v.vecC) return `if (${row} < p.m) { c[(cb + (${row}) * p.n + col0) >> 2u] = acc${r}; }`;
        return R.map((j) => `if (${row} < p.m && col0 + ${j}u < p.n) { c[cb + (${row}) * p.n + col0 + ${j}u] = acc${r}.${comp[j]}; }`).join('\n  ');
      });
      const ind = (lines: string[], n: number) => lines.map((l) => ' '.repeat(n) + l).join('\n');
      return `${decl}
fn la(i: u32) -> f32 { return ${sa}; }
fn lb(i: u32) -> f32 { return ${sb}; }
@compute @workgroup_size(${MM_WX}, ${MM_WY}, 1)
fn main(@builtin(global_invocation_id) g: vec3<u32>) {
  let col0 = g.x * 4u;
  let row0 = g.y * 4u;
  if (row0 >= p.m || col0 >= p.n) { return; }
  let t = g.z + p.base;
  let ab = t * p.abs;
  let bb = t * p.bbs;
  let cb = t * p.m * p.n;
${ind(R.map((r) => `let r${r} = min(row0 + ${r}u, p.m - 1u);`), 2)}
${ind(R.map((j) => `let c${j} = min(col0 + ${j}u, p.n - 1u);`), 2)}
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
