#!/usr/bin/env python3
"""PyTorch <-> needle weight interchange fixtures (test/interchange.test.ts), both directions.

    /usr/bin/python3 packages/nn/scripts/gen_torch_interchange.py           # write torch fixtures, verify needle's
    /usr/bin/python3 packages/nn/scripts/gen_torch_interchange.py --verify DIR   # only verify needle's files in DIR

Torch -> needle: for each case it builds the torch module with a fixed seed and writes, under
packages/nn/test/fixtures/interchange/,
  <case>.safetensors      the module's state_dict() (safetensors.torch.save_file, PyTorch's key names)
  <case>.io.safetensors   the inputs and torch's outputs (eval mode; BatchNorm after training steps)
The test loads these with @needle/safetensors, maps the names, loads them into the needle module and
compares the outputs.

Needle -> torch: the test writes <case>.needle.safetensors (needle's own weights, saved under
PyTorch's names) and <case>.needle.io.safetensors (the same inputs and needle's outputs); the
committed ones sit beside the torch fixtures (refresh them with
`NEEDLE_WRITE_INTERCHANGE=1 pnpm vitest run packages/nn/test/interchange.test.ts`). This script loads each into a fresh torch module with
load_state_dict(strict=True) and checks torch computes needle's outputs. The test runs it on the
files it has just written when /usr/bin/python3 with torch is present.

ResNet9's torch weights are rounded to a few mantissa bits and stored as float16 so the committed
file stays small and compresses; its outputs are computed from exactly those values.
"""
import json
import os
import sys

import torch
from safetensors.torch import load_file, save_file

from torch_resnet9 import ResNet9

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'test', 'fixtures', 'interchange')
TOL = 1e-5


def build(name):
    """The torch module of each case (the test builds the needle twin with the same arguments)."""
    return {
        'linear': lambda: torch.nn.Linear(5, 3),
        'conv2d': lambda: torch.nn.Conv2d(3, 4, 3, stride=2, padding=1),
        'batchnorm2d': lambda: torch.nn.BatchNorm2d(4),
        'lstm': lambda: torch.nn.LSTM(4, 5, num_layers=2),
        'embedding': lambda: torch.nn.Embedding(10, 4),
        'mha': lambda: torch.nn.MultiheadAttention(8, 2),
        'resnet9': ResNet9,
    }[name]()


# Inputs per case, and how many train-mode forwards (BatchNorm statistics) come before the eval outputs.
INPUTS = {
    'linear': lambda: {'x': torch.randn(4, 5)},
    'conv2d': lambda: {'x': torch.randn(2, 3, 7, 7)},
    'batchnorm2d': lambda: {'x': torch.randn(2, 4, 3, 3), **{f'train{i}': torch.randn(3, 4, 3, 3) * 2 + 1 for i in range(3)}},
    'lstm': lambda: {'x': torch.randn(6, 3, 4)},
    'embedding': lambda: {'ids': torch.randint(0, 10, (2, 3))},
    'mha': lambda: {'query': torch.randn(3, 2, 8), 'key': torch.randn(4, 2, 8), 'value': torch.randn(4, 2, 8)},
    'resnet9': lambda: {'x': torch.randn(2, 3, 32, 32), **{f'train{i}': torch.randn(4, 3, 32, 32) for i in range(2)}},
}
CASES = list(INPUTS)


def run(name, m, io):
    """Train-mode forwards over train0, train1, ... (BatchNorm statistics), then eval outputs."""
    with torch.no_grad():
        m.train()
        i = 0
        while f'train{i}' in io:
            m(io[f'train{i}'])
            i += 1
        m.eval()
        if name == 'lstm':
            out, (h, c) = m(io['x'])
            return {'output': out, 'h': h, 'c': c}
        if name == 'mha':
            out, w = m(io['query'], io['key'], io['value'])
            return {'output': out, 'weights': w}
        if name == 'embedding':
            return {'output': m(io['ids'].long())}
        return {'output': m(io['x'])}


def quantize_(m):
    """Round every parameter to 5 significant bits of a per-tensor power of two (exact in float16)."""
    with torch.no_grad():
        for p in m.parameters():
            if p.abs().max() == 0:
                continue
            step = 2.0 ** (torch.floor(torch.log2(p.abs().max())).item() - 4)
            p.copy_(torch.round(p / step) * step)


