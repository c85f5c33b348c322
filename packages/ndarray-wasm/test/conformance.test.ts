import { runBackendConformance } from '@needle/ndarray/testing';
import { createWasmBackend } from '../src';

runBackendConformance('wasm (1 thread)', () => createWasmBackend({ threads: 1 }));
runBackendConformance('wasm (2 threads)', () => createWasmBackend({ threads: 2 }));
// Programs compiled at their first launch (by default at their second, which the kit rarely reaches).
runBackendConformance('wasm (compiled programs)', () => createWasmBackend({ threads: 1, compilePrograms: 'eager' }));
