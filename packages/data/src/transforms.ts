import { checkInteger, checkNumber, checkOptions, defaultGenerator, describeValue, fail, formatShape, Generator } from '@needle/ndarray';
import { hostArray, isHostArray, type HostArray } from './host';

/**
 * A per-sample transform on host data. Images are HW, CHW or NCHW (the last two axes are always
 * height and width, so the same transform serves MNIST's [1, 28, 28] and CIFAR's [3, 32, 32]).
 * A transform returns a new HostArray and never modifies its input.
 */
export interface Transform {
  apply(x: HostArray): HostArray;
}

/** A transform object or a plain function of the same shape. */
export type TransformLike = Transform | ((x: HostArray) => HostArray);

export interface RandomTransformOptions {
  /** Generator to draw from (wins over `seed`; default: @needle/ndarray's global generator). */
  generator?: Generator;
  /** Seed for a private generator. */
  seed?: number;
}

/** Apply a transform object or function. */
export function applyTransform(t: TransformLike, x: HostArray): HostArray {
  return typeof t === 'function' ? t(x) : t.apply(x);
}

/** Apply transforms in order (torchvision's Compose). */
export class Compose implements Transform {
  readonly transforms: readonly TransformLike[];
  constructor(transforms: readonly TransformLike[]) {
    this.transforms = [...transforms];
  }
  apply(x: HostArray): HostArray {
    let y = x;
    for (const t of this.transforms) y = applyTransform(t, y);
    return y;
  }
}

interface ImageLayout {
  /** Number of images (N for NCHW, else 1). */
  images: number;
  channels: number;
  height: number;
  width: number;
}

function imageLayout(op: string, x: HostArray): ImageLayout {
  if (!isHostArray(x)) fail(op, 'expected a HostArray {data: Float32Array, shape}');
  const s = x.shape;
  switch (s.length) {
    case 2:
      return { images: 1, channels: 1, height: s[0], width: s[1] };
    case 3:
      return { images: 1, channels: s[0], height: s[1], width: s[2] };
    case 4:
      return { images: s[0], channels: s[1], height: s[2], width: s[3] };
    default:
      return fail(op, `expected an image of shape HW, CHW or NCHW, got shape ${formatShape(s)}`);
  }
}

/**
 * (x - mean[c]) / std[c] per channel c. `mean` and `std` are one number for every channel or one per
 * channel (the channel axis is C of CHW / NCHW; an HW image has one channel).
 */
export class Normalize implements Transform {
  readonly mean: readonly number[];
  readonly std: readonly number[];
  constructor(mean: number | readonly number[], std: number | readonly number[]) {
    const list = (v: number | readonly number[], name: string) => {
      if (typeof v !== 'number' && !Array.isArray(v as unknown)) fail('Normalize', `${name} must be a number or an array of numbers, got ${describeValue(v)}`);
      return typeof v === 'number' ? [v] : [...v];
    };
    this.mean = list(mean, 'mean');
    this.std = list(std, 'std');
    if (this.mean.length === 0 || this.std.length === 0) fail('Normalize', 'mean and std need at least one value');
    this.mean.forEach((m, c) => checkNumber('Normalize', `mean[${c}]`, m));
    this.std.forEach((s, c) => checkNumber('Normalize', `std[${c}]`, s, { above: 0 }));
  }

  apply(x: HostArray): HostArray {
    const { images, channels, height, width } = imageLayout('Normalize', x);
    for (const [name, v] of [['mean', this.mean], ['std', this.std]] as const) {
      if (v.length !== 1 && v.length !== channels) {
        fail('Normalize', `${name} has ${v.length} values but the image of shape ${formatShape(x.shape)} has ${channels} channel(s)`);
      }
    }
    const plane = height * width;
    const out = new Float32Array(x.data.length);
    for (let n = 0; n < images; n++) {
      for (let c = 0; c < channels; c++) {
        const m = this.mean.length === 1 ? this.mean[0] : this.mean[c];
        const s = this.std.length === 1 ? this.std[0] : this.std[c];
        const base = (n * channels + c) * plane;
        for (let i = base; i < base + plane; i++) out[i] = (x.data[i] - m) / s;
      }
    }
    return hostArray(out, x.shape);
  }
}

