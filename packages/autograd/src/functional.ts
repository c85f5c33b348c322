import { fail, formatShape } from '@needle/ndarray';
import { enableGrad } from './grad-mode';
import { gradients } from './engine';
import { Tensor, zerosLike } from './tensor';

/** How many functional grads are currently evaluating their function (nesting depth). */
let tracing = 0;

export interface GradOptions {
  /** Which positional arguments to differentiate with respect to (default 0). */
  argnums?: number | readonly number[];
}

type Fn = (...args: Tensor[]) => Tensor;

/**
 * valueAndGrad(fn)(...args) = [fn(...args), d fn / d args[argnums]] for a function returning a
 * one-element tensor (JAX's value_and_grad). The arguments' `.grad` fields are left alone.
 *
 * Nesting works: a grad evaluated inside another grad's function records its own backward pass
 * (createGraph), so grad(x => grad(f)(x).sum())(x) is the second derivative.
 */
export function valueAndGrad(fn: Fn, options?: { argnums?: number }): (...args: Tensor[]) => [Tensor, Tensor];
export function valueAndGrad(fn: Fn, options: { argnums: readonly number[] }): (...args: Tensor[]) => [Tensor, Tensor[]];
export function valueAndGrad(fn: Fn, options?: GradOptions): (...args: Tensor[]) => [Tensor, Tensor | Tensor[]] {
  const argnums = options?.argnums ?? 0;
  const wanted = typeof argnums === 'number' ? [argnums] : [...argnums];
  return (...args: Tensor[]) => {
    for (const i of wanted) {
      if (!Number.isInteger(i) || i < 0 || i >= args.length) fail('grad', `argnums ${JSON.stringify(argnums)} is out of range for ${args.length} arguments`);
      if (!(args[i] instanceof Tensor)) fail('grad', `argument ${i} is not a Tensor`);
    }
    const nested = tracing > 0;
    // Arguments that do not require grad are differentiated through a leaf view of their storage.
    const made: Tensor[] = [];
    const xs = args.map((a, i) => {
      if (!wanted.includes(i) || a.requiresGrad) return a;
      const leaf = a._leafView();
      leaf.requiresGrad = true;
      made.push(leaf);
      return leaf;
    });
    tracing++;
    let out: Tensor;
    try {
      out = enableGrad(() => fn(...xs));
    } finally {
      tracing--;
    }
    if (!(out instanceof Tensor)) fail('grad', `the function must return a Tensor, got ${typeof out}`);
    if (out.size !== 1) fail('grad', `the function must return a one-element tensor, got shape ${formatShape(out.shape)}`);
    const targets = wanted.map((i) => xs[i]);
    const found = out.requiresGrad ? gradients(out, targets, { createGraph: nested, allowUnused: true }) : targets.map(() => null);
    const grads = found.map((g, k) => g ?? zerosLike(targets[k]));
    if (nested) {
      // The gradients feed the enclosing function, and their graph may read these leaves and the
      // output: all of them belong to the enclosing graph, released by its backward.
      for (const g of grads) g._pinned = false;
      for (const leaf of made) leaf._disown();
    } else {
      for (const leaf of made) leaf.dispose();
    }
    return [out, typeof argnums === 'number' ? grads[0] : grads];
  };
}

/** grad(fn)(...args): the gradient of a one-element-valued function (see valueAndGrad). */
export function grad(fn: Fn, options?: { argnums?: number }): (...args: Tensor[]) => Tensor;
export function grad(fn: Fn, options: { argnums: readonly number[] }): (...args: Tensor[]) => Tensor[];
export function grad(fn: Fn, options?: GradOptions): (...args: Tensor[]) => Tensor | Tensor[] {
  const vg = valueAndGrad(fn, options as { argnums?: number });
  return (...args: Tensor[]) => {
    const nested = tracing > 0;
    const [value, g] = vg(...args);
    // Nested, the value is not needed by the enclosing graph (only its gradient is): freed unless read.
    if (nested) value._disown();
    else value.dispose();
    return g;
  };
}
