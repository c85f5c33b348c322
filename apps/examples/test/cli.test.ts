import { describe, expect, it } from 'vitest';
import { runCommand, type CommandIO } from '../src/command';
import { defineExample, type Example } from '../src/example';
import { formatHelp, parseOptions, UsageError, type OptionSpecs } from '../src/options';
import { examples } from '../src/registry';

function capture(): CommandIO & { stdout: string[]; stderr: string[] } {
  const stdout: string[] = [];
  const stderr: string[] = [];
  return { stdout, stderr, out: (t) => void stdout.push(t), err: (t) => void stderr.push(t) };
}

const specs = {
  epochs: { type: 'int', min: 1, default: 3, description: 'passes' },
  limit: { type: 'int', min: 1, max: 100, description: 'how many', defaultText: 'all' },
  lr: { type: 'number', min: 0, exclusiveMin: true, default: 0.5, description: 'step size' },
  p: { type: 'number', min: 0, max: 0.99, default: 0.1, description: 'probability' },
  backend: { type: 'choice', choices: ['cpu', 'wasm'], default: 'cpu', description: 'where' },
  save: { type: 'string', placeholder: 'FILE', description: 'write here' },
  verbose: { type: 'boolean', description: 'talk' },
} as const satisfies OptionSpecs;

function parseError(argv: string[]): string {
  try {
    parseOptions(specs, argv);
  } catch (err) {
    expect(err).toBeInstanceOf(UsageError);
    return (err as Error).message;
  }
  throw new Error(`no error for ${argv.join(' ')}`);
}

describe('parseOptions', () => {
  it('fills defaults, converts values and leaves optional flags absent', () => {
    expect(parseOptions(specs, [])).toEqual({ help: false, values: { epochs: 3, lr: 0.5, p: 0.1, backend: 'cpu', verbose: false } });
    expect(parseOptions(specs, ['--epochs', '7', '--limit=100', '--lr', '1e-3', '--backend', 'wasm', '--save', 'a.bin', '--verbose'])).toEqual({
      help: false,
      values: { epochs: 7, limit: 100, lr: 0.001, p: 0.1, backend: 'wasm', save: 'a.bin', verbose: true },
    });
  });

  it('rejects malformed and out-of-range values, naming the flag and the value', () => {
    expect(parseError(['--epochs', '1.5'])).toBe("--epochs: expected an integer, got '1.5'");
    expect(parseError(['--epochs', 'ten'])).toBe("--epochs: expected an integer, got 'ten'");
    expect(parseError(['--epochs', ''])).toBe("--epochs: expected an integer, got ''");
    expect(parseError(['--epochs', '0'])).toBe('--epochs: expected an integer >= 1, got 0');
    expect(parseError(['--limit', '101'])).toBe('--limit: expected an integer >= 1 and <= 100, got 101');
    expect(parseError(['--lr', '0'])).toBe('--lr: expected a number > 0, got 0');
    expect(parseError(['--lr', 'NaN'])).toBe("--lr: expected a number, got 'NaN'");
    expect(parseError(['--lr', 'Infinity'])).toBe("--lr: expected a number, got 'Infinity'");
    expect(parseError(['--p', '1'])).toBe('--p: expected a number >= 0 and <= 0.99, got 1');
    expect(parseError(['--backend', 'tpu'])).toBe("--backend: expected one of cpu, wasm, got 'tpu'");
  });

  it('rejects unknown flags, missing values and stray arguments', () => {
    expect(parseError(['--epoch', '3'])).toMatch(/^Unknown option '--epoch'/);
    expect(parseError(['--epochs'])).toMatch(/^Option '--epochs <value>' argument missing/);
    expect(parseError(['3'])).toMatch(/^Unexpected argument '3'/);
  });

  it('checks defaults against their own spec', () => {
    expect(() => parseOptions({ n: { type: 'int', min: 1, default: 0, description: 'n' } }, [])).toThrow('the default of --n: expected an integer >= 1, got 0');
  });

  it('reports --help and -h instead of parsing the rest', () => {
    expect(parseOptions(specs, ['--epochs', 'x', '--help'])).toEqual({ help: true });
    expect(parseOptions(specs, ['-h'])).toEqual({ help: true });
  });

  it('formats one help line per flag with its kind, range and default', () => {
    expect(formatHelp('tool [options]', 'Does a thing.', specs).split('\n')).toEqual([
      'usage: tool [options]',
      '',
      'Does a thing.',
      '',
      'options:',
      '  --epochs N          passes (integer >= 1; default 3)',
      '  --limit N           how many (integer >= 1 and <= 100; default all)',
      '  --lr X              step size (> 0; default 0.5)',
      '  --p X               probability (>= 0 and <= 0.99; default 0.1)',
      '  --backend cpu|wasm  where (default cpu)',
      '  --save FILE         write here',
      '  --verbose           talk',
      '  -h, --help          show this help',
    ]);
  });
});

