/**
 * The loops a PyTorch user writes, as written there: no tidy, nothing disposed but the results the
 * loop names. Each must keep the backend's live buffer count flat (see test/leaks.test.ts, and the
 * WebGPU run in packages/ndarray-webgpu/test/leaks.test.ts). Backend-generic: everything is created
 * on the backend passed in.
 */
import { Generator, type Backend } from '@needle/ndarray';
import { add, gradients, grad, mean, mul, noGrad, randn, sum, tanh, tensor, where, type Tensor } from '@needle/autograd';
import { SGD } from '@needle/optim';
import { BatchNorm2d, Conv2d, CrossEntropyLoss, Flatten, LSTM, Linear, MaxPool2d, MSELoss, ReLU, Sequential } from '../src/index';

export interface LeakLoop {
  /** One iteration of the loop. */
  step(): void;
  /** Free what the loop set up (models, inputs, carried state). */
  dispose(): void;
}

export interface LeakPattern {
  name: string;
  setup(backend: Backend): LeakLoop;
}

function convNet(backend: Backend, g: Generator): Sequential {
  return new Sequential(
    new Conv2d(1, 4, 3, { padding: 1, generator: g, backend }),
    new BatchNorm2d(4, { backend }),
    new ReLU(),
    new MaxPool2d(2),
    new Flatten(),
    new Linear(4 * 3 * 3, 3, { generator: g, backend }),
  );
}

export const LEAK_PATTERNS: LeakPattern[] = [
  {
    name: 'inference: noGrad(() => model.call(x)), then out.dispose()',
    setup(backend) {
      const g = new Generator(1);
      const model = convNet(backend, g).eval();
      const x = randn([2, 1, 6, 6], { generator: g, backend });
      return {
        step: () => noGrad(() => model.call(x)).dispose(),
        dispose: () => { model.dispose(); x.dispose(); },
      };
    },
  },
  {
    name: 'a forward with grad on (BatchNorm updating its running stats) and no backward, then out.dispose()',
    setup(backend) {
      const g = new Generator(2);
      const model = convNet(backend, g);
      const x = randn([2, 1, 6, 6], { generator: g, backend });
      return {
        step: () => model.call(x).dispose(),
        dispose: () => { model.dispose(); x.dispose(); },
      };
    },
  },
  {
    name: 'second order: a gradient penalty through gradients(..., { createGraph: true }), backward, optimizer step',
    setup(backend) {
      const g = new Generator(3);
      const model = new Sequential(new Linear(3, 5, { generator: g, backend }), new ReLU(), new Linear(5, 1, { generator: g, backend }));
      const opt = new SGD(model.parameters(), { lr: 0.01 });
      const x = randn([4, 3], { generator: g, backend, requiresGrad: true });
      return {
        step: () => {
          const out = model.call(x);
          const total = sum(out);
          const [gx] = gradients(total, [x], { createGraph: true });
          const loss = add(mean(out), mean(mul(gx!, gx!)));
          loss.backward();
          opt.step();
          opt.zeroGrad();
          x.zeroGrad();
          // the tensors the loop named, as every needle loop disposes its loss; the graph frees the rest
          [loss, gx!, total, out].forEach((t) => t.dispose());
        },
        dispose: () => { model.dispose(); opt.dispose(); x.dispose(); },
      };
    },
  },
  {
    name: 'second order, functional: grad(grad(f))(x)',
    setup(backend) {
      const x = tensor([0.5, -1, 2], { backend });
      const f = (t: Tensor) => sum(mul(tanh(t), t));
      const d2 = grad((t: Tensor) => sum(grad(f)(t)));
      return {
        step: () => d2(x).dispose(),
        dispose: () => x.dispose(),
      };
    },
  },
  {
    name: 'truncated BPTT: an LSTM carrying state = [h.detach(), c.detach()] between steps',
    setup(backend) {
      const g = new Generator(4);
      const lstm = new LSTM(2, 5, { generator: g, backend });
      const head = new Linear(5, 2, { generator: g, backend });
      const opt = new SGD([...lstm.parameters(), ...head.parameters()], { lr: 0.05 });
      const lossFn = new MSELoss();
      // two time steps a batch: small, so 200 steps stay quick on a software GPU
      const x = randn([2, 2, 2], { generator: g, backend });
      const target = randn([2, 2, 2], { generator: g, backend });
      let state: [Tensor, Tensor] | undefined;
      return {
        step: () => {
          const [out, [h, c]] = lstm.call(x, state);
          const loss = lossFn.call(head.call(out), target);
          loss.backward();
          opt.step();
          opt.zeroGrad();
          state = [h.detach(), c.detach()];
          loss.dispose();
        },
        dispose: () => {
          state?.forEach((t) => t.dispose());
          [lstm, head].forEach((m) => m.dispose());
          opt.dispose();
          [x, target].forEach((t) => t.dispose());
        },
      };
    },
  },
  {
    name: 'a layer that throws part-way through a model (grad on and under noGrad), and an op that throws part-way',
    setup(backend) {
      const g = new Generator(5);
      // The third layer expects 6 features and gets 8: the first two have run when it throws.
      const model = new Sequential(new Linear(4, 8, { generator: g, backend }), new ReLU(), new Linear(6, 2, { generator: g, backend }));
      const x = randn([3, 4], { generator: g, backend });
      const cond = tensor([1, 0, 1], { backend });
      const y = randn([2], { generator: g, backend, requiresGrad: true });
      const expectThrow = (f: () => unknown) => {
        try {
          f();
        } catch {
          return;
        }
        throw new Error('expected a throw');
      };
      const lossFn = new CrossEntropyLoss();
      return {
        step: () => {
          expectThrow(() => model.call(x));
          expectThrow(() => noGrad(() => model.call(x)));
          // where() makes its scalar operand before finding the shapes [3] and [2] incompatible
          expectThrow(() => where(cond, 1, y));
          expectThrow(() => lossFn.call(x, y));
        },
        dispose: () => { model.dispose(); [x, cond, y].forEach((t) => t.dispose()); },
      };
    },
  },
];

/**
 * Run `steps` iterations of a pattern; returns the live buffer count after every step, and the
 * counts before setup and after teardown.
 */
export function runLeakPattern(p: LeakPattern, backend: Backend, steps: number): { before: number; live: number[]; after: number } {
  const before = backend.memory().buffers;
  const loop = p.setup(backend);
  const live: number[] = [];
  try {
    for (let i = 0; i < steps; i++) {
      loop.step();
      live.push(backend.memory().buffers);
    }
  } finally {
    loop.dispose();
  }
  return { before, live, after: backend.memory().buffers };
}
