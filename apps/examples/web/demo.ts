/**
 * The demo page's controls, live metrics and loss chart (web/index.html). Training itself is in
 * train.ts. Settings start from the URL's query string (e.g. ?backend=webgpu&steps=100), so a run
 * can be linked to; `window.needleDemo` exposes the page's state and results for the Playwright test.
 */
import { BACKENDS, DEFAULT_SETTINGS, checkpointInfo, fetchMnist, train, type BackendName, type RunResult, type TrainSession, type TrainSettings } from './train';
import type { MNISTDataset } from '@needle/data';
import { readFromOPFS, writeToOPFS } from '@needle/safetensors';

/** The checkpoint's file in this origin's private file system (it survives reloads). */
export const CHECKPOINT_FILE = 'needle-demo.safetensors';

export type DemoState = 'idle' | 'loading' | 'training' | 'done' | 'error';

/** What the page publishes on `window.needleDemo`. */
export interface NeedleDemo {
  state: DemoState;
  error?: string;
  /** Every finished run, oldest first. */
  runs: RunResult[];
  webgpuAvailable: boolean;
  crossOriginIsolated: boolean;
  /** The step of the checkpoint in OPFS (saved now or before a reload), or null when there is none. */
  savedStep: number | null;
}

const COLORS: Record<BackendName, string> = { wasm: '#2456c7', webgpu: '#c2410c', cpu: '#15803d' };

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const form = $<HTMLFormElement>('settings');
const trainButton = $<HTMLButtonElement>('train');
const stopButton = $<HTMLButtonElement>('stop');
const saveButton = $<HTMLButtonElement>('save');
const resumeButton = $<HTMLButtonElement>('resume');
const statusLine = $<HTMLDivElement>('status');
const canvas = $<HTMLCanvasElement>('chart');

const demo: NeedleDemo = {
  state: 'idle',
  runs: [],
  webgpuAvailable: typeof navigator !== 'undefined' && 'gpu' in navigator,
  crossOriginIsolated: globalThis.crossOriginIsolated === true,
  savedStep: null,
};
(window as unknown as { needleDemo: NeedleDemo }).needleDemo = demo;

const NUMERIC = ['threads', 'steps', 'batchSize', 'hidden', 'lr', 'trainSamples', 'testSamples'] as const;

function field(name: string): HTMLInputElement | HTMLSelectElement {
  return form.elements.namedItem(name) as HTMLInputElement | HTMLSelectElement;
}

/** Fill the form from the defaults, overridden by the query string. */
function initForm(): void {
  const query = new URLSearchParams(location.search);
  const backend = query.get('backend');
  field('backend').value = backend && (BACKENDS as readonly string[]).includes(backend) ? backend : DEFAULT_SETTINGS.backend;
  for (const name of NUMERIC) field(name).value = query.get(name) ?? String(DEFAULT_SETTINGS[name]);
  // More threads than cores only makes the spinning main thread and the workers wait for each other.
  if (!query.has('threads')) field('threads').value = String(Math.max(1, Math.min(4, navigator.hardwareConcurrency || 2)));
}

function readForm(): TrainSettings {
  const settings: TrainSettings = { ...DEFAULT_SETTINGS, backend: field('backend').value as BackendName };
  for (const name of NUMERIC) {
    const v = Number(field(name).value);
    if (!Number.isFinite(v) || v <= 0) throw new Error(`${name}: expected a positive number, got '${field(name).value}'`);
    settings[name] = name === 'lr' ? v : Math.round(v);
  }
  return settings;
}

function setStatus(text: string, isError = false): void {
  statusLine.textContent = text;
  statusLine.classList.toggle('error', isError);
}

function showEnvironment(): void {
  const parts = [
    `WebGPU: <b>${demo.webgpuAvailable ? 'navigator.gpu present' : 'not available in this browser'}</b>`,
    `cross-origin isolated: <b>${demo.crossOriginIsolated ? 'yes' : 'no'}</b> ${demo.crossOriginIsolated ? '(WASM threads available)' : '(WASM runs on one thread)'}`,
    `logical cores: <b>${navigator.hardwareConcurrency ?? '?'}</b>`,
  ];
  $('env').innerHTML = parts.join(' &middot; ');
}

const fmtLoss = (x: number) => (Number.isFinite(x) ? x.toFixed(4) : String(x));

