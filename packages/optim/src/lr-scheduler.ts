import { checkInteger, checkNumber, checkOptions, describeValue, fail } from '@needle/ndarray';
import { Optimizer, type GroupOptions } from './optimizer';

function checkOptimizer(op: string, optimizer: unknown): void {
  if (!(optimizer instanceof Optimizer)) fail(op, `expected an Optimizer (e.g. new SGD(...)), got ${describeValue(optimizer)}`);
}

/** A scheduler's progress, shaped like PyTorch's scheduler `state_dict()` (plain numbers). */
export interface LRSchedulerState {
  lastEpoch: number;
  stepCount: number;
  baseLrs: number[];
  lastLr: number[];
}

/**
 * Base of the learning-rate schedulers, with PyTorch's semantics (torch.optim.lr_scheduler):
 * - construction records each group's `initialLr` (once, by the first scheduler) and takes the
 *   initial step, so `lastEpoch` is 0 and the groups hold the epoch-0 learning rate;
 * - `step()` is called once per epoch, after that epoch's optimizer steps, and sets the learning
 *   rate for the next epoch;
 * - rules are "chainable": each computes the next lr from the group's current lr, so two schedulers
 *   stepped together on one optimizer compose (e.g. a LinearLR warm-up and a cosine decay).
 */
export abstract class LRScheduler {
  readonly optimizer: Optimizer<GroupOptions>;
  /** Index of the current epoch (0 after construction). */
  lastEpoch: number;
  readonly baseLrs: number[];
  protected stepCount = 0;
  private lastLr: number[] = [];

  /** Subclasses set their fields, then call `this.initialStep()` at the end of their constructor. */
  protected constructor(optimizer: Optimizer<GroupOptions>, lastEpoch: number) {
    const op = new.target.name;
    checkOptimizer(op, optimizer);
    checkInteger(op, 'lastEpoch', lastEpoch, -1);
    this.optimizer = optimizer;
    for (const [i, group] of optimizer.paramGroups.entries()) {
      if (lastEpoch === -1) group.initialLr ??= group.lr;
      else if (group.initialLr === undefined) fail(op, `resuming at lastEpoch ${lastEpoch}, but param group ${i} has no initialLr (it is set by a scheduler created with lastEpoch -1)`);
    }
    this.baseLrs = optimizer.paramGroups.map((g) => g.initialLr!);
    this.lastEpoch = lastEpoch;
  }

  /** PyTorch's `_initial_step`: move to the first epoch (lastEpoch + 1) and set its lr. */
  protected initialStep(): void {
    this.stepCount = 0;
    this.step();
  }

  /** The learning rates for `lastEpoch`, computed from the groups' current lrs (chainable form). */
  protected abstract computeLr(): number[];

  /** Advance one epoch and write the new learning rate into every param group. */
  step(): void {
    this.stepCount++;
    this.lastEpoch++;
    const lrs = this.computeLr();
    this.optimizer.paramGroups.forEach((g, i) => {
      g.lr = lrs[i];
    });
    this.lastLr = lrs;
  }

  /** The learning rates the last `step()` (or the constructor) set, one per group. */
  getLastLr(): number[] {
    return [...this.lastLr];
  }

  stateDict(): LRSchedulerState {
    return { lastEpoch: this.lastEpoch, stepCount: this.stepCount, baseLrs: [...this.baseLrs], lastLr: [...this.lastLr] };
  }

  /**
   * Restore progress saved by `stateDict()` (the optimizer's lrs come from its own state dict).
   * Checked first (`checkStateDict`), so a bad state leaves the scheduler as it was.
   */
  loadStateDict(state: LRSchedulerState): void {
    this.validateState(state, `${this.constructor.name}.loadStateDict`);
    this.lastEpoch = state.lastEpoch;
    this.stepCount = state.stepCount;
    this.baseLrs.splice(0, this.baseLrs.length, ...state.baseLrs);
    this.lastLr = [...state.lastLr];
  }

  /** Check a state exactly as `loadStateDict` does and throw the same error, without loading it. */
  checkStateDict(state: LRSchedulerState): void {
    this.validateState(state, `${this.constructor.name}.checkStateDict`);
  }

  private validateState(state: LRSchedulerState, op: string): void {
    if (typeof state !== 'object' || state === null) fail(op, 'expected a state { lastEpoch, stepCount, baseLrs, lastLr } from stateDict()');
    if (!Number.isInteger(state.lastEpoch) || state.lastEpoch < 0) fail(op, `lastEpoch must be an integer >= 0, got ${JSON.stringify(state.lastEpoch)}`);
    if (!Number.isInteger(state.stepCount) || state.stepCount < 1) fail(op, `stepCount must be an integer >= 1, got ${JSON.stringify(state.stepCount)}`);
    const groups = this.baseLrs.length;
    for (const name of ['baseLrs', 'lastLr'] as const) {
      const v: unknown = state[name];
      if (!Array.isArray(v) || !v.every((x) => typeof x === 'number' && Number.isFinite(x))) fail(op, `${name} must be an array of finite numbers, got ${JSON.stringify(v)}`);
      if (v.length !== groups) fail(op, `the state has ${v.length} ${name}, the optimizer ${groups} param groups`);
    }
  }

