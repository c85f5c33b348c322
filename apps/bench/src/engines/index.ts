import { JaxEngine } from './jax';
import { NeedleEngine } from './needle';
import { TfjsEngine } from './tfjs';
import { parseTarget, type Engine, type Target } from './types';

/** The in-process engine of a JavaScript target (torch:cpu runs in Python, see python/). */
export function makeEngine(target: Target): Engine {
  const engine = parseTarget(target).engine;
  switch (engine) {
    case 'needle:cpu':
    case 'base:cpu':
      return new NeedleEngine(target, 'cpu');
    case 'needle:wasm':
    case 'base:wasm':
      return new NeedleEngine(target, 'wasm');
    case 'needle:webgpu':
    case 'base:webgpu':
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
      return engine satisfies never;
  }
}
