/**
 * The benchmark cases: what is computed, on which inputs, how it is scored and how its result is
 * checked. Inputs are drawn on the host from a seeded generator, so every framework computes on the
 * very same numbers and can be compared elementwise with the needle-cpu reference.
 */
import { Generator } from '@needle/ndarray';

export const CASE_KINDS = ['matmul', 'ewise', 'reduce', 'mlp', 'convnet', 'lstm', 'resnet9', 'lm'] as const;
export type CaseKind = (typeof CASE_KINDS)[number];

export interface CaseSpec {
  /** Unique, human-readable: `matmul-512`, `ewise-1M`, `mlp-784-512-10-b128`. */
  id: string;
  kind: CaseKind;
  /**
   * matmul: [n] (n x n @ n x n); ewise and reduce: [elements];
   * mlp: [batch, inputs, hidden, classes];
   * convnet: [batch, channels, size, c1, c2, classes] (a size x size image; see convnetCase);
   * lstm: [batch, seq, inputs, hidden, classes] (see lstmCase);
   * resnet9: [batch]; lm: [batch, seq, vocab, embedding, hidden] (see resnet9Case, lmCase).
   */
  dims: number[];
}

/** SGD learning rate of the training-step cases (the MLP, the ConvNet and the LSTM). */
export const MLP_LR = 0.1;

export interface Metric {
  /** What one iteration is worth: a throughput numerator (flops or bytes) or 1 step. */
  work: number;
  /** Unit of `work / seconds`, after `scale`. */
  unit: 'GFLOP/s' | 'GB/s' | 'steps/s';
  scale: number;
}

export function metricOf(spec: CaseSpec): Metric {
  switch (spec.kind) {
    case 'matmul': {
      const [n] = spec.dims;
      return { work: 2 * n * n * n, unit: 'GFLOP/s', scale: 1e-9 };
    }
    // c = a + b streams two float32 inputs in and one out.
    case 'ewise':
      return { work: 12 * spec.dims[0], unit: 'GB/s', scale: 1e-9 };
    // sum(a) streams one float32 input; the scalar output is negligible.
    case 'reduce':
      return { work: 4 * spec.dims[0], unit: 'GB/s', scale: 1e-9 };
    case 'mlp':
    case 'convnet':
    case 'lstm':
    case 'resnet9':
    case 'lm':
      return { work: 1, unit: 'steps/s', scale: 1 };
    default:
      return spec.kind satisfies never;
  }
}

function fmtCount(n: number): string {
  if (n >= 1 << 20 && n % (1 << 20) === 0) return `${n / (1 << 20)}M`;
  if (n >= 1 << 10 && n % (1 << 10) === 0) return `${n / (1 << 10)}K`;
  return String(n);
}

export function matmulCase(n: number): CaseSpec {
  return { id: `matmul-${n}`, kind: 'matmul', dims: [n] };
}
export function ewiseCase(n: number): CaseSpec {
  return { id: `ewise-add-${fmtCount(n)}`, kind: 'ewise', dims: [n] };
}
export function reduceCase(n: number): CaseSpec {
  return { id: `reduce-sum-${fmtCount(n)}`, kind: 'reduce', dims: [n] };
}
export function mlpCase(batch: number, inputs: number, hidden: number, classes: number): CaseSpec {
  return { id: `mlp-${inputs}-${hidden}-${classes}-b${batch}`, kind: 'mlp', dims: [batch, inputs, hidden, classes] };
}
/**
 * One SGD step of a small ConvNet on NCHW images, in PyTorch's terms:
 * Conv2d(channels, c1, 3, padding=1) -> ReLU -> MaxPool2d(2) -> Conv2d(c1, c2, 3, padding=1) -> ReLU
 * -> MaxPool2d(2) -> Flatten -> Linear(c2 * (size/4)^2, classes), mean softmax cross-entropy.
 * The default is CIFAR-shaped: a batch of 32 images of 3 x 32 x 32.
 */
export function convnetCase(batch = 32, channels = 3, size = 32, c1 = 16, c2 = 32, classes = 10): CaseSpec {
  if (size % 4 !== 0) throw new Error(`convnetCase: size ${size} must be divisible by 4 (two 2x2 poolings)`);
  return { id: `convnet-${channels}x${size}x${size}-${c1}-${c2}-${classes}-b${batch}`, kind: 'convnet', dims: [batch, channels, size, c1, c2, classes] };
}

