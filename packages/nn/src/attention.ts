/**
 * Attention: MultiHeadAttention (torch.nn.MultiheadAttention's math, layout and parameters),
 * TransformerLayer (torch.nn.TransformerEncoderLayer) and Transformer (a stack of them, as
 * torch.nn.TransformerEncoder; needle hw4's model for sequence modelling).
 *
 * Parameter names are PyTorch's in camelCase, so a torch state dict loads after
 * `k.replace(/_([a-z0-9])/g, (_, c) => c.toUpperCase())`: in_proj_weight -> inProjWeight,
 * out_proj.weight -> outProj.weight, self_attn. -> selfAttn., linear1/linear2/norm1/norm2/layers.0/norm
 * unchanged.
 *
 * Everything is composed from autograd ops (matmul, softmax, where, reshape, permute, split, getitem),
 * so there is no attention kernel in any backend and gradients need no code here.
 */
import { Tensor, add, constant, dropout, expandDims, gelu, getitem, matmul, mean, mul, permute, relu, reshape, softmax, split, squeeze, transpose, where } from '@needle/autograd';
import { NDArray, arange, tidy, type Backend, type Generator } from '@needle/ndarray';
import { checkModuleOptions, checkPositiveInt, checkProbability, fail, fmt, sameShape } from './errors';
import * as init from './init';
import { Dropout, Linear } from './layers';
import { LayerNorm } from './norm';
import { Module, type Parameter } from './module';

/** A mask given as a Tensor (its values only; masks receive no gradient unless additive Tensors) or an NDArray. */
export type Mask = Tensor | NDArray;

/**
 * How `attnMask` and `keyPaddingMask` are read. needle has float32 arrays only, so PyTorch's choice by
 * dtype is made explicit: 'boolean' (default) means non-zero = masked (PyTorch's True), 'additive'
 * means the values are added to the scores (PyTorch's float masks; -Infinity blocks a position).
 */
export type MaskType = 'boolean' | 'additive';

export interface AttentionCallOptions {
  /** [L, S] or [batch * numHeads, L, S] (PyTorch's attn_mask): which queries may see which keys. */
  attnMask?: Mask;
  /** [batch, S] (PyTorch's key_padding_mask): keys to ignore per batch element, e.g. padding. */
  keyPaddingMask?: Mask;
  /** How both masks are read (default 'boolean': 1 = masked). */
  maskType?: MaskType;
  /** Query i sees keys 0..i only (an upper-triangular boolean mask, combined with the others). */
  causal?: boolean;
}

export interface MultiHeadAttentionCallOptions extends AttentionCallOptions {
  /** Return the attention weights (default true, as PyTorch); false returns null in their place. */
  needWeights?: boolean;
  /** Average the weights over heads ([batch, L, S], default) or keep them per head ([batch, numHeads, L, S]). */
  averageAttnWeights?: boolean;
}

export interface MultiHeadAttentionOptions {
  /** Biases in the input and output projections (default true). */
  bias?: boolean;
  /** Dropout probability on the attention weights, in training mode only (default 0). */
  dropout?: number;
  /** Inputs and output are [batch, seq, embed] instead of [seq, batch, embed] (default false). */
  batchFirst?: boolean;
  /** Generator for the initial weights and the dropout masks (default: the global one). */
  generator?: Generator;
  backend?: Backend | string;
}

function checkTensorArg(op: string, name: string, v: unknown): asserts v is Tensor {
  if (!(v instanceof Tensor)) fail(op, `expected ${name} as a Tensor, got ${v === null ? 'null' : typeof v}`);
}

function maskData(op: string, name: string, m: Mask): NDArray {
  if (m instanceof Tensor) return m.data;
  if (m instanceof NDArray) return m;
  fail(op, `${name} must be a Tensor or an NDArray, got ${m === null ? 'null' : typeof m}`);
}

