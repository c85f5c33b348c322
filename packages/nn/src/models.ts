/**
 * The two flagship models of needle's hw4, built from the layers: ResNet9 for CIFAR-10 and a word
 * LanguageModel (embedding, a recurrent or transformer sequence model, a Linear to the vocabulary).
 */
import { Tensor, add, expandDims, reshape } from '@needle/autograd';
import { arange, NDArray, type Backend, type Generator } from '@needle/ndarray';
import { Conv2d, Embedding } from './conv';
import { checkPositiveInt, fail, fmt } from './errors';
import { Flatten, Linear, ReLU, Residual, Sequential } from './layers';
import { Module } from './module';
import { BatchNorm2d } from './norm';
import { GRU, LSTM, RNN } from './rnn';
import { Transformer, type TransformerActivation } from './attention';

export interface ModelOptions {
  /** Generator for the initial weights (default: the global one). */
  generator?: Generator;
  backend?: Backend | string;
}

/**
 * Conv2d (with bias, padding kernelSize // 2 as needle's Conv), BatchNorm2d, ReLU: needle hw4's
 * ConvBN. Parameters `conv.weight`, `conv.bias`, `bn.weight`, `bn.bias` (+ the bn buffers).
 */
export class ConvBN extends Module {
  conv: Conv2d;
  bn: BatchNorm2d;
  relu: ReLU;

  constructor(inChannels: number, outChannels: number, kernelSize: number, stride: number, options: ModelOptions = {}) {
    super();
    checkPositiveInt('ConvBN', 'kernelSize', kernelSize);
    this.conv = new Conv2d(inChannels, outChannels, kernelSize, { stride, padding: Math.floor(kernelSize / 2), ...options });
    this.bn = new BatchNorm2d(outChannels, { backend: options.backend });
    this.relu = new ReLU();
  }

  forward(x: Tensor): Tensor {
    // The ReLU runs inside the batch norm's fused op (the same values as relu(bn(x))).
    return this.bn.forwardActivated(this.conv.call(x), 'relu');
  }
}

/**
 * needle hw4's ResNet9 for 32x32 RGB images: [N, 3, 32, 32] -> logits [N, 10].
 *
 *     ConvBN(3, 16, k7, s4)       -> [N, 16, 8, 8]
 *     ConvBN(16, 32, k3, s2)      -> [N, 32, 4, 4]
 *     Residual(ConvBN(32, 32, k3, s1), ConvBN(32, 32, k3, s1))
 *     ConvBN(32, 64, k3, s2)      -> [N, 64, 2, 2]
 *     ConvBN(64, 128, k3, s2)     -> [N, 128, 1, 1]
 *     Residual(ConvBN(128, 128, k3, s1), ConvBN(128, 128, k3, s1))
 *     Flatten, Linear(128, 128), ReLU, Linear(128, 10)
 *
 * Every convolution pads by kernelSize // 2. The layers sit in `model` (a Sequential), so parameter
 * names are needle's and a PyTorch module of the same structure: `model.0.conv.weight`,
 * `model.2.fn.1.bn.bias`, `model.7.weight`, ...
 */
export class ResNet9 extends Module {
  model: Sequential;

  constructor(options: ModelOptions = {}) {
    super();
    const cb = (a: number, b: number, k: number, s: number): ConvBN => new ConvBN(a, b, k, s, options);
    this.model = new Sequential(
      cb(3, 16, 7, 4),
      cb(16, 32, 3, 2),
      new Residual(new Sequential(cb(32, 32, 3, 1), cb(32, 32, 3, 1))),
      cb(32, 64, 3, 2),
      cb(64, 128, 3, 2),
      new Residual(new Sequential(cb(128, 128, 3, 1), cb(128, 128, 3, 1))),
      new Flatten(),
      new Linear(128, 128, options),
      new ReLU(),
      new Linear(128, 10, options),
    );
  }

