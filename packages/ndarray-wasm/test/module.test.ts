import { describe, expect, it } from 'vitest';
import { sharedVariant } from '../src/module';
import { KERNELS_WASM_BASE64 } from '../src/kernels.generated';

const bytes = Uint8Array.from(atob(KERNELS_WASM_BASE64), (c) => c.charCodeAt(0));

describe('kernels module', () => {
  it('imports one unshared memory with a maximum, and nothing else', () => {
    const imports = WebAssembly.Module.imports(new WebAssembly.Module(bytes));
    expect(imports).toEqual([{ module: 'env', name: 'memory', kind: 'memory' }]);
  });

  it('sharedVariant flips exactly the memory limits flag from 0x01 to 0x03', () => {
    const shared = sharedVariant(bytes);
    const diff = [...shared.keys()].filter((i) => shared[i] !== bytes[i]);
    expect(diff.length).toBe(1);
    expect([bytes[diff[0]], shared[diff[0]]]).toEqual([0x01, 0x03]);
    // The result instantiates over a shared memory, which the original refuses.
    const memory = new WebAssembly.Memory({ initial: 1, maximum: 16, shared: true });
    expect(() => new WebAssembly.Instance(new WebAssembly.Module(bytes), { env: { memory } })).toThrow();
    const instance = new WebAssembly.Instance(new WebAssembly.Module(shared as Uint8Array<ArrayBuffer>), { env: { memory } });
    expect(typeof instance.exports.matmul).toBe('function');
  });

  it('refuses a module whose layout it does not know', () => {
    // A minimal module (magic + version) with no import section.
    expect(() => sharedVariant(Uint8Array.from([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0]))).toThrow('ndarray-wasm: the kernels module imports no memory');
  });
});
