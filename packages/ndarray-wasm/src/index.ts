export { WasmBackend, createWasmBackend, registerWasmBackend, type WasmBackendOptions, type WasmHeapInfo } from './backend';
export { threadsSupported } from './threads';
export { relaxedSimdSupported, type SimdVariant } from './module';
export { programCompileStats, type ProgramCompileStats } from './jit/programs';
