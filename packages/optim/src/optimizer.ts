import { checkNumber, describeValue, fail, formatShape, keep, NDArray, resolveBackend, scope, type Backend, type Scope } from '@needle/ndarray';
import { noGrad, Tensor } from '@needle/autograd';

/** Options every optimizer's parameter groups carry. */
export interface GroupOptions {
  lr: number;
}

/**
 * A parameter group: its tensors and its own copy of the options (a scheduler changes `lr` here).
 * `initialLr` is set by the first LR scheduler attached to the optimizer (PyTorch's `initial_lr`).
 */
export type ParamGroup<O extends GroupOptions> = O & { params: Tensor[]; initialLr?: number };

/** A group as passed to a constructor: options left out fall back to the optimizer's defaults. */
export type ParamGroupInput<O extends GroupOptions> = Partial<O> & { params: Iterable<Tensor> };

/** What an optimizer accepts: the parameters (e.g. `model.parameters()`), or a list of groups. */
export type ParamsInput<O extends GroupOptions> = Iterable<Tensor> | readonly ParamGroupInput<O>[];

/** Per-parameter state: device arrays (momentum buffers, moments) and host numbers (step counts). */
export type ParamState = Record<string, NDArray | number>;

/**
 * A snapshot of an optimizer, shaped like PyTorch's `state_dict()`: parameters are referred to by
 * their index in the order of `paramGroups` (group by group), so a dict can be loaded into a fresh
 * optimizer built over the same parameters.
 */
export interface OptimizerStateDict<O extends GroupOptions = GroupOptions> {
  state: Record<number, ParamState>;
  paramGroups: Array<O & { params: number[]; initialLr?: number }>;
}

/**
 * Base of every optimizer: parameter groups, per-parameter state, `step()`, `zeroGrad()` and state
 * dicts. A subclass implements `update`, the rule for one parameter.
 *
 * Memory: the optimizer owns its state arrays; they are kept out of every tidy/scope, so `step()`
 * may be called inside one. `step()` frees all its temporaries and the state it replaces, so a
 * training loop's live buffer count stays constant. `dispose()` frees the state.
 */
export abstract class Optimizer<O extends GroupOptions> {
  readonly defaults: Readonly<O>;
  readonly paramGroups: ParamGroup<O>[] = [];
  protected readonly state = new Map<Tensor, ParamState>();
  private readonly name: string;

  constructor(params: ParamsInput<O>, defaults: O) {
    this.name = new.target.name;
    this.defaults = Object.freeze({ ...defaults });
    this.validateOptions(this.defaults, this.name);
    if (params === null || typeof (params as Partial<Iterable<unknown>>)[Symbol.iterator] !== 'function' || typeof params === 'string') {
      fail(this.name, `expected the parameters as an iterable of Tensors (e.g. model.parameters()) or an array of parameter groups, got ${describeValue(params)}`);
    }
    const list = [...(params as Iterable<Tensor | ParamGroupInput<O>>)];
    if (list.length === 0) fail(this.name, 'got an empty parameter list');
    if (list.every((p) => p instanceof Tensor)) {
      this.addParamGroup({ params: list as Tensor[] } as unknown as ParamGroupInput<O>);
    } else if (list.every((p) => !(p instanceof Tensor) && typeof p === 'object' && p !== null && 'params' in p)) {
      for (const g of list as ParamGroupInput<O>[]) this.addParamGroup(g);
    } else {
      fail(this.name, 'expected an iterable of Tensors or an array of parameter groups ({ params, ...options }), not a mix');
    }
  }

  /** Add a group (e.g. layers unfrozen during fine-tuning); missing options come from the defaults. */
  addParamGroup(group: ParamGroupInput<O>): void {
    const op = `${this.name}.addParamGroup`;
    const given = (group as Partial<ParamGroupInput<O>> | null)?.params;
    if (given === null || given === undefined || typeof given === 'string' || typeof (given as Partial<Iterable<unknown>>)[Symbol.iterator] !== 'function') {
      fail(op, `expected a group { params: iterable of Tensors, ...options }, got params ${describeValue(given)}`);
    }
    const params = [...given];
    for (const [i, p] of params.entries()) {
      if (!(p instanceof Tensor)) fail(op, `params[${i}] is not a Tensor`);
      if (!p.isLeaf) fail(op, `params[${i}] of shape ${formatShape(p.shape)} is not a leaf tensor (it was computed by an op); optimize leaves such as parameters`);
      if (this.state.has(p) || this.paramGroups.some((g) => g.params.includes(p))) {
        fail(op, `params[${i}] of shape ${formatShape(p.shape)} already belongs to a parameter group`);
      }
    }
    if (new Set(params).size !== params.length) fail(op, 'a parameter appears twice in the group');
    const full = { ...this.defaults, ...group, params } as ParamGroup<O>;
    this.validateOptions(full, op);
    this.paramGroups.push(full);
  }

