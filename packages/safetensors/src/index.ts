export { DTYPES, type SafetensorsDType, type RawData } from './dtypes';
export { MAX_HEADER_BYTES, type ParsedHeader, type TensorEntry } from './header';
export { encode, decode, decodeHeader, type HostTensor, type Metadata, type Decoded, type DecodeOptions } from './codec';
export { save, load, type ArrayOrTensor, type LoadOptions, type SaveOptions } from './arrays';
export {
  saveCheckpoint,
  loadCheckpoint,
  isStateful,
  type Stateful,
  type CheckpointParts,
  type LoadCheckpointOptions,
  type LoadedCheckpoint,
} from './checkpoint';
export { toBlob, writeToOPFS, readFromOPFS, removeFromOPFS, type SafetensorsSource } from './sources';