function generatorOf(options: RandomTransformOptions): () => Generator {
  checkOptions('transform', options);
  if (options.generator !== undefined && !(options.generator instanceof Generator)) fail('transform', `generator must be a Generator, got ${describeValue(options.generator)}`);
  if (options.seed !== undefined) checkNumber('transform', 'seed', options.seed, { integer: true });
  const own = options.generator ?? (options.seed === undefined ? undefined : new Generator(options.seed));
  // Without an own generator, look the global one up at each draw so manualSeed() takes effect.
  return own ? () => own : defaultGenerator;
}

/**
 * Mirror each image left-right with probability p. One draw per image (an NCHW input draws for
 * each of its N images; all channels of an image flip together): `generator.uniform() < p`.
 */
export class RandomFlipHorizontal implements Transform {
  readonly p: number;
  private readonly generator: () => Generator;
  constructor(p = 0.5, options: RandomTransformOptions = {}) {
    checkNumber('RandomFlipHorizontal', 'p', p, { min: 0, max: 1 });
    this.p = p;
    this.generator = generatorOf(options);
  }

  apply(x: HostArray): HostArray {
    const { images, channels, height, width } = imageLayout('RandomFlipHorizontal', x);
    const out = new Float32Array(x.data);
    const g = this.generator();
    const imageSize = channels * height * width;
    for (let n = 0; n < images; n++) {
      if (!(g.uniform() < this.p)) continue;
      for (let row = n * imageSize; row < (n + 1) * imageSize; row += width) {
        for (let w = 0; w < width; w++) out[row + w] = x.data[row + width - 1 - w];
      }
    }
    return hostArray(out, x.shape);
  }
}

/**
 * Zero-pad height and width by `padding` on every side, then cut a random window of `size`
 * (torchvision's RandomCrop). Per image: top = randint(0, Hp - h + 1), then left = randint(0, Wp - w + 1),
 * where Hp, Wp are the padded sizes. The output keeps the layout: [..., h, w].
 */
export class RandomCrop implements Transform {
  readonly size: readonly [number, number];
  readonly padding: number;
  private readonly generator: () => Generator;
  constructor(size: number | readonly [number, number], padding = 0, options: RandomTransformOptions = {}) {
    const pair = typeof size === 'number' ? [size, size] : Array.isArray(size as unknown) && size.length === 2 ? size : null;
    if (pair === null || !pair.every((d) => Number.isInteger(d) && d >= 1)) {
      fail('RandomCrop', `size must be a positive integer or a pair of them, got ${describeValue(size)}`);
    }
    const [h, w] = pair;
    checkInteger('RandomCrop', 'padding', padding);
    this.size = [h, w];
    this.padding = padding;
    this.generator = generatorOf(options);
  }

  apply(x: HostArray): HostArray {
    const { images, channels, height, width } = imageLayout('RandomCrop', x);
    const [h, w] = this.size;
    const p = this.padding;
    const hp = height + 2 * p;
    const wp = width + 2 * p;
    if (h > hp || w > wp) {
      fail('RandomCrop', `crop size [${h}, ${w}] is larger than the padded image [${hp}, ${wp}] (shape ${formatShape(x.shape)}, padding ${p})`);
    }
    const out = new Float32Array(images * channels * h * w);
    const g = this.generator();
    for (let n = 0; n < images; n++) {
      // Offsets of the window in input coordinates (may be negative: inside the zero padding).
      const top = g.randint(0, hp - h + 1) - p;
      const left = g.randint(0, wp - w + 1) - p;
      for (let c = 0; c < channels; c++) {
        const src = (n * channels + c) * height * width;
        const dst = (n * channels + c) * h * w;
        for (let i = 0; i < h; i++) {
          const y = top + i;
          if (y < 0 || y >= height) continue;
          for (let j = 0; j < w; j++) {
            const xx = left + j;
            if (xx >= 0 && xx < width) out[dst + i * w + j] = x.data[src + y * width + xx];
          }
        }
      }
    }
    return hostArray(out, [...x.shape.slice(0, -2), h, w]);
  }
}
