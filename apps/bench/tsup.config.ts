import { needleTsup } from '../../tsup.base';

// cli.js is the harness; worker.js is what it forks, one process per measured target. The
// competitors stay external: they load their own .wasm files and native addons (webgpu) from disk.
// One exception: tfjs-core's gradient registrations exist only as extension-less ES modules, which
// Node cannot load, so they are bundled; they register into tfjs's global registry, shared with the
// external tfjs-core that Node loads.
export default needleTsup(
  { cli: 'src/cli.ts', worker: 'src/worker.ts' },
  {
    platform: 'node',
    dts: false,
    external: [/^@tensorflow\/(?!tfjs-core\/dist\/register_all_gradients$)/, '@jax-js/jax', 'webgpu'],
  },
);
