// Save/load throughput in Node, to memory and to a file, for a ResNet9-sized state dict (~0.5 M
// float32 parameters in ~60 tensors) and a 10 M-parameter one. Runs against the built package:
//   pnpm --filter @needle/safetensors... build && node packages/safetensors/scripts/throughput.mjs [cpu|wasm]
// Prints MB/s (10^6 bytes of file per second), the median of several runs. Not a test: the numbers
// depend on the machine and its load (record `uptime` beside them).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir, loadavg } from 'node:os';
import { join } from 'node:path';
import { NDArray, setDefaultBackend } from '@needle/ndarray';
import { decode, encode, load, loadCheckpoint, save, saveCheckpoint } from '../dist/index.js';
import { loadFile, saveFile } from '../dist/node.js';

const which = process.argv[2] ?? 'cpu';
const backend = which === 'wasm'
  ? await (await import('@needle/ndarray-wasm')).createWasmBackend()
  : (await import('@needle/ndarray-cpu')).createCpuBackend();
setDefaultBackend(backend);

/** A ResNet9-like layout: conv weights with batch-norm weight/bias/running stats, and a linear head. */
function resnet9Shapes() {
  const shapes = {};
  const convs = [[16, 3], [16, 16], [16, 16], [32, 16], [32, 32], [32, 32], [64, 32], [64, 64], [64, 64], [128, 64], [128, 128], [128, 128]];
  convs.forEach(([out, inC], i) => {
    shapes[`layers.${i}.conv.weight`] = [out, inC, 3, 3];
    for (const k of ['weight', 'bias', 'runningMean', 'runningVar']) shapes[`layers.${i}.bn.${k}`] = [out];
  });
  shapes['head.weight'] = [10, 128];
  shapes['head.bias'] = [10];
  return shapes;
}

function bigShapes() {
  const shapes = {};
  for (let i = 0; i < 40; i++) shapes[`block.${i}.weight`] = [500, 500];
  return shapes;
}

function makeArrays(shapes) {
  const out = {};
  let seed = 1;
  for (const [name, shape] of Object.entries(shapes)) {
    const n = shape.reduce((a, d) => a * d, 1);
    const data = new Float32Array(n);
    for (let i = 0; i < n; i++) data[i] = ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32) - 0.5;
    out[name] = NDArray.fromData(data, shape);
  }
  return out;
}

async function median(runs, fn) {
  const times = [];
  for (let r = 0; r < runs; r++) {
    const t0 = performance.now();
    await fn();
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)];
}

const dir = mkdtempSync(join(tmpdir(), 'needle-throughput-'));
console.log(`backend ${which}, node ${process.version}, load average ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);
try {
  for (const [label, shapes, runs] of [['ResNet9-sized', resnet9Shapes(), 21], ['10 M parameters', bigShapes(), 7]]) {
    const arrays = makeArrays(shapes);
    const params = Object.values(arrays).reduce((a, x) => a + x.size, 0);
    const bytes = await save(arrays);
    const mb = bytes.length / 1e6;
    const path = join(dir, 'model.safetensors');
    const host = decode(bytes).tensors;
    // A Stateful part lending its arrays, as a Module does; loading only checks what it receives.
    const model = { stateDict: () => arrays, loadStateDict: (state) => { if (Object.keys(state).length !== Object.keys(arrays).length) throw new Error('lost a tensor'); } };
    const checkpoint = await saveCheckpoint({ model, step: 100 });
    const dispose = (r) => Object.values(r.tensors).forEach((a) => a.dispose());
    const rows = [
      ['save (NDArrays -> bytes)', await median(runs, () => save(arrays))],
      ['load (bytes -> NDArrays)', await median(runs, async () => dispose(await load(bytes)))],
      ['saveFile', await median(runs, () => saveFile(path, arrays))],
      ['loadFile', await median(runs, async () => dispose(await loadFile(path)))],
      ['saveCheckpoint', await median(runs, () => saveCheckpoint({ model, step: 100 }))],
      ['loadCheckpoint', await median(runs, () => loadCheckpoint(checkpoint, { model }))],
      ['encode (host)', await median(runs, () => encode(host))],
      ['decode (host)', await median(runs, () => decode(bytes))],
    ];
    console.log(`\n${label}: ${Object.keys(arrays).length} tensors, ${params} parameters, ${mb.toFixed(2)} MB`);
    for (const [name, ms] of rows) console.log(`  ${name.padEnd(26)} ${ms.toFixed(2).padStart(8)} ms  ${(mb / (ms / 1000)).toFixed(0).padStart(6)} MB/s`);
    Object.values(arrays).forEach((a) => a.dispose());
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
