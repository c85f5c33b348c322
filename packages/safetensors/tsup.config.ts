import { needleTsup } from '../../tsup.base';

export default needleTsup({ index: 'src/index.ts', node: 'src/node.ts' });
