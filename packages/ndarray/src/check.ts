/**
 * Argument checks shared by every @needle package: one place that decides what a valid number,
 * integer, flag, options object or dtype is and how a wrong one is reported. Each check is a few
 * type tests on host values (never a read of device data), cheap enough to run on every call.
 */
import { fail } from './errors';

/** How an error message names a value the caller passed: `the string '3'`, `null`, `a function`. */
export function describeValue(v: unknown): string {
  if (v === null) return 'null';
  if (v === undefined) return 'undefined';
  switch (typeof v) {
    case 'number':
      return Object.is(v, -0) ? '-0' : String(v);
    case 'string':
      return `the string '${v.length > 40 ? `${v.slice(0, 40)}...` : v}'`;
    case 'boolean':
      return `the boolean ${v}`;
    case 'function':
      return 'a function';
    case 'bigint':
      return `the bigint ${v}n`;
    case 'symbol':
      return 'a symbol';
    default:
      break;
  }
  if (Array.isArray(v)) {
    const text = JSON.stringify(v) ?? '';
    return `the array ${text.length > 40 ? `${text.slice(0, 40)}...` : text}`;
  }
  const shape = (v as { shape?: unknown }).shape;
  const name = (v as object).constructor?.name;
  if (Array.isArray(shape) && name) return `a ${name} of shape [${shape.join(', ')}]`;
  return name && name !== 'Object' ? `a ${name}` : 'an object';
}

export interface NumberRule {
  /** Reject NaN and the infinities (default true). */
  finite?: boolean;
  integer?: boolean;
  /** Inclusive lower bound. */
  min?: number;
  /** Exclusive lower bound. */
  above?: number;
  /** Inclusive upper bound. */
  max?: number;
}

/** A number obeying `rule`, or a NeedleError naming `name` and what was expected. */
export function checkNumber(op: string, name: string, v: unknown, rule: NumberRule = {}): number {
  const { finite = true, integer = false, min, above, max } = rule;
  const expected = expectation(rule);
  if (typeof v !== 'number' || (finite && !Number.isFinite(v)) || (integer && !Number.isInteger(v))) {
    fail(op, `${name} must be ${expected}, got ${describeValue(v)}`);
  }
  if ((min !== undefined && !(v >= min)) || (above !== undefined && !(v > above)) || (max !== undefined && !(v <= max))) {
    fail(op, `${name} must be ${expected}, got ${describeValue(v)}`);
  }
  return v;
}

function expectation(rule: NumberRule): string {
  const { finite = true, integer = false, min, above, max } = rule;
  if (integer && above === undefined && max === undefined && (min === 1 || min === 0)) {
    return min === 1 ? 'a positive integer' : 'a non-negative integer';
  }
  return `${integer ? 'an integer' : finite ? 'a finite number' : 'a number'}${bounds(rule)}`;
}

function bounds({ min, above, max }: NumberRule): string {
  const parts = [min !== undefined ? `>= ${min}` : '', above !== undefined ? `> ${above}` : '', max !== undefined ? `<= ${max}` : ''];
  const text = parts.filter((p) => p).join(' and ');
  return text ? ` ${text}` : '';
}

/** An integer >= min (default 0). */
export function checkInteger(op: string, name: string, v: unknown, min = 0): number {
  return checkNumber(op, name, v, { integer: true, min });
}

export function checkBoolean(op: string, name: string, v: unknown): boolean {
  if (typeof v !== 'boolean') fail(op, `${name} must be true or false, got ${describeValue(v)}`);
  return v;
}

/** An options bag: undefined gives {}; anything but a plain object is refused. */
export function checkOptions<T extends object>(op: string, v: T | undefined, name = 'options'): T {
  if (v === undefined) return {} as T;
  if (v === null || typeof v !== 'object' || Array.isArray(v)) fail(op, `${name} must be an object, got ${describeValue(v)}`);
  return v;
}

/**
 * Storage is float32 only for now (integer values up to 2^24 are exact in it). Any other dtype is
 * refused rather than silently stored as float32.
 */
export function checkDType(op: string, dtype: unknown): 'float32' {
  if (dtype === undefined || dtype === 'float32') return 'float32';
  return fail(op, `dtype ${typeof dtype === 'string' ? `'${dtype}'` : describeValue(dtype)} is not supported: arrays store float32 (integers up to 2^24 are exact in it); omit dtype or pass 'float32'`);
}
