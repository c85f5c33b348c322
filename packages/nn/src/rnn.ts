/**
 * Recurrent layers: RNNCell, LSTMCell, GRUCell (one time step) and RNN, LSTM, GRU (a sequence, stacked
 * layers). Equations, gate order, weight layout and initialisation are PyTorch's, so weights load from
 * torch.nn.* and results compare with it; the parameter names are the camelCase of PyTorch's
 * (`weight_ih_l0` -> `weightIhL0`, `bias_hh` -> `biasHh`).
 *
 * The cells are composed from autograd ops (matmul, add, mul, sigmoid, tanh, split, getitem), so
 * gradients flow back through time (BPTT) with no recurrent kernel in any backend. RNN, LSTM and GRU
 * run each layer as one of autograd's fused ops `rnnSequence`, `lstmSequence`, `gruSequence` (the
 * composed cell's forward values, BPTT on arrays in a few kernel launches per step, still
 * differentiable twice).
 */
import { Tensor, add, dropout, expandDims, getitem, gruSequence, lstmSequence, matmul, mul, relu, rnnSequence, sigmoid, split, squeeze, stack, sub, tanh, transpose } from '@needle/autograd';
import type { Backend, Generator } from '@needle/ndarray';
import { checkModuleOptions, checkPositiveInt, checkProbability, fail, fmt, sameShape } from './errors';
import * as init from './init';
import { Module, type Parameter } from './module';

/** The activation of a plain (Elman) RNN. */
export type RNNNonlinearity = 'tanh' | 'relu';

type Mode = 'rnn' | 'lstm' | 'gru';

/** Rows of weight_ih / weight_hh per hidden unit: LSTM gates i, f, g, o; GRU gates r, z, n. */
const GATES: Record<Mode, number> = { rnn: 1, lstm: 4, gru: 3 };

/** One layer's (or one cell's) parameters, in PyTorch's layout. */
export interface RecurrentWeights {
  /** [gates * hiddenSize, inputSize] */
  weightIh: Parameter;
  /** [gates * hiddenSize, hiddenSize] */
  weightHh: Parameter;
  /** [gates * hiddenSize], or null without bias */
  biasIh: Parameter | null;
  /** [gates * hiddenSize], or null without bias */
  biasHh: Parameter | null;
}

interface InitOpts {
  generator?: Generator;
  backend?: Backend | string;
}

/** PyTorch's reset_parameters: every weight and bias uniform on (-1/sqrt(hidden), 1/sqrt(hidden)). */
function makeWeights(mode: Mode, inputSize: number, hiddenSize: number, bias: boolean, opts: InitOpts): RecurrentWeights {
  const rows = GATES[mode] * hiddenSize;
  const k = 1 / Math.sqrt(hiddenSize);
  const o = { generator: opts.generator, backend: opts.backend };
  return {
    weightIh: init.uniform([rows, inputSize], -k, k, o),
    weightHh: init.uniform([rows, hiddenSize], -k, k, o),
    biasIh: bias ? init.uniform([rows], -k, k, o) : null,
    biasHh: bias ? init.uniform([rows], -k, k, o) : null,
  };
}

/** x W_ih^T + b_ih for x [..., inputSize]: the input's share of every gate (a cell's one step). */
function projectInput(x: Tensor, w: RecurrentWeights): Tensor {
  const y = matmul(x, transpose(w.weightIh));
  return w.biasIh ? add(y, w.biasIh) : y;
}

/**
 * Gate k ([..., hidden]) of a [..., gates * hidden] tensor. Used instead of `split` where some gates
 * go unused: an unused view would be a graph intermediate no backward reaches, i.e. a leaked buffer.
 */
function gate(t: Tensor, k: number, hidden: number): Tensor {
  return getitem(t, '...', { start: k * hidden, stop: (k + 1) * hidden });
}

interface State {
  h: Tensor;
  c: Tensor | null;
}

/**
 * One time step from the input projection `xp` [batch, gates * hidden]. A null `h` (or `c`) stands for
 * a zero state: the terms it would multiply are left out instead of materialising zeros, which gives
 * the same values and gradients and leaves no zero tensors for the caller to free. (One visible
 * difference from PyTorch: a cell called without a state never touches weightHh, so its .grad stays
 * null where PyTorch reports zeros.)
 */
