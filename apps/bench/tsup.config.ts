import { needleTsup } from '../../tsup.base';

// cli.js is the harness; worker.js is what it forks, one process per measured target. The
// competitors stay external: they load their own .wasm files and native addons (webgpu) from disk.
export default needleTsup(
  { cli: 'src/cli.ts', worker: 'src/worker.ts' },
  { platform: 'node', dts: false, external: [/^@tensorflow\//, '@jax-js/jax', 'webgpu'] },
);
