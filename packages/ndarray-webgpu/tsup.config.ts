import { needleTsup } from '../../tsup.base';

// `webgpu` stays an import of the node entry only (and external), so browser bundles never load it.
// The .d.ts files name WebGPU's global types (GPUDevice, ...): reference @webgpu/types for users.
export default needleTsup(
  { index: 'src/index.ts', node: 'src/node.ts' },
  {
    external: ['webgpu'],
    dts: {
      compilerOptions: { ignoreDeprecations: '6.0', customConditions: [] },
      banner: '/// <reference types="@webgpu/types" />',
    },
  },
);