/**
 * Multi-head attention (torch.nn.MultiheadAttention, kdim = vdim = embedDim, no bias_k/add_zero_attn):
 * q, k, v are projected by the rows of the packed `inProjWeight` [3E, E] (+ `inProjBias` [3E]), split
 * into `numHeads` heads of E / numHeads, attended with softmax(q k^T / sqrt(headDim) + masks) v, and
 * joined by `outProj` (a Linear E -> E).
 *
 * `call(query, key, value, options?)` -> [output, weights]. Layout: query [L, batch, E], key and value
 * [S, batch, E] ([batch, seq, E] with batchFirst; unbatched [L, E] / [S, E] also works); output like the
 * query; weights [batch, L, S] averaged over heads (or [batch, numHeads, L, S]), or null with
 * `needWeights: false`. The weights are taken after dropout, as PyTorch returns them.
 *
 * Initialisation is PyTorch's: inProjWeight xavier-uniform, both biases zero, outProj.weight uniform on
 * ±1/sqrt(E).
 */
export class MultiHeadAttention extends Module {
  readonly embedDim: number;
  readonly numHeads: number;
  readonly headDim: number;
  readonly batchFirst: boolean;
  readonly dropout: number;
  /** [3 * embedDim, embedDim]: the query, key and value projections stacked (PyTorch's in_proj_weight). */
  inProjWeight: Parameter;
  /** [3 * embedDim], or null without bias. */
  inProjBias: Parameter | null;
  outProj: Linear;
  private readonly generator: Generator | undefined;

  constructor(embedDim: number, numHeads: number, options: MultiHeadAttentionOptions = {}) {
    super();
    const op = 'MultiHeadAttention';
    checkModuleOptions(op, options, ['bias', 'batchFirst']);
    checkPositiveInt(op, 'embedDim', embedDim);
    checkPositiveInt(op, 'numHeads', numHeads);
    if (embedDim % numHeads !== 0) fail(op, `embedDim=${embedDim} must be divisible by numHeads=${numHeads}`);
    const p = checkProbability(op, 'dropout', options.dropout ?? 0);
    this.embedDim = embedDim;
    this.numHeads = numHeads;
    this.headDim = embedDim / numHeads;
    this.batchFirst = options.batchFirst ?? false;
    this.dropout = p;
    this.generator = options.generator;
    const bias = options.bias ?? true;
    const o = { generator: options.generator, backend: options.backend };
    this.inProjWeight = init.xavierUniform([3 * embedDim, embedDim], o);
    this.inProjBias = bias ? init.zeros([3 * embedDim], { backend: options.backend }) : null;
    this.outProj = new Linear(embedDim, embedDim, { bias, ...o });
    if (this.outProj.bias) {
      // PyTorch zeroes out_proj.bias after Linear's own init.
      this.outProj.bias.dispose();
      this.outProj.bias = init.zeros([embedDim], { backend: options.backend });
    }
  }

  /** Rows [start * E, stop * E) of the packed projection applied to x: the shared weight is sliced, not copied per call. */
  private project(x: Tensor, start: number, stop: number): Tensor {
    const E = this.embedDim;
    const whole = start === 0 && stop === 3;
    const w = whole ? this.inProjWeight : getitem(this.inProjWeight, { start: start * E, stop: stop * E });
    const y = matmul(x, transpose(w));
    if (!this.inProjBias) return y;
    return add(y, whole ? this.inProjBias : getitem(this.inProjBias, { start: start * E, stop: stop * E }));
  }

  /** [seq, batch, E] (or [batch, seq, E]) -> [batch, heads, seq, headDim]. */
  private toHeads(t: Tensor): Tensor {
    const [a, b] = t.shape;
    const split4 = reshape(t, [a, b, this.numHeads, this.headDim]);
    return permute(split4, this.batchFirst ? [0, 2, 1, 3] : [1, 2, 0, 3]);
  }

