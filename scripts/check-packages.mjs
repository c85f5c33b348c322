#!/usr/bin/env node
/**
 * Check the packages as users get them: pack every package under packages/ (each one's prepack
 * builds it), install the tarballs with npm into a scratch project outside the workspace, and use
 * them from there: a Node training script, require(), a second copy of @needle/ndarray, tsc over a
 * consumer (TypeScript 5.9, 6, 7; nodenext and bundler; strict, skipLibCheck false, lib ES2022 +
 * DOM), nodeGPU() on Mesa without any environment set, a browser bundle trained in Chromium, publint
 * and attw on every tarball, and the backend template (templates/backend) built against the
 * tarballs and passing the conformance kit.
 *
 *   node scripts/check-packages.mjs [--keep] [--only REGEX]
 *
 * --keep leaves the scratch folder for a look; --only runs the checks whose name matches (packing
 * and the install always run).
 *
 * Tools the checks need but the workspace does not (the compilers, publint, attw, vitest for the
 * template) are installed from npm into the scratch project only, at the versions below.
 */
import { execFile as execFileCb, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { promisify } from 'node:util';

const execFile = promisify(execFileCb);
const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const keep = process.argv.includes('--keep');
const onlyAt = process.argv.indexOf('--only');
const only = onlyAt > 0 ? new RegExp(process.argv[onlyAt + 1], 'i') : undefined;
const ALWAYS = /^(pack |npm installs)/;
const REQUIRE_WEBGPU = process.env.NEEDLE_REQUIRE_WEBGPU === '1';
const CHROMIUM = '/usr/bin/chromium';

/** What the scratch project installs from npm besides the tarballs (exact versions). */
const TOOLS = {
  'typescript-5.9': 'npm:typescript@5.9.3',
  'typescript-6': 'npm:typescript@6.0.3',
  'typescript-7': 'npm:typescript@7.0.2',
  publint: '0.3.25',
  '@arethetypeswrong/cli': '0.18.5',
  webgpu: '0.6.2',
};
const COMPILERS = ['typescript-5.9', 'typescript-6', 'typescript-7'];

const work = mkdtempSync(join(tmpdir(), 'needle-packages-'));
const tarballs = join(work, 'tarballs');
const app = join(work, 'app');
const results = [];

function log(line) {
  console.log(`check-packages: ${line}`);
}

/** Run one named check; a failure is recorded (with its output) and the remaining checks still run. */
async function check(name, fn) {
  if (only && !only.test(name) && !ALWAYS.test(name)) return;
  const start = performance.now();
  try {
    const note = await fn();
    const seconds = ((performance.now() - start) / 1000).toFixed(1);
    results.push({ name, ok: true });
    log(`ok    ${name} (${seconds} s)${note ? `: ${note}` : ''}`);
  } catch (err) {
    results.push({ name, ok: false });
    log(`FAIL  ${name}\n${String(err?.stderr || err?.stdout ? `${err.message}\n${err.stdout ?? ''}\n${err.stderr ?? ''}` : err?.stack ?? err).trim()}\n`);
  }
}

function assert(condition, message) {
  if (!condition) throw new Error(message);
}

/** Run a command, failing with its output; returns stdout and stderr. */
async function run(cmd, args, options = {}) {
  return execFile(cmd, args, { maxBuffer: 64 * 1024 * 1024, ...options });
}

/** Map over items with at most `limit` running at once (attw and publint are slow, one at a time). */
async function pool(items, limit, fn) {
  const out = new Array(items.length);
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]);
    }
  }));
  return out;
}

