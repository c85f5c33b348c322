/**
 * Pieces of elementwise programs that several fused ops share, so each formula exists once and every
 * op that uses it computes the same float32 values step by step.
 */
import type { ProgramValue } from '@needle/ndarray';

/** sigmoid(x) = (tanh(x / 2) + 1) / 2: bounded everywhere, unlike 1 / (1 + exp(-x)). */
export const sigmoidOf = (x: ProgramValue): ProgramValue => x.mul(0.5).tanh().mul(0.5).add(0.5);

/** 1 - x */
export const oneMinus = (x: ProgramValue): ProgramValue => x.neg().add(1);

/** sigmoid' from the sigmoid's value s: s (1 - s). */
export const sigmoidDerivOf = (s: ProgramValue): ProgramValue => s.mul(oneMinus(s));
