/**
 * Pieces of elementwise programs that several fused ops share, so each formula exists once and every
 * op that uses it computes the same float32 values step by step.
 */
import { defineProgram, type ProgramValue } from '@needle/ndarray';

/** sigmoid(x) = (tanh(x / 2) + 1) / 2: bounded everywhere, unlike 1 / (1 + exp(-x)). */
export const sigmoidOf = (x: ProgramValue): ProgramValue => x.mul(0.5).tanh().mul(0.5).add(0.5);

/** 1 - x */
export const oneMinus = (x: ProgramValue): ProgramValue => x.neg().add(1);

/** sigmoid' from the sigmoid's value s: s (1 - s). */
export const sigmoidDerivOf = (s: ProgramValue): ProgramValue => s.mul(oneMinus(s));

// Backward programs of the activations, g times the derivative, shared by the elementwise
// primitives and the fused linear layer.
/** relu: g [a > 0], from the input a (or from the output: relu(a) > 0 exactly where a > 0). */
export const RELU_GRAD = defineProgram(2, 0, ([g, a]) => g.mul(a.gt(0)));
/** tanh: g (1 - y^2), from the output y. */
export const TANH_GRAD = defineProgram(2, 0, ([g, y]) => g.mul(y.mul(y).neg().add(1)));
/** sigmoid: g s (1 - s), from the output s. */
export const SIGMOID_GRAD = defineProgram(2, 0, ([g, s]) => g.mul(sigmoidDerivOf(s)));
