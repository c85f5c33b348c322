#!/usr/bin/env python3
"""Golden values for @needle/nn's layer tests, computed with PyTorch (Debian's python3-torch).

Run from anywhere with the system Python:  /usr/bin/python3 packages/nn/scripts/gen_fixtures.py
It writes packages/nn/test/fixtures/*.json (committed, so CI needs no Python). Every case stores its
inputs, parameters, the upstream gradient `g` (the loss is sum(out * g), so every output element gets
a distinct gradient), the outputs and the gradients, all in float32 and as nested lists.
"""
import json
import os

import torch

torch.manual_seed(0)
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'test', 'fixtures')


def L(t):
    return t.detach().to(torch.float32).tolist()


def randn(*shape, scale=1.0):
    return (torch.randn(*shape, dtype=torch.float32) * scale).requires_grad_(True)


def write(name, data):
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, f'{name}.json'), 'w') as f:
        json.dump(data, f, indent=None, separators=(',', ':'))
        f.write('\n')


def linear_cases():
    cases = []
    for x_shape, bias in [((4, 3), True), ((2, 3, 3), True), ((5, 3), False)]:
        lin = torch.nn.Linear(3, 2, bias=bias)
        x = randn(*x_shape)
        y = lin(x)
        g = torch.randn_like(y)
        (y * g).sum().backward()
        cases.append({
            'x': L(x), 'weight': L(lin.weight), 'bias': L(lin.bias) if bias else None, 'g': L(g),
            'y': L(y), 'dx': L(x.grad), 'dweight': L(lin.weight.grad), 'dbias': L(lin.bias.grad) if bias else None,
        })
    return cases


def gelu_case():
    x = torch.tensor([-6.0, -3.0, -1.5, -0.5, -0.1, 0.0, 0.1, 0.5, 1.0, 2.0, 4.0, 9.0], requires_grad=True)
    y = torch.nn.GELU(approximate='tanh')(x)
    g = torch.randn_like(y)
    (y * g).sum().backward()
    return {'x': L(x), 'g': L(g), 'y': L(y), 'dx': L(x.grad)}


def batchnorm_case(cls, shape, momentum, steps=3):
    c = shape[1]
    bn = cls(c, momentum=momentum)
    with torch.no_grad():
        bn.weight.copy_(torch.randn(c))
        bn.bias.copy_(torch.randn(c))
    w0, b0 = L(bn.weight), L(bn.bias)
    train_steps = []
    for _ in range(steps):
        # Shifted and scaled so the running statistics move visibly away from (0, 1).
        x = randn(*shape, scale=2.0)
        with torch.no_grad():
            x += 3.0
        bn.zero_grad()
        y = bn(x)
        g = torch.randn_like(y)
        (y * g).sum().backward()
        train_steps.append({
            'x': L(x), 'g': L(g), 'y': L(y), 'dx': L(x.grad), 'dweight': L(bn.weight.grad), 'dbias': L(bn.bias.grad),
            'runningMean': L(bn.running_mean), 'runningVar': L(bn.running_var),
            'numBatchesTracked': int(bn.num_batches_tracked),
        })
    bn.eval()
    bn.zero_grad()
    x = randn(*shape)
    y = bn(x)
    g = torch.randn_like(y)
    (y * g).sum().backward()
    return {
        'numFeatures': c, 'momentum': momentum, 'eps': bn.eps, 'weight': w0, 'bias': b0, 'train': train_steps,
        'eval': {'x': L(x), 'g': L(g), 'y': L(y), 'dx': L(x.grad), 'dweight': L(bn.weight.grad), 'dbias': L(bn.bias.grad)},
    }


def layernorm_cases():
    cases = []
    for x_shape, norm_shape in [((3, 5), [5]), ((2, 3, 4), [3, 4]), ((4, 6), [6])]:
        ln = torch.nn.LayerNorm(norm_shape)
        with torch.no_grad():
            ln.weight.copy_(torch.randn(*norm_shape))
            ln.bias.copy_(torch.randn(*norm_shape))
        x = randn(*x_shape, scale=3.0)
        with torch.no_grad():
            x += 10.0  # a large mean relative to the spread exercises the two-pass variance
        y = ln(x)
        g = torch.randn_like(y)
        (y * g).sum().backward()
        cases.append({
            'normalizedShape': norm_shape, 'eps': ln.eps, 'x': L(x), 'weight': L(ln.weight), 'bias': L(ln.bias), 'g': L(g),
            'y': L(y), 'dx': L(x.grad), 'dweight': L(ln.weight.grad), 'dbias': L(ln.bias.grad),
        })
    return cases


def cross_entropy_cases():
    cases = []
    logits = torch.randn(6, 5) * 2
    logits[2] = torch.tensor([120.0, -80.0, 119.5, 0.0, 50.0])  # naive exp would overflow
    logits[4] = torch.tensor([-200.0, -210.0, -190.0, -205.0, -199.0])
    labels = torch.tensor([0, 3, 2, 4, 1, 2])
    for reduction in ['mean', 'sum', 'none']:
        z = logits.clone().requires_grad_(True)
        loss = torch.nn.functional.cross_entropy(z, labels, reduction=reduction)
        g = torch.randn_like(loss) if reduction == 'none' else torch.tensor(1.0)
        (loss * g).sum().backward()
        cases.append({'reduction': reduction, 'logits': L(z), 'labels': labels.tolist(), 'g': L(g), 'loss': L(loss), 'dlogits': L(z.grad)})
    return cases


def mse_cases():
    cases = []
    for reduction in ['mean', 'sum']:
        p = randn(3, 4)
        t = torch.randn(3, 4)
        loss = torch.nn.functional.mse_loss(p, t, reduction=reduction)
        loss.backward()
        cases.append({'reduction': reduction, 'prediction': L(p), 'target': L(t), 'loss': L(loss), 'dprediction': L(p.grad)})
    return cases


def main():
    write('linear', linear_cases())
    write('gelu', gelu_case())
    write('batchnorm1d', [
        batchnorm_case(torch.nn.BatchNorm1d, (6, 4), 0.1),
        batchnorm_case(torch.nn.BatchNorm1d, (4, 3, 5), 0.3),
        batchnorm_case(torch.nn.BatchNorm1d, (5, 2), None),
    ])
    write('batchnorm2d', [batchnorm_case(torch.nn.BatchNorm2d, (2, 3, 4, 4), 0.1, steps=2)])
    write('layernorm', layernorm_cases())
    write('cross_entropy', cross_entropy_cases())
    write('mse', mse_cases())


if __name__ == '__main__':
    main()