function showMetrics(step: number, steps: number, loss: number | undefined, rate: number | undefined, seconds: number | undefined): void {
  $('m-step').textContent = `${step} / ${steps}`;
  $('m-loss').textContent = loss === undefined ? '–' : fmtLoss(loss);
  $('m-rate').textContent = rate === undefined || !(rate > 0) ? '–' : rate.toFixed(rate < 10 ? 1 : 0);
  $('m-time').textContent = seconds === undefined ? '–' : `${seconds.toFixed(1)} s`;
}

/** The curves of finished runs plus the one in progress (its backend and losses so far). */
function drawChart(current?: { backend: BackendName; losses: number[]; steps: number }): void {
  const dpr = window.devicePixelRatio || 1;
  const width = canvas.clientWidth;
  const height = canvas.clientHeight;
  canvas.width = Math.round(width * dpr);
  canvas.height = Math.round(height * dpr);
  const g = canvas.getContext('2d')!;
  g.setTransform(dpr, 0, 0, dpr, 0, 0);
  g.clearRect(0, 0, width, height);
  const curves = demo.runs.map((r, i) => ({ label: `run ${i + 1} ${r.backend.name}`, backend: r.backend.name, losses: r.losses, dashed: i > 0 }));
  if (current) curves.push({ label: `run ${demo.runs.length + 1} ${current.backend}`, backend: current.backend, losses: current.losses, dashed: demo.runs.length > 0 });
  const pad = { left: 46, right: 14, top: 12, bottom: 30 };
  const w = width - pad.left - pad.right;
  const h = height - pad.top - pad.bottom;
  const maxStep = Math.max(current?.steps ?? 1, ...curves.map((c) => c.losses.length), 1);
  const maxLoss = Math.max(0.5, ...curves.flatMap((c) => c.losses.filter(Number.isFinite)));
  const yMax = Math.ceil(maxLoss * 2) / 2;
  const x = (step: number) => pad.left + (w * step) / maxStep;
  const y = (loss: number) => pad.top + h * (1 - Math.min(loss, yMax) / yMax);

  g.font = '11px system-ui, sans-serif';
  g.fillStyle = '#5f6b7a';
  g.strokeStyle = '#e6e9ee';
  g.lineWidth = 1;
  g.textAlign = 'right';
  g.textBaseline = 'middle';
  for (let v = 0; v <= yMax + 1e-9; v += yMax > 2 ? 0.5 : 0.25) {
    g.beginPath();
    g.moveTo(pad.left, y(v));
    g.lineTo(pad.left + w, y(v));
    g.stroke();
    g.fillText(v.toFixed(2), pad.left - 6, y(v));
  }
  g.textAlign = 'center';
  g.textBaseline = 'top';
  const tick = niceStep(maxStep / 6);
  for (let s = 0; s <= maxStep; s += tick) g.fillText(String(s), x(s), pad.top + h + 6);
  g.save();
  g.translate(12, pad.top + h / 2);
  g.rotate(-Math.PI / 2);
  g.textBaseline = 'middle';
  g.fillText('training loss', 0, 0);
  g.restore();
  g.textAlign = 'right';
  g.fillText('step', pad.left + w, pad.top + h + 18);

  for (const c of curves) {
    g.strokeStyle = COLORS[c.backend];
    g.lineWidth = 1.5;
    g.setLineDash(c.dashed ? [5, 4] : []);
    g.beginPath();
    c.losses.forEach((l, i) => (i === 0 ? g.moveTo(x(i + 1), y(l)) : g.lineTo(x(i + 1), y(l))));
    g.stroke();
  }
  g.setLineDash([]);
  // Legend, top right.
  g.textAlign = 'right';
  g.textBaseline = 'middle';
  curves.slice(-6).forEach((c, i) => {
    const ly = pad.top + 10 + 16 * i;
    g.fillStyle = '#1d2330';
    g.fillText(c.label, pad.left + w - 28, ly);
    g.strokeStyle = COLORS[c.backend];
    g.setLineDash(c.dashed ? [5, 4] : []);
    g.beginPath();
    g.moveTo(pad.left + w - 22, ly);
    g.lineTo(pad.left + w, ly);
    g.stroke();
  });
  g.setLineDash([]);
}

