import { defineConfig } from 'vitest/config';

// Leak checks count live buffers: the garbage-collection safety net must not free a forgotten
// array first. It is read when @needle/ndarray loads, so it is set here, before any test file.
process.env.NEEDLE_GC_SAFETY_NET = '0';

export default defineConfig({ test: { include: ['test/**/*.test.ts'] } });
