/**
 * Max pooling with an argmax record, as one primitive over NHWC input (maxPool2d pads and permutes
 * around it). The output is the pooled values [N, Ho, Wo, C], a view of a buffer [2, N, Ho, Wo, C]
 * whose second row holds the window position of each first maximum for the backward (as batch
 * norm keeps its statistics behind its output): the gradient arriving is the pooled values' own, so
 * no zero-filled [2, ...] gradient is assembled for a row nobody reads. Forward, for windows of up
 * to MAX_PROGRAM_WINDOW positions (2x2, 2x3, ...): one program over the output reading each window
 * position through its own strided view of the input; larger windows: the windows gathered once, a
 * max and an argmax reduction, one program packing both. Backward on arrays: where the windows tile
 * the input (stride = kernel size, no dilation: every pooling layer of the usual ConvNets), one
 * program writing each input element's gradient (g where its position was the window's argmax,
 * else 0) through a view [N, Ho, kh, Wo, kw, C] of the input gradient; otherwise one program per
 * window position adding that into a view of the zero-filled input gradient. No masks, counts or
 * col2im temporaries either way. In Tensor ops under createGraph (col2im of g times the constant
 * one-hot mask, which is linear in g, so second derivatives are exact).
 *
 * Ties go to the first maximum of the window (row-major over kh, kw), as PyTorch's MaxPool2d does
 * (the composition this replaces split them evenly, as torch.amax does). Without ties the values
 * and gradients are the composition's bit for bit.
 */
import { defineProgram, elementwise, full, NDArray, tidy, type ElementwiseProgram, type ProgramValue } from '@needle/ndarray';
import { Tensor, constant } from './tensor';
import * as F from './functions';
import { windowCount, type WindowAttrs } from './optable';
import { isGradEnabled } from './grad-mode';

/** The max and the argmax into the output's two rows, in one launch. */
const PACK = defineProgram(2, 0, ([m, k]) => [m, k]);
/** dx_region += (argmax == position) ? g : 0 */
const ROUTE = defineProgram(3, 1, ([region, g, k], [position]) => region.add(k.eq(position).select(g, 0)));
const HOT = defineProgram(2, 0, ([k, position]) => k.eq(position).select(1, 0));
/**
 * dx = (argmax == position) ? g : 0, for windows that tile the input. `+ 0` keeps ROUTE's (and
 * PyTorch's zero-filled `+=`) result where g is -0: 0 + -0 is +0.
 */
const ROUTE_TILED = defineProgram(3, 0, ([g, k, position]) => k.eq(position).select(g, 0).add(0));

/** Window positions 0..kh*kw-1 as [1, 1, kh, 1, kw, 1]: row-major over (kh, kw), as the argmax counts. */
function positions(kh: number, kw: number, backend: NDArray['backend']): NDArray {
  return NDArray.fromData(Float32Array.from({ length: kh * kw }, (_, p) => p), [1, 1, kh, 1, kw, 1], backend);
}

/** The argmax positions stored behind the pooled values `out` (the second row of its buffer). */
function argmaxRow(out: NDArray): NDArray {
  return out.asStrided(out.shape, out.strides, out.offset + out.size);
}

function geometry(shape: readonly number[], a: WindowAttrs) {
  const [n, h, w, c] = shape;
  return { n, h, w, c, ho: windowCount(h, a.kh, a.sh, a.dh), wo: windowCount(w, a.kw, a.sw, a.dw) };
}

/** Windows of at most this many positions are pooled by one program (its steps grow ~8 a position). */
const MAX_PROGRAM_WINDOW = 7;
/**
 * Over [N, Ho, Wo, C] from the window's values v_0..v_{K-1}: two outputs, the max and its position
 * (written into the two rows of the [2, N, Ho, Wo, C] buffer). It walks the window as the max and
 * argmax reductions do: a later value replaces the best only when greater, or when it is NaN and
 * the best is not, so ties (and -0 against +0) keep the first, and a NaN is the result from where it
 * occurs.
 */
