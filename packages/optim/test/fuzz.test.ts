// Seeded invalid calls over optim's public API: each must be a NeedleError that leaves no buffer
// behind (cpu here; the wasm re-run of this suite covers wasm).
import { describe, expect, it } from 'vitest';
import { NDArray } from '@needle/ndarray';
import { INVALID, formatFindings, formatFuzzReport, fuzzInvalidCalls, ndarrayFuzzContext, type BadKind, type FuzzCase, type FuzzSlot } from '@needle/ndarray/testing';
import { createCpuBackend } from '@needle/ndarray-cpu';
import { Tensor } from '@needle/autograd';
import { Adam, AdamW, CosineAnnealingLR, LinearLR, SGD, StepLR, clipGradNorm, clipGradValue, type Optimizer, type GroupOptions } from '../src/index';
import { backend } from './helpers';

const foreignBackend = createCpuBackend({ name: 'cpu-optim-foreign' });

const value = (v: unknown, invalid: readonly BadKind[]): FuzzSlot => ({ valid: () => v, invalid });
/** A numeric option (undefined and null select the default). */
const FIELD: readonly BadKind[] = INVALID.finite.filter((k) => k !== 'null');
const NON_NEGATIVE: readonly BadKind[] = [...FIELD, 'negative'];
const params: FuzzSlot = { valid: (c) => [c.make([2])], invalid: ['string', 'null', 'NaN', 'object', 'function', 'emptyArray', 'nestedArray', 'boolean', 'symbol'] };
/** clip_grad_norm_([]) is valid in PyTorch (a zero norm), so only non-lists are invalid here. */
const clipParams: FuzzSlot = { ...params, invalid: params.invalid.filter((k) => k !== 'emptyArray') };
const param = (): FuzzSlot => ({ valid: (c) => c.make([2]), invalid: ['string', 'null', 'NaN', 'object', 'function', 'emptyArray', 'boolean'] });

/** An SGD over one fresh parameter, for the schedulers (disposed with it). */
function withOptimizer(fn: (o: Optimizer<GroupOptions>) => unknown): unknown {
  const p = new Tensor(NDArray.fromData(new Float32Array([1, 2]), [2], backend), { requiresGrad: true });
  const o = new SGD([p], { lr: 0.1 });
  try {
    return fn(o);
  } finally {
    o.dispose();
    p.dispose();
  }
}

function cases(): FuzzCase[] {
  return [
    { name: 'SGD', slots: [params, value(0.1, [...NON_NEGATIVE, 'undefined'])], call: (ps: Tensor[], lr: number) => new SGD(ps, { lr }) },
    { name: 'SGD(momentum)', slots: [params, value(0.9, NON_NEGATIVE), value(0, FIELD), value(0, NON_NEGATIVE)], call: (ps: Tensor[], momentum: number, dampening: number, weightDecay: number) => new SGD(ps, { lr: 0.1, momentum, dampening, weightDecay }) },
    { name: 'SGD(nesterov)', slots: [value(false, INVALID.flag.filter((k) => k !== 'null'))], call: (nesterov: boolean) => withOptimizer((o) => new SGD(o.paramGroups[0].params, { lr: 0.1, momentum: 0.9, nesterov })) },
    { name: 'SGD(params entry)', slots: [param()], call: (p: Tensor) => new SGD([p], { lr: 0.1 }) },
    { name: 'Adam', slots: [params, value(1e-3, NON_NEGATIVE), value(1e-8, NON_NEGATIVE), value(false, INVALID.flag.filter((k) => k !== 'null'))], call: (ps: Tensor[], lr: number, eps: number, amsgrad: boolean) => new Adam(ps, { lr, eps, amsgrad }) },
    { name: 'Adam(betas)', slots: [params, value([0.9, 0.999], ['string', 'NaN', 'object', 'function', 'emptyArray', 'nestedArray', 'boolean'])], call: (ps: Tensor[], betas: [number, number]) => new Adam(ps, { betas }) },
    { name: 'AdamW', slots: [params, value(0.01, NON_NEGATIVE)], call: (ps: Tensor[], weightDecay: number) => new AdamW(ps, { weightDecay }) },
    { name: 'Optimizer.addParamGroup', slots: [value(undefined, ['string', 'null', 'NaN', 'object', 'function', 'boolean'])], call: (g: never) => withOptimizer((o) => o.addParamGroup(g === undefined ? { params: [] } : g)) },
    { name: 'Optimizer.loadStateDict', slots: [value(undefined, ['string', 'null', 'NaN', 'object', 'function', 'emptyArray', 'boolean'])], call: (s: never) => withOptimizer((o) => o.loadStateDict(s === undefined ? o.stateDict() : s)) },
    { name: 'StepLR', slots: [value(2, INVALID.positiveInt), value(0.5, FIELD)], call: (stepSize: number, gamma: number) => withOptimizer((o) => new StepLR(o, { stepSize, gamma })) },
    { name: 'CosineAnnealingLR', slots: [value(10, [...NON_NEGATIVE.filter((k) => k !== 'undefined'), 'undefined']), value(0, FIELD)], call: (tMax: number, etaMin: number) => withOptimizer((o) => new CosineAnnealingLR(o, { tMax, etaMin })) },
    { name: 'LinearLR', slots: [value(0.5, [...FIELD, 'negative', 'huge']), value(3, INVALID.positiveInt.filter((k) => k !== 'null'))], call: (startFactor: number, totalIters: number) => withOptimizer((o) => new LinearLR(o, { startFactor, totalIters })) },
    { name: 'StepLR(optimizer)', slots: [value(undefined, ['string', 'null', 'NaN', 'object', 'function', 'emptyArray'])], call: (o: never) => (o === undefined ? withOptimizer((opt) => new StepLR(opt, { stepSize: 1 })) : new StepLR(o, { stepSize: 1 })) },
    { name: 'clipGradNorm', slots: [clipParams, value(1, [...INVALID.notNumber, 'negative', 'NaN']), value(2, [...INVALID.notNumber, 'negative', 'NaN'])], call: (ps: Tensor[], max: number, norm: number) => clipGradNorm(ps, max, norm) },
    { name: 'clipGradValue', slots: [clipParams, value(1, [...INVALID.notNumber, 'negative', 'NaN'])], call: (ps: Tensor[], v: number) => clipGradValue(ps, v) },
  ];
}

describe('invalid-call fuzz: optim', () => {
  it('every invalid call gets a NeedleError and leaves no buffer behind', async () => {
    const live = () => backend.memory().buffers + foreignBackend.memory().buffers;
    const before = live();
    const report = await fuzzInvalidCalls({ cases: cases(), ctx: ndarrayFuzzContext(backend, foreignBackend, { wrap: (a) => new Tensor(a, { requiresGrad: true }) }), liveBuffers: live, rounds: 1500, seed: 13 });
    console.log(formatFuzzReport(`optim on ${backend.name}`, report));
    expect(report.raw + report.silent + report.leaked, `bad outcomes:\n${formatFindings(report)}`).toBe(0);
    expect(live()).toBe(before);
  });
});
