import { runBackendFuzz } from '@needle/ndarray/testing';
import { createCpuBackend } from '@needle/ndarray-cpu';
import { createWasmBackend } from '../src';

runBackendFuzz('wasm', () => createWasmBackend({ threads: 1 }), { foreign: () => createCpuBackend({ name: 'cpu-foreign' }) });
