export {
  BINARY_OPS,
  UNARY_OPS,
  REDUCE_OPS,
  PROGRAM_REDUCE_OPS,
  KERNEL_FAMILIES,
  PROGRAM_LIMITS,
  applyBinary,
  applyUnary,
  canReadSync,
  isRowIndex,
  type Backend,
  type BackendStats,
  type BinaryOp,
  type DeviceBuffer,
  type ElementwiseProgram,
  type KernelFamily,
  type LayoutSupport,
  type OperandLayout,
  type ProgramLayouts,
  type ProgramStep,
  type MatmulSpec,
  type MatmulEpilogue,
  type ProgramReduceOp,
  type MemoryInfo,
  type ReduceOp,
  type StridedLayout,
  type UnaryOp,
} from './backend';
export { defineProgram, elementwise, elementwiseUnfused, checkProgram, isRowIndexValue, ProgramValue, type ElementwiseOptions } from './ops/program';
export { StatsCounter, instrumentBackend, statsDiff } from './stats';
export { NeedleError, fail, formatShape } from './errors';
export { NDArray, type ArrayLike, type DType, type NestedArray } from './ndarray';
export { slice, type Index, type Slice } from './indexing';
export {
  array,
  arange,
  eye,
  full,
  fullLike,
  ones,
  onesLike,
  rand,
  randn,
  zeros,
  zerosLike,
  type CreationOptions,
  type RandomOptions,
} from './creation';
export { add, sub, mul, div, pow, maximum, minimum, eq, ne, ge, gt, le, lt, where, matmul } from './functions';
export { concatenate, stack, split, splitSizes, unstack, pad, checkPadWidth, dilate, undilate } from './ops/join';
export { matmulBatchShape, type MatmulOptions, type MatmulEpilogueOptions } from './ops/matmul';
export { reduceProgram, reduceProgramUnfused, logsumexp, type ReduceProgramOptions } from './ops/reduce';
export { indexSelect, indexAddInto, indexedShape, gather, oneHot, flatIndicesAlong, gatherRowsUnfused, MAX_FLAT_GATHER, type IndexSelectOptions } from './ops/rows';
export { checkBoolean, checkDType, checkInteger, checkNumber, checkOptions, describeValue, type NumberRule } from './check';
export {
  registerBackend,
  getBackend,
  initBackend,
  setBackend,
  setDefaultBackend,
  defaultBackend,
  listBackends,
  resolveBackend,
  type BackendFactory,
} from './registry';
export {
  tidy,
  scope,
  keep,
  disposeOnError,
  track,
  trackWith,
  untrack,
  Scope,
  OWNED_ARRAYS,
  DEPENDENCIES,
  ON_KEPT,
  Storage,
  type Disposable,
  type HasOwnedArrays,
  type HasDependencies,
  type ScopeOptions,
} from './memory';
export { Generator, manualSeed, defaultGenerator, type GeneratorState } from './random';
export { broadcastShapes, checkShape, compactStrides, shapeSize, normalizeAxis, normalizeAxes, type Shape } from './shape';
