import { needleTsup } from '../../tsup.base';

// `webgpu` stays an import of the node entry only (and external), so browser bundles never load it.
export default needleTsup({ index: 'src/index.ts', node: 'src/node.ts' }, { external: ['webgpu'] });
