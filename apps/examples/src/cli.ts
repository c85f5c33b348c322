/**
 * needle's example runner: `pnpm example <name> [--backend cpu] [...options]`, `--help` for any.
 * Each example is one readable file in this folder; this file only hands the arguments over.
 */
import { runCommand } from './command';

process.exitCode = await runCommand(process.argv.slice(2));
