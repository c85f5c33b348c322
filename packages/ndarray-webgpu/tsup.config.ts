import { needleTsup } from '../../tsup.base';

// `webgpu` stays an import of the node entry only (and external), so browser bundles never load it.
// The .d.ts files name WebGPU's global types (GPU, GPUDevice, ...). They declare those names as empty
// interfaces instead of referencing @webgpu/types: TypeScript 6+ has WebGPU in lib.dom, where a
// second full copy collides (duplicate identifiers), while an interface merges with whichever full
// declaration the user has (lib.dom, or @webgpu/types on TypeScript 5) and stands alone without one.
const webgpuNames = ['GPU', 'GPUBuffer', 'GPUDevice', 'GPURequestAdapterOptions'];
export default needleTsup(
  { index: 'src/index.ts', node: 'src/node.ts' },
  {
    external: ['webgpu'],
    dtsBanner: `declare global {\n${webgpuNames.map((n) => `  interface ${n} {}`).join('\n')}\n}`,
  },
);