  forward(x: Tensor): Tensor {
    if (!(x instanceof Tensor)) fail('ResNet9', `expected a Tensor input, got ${typeof x}`);
    if (x.ndim !== 4 || x.shape[1] !== 3 || x.shape[2] !== 32 || x.shape[3] !== 32) {
      fail('ResNet9', `input of shape ${fmt(x.shape)}: expected [N, 3, 32, 32] (CIFAR-10 images, NCHW)`);
    }
    return this.model.call(x);
  }
}

export type SeqModel = 'rnn' | 'lstm' | 'gru' | 'transformer';

export interface LanguageModelOptions extends ModelOptions {
  /** Width of the word embeddings (and of the transformer's model dimension). */
  embeddingSize: number;
  /** Vocabulary size: the embedding's rows and the logits' width. */
  outputSize: number;
  /** Hidden state width of the RNN/LSTM/GRU; the feed-forward width of the transformer layers. */
  hiddenSize: number;
  /** Stacked recurrent or transformer layers (default 1). */
  numLayers?: number;
  /** Default 'rnn', as needle's. */
  seqModel?: SeqModel;
  /** Longest sequence: the rows of the transformer's learned position table (default 40); unused by the recurrent models. */
  seqLen?: number;
  /** Transformer attention heads (default 4; must divide embeddingSize). */
  nhead?: number;
  /** Dropout between recurrent layers, or inside the transformer layers, in training (default 0). */
  dropout?: number;
  /** Transformer feed-forward activation (default 'relu', as needle's). */
  activation?: TransformerActivation;
}

/** The recurrent state a LanguageModel takes and returns: h for rnn/gru, [h, c] for lstm, null for the transformer. */
export type LanguageModelState = Tensor | readonly [Tensor, Tensor] | null;

/**
 * needle hw4's LanguageModel: ids [seqLen, batch] -> [logits [seqLen * batch, outputSize], state].
 *
 * Embedding(outputSize, embeddingSize), then the sequence model over [seqLen, batch, ...] (seq
 * first, as needle and PyTorch's default), then Linear(hidden, outputSize) on every position; the
 * logits' row t * batch + b is position t of column b, the layout of `getBatch`'s flattened targets.
 * - 'rnn' | 'lstm' | 'gru': nn's RNN/LSTM/GRU(embeddingSize, hiddenSize, { numLayers }); `state` is
 *   their initial and final state ([numLayers, batch, hiddenSize], a pair for the LSTM); pass the
 *   returned state back (detached) to carry it across truncated-BPTT windows.
 * - 'transformer': a learned position embedding Embedding(seqLen, embeddingSize) is added to the word
 *   embeddings, then a causal pre-norm Transformer(embeddingSize, nhead, { numLayers, dimFeedforward:
 *   hiddenSize, normFirst, finalNorm }) (needle hw4's layer layout, plus the usual final LayerNorm),
 *   and Linear(embeddingSize, outputSize). It has no state: it returns null and ignores `state`.
 */
export class LanguageModel extends Module {
  readonly seqModelKind: SeqModel;
  readonly embeddingSize: number;
  readonly outputSize: number;
  readonly hiddenSize: number;
  readonly numLayers: number;
  readonly seqLen: number;
  embedding: Embedding;
  positionEmbedding: Embedding | null;
  seqModel: RNN | LSTM | GRU | Transformer;
  linear: Linear;

