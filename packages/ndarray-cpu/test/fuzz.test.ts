import { runBackendFuzz } from '@needle/ndarray/testing';
import { createCpuBackend } from '@needle/ndarray-cpu';

runBackendFuzz('cpu', () => createCpuBackend(), { foreign: () => createCpuBackend({ name: 'cpu-foreign' }) });