/** Kernel size and padding of both convolutions of the ConvNet case ("same" convolutions). */
export const CONVNET_KERNEL = 3;
export const CONVNET_PAD = 1;
/**
 * One SGD step of a 1-layer LSTM classifier, in PyTorch's terms: LSTM(inputs, hidden) over a
 * [seq, batch, inputs] sequence from a zero state, Linear(hidden, classes) on the last time step's
 * output, mean softmax cross-entropy against class labels. The default (batch 32, 20 steps, 32
 * inputs, 128 hidden units) is a small sequence-classification step, tens of ms on needle-wasm.
 */
export function lstmCase(batch = 32, seq = 20, inputs = 32, hidden = 128, classes = 10): CaseSpec {
  return { id: `lstm-${inputs}-${hidden}-${classes}-s${seq}-b${batch}`, kind: 'lstm', dims: [batch, seq, inputs, hidden, classes] };
}

/**
 * One SGD step of needle hw4's ResNet9 (@needle/nn's ResNet9, in training mode: batch statistics,
 * running statistics updated) on a CIFAR-shaped batch of [3, 32, 32] images, mean softmax
 * cross-entropy; the parameters as `resnet9Params` lists them.
 */
export function resnet9Case(batch = 32): CaseSpec {
  return { id: `resnet9-b${batch}`, kind: 'resnet9', dims: [batch] };
}

/**
 * ResNet9's ConvBN blocks in order (`model.<at>`): Conv2d(cin, cout, k, stride, padding k // 2),
 * BatchNorm2d(cout), ReLU. `2.fn.*` and `5.fn.*` are the two residual branches (x + fn(x)); then
 * Flatten, Linear(128, 128) (`model.7`), ReLU, Linear(128, 10) (`model.9`). The peers of needle's
 * step build the same network from this list.
 */
export const RESNET9_BLOCKS: ReadonlyArray<{ at: string; cin: number; cout: number; k: number; stride: number }> = [
  { at: '0', cin: 3, cout: 16, k: 7, stride: 4 },
  { at: '1', cin: 16, cout: 32, k: 3, stride: 2 },
  { at: '2.fn.0', cin: 32, cout: 32, k: 3, stride: 1 },
  { at: '2.fn.1', cin: 32, cout: 32, k: 3, stride: 1 },
  { at: '3', cin: 32, cout: 64, k: 3, stride: 2 },
  { at: '4', cin: 64, cout: 128, k: 3, stride: 2 },
  { at: '5.fn.0', cin: 128, cout: 128, k: 3, stride: 1 },
  { at: '5.fn.1', cin: 128, cout: 128, k: 3, stride: 1 },
];
/** BatchNorm2d's epsilon (PyTorch's and needle's default). */
export const BN_EPS = 1e-5;

/**
 * ResNet9's parameters in PyTorch's (and needle's) order and names: each ConvBN's conv weight
 * [out, in, k, k] and bias, its BatchNorm2d weight and bias, then the two Linears [out, in].
 */
export function resnet9Params(): Array<{ name: string; shape: number[]; init: 'fanIn' | 'ones' | 'zeros'; fanIn: number }> {
  const out: Array<{ name: string; shape: number[]; init: 'fanIn' | 'ones' | 'zeros'; fanIn: number }> = [];
  for (const { at, cin, cout, k } of RESNET9_BLOCKS) {
    const fanIn = cin * k * k;
    out.push({ name: `model.${at}.conv.weight`, shape: [cout, cin, k, k], init: 'fanIn', fanIn });
    out.push({ name: `model.${at}.conv.bias`, shape: [cout], init: 'fanIn', fanIn });
    out.push({ name: `model.${at}.bn.weight`, shape: [cout], init: 'ones', fanIn });
    out.push({ name: `model.${at}.bn.bias`, shape: [cout], init: 'zeros', fanIn });
  }
  for (const [at, cin, cout] of [['7', 128, 128], ['9', 128, 10]] as const) {
    out.push({ name: `model.${at}.weight`, shape: [cout, cin], init: 'fanIn', fanIn: cin });
    out.push({ name: `model.${at}.bias`, shape: [cout], init: 'fanIn', fanIn: cin });
  }
  return out;
}