  constructor(options: LanguageModelOptions) {
    super();
    const op = 'LanguageModel';
    if (options === null || typeof options !== 'object') fail(op, 'expected an options object { embeddingSize, outputSize, hiddenSize, ... }');
    const { embeddingSize, outputSize, hiddenSize } = options;
    checkPositiveInt(op, 'embeddingSize', embeddingSize);
    checkPositiveInt(op, 'outputSize', outputSize);
    checkPositiveInt(op, 'hiddenSize', hiddenSize);
    const numLayers = options.numLayers ?? 1;
    checkPositiveInt(op, 'numLayers', numLayers);
    const seqLen = options.seqLen ?? 40;
    checkPositiveInt(op, 'seqLen', seqLen);
    const kind = options.seqModel ?? 'rnn';
    const dropout = options.dropout ?? 0;
    const o = { generator: options.generator, backend: options.backend };
    this.seqModelKind = kind;
    this.embeddingSize = embeddingSize;
    this.outputSize = outputSize;
    this.hiddenSize = hiddenSize;
    this.numLayers = numLayers;
    this.seqLen = seqLen;
    this.embedding = new Embedding(outputSize, embeddingSize, o);
    this.positionEmbedding = null;
    switch (kind) {
      case 'rnn':
        this.seqModel = new RNN(embeddingSize, hiddenSize, { numLayers, dropout, ...o });
        break;
      case 'lstm':
        this.seqModel = new LSTM(embeddingSize, hiddenSize, { numLayers, dropout, ...o });
        break;
      case 'gru':
        this.seqModel = new GRU(embeddingSize, hiddenSize, { numLayers, dropout, ...o });
        break;
      case 'transformer': {
        const nhead = options.nhead ?? 4;
        checkPositiveInt(op, 'nhead', nhead);
        if (embeddingSize % nhead !== 0) fail(op, `embeddingSize=${embeddingSize} must be divisible by nhead=${nhead}`);
        this.positionEmbedding = new Embedding(seqLen, embeddingSize, o);
        this.seqModel = new Transformer(embeddingSize, nhead, {
          numLayers, dimFeedforward: hiddenSize, dropout, causal: true, normFirst: true, finalNorm: true,
          activation: options.activation ?? 'relu', ...o,
        });
        break;
      }
      default:
        kind satisfies never;
        fail(op, `seqModel must be 'rnn', 'lstm', 'gru' or 'transformer', got ${String(kind)}`);
    }
    this.linear = new Linear(kind === 'transformer' ? embeddingSize : hiddenSize, outputSize, o);
  }

  forward(ids: Tensor | NDArray, state?: LanguageModelState): [Tensor, LanguageModelState] {
    const op = 'LanguageModel';
    if (!(ids instanceof Tensor) && !(ids instanceof NDArray)) fail(op, `expected ids as a Tensor or NDArray, got ${ids === null ? 'null' : typeof ids}`);
    if (ids.ndim !== 2) fail(op, `ids of shape ${fmt(ids.shape)}: expected [seqLen, batch] word ids`);
    const [seqLen, batch] = ids.shape;
    const x = this.embedding.call(ids); // [seqLen, batch, embeddingSize]
    let out: Tensor;
    let next: LanguageModelState;
    const m = this.seqModel;
    if (m instanceof Transformer) {
      if (seqLen > this.seqLen) fail(op, `ids of shape ${fmt(ids.shape)} are longer than seqLen=${this.seqLen}, the rows of the position embedding`);
      const positions = arange(seqLen, undefined, 1, { backend: this.positionEmbedding!.weight.backend });
      let pos: Tensor;
      try {
        pos = this.positionEmbedding!.call(positions); // [seqLen, embeddingSize]
      } finally {
        positions.dispose();
      }
      out = m.call(add(x, expandDims(pos, 1)));
      next = null;
    } else if (m instanceof LSTM) {
      if (state !== undefined && state !== null && !Array.isArray(state)) fail(op, 'the LSTM state must be a pair [h, c]');
      const [o, hc] = m.call(x, (state ?? undefined) as readonly [Tensor, Tensor] | undefined);
      out = o;
      next = hc;
    } else {
      if (state !== undefined && state !== null && !(state instanceof Tensor)) fail(op, `the ${this.seqModelKind.toUpperCase()} state must be a Tensor h`);
      const [o, h] = m.call(x, (state ?? undefined) as Tensor | undefined);
      out = o;
      next = h;
    }
    const width = out.shape[2];
    const logits = this.linear.call(reshape(out, [seqLen * batch, width]));
    return [logits, next];
  }

  override extraRepr(): string {
    return `seqModel=${this.seqModelKind}, embeddingSize=${this.embeddingSize}, hiddenSize=${this.hiddenSize}, outputSize=${this.outputSize}, numLayers=${this.numLayers}`;
  }
}
