/**
 * A whole training run in one safetensors file. A checkpoint is a set of named parts, each either a
 * `Stateful` object (a Module, an Optimizer, an LR scheduler, a random Generator: anything with
 * `stateDict()` and `loadStateDict(state)`) or plain data (epoch and step counters, a config).
 *
 * In the file, every NDArray leaf of a part's state becomes a float32 tensor named by its dotted
 * path (`model.layers.0.weight`, `optimizer.state.3.expAvg`); everything else goes into
 * `__metadata__` as JSON, one key per part (`needle.part.<name>`) plus an index
 * (`needle.checkpoint`). So the file stays an ordinary safetensors file: PyTorch reads its tensors.
 *
 * This module knows nothing of nn or optim: parts are duck-typed.
 */
import { NDArray, fail, scope } from '@needle/ndarray';
import { checkMetadata, type Metadata } from './codec';
import { arrayOf, loadBytes, saveArrays } from './arrays';
import { readSource, type SafetensorsSource } from './sources';
import type { Backend } from '@needle/ndarray';

/** What a checkpoint part can be: an object with a state dict to save and load. */
export interface Stateful {
  /**
   * The state: a tree of plain objects, arrays and Maps whose leaves are NDArrays (or Tensors, i.e.
   * objects with a `.data` NDArray), JSON values, typed arrays, bigints, undefined, NaN and the
   * infinities. Arrays created by this call (copies) are disposed by `saveCheckpoint` once saved;
   * arrays that existed before (borrowed, e.g. a Module's live parameters) are left alone.
   */
  stateDict(): unknown;
  /** Take the state back. It must copy what it keeps: `loadCheckpoint` disposes the arrays after. */
  loadStateDict(state: never): unknown;
  /** Optional: throw if `state` would not load, changing nothing. Called for every part first. */
  checkStateDict?(state: never): unknown;
}

/** Named parts: Stateful objects, or plain data (numbers, strings, booleans, arrays, objects). */
export type CheckpointParts = Record<string, unknown>;

export interface LoadCheckpointOptions {
  /** Backend (instance or registered name) for the loaded arrays (default: the default backend). */
  backend?: Backend | string;
  /** What the bytes are, for error messages (default: a File's name, a Response's URL, or "buffer"). */
  source?: string;
  /**
   * With `true` (default) the Stateful parts given and those in the file must be the same set; with
   * `false` parts missing on either side are skipped.
   */
  strict?: boolean;
}

export interface LoadedCheckpoint {
  /**
   * The plain-data parts as saved (NDArray leaves in them are new arrays on the target backend, yours
   * to dispose).
   */
  data: Record<string, unknown>;
  /** The caller's own metadata given to `saveCheckpoint` (without the `needle.` keys). */
  metadata: Metadata;
}

const INDEX_KEY = 'needle.checkpoint';
const PART_PREFIX = 'needle.part.';
const FORMAT = 'needle-checkpoint';
const VERSION = 1;

interface Index {
  format: typeof FORMAT;
  version: number;
  parts: { name: string; stateful: boolean }[];
}

export function isStateful(v: unknown): v is Stateful {
  return typeof v === 'object' && v !== null &&
    typeof (v as Stateful).stateDict === 'function' && typeof (v as Stateful).loadStateDict === 'function';
}

/**
 * Save every part into one safetensors file. `metadata` adds string entries of your own (keys may
 * not start with `needle.`). Stateful parts' `stateDict()` are called synchronously, one after the
 * other, before anything is read, so the snapshot is of one moment.
 */
export async function saveCheckpoint(parts: CheckpointParts, metadata?: Metadata): Promise<Uint8Array<ArrayBuffer>> {
  const op = 'saveCheckpoint';
  checkParts(op, parts);
  checkMetadata(op, metadata);
  for (const key of Object.keys(metadata ?? {})) {
    if (key.startsWith('needle.')) fail(op, `metadata key ${JSON.stringify(key)}: keys starting with 'needle.' are reserved for the checkpoint itself`);
  }
  // Arrays created while the state dicts are taken are copies this save owns; a scope finds them.
  const s = scope();
  let states: [string, unknown, boolean][];
  try {
    states = Object.entries(parts).map(([name, part]) => isStateful(part) ? [name, part.stateDict(), true] : [name, part, false]);
  } catch (e) {
    s.end();
    throw e;
  }
  const created = [...s.tracked].filter((a): a is NDArray => a instanceof NDArray);
  // Kept, not disposed yet: they are read below, then disposed.
  s.end(created);
  try {
    const tensors: [string, NDArray][] = [];
    const own: Metadata = { ...metadata };
    const index: Index = { format: FORMAT, version: VERSION, parts: [] };
    for (const [name, state, stateful] of states) {
      index.parts.push({ name, stateful });
      own[PART_PREFIX + name] = JSON.stringify(encodeTree(op, name, state, tensors));
    }
    own[INDEX_KEY] = JSON.stringify(index);
    const names = new Map<string, string>();
    for (const [name] of tensors) {
      if (names.has(name)) fail(op, `two arrays would both be saved as '${name}' (a key containing '.' collides with a nested path); rename one`);
      names.set(name, name);
    }
    return await saveArrays(op, tensors, own);
  } finally {
    for (const a of created) if (!a.disposed) a.dispose();
  }
}

