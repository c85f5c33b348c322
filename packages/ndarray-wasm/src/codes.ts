import type { BinaryOp, ReduceOp, UnaryOp } from '@needle/ndarray';

// Op numbers understood by assembly/index.ts. Spelled out (not derived from BINARY_OPS' order) so a
// reordering upstream cannot silently change which kernel runs; the switches end in `satisfies never`.

export function binaryCode(op: BinaryOp): number {
  switch (op) {
    case 'add': return 0;
    case 'sub': return 1;
    case 'mul': return 2;
    case 'div': return 3;
    case 'pow': return 4;
    case 'maximum': return 5;
    case 'minimum': return 6;
    case 'eq': return 7;
    case 'ne': return 8;
    case 'ge': return 9;
    case 'gt': return 10;
    case 'le': return 11;
    case 'lt': return 12;
    default: return op satisfies never;
  }
}

export function unaryCode(op: UnaryOp): number {
  switch (op) {
    case 'neg': return 0;
    case 'log': return 1;
    case 'exp': return 2;
    case 'tanh': return 3;
    case 'sqrt': return 4;
    case 'abs': return 5;
    case 'sign': return 6;
    default: return op satisfies never;
  }
}

export function reduceCode(op: ReduceOp): number {
  switch (op) {
    case 'sum': return 0;
    case 'max': return 1;
    case 'min': return 2;
    case 'argmax': return 3;
    case 'argmin': return 4;
    default: return op satisfies never;
  }
}

/** Unary ops computed one element at a time through libm (worth splitting across threads sooner). */
export function isTranscendental(op: UnaryOp): boolean {
  return op === 'log' || op === 'exp' || op === 'tanh';
}
