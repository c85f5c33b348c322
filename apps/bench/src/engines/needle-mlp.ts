/**
 * needle's MLP training step, through @needle/autograd. Until that package lands the case is
 * reported as not available (never timed, never faked).
 */
import type { Backend } from '@needle/ndarray';
import type { CaseSpec } from '../cases';
import { NotAvailableError, type Prepared } from './types';
import { importWorkspacePackage } from './workspace';

export async function prepareNeedleMlp(_spec: CaseSpec, _inputs: Float32Array[], _backend: Backend): Promise<Prepared> {
  let autograd: Record<string, unknown>;
  try {
    autograd = await importWorkspacePackage('autograd');
  } catch (e) {
    throw new NotAvailableError(`needs @needle/autograd, which is not built here yet (${(e as Error).message.split(' (')[0]})`);
  }
  throw new NotAvailableError(`@needle/autograd is present (exports: ${Object.keys(autograd).slice(0, 12).join(', ')}) but the bench is not wired to it yet`);
}