/**
 * Load a checkpoint written by `saveCheckpoint` into the given parts. Everything is checked first:
 * the file, the parts present, the tensors referenced, and each part's optional `checkStateDict`;
 * only then is each Stateful part's `loadStateDict` called, in the order the parts were saved, with
 * its state rebuilt on the target backend (NDArray leaves; Tensor leaves come back as NDArrays).
 * Those arrays are disposed when loading ends (so `loadStateDict` must copy what it keeps). Plain
 * parts are returned in `data`; a plain value given in `parts` is only a placeholder.
 */
export async function loadCheckpoint(source: SafetensorsSource, parts: CheckpointParts, options: LoadCheckpointOptions = {}): Promise<LoadedCheckpoint> {
  const op = 'loadCheckpoint';
  checkParts(op, parts);
  const read = await readSource(op, source, options.source);
  const where = read.source;
  const bad = (problem: string): never => fail(op, `${where}: ${problem}`);
  const { tensors, metadata } = loadBytes(op, read.bytes, where, options.backend);
  const owned = new Set(Object.values(tensors));
  try {
    const index = parseIndex(metadata?.[INDEX_KEY], bad);
    const strict = options.strict ?? true;
    const problems: string[] = [];
    const saved = new Map(index.parts.map((p) => [p.name, p]));
    for (const p of index.parts) {
      const given = parts[p.name];
      if (p.stateful && given === undefined && strict) problems.push(`part '${p.name}' is in the checkpoint but not given (pass { strict: false } to skip it)`);
      if (p.stateful && given !== undefined && !isStateful(given)) problems.push(`part '${p.name}' was saved from a Stateful object, but the given one has no stateDict()/loadStateDict()`);
      if (!p.stateful && isStateful(given)) problems.push(`part '${p.name}' was saved as plain data, but a Stateful object is given for it`);
    }
    for (const [name, given] of Object.entries(parts)) {
      if (!saved.has(name) && isStateful(given) && strict) problems.push(`part '${name}' is not in the checkpoint (it holds ${index.parts.map((p) => `'${p.name}'`).join(', ') || 'no parts'}; pass { strict: false } to skip it)`);
    }
    if (problems.length > 0) bad(problems.join('; '));

    // Rebuild every part's state, using each tensor exactly once.
    const used = new Set<string>();
    const states = new Map<string, unknown>();
    for (const p of index.parts) {
      const text = metadata![PART_PREFIX + p.name];
      if (text === undefined) bad(`the metadata has no '${PART_PREFIX}${p.name}' for part '${p.name}'`);
      let encoded: unknown;
      try {
        encoded = JSON.parse(text);
      } catch (e) {
        bad(`the state of part '${p.name}' is not valid JSON (${(e as Error).message})`);
      }
      states.set(p.name, decodeTree(encoded, (name) => {
        const a = tensors[name];
        if (!Object.hasOwn(tensors, name)) bad(`part '${p.name}' refers to a tensor '${name}' that the file does not hold`);
        if (used.has(name)) bad(`the tensor '${name}' is referred to twice`);
        used.add(name);
        return a;
      }, (problem) => bad(`part '${p.name}': ${problem}`)));
    }
    const unused = Object.keys(tensors).filter((n) => !used.has(n));
    if (unused.length > 0) bad(`the file holds tensors no part refers to: ${unused.slice(0, 5).map((n) => `'${n}'`).join(', ')}${unused.length > 5 ? ` and ${unused.length - 5} more` : ''}`);

    const toLoad = index.parts.filter((p) => p.stateful && isStateful(parts[p.name]));
    for (const p of toLoad) (parts[p.name] as Stateful).checkStateDict?.(states.get(p.name) as never);
    for (const p of toLoad) (parts[p.name] as Stateful).loadStateDict(states.get(p.name) as never);

    // Plain-data parts' arrays go to the caller; the rest are disposed below.
    const data: Record<string, unknown> = {};
    for (const p of index.parts) {
      if (p.stateful) continue;
      const state = states.get(p.name);
      for (const a of arraysIn(state)) owned.delete(a);
      setOwn(data, p.name, state);
    }
    const userMetadata: Metadata = {};
    for (const [k, v] of Object.entries(metadata!)) {
      if (!k.startsWith('needle.')) setOwn(userMetadata, k, v);
    }
    return { data, metadata: userMetadata };
  } finally {
    for (const a of owned) if (!a.disposed) a.dispose();
  }
}

