import { needleTsup } from '../../tsup.base';

export default needleTsup({ cli: 'src/cli.ts' }, { platform: 'node', dts: false });