function cellStep(mode: Mode, nonlinearity: RNNNonlinearity, xp: Tensor, h: Tensor | null, c: Tensor | null, w: RecurrentWeights, hidden: number): State {
  let hp: Tensor | null = h ? matmul(h, transpose(w.weightHh)) : null;
  if (w.biasHh) hp = hp ? add(hp, w.biasHh) : w.biasHh;
  switch (mode) {
    case 'rnn': {
      const pre = hp ? add(xp, hp) : xp;
      return { h: nonlinearity === 'relu' ? relu(pre) : tanh(pre), c: null };
    }
    case 'lstm': {
      const gates = hp ? add(xp, hp) : xp;
      const ig = mul(sigmoid(gate(gates, 0, hidden)), tanh(gate(gates, 2, hidden)));
      const cNext = c ? add(mul(sigmoid(gate(gates, 1, hidden)), c), ig) : ig;
      return { h: mul(sigmoid(gate(gates, 3, hidden)), tanh(cNext)), c: cNext };
    }
    case 'gru': {
      let z: Tensor;
      let n: Tensor;
      if (hp) {
        const [xr, xz, xn] = split(xp, hidden, -1);
        const [hr, hz, hn] = split(hp, hidden, -1);
        const r = sigmoid(add(xr, hr));
        z = sigmoid(add(xz, hz));
        // PyTorch's GRU applies r to (W_hn h + b_hn), not to h before the matmul.
        n = tanh(add(xn, mul(r, hn)));
      } else {
        // r only scales the (absent) hidden term, so it is not computed at all.
        z = sigmoid(gate(xp, 1, hidden));
        n = tanh(gate(xp, 2, hidden));
      }
      // (1 - z) * n + z * h written as n + z * (h - n): one fewer op, same gradients.
      return { h: h ? add(n, mul(z, sub(h, n))) : sub(n, mul(z, n)), c: null };
    }
    default:
      return mode satisfies never;
  }
}

function checkTensorArg(op: string, name: string, v: unknown): asserts v is Tensor {
  if (!(v instanceof Tensor)) fail(op, `expected ${name} as a Tensor, got ${v === null ? 'null' : typeof v}`);
}

// ---- cells -------------------------------------------------------------------------------------

export interface RNNCellOptions {
  /** Learnable biases biasIh and biasHh (default true). */
  bias?: boolean;
  /** Default 'tanh'. */
  nonlinearity?: RNNNonlinearity;
  /** Generator for the initial weights (default: the global one). */
  generator?: Generator;
  backend?: Backend | string;
}

export type LSTMCellOptions = Omit<RNNCellOptions, 'nonlinearity'>;
export type GRUCellOptions = Omit<RNNCellOptions, 'nonlinearity'>;

/** Shared body of the three cells: parameters weightIh, weightHh, biasIh, biasHh (PyTorch's order). */
abstract class CellBase extends Module {
  readonly inputSize: number;
  readonly hiddenSize: number;
  weightIh: Parameter;
  weightHh: Parameter;
  biasIh: Parameter | null;
  biasHh: Parameter | null;
  private readonly mode: Mode;

  constructor(mode: Mode, inputSize: number, hiddenSize: number, options: RNNCellOptions) {
    super();
    const name = new.target.name;
    checkModuleOptions(name, options, ['bias']);
    checkPositiveInt(name, 'inputSize', inputSize);
    checkPositiveInt(name, 'hiddenSize', hiddenSize);
    this.mode = mode;
    this.inputSize = inputSize;
    this.hiddenSize = hiddenSize;
    const w = makeWeights(mode, inputSize, hiddenSize, options.bias ?? true, options);
    this.weightIh = w.weightIh;
    this.weightHh = w.weightHh;
    this.biasIh = w.biasIh;
    this.biasHh = w.biasHh;
  }

  /**
   * Check x ([batch, input] or unbatched [input]) and the states, run one step; results have x's
   * batchedness.
   */
  protected step(nonlinearity: RNNNonlinearity, x: Tensor, h: Tensor | undefined, c: Tensor | undefined): { h: Tensor; c: Tensor | null } {
    const op = this.constructor.name;
    checkTensorArg(op, 'input', x);
    if ((x.ndim !== 1 && x.ndim !== 2) || x.shape[x.ndim - 1] !== this.inputSize) {
      fail(op, `input of shape ${fmt(x.shape)} does not match inputSize=${this.inputSize}; expected [batch, ${this.inputSize}] or [${this.inputSize}]`);
    }
    const unbatched = x.ndim === 1;
    const stateShape = unbatched ? [this.hiddenSize] : [x.shape[0], this.hiddenSize];
    for (const [name, s] of [['hx', h], ['cx', c]] as const) {
      if (s === undefined) continue;
      checkTensorArg(op, name, s);
      if (!sameShape(s.shape, stateShape)) fail(op, `${name} has shape ${fmt(s.shape)}, expected ${fmt(stateShape)} for input of shape ${fmt(x.shape)}`);
    }
    const batched = (t: Tensor | undefined): Tensor | null => (t === undefined ? null : unbatched ? expandDims(t, 0) : t);
    const out = cellStep(this.mode, nonlinearity, projectInput(batched(x)!, this), batched(h), batched(c), this, this.hiddenSize);
    const back = (t: Tensor): Tensor => (unbatched ? squeeze(t, 0) : t);
    return { h: back(out.h), c: out.c ? back(out.c) : null };
  }

