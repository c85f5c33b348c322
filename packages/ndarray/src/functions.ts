/** Free-function forms of the NDArray methods, for code that reads better as `add(a, b)`. */
import type { NDArray, ArrayLike } from './ndarray';
import * as elementwise from './ops/elementwise';
import type { MatmulOptions } from './ops/matmul';

export const add = (a: ArrayLike, b: ArrayLike): NDArray => elementwise.binary('add', a, b);
export const sub = (a: ArrayLike, b: ArrayLike): NDArray => elementwise.binary('sub', a, b);
export const mul = (a: ArrayLike, b: ArrayLike): NDArray => elementwise.binary('mul', a, b);
export const div = (a: ArrayLike, b: ArrayLike): NDArray => elementwise.binary('div', a, b);
export const pow = (a: ArrayLike, b: ArrayLike): NDArray => elementwise.binary('pow', a, b);
export const maximum = (a: ArrayLike, b: ArrayLike): NDArray => elementwise.binary('maximum', a, b);
export const minimum = (a: ArrayLike, b: ArrayLike): NDArray => elementwise.binary('minimum', a, b);
export const eq = (a: ArrayLike, b: ArrayLike): NDArray => elementwise.binary('eq', a, b);
export const ne = (a: ArrayLike, b: ArrayLike): NDArray => elementwise.binary('ne', a, b);
export const ge = (a: ArrayLike, b: ArrayLike): NDArray => elementwise.binary('ge', a, b);
export const gt = (a: ArrayLike, b: ArrayLike): NDArray => elementwise.binary('gt', a, b);
export const le = (a: ArrayLike, b: ArrayLike): NDArray => elementwise.binary('le', a, b);
export const lt = (a: ArrayLike, b: ArrayLike): NDArray => elementwise.binary('lt', a, b);
export const where = elementwise.where;
export const matmul = (a: NDArray, b: NDArray, options?: MatmulOptions): NDArray => a.matmul(b, options);
