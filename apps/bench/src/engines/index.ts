import { JaxEngine } from './jax';
import { NeedleEngine } from './needle';
import { TfjsEngine } from './tfjs';
import type { Engine, Target } from './types';

/** The in-process engine of a JavaScript target (torch:cpu runs in Python, see python/). */
export function makeEngine(target: Target): Engine {
  switch (target) {
    case 'needle:cpu':
      return new NeedleEngine(target, 'cpu');
    case 'needle:wasm':
      return new NeedleEngine(target, 'wasm');
    case 'needle:webgpu':
      return new NeedleEngine(target, 'webgpu');
    case 'tfjs:cpu':
      return new TfjsEngine(target, 'cpu');
    case 'tfjs:wasm':
      return new TfjsEngine(target, 'wasm');
    case 'tfjs:webgpu':
      return new TfjsEngine(target, 'webgpu');
    case 'jax:wasm':
      return new JaxEngine(target, 'wasm');
    case 'jax:webgpu':
      return new JaxEngine(target, 'webgpu');
    case 'torch:cpu':
      throw new Error('torch:cpu runs in the Python worker, not in-process');
    default:
      return target satisfies never;
  }
}
