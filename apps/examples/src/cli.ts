/**
 * needle's example runner: `pnpm example <name> [--backend cpu] [...options]`.
 * Each example is one readable file in this folder; this file only parses arguments and dispatches.
 */
import { parseArgs } from 'node:util';
import { defaultBackend, listBackends } from '@needle/ndarray';
import { examples } from './registry';

async function main(): Promise<void> {
  const [name, ...rest] = process.argv.slice(2);
  const example = name ? examples[name] : undefined;
  if (!example) {
    console.log('usage: pnpm example <name> [options]\n\nexamples:');
    for (const [key, ex] of Object.entries(examples)) console.log(`  ${key.padEnd(18)} ${ex.description}`);
    process.exitCode = name ? 1 : 0;
    return;
  }
  const { values } = parseArgs({ args: rest, options: example.options, allowPositionals: false, strict: true });
  try {
    await example.run(values as Record<string, string | boolean | undefined>);
  } finally {
    // WASM worker threads and WebGPU devices would otherwise keep the process alive.
    if (listBackends().length > 0) defaultBackend().destroy?.();
  }
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : err);
  process.exitCode = 1;
});