function tarList(file) {
  const r = spawnSync('tar', ['-tzf', file], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`tar -tzf ${file}: ${r.stderr}`);
  return r.stdout.split('\n').filter(Boolean).map((p) => p.replace(/^package\//, ''));
}

function tarRead(file, path) {
  const r = spawnSync('tar', ['-xzOf', file, `package/${path}`], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`tar -xzOf ${file} package/${path}: ${r.stderr}`);
  return r.stdout;
}

/** Every file an exports map names (conditions nested at any depth). */
function exportTargets(exportsField) {
  if (typeof exportsField === 'string') return [exportsField];
  if (exportsField === null || typeof exportsField !== 'object') return [];
  return Object.values(exportsField).flatMap(exportTargets);
}

// ---- pack --------------------------------------------------------------------------------------

const packageDirs = readdirSync(join(root, 'packages'))
  .filter((d) => existsSync(join(root, 'packages', d, 'package.json')))
  .filter((d) => !JSON.parse(readFileSync(join(root, 'packages', d, 'package.json'), 'utf8')).private);
/** name -> { dir, tarball, manifest (as packed), files } */
const packages = new Map();

await check(`pack ${packageDirs.length} packages from a tree without dist/ (prepack builds)`, async () => {
  mkdirSync(tarballs, { recursive: true });
  for (const dir of packageDirs) {
    const pkgDir = join(root, 'packages', dir);
    // As in a clean clone: the tarball's dist must come from prepack (turbo restores it from its cache when it can).
    rmSync(join(pkgDir, 'dist'), { recursive: true, force: true });
    await run('pnpm', ['pack', '--pack-destination', tarballs], { cwd: pkgDir });
    const { name, version } = JSON.parse(readFileSync(join(pkgDir, 'package.json'), 'utf8'));
    const tarball = join(tarballs, `${name.replace(/^@/, '').replace('/', '-')}-${version}.tgz`);
    const manifest = JSON.parse(tarRead(tarball, 'package.json'));
    packages.set(manifest.name, { dir, tarball, manifest, files: tarList(tarball) });
  }
  return [...packages.values()].map((p) => `${p.manifest.name} ${p.files.length} files`).join(', ');
});
if (packages.size !== packageDirs.length) {
  log('packing failed; nothing else can be checked');
  process.exit(1);
}

// ---- the tarballs themselves -------------------------------------------------------------------

await check('every tarball ships what its manifest names, LICENSE, README.md and CHANGELOG.md', () => {
  const problems = [];
  for (const [name, { files, manifest }] of packages) {
    for (const f of ['package.json', 'LICENSE', 'README.md', 'CHANGELOG.md']) if (!files.includes(f)) problems.push(`${name}: no ${f}`);
    for (const target of [manifest.main, manifest.types, ...exportTargets(manifest.exports)].filter(Boolean)) {
      if (!files.includes(target.replace(/^\.\//, ''))) problems.push(`${name}: ${target} is named in the manifest but not in the tarball`);
    }
    if (!files.some((f) => f.startsWith('dist/') && f.endsWith('.js'))) problems.push(`${name}: no dist/*.js (empty tarball)`);
  }
  assert(problems.length === 0, problems.join('\n'));
});

await check('published manifests: no workspace scripts, devDependencies, source condition or workspace: ranges', () => {
  const problems = [];
  for (const [name, { manifest }] of packages) {
    if (manifest.scripts) problems.push(`${name}: scripts ${JSON.stringify(manifest.scripts)}`);
    if (manifest.devDependencies) problems.push(`${name}: devDependencies`);
    const sources = exportTargets(manifest.exports).filter((t) => /\.ts$/.test(t) && !/\.d\.ts$/.test(t));
    if (sources.length || JSON.stringify(manifest.exports).includes('source')) problems.push(`${name}: exports name source files: ${JSON.stringify(manifest.exports)}`);
    if (JSON.stringify(manifest).includes('workspace:')) problems.push(`${name}: a workspace: range was not replaced`);
    for (const [key, entry] of Object.entries(manifest.exports ?? {})) {
      if (key !== './package.json' && (typeof entry !== 'object' || !('default' in entry))) problems.push(`${name}: exports['${key}'] has no default condition (require() fails)`);
    }
    if (manifest.exports?.['./package.json'] !== './package.json') problems.push(`${name}: no ./package.json export`);
    if (manifest.license !== 'MIT' || !manifest.engines?.node || !(manifest.keywords?.length > 0)) problems.push(`${name}: license/engines/keywords missing`);
  }
  assert(problems.length === 0, problems.join('\n'));
});

await check('@needle/ndarray is a peer dependency (never a dependency) of every package built on it', () => {
  const problems = [];
  for (const [name, { manifest }] of packages) {
    if (name === '@needle/ndarray') continue;
    if (manifest.dependencies?.['@needle/ndarray']) problems.push(`${name}: @needle/ndarray is a regular dependency`);
    if (!manifest.peerDependencies?.['@needle/ndarray']) problems.push(`${name}: no peer dependency on @needle/ndarray`);
  }
  assert(problems.length === 0, problems.join('\n'));
});

await check('READMEs link only to files that are published (or to the web)', () => {
  const problems = [];
  for (const [name, { tarball, files }] of packages) {
    const readme = tarRead(tarball, 'README.md');
    for (const [, target] of readme.matchAll(/\]\(([^)\s]+)\)/g)) {
      if (/^(https?:|mailto:|#)/.test(target)) continue;
      const path = target.replace(/^\.\//, '').replace(/#.*$/, '');
      if (!files.includes(path)) problems.push(`${name}: README links to ${target}, which is not in the tarball`);
    }
  }
  assert(problems.length === 0, problems.join('\n'));
});

let installed;
/** npm install of every tarball (and TOOLS) into `app`, once. */
function installOnce() {
  installed ??= (async () => {
    mkdirSync(app, { recursive: true });
    const dependencies = Object.fromEntries([...packages].map(([name, { tarball }]) => [name, `file:${tarball}`]));
    writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'needle-consumer', private: true, type: 'module', dependencies: { ...dependencies, ...TOOLS } }, null, 2));
    // No install scripts: none of these needs one on Linux (webgpu's postinstall is for macOS).
    await run('npm', ['install', '--no-audit', '--no-fund', '--ignore-scripts', '--loglevel=error'], { cwd: app });
  })();
  return installed;
}

await check('npm installs the tarballs into a project outside the workspace, with one copy of @needle/ndarray', async () => {
  await installOnce();
  const { stdout } = await run('npm', ['ls', '@needle/ndarray', '--all', '--parseable'], { cwd: app });
  const copies = [...new Set(stdout.split('\n').filter((l) => l.endsWith(join('node_modules', '@needle', 'ndarray'))))];
  assert(copies.length === 1, `expected one installed copy of @needle/ndarray, found:\n${copies.join('\n')}`);
  return relative(work, app);
});

await check('publint --strict on every tarball', async () => {
  const publint = join(app, 'node_modules', 'publint', 'src', 'cli.js');
  await installOnce();
  const outcomes = await pool([...packages.values()], 3, async ({ tarball }) => {
    try {
      await run(process.execPath, [publint, 'run', tarball, '--strict'], { cwd: work });
      return null;
    } catch (err) {
      return `${relative(work, tarball)}:\n${err.stdout}${err.stderr}`;
    }
  });
  const failed = outcomes.filter(Boolean);
  assert(failed.length === 0, failed.join('\n'));
});

await check('attw (are the types wrong) on every tarball, ESM-only profile', async () => {
  // The packages are ESM only; require() loads them through Node's require(esm) (checked below), so
  // attw's "CJS resolves to ESM" advice does not apply, and its esm-only profile checks the rest.
  const attw = join(app, 'node_modules', '@arethetypeswrong', 'cli', 'dist', 'index.js');
  await installOnce();
  const outcomes = await pool([...packages.values()], 3, async ({ tarball }) => {
    try {
      const { stdout } = await run(process.execPath, [attw, tarball, '--profile', 'esm-only', '--format', 'ascii', '--no-color'], { cwd: work });
      // attw exits 0 on a package without types; for these packages that is a defect.
      return stdout.includes('does not contain types') ? `${relative(work, tarball)}: no types\n${stdout}` : null;
    } catch (err) {
      return `${relative(work, tarball)}:\n${err.stdout}${err.stderr}`;
    }
  });
  const failed = outcomes.filter(Boolean);
  assert(failed.length === 0, failed.join('\n'));
});

/** Training code shared by the Node and the browser checks: an MLP on two blobs, through every package. */
const TRAIN = `
import { array, manualSeed } from '@needle/ndarray';
import { tensor } from '@needle/autograd';
import { CrossEntropyLoss, Linear, ReLU, Sequential } from '@needle/nn';
import { SGD } from '@needle/optim';
import { DataLoader, TensorDataset } from '@needle/data';
import { load, save } from '@needle/safetensors';

export async function train(backend) {
  manualSeed(0);
  const n = 256;
  const xs = new Float32Array(2 * n);
  const ys = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const c = i % 2;
    xs[2 * i] = (c ? 1 : -1) + 0.6 * Math.sin(12.9898 * i);
    xs[2 * i + 1] = (c ? 1 : -1) + 0.6 * Math.cos(78.233 * i);
    ys[i] = c;
  }
  const before = backend.memory().buffers;
  const X = array(xs, { shape: [n, 2] });
  const Y = array(ys, { shape: [n] });
  const loader = new DataLoader(new TensorDataset(X, Y), { batchSize: 32, shuffle: true, seed: 0 });
  const model = new Sequential(new Linear(2, 16), new ReLU(), new Linear(16, 2));
  const lossFn = new CrossEntropyLoss();
  const opt = new SGD(model.parameters(), { lr: 0.3 });
  const losses = [];
  for (let epoch = 0; epoch < 5; epoch++) {
    for await (const [xb, yb] of loader) {
      const x = tensor(xb);
      const loss = lossFn.call(model.call(x), yb);
      loss.backward();
      opt.step();
      opt.zeroGrad();
      losses.push(await loss.item());
      loss.dispose();
      x.dispose();
    }
  }
  const restored = await load(await save(model.stateDict()));
  const tensors = Object.keys(restored.tensors).length;
  for (const a of Object.values(restored.tensors)) a.dispose();
  opt.dispose();
  model.dispose();
  X.dispose();
  Y.dispose();
  const first = losses.slice(0, 8).reduce((a, b) => a + b) / 8;
  const last = losses.slice(-8).reduce((a, b) => a + b) / 8;
  return { first, last, steps: losses.length, leaked: backend.memory().buffers - before, tensors };
}
`;

function expectTrained(r, where) {
  assert(r.steps === 40, `${where}: ${r.steps} steps, expected 40`);
  assert(r.last < 0.5 * r.first, `${where}: the loss did not fall by half (first ${r.first}, last ${r.last})`);
  assert(r.leaked === 0, `${where}: ${r.leaked} buffers leaked`);
  assert(r.tensors === 4, `${where}: safetensors round trip gave ${r.tensors} tensors, expected 4`);
  return `${where}: loss ${r.first.toFixed(3)} -> ${r.last.toFixed(3)} in ${r.steps} steps, no leak`;
}

await check('Node ESM: train an MLP on the WASM and CPU backends from the installed packages', async () => {
  await installOnce();
  writeFileSync(join(app, 'train.mjs'), TRAIN);
  writeFileSync(join(app, 'node-train.mjs'), `
import { setBackend, defaultBackend } from '@needle/ndarray';
import { registerWasmBackend } from '@needle/ndarray-wasm';
import { registerCpuBackend } from '@needle/ndarray-cpu';
import { train } from './train.mjs';
registerWasmBackend();
registerCpuBackend();
const out = {};
for (const name of ['wasm', 'cpu']) out[name] = await train(await setBackend(name));
defaultBackend().destroy?.();
await setBackend('wasm');
defaultBackend().destroy?.();
console.log(JSON.stringify(out));
`);
  const { stdout } = await run(process.execPath, ['node-train.mjs'], { cwd: app });
  const out = JSON.parse(stdout.trim().split('\n').at(-1));
  return [expectTrained(out.wasm, 'wasm'), expectTrained(out.cpu, 'cpu')].join('; ');
});

await check('require() of every entry point and package.json gives the ESM module itself', async () => {
  await installOnce();
  const entries = [...packages.values()].flatMap(({ manifest }) => Object.keys(manifest.exports).map((k) => (k === '.' ? manifest.name : `${manifest.name}${k.slice(1)}`)));
  // The testing entry imports vitest, which the consumer need not have; it is checked by the template.
  const loadable = entries.filter((e) => !e.endsWith('/testing'));
  writeFileSync(join(app, 'require.cjs'), `
const entries = ${JSON.stringify(loadable)};
const loaded = entries.map((e) => [e, require(e)]);
import('@needle/ndarray').then((esm) => {
  const cjs = require('@needle/ndarray');
  if (cjs.NDArray !== esm.NDArray) throw new Error('require and import gave two copies of @needle/ndarray');
  for (const [e, m] of loaded) if (!e.endsWith('package.json') && Object.keys(m).length === 0) throw new Error(e + ' has no exports');
  console.log(loaded.length);
});
`);
  const { stdout } = await run(process.execPath, ['require.cjs'], { cwd: app });
  return `${stdout.trim()} entries`;
});

await check('a second copy of @needle/ndarray refuses to load, naming both', async () => {
  await installOnce();
  const { tarball } = packages.get('@needle/ndarray');
  const nested = join(work, 'second', 'node_modules', '@needle', 'ndarray');
  mkdirSync(nested, { recursive: true });
  await run('tar', ['-xzf', tarball, '-C', nested, '--strip-components=1']);
  const first = pathToFileURL(join(app, 'node_modules', '@needle', 'ndarray', 'dist', 'index.js')).href;
  const second = pathToFileURL(join(nested, 'dist', 'index.js')).href;
  writeFileSync(join(work, 'second', 'load.mjs'), `
await import(${JSON.stringify(first)});
try {
  await import(${JSON.stringify(second)});
  console.log('loaded');
} catch (e) {
  console.log(e.message);
}
`);
  const { stdout } = await run(process.execPath, ['load.mjs'], { cwd: join(work, 'second') });
  assert(/^@needle\/ndarray: two copies are loaded: \S+ from file:.*\/app\/node_modules\/@needle\/ndarray\/.* and \S+ from file:.*\/second\/node_modules\/@needle\/ndarray\//.test(stdout), `unexpected: ${stdout}`);
});

await check(`tsc --noEmit over a consumer: ${COMPILERS.join(', ')} x nodenext, bundler (strict, skipLibCheck false, lib ES2022 + DOM)`, async () => {
  await installOnce();
  const imports = [...packages.values()].flatMap(({ manifest }) => Object.keys(manifest.exports).filter((k) => k !== './package.json').map((k) => (k === '.' ? manifest.name : `${manifest.name}${k.slice(1)}`)));
  writeFileSync(join(app, 'consumer.ts'), [
    ...imports.map((spec, i) => `import * as m${i} from '${spec}';`),
    "import { array, type NDArray } from '@needle/ndarray';",
    "import { tensor, type Tensor } from '@needle/autograd';",
    "import { Linear, type Module } from '@needle/nn';",
    "import { registerWebGPUBackend } from '@needle/ndarray-webgpu';",
    "import { nodeGPU } from '@needle/ndarray-webgpu/node';",
    'const a: NDArray = array([1, 2, 3]);',
    'const t: Tensor = tensor(a);',
    'const m: Module = new Linear(3, 1);',
    'const dispose: () => void = a[Symbol.dispose];',
    'export async function gpu(): Promise<void> { registerWebGPUBackend({ gpu: await nodeGPU() }); }',
    `export const all = [${imports.map((_, i) => `m${i}`).join(', ')}, t, m, dispose];`,
    '',
  ].join('\n'));
  const failures = [];
  const notes = [];
  for (const compiler of COMPILERS) {
    for (const resolution of ['nodenext', 'bundler']) {
      const config = `tsconfig.${compiler}.${resolution}.json`;
      writeFileSync(join(app, config), JSON.stringify({
        compilerOptions: {
          target: 'ES2022', lib: ['ES2022', 'DOM'], module: resolution === 'nodenext' ? 'nodenext' : 'esnext', moduleResolution: resolution,
          strict: true, skipLibCheck: false, noEmit: true, types: [],
        },
        files: ['consumer.ts'],
      }));
      const tsc = join(app, 'node_modules', compiler, 'bin', 'tsc');
      try {
        await run(process.execPath, [tsc, '-p', config], { cwd: app });
        notes.push(`${compiler}/${resolution}`);
      } catch (err) {
        failures.push(`${compiler} ${resolution}:\n${err.stdout}${err.stderr}`.slice(0, 4000));
      }
    }
  }
  assert(failures.length === 0, failures.join('\n'));
  return `clean: ${notes.join(', ')}`;
});

await check('nodeGPU() finds an adapter with no EGL_PLATFORM or XDG_RUNTIME_DIR set, and keeps Mesa quiet', async () => {
  await installOnce();
  writeFileSync(join(app, 'gpu.mjs'), `
import { setBackend, defaultBackend, array } from '@needle/ndarray';
import { registerWebGPUBackend } from '@needle/ndarray-webgpu';
import { nodeGPU } from '@needle/ndarray-webgpu/node';
try {
  registerWebGPUBackend({ gpu: await nodeGPU() });
  await setBackend('webgpu');
  const y = array([1, 2, 3]).mul(2);
  console.log(JSON.stringify(Array.from(await y.toArray())));
  defaultBackend().destroy?.();
} catch (e) {
  console.log('UNAVAILABLE ' + e.message);
}
`);
  const env = { ...process.env };
  delete env.EGL_PLATFORM;
  delete env.XDG_RUNTIME_DIR;
  const { stdout, stderr } = await run(process.execPath, ['gpu.mjs'], { cwd: app, env });
  if (stdout.startsWith('UNAVAILABLE') && !REQUIRE_WEBGPU) return `SKIPPED (no adapter here; NEEDLE_REQUIRE_WEBGPU=1 fails instead): ${stdout.trim()}`;
  assert(stdout.trim() === '[2,4,6]', `webgpu gave: ${stdout}${stderr}`);
  assert(!stderr.includes('XDG_RUNTIME_DIR'), `Mesa's warning is back on stderr:\n${stderr}`);
  return 'adapter found, [1,2,3]*2 = [2,4,6], no XDG_RUNTIME_DIR warning';
});

await check('esbuild browser bundle of the installed packages trains in Chromium on WASM', async () => {
  await installOnce();
  if (!existsSync(CHROMIUM)) {
    assert(!REQUIRE_WEBGPU, `${CHROMIUM} not found (apt-get install -y chromium), and NEEDLE_REQUIRE_WEBGPU=1`);
    return `SKIPPED: ${CHROMIUM} not found`;
  }
  // esbuild and playwright-core are the workspace's own (devDependencies of the WebGPU package); the
  // bundle resolves @needle/* from the scratch project, as a user's bundler does.
  const workspace = createRequire(join(root, 'packages', 'ndarray-webgpu', 'package.json'));
  const esbuild = await import(pathToFileURL(workspace.resolve('esbuild')).href);
  const playwright = await import(pathToFileURL(workspace.resolve('playwright-core')).href);
  const { chromium } = playwright.default ?? playwright;
  writeFileSync(join(app, 'browser.mjs'), `
import { setBackend } from '@needle/ndarray';
import { registerWasmBackend } from '@needle/ndarray-wasm';
import { train } from './train.mjs';
registerWasmBackend();
window.result = setBackend('wasm').then(train).catch((e) => ({ error: String(e && e.stack || e) }));
`);
  const built = await esbuild.build({
    entryPoints: [join(app, 'browser.mjs')], absWorkingDir: app, bundle: true, minify: true, format: 'esm',
    platform: 'browser', target: 'es2022', write: false, logLevel: 'error',
  });
  const code = built.outputFiles[0].text;
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'] });
  try {
    const page = await browser.newPage();
    const errors = [];
    page.on('pageerror', (e) => errors.push(String(e)));
    await page.goto('about:blank');
    await page.addScriptTag({ content: code, type: 'module' });
    await page.waitForFunction(() => window.result !== undefined, null, { timeout: 30_000 });
    const r = await page.evaluate(() => window.result);
    assert(!r.error && errors.length === 0, `in the page: ${r.error ?? errors.join('\n')}`);
    return `${(code.length / 1024).toFixed(0)} KiB minified; ${expectTrained(r, 'chromium wasm')}`;
  } finally {
    await browser.close();
  }
});

await check('the backend template builds against the tarballs and passes the conformance kit', async () => {
  await installOnce();
  const template = join(work, 'my-backend');
  cpSync(join(root, 'templates', 'backend'), template, { recursive: true, filter: (src) => !/node_modules|dist/.test(relative(join(root, 'templates', 'backend'), src)) });
  const manifest = JSON.parse(readFileSync(join(template, 'package.json'), 'utf8'));
  // What a contributor does before the first release is out: point @needle/* at the tarballs.
  for (const field of ['dependencies', 'devDependencies']) {
    for (const name of Object.keys(manifest[field] ?? {})) {
      if (packages.has(name)) manifest[field][name] = `file:${packages.get(name).tarball}`;
    }
  }
  writeFileSync(join(template, 'package.json'), JSON.stringify(manifest, null, 2));
  await run('npm', ['install', '--no-audit', '--no-fund', '--ignore-scripts', '--loglevel=error'], { cwd: template });
  await run('npm', ['run', 'build'], { cwd: template });
  const { stdout } = await run('npm', ['test'], { cwd: template, env: { ...process.env, CI: 'true', FORCE_COLOR: '0' } });
  // eslint-disable-next-line no-control-regex
  const summary = stdout.replace(/\x1b\[[0-9;]*m/g, '').split('\n').find((l) => /Tests\s+\d+ passed/.test(l));
  assert(summary && !/failed|skipped/.test(summary), `conformance run:\n${stdout}`);
  return summary.trim().replace(/\s+/g, ' ');
});

// ---- summary -----------------------------------------------------------------------------------

const failed = results.filter((r) => !r.ok);
if (keep) log(`scratch folder kept: ${work}`);
else rmSync(work, { recursive: true, force: true });
for (const r of failed) log(`failed: ${r.name}`);
console.log(`check-packages: ${results.length - failed.length} passed, ${failed.length} failed`);
process.exitCode = failed.length ? 1 : 0;
