/**
 * The one name mapping between needle's state-dict keys and PyTorch's.
 *
 * needle's modules use PyTorch's parameter layouts (Linear [out, in], Conv2d [out, in/groups, kh, kw],
 * LSTM gates i, f, g, o, MultiHeadAttention's packed in-projection), and the same module structure,
 * so only the spelling differs: camelCase here, snake_case there, dotted segment by dotted segment:
 * `weightIhL0` <-> `weight_ih_l0`, `runningMean` <-> `running_mean`, `numBatchesTracked` <->
 * `num_batches_tracked`, `selfAttn.inProjWeight` <-> `self_attn.in_proj_weight`. Digits and
 * container indices (`layers.0`) stay as they are.
 *
 * Each direction is checked to invert the other on the key at hand, so a key the mapping cannot
 * carry back (a needle name with '_', a PyTorch name with a capital or '_' before a digit) is an
 * error, never a silent rename.
 */
import { NDArray } from '@needle/ndarray';
import { Tensor } from '@needle/autograd';
import { fail } from './errors';

function snakeSegment(s: string): string {
  return s.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
}

function camelSegment(s: string): string {
  return s.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

const mapKey = (key: string, f: (s: string) => string): string => key.split('.').map(f).join('.');

/** PyTorch's name of a needle state-dict key: `'lstm.weightIhL0'` -> `'lstm.weight_ih_l0'`. */
export function torchKey(key: string): string {
  if (typeof key !== 'string') fail('torchKey', `expected a string key, got ${typeof key}`);
  const out = mapKey(key, snakeSegment);
  if (mapKey(out, camelSegment) !== key) {
    fail('torchKey', `'${key}' has no reversible PyTorch name (it would become '${out}', which maps back to '${mapKey(out, camelSegment)}'); needle keys are camelCase without '_'`);
  }
  return out;
}

/** needle's name of a PyTorch state-dict key: `'bn.running_mean'` -> `'bn.runningMean'`. */
export function needleKey(key: string): string {
  if (typeof key !== 'string') fail('needleKey', `expected a string key, got ${typeof key}`);
  const out = mapKey(key, camelSegment);
  if (mapKey(out, snakeSegment) !== key) {
    fail('needleKey', `'${key}' has no reversible needle name (it would become '${out}', which maps back to '${mapKey(out, snakeSegment)}'); PyTorch keys are lowercase snake_case with a letter after each '_'`);
  }
  return out;
}

function mapDict<V>(op: string, dict: Record<string, V> | Map<string, V>, f: (k: string) => string): Record<string, V> {
  if (typeof dict !== 'object' || dict === null) fail(op, `expected a state dict (an object or Map by key), got ${dict === null ? 'null' : typeof dict}`);
  const entries = dict instanceof Map ? [...dict.entries()] : Object.entries(dict);
  const out: Record<string, V> = {};
  for (const [k, v] of entries) {
    if (!(v instanceof NDArray) && !(v instanceof Tensor)) fail(op, `'${k}' is a ${v === null ? 'null' : typeof v}, expected an NDArray or Tensor`);
    out[f(k)] = v;
  }
  return out;
}

/**
 * A state dict with PyTorch's keys (the same arrays, not copies), e.g. to save for
 * `torch_module.load_state_dict(safetensors.torch.load_file(path))`.
 */
export function toTorchStateDict<V extends NDArray | Tensor>(state: Record<string, V> | Map<string, V>): Record<string, V> {
  return mapDict('toTorchStateDict', state, torchKey);
}

/**
 * A state dict with needle's keys from one with PyTorch's (the same arrays, not copies), ready for
 * `module.loadStateDict`. PyTorch's integer buffers (`num_batches_tracked`, int64) arrive as float32
 * from the safetensors loader, which needle's BatchNorm keeps its counter in.
 */
export function fromTorchStateDict<V extends NDArray | Tensor>(state: Record<string, V> | Map<string, V>): Record<string, V> {
  return mapDict('fromTorchStateDict', state, needleKey);
}