/** 1, 2 or 5 times a power of ten, at least `raw`. */
function niceStep(raw: number): number {
  const p = 10 ** Math.floor(Math.log10(Math.max(raw, 1)));
  return [1, 2, 5, 10].map((m) => m * p).find((s) => s >= raw) ?? 10 * p;
}

function showRuns(): void {
  const body = $('runs');
  body.innerHTML = '';
  demo.runs.forEach((r, i) => {
    const tail = r.losses.slice(-10);
    const cells = [
      `${i + 1}`,
      `<span class="swatch" style="background:${COLORS[r.backend.name]}"></span>${r.backend.name}`,
      escapeHtml(r.backend.detail),
      `${r.losses.length}`,
      fmtLoss(tail.reduce((a, b) => a + b, 0) / tail.length),
      Number.isFinite(r.stepsPerSecond) ? r.stepsPerSecond.toFixed(1) : '–',
      `${r.seconds.toFixed(1)} s`,
      `${(100 * r.testAccuracy).toFixed(1)}%`,
    ];
    const row = document.createElement('tr');
    row.innerHTML = cells.map((c) => `<td>${c}</td>`).join('');
    body.appendChild(row);
  });
}

/** The first test images, each with the predicted digit (red where it is wrong). */
function showPredictions(testSet: MNISTDataset, predictions: number[]): void {
  const box = $('digits');
  box.innerHTML = '';
  const { rows, cols, pixels } = testSet.images;
  predictions.forEach((p, i) => {
    const c = document.createElement('canvas');
    c.width = cols;
    c.height = rows;
    const g = c.getContext('2d')!;
    const img = g.createImageData(cols, rows);
    for (let j = 0; j < rows * cols; j++) {
      const v = 255 - pixels[i * rows * cols + j]; // dark ink on white, like the page
      img.data.set([v, v, v, 255], 4 * j);
    }
    g.putImageData(img, 0, 0);
    const label = testSet.labels.labels[i];
    const cell = document.createElement('div');
    cell.className = p === label ? 'digit' : 'digit wrong';
    cell.title = `label ${label}, predicted ${p}`;
    const text = document.createElement('span');
    text.textContent = p === label ? `${p}` : `${p} (${label})`;
    cell.append(c, text);
    box.appendChild(cell);
  });
}

function escapeHtml(s: string): string {
  return s.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!);
}

// Parsed subsets, kept across runs so switching backends re-fetches nothing.
const datasets = new Map<string, Promise<MNISTDataset>>();
function dataset(split: 'train' | 't10k', n: number): Promise<MNISTDataset> {
  const key = `${split}:${n}`;
  if (!datasets.has(key)) {
    const p = fetchMnist(split, n);
    p.catch(() => datasets.delete(key)); // a failed fetch may be retried by the next run
    datasets.set(key, p);
  }
  return datasets.get(key)!;
}

let stopRequested = false;
/** The last run's model and optimizer, kept for Save until the next run starts. */
let session: TrainSession | undefined;

function setButtons(running: boolean): void {
  trainButton.disabled = running;
  stopButton.disabled = !running;
  saveButton.disabled = running || session === undefined;
  resumeButton.disabled = running || demo.savedStep === null;
}