  forward(query: Tensor, key: Tensor, value: Tensor, options: MultiHeadAttentionCallOptions = {}): [Tensor, Tensor | null] {
    const op = 'MultiHeadAttention';
    checkTensorArg(op, 'query', query);
    checkTensorArg(op, 'key', key);
    checkTensorArg(op, 'value', value);
    const E = this.embedDim;
    const unbatched = query.ndim === 2;
    const layout = this.batchFirst ? `[batch, seq, ${E}]` : `[seq, batch, ${E}]`;
    for (const [name, t] of [['query', query], ['key', key], ['value', value]] as const) {
      if ((t.ndim !== 2 && t.ndim !== 3) || t.ndim !== query.ndim || t.shape[t.ndim - 1] !== E) {
        fail(op, `${name} of shape ${fmt(t.shape)} does not match embedDim=${E}; expected ${layout} or unbatched [seq, ${E}] (query ${fmt(query.shape)}, key ${fmt(key.shape)}, value ${fmt(value.shape)})`);
      }
    }
    if (!sameShape(key.shape, value.shape)) fail(op, `key ${fmt(key.shape)} and value ${fmt(value.shape)} must have the same shape`);
    const seqAxis = unbatched || !this.batchFirst ? 0 : 1;
    if (!unbatched && query.shape[1 - seqAxis] !== key.shape[1 - seqAxis]) {
      fail(op, `query ${fmt(query.shape)} and key ${fmt(key.shape)} have different batch sizes (layout ${layout})`);
    }
    const L = query.shape[seqAxis];
    const S = key.shape[seqAxis];
    if (L === 0 || S === 0) fail(op, `empty sequence: query ${fmt(query.shape)}, key ${fmt(key.shape)}`);
    const batch = unbatched ? 1 : query.shape[1 - seqAxis];
    const batchAxis = this.batchFirst ? 0 : 1;
    const batched = (t: Tensor): Tensor => (unbatched ? expandDims(t, batchAxis) : t);

    // Self-attention projects once with the whole packed weight, as PyTorch does; a shared key/value
    // (memory) projects those two together.
    let q: Tensor;
    let k: Tensor;
    let v: Tensor;
    if (query === key && key === value) {
      [q, k, v] = split(this.project(batched(query), 0, 3), E, -1);
    } else if (key === value) {
      q = this.project(batched(query), 0, 1);
      [k, v] = split(this.project(batched(key), 1, 3), E, -1);
    } else {
      q = this.project(batched(query), 0, 1);
      k = this.project(batched(key), 1, 2);
      v = this.project(batched(value), 2, 3);
    }
    // PyTorch scales q before the product (fewer elements than the scores when S > headDim).
    const qh = mul(this.toHeads(q), 1 / Math.sqrt(this.headDim));
    let scores = matmul(qh, transpose(this.toHeads(k))); // [batch, H, L, S]
    scores = this.applyMasks(scores, options, batch, L, S, unbatched);
    let attn = softmax(scores, -1);
    if (this.training && this.dropout > 0) attn = dropout(attn, this.dropout, { generator: this.generator });
    const o = matmul(attn, this.toHeads(v)); // [batch, H, L, headDim]
    const joined = reshape(permute(o, this.batchFirst ? [0, 2, 1, 3] : [2, 0, 1, 3]), this.batchFirst ? [batch, L, E] : [L, batch, E]);
    let output = this.outProj.call(joined);
    if (unbatched) output = squeeze(output, batchAxis);
    if (!(options.needWeights ?? true)) return [output, null];
    let weights = (options.averageAttnWeights ?? true) ? mean(attn, 1) : attn;
    if (unbatched) weights = squeeze(weights, 0);
    return [output, weights];
  }

