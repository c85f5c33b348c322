// fail and the shape format are @needle/ndarray's, shared by every package; nn adds its own checks.
export { fail, formatShape as fmt } from '@needle/ndarray';
import { fail } from '@needle/ndarray';

export function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

export function checkPositiveInt(op: string, name: string, v: number): void {
  if (!Number.isInteger(v) || v < 1) fail(op, `${name} must be a positive integer, got ${v}`);
}
