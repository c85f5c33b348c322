import { existsSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, test } from 'vitest';
import { REQUIRE_WEBGPU } from './gpu';

const CHROMIUM = '/usr/bin/chromium';
const here = path.dirname(fileURLToPath(import.meta.url));
const available = existsSync(CHROMIUM);
if (!available) {
  const msg = `${CHROMIUM} not found (apt-get install -y chromium)`;
  if (REQUIRE_WEBGPU) throw new Error(`browser WebGPU test: ${msg}, and NEEDLE_REQUIRE_WEBGPU=1`);
  console.warn(`\n*** browser WebGPU test SKIPPED: ${msg}. Set NEEDLE_REQUIRE_WEBGPU=1 to fail instead. ***\n`);
}

/** The slice of esbuild's API used here (esbuild is not a dependency of this package, so no types). */
interface Esbuild {
  build(options: Record<string, unknown>): Promise<{ outputFiles: { text: string }[] }>;
}

/** Bundle the page script with esbuild (a devDependency). */
async function bundle(): Promise<string> {
  const require = createRequire(import.meta.url);
  const esbuild = require('esbuild') as Esbuild;
  const r = await esbuild.build({
    entryPoints: [path.join(here, 'browser', 'entry.ts')],
    bundle: true,
    write: false,
    format: 'esm',
    platform: 'browser',
    conditions: ['@needle/source'],
    logLevel: 'silent',
  });
  return r.outputFiles[0].text;
}

let server: Server | undefined;
afterAll(() => new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve())));

describe.runIf(available)('WebGPU backend in Chromium (navigator.gpu)', () => {
  test('kernel suite matches the CPU reference', async () => {
    const script = await bundle();
    expect(script).not.toMatch(/from ["']webgpu["']|require\(["']webgpu["']\)/); // the browser path never loads Node bindings
    server = createServer((req, res) => {
      if (req.url === '/entry.js') {
        res.writeHead(200, { 'content-type': 'text/javascript' }).end(script);
      } else {
        res.writeHead(200, { 'content-type': 'text/html' }).end('<!doctype html><script type="module" src="/entry.js"></script>');
      }
    });
    await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as { port: number };
    const { chromium } = await import('playwright-core');
    const browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--enable-unsafe-webgpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
    try {
      const page = await browser.newPage();
      const errors: string[] = [];
      page.on('pageerror', (e) => errors.push(e.message));
      await page.goto(`http://127.0.0.1:${port}/`);
      await page.waitForFunction(() => (window as unknown as { __needle?: unknown }).__needle !== undefined, null, { timeout: 50_000 });
      const r = await page.evaluate(() => (window as unknown as { __needle: { checks: number; failures: string[]; adapter: string; error?: string } }).__needle);
      expect(errors).toEqual([]);
      expect(r.error).toBeUndefined();
      expect(r.failures).toEqual([]);
      expect(r.checks).toBeGreaterThan(70);
    } finally {
      await browser.close();
    }
  });
});
