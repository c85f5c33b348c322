/**
 * Host-side layout changes for the training-step cases. The case's inputs and the reference output use
 * PyTorch's layouts (NCHW images, conv weights [out, in, kh, kw], linear weights [out, in] over an
 * NCHW flatten). tfjs computes in NHWC and jax-js keeps dense kernels as [in, out], so their engines
 * convert the seeded inputs before timing and their updated weights back after it; the arithmetic
 * each framework does is then the same as everyone else's. None of this runs inside a timed step.
 */

/** A permutation of a dense row-major array: `out[j] = a[i]` where out's axes are `perm` of a's. */
export function permuteArray(a: Float32Array, shape: number[], perm: number[]): Float32Array {
  const rank = shape.length;
  const outShape = perm.map((p) => shape[p]);
  const inStrides = new Array<number>(rank);
  let s = 1;
  for (let d = rank - 1; d >= 0; d--) {
    inStrides[d] = s;
    s *= shape[d];
  }
  // Stride in the input of each output axis.
  const strideOf = perm.map((p) => inStrides[p]);
  const out = new Float32Array(a.length);
  const idx = new Array<number>(rank).fill(0);
  let src = 0;
  for (let j = 0; j < out.length; j++) {
    out[j] = a[src];
    // Odometer increment over the output's axes, moving `src` by the matching input strides.
    for (let d = rank - 1; d >= 0; d--) {
      idx[d]++;
      src += strideOf[d];
      if (idx[d] < outShape[d]) break;
      src -= strideOf[d] * outShape[d];
      idx[d] = 0;
    }
  }
  return out;
}

/** [classes, c, h, w] (PyTorch Linear weight over an NCHW flatten) -> [h, w, c, classes] (NHWC flatten, [in, out]). */
export function linearToHwcIn(w: Float32Array, classes: number, c: number, h: number, wd: number): Float32Array {
  return permuteArray(w, [classes, c, h, wd], [2, 3, 1, 0]);
}

/** The inverse of linearToHwcIn. */
export function linearFromHwcIn(w: Float32Array, classes: number, c: number, h: number, wd: number): Float32Array {
  return permuteArray(w, [h, wd, c, classes], [3, 2, 0, 1]);
}

/** Class indices (as float32) -> one-hot rows [labels.length, classes], for losses written against one-hot targets. */
export function oneHotRows(labels: Float32Array, classes: number): Float32Array {
  const out = new Float32Array(labels.length * classes);
  labels.forEach((label, i) => (out[i * classes + label] = 1));
  return out;
}
