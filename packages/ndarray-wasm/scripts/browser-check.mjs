// Scratch check (not a test): loads the backend in headless Chromium, once with COOP/COEP (threads)
// and once without (single-thread fallback). Needs /usr/bin/chromium and playwright-core somewhere in
// the workspace.   node scripts/build-wasm.mjs && node scripts/browser-check.mjs
import { createServer } from 'node:http';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const { build } = createRequire(createRequire(import.meta.url).resolve('tsup'))('esbuild');
const bundle = await build({
  entryPoints: [join(root, 'scripts', 'browser-entry.ts')],
  bundle: true, platform: 'browser', format: 'esm', target: 'es2022', conditions: ['@needle/source'], write: false,
});
const js = bundle.outputFiles[0].text;
const server = createServer((req, res) => {
  const isolated = req.url.startsWith('/isolated');
  const headers = isolated ? { 'Cross-Origin-Opener-Policy': 'same-origin', 'Cross-Origin-Embedder-Policy': 'require-corp' } : {};
  if (req.url.endsWith('.js')) {
    res.writeHead(200, { 'Content-Type': 'text/javascript', ...headers });
    res.end(js);
  } else {
    res.writeHead(200, { 'Content-Type': 'text/html', ...headers });
    res.end('<!doctype html><script type="module" src="entry.js"></script>');
  }
});
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
const port = server.address().port;
const playwrightPath = join(root, '..', 'ndarray-webgpu', 'node_modules', 'playwright-core');
const { chromium } = createRequire(import.meta.url)(playwrightPath);
const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--no-first-run', '--disable-background-networking'] });
try {
  for (const path of ['/isolated/', '/plain/']) {
    const page = await browser.newPage();
    page.on('console', (m) => console.log(`  [${path} console] ${m.text()}`));
    await page.goto(`http://127.0.0.1:${port}${path}`);
    await page.waitForFunction(() => document.title.startsWith('done') || document.title.startsWith('error'), null, { timeout: 20000 });
    console.log(`${path}: ${await page.title()}`);
    await page.close();
  }
} finally {
  await browser.close();
  server.close();
}
