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


def gelu_exact_case():
    # Seeded on its own so that adding it changed no other fixture file.
    torch.manual_seed(5)
    x = torch.tensor([-9.0, -6.0, -3.0, -1.5, -0.5, -0.1, 0.0, 0.1, 0.5, 1.0, 2.0, 4.0, 9.0], requires_grad=True)
    y = torch.nn.GELU()(x)
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


def conv2d_cases():
    cases = []
    configs = [
        dict(cin=3, cout=4, k=3, stride=1, padding=0, dilation=1, groups=1, bias=True, x=(2, 3, 6, 5)),
        dict(cin=2, cout=3, k=(3, 2), stride=(2, 1), padding=(1, 2), dilation=1, groups=1, bias=False, x=(1, 2, 7, 6)),
        dict(cin=4, cout=2, k=2, stride=1, padding=1, dilation=2, groups=2, bias=True, x=(2, 4, 5, 5)),
    ]
    for c in configs:
        conv = torch.nn.Conv2d(c['cin'], c['cout'], c['k'], stride=c['stride'], padding=c['padding'],
                               dilation=c['dilation'], groups=c['groups'], bias=c['bias'])
        x = randn(*c['x'])
        y = conv(x)
        g = torch.randn_like(y)
        (y * g).sum().backward()
        cases.append({
            'inChannels': c['cin'], 'outChannels': c['cout'], 'kernelSize': c['k'], 'stride': c['stride'],
            'padding': c['padding'], 'dilation': c['dilation'], 'groups': c['groups'],
            'x': L(x), 'weight': L(conv.weight), 'bias': L(conv.bias) if c['bias'] else None, 'g': L(g),
            'y': L(y), 'dx': L(x.grad), 'dweight': L(conv.weight.grad), 'dbias': L(conv.bias.grad) if c['bias'] else None,
        })
    return cases


def pool_cases():
    cases = []
    for kind, k, stride, padding in [('max', 2, None, 0), ('max', 3, 2, 1), ('avg', 2, None, 0), ('avg', 3, 2, 1)]:
        layer = (torch.nn.MaxPool2d if kind == 'max' else torch.nn.AvgPool2d)(k, stride=stride, padding=padding)
        x = randn(2, 3, 6, 7)
        y = layer(x)
        g = torch.randn_like(y)
        (y * g).sum().backward()
        cases.append({'kind': kind, 'kernelSize': k, 'stride': stride, 'padding': padding,
                      'x': L(x), 'g': L(g), 'y': L(y), 'dx': L(x.grad)})
    return cases


def embedding_case():
    emb = torch.nn.Embedding(7, 3)
    ids = torch.tensor([[1, 4, 1], [6, 0, 4]])  # repeated ids accumulate gradient
    y = emb(ids)
    g = torch.randn_like(y)
    (y * g).sum().backward()
    return {'numEmbeddings': 7, 'embeddingDim': 3, 'weight': L(emb.weight), 'ids': ids.tolist(), 'g': L(g),
            'y': L(y), 'dweight': L(emb.weight.grad)}


def rnn_case(kind, input_size, hidden_size, num_layers=1, bias=True, batch_first=False, nonlinearity='tanh',
             seq=4, batch=2, initial_state=True):
    """One recurrent layer (torch.nn.RNN/LSTM/GRU) or cell (RNNCell/LSTMCell/GRUCell). The loss is
    sum(out * g) + sum(hN * gh) (+ sum(cN * gc) for LSTM), so the final states' gradient paths are
    checked as well as the output's. Parameters are stored under PyTorch's names (weight_ih_l0, ...)."""
    is_cell = kind.endswith('Cell')
    is_lstm = kind.startswith('LSTM')
    cls = getattr(torch.nn, kind)
    kwargs = {'bias': bias}
    if kind.startswith('RNN'):
        kwargs['nonlinearity'] = nonlinearity
    if not is_cell:
        kwargs.update(num_layers=num_layers, batch_first=batch_first)
    layer = cls(input_size, hidden_size, **kwargs)
    if is_cell:
        x = randn(batch, input_size)
        state_shape = (batch, hidden_size)
    else:
        x = randn(batch, seq, input_size) if batch_first else randn(seq, batch, input_size)
        state_shape = (num_layers, batch, hidden_size)
    h0 = randn(*state_shape) if initial_state else None
    c0 = randn(*state_shape) if initial_state and is_lstm else None
    if is_lstm:
        res = layer(x, (h0, c0) if initial_state else None)
    else:
        res = layer(x, h0)
    if is_cell:
        out, h_n, c_n = (None, res[0], res[1]) if is_lstm else (None, res, None)
    else:
        out, state = res
        h_n, c_n = (state[0], state[1]) if is_lstm else (state, None)
    loss = torch.zeros(())
    g = gh = gc = None
    if out is not None:
        g = torch.randn_like(out)
        loss = loss + (out * g).sum()
    gh = torch.randn_like(h_n)
    loss = loss + (h_n * gh).sum()
    if c_n is not None:
        gc = torch.randn_like(c_n)
        loss = loss + (c_n * gc).sum()
    loss.backward()
    opt = lambda t: None if t is None else L(t)
    return {
        'kind': kind, 'inputSize': input_size, 'hiddenSize': hidden_size, 'numLayers': num_layers, 'bias': bias,
        'batchFirst': batch_first, 'nonlinearity': nonlinearity,
        'params': {name: L(p) for name, p in layer.named_parameters()},
        'x': L(x), 'h0': opt(h0), 'c0': opt(c0), 'g': opt(g), 'gh': L(gh), 'gc': opt(gc),
        'out': opt(out), 'hN': L(h_n), 'cN': opt(c_n),
        'dx': L(x.grad), 'dh0': opt(None if h0 is None else h0.grad), 'dc0': opt(None if c0 is None else c0.grad),
        'grads': {name: L(p.grad) for name, p in layer.named_parameters()},
    }