def generate():
    os.makedirs(HERE, exist_ok=True)
    for i, name in enumerate(CASES):
        torch.manual_seed(100 + i)
        m = build(name)
        io = INPUTS[name]()
        if name == 'resnet9':
            quantize_(m)
        out = run(name, m, io)
        state = {k: v.detach().clone().contiguous() for k, v in m.state_dict().items()}
        if name == 'resnet9':
            # Store in float16 and compute the outputs from exactly the stored values.
            state = {k: (v.half() if v.is_floating_point() else v) for k, v in state.items()}
            m.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})
            m.eval()
            with torch.no_grad():
                out = {'output': m(io['x'])}
        save_file(state, os.path.join(HERE, f'{name}.safetensors'))
        # ResNet9's training batches stay out of the committed file (the test trains needle's twin on its own).
        kept = {k: v for k, v in io.items() if not (name == 'resnet9' and k.startswith('train'))}
        save_file({**{k: v.contiguous() for k, v in kept.items()}, **{f'out.{k}': v.contiguous() for k, v in out.items()}},
                  os.path.join(HERE, f'{name}.io.safetensors'))
        print(f'wrote {name}: {len(state)} tensors')
    write_keys()


# Further modules whose PyTorch key lists (in state_dict order) the name mapping is checked against.
KEY_MODULES = {
    'rnn': lambda: torch.nn.RNN(3, 4, num_layers=2),
    'gru': lambda: torch.nn.GRU(3, 4, bias=False),
    'rnn_cell': lambda: torch.nn.RNNCell(3, 4),
    'lstm_cell': lambda: torch.nn.LSTMCell(3, 4),
    'gru_cell': lambda: torch.nn.GRUCell(3, 4),
    'layer_norm': lambda: torch.nn.LayerNorm(6),
    'batchnorm1d': lambda: torch.nn.BatchNorm1d(3),
    'transformer_layer': lambda: torch.nn.TransformerEncoderLayer(8, 2, 16),
    'transformer': lambda: torch.nn.TransformerEncoder(torch.nn.TransformerEncoderLayer(8, 2, 16), 2, norm=torch.nn.LayerNorm(8),
                                                       enable_nested_tensor=False),
}


def write_keys():
    keys = {name: list(make().state_dict().keys()) for name, make in {**KEY_MODULES, **{c: (lambda c=c: build(c)) for c in CASES}}.items()}
    with open(os.path.join(HERE, 'keys.json'), 'w') as f:
        json.dump(keys, f, indent=1)
        f.write('\n')


def verify(directory):
    """Load needle-written state dicts into torch (strict) and check torch reproduces needle's outputs."""
    found = [n for n in CASES if os.path.exists(os.path.join(directory, f'{n}.needle.safetensors'))]
    if not found:
        print(f'no needle-written files (<case>.needle.safetensors) in {directory}')
        return 1
    bad = 0
    for name in found:
        m = build(name)
        state = load_file(os.path.join(directory, f'{name}.needle.safetensors'))
        # needle keeps BatchNorm's counter in float32; load_state_dict copies it into torch's int64 buffer.
        m.load_state_dict(state, strict=True)
        io = load_file(os.path.join(directory, f'{name}.needle.io.safetensors'))
        inputs = {k: v for k, v in io.items() if not k.startswith('out.') and not k.startswith('train')}
        out = run(name, m, inputs)
        for k, v in out.items():
            want = io[f'out.{k}']
            err = ((v - want).abs() / want.abs().clamp(min=1)).max().item()
            ok = err <= TOL and v.shape == want.shape
            bad += not ok
            print(f"{'ok ' if ok else 'BAD'} {name}.{k}: torch vs needle max rel err {err:.2e} {tuple(v.shape)}")
    print(f'{len(found)} needle files checked, {bad} mismatches')
    return 1 if bad else 0


if __name__ == '__main__':
    if len(sys.argv) == 3 and sys.argv[1] == '--verify':
        sys.exit(verify(sys.argv[2]))
    if len(sys.argv) != 1:
        sys.exit(__doc__)
    generate()
    sys.exit(verify(HERE) if any(f.endswith('.needle.safetensors') for f in os.listdir(HERE)) else 0)
