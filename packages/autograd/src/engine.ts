/**
 * Reverse-mode differentiation: reverse topological order over the recorded graph, gradients
 * accumulated per node, leaves' gradients accumulated into `.grad`, and the graph released afterwards
 * unless asked to keep it.
 */
import { checkBoolean, checkOptions, describeValue, fail, formatShape, full as ndFull, keep, NDArray, scope, type Scope } from '@needle/ndarray';
import { withGradMode } from './grad-mode';
import { OPS, checkGradients, checkSaved, type OpDef, type OpName } from './optable';
import { Tensor } from './tensor';
import * as F from './functions';

export interface BackwardOptions {
  /**
   * Keep the graph (and its intermediate arrays) after the pass, for a second backward through it.
   * Default false: intermediates reachable from the output are disposed. Implied by createGraph.
   */
  retainGraph?: boolean;
  /** Record the backward computation itself, so the gradients can be differentiated again. */
  createGraph?: boolean;
}

export interface GradientsOptions extends BackwardOptions {
  /** Gradient with respect to the output (default: 1 for a one-element output). */
  gradOutput?: Tensor | NDArray | number;
  /** Return null for inputs the output does not depend on instead of throwing. */
  allowUnused?: boolean;
}

/**
 * Accumulate d(output)/d(leaf) into the `.grad` of every leaf that requires grad. `output` must have
 * one element unless `grad` (same shape as output) is given.
 */
export function backward(output: Tensor, grad?: Tensor | NDArray | number, options: BackwardOptions = {}): void {
  run('backward', output, grad, options, null);
}

/**
 * d(output)/d(input) for each input (torch.autograd.grad): returned, not accumulated into `.grad`.
 * The results are yours; with createGraph they are graph nodes you can differentiate again.
 */
export function gradients(output: Tensor, inputs: readonly Tensor[], options: GradientsOptions = {}): (Tensor | null)[] {
  if (!Array.isArray(inputs as unknown)) fail('gradients', `expected the inputs as an array of Tensors, got ${describeValue(inputs)}`);
  checkOptions('gradients', options);
  inputs.forEach((t, i) => {
    if (!(t instanceof Tensor)) fail('gradients', `input ${i} is not a Tensor`);
    if (!t.requiresGrad) fail('gradients', `input ${i} (shape ${formatShape(t.shape)}) does not require grad`);
  });
  const found = run('gradients', output, options.gradOutput, options, inputs);
  return inputs.map((t, i) => {
    const g = found.get(t);
    if (g) {
      // Yours, like a leaf's .grad: a later backward through it cuts it from the graph but keeps it.
      g._pinned = true;
      return g;
    }
    if (!options.allowUnused) {
      fail('gradients', `input ${i} (shape ${formatShape(t.shape)}) is not used to compute the output; pass { allowUnused: true } to get null`);
    }
    return null;
  });
}

/** Nodes reachable through grad-requiring edges, each before all of its inputs. */
function topologicalOrder(root: Tensor): Tensor[] {
  const order: Tensor[] = [];
  const visited = new Set<Tensor>([root]);
  const stack: [Tensor, number][] = [[root, 0]];
  while (stack.length > 0) {
    const top = stack[stack.length - 1];
    const [t, i] = top;
    const inputs = t.requiresGrad && t._node ? t._node.inputs : [];
    if (i < inputs.length) {
      top[1]++;
      const child = inputs[i];
      if (child.requiresGrad && !visited.has(child)) {
        visited.add(child);
        stack.push([child, 0]);
      }
    } else {
      stack.pop();
      order.push(t);
    }
  }
  return order.reverse();
}

/** Dispose every graph intermediate reachable from `root` (not `root` itself, not leaves). */
function releaseGraph(root: Tensor): void {
  const seen = new Set<Tensor>([root]);
  const stack: Tensor[] = [root];
  while (stack.length > 0) {
    const t = stack.pop()!;
    for (const child of t._node?.inputs ?? []) {
      if (!seen.has(child)) {
        seen.add(child);
        stack.push(child);
      }
    }
  }
  for (const t of seen) {
    if (t === root || !t._intermediate) continue;
    if (t._pinned) {
      // Held as some tensor's .grad: that tensor owns it now; only cut it from the graph.
      t._unlink('backward()', true);
      t._intermediate = false;
    } else if (!t.disposed) {
      t._release('backward()');
    }
  }
  // The root stays yours: cut from the graph, no longer an intermediate a later graph may release.
  if (root._node !== null) root._graphFreed = true;
  root._unlink('backward()', true);
  root._intermediate = false;
}

/** Argument checks that must pass before the pass opens its scope (a throw later would leave it open). */
function checkArguments(op: string, root: Tensor, grad: unknown, options: BackwardOptions): void {
  if (grad !== undefined && typeof grad !== 'number' && !(grad instanceof Tensor) && !(grad instanceof NDArray)) {
    fail(op, `expected the gradient as a Tensor, an NDArray or a number, got ${describeValue(grad)}`);
  }
  if (grad instanceof Tensor || grad instanceof NDArray) {
    if (grad.disposed) fail(op, `the gradient of shape ${formatShape(grad.shape)} was disposed`);
    if (grad.backend !== root.backend) {
      fail(op, `the gradient lives on backend '${grad.backend.name}' and the output on '${root.backend.name}'`);
    }
    const shape = grad.shape;
    if (shape.length !== root.shape.length || shape.some((d, i) => d !== root.shape[i])) {
      fail(op, `gradient of shape ${formatShape(shape)} does not match the output's shape ${formatShape(root.shape)}`);
    }
  }
  if (grad === undefined && root.size !== 1) {
    fail(op, `called on a tensor of shape ${formatShape(root.shape)} without a gradient: an implicit gradient needs a one-element output (a scalar loss); pass a gradient of shape ${formatShape(root.shape)}`);
  }
  checkOptions(op, options);
  for (const key of ['retainGraph', 'createGraph'] as const) {
    if (options[key] !== undefined) checkBoolean(op, key, options[key]);
  }
}

