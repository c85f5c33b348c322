import { needleTsup } from '../../tsup.base';

export default needleTsup({ cli: 'src/cli.ts', 'simple-ml': 'src/simple-ml.ts' }, { platform: 'node', dts: false });
