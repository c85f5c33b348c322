#!/usr/bin/env python3
"""Reference safetensors files written by Python's `safetensors` (the Rust core every Hugging Face
tool uses), and the float32 values needle must load from them.

Run from the repository root (Debian's python3 has torch 1.13; `pip install safetensors`):
    /usr/bin/python3 packages/safetensors/scripts/gen_fixtures.py
Writes packages/safetensors/test/fixtures/*.safetensors and expected.json. The tests check that
needle loads each file to exactly these values and that needle writes byte-identical files.

expected.json holds, per file, its metadata and per tensor the dtype, shape and the float32 bit
patterns (unsigned 32-bit integers, so NaN payloads and -0 compare exactly) of the values after
conversion to float32 as torch does it (`.to(torch.float32)`: exact for F16/BF16/integers, round to
nearest even for F64).
"""
import json
import os

import numpy as np
import safetensors
import torch
from safetensors.numpy import save_file as np_save_file
from safetensors.torch import save_file

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'test', 'fixtures')
os.makedirs(OUT, exist_ok=True)
expected = {'_generator': f'torch {torch.__version__}, safetensors {safetensors.__version__}'}


def f32_bits(t):
    a = np.ascontiguousarray(t.detach().to(torch.float32).numpy()).reshape(-1)
    return [int(x) for x in a.view(np.uint32)]


def record(name, tensors, metadata=None, values=None):
    entry = {'metadata': metadata, 'tensors': {}}
    for key, t in tensors.items():
        if isinstance(t, np.ndarray):
            bits = values[key]
            dtype = str(t.dtype)
            shape = list(t.shape)
        else:
            bits = f32_bits(t)
            dtype = str(t.dtype).replace('torch.', '')
            shape = list(t.shape)
        # The spread's expected values are the F32 tensor beside it in the same file.
        entry['tensors'][key] = {'dtype': dtype, 'shape': shape, 'bits': None if '_spread' in key else bits}
    expected[name] = entry


g = torch.Generator().manual_seed(0)

# float32: names that sort differently as strings, code points and integers; a scalar; empty
# tensors; and the values a bit-exact round trip must keep (-0, subnormals, infinities, NaN, extremes).
special = torch.tensor([0.0, -0.0, 1.0, -1.5, 1e-45, -1e-45, 1.1754942e-38, 3.4028235e38, -3.4028235e38,
                        float('inf'), float('-inf'), float('nan')], dtype=torch.float32)
f32 = {
    'layer.0.weight': torch.randn(3, 4, generator=g),
    'layer.0.bias': torch.randn(4, generator=g),
    'layer.10.weight': torch.randn(2, 3, 2, generator=g),
    'layer.2.weight': torch.randn(1, 1, 1, 5, generator=g),
    '10': torch.randn(2, generator=g),
    '9': torch.randn(1, generator=g),
    'B': torch.randn(3, generator=g),
    'a': torch.randn(2, 2, generator=g),
    '\u00e9t\u00e9': torch.randn(2, generator=g),
    '\U0001F600': torch.randn(1, generator=g),
    '\uff21': torch.randn(1, generator=g),
    'scalar': torch.tensor(2.5),
    'empty': torch.zeros(0),
    'empty_2x0x3': torch.zeros(2, 0, 3),
    'special': special,
}
save_file(f32, os.path.join(OUT, 'f32.safetensors'))
record('f32.safetensors', f32)

one_key = {'format': 'pt'}
save_file(f32, os.path.join(OUT, 'f32_metadata.safetensors'), metadata=one_key)
record('f32_metadata.safetensors', f32, one_key)

# Escapes in JSON strings: quotes, backslash, control characters, non-ASCII, '/'.
tricky = {'note': 'quote " backslash \\ newline \n tab \t bell \u0007 slash / \u00e9 \U0001F600'}
small = {'x\ty': torch.tensor([1.0, 2.0])}
save_file(small, os.path.join(OUT, 'escapes.safetensors'), metadata=tricky)
record('escapes.safetensors', small, tricky)

save_file(small, os.path.join(OUT, 'empty_metadata.safetensors'), metadata={})
record('empty_metadata.safetensors', small, {})

save_file({}, os.path.join(OUT, 'no_tensors.safetensors'))
record('no_tensors.safetensors', {})

