export type { HostIndices } from './errors';
export { Module, Parameter, type StateDict, type LoadStateDictOptions, type LoadStateDictResult, type StateDictInput } from './module';
export * as init from './init';
export type { InitOptions, RandomInitOptions, FanOptions, KaimingOptions, Nonlinearity } from './init';
export {
  Identity,
  Linear,
  Flatten,
  ReLU,
  Tanh,
  Sigmoid,
  GELU,
  Softmax,
  LogSoftmax,
  Sequential,
  Residual,
  Dropout,
  type LinearOptions,
} from './layers';
export { CrossEntropyLoss, SoftmaxLoss, MSELoss, type Reduction } from './loss';
export { BatchNorm1d, BatchNorm2d, LayerNorm, LayerNorm1d, type BatchNormOptions, type LayerNormOptions } from './norm';
export { Conv2d, MaxPool2d, AvgPool2d, Embedding, type Conv2dOptions, type Pool2dOptions, type Size2 } from './conv';
export {
  RNNCell,
  LSTMCell,
  GRUCell,
  RNN,
  LSTM,
  GRU,
  type RNNNonlinearity,
  type RecurrentWeights,
  type RNNCellOptions,
  type LSTMCellOptions,
  type GRUCellOptions,
  type RNNOptions,
  type LSTMOptions,
  type GRUOptions,
} from './rnn';
export {
  MultiHeadAttention,
  TransformerLayer,
  Transformer,
  type TransformerActivation,
  type TransformerLayerOptions,
  type TransformerOptions,
  type Mask,
  type MaskType,
  type AttentionCallOptions,
  type MultiHeadAttentionCallOptions,
  type MultiHeadAttentionOptions,
} from './attention';
export {
  ConvBN,
  ResNet9,
  LanguageModel,
  type ModelOptions,
  type SeqModel,
  type LanguageModelOptions,
  type LanguageModelState,
} from './models';
export { torchKey, needleKey, toTorchStateDict, fromTorchStateDict } from './torch-names';
