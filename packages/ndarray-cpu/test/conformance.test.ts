import { runBackendConformance } from '@needle/ndarray/testing';
import { createCpuBackend } from '@needle/ndarray-cpu';

runBackendConformance('cpu', () => createCpuBackend());
runBackendConformance('cpu (readSync off)', () => createCpuBackend({ readSync: false }));
