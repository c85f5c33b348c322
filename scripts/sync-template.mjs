/**
 * After `changeset version` bumps @needle/ndarray, points templates/backend at the new version.
 * The template lives outside the workspace (users copy it), so changesets does not see its
 * `@needle/ndarray` ranges; left at the old `^0.0.0` they would not accept a 0.1.0 release.
 * Usage: node scripts/sync-template.mjs [repository root]   (run by `pnpm version-packages`)
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

const root = resolve(process.argv[2] ?? join(import.meta.dirname, '..'));
const { version } = JSON.parse(readFileSync(join(root, 'packages', 'ndarray', 'package.json'), 'utf8'));
const path = join(root, 'templates', 'backend', 'package.json');
const text = readFileSync(path, 'utf8');
const manifest = JSON.parse(text);
const range = `^${version}`;
let changed = false;
for (const field of ['peerDependencies', 'devDependencies']) {
  const deps = manifest[field];
  if (!deps || deps['@needle/ndarray'] === undefined) {
    throw new Error(`sync-template: templates/backend/package.json has no ${field}["@needle/ndarray"]; expected one to point at ${range}`);
  }
  if (deps['@needle/ndarray'] !== range) {
    deps['@needle/ndarray'] = range;
    changed = true;
  }
}
if (changed) writeFileSync(path, `${JSON.stringify(manifest, null, 2)}\n`);
console.log(`templates/backend: @needle/ndarray ${range}${changed ? ' (updated)' : ' (already)'}`);