  /** Check a group's options; subclasses extend it. Errors name the option and the bad value. */
  protected validateOptions(options: O, op: string): void {
    checkNumber(op, 'lr', options.lr, { min: 0 });
  }

  /**
   * The update rule for one parameter with a gradient: write the new value into `param` with
   * `param.assign(...)` and return its new state. It runs inside a scope that frees every array it
   * creates except the arrays in the returned state; the optimizer then frees the old state's arrays
   * that are not in the new one. Never read values back to the host here.
   */
  protected abstract update(param: Tensor, grad: NDArray, state: Readonly<ParamState>, group: ParamGroup<O>): ParamState;

  /** One optimization step over every parameter that has a `.grad` (the others are skipped). */
  step(): void {
    noGrad(() => {
      for (const group of this.paramGroups) {
        for (const p of group.params) {
          const g = p.grad;
          if (g === null) continue;
          const old = this.state.get(p) ?? {};
          const s = scope();
          let next: ParamState;
          try {
            next = this.update(p, g.data, old, group);
          } catch (e) {
            s.end();
            throw e;
          }
          keepState(s, next);
          s.end();
          disposeReplaced(old, next);
          this.state.set(p, next);
        }
      }
    });
  }

  /** Drop every parameter's gradient (disposing it), like PyTorch's `zero_grad(set_to_none=True)`. */
  zeroGrad(): void {
    for (const group of this.paramGroups) for (const p of group.params) p.zeroGrad();
  }

  /** The state of `param` (read only; arrays are borrowed from the optimizer), or undefined. */
  getState(param: Tensor): Readonly<ParamState> | undefined {
    return this.state.get(param);
  }

  /** A snapshot: copies of every state array (yours to dispose) and the groups' options. */
  stateDict(): OptimizerStateDict<O> {
    const state: Record<number, ParamState> = {};
    const paramGroups: OptimizerStateDict<O>['paramGroups'] = [];
    let index = 0;
    for (const group of this.paramGroups) {
      const ids: number[] = [];
      for (const p of group.params) {
        const st = this.state.get(p);
        if (st) state[index] = mapState(st, (a) => a.clone());
        ids.push(index++);
      }
      const { params: _params, ...options } = group;
      paramGroups.push({ ...(options as unknown as O), params: ids });
    }
    return { state, paramGroups };
  }

  /**
   * Restore a snapshot from `stateDict()` into an optimizer over the same parameters (same group
   * sizes and shapes). The arrays are copied: the dict stays yours. The state continues exactly:
   * the next `step()` does what the saved optimizer's next step would have done. Everything is
   * checked first (`checkStateDict`), so a bad dict leaves the optimizer as it was.
   */
  loadStateDict(dict: OptimizerStateDict<O>): void {
    const byIndex = this.validateStateDict(dict, `${this.name}.loadStateDict`);
    const s = scope();
    const loaded = new Map<Tensor, ParamState>();
    for (const [key, st] of Object.entries(dict.state)) loaded.set(byIndex.get(Number(key))!, mapState(st, (a) => a.clone()));
    for (const st of loaded.values()) keepState(s, st);
    s.end();
    this.disposeState();
    for (const [p, st] of loaded) this.state.set(p, st);
    dict.paramGroups.forEach((g, gi) => {
      const { params: _params, ...options } = g;
      Object.assign(this.paramGroups[gi], options);
    });
  }

  /**
   * Check a dict exactly as `loadStateDict` does (group sizes, parameter ids, state arrays' shapes
   * and backends, the groups' options) and throw the same error, without changing anything.
   */
  checkStateDict(dict: OptimizerStateDict<O>): void {
    this.validateStateDict(dict, `${this.name}.checkStateDict`);
  }

