// The bad calls issue 12 lists, each with the error it must give (the fuzz covers the rest).
import { describe, expect, it } from 'vitest';
import { array, full, indexAddInto, indexSelect, NDArray, NeedleError, rand, randn, zeros, type Index } from '@needle/ndarray';
import { createCpuBackend } from '@needle/ndarray-cpu';

const backend = createCpuBackend({ name: 'cpu-errors' });
const a = (data: number[][] = [[1, 2, 3], [4, 5, 6]]) => array(data, { backend });

function thrown(fn: () => unknown): NeedleError {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(NeedleError);
    return error as NeedleError;
  }
  return expect.fail('expected a NeedleError');
}

describe('wrong-type arguments get a NeedleError naming the op', () => {
  it('a.add(\'3\'), reshape(null), sum(\'0\')', () => {
    const x = a();
    expect(thrown(() => x.add('3' as never)).message).toBe("add: expected a number or an NDArray operand, got the string '3'");
    expect(thrown(() => x.reshape(null as never)).message).toBe('reshape: expected a shape (an array of integers, one may be -1), got null');
    // The message used to say "axis 0 is out of range ... (expected -2 <= axis < 2)".
    expect(thrown(() => x.sum('0' as never)).message).toBe("sum: axes must be an integer, an array of integers or undefined (all axes), got the string '0'");
    expect(thrown(() => x.sum([0.5])).message).toBe('sum: axis must be an integer, got 0.5');
    expect(thrown(() => x.sum(0, 'yes' as never)).message).toBe("sum: keepdims must be true or false, got the string 'yes'");
    x.dispose();
  });

  it('full([2], \'x\') and friends refuse non-number values', () => {
    expect(thrown(() => full([2], 'x' as never, { backend })).message).toBe("full: the fill value must be a number, got the string 'x'");
    expect(thrown(() => full(null as never, 1, { backend })).message).toBe('full: expected a shape (an array of non-negative integers), got null');
    expect(thrown(() => zeros([2, 1.5], { backend })).message).toBe('zeros: shape [2, 1.5] must hold non-negative integers, got 1.5');
    expect(backend.memory().buffers).toBe(0);
  });

  it('matmul names both full shapes', () => {
    const x = zeros([2, 2, 3], { backend });
    const y = zeros([3, 3, 4], { backend });
    expect(thrown(() => x.matmul(y)).message).toBe(
      'matmul: batch dimensions do not broadcast: [2, 2, 3] @ [3, 3, 4] (batch [2] vs [3]); expected a[..., m, k] @ b[..., k, n] with broadcastable leading axes',
    );
    x.dispose();
    y.dispose();
  });
});

describe('allocation failures', () => {
  it('zeros([1e6, 1e6]) on cpu is a NeedleError and leaves memory() unchanged', () => {
    const before = backend.memory();
    const e = thrown(() => zeros([1e6, 1e6], { backend }));
    expect(e.message).toMatch(/^zeros: cannot allocate an array of shape \[1000000, 1000000\] \(1000000000000 float32 elements\) on backend 'cpu-errors'/);
    expect(backend.memory()).toEqual(before);
    const ok = zeros([2], { backend }); // the backend still works
    expect(backend.memory().buffers).toBe(before.buffers + 1);
    ok.dispose();
  });
});