const windowPrograms = new Map<number, ElementwiseProgram>();
function windowProgram(K: number): ElementwiseProgram {
  let p = windowPrograms.get(K);
  if (!p) {
    p = defineProgram(K, 0, (v) => {
      let best = v[0];
      let at: ProgramValue | number = 0;
      for (let k = 1; k < K; k++) {
        const take = best.ne(best).select(0, v[k].ne(v[k]).select(1, v[k].gt(best)));
        best = take.select(v[k], best);
        at = take.select(k, at);
      }
      // A one-position window's argmax is 0 everywhere (a constant step; x - x would be NaN at infinities).
      return [best, typeof at === 'number' ? best.eq(best).select(at, at) : at];
    });
    windowPrograms.set(K, p);
  }
  return p;
}

export function maxPoolForward(x: NDArray, a: WindowAttrs): NDArray {
  const { n, h, w, c, ho, wo } = geometry(x.shape, a);
  return tidy(() => {
    const base = x.compact();
    const both = NDArray.empty([2, n, ho, wo, c], x.backend);
    const rows = [both.get(0), both.get(1)];
    if (a.kh * a.kw <= MAX_PROGRAM_WINDOW) {
      const views: NDArray[] = [];
      for (let i = 0; i < a.kh; i++) {
        for (let j = 0; j < a.kw; j++) {
          views.push(base.asStrided([n, ho, wo, c], [h * w * c, a.sh * w * c, a.sw * c, 1], (i * a.dh * w + j * a.dw) * c));
        }
      }
      elementwise(windowProgram(views.length), views, [], { out: rows, writer: 'maxPool2d' });
    } else {
      const windows = base.asStrided([n, ho, wo, c, a.kh, a.kw], [h * w * c, a.sh * w * c, a.sw * c, 1, a.dh * w * c, a.dw * c], 0);
      const cols = windows.compact().reshape([n, ho, wo, c, a.kh * a.kw]);
      elementwise(PACK, [cols.max(-1), cols.argmax(-1)], [], { out: rows, writer: 'maxPool2d' });
    }
    return rows[0];
  });
}

export function maxPoolBackward(g: Tensor, x: Tensor, out: Tensor, a: WindowAttrs): Tensor {
  const { n, h, w, c, ho, wo } = geometry(x.shape, a);
  if (!isGradEnabled()) {
    // Windows that tile the input (each element in at most one window) write every element they
    // cover; the fill is needed only for rows and columns past the last window, or where windows
    // overlap or leave gaps and each position adds into the zeros.
    const tiles = a.sh === a.kh && a.sw === a.kw && a.dh === 1 && a.dw === 1;
    const covered = tiles && h === ho * a.kh && w === wo * a.kw;
    const dx = covered ? NDArray.empty([n, h, w, c], x.backend) : full([n, h, w, c], 0, { backend: x.backend });
    try {
      tidy(() => {
        const k = argmaxRow(out.data);
        if (tiles) {
          const view = dx.asStrided([n, ho, a.kh, wo, a.kw, c], [h * w * c, a.kh * w * c, w * c, a.kw * c, c, 1], 0);
          const perWindow = (t: NDArray) => t.reshape([n, ho, 1, wo, 1, c]);
          elementwise(ROUTE_TILED, [perWindow(g.data), perWindow(k), positions(a.kh, a.kw, x.backend)], [], { out: [view], writer: 'maxPool2d' });
          return;
        }
        for (let i = 0; i < a.kh; i++) {
          for (let j = 0; j < a.kw; j++) {
            const region = dx.asStrided([n, ho, wo, c], [h * w * c, a.sh * w * c, a.sw * c, 1], (i * a.dh * w + j * a.dw) * c);
            elementwise(ROUTE, [region, g.data, k], [i * a.kw + j], { out: [region], writer: 'maxPool2d' });
          }
        }
      });
    } catch (e) {
      dx.dispose();
      throw e;
    }
    return new Tensor(dx);
  }
  const hot = tidy(() => {
    const k = argmaxRow(out.data).reshape([n, ho, wo, 1, 1, c]);
    return elementwise(HOT, [k, positions(a.kh, a.kw, x.backend).reshape([1, 1, 1, a.kh, a.kw, 1])])[0];
  });
  const cols = F.mul(F.broadcastTo(F.reshape(g, [n, ho, wo, 1, 1, c]), hot.shape), constant(hot));
  return F.col2im(cols, a, x.shape);
}
