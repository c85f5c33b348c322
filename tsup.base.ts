import { defineConfig, type Options } from 'tsup';

/** The one tsup setup every package uses: ESM + .d.ts, no bundled dependencies. */
export function needleTsup(entry: Record<string, string>, extra: Options = {}) {
  return defineConfig({
    entry,
    format: ['esm'],
    target: 'es2022',
    platform: 'neutral',
    sourcemap: true,
    clean: true,
    // tsup 8.5 injects baseUrl, which TypeScript 6 deprecates (TS5101).
    dts: { compilerOptions: { ignoreDeprecations: '6.0', customConditions: [] } },
    ...extra,
  });
}
