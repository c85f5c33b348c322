import { afterEach, describe, expect, it } from 'vitest';
import { claimSoleCopy } from '../src/copies';
import { NeedleError, listBackends } from '../src/index';
import { version } from '../package.json';

const KEY = Symbol.for('@needle/ndarray');
const realm = globalThis as { [KEY]?: { version: string; url: string } };

describe('one copy of @needle/ndarray per realm', () => {
  const loaded = realm[KEY];
  afterEach(() => {
    realm[KEY] = loaded;
  });

  it('records the loaded copy (this package, from its source file)', () => {
    listBackends(); // the registry module is loaded
    expect(realm[KEY]).toEqual({ version, url: new URL('../src/copies.ts', import.meta.url).href });
  });

  it('accepts the same file evaluated again', () => {
    expect(() => claimSoleCopy({ ...loaded! })).not.toThrow();
  });

  it('refuses a second copy, naming both versions and locations', () => {
    const second = { version: '9.9.9', url: 'file:///elsewhere/node_modules/@needle/ndarray/dist/chunk.js' };
    let error: unknown;
    try {
      claimSoleCopy(second);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(NeedleError);
    const message = (error as Error).message;
    expect(message).toContain(`@needle/ndarray: two copies are loaded: ${version} from ${loaded!.url} and 9.9.9 from ${second.url}`);
    expect(message).toContain('npm ls @needle/ndarray');
    expect(realm[KEY]).toEqual(loaded); // the first copy stays the one on record
  });
});
