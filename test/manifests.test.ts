import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

/**
 * Every published package has the same manifest shape (what scripts/check-packages.mjs then checks
 * on the packed tarballs, as users get them). New packages under packages/ are picked up here.
 */
const root = new URL('../', import.meta.url);
const dirs = readdirSync(new URL('packages/', root)).filter((d) => existsSync(new URL(`packages/${d}/package.json`, root)));

interface Manifest {
  name: string;
  private?: boolean;
  license?: string;
  keywords?: string[];
  engines?: Record<string, string>;
  files?: string[];
  scripts?: Record<string, string>;
  exports?: Record<string, unknown>;
  dependencies?: Record<string, string>;
  peerDependencies?: Record<string, string>;
  devDependencies?: Record<string, string>;
}

const read = (dir: string): Manifest => JSON.parse(readFileSync(new URL(`packages/${dir}/package.json`, root), 'utf8')) as Manifest;

describe('package manifests', () => {
  it('finds the packages', () => {
    expect(dirs).toEqual(expect.arrayContaining(['ndarray', 'ndarray-cpu', 'ndarray-wasm', 'ndarray-webgpu', 'autograd', 'nn', 'optim', 'data']));
  });

  for (const dir of dirs) {
    describe(dir, () => {
      const pkg = read(dir);

      it('has the release metadata, a LICENSE and a CHANGELOG', () => {
        expect(pkg.private).toBeUndefined();
        expect(pkg.license).toBe('MIT');
        expect(pkg.keywords?.length).toBeGreaterThan(0);
        expect(pkg.engines).toEqual({ node: '>=20' });
        expect(pkg.files).toEqual(['dist', 'CHANGELOG.md']);
        expect(existsSync(new URL(`packages/${dir}/LICENSE`, root))).toBe(true);
        expect(readFileSync(new URL(`packages/${dir}/CHANGELOG.md`, root), 'utf8')).toMatch(new RegExp(`^# ${pkg.name}\\n`));
        expect(pkg.scripts?.prepack).toBe('turbo run build --output-logs=errors-only');
      });

      it('exports each entry as @needle/source (workspace), types, default, and ./package.json', () => {
        for (const [key, entry] of Object.entries(pkg.exports ?? {})) {
          if (key === './package.json') {
            expect(entry).toBe('./package.json');
            continue;
          }
          expect(Object.keys(entry as object)).toEqual(['@needle/source', 'types', 'default']);
          const e = entry as Record<string, string>;
          expect(e['@needle/source']).toMatch(/^\.\/src\/.*\.ts$/);
          expect(e.types).toMatch(/^\.\/dist\/.*\.d\.ts$/);
          expect(e.default).toBe(e.types.replace(/\.d\.ts$/, '.js'));
        }
        expect(pkg.exports?.['./package.json']).toBe('./package.json');
      });

      const usesNdarray = [pkg.dependencies, pkg.peerDependencies, pkg.devDependencies].some((deps) => deps?.['@needle/ndarray'] !== undefined);
      if (dir !== 'ndarray' && usesNdarray) {
        it('takes @needle/ndarray as a peer dependency (one copy for the registry), and from the workspace for its own build', () => {
          expect(pkg.peerDependencies?.['@needle/ndarray']).toBe('workspace:^');
          expect(pkg.devDependencies?.['@needle/ndarray']).toBe('workspace:^');
          expect(pkg.dependencies?.['@needle/ndarray']).toBeUndefined();
        });
      }
    });
  }
});

describe('templates/backend', () => {
  const template = JSON.parse(readFileSync(new URL('templates/backend/package.json', root), 'utf8')) as Manifest;
  const { version } = JSON.parse(readFileSync(new URL('packages/ndarray/package.json', root), 'utf8')) as { version: string };

  it('takes the current @needle/ndarray as a peer (and, for its tests, a dev) dependency', () => {
    expect(template.peerDependencies).toEqual({ '@needle/ndarray': `^${version}` });
    expect(template.devDependencies?.['@needle/ndarray']).toBe(`^${version}`);
    expect(template.dependencies).toBeUndefined();
  });
});

describe('scripts/sync-template.mjs (run by `pnpm version-packages` after `changeset version`)', () => {
  const script = fileURLToPath(new URL('scripts/sync-template.mjs', root));
  /** A scratch root with the template's manifest and an @needle/ndarray at `version`. */
  const scratch = (version: string, template = readFileSync(new URL('templates/backend/package.json', root), 'utf8')) => {
    const dir = mkdtempSync(join(tmpdir(), 'needle-sync-template-'));
    mkdirSync(join(dir, 'packages', 'ndarray'), { recursive: true });
    mkdirSync(join(dir, 'templates', 'backend'), { recursive: true });
    writeFileSync(join(dir, 'packages', 'ndarray', 'package.json'), JSON.stringify({ name: '@needle/ndarray', version }));
    writeFileSync(join(dir, 'templates', 'backend', 'package.json'), template);
    return dir;
  };
  const run = (dir: string) => execFileSync(process.execPath, [script, dir], { encoding: 'utf8', stdio: 'pipe' });

  it('points both @needle/ndarray ranges at a bumped version and leaves the rest of the manifest alone', () => {
    const dir = scratch('0.3.1');
    try {
      const before = JSON.parse(readFileSync(join(dir, 'templates', 'backend', 'package.json'), 'utf8')) as Manifest;
      expect(run(dir)).toMatch(/\^0\.3\.1 \(updated\)/);
      const after = JSON.parse(readFileSync(join(dir, 'templates', 'backend', 'package.json'), 'utf8')) as Manifest;
      expect(after.peerDependencies).toEqual({ '@needle/ndarray': '^0.3.1' });
      expect(after.devDependencies).toEqual({ ...before.devDependencies, '@needle/ndarray': '^0.3.1' });
      expect({ ...after, peerDependencies: undefined, devDependencies: undefined }).toEqual({ ...before, peerDependencies: undefined, devDependencies: undefined });
      expect(run(dir)).toMatch(/\(already\)/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses a template without the @needle/ndarray peer dependency, naming what it expected', () => {
    const dir = scratch('0.3.1', JSON.stringify({ name: 'my-backend', devDependencies: { '@needle/ndarray': '^0.0.0' } }));
    try {
      expect(() => run(dir)).toThrow(/sync-template: .*no peerDependencies\["@needle\/ndarray"\]; expected one to point at \^0\.3\.1/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
