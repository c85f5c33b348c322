/**
 * Loading needle's packages at run time. For this checkout's targets the bare specifier is tried
 * first (the packages are dependencies of @needle/bench); otherwise the package is loaded by path
 * from the repository: its TypeScript source under vitest, its build (dist) under node. The base:*
 * targets load another checkout's built packages (`root/packages/<name>/dist/index.js`) and nothing
 * of this one, so an older build computes with its own ndarray, autograd and nn throughout (Node
 * resolves their imports of each other inside that checkout).
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

/**
 * Import `@needle/<name>`, from this checkout, or from the built packages of the checkout at
 * `root` when given; throws an Error saying every place that was tried.
 */
export async function importWorkspacePackage(name: string, root?: string): Promise<Record<string, unknown>> {
  const tried: string[] = [];
  const specifier = `@needle/${name}`;
  if (root === undefined) {
    try {
      return (await import(/* @vite-ignore */ specifier)) as Record<string, unknown>;
    } catch (e) {
      tried.push(`${specifier}: ${firstLine(e)}`);
    }
  }
  const from = root ?? repoRoot();
  if (from) {
    const underVitest = process.env.VITEST !== undefined && root === undefined;
    const files = underVitest ? ['src/index.ts', 'dist/index.js'] : ['dist/index.js'];
    for (const f of files) {
      const file = path.resolve(from, 'packages', name, f);
      if (!existsSync(file)) {
        tried.push(`${file}: missing${root ? ' (build that checkout: pnpm install && pnpm build)' : ''}`);
        continue;
      }
      try {
        const load = () => import(/* @vite-ignore */ pathToFileURL(file).href) as Promise<Record<string, unknown>>;
        return await (root === undefined ? load() : besideThisCopy(load));
      } catch (e) {
        tried.push(`${file}: ${firstLine(e)}`);
      }
    }
  }
  throw new Error(`cannot load ${specifier} (${tried.join('; ')})`);
}

/**
 * @needle/ndarray refuses to load as a second copy in one realm (it records the first copy under
 * this global symbol), because arrays and registered backends of two copies do not mix. A base:*
 * target loads another checkout's build beside the bench's own on purpose, and keeps them apart:
 * every array, backend and kernel of its steps comes from that build (NeedleContext), and the only
 * thing of the bench's copy it uses is the host-side input generator. So the record is lifted
 * while the other build loads, then put back; a build older than the check ignores it.
 */
const NDARRAY_COPY = Symbol.for('@needle/ndarray');
async function besideThisCopy<T>(load: () => Promise<T>): Promise<T> {
  const realm = globalThis as { [NDARRAY_COPY]?: unknown };
  const mine = realm[NDARRAY_COPY];
  delete realm[NDARRAY_COPY];
  try {
    return await load();
  } finally {
    if (mine === undefined) delete realm[NDARRAY_COPY];
    else realm[NDARRAY_COPY] = mine;
  }
}

function firstLine(e: unknown): string {
  return String((e as Error)?.message ?? e).split('\n')[0];
}
