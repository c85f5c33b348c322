import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import globals from 'globals';

export default tseslint.config(
  { ignores: ['**/dist/**', '**/node_modules/**', '**/*.generated.ts', '**/build/**', '**/.turbo/**', 'apps/bench/results/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { globals: { ...globals.node, ...globals.browser } },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/no-non-null-assertion': 'off',
    },
  },
  {
    // The dependency rule (CONTRIBUTING.md section 1): the stack above the ndarray interface never imports
    // a concrete backend (tests may, to run on one).
    files: ['packages/{autograd,nn,optim,data,safetensors}/src/**/*.ts', 'packages/ndarray-*/src/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', {
        patterns: [{ group: ['@needle/ndarray-*'], message: 'Depend on @needle/ndarray only (CONTRIBUTING.md section 1).' }],
      }],
    },
  },
);