  /** The checks of a load; returns the parameter each state index refers to. */
  private validateStateDict(dict: OptimizerStateDict<O>, op: string): Map<number, Tensor> {
    if (typeof dict !== 'object' || dict === null || !Array.isArray(dict.paramGroups) || typeof dict.state !== 'object' || dict.state === null) {
      fail(op, 'expected a dict { state, paramGroups } from stateDict()');
    }
    if (dict.paramGroups.length !== this.paramGroups.length) {
      fail(op, `the dict has ${dict.paramGroups.length} parameter groups, this optimizer ${this.paramGroups.length}`);
    }
    const byIndex = new Map<number, Tensor>();
    dict.paramGroups.forEach((g, gi) => {
      const mine = this.paramGroups[gi].params;
      if (typeof g !== 'object' || g === null || !Array.isArray(g.params)) fail(op, `group ${gi} of the dict has no params list`);
      if (g.params.length !== mine.length) fail(op, `group ${gi} holds ${g.params.length} parameters in the dict, ${mine.length} here`);
      g.params.forEach((id, i) => {
        if (!Number.isInteger(id) || byIndex.has(id)) fail(op, `group ${gi} lists parameter id ${JSON.stringify(id)}, expected distinct integer ids`);
        byIndex.set(id, mine[i]);
      });
      const { params: _params, ...options } = g;
      this.validateOptions({ ...this.paramGroups[gi], ...options } as unknown as O, `${op}: group ${gi}`);
    });
    for (const [key, st] of Object.entries(dict.state)) {
      const p = byIndex.get(Number(key));
      if (!p) fail(op, `state for parameter ${key}, which no group of the dict lists`);
      if (typeof st !== 'object' || st === null) fail(op, `state of parameter ${key} is not an object`);
      for (const [name, v] of Object.entries(st)) {
        if (typeof v === 'number') continue;
        if (!(v instanceof NDArray)) fail(op, `state '${name}' of parameter ${key} is neither an NDArray nor a number`);
        v.assertLive(op);
        if (v.backend !== p.backend) fail(op, `state '${name}' of parameter ${key} lives on '${v.backend.name}', the parameter on '${p.backend.name}'; move it first (await array.to(backend))`);
        if (v.size !== p.size || !sameShape(v.shape, p.shape)) fail(op, `state '${name}' of parameter ${key} has shape ${formatShape(v.shape)}, the parameter ${formatShape(p.shape)}`);
      }
    }
    return byIndex;
  }

  /**
   * Move the state arrays to `backend` in place (after `await model.to(backend)`, so the state lives
   * where the parameters now do). Everything is copied first and swapped in only when every copy
   * succeeded; the old arrays are freed.
   */
  async to(backend: Backend | string): Promise<this> {
    const target = resolveBackend(backend);
    const moved = new Map<Tensor, ParamState>();
    const copies: NDArray[] = [];
    try {
      for (const [p, st] of this.state) {
        const next: ParamState = {};
        const done = new Map<NDArray, NDArray>();
        for (const [k, v] of Object.entries(st)) {
          if (typeof v === 'number' || v.backend === target) next[k] = v;
          else {
            let c = done.get(v);
            if (!c) {
              c = keep(await v.to(target));
              copies.push(c);
              done.set(v, c);
            }
            next[k] = c;
          }
        }
        moved.set(p, next);
      }
    } catch (e) {
      for (const c of copies) c.dispose();
      throw e;
    }
    for (const [p, next] of moved) {
      disposeReplaced(this.state.get(p)!, next);
      this.state.set(p, next);
    }
    return this;
  }

  /** Free the state arrays (the optimizer can keep stepping: state starts afresh). */
  dispose(): void {
    this.disposeState();
  }

  private disposeState(): void {
    for (const st of this.state.values()) disposeReplaced(st, {});
    this.state.clear();
  }
}

function mapState(st: Readonly<ParamState>, f: (a: NDArray) => NDArray): ParamState {
  const out: ParamState = {};
  const copies = new Map<NDArray, NDArray>();
  for (const [k, v] of Object.entries(st)) {
    if (typeof v === 'number') out[k] = v;
    else {
      // Two entries may share one array (a subclass's choice): copy it once, keeping the sharing.
      let c = copies.get(v);
      if (!c) copies.set(v, (c = f(v)));
      out[k] = c;
    }
  }
  return out;
}

/** Take the state's arrays out of `s` and of every enclosing scope: the optimizer owns them. */
function keepState(s: Scope, st: ParamState): void {
  for (const v of Object.values(st)) if (v instanceof NDArray) s.keep(v);
}

function disposeReplaced(old: Readonly<ParamState>, next: Readonly<ParamState>): void {
  const kept = new Set(Object.values(next));
  const done = new Set<NDArray>();
  for (const v of Object.values(old)) {
    if (v instanceof NDArray && !kept.has(v) && !done.has(v)) {
      done.add(v);
      if (!v.disposed) v.dispose();
    }
  }
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}
