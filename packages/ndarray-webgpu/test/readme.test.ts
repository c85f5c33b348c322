import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect, test, vi } from 'vitest';
import { testBackend } from './gpu';

const readme = readFileSync(path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'README.md'), 'utf8');

// Runs the README's Node example as written (it is plain JS): the package's own names resolve
// through its exports map (self-reference), and console.log is captured.
test.runIf(await testBackend())('the README Node example runs and prints what it says', async () => {
  const code = /```ts\n([\s\S]*?)```/.exec(readme)![1];
  expect(code).toContain("from '@needle/ndarray-webgpu/node'");
  const file = path.join(path.dirname(fileURLToPath(import.meta.url)), '.readme-example.generated.ts');
  const { writeFileSync, rmSync } = await import('node:fs');
  writeFileSync(file, code);
  const log = vi.spyOn(console, 'log').mockImplementation(() => undefined);
  try {
    await import(/* @vite-ignore */ file);
    expect(log).toHaveBeenCalledTimes(1);
    expect([...(log.mock.calls[0][0] as Float32Array)]).toEqual([16, 36]);
  } finally {
    log.mockRestore();
    rmSync(file, { force: true });
  }
});
