export { hostArray, isHostArray, type HostArray, type Sample, type SampleField } from './host';
export { Dataset, Subset, TensorDataset, randomSplit } from './dataset';
export { DataLoader, collate, type Batch, type DataLoaderOptions, type DataLoaderState } from './dataloader';
export {
  Compose,
  Normalize,
  RandomCrop,
  RandomFlipHorizontal,
  applyTransform,
  type RandomTransformOptions,
  type Transform,
  type TransformLike,
} from './transforms';
export { gunzipIfNeeded, isGzip } from './gzip';
export {
  MNIST_IMAGES_MAGIC,
  MNIST_LABELS_MAGIC,
  parseIdx,
  parseMnistImages,
  parseMnistLabels,
  type IdxArray,
  type IdxData,
  type IdxType,
  type MnistImages,
  type MnistLabels,
} from './idx';
export { FASHION_MNIST_CLASSES, MNISTDataset, loadMNIST, readIdx, type LoadMNISTOptions, type MNISTOptions } from './mnist';
export {
  CIFAR10_CLASSES,
  CIFAR10_IMAGE_BYTES,
  CIFAR10_RECORD_BYTES,
  CIFAR10Dataset,
  loadCIFAR10,
  parseCifar10Batch,
  type CIFAR10Options,
  type Cifar10Batch,
  type LoadCIFAR10Options,
} from './cifar';
export { Corpus, Dictionary, EOS, batchify, decodeUtf8, getBatch, loadPTB, readText, type LoadPTBOptions } from './text';
