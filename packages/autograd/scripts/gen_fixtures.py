"""Golden values for @needle/autograd's harder ops, computed with PyTorch.

Run with Debian's python3-torch (apt-get install -y python3-torch):

    /usr/bin/python3 packages/autograd/scripts/gen_fixtures.py

It writes test/fixtures/torch_ops.json, which is committed so CI needs no Python. Inputs are drawn
from a fixed seed and rounded to float32 (what the TypeScript side stores); outputs and gradients are
computed in float64 from those rounded inputs. Each case records an output weight w: the gradients are
those of sum(output * w), so every output element contributes with a different weight.
"""
import json
import os

import torch
import torch.nn.functional as F

torch.manual_seed(1234)


def draw(*shape, low=None, high=None):
    if low is None:
        t = torch.randn(*shape, dtype=torch.float32)
    else:
        t = torch.rand(*shape, dtype=torch.float32) * (high - low) + low
    return t.to(torch.float64)


def pack(t):
    return {"shape": list(t.shape), "data": [float(v) for v in t.detach().reshape(-1).tolist()]}


cases = []


def case(name, op, options, inputs, fn):
    leaves = [x.clone().requires_grad_(True) for x in inputs]
    out = fn(*leaves)
    w = torch.randn(*out.shape, dtype=torch.float32).to(torch.float64)
    grads = torch.autograd.grad((out * w).sum(), leaves)
    cases.append({
        "name": name,
        "op": op,
        "options": options,
        "inputs": [pack(x) for x in inputs],
        "weight": pack(w),
        "output": pack(out),
        "grads": [pack(g) for g in grads],
    })


# conv2d: NCHW input, weight [out, in/groups, kh, kw]
case("conv2d basic with bias", "conv2d", {"bias": True},
     [draw(2, 3, 5, 5), draw(4, 3, 3, 3), draw(4)],
     lambda x, w, b: F.conv2d(x, w, b))
case("conv2d stride 2 padding 1", "conv2d", {"stride": 2, "padding": 1},
     [draw(1, 2, 6, 5), draw(3, 2, 3, 3)],
     lambda x, w: F.conv2d(x, w, stride=2, padding=1))
case("conv2d dilation 2, padding [1, 2], stride [1, 2]", "conv2d", {"dilation": 2, "padding": [1, 2], "stride": [1, 2]},
     [draw(1, 2, 6, 7), draw(2, 2, 3, 2)],
     lambda x, w: F.conv2d(x, w, stride=(1, 2), padding=(1, 2), dilation=2))
case("conv2d groups 2 with bias", "conv2d", {"groups": 2, "bias": True},
     [draw(2, 4, 4, 4), draw(6, 2, 2, 2), draw(6)],
     lambda x, w, b: F.conv2d(x, w, b, groups=2))

# pooling
case("maxPool2d 2x2", "maxPool2d", {"kernelSize": 2},
     [draw(2, 2, 4, 6)], lambda x: F.max_pool2d(x, 2))
case("maxPool2d 3x3 stride 2 padding 1", "maxPool2d", {"kernelSize": 3, "stride": 2, "padding": 1},
     [draw(1, 3, 7, 6)], lambda x: F.max_pool2d(x, 3, stride=2, padding=1))
case("avgPool2d 2x2 stride 1", "avgPool2d", {"kernelSize": 2, "stride": 1},
     [draw(2, 2, 4, 4)], lambda x: F.avg_pool2d(x, 2, stride=1))
case("avgPool2d 3x3 stride 2 padding 1", "avgPool2d", {"kernelSize": 3, "stride": 2, "padding": 1},
     [draw(1, 2, 5, 6)], lambda x: F.avg_pool2d(x, 3, stride=2, padding=1))

# softmax family, including large magnitudes
case("logsumexp axis 1", "logsumexp", {"axis": 1, "keepdims": False},
     [draw(3, 5)], lambda x: torch.logsumexp(x, 1))
case("logsumexp axes [0, 2] keepdims, large values", "logsumexp", {"axis": [0, 2], "keepdims": True},
     [draw(2, 3, 4) * 50], lambda x: torch.logsumexp(x, (0, 2), keepdim=True))
case("softmax axis -1", "softmax", {"axis": -1},
     [draw(4, 6)], lambda x: torch.softmax(x, -1))
case("softmax axis 0, large values", "softmax", {"axis": 0},
     [draw(3, 4) * 100], lambda x: torch.softmax(x, 0))
case("logSoftmax axis -1", "logSoftmax", {"axis": -1},
     [draw(2, 3, 5)], lambda x: torch.log_softmax(x, -1))
case("logSoftmax axis 1, large values", "logSoftmax", {"axis": 1},
     [draw(3, 4) * 100], lambda x: torch.log_softmax(x, 1))

# batched matmul with broadcasting
case("matmul batched", "matmul", {},
     [draw(2, 3, 4), draw(2, 4, 5)], lambda a, b: torch.matmul(a, b))
case("matmul broadcast batch", "matmul", {},
     [draw(2, 1, 3, 4), draw(3, 4, 2)], lambda a, b: torch.matmul(a, b))
case("matmul batched @ matrix", "matmul", {},
     [draw(3, 2, 4), draw(4, 3)], lambda a, b: torch.matmul(a, b))

# gelu (tanh approximation) and the cross-entropy building blocks
case("gelu tanh approximation", "gelu", {"approximate": "tanh"},
     [draw(10) * 3], lambda x: F.gelu(x, approximate="tanh"))
targets = torch.tensor([[2, 0], [1, 1], [0, 3]])
case("gather axis 1", "gather", {"axis": 1, "index": targets.reshape(-1).tolist(), "indexShape": [3, 2]},
     [draw(3, 4)], lambda x: torch.gather(x, 1, targets))

# erf and the exact GELU (PyTorch's default), appended so the earlier cases keep their draws
case("gelu exact", "gelu", {"approximate": "none"},
     [draw(10) * 3], lambda x: F.gelu(x))
case("erf", "erf", {},
     [draw(12) * 2], lambda x: torch.erf(x))

out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "test", "fixtures", "torch_ops.json")
with open(out, "w") as f:
    json.dump({"generator": "packages/autograd/scripts/gen_fixtures.py", "torch": torch.__version__, "cases": cases}, f)
    f.write("\n")
print(f"wrote {len(cases)} cases to {os.path.normpath(out)}")