  /**
   * Masks on the scores [batch, H, L, S]. Boolean masks (and `causal`) are combined into one 0/1 array
   * and applied with `where(blocked, -Inf, scores)`: a selection, so a blocked score's gradient is
   * exactly zero and no 0 * Inf = NaN arises (adding mask * -Inf would). A row with every key blocked
   * gives NaN weights, as in PyTorch.
   */
  private applyMasks(scores: Tensor, options: AttentionCallOptions, batch: number, L: number, S: number, unbatched: boolean): Tensor {
    const op = 'MultiHeadAttention';
    const H = this.numHeads;
    const maskType = options.maskType ?? 'boolean';
    if (maskType !== 'boolean' && maskType !== 'additive') fail(op, `maskType must be 'boolean' or 'additive', got ${String(maskType)}`);
    const pieces: { name: string; data: NDArray; shape: number[]; tensor: Tensor | null }[] = [];
    if (options.attnMask !== undefined) {
      const data = maskData(op, 'attnMask', options.attnMask);
      let shape: number[];
      if (sameShape(data.shape, [L, S])) shape = [L, S];
      else if (sameShape(data.shape, [batch * H, L, S])) shape = [batch, H, L, S];
      else fail(op, `attnMask of shape ${fmt(data.shape)} does not fit query length ${L} and key length ${S}; expected ${fmt([L, S])} or ${fmt([batch * H, L, S])} (batch * numHeads, L, S)`);
      pieces.push({ name: 'attnMask', data, shape, tensor: options.attnMask instanceof Tensor ? options.attnMask : null });
    }
    if (options.keyPaddingMask !== undefined) {
      const data = maskData(op, 'keyPaddingMask', options.keyPaddingMask);
      const want = unbatched ? [S] : [batch, S];
      if (!sameShape(data.shape, want)) fail(op, `keyPaddingMask of shape ${fmt(data.shape)} does not fit key length ${S}; expected ${fmt(want)}`);
      pieces.push({ name: 'keyPaddingMask', data, shape: [batch, 1, 1, S], tensor: options.keyPaddingMask instanceof Tensor ? options.keyPaddingMask : null });
    }
    let out = scores;
    if (maskType === 'additive') {
      for (const p of pieces) {
        // A Tensor mask stays in the graph (it gets a gradient if it requires one); an NDArray becomes a constant.
        const t = p.tensor ?? constant(p.data.view(p.data.shape, p.data.strides, p.data.offset));
        out = add(out, reshape(t, p.shape));
      }
    }
    const boolPieces = maskType === 'boolean' ? pieces : [];
    if (boolPieces.length === 0 && !options.causal) return out;
    const backend = scores.backend;
    const blocked = tidy(() => {
      const parts = boolPieces.map((p) => p.data.reshape(p.shape));
      if (options.causal) {
        // Key j is blocked for query i when j > i (top-left aligned when L != S, like torch.tril).
        parts.push(arange(S, undefined, 1, { backend }).reshape([1, S]).gt(arange(L, undefined, 1, { backend }).reshape([L, 1])));
      }
      return parts.reduce((acc, m) => acc.maximum(m)).ne(0);
    });
    out = where(blocked, -Infinity, out);
    blocked.dispose(); // where holds its own view
    return out;
  }

  override extraRepr(): string {
    const parts = [`embedDim=${this.embedDim}`, `numHeads=${this.numHeads}`];
    if (this.inProjBias === null) parts.push('bias=false');
    if (this.dropout !== 0) parts.push(`dropout=${this.dropout}`);
    if (this.batchFirst) parts.push('batchFirst=true');
    return parts.join(', ');
  }
}

// ---- transformer ---------------------------------------------------------------------------------

/** The feed-forward activation: 'relu', 'gelu' (the exact erf form, as torch's activation='gelu') or a function (e.g. `(x) => gelu(x, { approximate: 'tanh' })`). */
export type TransformerActivation = 'relu' | 'gelu' | ((x: Tensor) => Tensor);

export interface TransformerLayerOptions {
  /** Width of the feed-forward block (default 2048, as PyTorch). */
  dimFeedforward?: number;
  /** Dropout on the attention weights, after each sublayer and inside the feed-forward block, in training only (default 0.1, as PyTorch). */
  dropout?: number;
  /** Default 'relu'. */
  activation?: TransformerActivation;
  /** LayerNorm before each sublayer (pre-norm, needle hw4's layout) instead of after the residual (default false). */
  normFirst?: boolean;
  /** LayerNorm eps (default 1e-5). */
  layerNormEps?: number;
  /** Input and output are [batch, seq, dModel] instead of [seq, batch, dModel] (default false). */
  batchFirst?: boolean;
  /** Biases in the projections, the feed-forward Linears and the LayerNorms (default true). */
  bias?: boolean;
  /** Default for the call option `causal` (default false). */
  causal?: boolean;
  /** Generator for the initial weights and the dropout masks (default: the global one). */
  generator?: Generator;
  backend?: Backend | string;
}

