// Worker threads must never keep Node alive: neither after destroy() nor when a backend is simply
// forgotten. Checked in a child process running this package bundled from source.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
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
  dir = mkdtempSync(join(tmpdir(), 'needle-wasm-'));
  bundle = join(dir, 'backend.mjs');
  await build({
    entryPoints: [fileURLToPath(new URL('../src/index.ts', import.meta.url))],
    bundle: true, platform: 'node', format: 'esm', target: 'es2022', conditions: ['@needle/source'], outfile: bundle, logLevel: 'error',
  });
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function runChild(body: string): { status: number | null; stdout: string; stderr: string; ms: number } {
  const code = `import { createWasmBackend } from ${JSON.stringify(bundle)};
const b = await createWasmBackend({ threads: 2 });
const a = b.alloc(1 << 17);
b.fill(a, 1, 1 << 17);
b.unary('exp', a, a, 1 << 17); // large enough to run on both threads
console.log('threads', b.threads, 'value', b.readSync(a, 1)[0]);
${body}`;
  const t0 = Date.now();
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', code], { encoding: 'utf8', timeout: 20_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr, ms: Date.now() - t0 };
}

it('a forgotten threaded backend does not keep the process alive', () => {
  const r = runChild('');
  expect(r.stderr).toBe('');
  expect(r.stdout.trim()).toBe(`threads 2 value ${Math.fround(Math.E)}`);
  expect(r.status).toBe(0);
  expect(r.ms).toBeLessThan(10_000);
});

it('destroy() stops the workers and the process exits', () => {
  const r = runChild("b.destroy(); setTimeout(() => console.log('after destroy'), 10);");
  expect(r.stderr).toBe('');
  expect(r.stdout.trim().split('\n')).toEqual([`threads 2 value ${Math.fround(Math.E)}`, 'after destroy']);
  expect(r.status).toBe(0);
});
