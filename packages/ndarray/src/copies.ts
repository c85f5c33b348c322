import { version } from '../package.json';
import { fail } from './errors';

/**
 * One copy of @needle/ndarray per JavaScript realm. The backend registry, the scope stack and the
 * NDArray class live in module state: a second copy (a version skew, a backend installed from a
 * folder with its own node_modules) would hold a registry of its own where backends registered with
 * the first are missing, and arrays that the first's `instanceof NDArray` does not recognise. Rather
 * than half-sharing that state, the second copy refuses to load and names both, so the fix (one
 * installed copy: it is a peer dependency of every @needle package) is plain.
 */
const KEY = Symbol.for('@needle/ndarray');

interface CopyRecord {
  version: string;
  url: string;
}

// In a bundle format without import.meta (an IIFE), copies are told apart by version only.
const here: CopyRecord = { version, url: (import.meta as { url?: string }).url ?? `a bundle of @needle/ndarray ${version}` };

export function claimSoleCopy(self: CopyRecord = here): void {
  const realm = globalThis as { [KEY]?: CopyRecord };
  const other = realm[KEY];
  // The same file evaluated again (a test runner resetting its module cache, hot reload) is not a second copy.
  if (other && other.url !== self.url) {
    fail(
      '@needle/ndarray',
      `two copies are loaded: ${other.version} from ${other.url} and ${self.version} from ${self.url}. ` +
        'Backends registered with one are invisible to the other and their arrays are not interchangeable. ' +
        'Install a single copy: @needle/ndarray is a peer dependency of every @needle package, so list it once in your ' +
        "own dependencies, then run 'npm ls @needle/ndarray' (or your package manager's equivalent) and dedupe.",
    );
  }
  realm[KEY] = self;
}