/** The seed of the pass (arguments already checked by checkArguments). */
function seedGradient(op: string, root: Tensor, grad: Tensor | NDArray | number | undefined): { seed: Tensor; owned: boolean } {
  if (grad === undefined) {
    return { seed: new Tensor(ndFull(root.shape, 1, { backend: root.backend })), owned: true };
  }
  if (typeof grad === 'number') return { seed: new Tensor(ndFull(root.shape, grad, { backend: root.backend })), owned: true };
  if (grad instanceof NDArray) return { seed: new Tensor(grad.view(grad.shape, grad.strides, grad.offset)), owned: true };
  return { seed: grad, owned: false };
}

/** A new tensor sharing `g`'s storage, kept on the graph (so a stored gradient has exactly one owner). */
function ownView(g: Tensor): Tensor {
  return F.reshape(g, g.shape);
}

function run(
  op: string,
  root: Tensor,
  grad: Tensor | NDArray | number | undefined,
  options: BackwardOptions,
  targets: readonly Tensor[] | null,
): Map<Tensor, Tensor> {
  if (!(root instanceof Tensor)) fail(op, `expected a Tensor, got ${describeValue(root)}`);
  root.data.assertLive(op); // the getter throws a clear error when disposed or released
  if (root._graphFreed) {
    fail(op, `the graph of this tensor (shape ${formatShape(root.shape)}) was already released by a previous backward; pass { retainGraph: true } to the first call to run backward twice`);
  }
  if (!root.requiresGrad) {
    fail(op, `the tensor (shape ${formatShape(root.shape)}) does not require grad: none of the tensors it was computed from has requiresGrad, or it was computed under noGrad`);
  }
  checkArguments(op, root, grad, options);
  const createGraph = options.createGraph ?? false;
  const retainGraph = options.retainGraph ?? createGraph;
  const targetSet = targets ? new Set(targets) : null;
  const order = topologicalOrder(root);
  // Before any work: an in-place change to a saved tensor makes the whole pass wrong.
  for (const t of order) if (t._node) checkSaved(t._node, t);
  const results = new Map<Tensor, Tensor>();
  // Without createGraph every temporary of the pass is freed when it ends; with it, the temporaries
  // are the new graph, owned like any other graph (released by a later backward, or by your scope).
  const s: Scope | null = createGraph ? null : scope();
  const { seed, owned: seedOwned } = seedGradient(op, root, grad);
  try {
    withGradMode(createGraph, () => {
      const grads = new Map<Tensor, Tensor>();
      const refs = new Map<Tensor, number>();
      // A hold counts as a consumer too, so releasing part of the new graph (createGraph) cannot
      // free a gradient the pass still needs.
      const hold = (t: Tensor) => {
        refs.set(t, (refs.get(t) ?? 0) + 1);
        t._consumers++;
      };
      const drop = (t: Tensor) => {
        t._consumers--;
        const n = (refs.get(t) ?? 0) - 1;
        if (n > 0) {
          refs.set(t, n);
          return;
        }
        refs.delete(t);
        if (t === seed && !seedOwned) return;
        // With createGraph a dropped gradient may be read by the new graph: it goes to that graph
        // (freed now if nothing reads it, such as the gradients of parameters gradients() skips).
        if (createGraph) t._disown();
        else if (!t.disposed) t.dispose();
      };
      const store = (t: Tensor, g: Tensor) => {
        const prev = grads.get(t);
        if (prev) {
          const total = F.add(prev, g);
          grads.set(t, total);
          hold(total);
          drop(prev);
        } else {
          grads.set(t, g);
          hold(g);
        }
      };

      grads.set(root, seed);
      hold(seed);
      for (const node of order) {
        const g = grads.get(node);
        if (!g) continue;
        grads.delete(node);
        if (targetSet?.has(node)) {
          results.set(node, ownView(g));
        }
        const graph = node._node;
        if (!graph) {
          if (!targetSet) accumulateLeaf(node, g, s, createGraph);
          drop(g);
          continue;
        }
        const def = OPS[graph.op] as unknown as OpDef<OpName>;
        const needsGrad = graph.inputs.map((t) => t.requiresGrad);
        const inputGrads = def.backward(g, { inputs: graph.inputs, attrs: graph.attrs as never, out: node, needsGrad });
        checkGradients(graph.op, graph.inputs, inputGrads);
        // Hold every returned gradient while storing, so one returned twice (add: [g, g]) or equal to
        // g (addScalar: [g]) is freed only when no longer referenced.
        const returned = inputGrads.filter((x): x is Tensor => x !== null);
        returned.forEach(hold);
        inputGrads.forEach((gi, i) => {
          if (gi && needsGrad[i]) store(graph.inputs[i], gi);
        });
        returned.forEach(drop);
        drop(g);
      }
    });
  } finally {
    if (s) {
      // Results handed to the caller move out of the pass's scope into the caller's.
      s.end([...results.values()]);
    }
  }
  if (!retainGraph) releaseGraph(root);
  return results;
}

/** leaf.grad += g, with the result owned by the leaf (kept out of every scope). */
function accumulateLeaf(leaf: Tensor, g: Tensor, s: Scope | null, createGraph: boolean): void {
  const old = leaf.grad;
  const next = old ? F.add(old, g) : ownView(g);
  if (s) s.keep(next);
  keep(next);
  // With createGraph the new gradient's graph reads the old one: hand it to that graph instead of
  // disposing it.
  leaf._setGrad(next, !createGraph);
}
