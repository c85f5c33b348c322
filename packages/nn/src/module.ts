/**
 * Module and Parameter: the PyTorch-shaped containers every layer is built from.
 *
 * Discovery is by property scanning, so user subclasses need no registration calls: a Module finds
 * its parameters and submodules among its own enumerable properties (`this.fc1 = new Linear(...)`),
 * inside arrays (`this.blocks = [new Linear(...), ...]`, named `blocks.0`) and plain objects (named
 * `heads.key`). Buffers (tensors that are state but not trained, e.g. BatchNorm's running statistics)
 * are ordinary `Tensor` properties named once with `registerBuffer`, as in PyTorch.
 */
import { NDArray, describeValue, keep, resolveBackend, scope, tidy, type Backend } from '@needle/ndarray';
import { Tensor, noGrad } from '@needle/autograd';
import { fail, fmt, sameShape } from './errors';

/**
 * A tensor that is a trainable leaf of a Module: it requires grad (unless told otherwise) and is
 * found by `Module.parameters()`.
 *
 * Ownership: the Module (or whoever created the Parameter) owns it; `Module.dispose()` frees it.
 * Parameters are long-lived, so they are exempt from the `tidy()`/`scope()` open when they are
 * created: building a model inside a tidy does not dispose its weights when the tidy ends.
 */
export class Parameter extends Tensor {
  /**
   * From an NDArray (the Parameter takes over the caller's reference, like `new Tensor`) or from a
   * Tensor (the Parameter shares its storage with a reference of its own, so the tensor stays yours).
   */
  constructor(value: NDArray | Tensor, options: { requiresGrad?: boolean } = {}) {
    let data: NDArray;
    if (value instanceof Tensor) {
      const d = value.data;
      data = d.view(d.shape, d.strides, d.offset);
    } else if (value instanceof NDArray) {
      data = value;
    } else {
      fail('Parameter', `expected an NDArray or a Tensor, got ${value === null ? 'null' : typeof value}`);
    }
    super(data, { requiresGrad: options.requiresGrad ?? true });
    keep(this);
  }

  override toString(): string {
    return `Parameter(shape=${fmt(this.shape)}${this.requiresGrad ? '' : ', requiresGrad=false'}${this.disposed ? ', disposed' : ''})`;
  }
}

/**
 * Parameters and buffers by dotted name ('layers.0.weight'). Values are NDArrays; from
 * `stateDict()` they are borrowed (the live arrays) unless `{ copy: true }` was asked for.
 */
export type StateDict = Record<string, NDArray>;

/** What `loadStateDict` accepts: NDArrays or Tensors by key, as an object or a Map. */
export type StateDictInput = StateDict | Map<string, NDArray | Tensor> | Record<string, NDArray | Tensor>;

export interface LoadStateDictOptions {
  /** Default true: throw when keys are missing or unexpected. Shape mismatches always throw. */
  strict?: boolean;
}

export interface LoadStateDictResult {
  missingKeys: string[];
  unexpectedKeys: string[];
}

/**
 * Base class of every layer and model. Subclasses set their parameters, buffers and submodules as
 * properties in the constructor and implement `forward`. Run a module with `module.call(...)` (or
 * `module.forward(...)`, which is the same today; `call` is where hooks would go).
 */
export abstract class Module {
  /** Training mode (dropout active, batch statistics in BatchNorm); set recursively by train()/eval(). */
  training = true;
  /** Names of the Tensor properties that are buffers (a #private field: invisible to the scan). */
  readonly #bufferNames: string[] = [];

  /** The computation. Subclasses declare their own signature, e.g. `forward(x: Tensor): Tensor`. */
  abstract forward(...args: unknown[]): unknown;

  /**
   * Run the module: `model.call(x)` is `model.forward(x)`, typed by the subclass's forward, inside a
   * scope. What the forward returns is yours; its intermediates that the result does not depend on
   * are freed when it returns, and those it does depend on (with grad enabled: the graph a backward
   * reads) are released by that backward, or by disposing the result. If the forward throws,
   * everything it allocated is freed.
   */
  call(...args: Parameters<this['forward']>): ReturnType<this['forward']> {
    const s = scope();
    let out: unknown;
    try {
      out = (this.forward as (...a: unknown[]) => unknown).apply(this, args);
    } catch (e) {
      s.end();
      throw e;
    }
    return s.end(out) as ReturnType<this['forward']>;
  }

  // ---- discovery -------------------------------------------------------------------------------

  /**
   * The (name, value) pairs scanned for parameters and submodules: by default the module's own
   * enumerable properties in definition order. Containers override it (Sequential names its layers
   * '0', '1', ... as PyTorch does).
   */
  protected namedMembers(): Iterable<[string, unknown]> {
    return Object.entries(this);
  }

