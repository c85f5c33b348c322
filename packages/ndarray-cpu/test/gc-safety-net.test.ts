// The garbage-collection safety net (packages/ndarray/src/memory.ts): an array that no scope holds
// and nobody disposed gives its buffer back when it is collected; an array a scope holds is never
// released behind the scope's back. vitest turns the net off (NEEDLE_GC_SAFETY_NET=0) so leak tests
// are exact, so this runs in a child process, with the net on and --expose-gc, on the ndarray and
// cpu packages bundled from source.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, expect, it } from 'vitest';

let dir: string;
let bundle: string;

beforeAll(async () => {
  // esbuild comes with tsup, the workspace's build tool.
  const require = createRequire(createRequire(import.meta.url).resolve('tsup'));
  const { build } = require('esbuild') as { build(options: Record<string, unknown>): Promise<unknown> };
  dir = mkdtempSync(join(tmpdir(), 'needle-gc-'));
  const entry = join(dir, 'entry.ts');
  writeFileSync(entry, `export * from ${JSON.stringify(fileURLToPath(new URL('../../ndarray/src/index.ts', import.meta.url)))};
export { CpuBackend } from ${JSON.stringify(fileURLToPath(new URL('../src/index.ts', import.meta.url)))};\n`);
  bundle = join(dir, 'needle.mjs');
  await build({
    entryPoints: [entry], bundle: true, platform: 'node', format: 'esm', target: 'es2022',
    conditions: ['@needle/source'], outfile: bundle, logLevel: 'error',
  });
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Runs `body` after setup and prints the live buffer count after each labelled stage. */
function runChild(body: string): string[] {
  const code = `import { NDArray, scope, tidy, keep, CpuBackend } from ${JSON.stringify(bundle)};
const b = new CpuBackend();
const live = () => b.memory().buffers;
const collect = async () => { for (let i = 0; i < 6; i++) { globalThis.gc(); await new Promise((r) => setTimeout(r, 5)); } };
const report = (label) => console.log(label + ' ' + live());
const make = () => NDArray.fromData(new Float32Array(16).fill(1), [4, 4], b);
${body}`;
  const env = { ...process.env };
  delete env.NEEDLE_GC_SAFETY_NET;
  const r = spawnSync(process.execPath, ['--expose-gc', '--input-type=module', '-e', code], { encoding: 'utf8', timeout: 30_000, env });
  expect(r.stderr).toBe('');
  expect(r.status).toBe(0);
  return r.stdout.trim().split('\n');
}

it('releases forgotten arrays made outside scopes, and arrays that survived a scope, once collected', () => {
  const lines = runChild(`
(() => { make(); make().reshape([16]); })();
report('made');
await collect();
report('outside, collected');
let kept = (() => { const s = scope(); const a = make(); const c = a.add(a); return s.end(c); })();
let t = tidy(() => make().mul(2));
let k; { const s = scope(); k = keep(make()); s.end(); }
report('survivors');
kept = undefined; t = undefined; k = undefined;
await collect();
report('survivors, collected');
`);
  expect(lines).toEqual(['made 2', 'outside, collected 0', 'survivors 3', 'survivors, collected 0']);
});

it('never releases an array a scope still holds, and a disposed array is not released twice', () => {
  const lines = runChild(`
const s = scope();
(() => { make(); make(); })();
await collect();
report('in an open scope');
s.end();
report('scope ended');
let a = make(); const v = a.reshape([16]); a.dispose(); a = undefined;
await collect();
report('view alive');
v.dispose();
report('view disposed');
await collect();
report('end');
`);
  expect(lines).toEqual(['in an open scope 2', 'scope ended 0', 'view alive 1', 'view disposed 0', 'end 0']);
});