  protected currentLrs(): number[] {
    return this.optimizer.paramGroups.map((g) => g.lr);
  }
}

/** Multiply the lr by `gamma` every `stepSize` epochs: `lr = base * gamma ** floor(epoch / stepSize)`. */
export class StepLR extends LRScheduler {
  readonly stepSize: number;
  readonly gamma: number;

  constructor(optimizer: Optimizer<GroupOptions>, options: { stepSize: number; gamma?: number; lastEpoch?: number }) {
    // Checked before super(), which records initialLr in the optimizer's groups.
    checkOptions('StepLR', options);
    checkInteger('StepLR', 'stepSize', options.stepSize, 1);
    checkNumber('StepLR', 'gamma', options.gamma ?? 0.1);
    super(optimizer, options.lastEpoch ?? -1);
    this.stepSize = options.stepSize;
    this.gamma = options.gamma ?? 0.1;
    this.initialStep();
  }

  protected computeLr(): number[] {
    const lrs = this.currentLrs();
    if (this.lastEpoch === 0 || this.lastEpoch % this.stepSize !== 0) return lrs;
    return lrs.map((lr) => lr * this.gamma);
  }
}

/**
 * Cosine annealing from the base lr down to `etaMin` over `tMax` epochs (SGDR without restarts):
 * `lr = etaMin + (base - etaMin) * (1 + cos(pi * epoch / tMax)) / 2`. Like PyTorch, it is computed
 * in the recursive form (so it chains with other schedulers), and past `tMax` it rises again along
 * the same cosine.
 */
export class CosineAnnealingLR extends LRScheduler {
  readonly tMax: number;
  readonly etaMin: number;

  constructor(optimizer: Optimizer<GroupOptions>, options: { tMax: number; etaMin?: number; lastEpoch?: number }) {
    checkOptions('CosineAnnealingLR', options);
    checkNumber('CosineAnnealingLR', 'tMax', options.tMax, { above: 0 });
    checkNumber('CosineAnnealingLR', 'etaMin', options.etaMin ?? 0);
    super(optimizer, options.lastEpoch ?? -1);
    this.tMax = options.tMax;
    this.etaMin = options.etaMin ?? 0;
    this.initialStep();
  }

  protected computeLr(): number[] {
    const { lastEpoch: e, tMax: T, etaMin } = this;
    const lrs = this.currentLrs();
    if (e === 0) return lrs;
    // Resumed (constructed with lastEpoch > -1): no previous lr to chain from, use the closed form.
    if (this.stepCount === 1 && e > 0) {
      return this.baseLrs.map((base) => etaMin + ((base - etaMin) * (1 + Math.cos((e * Math.PI) / T))) / 2);
    }
    // At the trough the ratio below would be 0/0: step up from etaMin explicitly.
    if ((e - 1 - T) % (2 * T) === 0) {
      return lrs.map((lr, i) => lr + ((this.baseLrs[i] - etaMin) * (1 - Math.cos(Math.PI / T))) / 2);
    }
    const ratio = (1 + Math.cos((Math.PI * e) / T)) / (1 + Math.cos((Math.PI * (e - 1)) / T));
    return lrs.map((lr) => ratio * (lr - etaMin) + etaMin);
  }
}

/**
 * Linear warm-up (or decay): the lr factor goes linearly from `startFactor` to `endFactor` over
 * `totalIters` epochs, then stays: `lr = base * (start + (end - start) * min(epoch, totalIters) / totalIters)`.
 * PyTorch's defaults: startFactor 1/3, endFactor 1, totalIters 5.
 */
export class LinearLR extends LRScheduler {
  readonly startFactor: number;
  readonly endFactor: number;
  readonly totalIters: number;

  constructor(optimizer: Optimizer<GroupOptions>, options: { startFactor?: number; endFactor?: number; totalIters?: number; lastEpoch?: number } = {}) {
    checkOptions('LinearLR', options);
    const start = checkNumber('LinearLR', 'startFactor', options.startFactor ?? 1 / 3, { above: 0, max: 1 });
    const end = checkNumber('LinearLR', 'endFactor', options.endFactor ?? 1, { min: 0, max: 1 });
    const total = checkInteger('LinearLR', 'totalIters', options.totalIters ?? 5, 1);
    super(optimizer, options.lastEpoch ?? -1);
    this.startFactor = start;
    this.endFactor = end;
    this.totalIters = total;
    this.initialStep();
  }

  protected computeLr(): number[] {
    const { lastEpoch: e, startFactor: s, endFactor: f, totalIters: n } = this;
    const lrs = this.currentLrs();
    if (e === 0) return lrs.map((lr) => lr * s);
    if (e > n) return lrs;
    // Ratio of consecutive factors, so the rule chains with other schedulers.
    return lrs.map((lr) => lr * (1 + (f - s) / (n * s + (e - 1) * (f - s))));
  }
}