/**
 * One transformer encoder layer (torch.nn.TransformerEncoderLayer): self-attention and a feed-forward
 * block (linear1, activation, dropout, linear2), each with dropout, a residual and a LayerNorm:
 * post-norm `x = norm1(x + sa(x)); x = norm2(x + ff(x))`, or with `normFirst`
 * `x = x + sa(norm1(x)); x = x + ff(norm2(x))`.
 *
 * `call(src, options?)` -> output of src's shape ([seq, batch, dModel], or batch first). Options are
 * MultiHeadAttention's masks: `attnMask` [L, L] or [batch * nhead, L, L], `keyPaddingMask` [batch, L],
 * `maskType`, `causal` (default: the constructor's).
 */
export class TransformerLayer extends Module {
  readonly dModel: number;
  readonly nhead: number;
  readonly normFirst: boolean;
  readonly causal: boolean;
  readonly activation: TransformerActivation;
  selfAttn: MultiHeadAttention;
  linear1: Linear;
  dropout: Dropout;
  linear2: Linear;
  norm1: LayerNorm;
  norm2: LayerNorm;
  dropout1: Dropout;
  dropout2: Dropout;

  constructor(dModel: number, nhead: number, options: TransformerLayerOptions = {}) {
    super();
    const op = 'TransformerLayer';
    checkModuleOptions(op, options, ['batchFirst', 'normFirst', 'causal']);
    checkPositiveInt(op, 'dModel', dModel);
    checkPositiveInt(op, 'nhead', nhead);
    const dimFeedforward = options.dimFeedforward ?? 2048;
    checkPositiveInt(op, 'dimFeedforward', dimFeedforward);
    const p = options.dropout ?? 0.1;
    if (!(p >= 0 && p < 1)) fail(op, `dropout must be in [0, 1), got ${p}`);
    const act = options.activation ?? 'relu';
    if (act !== 'relu' && act !== 'gelu' && typeof act !== 'function') fail(op, `activation must be 'relu', 'gelu' or a function, got ${String(act)}`);
    this.dModel = dModel;
    this.nhead = nhead;
    this.normFirst = options.normFirst ?? false;
    this.causal = options.causal ?? false;
    this.activation = act;
    const bias = options.bias ?? true;
    const o = { generator: options.generator, backend: options.backend };
    const norm = { eps: options.layerNormEps ?? 1e-5, bias, backend: options.backend };
    // Created in PyTorch's order so that parameters() (and an optimizer's state) line up with torch's.
    this.selfAttn = new MultiHeadAttention(dModel, nhead, { bias, dropout: p, batchFirst: options.batchFirst, ...o });
    this.linear1 = new Linear(dModel, dimFeedforward, { bias, ...o });
    this.dropout = new Dropout(p, { generator: options.generator });
    this.linear2 = new Linear(dimFeedforward, dModel, { bias, ...o });
    this.norm1 = new LayerNorm(dModel, norm);
    this.norm2 = new LayerNorm(dModel, norm);
    this.dropout1 = new Dropout(p, { generator: options.generator });
    this.dropout2 = new Dropout(p, { generator: options.generator });
  }

  get batchFirst(): boolean {
    return this.selfAttn.batchFirst;
  }

  private act(x: Tensor): Tensor {
    const a = this.activation;
    if (a === 'relu') return relu(x);
    if (a === 'gelu') return gelu(x);
    return a(x);
  }

  /** Self-attention without weights: a result the loss never reads would be a graph value nothing frees. */
  private attend(x: Tensor, options: AttentionCallOptions): Tensor {
    const [out] = this.selfAttn.call(x, x, x, { ...options, causal: options.causal ?? this.causal, needWeights: false });
    return this.dropout1.call(out);
  }

  private feedForward(x: Tensor): Tensor {
    return this.dropout2.call(this.linear2.call(this.dropout.call(this.act(this.linear1.call(x)))));
  }

