import { defineConfig, type Options } from 'tsup';

/**
 * Prepended to every published .d.ts. Arrays, tensors, modules and scopes implement
 * `[Symbol.dispose]` (for `using`); TypeScript declares `Symbol.dispose` only in lib
 * `esnext.disposable` / `es2025`, so a user on `lib: ["ES2022", "DOM"]` with `skipLibCheck: false`
 * would get TS2550. Declaring the property here merges with the lib's declaration where there is one
 * (a `unique symbol` declared twice in merged interfaces is one symbol) and supplies it where there is none.
 */
const disposeGlobal = 'declare global {\n  interface SymbolConstructor {\n    readonly dispose: unique symbol;\n  }\n}';

/**
 * The one tsup setup every package uses: ESM + .d.ts, no bundled dependencies. `dtsBanner` adds
 * declarations to the package's .d.ts files after the shared ones.
 */
export function needleTsup(entry: Record<string, string>, extra: Options & { dtsBanner?: string } = {}) {
  const { dtsBanner, ...options } = extra;
  return defineConfig({
    entry,
    format: ['esm'],
    target: 'es2022',
    platform: 'neutral',
    sourcemap: true,
    clean: true,
    dts: {
      // tsup 8.5 injects baseUrl, which TypeScript 6 deprecates (TS5101).
      compilerOptions: { ignoreDeprecations: '6.0', customConditions: [] },
      banner: [disposeGlobal, dtsBanner].filter(Boolean).join('\n'),
    },
    ...options,
  });
}
