import { describe, expect, it, vi } from 'vitest';
import { manualSeed, setDefaultBackend } from '@needle/ndarray';
import { createCpuBackend } from '@needle/ndarray-cpu';
import { CrossEntropyLoss, Linear } from '@needle/nn';
import { SGD } from '@needle/optim';
import { runMnist } from '../src/mnist';
import { parseOptions } from '../src/options';
import { examples } from '../src/registry';

// The training code must not need synchronous reads (CONTRIBUTING.md, section 3).
const backend = createCpuBackend({ name: 'cpu-examples-test', readSync: false });
setDefaultBackend(backend);

describe('MNIST end to end', () => {
  it('softmax regression on 10k real MNIST images reaches < 12% test error on 2k, without leaking', async () => {
    manualSeed(0);
    const before = backend.memory().buffers;
    const model = new Linear(784, 10);
    const opt = new SGD(model.parameters(), { lr: 0.5 });
    const lines: string[] = [];
    const start = performance.now();
    const r = await runMnist({
      name: 'e2e', model, opt, lossFn: new CrossEntropyLoss(), seed: 0,
      epochs: 10, batchSize: 100, trainLimit: 10_000, testLimit: 2_000,
      log: (l) => lines.push(l),
    });
    const seconds = (performance.now() - start) / 1000;
    expect(lines[0]).toBe('e2e: 7850 parameters, 10000 training / 2000 test samples, batch 100, 10 epochs');
    expect(r.epochs.map((e) => e.samples)).toEqual(new Array(10).fill(10_000));
    expect(r.epochs[9].loss).toBeLessThan(r.epochs[0].loss);
    expect(r.testError).toBeLessThan(0.12);
    expect(r.testError).toBeGreaterThan(0); // a real measurement, not a constant
    expect(lines.at(-1)).toMatch(/^test error \d+\.\d\d%/);
    opt.dispose();
    model.dispose();
    expect(backend.memory().buffers).toBe(before);
    console.info(`e2e softmax regression: test error ${(100 * r.testError).toFixed(2)}% in ${seconds.toFixed(1)} s`);
  });
});

describe('each example trains on a tiny subset through its CLI entry', () => {
  for (const name of ['mnist-softmax', 'mnist-mlp', 'mnist-mlp-resnet']) {
    it(name, async () => {
      const lines: string[] = [];
      const spy = vi.spyOn(console, 'log').mockImplementation((...a: unknown[]) => void lines.push(a.join(' ')));
      try {
        // useBackend('cpu') registers the app's own CPU backend; that is what the CLI runs on.
        const argv = ['--backend', 'cpu', '--epochs', '3', '--batch-size', '50', '--lr', name === 'mnist-mlp-resnet' ? '0.003' : '0.1', '--train-limit', '600', '--test-limit', '300', '--seed', '1'];
        const parsed = parseOptions(examples[name].options, argv);
        if (parsed.help) throw new Error('unexpected --help');
        await examples[name].run(parsed.values);
      } finally {
        spy.mockRestore();
      }
      const losses = lines.filter((l) => l.startsWith('epoch')).map((l) => Number(/loss (\S+)/.exec(l)![1]));
      expect(losses).toHaveLength(3);
      expect(losses[2]).toBeLessThan(losses[0]);
      const testError = Number(/^test error (\S+)%/.exec(lines.at(-1)!)![1]);
      expect(testError).toBeLessThan(50); // chance is 90%
    });
  }
});
