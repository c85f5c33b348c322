// Scratch benchmark (not a test): bundles scripts/mlp-step.ts against the workspace sources (the
// "@needle/source" export condition, so no other package needs a build) and runs it.
//   node scripts/build-wasm.mjs && node scripts/bench-mlp.mjs [threads]
import { createRequire } from 'node:module';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(createRequire(import.meta.url).resolve('tsup'));
const { build } = require('esbuild');
const outfile = join(tmpdir(), `needle-wasm-mlp-${process.pid}.mjs`);
await build({
  entryPoints: [join(root, 'scripts', 'mlp-step.ts')],
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'es2022',
  conditions: ['@needle/source'],
  // Not a dependency of this package (backends know nothing of gradients): reached by path.
  alias: { '@needle/autograd': join(root, '..', 'autograd', 'src', 'index.ts') },
  outfile,
  logLevel: 'warning',
});
for (const threads of process.argv.slice(2).length ? process.argv.slice(2) : ['1', '2']) {
  spawnSync(process.execPath, [outfile, threads], { stdio: 'inherit' });
}
