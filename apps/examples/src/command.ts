/**
 * The example runner's logic, apart from the process so tests can drive it: `runCommand(argv)`
 * resolves to the exit code (0 done or help, 1 the example failed, 2 a usage mistake).
 */
import { defaultBackend, listBackends } from '@needle/ndarray';
import type { Example } from './example';
import { formatHelp, parseOptions, UsageError } from './options';
import { examples as allExamples } from './registry';

export interface CommandIO {
  out(text: string): void;
  err(text: string): void;
}

const processIO: CommandIO = {
  out: (text) => console.log(text),
  err: (text) => console.error(text),
};

function listing(examples: Record<string, Example>): string {
  const width = Math.max(...Object.keys(examples).map((k) => k.length)) + 2;
  return [
    'usage: pnpm example <name> [options]',
    '       pnpm example <name> --help     (what it trains, its options and their defaults)',
    '',
    'examples:',
    ...Object.entries(examples).map(([key, ex]) => `  ${key.padEnd(width)}${ex.description}`),
  ].join('\n');
}

export async function runCommand(argv: readonly string[], io: CommandIO = processIO, examples: Record<string, Example> = allExamples): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h') {
    io.out(listing(examples));
    return 0;
  }
  const example = Object.hasOwn(examples, name) ? examples[name] : undefined;
  if (!example) {
    const what = name.startsWith('-') ? `expected an example name before the options, got '${name}'` : `unknown example '${name}'`;
    io.err(`${what}\n\n${listing(examples)}`);
    return 2;
  }
  let parsed: ReturnType<typeof parseOptions>;
  try {
    parsed = parseOptions(example.options, rest);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    io.err(`${name}: ${err.message}\nrun 'pnpm example ${name} --help' for its options`);
    return 2;
  }
  if (parsed.help) {
    io.out(formatHelp(`pnpm example ${name} [options]`, example.details, example.options));
    return 0;
  }
  try {
    await example.run(parsed.values);
    return 0;
  } catch (err) {
    io.err(err instanceof Error ? err.message : String(err));
    return 1;
  } finally {
    // WASM worker threads and WebGPU devices would otherwise keep the process alive.
    if (listBackends().length > 0) defaultBackend().destroy?.();
  }
}
