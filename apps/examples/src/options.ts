/**
 * The examples' command-line options: each example declares its flags once, as data, and gets from
 * that declaration the parsing (node:util parseArgs underneath), the validation (integers, ranges,
 * choices) with errors that name the flag, the `--help` text, and typed values in `run`.
 */
import { parseArgs } from 'node:util';

interface OptionBase {
  /** One line for `--help`: what the flag controls. */
  description: string;
  /** What `--help` shows as the default of a flag with no `default` value (e.g. 'all'). */
  defaultText?: string;
}
/** A whole number, e.g. epochs or a batch size; `min`/`max` are inclusive. */
export interface IntOption extends OptionBase {
  type: 'int';
  default?: number;
  min?: number;
  max?: number;
}
/** A finite number, e.g. a learning rate; `min`/`max` are inclusive unless `exclusiveMin`. */
export interface NumberOption extends OptionBase {
  type: 'number';
  default?: number;
  min?: number;
  max?: number;
  exclusiveMin?: boolean;
}
/** One of a fixed list of words, e.g. a backend name. */
export interface ChoiceOption<C extends string = string> extends OptionBase {
  type: 'choice';
  choices: readonly C[];
  default?: C;
}
/** Free text, e.g. a file or folder path; `placeholder` names it in `--help` (default `TEXT`). */
export interface StringOption extends OptionBase {
  type: 'string';
  default?: string;
  placeholder?: string;
}
/** A switch that takes no value; false unless given. */
export interface FlagOption extends OptionBase {
  type: 'boolean';
}
export type OptionSpec = IntOption | NumberOption | ChoiceOption | StringOption | FlagOption;
export type OptionSpecs = Record<string, OptionSpec>;

type ValueOf<S extends OptionSpec> = S extends IntOption | NumberOption
  ? number
  : S extends ChoiceOption<infer C>
    ? C
    : S extends FlagOption
      ? boolean
      : string;

/** The parsed values, keyed by flag name: a flag with no default may be absent. */
export type OptionValues<O extends OptionSpecs> = {
  [K in keyof O]: O[K] extends FlagOption ? boolean : O[K] extends { default: unknown } ? ValueOf<O[K]> : ValueOf<O[K]> | undefined;
};

/** A command-line mistake: the CLI prints the message and a pointer to `--help`, and exits 2. */
export class UsageError extends Error {
  override name = 'UsageError';
}

function describeRange(spec: IntOption | NumberOption): string {
  const lower = spec.min === undefined ? undefined : `${'exclusiveMin' in spec && spec.exclusiveMin ? '>' : '>='} ${spec.min}`;
  const upper = spec.max === undefined ? undefined : `<= ${spec.max}`;
  return [lower, upper].filter(Boolean).join(' and ');
}

/** Check one raw value against its spec and convert it; `flag` is how the error names it. */
function convert(flag: string, spec: Exclude<OptionSpec, FlagOption>, raw: string): string | number {
  switch (spec.type) {
    case 'int':
    case 'number': {
      const text = raw.trim();
      const kind = spec.type === 'int' ? 'an integer' : 'a number';
      const n = Number(text);
      const wellFormed = spec.type === 'int' ? /^[+-]?\d+$/.test(text) && Number.isSafeInteger(n) : text !== '' && Number.isFinite(n);
      if (!wellFormed) throw new UsageError(`${flag}: expected ${kind}, got '${raw}'`);
      const exclusive = spec.type === 'number' && spec.exclusiveMin === true;
      const tooLow = spec.min !== undefined && (exclusive ? n <= spec.min : n < spec.min);
      const tooHigh = spec.max !== undefined && n > spec.max;
      if (tooLow || tooHigh) throw new UsageError(`${flag}: expected ${kind} ${describeRange(spec)}, got ${raw}`);
      return n;
    }
    case 'choice':
      if (!spec.choices.includes(raw)) throw new UsageError(`${flag}: expected one of ${spec.choices.join(', ')}, got '${raw}'`);
      return raw;
    case 'string':
      return raw;
    default:
      spec satisfies never;
      throw new Error('unreachable');
  }
}

/**
 * Parse `argv` (the arguments after the example's name) against `specs`. Returns `help: true` when
 * `--help`/`-h` is among them; otherwise the values, defaults filled in. Throws UsageError on an
 * unknown flag, a missing or malformed value, or a value out of range. Defaults go through the same
 * checks, so a spec whose default breaks its own range fails on every run, not only in `--help`.
 */
export function parseOptions<O extends OptionSpecs>(specs: O, argv: readonly string[]): { help: true } | { help: false; values: OptionValues<O> } {
  const config: Record<string, { type: 'string' | 'boolean'; short?: string }> = { help: { type: 'boolean', short: 'h' } };
  for (const [name, spec] of Object.entries(specs)) config[name] = { type: spec.type === 'boolean' ? 'boolean' : 'string' };
  let raw: Record<string, string | boolean | undefined>;
  try {
    raw = parseArgs({ args: [...argv], options: config, strict: true, allowPositionals: false }).values as typeof raw;
  } catch (err) {
    // parseArgs' own messages are clear; drop the advice about '--' that does not apply here.
    const message = err instanceof Error ? err.message.replace(/\. To specify a positional argument.*$/s, '') : String(err);
    throw new UsageError(message);
  }
  if (raw.help === true) return { help: true };
  const values: Record<string, string | number | boolean | undefined> = {};
  for (const [name, spec] of Object.entries(specs)) {
    const given = raw[name];
    if (spec.type === 'boolean') {
      values[name] = given === true;
    } else if (typeof given === 'string') {
      values[name] = convert(`--${name}`, spec, given);
    } else if (spec.default !== undefined) {
      values[name] = convert(`the default of --${name}`, spec, String(spec.default));
    }
  }
  return { help: false, values: values as OptionValues<O> };
}

function placeholder(spec: OptionSpec): string {
  switch (spec.type) {
    case 'int':
      return ' N';
    case 'number':
      return ' X';
    case 'choice':
      return ` ${spec.choices.join('|')}`;
    case 'string':
      return ` ${spec.placeholder ?? 'TEXT'}`;
    case 'boolean':
      return '';
    default:
      spec satisfies never;
      throw new Error('unreachable');
  }
}

function constraint(spec: OptionSpec): string | undefined {
  if (spec.type === 'int' || spec.type === 'number') {
    const range = describeRange(spec);
    return spec.type === 'int' ? `integer${range ? ` ${range}` : ''}` : range || undefined;
  }
  return undefined;
}

/** The `--help` text of one command: usage line, what it does, then one line per flag. */
export function formatHelp(usage: string, about: string, specs: OptionSpecs): string {
  const rows: [string, string][] = Object.entries(specs).map(([name, spec]) => {
    const shownDefault = 'default' in spec && spec.default !== undefined ? String(spec.default) : spec.defaultText;
    const notes = [constraint(spec), shownDefault === undefined ? undefined : `default ${shownDefault}`].filter(Boolean);
    return [`--${name}${placeholder(spec)}`, `${spec.description}${notes.length ? ` (${notes.join('; ')})` : ''}`];
  });
  rows.push(['-h, --help', 'show this help']);
  const width = Math.max(...rows.map(([left]) => left.length)) + 2;
  return [`usage: ${usage}`, '', about, '', 'options:', ...rows.map(([left, right]) => `  ${left.padEnd(width)}${right}`)].join('\n');
}
