// fail and the shape format are @needle/ndarray's, shared by every package; nn adds its own checks.
export { fail, formatShape as fmt } from '@needle/ndarray';
import { checkBoolean, checkInteger, checkNumber, checkOptions, fail } from '@needle/ndarray';

export function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

export function checkPositiveInt(op: string, name: string, v: number): void {
  checkInteger(op, name, v, 1);
}

/** A dropout probability in [0, 1). */
export function checkProbability(op: string, name: string, p: unknown): number {
  checkNumber(op, name, p, { min: 0 });
  if (!((p as number) < 1)) fail(op, `${name} must be in [0, 1), got ${p as number}`);
  return p as number;
}

/** A constructor's options bag, and its boolean flags (undefined means the default). */
export function checkModuleOptions<T extends object>(op: string, options: T | undefined, flags: readonly string[] = []): T {
  const o = checkOptions(op, options);
  for (const f of flags) {
    const v = (o as Record<string, unknown>)[f];
    if (v !== undefined) checkBoolean(op, f, v);
  }
  return o;
}