function checkParts(op: string, parts: unknown): asserts parts is CheckpointParts {
  if (typeof parts !== 'object' || parts === null || Array.isArray(parts) || parts instanceof Map) {
    fail(op, `expected the parts as an object of named parts ({ model, optimizer, epoch, ... }), got ${parts === null ? 'null' : Array.isArray(parts) ? 'an array' : typeof parts}`);
  }
  for (const name of Object.keys(parts)) if (name.length === 0) fail(op, 'part names must be non-empty');
}

function parseIndex(text: string | undefined, bad: (p: string) => never): Index {
  if (text === undefined) bad(`not a needle checkpoint (no '${INDEX_KEY}' in __metadata__); plain safetensors files load with load()`);
  let index: Index;
  try {
    index = JSON.parse(text);
  } catch (e) {
    return bad(`'${INDEX_KEY}' is not valid JSON (${(e as Error).message})`);
  }
  if (index?.format !== FORMAT || !Array.isArray(index.parts) || !index.parts.every((p) => typeof p?.name === 'string' && typeof p.stateful === 'boolean')) {
    bad(`'${INDEX_KEY}' is not a needle checkpoint index`);
  }
  if (index.version !== VERSION) bad(`checkpoint format version ${index.version}; this version of @needle/safetensors reads version ${VERSION}`);
  return index;
}

// ---- the tree <-> JSON encoding --------------------------------------------------------------------
// JSON values stand for themselves, except objects with one key starting with '$', which mark what
// JSON cannot say: {"$tensor": name}, {"$number": "NaN" | "Infinity" | "-Infinity" | "-0"},
// {"$undefined": true}, {"$bigint": "123"}, {"$map": [[key, value], ...]},
// {"$typed": "Uint32Array", "values": [...]}, and {"$object": {...}} for a plain object whose own keys
// start with '$' (so a user's '$tensor' key is never taken for a marker).

const TYPED_ARRAYS = {
  Float32Array, Float64Array, Int8Array, Int16Array, Int32Array, Uint8Array, Uint8ClampedArray, Uint16Array, Uint32Array,
  BigInt64Array, BigUint64Array,
} as const;
type TypedName = keyof typeof TYPED_ARRAYS;

function encodeTree(op: string, part: string, state: unknown, tensors: [string, NDArray][]): unknown {
  const onPath = new Set<object>();
  const encode = (v: unknown, path: string[]): unknown => {
    const where = () => (path.length > 1 ? `'${path.join('.')}' of part '${part}'` : `part '${part}'`);
    // A plain object is walked even when it has a .data array; a class instance with one (a Tensor,
    // a Parameter) is a leaf.
    const array = v instanceof NDArray ? v : isPlainObject(v) ? undefined : arrayOf(v);
    if (array) {
      tensors.push([path.join('.'), array]);
      return { $tensor: path.join('.') };
    }
    if (v === null || typeof v === 'string' || typeof v === 'boolean') return v;
    if (typeof v === 'number') return encodeNumber(v);
    if (v === undefined) return { $undefined: true };
    if (typeof v === 'bigint') return { $bigint: v.toString() };
    if (typeof v !== 'object') fail(op, `${where()} is a ${typeof v}, which a checkpoint cannot store`);
    if (onPath.has(v)) fail(op, `${where()} refers back to an object that contains it (a cycle)`);
    if (ArrayBuffer.isView(v) && !(v instanceof DataView)) {
      const name = v.constructor.name as TypedName;
      if (!(name in TYPED_ARRAYS)) fail(op, `${where()} is a ${name}, which a checkpoint cannot store`);
      const values = [...(v as unknown as Iterable<number | bigint>)].map((x) => typeof x === 'bigint' ? x.toString() : encodeNumber(x));
      return { $typed: name, values };
    }
    onPath.add(v);
    try {
      if (Array.isArray(v)) return v.map((x, i) => encode(x, [...path, String(i)]));
      if (v instanceof Map) {
        return {
          $map: [...v].map(([k, x]) => {
            if (typeof k !== 'string' && typeof k !== 'number' && typeof k !== 'boolean') fail(op, `${where()} is a Map with a ${typeof k} key; only string, number and boolean keys are stored`);
            return [encodeNumberOr(k), encode(x, [...path, String(k)])];
          }),
        };
      }
      if (!isPlainObject(v)) {
        fail(op, `${where()} is a ${(v as object).constructor?.name ?? 'class instance'}, which a checkpoint cannot store (give plain objects, arrays, Maps, NDArrays and JSON values)`);
      }
      const out: Record<string, unknown> = {};
      let marked = false;
      for (const [k, x] of Object.entries(v)) {
        if (k.startsWith('$')) marked = true;
        setOwn(out, k, encode(x, [...path, k]));
      }
      return marked ? { $object: out } : out;
    } finally {
      onPath.delete(v);
    }
  };
  return encode(state, [part]);
}

