#!/usr/bin/env python3
"""Golden values for @needle/nn's models (ResNet9, LanguageModel), computed with PyTorch.

Run with the system Python (Debian's python3-torch):  /usr/bin/python3 packages/nn/scripts/gen_model_fixtures.py
It writes packages/nn/test/fixtures/resnet9.json and language_model.json (committed; CI needs no Python).

The torch modules below mirror needle's structure, so parameter names map one to one (snake_case ->
camelCase). ResNet9 has 431k parameters, too many to store: its parameters and input are given by a
recipe, a hash-like pseudo-random sequence value[i] = offset + scale * 2 (frac(sin(12.9898 i + phase)
* 43758.5453) - 0.5) over the flat index i (computed in float64 and rounded to float32 on both sides),
and its gradients are stored at 48 evenly spaced elements per parameter. Its reference values are
computed in float64 from those float32 parameters: a deep float32 network with batch norm over few
values loses about 1e-5 relative (torch's own float32 result is that far from the exact one), so the
fixture holds the exact answer and the test allows float32's error around it. (A smooth recipe such as
sin(freq * i) made batch statistics nearly degenerate and float32 100x worse: hence the hash.)
The language models are small: their parameters and gradients are stored whole.
Every loss is sum(out * g) (+ sum(state * gs) for the recurrent states).
"""
import json
import math
import os

import torch
import torch.nn as nn

from torch_resnet9 import ResNet9

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'test', 'fixtures')


def L(t):
    return t.detach().to(torch.float32).tolist()


def write(name, data):
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, f'{name}.json'), 'w') as f:
        json.dump(data, f, indent=None, separators=(',', ':'))
        f.write('\n')


def recipe_values(r, shape):
    i = torch.arange(math.prod(shape), dtype=torch.float64)
    v = torch.sin(i * 12.9898 + r['phase']) * 43758.5453
    return (r['offset'] + r['scale'] * 2 * (v - torch.floor(v) - 0.5)).to(torch.float32).reshape(shape)


