// The README's examples, run as written (imports from ../src, the file in a temporary directory).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, it, vi } from 'vitest';
import { array, defaultBackend, setDefaultBackend } from '@needle/ndarray';
import { createCpuBackend } from '@needle/ndarray-cpu';
import { load, loadCheckpoint, save, saveCheckpoint } from '../src/index';
import { loadFile, saveFile } from '../src/node';

it('README: save, load, files', async () => {
  const log = vi.spyOn(console, 'log').mockImplementation(() => undefined);
  const dir = mkdtempSync(join(tmpdir(), 'needle-readme-'));
  try {
    // ---- README code starts here ----
    setDefaultBackend(createCpuBackend());

    const weight = array([[1, 2], [3, 4]]);
    const bias = array([0.5, -0.5]);
    const bytes = await save({ 'fc.weight': weight, 'fc.bias': bias }, { format: 'pt' }); // a Uint8Array
    const { tensors, metadata } = await load(bytes); // new float32 NDArrays on the default backend
    console.log(await tensors['fc.weight'].toNested(), metadata); // [[1, 2], [3, 4]] { format: 'pt' }

    const path = join(dir, 'model.safetensors'); // README: 'model.safetensors'
    await saveFile(path, { 'fc.weight': weight, 'fc.bias': bias });
    const fromDisk = await loadFile(path); // errors name the path
    expect(await fromDisk.tensors['fc.bias'].toNested()).toEqual([0.5, -0.5]); // (test only)
    [weight, bias, ...Object.values(tensors), ...Object.values(fromDisk.tensors)].forEach((a) => a.dispose());
    // ---- README code ends here ----
    expect(log.mock.calls[0]).toEqual([[[1, 2], [3, 4]], { format: 'pt' }]);
    expect(defaultBackend().memory().buffers).toBe(0);
  } finally {
    rmSync(dir, { recursive: true, force: true });
    log.mockRestore();
  }
});

it('README: checkpoints', async () => {
  const log = vi.spyOn(console, 'log').mockImplementation(() => undefined);
  try {
    // ---- README code starts here ----
    class Counter {
      count = 0;
      stateDict() { return { count: this.count }; }
      loadStateDict(state: { count: number }) { this.count = state.count; }
    }
    const counter = new Counter();
    counter.count = 41;

    const checkpoint = await saveCheckpoint({ counter, epoch: 3 }, { note: 'after epoch 3' });

    const resumed = new Counter();
    const { data, metadata: note } = await loadCheckpoint(checkpoint, { counter: resumed });
    console.log(resumed.count, data.epoch, note); // 41 3 { note: 'after epoch 3' }
    // ---- README code ends here ----
    expect(log.mock.calls[0]).toEqual([41, 3, { note: 'after epoch 3' }]);
  } finally {
    log.mockRestore();
  }
});