/** Train from scratch, or (`resume`) continue the checkpoint in OPFS with the form's steps and backend. */
async function run(resume = false): Promise<void> {
  let settings: TrainSettings;
  try {
    settings = readForm();
  } catch (e) {
    setStatus((e as Error).message, true);
    return;
  }
  session?.dispose();
  session = undefined;
  stopRequested = false;
  demo.error = undefined;
  setButtons(true);
  try {
    let checkpoint: File | undefined;
    const losses: number[] = [];
    if (resume) {
      checkpoint = await readFromOPFS(CHECKPOINT_FILE);
      if (!checkpoint) throw new Error(`no checkpoint '${CHECKPOINT_FILE}' in this origin's private file system`);
      const saved = await checkpointInfo(checkpoint);
      // The saved run's model and data; how far to go and where to run are the form's.
      settings = { ...saved.settings, steps: settings.steps, backend: settings.backend, threads: settings.threads };
      losses.push(...saved.losses); // the chart continues the saved curve
    }
    demo.state = 'loading';
    setStatus(`Loading ${settings.trainSamples} training and ${settings.testSamples} test images…`);
    const [trainSet, testSet] = await Promise.all([dataset('train', settings.trainSamples), dataset('t10k', settings.testSamples)]);
    demo.state = 'training';
    setStatus(`Starting the ${settings.backend} backend…`);
    $('m-acc').textContent = '–';
    showMetrics(0, settings.steps, undefined, undefined, undefined);
    let lastDraw = 0;
    const { result, session: next } = await train(
      settings,
      { train: trainSet, test: testSet },
      (r) => {
        losses.push(r.loss);
        const now = performance.now();
        // Redraw at most every 100 ms: drawing every step would cost more than a small step.
        if (now - lastDraw > 100 || r.step === settings.steps) {
          lastDraw = now;
          if (r.step === 1) setStatus(`Training on ${settings.backend}…`);
          showMetrics(r.step, settings.steps, r.loss, r.stepsPerSecond, r.seconds);
          drawChart({ backend: settings.backend, losses, steps: settings.steps });
        }
      },
      () => stopRequested,
      checkpoint,
    );
    session = next;
    demo.runs.push(result);
    showMetrics(result.losses.length, settings.steps, result.losses.at(-1), result.stepsPerSecond, result.seconds);
    $('m-acc').textContent = `${(100 * result.testAccuracy).toFixed(1)}%`;
    drawChart();
    showRuns();
    showPredictions(testSet, result.predictions);
    setStatus(
      `${result.losses.length < settings.steps ? 'Stopped' : 'Done'}${result.resumedFrom > 0 ? ` (resumed after step ${result.resumedFrom})` : ''}: ${result.backend.name} (${result.backend.detail}), ${result.losses.length} steps of ${settings.batchSize} images in ${result.seconds.toFixed(1)} s; ` +
        `test accuracy ${(100 * result.testAccuracy).toFixed(1)}% on ${settings.testSamples} test images (loss ${fmtLoss(result.testLoss)}).`,
    );
    demo.state = 'done';
  } catch (e) {
    demo.error = (e as Error).message ?? String(e);
    demo.state = 'error';
    setStatus(`Failed: ${demo.error}`, true);
    console.error(e);
  } finally {
    setButtons(false);
  }
}

/** Write the last run's checkpoint to OPFS. */
async function save(): Promise<void> {
  if (!session) return;
  setButtons(true);
  stopButton.disabled = true;
  try {
    const bytes = await session.checkpoint();
    await writeToOPFS(CHECKPOINT_FILE, bytes);
    demo.savedStep = demo.runs.at(-1)!.losses.length;
    setStatus(`Saved step ${demo.savedStep} (${(bytes.length / 1024).toFixed(0)} KiB) to '${CHECKPOINT_FILE}' in this origin's private file system; Resume continues it, also after a reload.`);
  } catch (e) {
    demo.error = (e as Error).message ?? String(e);
    setStatus(`Saving failed: ${demo.error}`, true);
    console.error(e);
  } finally {
    setButtons(false);
  }
}

/** Look for a checkpoint saved before this page load. */
async function findCheckpoint(): Promise<void> {
  try {
    const file = await readFromOPFS(CHECKPOINT_FILE);
    if (file) {
      const { settings, step } = await checkpointInfo(file);
      demo.savedStep = step;
      setStatus(`Ready: a checkpoint at step ${step} (${settings.backend}, ${settings.hidden} hidden units) is saved; Resume continues it.`);
    }
  } catch (e) {
    // No OPFS (e.g. an http:// page that is not localhost): Save will say so when pressed.
    console.warn(`no checkpoint found: ${(e as Error).message}`);
  }
  setButtons(false);
}

form.addEventListener('submit', (e) => {
  e.preventDefault();
  void run();
});
stopButton.addEventListener('click', () => (stopRequested = true));
saveButton.addEventListener('click', () => void save());
resumeButton.addEventListener('click', () => void run(true));
field('backend').addEventListener('change', () => (field('threads').disabled = field('backend').value !== 'wasm'));
window.addEventListener('resize', () => drawChart());

initForm();
field('threads').disabled = field('backend').value !== 'wasm';
showEnvironment();
drawChart();
if (!demo.webgpuAvailable) (field('backend').querySelector('option[value=webgpu]') as HTMLOptionElement).textContent = 'webgpu (unavailable)';
setStatus('Ready: choose a backend and press Train.');
void findCheckpoint();