# Several metadata keys: Python orders them by a hash map (differently per run), so the test
# compares this file with needle's after parsing, not byte for byte.
many_keys = {'zeta': '1', 'alpha': '2', 'mid': '{"json": [1, 2]}', 'beta': ''}
save_file(small, os.path.join(OUT, 'many_metadata.safetensors'), metadata=many_keys)
record('many_metadata.safetensors', small, many_keys)

# Every dtype torch 1.13 has, converted to float32 by torch for the expected values.
f64 = torch.tensor([1.0, 0.1, 1 / 3, 1e-300, -1e-300, 1e300, -1e300, 16777217.0, 1.0000000596046448,
                    1.0000001788139343, -0.0, float('nan'), float('inf')], dtype=torch.float64)
f16 = torch.tensor([0.0, -0.0, 1.0, -2.5, 65504.0, 6.1e-05, 6e-08, 5.96e-08, float('inf'), float('-inf'),
                    float('nan')], dtype=torch.float16)
# A spread of half bit patterns: every positive subnormal, and every 13th pattern of the rest
# (all exponents, signs, NaN payloads). Their float32 values are stored beside them ('*_spread_f32').
f16_patterns = sorted(set(range(0, 1024)) | set(range(0, 65536, 13)))
f16_spread = torch.tensor(f16_patterns, dtype=torch.int32).to(torch.int16).view(torch.float16)
bf16_spread = torch.tensor(f16_patterns, dtype=torch.int32).to(torch.int16).view(torch.bfloat16)
bf16 = torch.tensor([0.0, -0.0, 1.0, -2.5, 3.0e38, 1e-40, 0.1, float('inf'), float('nan')], dtype=torch.bfloat16)
dtypes = {
    'f64': f64,
    'f16': f16,
    'f16_spread': f16_spread,
    'f16_spread_f32': f16_spread.to(torch.float32),
    'bf16_spread': bf16_spread,
    'bf16_spread_f32': bf16_spread.to(torch.float32),
    'bf16': bf16.reshape(3, 3),
    'i64': torch.tensor([0, -1, 1, 16777216, -16777216, 2**40, -2**40, 123456], dtype=torch.int64),
    'i32': torch.tensor([[0, -7], [16777216, -16777216], [2**30, 2147483647 - 127]], dtype=torch.int32),
    'i16': torch.tensor([-32768, 32767, 0], dtype=torch.int16),
    'i8': torch.tensor([-128, 127, 0], dtype=torch.int8),
    'u8': torch.tensor([0, 1, 255], dtype=torch.uint8),
    'bool': torch.tensor([True, False, True, True]),
    'f32': torch.tensor([1.5, -2.0], dtype=torch.float32),
    'f32_scalar': torch.tensor(7.0),
    'i64_empty': torch.zeros(0, dtype=torch.int64),
}
# 2147483647 - 127 = 2147483520, the largest float32 below 2^31: exact.
save_file(dtypes, os.path.join(OUT, 'dtypes.safetensors'))
record('dtypes.safetensors', dtypes)

# Unsigned 16/32/64-bit integers: torch 1.13 has none, numpy does.
unsigned = {
    'u16': np.array([0, 65535, 1234], dtype=np.uint16),
    'u32': np.array([0, 16777216, 4294967040], dtype=np.uint32),
    'u64': np.array([0, 2**63, 2**24], dtype=np.uint64),
}
unsigned_bits = {k: [int(x) for x in v.astype(np.float32).view(np.uint32)] for k, v in unsigned.items()}
np_save_file(unsigned, os.path.join(OUT, 'unsigned.safetensors'))
record('unsigned.safetensors', unsigned, None, unsigned_bits)

# Integers that float32 cannot hold: loading must refuse them, naming tensor and value.
save_file({'ok': torch.tensor([1.0]), 'ids': torch.tensor([5, 16777217], dtype=torch.int64)}, os.path.join(OUT, 'i64_inexact.safetensors'))
save_file({'ids': torch.tensor([[1, 2], [3, -16777217]], dtype=torch.int32)}, os.path.join(OUT, 'i32_inexact.safetensors'))
save_file({'ids': torch.tensor([2**62 + 1], dtype=torch.int64)}, os.path.join(OUT, 'i64_huge_inexact.safetensors'))

with open(os.path.join(OUT, 'expected.json'), 'w') as f:
    json.dump(expected, f, indent=None, separators=(',', ':'), sort_keys=True)
    f.write('\n')
print('wrote', sorted(os.listdir(OUT)))