/**
 * One SGD step of needle hw4's LanguageModel with an LSTM (@needle/nn's LanguageModel: Embedding,
 * 1-layer LSTM, Linear to the vocabulary) over [seq, batch] word ids from a zero state, mean softmax
 * cross-entropy of the logits [seq * batch, vocab] against the next words. The default is a small
 * word model: vocabulary 1000, embedding 64, hidden 128, 32 steps of 16 streams.
 */
export function lmCase(batch = 16, seq = 32, vocab = 1000, embedding = 64, hidden = 128): CaseSpec {
  return { id: `lm-lstm-v${vocab}-e${embedding}-h${hidden}-s${seq}-b${batch}`, kind: 'lm', dims: [batch, seq, vocab, embedding, hidden] };
}

/** The LanguageModel case's parameters in PyTorch's order, with their shapes. */
export function lmParams(spec: CaseSpec): Array<{ name: string; shape: number[] }> {
  const [, , vocab, emb, hidden] = spec.dims;
  return [
    { name: 'embedding.weight', shape: [vocab, emb] },
    { name: 'seq_model.weight_ih_l0', shape: [4 * hidden, emb] },
    { name: 'seq_model.weight_hh_l0', shape: [4 * hidden, hidden] },
    { name: 'seq_model.bias_ih_l0', shape: [4 * hidden] },
    { name: 'seq_model.bias_hh_l0', shape: [4 * hidden] },
    { name: 'linear.weight', shape: [vocab, hidden] },
    { name: 'linear.bias', shape: [vocab] },
  ];
}

export interface SuiteOptions {
  /** Include the 2048 matmul (slow on the CPU backends). */
  large?: boolean;
  /** Tiny sizes for the smoke test. */
  tiny?: boolean;
}

/** Every case of a full run, in the order they are measured. */
export function allCases(options: SuiteOptions = {}): CaseSpec[] {
  if (options.tiny) {
    return [matmulCase(16), ewiseCase(1000), reduceCase(1000), mlpCase(4, 12, 8, 3), convnetCase(2, 3, 8, 4, 6, 5), lstmCase(2, 3, 4, 5, 3), resnet9Case(2), lmCase(2, 3, 7, 4, 5)];
  }
  const matmuls = [128, 256, 512, 1024, ...(options.large ? [2048] : [])];
  const M = 1 << 20;
  return [
    ...matmuls.map(matmulCase),
    ewiseCase(M),
    ewiseCase(16 * M),
    reduceCase(M),
    reduceCase(16 * M),
    mlpCase(128, 784, 512, 10),
    convnetCase(),
    lstmCase(),
    resnet9Case(),
    lmCase(),
  ];
}

