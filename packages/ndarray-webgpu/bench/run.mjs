// Bundles bench/mlp.ts with the esbuild that tsup depends on (esbuild is not a direct dependency of
// this package) and runs it. Usage: node packages/ndarray-webgpu/bench/run.mjs [matmul|mlp|all] [steps]
import { createRequire } from 'node:module';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(import.meta.url);
const esbuild = require('esbuild');
const out = path.join(here, '..', 'node_modules', '.bench', 'mlp.mjs');
await esbuild.build({
  entryPoints: [path.join(here, 'mlp.ts')],
  bundle: true,
  platform: 'node',
  format: 'esm',
  conditions: ['@needle/source'],
  external: ['webgpu'],
  outfile: out,
  logLevel: 'warning',
});
const r = spawnSync(process.execPath, [out, ...process.argv.slice(2)], {
  stdio: ['ignore', 'inherit', 'pipe'],
  env: { EGL_PLATFORM: 'surfaceless', ...process.env },
});
// Dawn's adapter-probe warnings go to stderr; show them only when the run failed.
if (r.status !== 0) process.stderr.write(r.stderr);
process.exitCode = r.status ?? 1;