/** `o[k] = v` that stays a plain property for k = '__proto__' (state keys come from files). */
function setOwn(o: Record<string, unknown>, k: string, v: unknown): void {
  Object.defineProperty(o, k, { value: v, enumerable: true, writable: true, configurable: true });
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  if (typeof v !== 'object' || v === null) return false;
  const proto = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

function encodeNumber(x: number): unknown {
  if (Number.isNaN(x)) return { $number: 'NaN' };
  if (x === Infinity) return { $number: 'Infinity' };
  if (x === -Infinity) return { $number: '-Infinity' };
  if (Object.is(x, -0)) return { $number: '-0' };
  return x;
}

function encodeNumberOr(k: string | number | boolean): unknown {
  return typeof k === 'number' ? encodeNumber(k) : k;
}

const NUMBERS: Record<string, number> = { NaN: NaN, Infinity: Infinity, '-Infinity': -Infinity, '-0': -0 };

function decodeTree(v: unknown, tensor: (name: string) => NDArray, bad: (p: string) => never): unknown {
  const decode = (x: unknown): unknown => {
    if (x === null || typeof x !== 'object') return x;
    if (Array.isArray(x)) return x.map(decode);
    const keys = Object.keys(x);
    const o = x as Record<string, unknown>;
    if (keys.length === 1 && keys[0].startsWith('$')) {
      const m = o[keys[0]];
      switch (keys[0]) {
        case '$tensor':
          if (typeof m !== 'string') bad('a $tensor marker without a name');
          return tensor(m as string);
        case '$number':
          if (typeof m !== 'string' || !Object.hasOwn(NUMBERS, m)) bad(`a $number marker for ${JSON.stringify(m)}`);
          return NUMBERS[m as string];
        case '$undefined':
          return undefined;
        case '$bigint':
          if (typeof m !== 'string' || !/^-?\d+$/.test(m)) bad(`a $bigint marker for ${JSON.stringify(m)}`);
          return BigInt(m as string);
        case '$map':
          if (!Array.isArray(m) || !m.every((e) => Array.isArray(e) && e.length === 2)) bad('a $map marker that is not a list of [key, value] pairs');
          return new Map((m as [unknown, unknown][]).map(([k, val]) => [decode(k), decode(val)]));
        case '$object':
          if (typeof m !== 'object' || m === null || Array.isArray(m)) bad('an $object marker that is not an object');
          return decodeObject(m as Record<string, unknown>);
        default:
      }
    }
    if (keys.length === 2 && '$typed' in o && 'values' in o) {
      const Ctor = TYPED_ARRAYS[o.$typed as TypedName];
      if (!Object.hasOwn(TYPED_ARRAYS, o.$typed as string) || !Array.isArray(o.values)) bad(`a $typed marker for ${JSON.stringify(o.$typed)}`);
      const values = (o.values as unknown[]).map((e) => (typeof e === 'string' ? BigInt(e) : decode(e)));
      return (Ctor as unknown as { from(v: unknown[]): unknown }).from(values);
    }
    return decodeObject(o);
  };
  const decodeObject = (o: Record<string, unknown>) => {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(o)) setOwn(out, k, decode(x));
    return out;
  };
  return decode(v);
}

function arraysIn(v: unknown, out: NDArray[] = []): NDArray[] {
  if (v instanceof NDArray) out.push(v);
  else if (Array.isArray(v)) v.forEach((x) => arraysIn(x, out));
  else if (v instanceof Map) v.forEach((x) => arraysIn(x, out));
  else if (isPlainObject(v)) Object.values(v).forEach((x) => arraysIn(x, out));
  return out;
}
