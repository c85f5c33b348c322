import { checkNumber, describeValue, fail, full, NDArray, scope } from '@needle/ndarray';
import { Tensor, noGrad } from '@needle/autograd';

/**
 * Scale the gradients of `params` in place so that their joint `normType`-norm is at most `maxNorm`
 * (torch.nn.utils.clip_grad_norm_): `coef = min(maxNorm / (total + 1e-6), 1)`, `grad *= coef`.
 * Returns the total norm before clipping as a 0-d Tensor (yours to dispose). Everything stays on the
 * device: the clip factor is applied even when it is 1, because deciding on the host would need a
 * read. Parameters without a gradient are skipped. `normType` is any p > 0 or Infinity (max |g|).
 */
export function clipGradNorm(params: Iterable<Tensor> | Tensor, maxNorm: number, normType = 2): Tensor {
  checkNumber('clipGradNorm', 'maxNorm', maxNorm, { min: 0, finite: false });
  checkNumber('clipGradNorm', 'normType', normType, { above: 0, finite: false });
  const list = tensorList('clipGradNorm', params);
  const grads = list.flatMap((p) => (p.grad ? [p.grad] : []));
  if (grads.length === 0) return new Tensor(full([], 0, { backend: list[0]?.backend }));
  return noGrad(() => {
    const s = scope();
    let total: NDArray;
    if (normType === Infinity) {
      total = grads.map((g) => g.data.abs().max()).reduce((a, b) => a.maximum(b));
    } else if (normType === 2) {
      total = grads.map((g) => g.data.mul(g.data).sum()).reduce((a, b) => a.add(b)).sqrt();
    } else {
      total = grads.map((g) => g.data.abs().pow(normType).sum()).reduce((a, b) => a.add(b)).pow(1 / normType);
    }
    const coef = total.add(1e-6).pow(-1).mul(maxNorm).minimum(1);
    for (const g of grads) g.assign(g.data.mul(coef));
    s.end(total);
    return new Tensor(total);
  });
}

/** A tensor or an iterable of live tensors, as a list. */
function tensorList(op: string, params: Iterable<Tensor> | Tensor): Tensor[] {
  if (params instanceof Tensor) return [params];
  if (params === null || typeof params !== 'object' || typeof (params as Partial<Iterable<unknown>>)[Symbol.iterator] !== 'function') {
    fail(op, `expected a Tensor or an iterable of Tensors (e.g. model.parameters()), got ${describeValue(params)}`);
  }
  const list = [...params];
  list.forEach((p, i) => {
    if (!(p instanceof Tensor)) fail(op, `params[${i}] is ${describeValue(p)}, expected a Tensor`);
    if (p.disposed) fail(op, `params[${i}] of shape [${p.shape.join(', ')}] was disposed`);
  });
  return list;
}

/** Clamp every gradient of `params` to [-clipValue, clipValue] in place (torch.nn.utils.clip_grad_value_). */
export function clipGradValue(params: Iterable<Tensor> | Tensor, clipValue: number): void {
  checkNumber('clipGradValue', 'clipValue', clipValue, { min: 0, finite: false });
  const list = tensorList('clipGradValue', params);
  noGrad(() => {
    const s = scope();
    for (const p of list) if (p.grad) p.grad.assign(p.grad.data.minimum(clipValue).maximum(-clipValue));
    s.end();
  });
}
