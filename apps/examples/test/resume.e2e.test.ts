// --save / --resume of the MNIST examples: a run stopped after epoch 2 and resumed prints the same
// numbers for epoch 3 and the test set as a run that never stopped.
import { mkdtempSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { parseOptions } from '../src/options';
import { examples } from '../src/registry';

const dir = mkdtempSync(join(tmpdir(), 'needle-examples-resume-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function runCli(name: string, flags: string[]): Promise<string[]> {
  const lines: string[] = [];
  const spy = vi.spyOn(console, 'log').mockImplementation((...a: unknown[]) => void lines.push(a.join(' ')));
  try {
    const argv = ['--backend', 'cpu', '--batch-size', '50', '--train-limit', '300', '--test-limit', '200', '--seed', '4', ...flags];
    const parsed = parseOptions(examples[name].options, argv);
    if (parsed.help) throw new Error('unexpected --help');
    await examples[name].run(parsed.values);
  } finally {
    spy.mockRestore();
  }
  return lines;
}

/** The numbers of a log line without its timings (samples/s, seconds). */
const numbers = (line: string): string => line.replace(/\s+\d+ samples\/s.*$/, '').replace(/\s+\(.*s in all\)$/, '');

describe('MNIST examples: --save and --resume', () => {
  // mnist-mlp-resnet has everything that must come back: BatchNorm buffers, dropout (the global
  // generator), Adam's moments and step counts, and the shuffle order.
  for (const name of ['mnist-mlp-resnet', 'mnist-softmax']) {
    it(`${name}: resuming after epoch 2 gives the uninterrupted run's epoch 3 and test error`, async () => {
      const extra = name === 'mnist-mlp-resnet' ? ['--lr', '0.003', '--hidden', '32', '--blocks', '1'] : ['--lr', '0.1'];
      const straightPath = join(dir, `${name}-straight.safetensors`);
      const straight = await runCli(name, [...extra, '--epochs', '3', '--save', straightPath]);
      expect(existsSync(straightPath)).toBe(true);
      const path = join(dir, `${name}.safetensors`);
      const firstTwo = await runCli(name, [...extra, '--epochs', '2', '--save', path]);
      const resumed = await runCli(name, [...extra, '--epochs', '3', '--resume', path]);
      const epochLines = (lines: string[]) => lines.filter((l) => l.startsWith('epoch')).map(numbers);
      expect(epochLines(firstTwo)).toEqual(epochLines(straight).slice(0, 2));
      expect(resumed).toContain(`resumed from ${path} after epoch 2`);
      expect(epochLines(resumed)).toEqual(epochLines(straight).slice(2));
      expect(epochLines(resumed)[0]).toMatch(/^epoch {2}3 {2}loss \d\.\d{4} {2}train error \d+\.\d\d%$/);
      expect(numbers(resumed.at(-1)!)).toBe(numbers(straight.at(-1)!));
      expect(resumed.at(-1)).toMatch(/^test error \d+\.\d\d%/);
    });
  }

  it('refuses a checkpoint of another model (before loading any part) or of another data size', async () => {
    const path = join(dir, 'mnist-softmax.safetensors');
    await expect(runCli('mnist-mlp', ['--epochs', '3', '--resume', path])).rejects.toThrow(/Sequential\.checkStateDict: missing keys \["0\.weight",.*unexpected keys \["weight","bias"\]/);
    await expect(runCli('mnist-softmax', ['--epochs', '3', '--resume', path, '--train-limit', '400'])).rejects.toThrow(
      new RegExp(`--resume ${path}: the checkpoint is of mnist-softmax on 300 training samples, this run is mnist-softmax on 400`),
    );
  });
});