def sample_indices(n, count=48):
    return sorted({(k * n) // count for k in range(count)} | {n - 1})


def sampled(t, idx):
    flat = t.detach().reshape(-1)
    return [float(flat[i]) for i in idx]


# ---- ResNet9 ----------------------------------------------------------------------------------------

def resnet9_case():
    torch.manual_seed(9)
    model = ResNet9()
    recipes = {}
    with torch.no_grad():
        for k, (name, p) in enumerate(model.named_parameters()):
            if '.bn.' in name:
                r = {'offset': 1.0 if name.endswith('weight') else 0.0, 'scale': 0.3}
            else:
                fan_in = math.prod(p.shape[1:]) if p.dim() > 1 else 128
                r = {'offset': 0.0, 'scale': 1 / math.sqrt(fan_in)}
            r['phase'] = 0.31 * k
            recipes[name] = r
            p.copy_(recipe_values(r, list(p.shape)))
    model = model.double()
    x_recipe = {'offset': 0.5, 'scale': 0.5, 'phase': 0.2}
    batch = 8
    x = recipe_values(x_recipe, [batch, 3, 32, 32]).double().requires_grad_(True)
    out = model(x)
    g = torch.randn_like(out)
    (out * g).sum().backward()
    grads = {}
    for name, p in model.named_parameters():
        idx = sample_indices(p.numel())
        grads[name] = {'index': idx, 'values': sampled(p.grad, idx)}
    dx_idx = sample_indices(x.numel(), 96)
    buffers = {name: L(b) for name, b in model.named_buffers() if 'num_batches' not in name and name.startswith('model.5.')}
    model.eval()
    with torch.no_grad():
        eval_out = model(x)
    return {
        'recipes': {name: {**r, 'shape': list(p.shape)} for (name, p), r in zip(model.named_parameters(), recipes.values())},
        'x': {**x_recipe, 'shape': [batch, 3, 32, 32]},
        'g': L(g), 'out': L(out), 'evalOut': L(eval_out),
        'dx': {'index': dx_idx, 'values': sampled(x.grad, dx_idx)},
        'grads': grads, 'buffers': buffers,
    }


# ---- LanguageModel ----------------------------------------------------------------------------------

class LanguageModel(nn.Module):
    """needle's LanguageModel; 'transformer': learned positions + a causal pre-norm encoder with a final LayerNorm."""

    def __init__(self, embedding_size, output_size, hidden_size, num_layers, seq_model, seq_len, nhead, activation):
        super().__init__()
        self.embedding = nn.Embedding(output_size, embedding_size)
        self.kind = seq_model
        if seq_model == 'transformer':
            self.position_embedding = nn.Embedding(seq_len, embedding_size)
            layer = nn.TransformerEncoderLayer(embedding_size, nhead, dim_feedforward=hidden_size, dropout=0.0,
                                               activation=activation, norm_first=True)
            self.seq_model = nn.TransformerEncoder(layer, num_layers, norm=nn.LayerNorm(embedding_size),
                                                   enable_nested_tensor=False)
            width = embedding_size
        else:
            cls = {'rnn': nn.RNN, 'lstm': nn.LSTM, 'gru': nn.GRU}[seq_model]
            self.seq_model = cls(embedding_size, hidden_size, num_layers)
            width = hidden_size
        self.linear = nn.Linear(width, output_size)

    def forward(self, ids, state=None):
        t, b = ids.shape
        x = self.embedding(ids)
        if self.kind == 'transformer':
            x = x + self.position_embedding(torch.arange(t)).unsqueeze(1)
            mask = torch.triu(torch.ones(t, t, dtype=torch.bool), diagonal=1)
            out, state = self.seq_model(x, mask), None
        else:
            out, state = self.seq_model(x, state)
        return self.linear(out.reshape(t * b, -1)), state


def lm_case(seq_model, activation='relu', num_layers=2, with_state=True):
    vocab, emb, hidden, seq, batch = 11, 8, 6, 5, 3
    model = LanguageModel(emb, vocab, hidden, num_layers, seq_model, seq_len=7, nhead=2, activation=activation)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if 'norm' in name or name.endswith('in_proj_bias') or name.endswith('out_proj.bias'):
                p.copy_(torch.randn_like(p) * 0.5 + (1.0 if 'norm' in name and name.endswith('weight') else 0.0))
    ids = torch.randint(0, vocab, (seq, batch))
    state = None
    if seq_model != 'transformer' and with_state:
        h0 = (torch.randn(num_layers, batch, hidden) * 0.5).requires_grad_(True)
        c0 = (torch.randn(num_layers, batch, hidden) * 0.5).requires_grad_(True)
        state = (h0, c0) if seq_model == 'lstm' else h0
    logits, new_state = model(ids, state)
    g = torch.randn_like(logits)
    loss = (logits * g).sum()
    out_states = [] if new_state is None else list(new_state) if isinstance(new_state, tuple) else [new_state]
    gs = [torch.randn_like(s) for s in out_states]
    for s, w in zip(out_states, gs):
        loss = loss + (s * w).sum()
    loss.backward()
    in_states = [] if state is None else list(state) if isinstance(state, tuple) else [state]
    return {
        'seqModel': seq_model, 'activation': activation, 'vocab': vocab, 'embeddingSize': emb, 'hiddenSize': hidden,
        'numLayers': num_layers, 'seqLen': 7, 'nhead': 2,
        'params': {name: L(p) for name, p in model.named_parameters()},
        'ids': ids.tolist(), 'g': L(g), 'logits': L(logits),
        'state': [L(s) for s in in_states], 'gs': [L(w) for w in gs], 'newState': [L(s) for s in out_states],
        'dState': [L(s.grad) for s in in_states],
        'grads': {name: L(p.grad) for name, p in model.named_parameters()},
    }


def lm_cases():
    torch.manual_seed(21)
    return [
        lm_case('rnn'),
        lm_case('lstm'),
        lm_case('gru'),
        lm_case('lstm', num_layers=1, with_state=False),
        lm_case('transformer'),
        lm_case('transformer', activation='gelu', num_layers=1),
    ]


def main():
    write('resnet9', resnet9_case())
    write('language_model', lm_cases())


if __name__ == '__main__':
    main()
