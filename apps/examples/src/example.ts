import type { OptionSpecs, OptionValues } from './options';

/**
 * One runnable example. `options` declares its flags (see ./options.ts); the CLI parses and checks
 * them, prints `--help` from them, and hands `run` the typed values.
 */
export interface Example<O extends OptionSpecs = OptionSpecs> {
  /** One line for the list of examples. */
  description: string;
  /** What `--help` says it trains: the model, the data, the optimizer, what to expect. */
  details: string;
  options: O;
  run(args: OptionValues<O>): Promise<void>;
}

/** Declare an example; the identity function, there so `run`'s argument types follow `options`. */
export function defineExample<const O extends OptionSpecs>(example: Example<O>): Example<O> {
  return example;
}