  override extraRepr(): string {
    return `${this.inputSize}, ${this.hiddenSize}${this.biasIh ? '' : ', bias=false'}`;
  }
}

/**
 * Elman RNN cell (torch.nn.RNNCell): h' = act(x W_ih^T + b_ih + h W_hh^T + b_hh), act tanh or relu.
 * `call(x [batch, input] or [input], h? [batch, hidden])` -> h'; a missing h is zeros.
 */
export class RNNCell extends CellBase {
  readonly nonlinearity: RNNNonlinearity;

  constructor(inputSize: number, hiddenSize: number, options: RNNCellOptions = {}) {
    super('rnn', inputSize, hiddenSize, options);
    this.nonlinearity = checkNonlinearity('RNNCell', options.nonlinearity);
  }

  forward(x: Tensor, h?: Tensor): Tensor {
    return this.step(this.nonlinearity, x, h, undefined).h;
  }

  override extraRepr(): string {
    return `${super.extraRepr()}${this.nonlinearity === 'tanh' ? '' : `, nonlinearity=${this.nonlinearity}`}`;
  }
}

/**
 * LSTM cell (torch.nn.LSTMCell), gates in PyTorch's order i, f, g, o:
 * c' = sigmoid(f) * c + sigmoid(i) * tanh(g), h' = sigmoid(o) * tanh(c').
 * `call(x, [h, c]?)` -> [h', c']; a missing state is zeros.
 */
export class LSTMCell extends CellBase {

  constructor(inputSize: number, hiddenSize: number, options: LSTMCellOptions = {}) {
    super('lstm', inputSize, hiddenSize, options);
  }

  forward(x: Tensor, state?: readonly [Tensor, Tensor]): [Tensor, Tensor] {
    if (state !== undefined && (!Array.isArray(state) || state.length !== 2)) fail('LSTMCell', 'the state must be a pair [h, c]');
    const out = this.step('tanh', x, state?.[0], state?.[1]);
    return [out.h, out.c!];
  }
}

/**
 * GRU cell (torch.nn.GRUCell), gates in PyTorch's order r, z, n:
 * n = tanh(x W_in^T + b_in + r * (h W_hn^T + b_hn)), h' = (1 - z) * n + z * h.
 * `call(x, h?)` -> h'; a missing h is zeros.
 */
export class GRUCell extends CellBase {

  constructor(inputSize: number, hiddenSize: number, options: GRUCellOptions = {}) {
    super('gru', inputSize, hiddenSize, options);
  }

  forward(x: Tensor, h?: Tensor): Tensor {
    return this.step('tanh', x, h, undefined).h;
  }
}

function checkNonlinearity(op: string, v: RNNNonlinearity | undefined): RNNNonlinearity {
  const n = v ?? 'tanh';
  if (n !== 'tanh' && n !== 'relu') fail(op, `nonlinearity must be 'tanh' or 'relu', got ${String(n)}`);
  return n;
}

// ---- multi-layer sequence modules ---------------------------------------------------------------

export interface RNNOptions {
  /** Stacked layers (default 1); layer l > 0 reads layer l - 1's output sequence. */
  numLayers?: number;
  /** Learnable biases (default true). */
  bias?: boolean;
  /** Input and output are [batch, seq, feature] instead of [seq, batch, feature] (default false). States stay [numLayers, batch, hidden]. */
  batchFirst?: boolean;
  /** Dropout probability on the outputs of every layer but the last, in training mode only (default 0). */
  dropout?: number;
  /** Only for RNN: 'tanh' (default) or 'relu'. */
  nonlinearity?: RNNNonlinearity;
  /** Generator for the initial weights and the dropout masks (default: the global one). */
  generator?: Generator;
  backend?: Backend | string;
}

