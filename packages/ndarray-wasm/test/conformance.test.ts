import { runBackendConformance } from '@needle/ndarray/testing';
import { createWasmBackend } from '../src';

runBackendConformance('wasm (1 thread)', () => createWasmBackend({ threads: 1 }));
runBackendConformance('wasm (2 threads)', () => createWasmBackend({ threads: 2 }));
