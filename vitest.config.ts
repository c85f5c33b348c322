import { defineConfig } from 'vitest/config';

// Mesa reads EGL_PLATFORM when it loads, so it must be in the environment before any worker starts.
process.env.EGL_PLATFORM ??= 'surfaceless';
// Leak tests must not pass because the garbage collector released a forgotten array first.
process.env.NEEDLE_GC_SAFETY_NET = '0';

// One config for the whole workspace. Tests resolve @needle/* to their TypeScript sources through
// the "@needle/source" export condition (the workspace's own; it is stripped from packed manifests), so they run without a build.
export default defineConfig({
  resolve: { conditions: ['@needle/source'] },
  ssr: { resolve: { conditions: ['@needle/source'], externalConditions: ['@needle/source'] } },
  test: {
    include: ['{packages,apps}/*/test/**/*.test.ts', 'test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
  },
});