export type LSTMOptions = Omit<RNNOptions, 'nonlinearity'>;
export type GRUOptions = Omit<RNNOptions, 'nonlinearity'>;

/**
 * Shared body of RNN, LSTM and GRU. Parameters are named as PyTorch names them, camelCased:
 * weightIhL0, weightHhL0, biasIhL0, biasHhL0, weightIhL1, ... (in PyTorch's order).
 */
abstract class RecurrentBase extends Module {
  readonly inputSize: number;
  readonly hiddenSize: number;
  readonly numLayers: number;
  readonly batchFirst: boolean;
  readonly dropout: number;
  readonly nonlinearity: RNNNonlinearity;
  /** Each layer's parameters (PyTorch's `all_weights`). */
  readonly allWeights: RecurrentWeights[];
  private readonly mode: Mode;
  private readonly generator: Generator | undefined;

  constructor(mode: Mode, inputSize: number, hiddenSize: number, options: RNNOptions) {
    super();
    const op = new.target.name;
    checkModuleOptions(op, options, ['bias', 'batchFirst', 'bidirectional']);
    checkPositiveInt(op, 'inputSize', inputSize);
    checkPositiveInt(op, 'hiddenSize', hiddenSize);
    const numLayers = options.numLayers ?? 1;
    checkPositiveInt(op, 'numLayers', numLayers);
    const p = checkProbability(op, 'dropout', options.dropout ?? 0);
    this.mode = mode;
    this.inputSize = inputSize;
    this.hiddenSize = hiddenSize;
    this.numLayers = numLayers;
    this.batchFirst = options.batchFirst ?? false;
    this.dropout = p;
    this.nonlinearity = checkNonlinearity(op, options.nonlinearity);
    this.generator = options.generator;
    this.allWeights = Array.from({ length: numLayers }, (_, l) =>
      makeWeights(mode, l === 0 ? inputSize : hiddenSize, hiddenSize, options.bias ?? true, options));
  }

  /** Flat PyTorch-style names (weightIhL0, ...) instead of the default scan's 'allWeights.0.weightIh'. */
  protected override namedMembers(): Iterable<[string, unknown]> {
    return this.allWeights.flatMap((w, l): [string, unknown][] => [
      [`weightIhL${l}`, w.weightIh],
      [`weightHhL${l}`, w.weightHh],
      [`biasIhL${l}`, w.biasIh],
      [`biasHhL${l}`, w.biasHh],
    ]);
  }

  /**
   * Run all layers over the sequence. x: [seq, batch, input] ([batch, seq, input] with batchFirst) or
   * unbatched [seq, input]; h0/c0: [numLayers, batch, hidden] (or [numLayers, hidden] unbatched).
   */
  protected run(x: Tensor, h0: Tensor | undefined, c0: Tensor | undefined): { output: Tensor; hN: Tensor; cN: Tensor | null } {
    const op = this.constructor.name;
    checkTensorArg(op, 'input', x);
    const unbatched = x.ndim === 2;
    if ((x.ndim !== 2 && x.ndim !== 3) || x.shape[x.ndim - 1] !== this.inputSize) {
      const layout = this.batchFirst ? `[batch, seq, ${this.inputSize}]` : `[seq, batch, ${this.inputSize}]`;
      fail(op, `input of shape ${fmt(x.shape)} does not match inputSize=${this.inputSize}; expected ${layout} or unbatched [seq, ${this.inputSize}]`);
    }
    // Internally always [seq, batch, feature].
    let seqFirst = unbatched ? expandDims(x, 1) : this.batchFirst ? transpose(x, 0, 1) : x;
    const [seqLen, batch] = seqFirst.shape;
    if (seqLen === 0) fail(op, `input of shape ${fmt(x.shape)} has an empty sequence`);
    const stateShape = unbatched ? [this.numLayers, this.hiddenSize] : [this.numLayers, batch, this.hiddenSize];
    for (const [name, s] of [['h0', h0], ['c0', c0]] as const) {
      if (s === undefined) continue;
      checkTensorArg(op, name, s);
      if (!sameShape(s.shape, stateShape)) fail(op, `${name} has shape ${fmt(s.shape)}, expected ${fmt(stateShape)} (numLayers, batch, hiddenSize) for input of shape ${fmt(x.shape)}`);
    }
    const initial = (s: Tensor | undefined, l: number): Tensor | null => {
      if (s === undefined) return null;
      const layer = getitem(s, l);
      return unbatched ? expandDims(layer, 0) : layer;
    };
    const hs: Tensor[] = [];
    const cs: Tensor[] = [];
    this.allWeights.forEach((w, l) => {
      if (l > 0 && this.training && this.dropout > 0) seqFirst = dropout(seqFirst, this.dropout, { generator: this.generator });
      const h = initial(h0, l);
      // Each layer is one fused autograd op (BPTT in a few kernels per step) on the input projection
      // x W_ih^T of all steps; the op adds b_ih itself (the same sums, and the bias gradients from
      // one matmul). The results pack every h_t (and the LSTM's c_t); the layer hands out views.
      const xw = matmul(seqFirst, transpose(w.weightIh));
      if (this.mode === 'lstm') {
        const packed = lstmSequence(xw, w.weightHh, w.biasHh, h, initial(c0, l), w.biasIh);
        hs.push(getitem(packed, 0, seqLen - 1));
        cs.push(getitem(packed, 1, seqLen - 1));
        seqFirst = getitem(packed, 0);
      } else if (this.mode === 'gru') {
        const packed = gruSequence(xw, w.weightHh, w.biasIh, w.biasHh, h);
        hs.push(getitem(packed, 0, seqLen - 1));
        seqFirst = getitem(packed, 0);
      } else {
        const out = rnnSequence(xw, w.weightHh, w.biasIh, w.biasHh, h, this.nonlinearity);
        hs.push(getitem(out, seqLen - 1));
        seqFirst = out;
      }
    });
    let output = seqFirst;
    let hN = stack(hs, 0);
    let cN = cs.length > 0 ? stack(cs, 0) : null;
    if (unbatched) {
      output = squeeze(output, 1);
      hN = squeeze(hN, 1);
      cN = cN && squeeze(cN, 1);
    } else if (this.batchFirst) {
      output = transpose(output, 0, 1);
    }
    return { output, hN, cN };
  }