def rnn_cases():
    # Seeded on its own so adding cases here never changes the other fixture files.
    torch.manual_seed(7)
    return [
        rnn_case('RNN', 3, 4, num_layers=2),
        rnn_case('RNN', 3, 4, nonlinearity='relu', initial_state=False),
        rnn_case('RNN', 2, 3, bias=False, seq=3),
        rnn_case('LSTM', 3, 4, num_layers=2, initial_state=False),
        rnn_case('LSTM', 3, 4, num_layers=2),
        rnn_case('LSTM', 3, 5, batch_first=True, seq=3, batch=3),
        rnn_case('GRU', 3, 4, num_layers=2),
        rnn_case('GRU', 2, 3, initial_state=False, bias=False),
        rnn_case('GRU', 3, 4, batch_first=True, seq=5),
        rnn_case('RNNCell', 3, 4),
        rnn_case('RNNCell', 3, 4, nonlinearity='relu', initial_state=False),
        rnn_case('LSTMCell', 3, 4),
        rnn_case('LSTMCell', 3, 4, initial_state=False),
        rnn_case('GRUCell', 3, 4),
        rnn_case('GRUCell', 3, 4, initial_state=False, bias=False),
    ]


def _bool_mask(t):
    return None if t is None else L(t.to(torch.float32))


def mha_case(embed_dim, num_heads, tgt=4, src=None, batch=2, cross=False, causal=False, key_padding=None,
             float_mask=False, batch_first=False, bias=True, average=True):
    """torch.nn.MultiheadAttention with need_weights=True. The loss is sum(out * g) + sum(w * gw), so the
    returned attention weights' gradient path is checked as well as the output's. Boolean masks are
    stored as 0/1 floats (1 = masked); `key_padding` lists, per batch element, how many trailing keys
    are padding. Parameters are stored under PyTorch's names (in_proj_weight, out_proj.weight, ...)."""
    src = tgt if src is None else src
    mha = torch.nn.MultiheadAttention(embed_dim, num_heads, bias=bias, batch_first=batch_first)
    if bias:
        # PyTorch initialises both biases to zero; random values test that they are applied.
        with torch.no_grad():
            mha.in_proj_bias.normal_(0, 0.5)
            mha.out_proj.bias.normal_(0, 0.5)

    def seq(n):
        return randn(batch, n, embed_dim) if batch_first else randn(n, batch, embed_dim)

    q = seq(tgt)
    k = seq(src) if cross else q
    v = seq(src) if cross else q
    attn_mask = None
    if causal:
        attn_mask = torch.triu(torch.ones(tgt, src, dtype=torch.bool), diagonal=1)
    elif float_mask:
        attn_mask = torch.randn(batch * num_heads, tgt, src)
    kpm = None
    if key_padding is not None:
        kpm = torch.zeros(batch, src, dtype=torch.bool)
        for b, n in enumerate(key_padding):
            if n > 0:
                kpm[b, src - n:] = True
    out, w = mha(q, k, v, key_padding_mask=kpm, attn_mask=attn_mask, need_weights=True,
                 average_attn_weights=average)
    g = torch.randn_like(out)
    gw = torch.randn_like(w)
    ((out * g).sum() + (w * gw).sum()).backward()
    case = {
        'embedDim': embed_dim, 'numHeads': num_heads, 'batchFirst': batch_first, 'bias': bias,
        'average': average, 'cross': cross, 'causal': causal,
        'attnMask': None if attn_mask is None or causal else L(attn_mask),
        'keyPaddingMask': _bool_mask(kpm),
        'params': {name: L(p) for name, p in mha.named_parameters()},
        'q': L(q), 'k': L(k) if cross else None, 'v': L(v) if cross else None, 'g': L(g), 'gw': L(gw),
        'out': L(out), 'weights': L(w),
        'dq': L(q.grad), 'dk': L(k.grad) if cross else None, 'dv': L(v.grad) if cross else None,
        'grads': {name: L(p.grad) for name, p in mha.named_parameters()},
    }
    return case