/** Deterministic inputs of a case (the same seed gives the same arrays in every process). */
export function makeInputs(spec: CaseSpec, seed = 1234): Float32Array[] {
  const g = new Generator(seed);
  const uniform = (n: number, lo: number, hi: number) => g.fillUniform(new Float32Array(n), lo, hi);
  switch (spec.kind) {
    case 'matmul': {
      const [n] = spec.dims;
      return [uniform(n * n, -1, 1), uniform(n * n, -1, 1)];
    }
    case 'ewise':
      return [uniform(spec.dims[0], -1, 1), uniform(spec.dims[0], -1, 1)];
    // Zero-mean data keeps the partial sums small, so float32 summation orders agree closely.
    case 'reduce':
      return [uniform(spec.dims[0], -1, 1)];
    case 'mlp': {
      const [batch, inputs, hidden, classes] = spec.dims;
      const x = uniform(batch * inputs, 0, 1);
      // One-hot labels are passed as float32, so no framework needs an integer dtype path.
      const y = new Float32Array(batch * classes);
      for (let i = 0; i < batch; i++) y[i * classes + g.randint(0, classes)] = 1;
      const s1 = 1 / Math.sqrt(inputs);
      const s2 = 1 / Math.sqrt(hidden);
      return [x, y, uniform(inputs * hidden, -s1, s1), uniform(hidden, -s1, s1), uniform(hidden * classes, -s2, s2), uniform(classes, -s2, s2)];
    }
    case 'convnet': {
      const [batch, channels, size, c1, c2, classes] = spec.dims;
      const k = CONVNET_KERNEL;
      // Zero-mean pixels, like normalised CIFAR images.
      const x = uniform(batch * channels * size * size, -1, 1);
      // Class indices (as float32), which torch's and needle's cross-entropy take directly; tfjs
      // and jax-js turn them into one-hot rows on the host before timing.
      const labels = new Float32Array(batch);
      for (let i = 0; i < batch; i++) labels[i] = g.randint(0, classes);
      const flat = c2 * (size / 4) * (size / 4);
      // PyTorch's default init bounds (±1/sqrt(fanIn)), in PyTorch's layouts: conv [out, in, k, k],
      // linear [out, in].
      const s1 = 1 / Math.sqrt(channels * k * k);
      const s2 = 1 / Math.sqrt(c1 * k * k);
      const s3 = 1 / Math.sqrt(flat);
      return [
        x,
        labels,
        uniform(c1 * channels * k * k, -s1, s1),
        uniform(c1, -s1, s1),
        uniform(c2 * c1 * k * k, -s2, s2),
        uniform(c2, -s2, s2),
        uniform(classes * flat, -s3, s3),
        uniform(classes, -s3, s3),
      ];
    }
    case 'lstm': {
      const [batch, seq, nIn, hidden, classes] = spec.dims;
      // PyTorch's default layout (seq first) and its init bounds: every LSTM weight and bias
      // uniform on ±1/sqrt(hidden), the Linear on ±1/sqrt(fanIn) = ±1/sqrt(hidden) as well.
      const x = uniform(seq * batch * nIn, -1, 1);
      const labels = new Float32Array(batch);
      for (let i = 0; i < batch; i++) labels[i] = g.randint(0, classes);
      const s = 1 / Math.sqrt(hidden);
      return [
        x,
        labels,
        uniform(4 * hidden * nIn, -s, s),
        uniform(4 * hidden * hidden, -s, s),
        uniform(4 * hidden, -s, s),
        uniform(4 * hidden, -s, s),
        uniform(classes * hidden, -s, s),
        uniform(classes, -s, s),
      ];
    }
    case 'resnet9': {
      const [batch] = spec.dims;
      const x = uniform(batch * 3 * 32 * 32, -1, 1);
      const labels = new Float32Array(batch);
      for (let i = 0; i < batch; i++) labels[i] = g.randint(0, 10);
      // PyTorch's default init: convolutions and Linears uniform on ±1/sqrt(fanIn), BatchNorm 1 and 0.
      const params = resnet9Params().map(({ shape, init, fanIn }) => {
        const n = shape.reduce((p, d) => p * d, 1);
        if (init === 'ones') return new Float32Array(n).fill(1);
        if (init === 'zeros') return new Float32Array(n);
        return uniform(n, -1 / Math.sqrt(fanIn), 1 / Math.sqrt(fanIn));
      });
      return [x, labels, ...params];
    }
    case 'lm': {
      const [batch, seq, vocab, , hidden] = spec.dims;
      // Word ids (as float32) and the next word of each position (the targets getBatch gives).
      const ids = new Float32Array(seq * batch);
      const targets = new Float32Array(seq * batch);
      for (let i = 0; i < seq * batch; i++) ids[i] = g.randint(0, vocab);
      for (let i = 0; i < seq * batch; i++) targets[i] = i + batch < seq * batch ? ids[i + batch] : g.randint(0, vocab);
      const s = 1 / Math.sqrt(hidden);
      // The embedding uniform on ±1 (torch draws N(0, 1); a bounded draw keeps the check tight).
      return [ids, targets, ...lmParams(spec).map(({ name, shape }) => {
        const n = shape.reduce((p, d) => p * d, 1);
        return name === 'embedding.weight' ? uniform(n, -1, 1) : uniform(n, -s, s);
      })];
    }
    default:
      return spec.kind satisfies never;
  }
}