  override extraRepr(): string {
    const parts = [`${this.inputSize}, ${this.hiddenSize}`];
    if (this.numLayers !== 1) parts.push(`numLayers=${this.numLayers}`);
    if (this.allWeights[0].biasIh === null) parts.push('bias=false');
    if (this.batchFirst) parts.push('batchFirst=true');
    if (this.dropout !== 0) parts.push(`dropout=${this.dropout}`);
    if (this.nonlinearity !== 'tanh') parts.push(`nonlinearity=${this.nonlinearity}`);
    return parts.join(', ');
  }
}

/**
 * Multi-layer Elman RNN (torch.nn.RNN). `call(x, h0?)` -> [output, hN]: output holds the last
 * layer's h for every step ([seq, batch, hidden], or batch-first), hN every layer's last h
 * ([numLayers, batch, hidden]). A missing h0 is zeros.
 */
export class RNN extends RecurrentBase {
  constructor(inputSize: number, hiddenSize: number, options: RNNOptions = {}) {
    super('rnn', inputSize, hiddenSize, options);
  }

  forward(x: Tensor, h0?: Tensor): [Tensor, Tensor] {
    const { output, hN } = this.run(x, h0, undefined);
    return [output, hN];
  }
}

/**
 * Multi-layer LSTM (torch.nn.LSTM, no projections). `call(x, [h0, c0]?)` -> [output, [hN, cN]], shapes
 * as for RNN. A missing state is zeros.
 */
export class LSTM extends RecurrentBase {
  constructor(inputSize: number, hiddenSize: number, options: LSTMOptions = {}) {
    super('lstm', inputSize, hiddenSize, options);
  }

  forward(x: Tensor, state?: readonly [Tensor, Tensor]): [Tensor, [Tensor, Tensor]] {
    if (state !== undefined && (!Array.isArray(state) || state.length !== 2)) fail('LSTM', 'the initial state must be a pair [h0, c0]');
    const { output, hN, cN } = this.run(x, state?.[0], state?.[1]);
    return [output, [hN, cN!]];
  }
}

/** Multi-layer GRU (torch.nn.GRU). `call(x, h0?)` -> [output, hN], shapes as for RNN. */
export class GRU extends RecurrentBase {
  constructor(inputSize: number, hiddenSize: number, options: GRUOptions = {}) {
    super('gru', inputSize, hiddenSize, options);
  }

  forward(x: Tensor, h0?: Tensor): [Tensor, Tensor] {
    const { output, hN } = this.run(x, h0, undefined);
    return [output, hN];
  }
}
