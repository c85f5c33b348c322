/**
 * The browser demo (web/) in the system Chromium, driven by Playwright through the page's own
 * controls: the same settings trained on WebGPU (SwiftShader), on WASM with 2 threads (the server
 * makes the page cross-origin isolated) and on the CPU reference must give the same loss curve.
 */
import { existsSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { startServer, type DemoServer } from '../web/serve.mjs';
import type { NeedleDemo } from '../web/demo';
import type { BackendName, RunResult } from '../web/train';

const CHROMIUM = '/usr/bin/chromium';
// Without --enable-unsafe-webgpu Chromium blocklists the software (SwiftShader) adapter.
const CHROMIUM_ARGS = ['--enable-unsafe-webgpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const REQUIRE_WEBGPU = process.env.NEEDLE_REQUIRE_WEBGPU === '1';

const available = existsSync(CHROMIUM);
if (!available) {
  const msg = `${CHROMIUM} not found (apt-get install -y chromium)`;
  if (REQUIRE_WEBGPU) throw new Error(`browser demo test: ${msg}, and NEEDLE_REQUIRE_WEBGPU=1`);
  console.warn(`\n*** browser demo test SKIPPED: ${msg}. Set NEEDLE_REQUIRE_WEBGPU=1 to fail instead. ***\n`);
}

/**
 * The slice of playwright-core's API used here: apps/examples does not list playwright-core, so its
 * types are not resolvable from this file.
 */
interface Page {
  on(event: 'pageerror', listener: (e: Error) => void): void;
  on(event: 'console', listener: (m: { type(): string; text(): string }) => void): void;
  goto(url: string): Promise<unknown>;
  reload(): Promise<unknown>;
  fill(selector: string, value: string): Promise<void>;
  waitForFunction<A>(fn: (arg: A) => unknown, arg: A, options?: { timeout?: number }): Promise<unknown>;
  evaluate<R>(fn: () => R): Promise<R>;
  selectOption(selector: string, value: string): Promise<unknown>;
  click(selector: string): Promise<void>;
  locator(selector: string): { count(): Promise<number> };
  screenshot(options: { path: string; fullPage?: boolean }): Promise<unknown>;
}
interface Browser {
  newPage(options: { viewport: { width: number; height: number } }): Promise<Page>;
  close(): Promise<void>;
}
interface Playwright {
  chromium: { launch(options: { executablePath: string; args: string[] }): Promise<Browser> };
}

/** playwright-core, a devDependency of this app; it drives the system Chromium, never a downloaded one. */
async function loadPlaywright(): Promise<Playwright> {
  return (await import('playwright-core')) as unknown as Playwright;
}

// Small enough for a 2-core machine: 50 steps of 32 images through 784-64-10.
const SETTINGS = { steps: 50, batchSize: 32, hidden: 64, lr: 0.1, trainSamples: 1600, testSamples: 500, threads: 2 };

let server: DemoServer | undefined;
let browser: Browser | undefined;
let page: Page;
const pageErrors: string[] = [];

beforeAll(async () => {
  if (!available) return;
  server = await startServer({ port: 0 });
  const { chromium } = await loadPlaywright();
  browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
  page = await browser.newPage({ viewport: { width: 1000, height: 900 } });
  page.on('pageerror', (e) => pageErrors.push(e.message));
  page.on('console', (m) => void (m.type() === 'error' && pageErrors.push(m.text())));
});

afterAll(async () => {
  await browser?.close();
  await server?.close();
});

/** Choose a backend in the page's form, press Train (or `button`) and wait for the run's result. */
async function trainIn(backend: BackendName, button = '#train'): Promise<RunResult> {
  const before = await page.evaluate(() => (window as unknown as { needleDemo: NeedleDemo }).needleDemo.runs.length);
  await page.selectOption('select[name=backend]', backend);
  await page.click(button);
  await page.waitForFunction(
    (n) => {
      const d = (window as unknown as { needleDemo: NeedleDemo }).needleDemo;
      return d.runs.length > n || d.state === 'error';
    },
    before,
    { timeout: 30_000 },
  );
  const demo = await page.evaluate(() => (window as unknown as { needleDemo: NeedleDemo }).needleDemo);
  if (demo.state === 'error') throw new Error(`the page failed training on ${backend}: ${demo.error}`);
  return demo.runs.at(-1)!;
}

function expectCurvesClose(actual: number[], expected: number[], rtol: number): void {
  expect(actual).toHaveLength(expected.length);
  const worst = actual.reduce((w, a, i) => Math.max(w, Math.abs(a - expected[i]) / Math.abs(expected[i])), 0);
  expect(worst).toBeLessThanOrEqual(rtol);
}

describe.runIf(available)('browser demo page (web/) in Chromium', () => {
  test('trains the MLP on WebGPU and on WASM with 2 threads; loss curves match each other and the CPU', async () => {
    const start = performance.now();
    const query = new URLSearchParams(Object.entries(SETTINGS).map(([k, v]) => [k, String(v)]));
    await page.goto(`${server!.url}?${query}`);
    await page.waitForFunction(() => (window as unknown as { needleDemo?: NeedleDemo }).needleDemo !== undefined, null);
    const env = await page.evaluate(() => {
      const d = (window as unknown as { needleDemo: NeedleDemo }).needleDemo;
      return { isolated: d.crossOriginIsolated, webgpu: d.webgpuAvailable };
    });
    expect(env.isolated).toBe(true); // COOP/COEP from serve.mjs
    expect(env.webgpu).toBe(true);

    const webgpu = await trainIn('webgpu');
    const wasm = await trainIn('wasm');
    const cpu = await trainIn('cpu');
    const seconds = (performance.now() - start) / 1000;

    expect(wasm.backend.threads).toBe(2);
    expect(wasm.crossOriginIsolated).toBe(true);
    for (const r of [webgpu, wasm, cpu]) {
      expect(r.settings).toMatchObject(SETTINGS);
      expect(r.losses).toHaveLength(SETTINGS.steps);
      expect(r.losses.every(Number.isFinite)).toBe(true);
      // ln(10) = 2.30 at the start; a working step moves well below it within 50 steps.
      expect(r.losses[0]).toBeGreaterThan(1.9);
      const last10 = r.losses.slice(-10).reduce((a, b) => a + b, 0) / 10;
      expect(last10).toBeLessThan(0.6 * r.losses[0]);
      expect(r.testAccuracy).toBeGreaterThan(0.6); // chance is 10%
      expect(r.buffersAfterLastStep).toBe(r.buffersAfterFirstStep); // the training loop does not leak
      expect(r.stepsPerSecond).toBeGreaterThan(0);
    }
    // Same seed, same batches, same initial weights: the backends differ only in float32 rounding.
    expectCurvesClose(webgpu.losses, cpu.losses, 1e-3);
    expectCurvesClose(wasm.losses, cpu.losses, 1e-3);
    expectCurvesClose(webgpu.losses, wasm.losses, 1e-3);
    expect(Math.abs(webgpu.testAccuracy - cpu.testAccuracy)).toBeLessThanOrEqual(0.01);
    expect(Math.abs(wasm.testAccuracy - cpu.testAccuracy)).toBeLessThanOrEqual(0.01);
    expect(cpu.predictions).toHaveLength(32);
    expect(await page.locator('#digits canvas').count()).toBe(32); // the last run's predictions are drawn
    expect(pageErrors).toEqual([]);

    const shot = process.env.NEEDLE_DEMO_SCREENSHOT;
    if (shot) await page.screenshot({ path: shot, fullPage: true });
    const line = (r: RunResult) => `${r.backend.name} (${r.backend.detail}) ${r.stepsPerSecond.toFixed(0)} steps/s, loss ${r.losses[0].toFixed(3)} -> ${r.losses.at(-1)!.toFixed(3)}, test accuracy ${(100 * r.testAccuracy).toFixed(1)}%`;
    console.info(`browser demo: ${[webgpu, wasm, cpu].map(line).join('; ')}; ${seconds.toFixed(1)} s in the page`);
  }, 55_000);

  test('save to OPFS, reload the page, resume: training continues from the saved step with the uninterrupted run\'s losses', async () => {
    const steps = 40;
    const query = new URLSearchParams(Object.entries({ ...SETTINGS, steps }).map(([k, v]) => [k, String(v)]));
    await page.goto(`${server!.url}?${query}`);
    await page.waitForFunction(() => (window as unknown as { needleDemo?: NeedleDemo }).needleDemo !== undefined, null);
    const straight = await trainIn('wasm');
    expect(straight.losses).toHaveLength(steps);

    // 15 steps (mid-epoch: 50 batches of 32 make an epoch here), then Save.
    await page.fill('input[name=steps]', '15');
    const first = await trainIn('wasm');
    expect(first.losses).toEqual(straight.losses.slice(0, 15));
    await page.click('#save');
    await page.waitForFunction(() => {
      const d = (window as unknown as { needleDemo: NeedleDemo }).needleDemo;
      return d.savedStep === 15 || d.error !== undefined;
    }, null, { timeout: 10_000 });
    expect(await page.evaluate(() => (window as unknown as { needleDemo: NeedleDemo }).needleDemo.error)).toBeUndefined();

    // A new page: nothing survives but the file in the origin's private file system.
    await page.reload();
    await page.waitForFunction(() => (window as unknown as { needleDemo?: NeedleDemo }).needleDemo?.savedStep === 15, null, { timeout: 10_000 });
    expect(await page.evaluate(() => (window as unknown as { needleDemo: NeedleDemo }).needleDemo.runs.length)).toBe(0);
    const resumed = await trainIn('wasm', '#resume');
    expect(resumed.resumedFrom).toBe(15);
    expect(resumed.losses).toHaveLength(steps);
    // Same backend, same kernels: bit for bit the losses the uninterrupted run had after step 15.
    expect(resumed.losses.slice(15)).toEqual(straight.losses.slice(15));
    expect(resumed.losses.slice(0, 15)).toEqual(straight.losses.slice(0, 15));
    expect(resumed.testAccuracy).toBe(straight.testAccuracy);
    expect(resumed.buffersAfterLastStep).toBe(resumed.buffersAfterFirstStep);
    expect(pageErrors).toEqual([]);
    console.info(`browser demo resume: saved at step 15, resumed to ${steps}: losses ${resumed.losses[15].toFixed(4)} ... ${resumed.losses.at(-1)!.toFixed(4)} equal the uninterrupted run's`);
  }, 55_000);
});