def encoder_case(d_model, nhead, dim_ff, num_layers=None, seq=4, batch=2, norm_first=False, activation='relu',
                 batch_first=False, causal=False, key_padding=None, final_norm=False):
    """torch.nn.TransformerEncoderLayer (num_layers None) or a TransformerEncoder of num_layers copies,
    dropout 0. 'gelu' is torch's exact (erf) GELU, as needle's 'gelu' activation. The loss is
    sum(out * g). LayerNorm weights and biases are randomised so that they matter."""
    act = activation
    layer = torch.nn.TransformerEncoderLayer(d_model, nhead, dim_feedforward=dim_ff, dropout=0.0, activation=act,
                                             batch_first=batch_first, norm_first=norm_first)
    if num_layers is None:
        model = layer
    else:
        norm = torch.nn.LayerNorm(d_model) if final_norm else None
        model = torch.nn.TransformerEncoder(layer, num_layers, norm=norm, enable_nested_tensor=False)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith('in_proj_bias') or name.endswith('out_proj.bias') or 'norm' in name:
                p.copy_(torch.randn_like(p) * 0.5 + (1.0 if 'norm' in name and name.endswith('weight') else 0.0))
    x = randn(batch, seq, d_model) if batch_first else randn(seq, batch, d_model)
    mask = torch.triu(torch.ones(seq, seq, dtype=torch.bool), diagonal=1) if causal else None
    kpm = None
    if key_padding is not None:
        kpm = torch.zeros(batch, seq, dtype=torch.bool)
        for b, n in enumerate(key_padding):
            if n > 0:
                kpm[b, seq - n:] = True
    # TransformerEncoderLayer names its mask src_mask, TransformerEncoder names it mask.
    out = model(x, mask, src_key_padding_mask=kpm)
    g = torch.randn_like(out)
    (out * g).sum().backward()
    return {
        'dModel': d_model, 'nhead': nhead, 'dimFeedforward': dim_ff, 'numLayers': num_layers,
        'normFirst': norm_first, 'activation': activation, 'batchFirst': batch_first, 'causal': causal,
        'finalNorm': final_norm, 'keyPaddingMask': _bool_mask(kpm),
        'params': {name: L(p) for name, p in model.named_parameters()},
        'x': L(x), 'g': L(g), 'out': L(out), 'dx': L(x.grad),
        'grads': {name: L(p.grad) for name, p in model.named_parameters()},
    }


def attention_cases():
    # Seeded on its own so adding cases here never changes the other fixture files.
    torch.manual_seed(11)
    return {
        'mha': [
            mha_case(8, 2, tgt=4, batch=3),
            mha_case(6, 3, tgt=3, src=5, cross=True),
            mha_case(8, 2, tgt=5, causal=True),
            mha_case(8, 4, tgt=5, key_padding=[0, 2]),
            mha_case(6, 2, tgt=3, src=4, cross=True, float_mask=True, key_padding=[1, 0]),
            mha_case(8, 4, tgt=4, batch_first=True, causal=True),
            mha_case(4, 2, tgt=3, bias=False, average=False),
        ],
        'layer': [
            encoder_case(8, 2, 16, batch=3),
            encoder_case(8, 2, 16, norm_first=True, activation='gelu', key_padding=[0, 1]),
            encoder_case(8, 4, 12, batch_first=True, activation='gelu', causal=True),
        ],
        'transformer': [
            encoder_case(8, 2, 16, num_layers=2, seq=5, causal=True, norm_first=True, final_norm=True),
            encoder_case(6, 3, 10, num_layers=2, seq=4, causal=True, batch_first=True, key_padding=[1, 0]),
        ],
    }


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
    write('conv2d', conv2d_cases())
    write('pool2d', pool_cases())
    write('embedding', embedding_case())
    write('rnn', rnn_cases())
    write('attention', attention_cases())
    write('gelu_exact', gelu_exact_case())


if __name__ == '__main__':
    main()
