/**
 * Max pooling with an argmax record, as one primitive over NHWC input (maxPool2d pads and permutes
 * around it). Forward: the windows gathered once, a max and an argmax reduction, one program packing
 * both into the output [2, N, Ho, Wo, C] (row 0 the pooled values, row 1 the window position of the
 * first maximum, a workspace whose gradient is ignored). Backward on arrays: where the windows tile
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
import { defineProgram, elementwise, full, NDArray, tidy } from '@needle/ndarray';
import { Tensor, constant } from './tensor';
import * as F from './functions';
import { windowCount, type WindowAttrs } from './optable';
import { isGradEnabled } from './grad-mode';

/** Row 0 the max, row 1 the argmax (the output's two rows in one program: outputs may not share a buffer). */
const PACK = defineProgram(3, 0, ([row, m, k]) => row.eq(0).select(m, k));
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

function geometry(shape: readonly number[], a: WindowAttrs) {
  const [n, h, w, c] = shape;
  return { n, h, w, c, ho: windowCount(h, a.kh, a.sh, a.dh), wo: windowCount(w, a.kw, a.sw, a.dw) };
}

export function maxPoolForward(x: NDArray, a: WindowAttrs): NDArray {
  const { n, h, w, c, ho, wo } = geometry(x.shape, a);
  return tidy(() => {
    const base = x.compact();
    const windows = base.asStrided([n, ho, wo, c, a.kh, a.kw], [h * w * c, a.sh * w * c, a.sw * c, 1, a.dh * w * c, a.dw * c], 0);
    const cols = windows.compact().reshape([n, ho, wo, c, a.kh * a.kw]);
    const row = NDArray.fromData(new Float32Array([0, 1]), [2, 1, 1, 1, 1], x.backend);
    return elementwise(PACK, [row, cols.max(-1), cols.argmax(-1)])[0];
  });
}

export function maxPoolBackward(g: Tensor, x: Tensor, out: Tensor, a: WindowAttrs): Tensor {
  const { n, h, w, c, ho, wo } = geometry(x.shape, a);
  if (!isGradEnabled()) {
    if (a.sh === a.kh && a.sw === a.kw && a.dh === 1 && a.dw === 1) {
      // Windows tile the input: each element belongs to at most one window. Rows and columns
      // past the last window (floor division) get 0 from the fill; every other element is written.
      const tiled = h === ho * a.kh && w === wo * a.kw;
      const dx = tiled ? NDArray.empty([n, h, w, c], x.backend) : full([n, h, w, c], 0, { backend: x.backend });
      try {
        tidy(() => {
          const view = dx.asStrided([n, ho, a.kh, wo, a.kw, c], [h * w * c, a.kh * w * c, w * c, a.kw * c, c, 1], 0);
          const perWindow = (t: NDArray) => t.reshape([n, ho, 1, wo, 1, c]);
          elementwise(ROUTE_TILED, [perWindow(g.data.get(0)), perWindow(out.data.get(1)), positions(a.kh, a.kw, x.backend)], [], { out: [view], writer: 'maxPool2d' });
        });
      } catch (e) {
        dx.dispose();
        throw e;
      }
      return new Tensor(dx);
    }
    const dx = full([n, h, w, c], 0, { backend: x.backend });
    tidy(() => {
      const g0 = g.data.get(0);
      const k = out.data.get(1);
      for (let i = 0; i < a.kh; i++) {
        for (let j = 0; j < a.kw; j++) {
          const region = dx.asStrided([n, ho, wo, c], [h * w * c, a.sh * w * c, a.sw * c, 1], (i * a.dh * w + j * a.dw) * c);
          elementwise(ROUTE, [region, g0, k], [i * a.kw + j], { out: [region], writer: 'maxPool2d' });
        }
      }
    });
    return new Tensor(dx);
  }
  const hot = tidy(() => {
    const k = out.data.get(1).reshape([n, ho, wo, 1, 1, c]);
    return elementwise(HOT, [k, positions(a.kh, a.kw, x.backend).reshape([1, 1, 1, a.kh, a.kw, 1])])[0];
  });
  const cols = F.mul(F.broadcastTo(F.reshape(F.getitem(g, 0), [n, ho, wo, 1, 1, c]), hot.shape), constant(hot));
  return F.col2im(cols, a, x.shape);
}