  forward(src: Tensor, options: AttentionCallOptions = {}): Tensor {
    const op = this.constructor.name;
    checkTensorArg(op, 'src', src);
    if ((src.ndim !== 2 && src.ndim !== 3) || src.shape[src.ndim - 1] !== this.dModel) {
      const layout = this.batchFirst ? `[batch, seq, ${this.dModel}]` : `[seq, batch, ${this.dModel}]`;
      fail(op, `src of shape ${fmt(src.shape)} does not match dModel=${this.dModel}; expected ${layout} or unbatched [seq, ${this.dModel}]`);
    }
    let x = src;
    if (this.normFirst) {
      x = add(x, this.attend(this.norm1.call(x), options));
      x = add(x, this.feedForward(this.norm2.call(x)));
    } else {
      x = this.norm1.call(add(x, this.attend(x, options)));
      x = this.norm2.call(add(x, this.feedForward(x)));
    }
    return x;
  }

  override extraRepr(): string {
    const parts = [`dModel=${this.dModel}`, `nhead=${this.nhead}`];
    if (typeof this.activation === 'string') parts.push(`activation=${this.activation}`);
    if (this.normFirst) parts.push('normFirst=true');
    if (this.causal) parts.push('causal=true');
    return parts.join(', ');
  }
}

export interface TransformerOptions extends TransformerLayerOptions {
  /** Stacked layers (default 6, as PyTorch's nn.Transformer encoder). */
  numLayers?: number;
  /** A LayerNorm after the last layer (default false, as PyTorch; usual with normFirst, whose stack output is otherwise un-normalised). */
  finalNorm?: boolean;
}

/**
 * A stack of `numLayers` TransformerLayers with an optional final LayerNorm (torch.nn.TransformerEncoder
 * with its `norm`), the body of needle hw4's Transformer for sequence modelling: add an Embedding (and
 * positions) before and a Linear head after. Every layer gets the same masks. Parameters are
 * `layers.0.selfAttn.inProjWeight`, ..., `norm.weight`, `norm.bias` (PyTorch's names in camelCase).
 *
 * `call(src, options?)` -> output of src's shape; options as TransformerLayer's (`causal` defaults to
 * the constructor's).
 */
export class Transformer extends Module {
  readonly dModel: number;
  readonly numLayers: number;
  readonly causal: boolean;
  layers: TransformerLayer[];
  norm: LayerNorm | null;

  constructor(dModel: number, nhead: number, options: TransformerOptions = {}) {
    super();
    checkModuleOptions('Transformer', options);
    const numLayers = options.numLayers ?? 6;
    checkPositiveInt('Transformer', 'dModel', dModel);
    checkPositiveInt('Transformer', 'numLayers', numLayers);
    this.dModel = dModel;
    this.numLayers = numLayers;
    this.causal = options.causal ?? false;
    this.layers = Array.from({ length: numLayers }, () => new TransformerLayer(dModel, nhead, options));
    this.norm = options.finalNorm ? new LayerNorm(dModel, { eps: options.layerNormEps ?? 1e-5, bias: options.bias ?? true, backend: options.backend }) : null;
  }

  forward(src: Tensor, options: AttentionCallOptions = {}): Tensor {
    checkTensorArg('Transformer', 'src', src);
    if ((src.ndim !== 2 && src.ndim !== 3) || src.shape[src.ndim - 1] !== this.dModel) {
      const layout = this.layers[0].batchFirst ? `[batch, seq, ${this.dModel}]` : `[seq, batch, ${this.dModel}]`;
      fail('Transformer', `src of shape ${fmt(src.shape)} does not match dModel=${this.dModel}; expected ${layout} or unbatched [seq, ${this.dModel}]`);
    }
    const o = { ...options, causal: options.causal ?? this.causal };
    let x = src;
    for (const layer of this.layers) x = layer.call(x, o);
    return this.norm ? this.norm.call(x) : x;
  }

  override extraRepr(): string {
    return `dModel=${this.dModel}, numLayers=${this.numLayers}${this.causal ? ', causal=true' : ''}`;
  }
}