describe('indexing: basic (view) indexing only; advanced indexing is refused, never read as a full slice', () => {
  const advanced = /indexing selects views only \(integers, slices, null, '\.\.\.'\); for integer-array indexing use indexSelect or gather, for a boolean mask use where/;
  it.each([
    ['true', true],
    ['[0, 2]', [0, 2]],
    ['() => 0', () => 0],
    ['an NDArray', 'ndarray'],
  ])('get(%s) throws', (_, index) => {
    const x = a();
    const idx = index === 'ndarray' ? zeros([2], { backend }) : index;
    const before = backend.memory().buffers;
    expect(thrown(() => x.get(idx as Index)).message).toMatch(advanced);
    expect(backend.memory().buffers).toBe(before);
    if (idx instanceof NDArray) idx.dispose();
    x.dispose();
  });

  it('a lookup whose allocation fails part-way is a NeedleError and leaves memory() unchanged', () => {
    const b = createCpuBackend({ name: 'cpu-fails' });
    const alloc = b.alloc.bind(b);
    let left = Infinity;
    b.alloc = (size: number) => {
      if (left-- <= 0) throw new Error('out of memory (test)');
      return alloc(size);
    };
    // Along axis 0 of a transposed view, so the rows are a copy (and, for indexAddInto, written back).
    const x = array([[1, 2, 3], [4, 5, 6]], { backend: b }).transpose(); // [3, 2]
    const ids = array([2, 0, 2], { backend: b });
    const src = zeros([2, 3], { backend: b }).transpose(); // strided too: its rows are a copy made first
    const live = b.memory().buffers;
    // Fail the 1st, 2nd, ... allocation of each call until one succeeds.
    for (const [name, call] of [['indexSelect', () => indexSelect(x, 0, ids)], ['indexAddInto', () => indexAddInto(x, 0, ids, src)]] as const) {
      let failures = 0;
      for (let n = 0; n < 20; n++) {
        left = n;
        try {
          const r = call();
          left = Infinity;
          if (r !== x) r.dispose();
          break;
        } catch (e) {
          left = Infinity;
          expect(e, `${name}, allocation ${n}`).toBeInstanceOf(NeedleError);
          expect(b.memory().buffers, `${name}: live buffers after allocation ${n} failed`).toBe(live);
          failures++;
        }
      }
      expect(failures, `${name}: allocations before success`).toBeGreaterThan(1);
      expect(failures, `${name} succeeds once allocations do`).toBeLessThan(20);
    }
    [x, ids, src].forEach((t) => t.dispose());
  });

  it('non-integer indices and unknown slice keys are refused', () => {
    const x = a();
    expect(thrown(() => x.get(0.5)).message).toBe('get: index 0.5 must be an integer (array of shape [2, 3])');
    expect(thrown(() => x.get({ begin: 1 } as never)).message).toMatch(/^get: got an object as an index of an array of shape \[2, 3\]: expected an integer, a slice/);
    expect(thrown(() => x.get({ start: '1' } as never)).message).toBe("get: slice start must be an integer, null or undefined, got the string '1'");
    x.dispose();
  });
});

describe('views and random arrays check their numbers', () => {
  it('asStrided takes integer strides and offset only', () => {
    const x = zeros([6], { backend });
    expect(thrown(() => x.asStrided([2, 3], [1.5, 1])).message).toBe('asStrided: strides must be an array of integers (in elements), got [1.5, 1]');
    expect(thrown(() => x.asStrided([2, 3], [3, 1], 0.5)).message).toBe('asStrided: offset must be a non-negative integer, got 0.5');
    x.dispose();
  });

  it('randn std -1 and rand low > high are refused, like torch.normal and uniform_', () => {
    expect(thrown(() => randn([2], { backend, std: -1 })).message).toBe('randn: std must be a finite number >= 0, got -1');
    expect(thrown(() => rand([2], { backend, low: 2, high: 1 })).message).toBe('rand: low must be <= high, got low 2 and high 1');
    expect(thrown(() => rand([2], { backend, low: NaN })).message).toBe('rand: low must be a finite number, got NaN');
    expect(backend.memory().buffers).toBe(0);
  });

  it('a dtype other than float32 is refused instead of being ignored', () => {
    const e = thrown(() => array([1, 2], { backend, dtype: 'int32' as never }));
    expect(e.message).toBe("array: dtype 'int32' is not supported: arrays store float32 (integers up to 2^24 are exact in it); omit dtype or pass 'float32'");
    expect(thrown(() => zeros([2], { backend, dtype: 'float16' as never })).op).toBe('zeros');
    const f = array([1, 2], { backend, dtype: 'float32' });
    expect(f.dtype).toBe('float32');
    f.dispose();
  });
});
