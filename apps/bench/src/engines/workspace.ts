/**
 * Loading sibling workspace packages that are not (yet) dependencies of @needle/bench: the WASM and
 * WebGPU backends and autograd were written alongside this harness. The bare specifier is tried
 * first (it works once the package is listed in package.json); otherwise the package is loaded by
 * path from the repository: its TypeScript source under vitest, its build (dist) under node.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

function repoRoot(): string | undefined {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(path.join(dir, 'packages', 'ndarray', 'package.json'))) return dir;
    const up = path.dirname(dir);
    if (up === dir) return undefined;
    dir = up;
  }
}

/** Import `@needle/<name>`; throws an Error saying every place that was tried. */
export async function importWorkspacePackage(name: string): Promise<Record<string, unknown>> {
  const tried: string[] = [];
  const specifier = `@needle/${name}`;
  try {
    return (await import(/* @vite-ignore */ specifier)) as Record<string, unknown>;
  } catch (e) {
    tried.push(`${specifier}: ${firstLine(e)}`);
  }
  const root = repoRoot();
  if (root) {
    const underVitest = process.env.VITEST !== undefined;
    const files = underVitest ? ['src/index.ts', 'dist/index.js'] : ['dist/index.js'];
    for (const f of files) {
      const file = path.join(root, 'packages', name, f);
      if (!existsSync(file)) {
        tried.push(`${file}: missing`);
        continue;
      }
      try {
        return (await import(/* @vite-ignore */ pathToFileURL(file).href)) as Record<string, unknown>;
      } catch (e) {
        tried.push(`${file}: ${firstLine(e)}`);
      }
    }
  }
  throw new Error(`cannot load ${specifier} (${tried.join('; ')})`);
}

function firstLine(e: unknown): string {
  return String((e as Error)?.message ?? e).split('\n')[0];
}