  /**
   * Register a Tensor property as a buffer: saved in stateDict, freed by dispose, not trained. The
   * tensor is stored as `this[name]` (reassigning the property later replaces the buffer) and is
   * exempt from the enclosing tidy/scope, like parameters. Returns the tensor.
   */
  protected registerBuffer<T extends Tensor | null>(name: string, tensor: T): T {
    if (tensor !== null && !(tensor instanceof Tensor)) {
      fail(`${this.constructor.name}.registerBuffer`, `buffer '${name}' must be a Tensor or null, got ${typeof tensor}`);
    }
    if (tensor instanceof Parameter) {
      fail(`${this.constructor.name}.registerBuffer`, `'${name}' is a Parameter; parameters are found without registration`);
    }
    if (!this.#bufferNames.includes(name)) this.#bufferNames.push(name);
    (this as unknown as Record<string, unknown>)[name] = tensor;
    if (tensor) keep(tensor);
    return tensor;
  }

  /** This module's own parameters and direct submodules (not recursive), by local name. */
  private directMembers(): { params: [string, Parameter][]; children: [string, Module][] } {
    const params: [string, Parameter][] = [];
    const children: [string, Module][] = [];
    const seen = new Set<unknown>();
    const visit = (name: string, v: unknown): void => {
      if (v === null || typeof v !== 'object') return;
      // Every name of a shared module or parameter is listed (callers dedup where PyTorch does);
      // `seen` only stops containers that contain themselves.
      if (v instanceof Parameter) params.push([name, v]);
      else if (v instanceof Module) children.push([name, v]);
      else if (seen.has(v)) return;
      else if (Array.isArray(v)) {
        seen.add(v);
        v.forEach((item, i) => visit(`${name}.${i}`, item));
      } else if (Object.getPrototypeOf(v) === Object.prototype) {
        seen.add(v);
        for (const [k, item] of Object.entries(v)) visit(`${name}.${k}`, item);
      }
    };
    for (const [name, v] of this.namedMembers()) visit(name, v);
    return { params, children };
  }

  /** This module's own buffers (non-null), by local name. */
  private directBuffers(): [string, Tensor][] {
    const out: [string, Tensor][] = [];
    for (const name of this.#bufferNames) {
      const v = (this as unknown as Record<string, unknown>)[name];
      if (v === null || v === undefined) continue;
      if (!(v instanceof Tensor)) {
        fail(`${this.constructor.name}`, `buffer '${name}' was replaced by a ${typeof v}; buffers must be Tensors or null`);
      }
      out.push([name, v]);
    }
    return out;
  }

  /** Direct submodules (each once), by name. */
  *namedChildren(): Generator<[string, Module]> {
    const seen = new Set<Module>();
    for (const [name, m] of this.directMembers().children) {
      if (seen.has(m)) continue;
      seen.add(m);
      yield [name, m];
    }
  }

  *children(): Generator<Module> {
    for (const [, m] of this.namedChildren()) yield m;
  }

  /** This module and every submodule, pre-order, each once (the first name wins); '' is this module. */
  *namedModules(prefix = ''): Generator<[string, Module]> {
    const seen = new Set<Module>();
    function* walk(m: Module, name: string): Generator<[string, Module]> {
      if (seen.has(m)) return;
      seen.add(m);
      yield [name, m];
      for (const [childName, child] of m.namedChildren()) yield* walk(child, name ? `${name}.${childName}` : childName);
    }
    yield* walk(this, prefix);
  }

  *modules(): Generator<Module> {
    for (const [, m] of this.namedModules()) yield m;
  }

  /**
   * Every parameter, each once even when shared between layers (the first name wins), in PyTorch's
   * order: a module's own parameters, then its submodules' in definition order.
   */
  *namedParameters(prefix = ''): Generator<[string, Parameter]> {
    const seen = new Set<Parameter>();
    for (const [modName, m] of this.namedModules(prefix)) {
      for (const [name, p] of m.directMembers().params) {
        if (seen.has(p)) continue;
        seen.add(p);
        yield [modName ? `${modName}.${name}` : name, p];
      }
    }
  }

  /** Every parameter once (what an optimizer takes). */
  parameters(): Parameter[] {
    return [...this.namedParameters()].map(([, p]) => p);
  }

  /** Every buffer once, named like parameters. */
  *namedBuffers(prefix = ''): Generator<[string, Tensor]> {
    const seen = new Set<Tensor>();
    for (const [modName, m] of this.namedModules(prefix)) {
      for (const [name, b] of m.directBuffers()) {
        if (seen.has(b)) continue;
        seen.add(b);
        yield [modName ? `${modName}.${name}` : name, b];
      }
    }
  }

  buffers(): Tensor[] {
    return [...this.namedBuffers()].map(([, b]) => b);
  }

  /** Total number of trainable elements (shared parameters counted once). */
  numParameters(): number {
    return this.parameters().reduce((n, p) => n + p.size, 0);
  }

  /** Call `fn` on every module (pre-order), e.g. for custom initialisation. */
  apply(fn: (m: Module) => void): this {
    for (const m of this.modules()) fn(m);
    return this;
  }

  // ---- modes and gradients ---------------------------------------------------------------------

  /** Set training mode on this module and every submodule. */
  train(mode = true): this {
    for (const m of this.modules()) m.training = mode;
    return this;
  }

  /** Evaluation mode: `train(false)`. */
  eval(): this {
    return this.train(false);
  }

  /** Drop every parameter's gradient (disposing it), like PyTorch's zero_grad(set_to_none=True). */
  zeroGrad(): void {
    for (const p of this.parameters()) p.zeroGrad();
  }

  // ---- state -----------------------------------------------------------------------------------

  /**
   * Tensors of the state dict by key, like PyTorch's state_dict: per module its parameters, then its
   * buffers, then its submodules'. Unlike namedParameters, a layer shared by two parents appears
   * under both names (loading writes the same storage twice, harmlessly).
   */
  private stateTensors(): [string, Tensor][] {
    const out: [string, Tensor][] = [];
    const onPath = new Set<Module>();
    const walk = (m: Module, prefix: string): void => {
      if (onPath.has(m)) return; // a reference back to an ancestor is not a child
      onPath.add(m);
      const { params, children } = m.directMembers();
      for (const [name, p] of params) out.push([prefix + name, p]);
      for (const [name, b] of m.directBuffers()) out.push([prefix + name, b]);
      for (const [name, c] of children) walk(c, `${prefix}${name}.`);
      onPath.delete(m);
    };
    walk(this, '');
    return out;
  }

  /**
   * Parameters and buffers as NDArrays keyed 'layer.0.weight'. By default the live arrays, borrowed
   * (do not dispose them; they change as the model trains); with `{ copy: true }` fresh copies that
   * you own (a snapshot, e.g. of the best model so far).
   */
  stateDict(options: { copy?: boolean } = {}): StateDict {
    const out: StateDict = {};
    for (const [key, t] of this.stateTensors()) {
      out[key] = options.copy ? keep(t.data.clone()) : t.data;
    }
    return out;
  }

  /**
   * Copy values into the parameters and buffers (in place: optimizers holding the parameters keep
   * working). Everything is checked before anything is written: with `strict` (default) missing or
   * unexpected keys throw; a value whose shape differs from the parameter's always throws; values
   * must be on the module's backend. Arrays from another backend need a read-back that may be async
   * (WebGPU), so they throw here: `await loadStateDictAsync(state)` moves them.
   */
  loadStateDict(state: StateDictInput, options: LoadStateDictOptions = {}): LoadStateDictResult {
    const { writes, result } = this.planLoad(`${this.constructor.name}.loadStateDict`, state, options, false);
    this.write(writes);
    return result;
  }

  /**
   * `loadStateDict` that also accepts arrays on other backends (a model trained on wasm loaded onto
   * webgpu): after the same checks, each such array is copied to its target's backend (the caller's
   * arrays are left alone) and then everything is written at once, so a failed move writes nothing.
   */
  async loadStateDictAsync(state: StateDictInput, options: LoadStateDictOptions = {}): Promise<LoadStateDictResult> {
    const { writes, result } = this.planLoad(`${this.constructor.name}.loadStateDictAsync`, state, options, true);
    const moved: NDArray[] = [];
    try {
      const final: [Tensor, NDArray][] = [];
      for (const [target, value] of writes) {
        if (value.backend === target.backend) final.push([target, value]);
        else {
          const m = keep(await value.to(target.backend));
          moved.push(m);
          final.push([target, m]);
        }
      }
      this.write(final);
    } finally {
      for (const m of moved) m.dispose();
    }
    return result;
  }

  /**
   * Check `state` exactly as `loadStateDict(state, options)` would (keys, shapes, backends) and throw
   * the same error, without writing anything: a multi-part checkpoint validates every part before
   * loading any. Returns the keys that would be missing and unexpected.
   */
  checkStateDict(state: StateDictInput, options: LoadStateDictOptions & { allowOtherBackends?: boolean } = {}): LoadStateDictResult {
    return this.planLoad(`${this.constructor.name}.checkStateDict`, state, options, options.allowOtherBackends ?? false).result;
  }

  /** Every check of a load, and the (target, value) writes it would make. */
  private planLoad(op: string, state: StateDictInput, options: LoadStateDictOptions, allowOtherBackends: boolean): { writes: [Tensor, NDArray][]; result: LoadStateDictResult } {
    if (typeof state !== 'object' || state === null) fail(op, `expected a state dict (an object or Map of NDArrays by key), got ${state === null ? 'null' : typeof state}`);
    const strict = options.strict ?? true;
    const given = state instanceof Map ? new Map(state) : new Map(Object.entries(state));
    const targets = this.stateTensors();
    const expected = new Set(targets.map(([k]) => k));
    const missingKeys = targets.map(([k]) => k).filter((k) => !given.has(k));
    const unexpectedKeys = [...given.keys()].filter((k) => !expected.has(k));
    if (strict && (missingKeys.length > 0 || unexpectedKeys.length > 0)) {
      const parts: string[] = [];
      if (missingKeys.length > 0) parts.push(`missing keys ${JSON.stringify(missingKeys)}`);
      if (unexpectedKeys.length > 0) parts.push(`unexpected keys ${JSON.stringify(unexpectedKeys)}`);
      fail(op, `${parts.join('; ')} (expected exactly ${JSON.stringify([...expected])}; pass { strict: false } to load a subset)`);
    }
    const problems: string[] = [];
    const writes: [Tensor, NDArray][] = [];
    for (const [key, target] of targets) {
      if (!given.has(key)) continue;
      const v = given.get(key);
      const value = v instanceof Tensor ? v.data : v;
      if (!(value instanceof NDArray)) {
        // An explicit undefined is a value like any other (JSON round trips and typos produce it), not a skipped key.
        problems.push(`'${key}' is ${describeValue(v)}, expected an NDArray or Tensor`);
      } else if (value.disposed) {
        problems.push(`'${key}' was disposed`);
      } else if (!sameShape(value.shape, target.shape)) {
        problems.push(`'${key}' has shape ${fmt(value.shape)}, expected ${fmt(target.shape)}`);
      } else if (value.backend !== target.backend && !allowOtherBackends) {
        problems.push(`'${key}' is on backend '${value.backend.name}', expected '${target.backend.name}' (use await module.loadStateDictAsync(state), which moves it)`);
      } else {
        writes.push([target, value]);
      }
    }
    if (problems.length > 0) fail(op, problems.join('; '));
    return { writes, result: { missingKeys, unexpectedKeys } };
  }

  private write(writes: readonly [Tensor, NDArray][]): void {
    noGrad(() => tidy(() => {
      for (const [target, value] of writes) {
        if (value !== target.data) target.assign(value);
      }
    }));
  }

  /**
   * Move every parameter and buffer, and their gradients, to `backend`, in place: the same Parameter
   * objects get new storage (an optimizer built on them keeps working; move its state with
   * `await optimizer.to(backend)`), and the old storage is freed. All arrays are copied first and
   * swapped in only when every copy succeeded. Parameters that shared one storage (views) each get
   * their own copy.
   */
  async to(backend: Backend | string): Promise<this> {
    const target = resolveBackend(backend);
    const tensors = [...new Set<Tensor>([...this.parameters(), ...this.buffers()])];
    for (const t of tensors) {
      if (t.grad !== null && !t.grad.isLeaf) fail(`${this.constructor.name}.to`, `a gradient of shape ${fmt(t.shape)} is part of a graph (backward with createGraph); drop it (zeroGrad) before moving`);
    }
    const copies: [Tensor, NDArray][] = [];
    try {
      for (const t of tensors) {
        if (t.backend !== target) copies.push([t, keep(await t.data.to(target))]);
        const g = t.grad;
        if (g !== null && g.backend !== target) copies.push([g, keep(await g.data.to(target))]);
      }
    } catch (e) {
      for (const [, c] of copies) c.dispose();
      throw e;
    }
    for (const [t, c] of copies) t.replaceData(c);
    return this;
  }

  // ---- memory and printing ---------------------------------------------------------------------

  /** Free every parameter (and its gradient) and buffer of this module and its submodules. */
  dispose(): void {
    for (const t of [...this.parameters(), ...this.buffers()]) {
      if (!t.disposed) t.dispose();
    }
  }

  [Symbol.dispose](): void {
    this.dispose();
  }

  /** The text between the parentheses of toString(), e.g. 'inFeatures=4, outFeatures=2, bias=true'. */
  extraRepr(): string {
    return '';
  }

  /** PyTorch-style summary: the module, its settings and its children, indented. */
  toString(): string {
    const children = [...this.namedChildren()];
    const head = `${this.constructor.name}(${this.extraRepr()}`;
    if (children.length === 0) return `${head})`;
    const lines = children.map(([name, c]) => `  (${name}): ${c.toString().split('\n').join('\n  ')}`);
    return `${head}\n${lines.join('\n')}\n)`;
  }
}
