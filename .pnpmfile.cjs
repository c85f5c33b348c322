// Published manifests carry what a user of the package needs and nothing of the workspace's own:
// pnpm calls beforePacking on every `pnpm pack` / `pnpm publish` (and so on `changeset publish`).
const WORKSPACE_CONDITION = '@needle/source';

/** Drop the workspace-only export condition, which points at src/*.ts files that are not shipped. */
function stripWorkspaceCondition(exportsField) {
  if (typeof exportsField !== 'object' || exportsField === null) return exportsField;
  const out = {};
  for (const [key, value] of Object.entries(exportsField)) {
    if (key === WORKSPACE_CONDITION) continue;
    out[key] = stripWorkspaceCondition(value);
  }
  return out;
}

module.exports = {
  hooks: {
    beforePacking(pkg) {
      // The scripts build, test and lint inside this workspace (turbo, ../../vitest.config.ts).
      delete pkg.scripts;
      delete pkg.devDependencies;
      pkg.exports = stripWorkspaceCondition(pkg.exports);
      return pkg;
    },
  },
};