describe('pnpm example', () => {
  const ran: unknown[] = [];
  const fake: Record<string, Example> = {
    demo: defineExample({
      description: 'a demo',
      details: 'Trains nothing at all.',
      options: { steps: { type: 'int', min: 1, default: 2, description: 'steps' } },
      async run(args) {
        ran.push(args);
      },
    }),
  };

  it('lists the examples with exit 0 for no name and for --help', async () => {
    for (const argv of [[], ['--help'], ['-h']]) {
      const io = capture();
      expect(await runCommand(argv, io)).toBe(0);
      const text = io.stdout.join('\n');
      for (const name of Object.keys(examples)) expect(text).toContain(`  ${name}`);
      expect(io.stderr).toEqual([]);
    }
  });

  it('says an unknown example is unknown, lists the examples and exits 2', async () => {
    const io = capture();
    expect(await runCommand(['mnist-mpl'], io)).toBe(2);
    expect(io.stderr[0]).toMatch(/^unknown example 'mnist-mpl'\n/);
    expect(io.stderr[0]).toContain('  mnist-mlp ');
    const io2 = capture();
    expect(await runCommand(['--epochs', '3'], io2)).toBe(2);
    expect(io2.stderr[0]).toMatch(/^expected an example name before the options, got '--epochs'/);
  });

  it('prints every example\'s generated help with exit 0', async () => {
    for (const [name, example] of Object.entries(examples)) {
      const io = capture();
      expect(await runCommand([name, '--help'], io)).toBe(0);
      const text = io.stdout.join('\n');
      expect(text).toContain(`usage: pnpm example ${name} [options]`);
      expect(text).toContain(example.details);
      for (const flag of Object.keys(example.options)) expect(text).toContain(`--${flag}`);
      expect(text).toContain('--backend cpu|wasm|webgpu');
      // Every example's defaults pass its own checks.
      expect(parseOptions(example.options, []).help).toBe(false);
    }
    const io = capture();
    await runCommand(['mnist-mlp', '--help'], io);
    expect(io.stdout.join('\n')).toMatch(/--epochs N +passes over the training set \(integer >= 1; default 20\)/);
  });

  it('rejects bad flags with exit 2 before running anything', async () => {
    for (const [argv, message] of [
      [['mnist-mlp', '--epochs', '1.5'], "mnist-mlp: --epochs: expected an integer, got '1.5'"],
      [['mnist-softmax', '--train-limit', '0'], 'mnist-softmax: --train-limit: expected an integer >= 1 and <= 60000, got 0'],
      [['mnist-mlp', '--help-me'], "mnist-mlp: Unknown option '--help-me'"],
    ] as const) {
      const io = capture();
      expect(await runCommand(argv, io)).toBe(2);
      expect(io.stderr[0]).toContain(message);
      expect(io.stderr[0]).toContain(`run 'pnpm example ${argv[0]} --help' for its options`);
    }
  });

  it('runs the example with the parsed values', async () => {
    ran.length = 0;
    expect(await runCommand(['demo', '--steps', '5'], capture(), fake)).toBe(0);
    expect(await runCommand(['demo'], capture(), fake)).toBe(0);
    expect(ran).toEqual([{ steps: 5 }, { steps: 2 }]);
  });
});
