import { checkShape, describeValue, fail, formatShape } from '@needle/ndarray';

/**
 * A sample's array on the host: row-major float32 data and its shape. Datasets and transforms work
 * on these so that a batch can be assembled in one host buffer and uploaded to the backend once.
 */
export interface HostArray {
  readonly data: Float32Array;
  readonly shape: readonly number[];
}

/** One field of a sample: an array, or a scalar (a class index, a regression target). */
export type SampleField = HostArray | number;

/** What a dataset the DataLoader can batch returns: a tuple of fields, e.g. [image, label]. */
export type Sample = readonly SampleField[];

/** Build a HostArray, checking that the data length matches the shape. */
export function hostArray(data: Float32Array, shape: readonly number[]): HostArray {
  if (!(data instanceof Float32Array)) fail('hostArray', `expected the data as a Float32Array, got ${describeValue(data)}`);
  let size = 1;
  for (const d of checkShape('hostArray', shape)) size *= d;
  if (data.length !== size) {
    fail('hostArray', `data has ${data.length} elements but shape ${formatShape(shape)} needs ${size}`);
  }
  return { data, shape: Object.freeze([...shape]) };
}

export function isHostArray(v: unknown): v is HostArray {
  return typeof v === 'object' && v !== null && (v as HostArray).data instanceof Float32Array && Array.isArray((v as HostArray).shape);
}