/** Names of the inputs, in makeInputs order (for the Python worker and error messages). */
export function inputNames(spec: CaseSpec): string[] {
  switch (spec.kind) {
    case 'matmul':
    case 'ewise':
      return ['a', 'b'];
    case 'reduce':
      return ['a'];
    case 'mlp':
      return ['x', 'y', 'w1', 'b1', 'w2', 'b2'];
    case 'convnet':
      return ['x', 'labels', 'conv1.weight', 'conv1.bias', 'conv2.weight', 'conv2.bias', 'fc.weight', 'fc.bias'];
    case 'lstm':
      return ['x', 'labels', 'lstm.weight_ih_l0', 'lstm.weight_hh_l0', 'lstm.bias_ih_l0', 'lstm.bias_hh_l0', 'fc.weight', 'fc.bias'];
    case 'resnet9':
      return ['x', 'labels', ...resnet9Params().map((p) => p.name)];
    case 'lm':
      return ['ids', 'targets', ...lmParams(spec).map((p) => p.name)];
    default:
      return spec.kind satisfies never;
  }
}

/**
 * Tolerance of the correctness check: |out - ref| <= atol + rtol * |ref| elementwise.
 * Scaled by how much float32 rounding the computation accumulates in any summation order.
 */
export function toleranceOf(spec: CaseSpec, inputs: Float32Array[]): { atol: number; rtol: number } {
  switch (spec.kind) {
    case 'matmul':
      // k products of |x| < 1 summed in different orders (blocked, SIMD, FMA): error ~ k * eps.
      return { atol: 4e-6 * spec.dims[0], rtol: 1e-4 };
    case 'ewise':
      return { atol: 1e-6, rtol: 1e-6 };
    case 'reduce': {
      // Summation error is bounded by a multiple of eps * sum|x|, whatever the order (pairwise,
      // blocked, sequential); 1e-5 * sum|x| is loose enough for all of them and still catches a
      // dropped or doubled block.
      let abs = 0;
      for (const v of inputs[0]) abs += Math.abs(v);
      return { atol: 1e-5 * abs + 1e-6, rtol: 0 };
    }
    case 'mlp':
      return { atol: 1e-4, rtol: 1e-3 };
    // The loss and the updated weights (|w| < 0.2; lr * |grad| up to ~1e-2). Frameworks' float32
    // results differ from the float64 reference by < 1e-6 (measured), so this leaves a wide margin,
    // while most single updates exceed it: a missing or wrong gradient (a transposed kernel, a
    // misrouted pooling gradient) fails the check (test/convnet-reference.test.ts makes sure).
    // The same holds for the LSTM step: float32 rounding through 20 recurrent steps stays far below
    // 1e-5 (test/lstm-reference.test.ts checks that a wrong or missing update fails).
    case 'convnet':
    case 'lstm':
      return { atol: 1e-5, rtol: 1e-4 };
    // Eight convolutions and batch norms in float32: frameworks differ from each other by up to
    // ~1e-5 relative in the loss and the gradients' scale (PyTorch's own float32 is that far from
    // float64; see @needle/nn's model fixtures), so the updates (lr * grad) are checked at 1e-4.
    case 'resnet9':
      return { atol: 1e-4, rtol: 1e-3 };
    case 'lm':
      return { atol: 1e-5, rtol: 1e-4 };
    default:
      return spec.kind satisfies never;
  }
}

export interface CheckResult {
  ok: boolean;
  /** Largest |out - ref| seen. */
  maxAbsErr: number;
  /** Human-readable reason when not ok. */
  detail?: string;
}

export function compareOutputs(out: Float32Array, ref: Float32Array, tol: { atol: number; rtol: number }): CheckResult {
  if (out.length !== ref.length) {
    return { ok: false, maxAbsErr: Infinity, detail: `output has ${out.length} elements, the reference ${ref.length}` };
  }
  let maxAbsErr = 0;
  let worst = -1;
  for (let i = 0; i < ref.length; i++) {
    const d = Math.abs(out[i] - ref[i]);
    // NaN compares false against everything: count it as a failure explicitly.
    if (Number.isNaN(d) || d > tol.atol + tol.rtol * Math.abs(ref[i])) {
      if (worst < 0 || !(d <= maxAbsErr)) worst = i;
    }
    if (!(d <= maxAbsErr)) maxAbsErr = Number.isNaN(d) ? Infinity : Math.max(maxAbsErr, d);
  }
  if (worst >= 0) {
    return { ok: false, maxAbsErr, detail: `element ${worst}: got ${out[worst]}, reference ${ref[worst]} (atol ${tol.atol}, rtol ${tol.rtol})` };
  }
  return { ok: true, maxAbsErr };
}
