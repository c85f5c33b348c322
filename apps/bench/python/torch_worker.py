"""PyTorch (CPU) measuring process of the needle benchmark harness.

Speaks the harness protocol (src/protocol.ts) as one JSON object per line on stdin/stdout.
Arrays come and go as raw little-endian float32 files. Every step ends with its result computed
(PyTorch CPU ops are synchronous), so timings are comparable with the Node workers.
"""
import json
import os
import sys
import time

import numpy as np
import torch

# The torch mirror of @needle/nn's ResNet9 lives beside nn's fixture generators; one definition.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', '..', 'packages', 'nn', 'scripts'))
from torch_resnet9 import ResNet9  # noqa: E402

MLP_LR = 0.1  # must match MLP_LR in src/cases.ts
CONVNET_KERNEL, CONVNET_PAD = 3, 1  # must match src/cases.ts


class Unavailable(Exception):
    pass


class LanguageModel(torch.nn.Module):
    """needle hw4's LanguageModel with an LSTM: Embedding, LSTM, Linear on every position."""

    def __init__(self, vocab, emb, hidden):
        super().__init__()
        self.embedding = torch.nn.Embedding(vocab, emb)
        self.seq_model = torch.nn.LSTM(emb, hidden)
        self.linear = torch.nn.Linear(hidden, vocab)

    def forward(self, ids):
        t, b = ids.shape
        out, _ = self.seq_model(self.embedding(ids))
        return self.linear(out.reshape(t * b, -1))


def seeded(model, values):
    """Copy the seeded weights into the model's parameters (named_parameters order = src/cases.ts's)."""
    params = list(model.parameters())
    with torch.no_grad():
        for p, value in zip(params, values):
            p.copy_(value.reshape(p.shape))
    return params


def blas_in_use():
    """The BLAS/LAPACK libraries this process has mapped (after one matmul), as file names.

    Debian's torch links the generic libblas.so.3, which the dynamic loader resolves through
    LD_LIBRARY_PATH first (an unpacked OpenBLAS) and the alternatives system otherwise (the
    reference netlib BLAS unless libopenblas is installed), so the mapped file is the truth.
    """
    torch.ones(64, 64) @ torch.ones(64, 64)
    with open("/proc/self/maps") as f:
        paths = {line.split()[-1] for line in f if "blas" in line or "lapack" in line}
    libs = sorted(p for p in paths if p.startswith("/"))
    return "; ".join(libs) if libs else "none mapped (statically linked or MKL)"


def pool_settings():
    """The thread-pool variables the harness may set (see PythonChannel), as they reached torch."""
    keys = ("OPENBLAS_NUM_THREADS", "OMP_WAIT_POLICY")
    return "".join(f", {k}={os.environ[k]}" for k in keys if k in os.environ)


def read_f32(path):
    return torch.from_numpy(np.fromfile(path, dtype="<f4").copy())


class Prepared:
    def __init__(self, spec, inputs, dtype=torch.float32):
        kind, dims = spec["kind"], spec["dims"]
        self.last = None
        if dtype != torch.float32:
            if kind not in ("resnet9", "lm"):
                raise Unavailable(f"{kind} has its own float64 reference in src/reference.ts")
            inputs = [t.to(dtype) for t in inputs]
        if kind == "matmul":
            n = dims[0]
            a, b = inputs[0].reshape(n, n), inputs[1].reshape(n, n)
            self.fn = lambda: torch.matmul(a, b)
        elif kind == "ewise":
            a, b = inputs
            self.fn = lambda: torch.add(a, b)
        elif kind == "reduce":
            a = inputs[0]
            self.fn = lambda: torch.sum(a)
        elif kind == "mlp":
            batch, n_in, n_hidden, n_classes = dims
            x = inputs[0].reshape(batch, n_in)
            y = inputs[1].reshape(batch, n_classes)
            params = [
                inputs[2].reshape(n_in, n_hidden).requires_grad_(),
                inputs[3].requires_grad_(),
                inputs[4].reshape(n_hidden, n_classes).requires_grad_(),
                inputs[5].requires_grad_(),
            ]
            opt = torch.optim.SGD(params, lr=MLP_LR)
            w1, b1, w2, b2 = params

            def step():
                opt.zero_grad(set_to_none=True)
                logits = torch.relu(x @ w1 + b1) @ w2 + b2
                # Mean softmax cross-entropy against one-hot targets, as in the reference.
                loss = -(torch.log_softmax(logits, dim=1) * y).sum() / batch
                loss.backward()
                opt.step()
                return loss.detach()

            self.fn = step
            self.params = params
        elif kind == "convnet":
            batch, channels, size, c1, c2, classes = dims
            k, pad = CONVNET_KERNEL, CONVNET_PAD
            flat = c2 * (size // 4) * (size // 4)
            x = inputs[0].reshape(batch, channels, size, size)
            # cross_entropy takes class indices as int64; converted once, outside the timed step.
            labels = inputs[1].long()
            model = torch.nn.Sequential(
                torch.nn.Conv2d(channels, c1, k, padding=pad),
                torch.nn.ReLU(),
                torch.nn.MaxPool2d(2),
                torch.nn.Conv2d(c1, c2, k, padding=pad),
                torch.nn.ReLU(),
                torch.nn.MaxPool2d(2),
                torch.nn.Flatten(),
                torch.nn.Linear(flat, classes),
            )
            # The seeded weights replace torch's own initialisation; the layouts are torch's already.
            with torch.no_grad():
                for p, value in zip(model.parameters(), inputs[2:]):
                    p.copy_(value.reshape(p.shape))
            params = list(model.parameters())
            opt = torch.optim.SGD(params, lr=MLP_LR)

            def step():
                opt.zero_grad(set_to_none=True)
                loss = torch.nn.functional.cross_entropy(model(x), labels)  # mean over the batch
                loss.backward()
                opt.step()
                return loss.detach()

            self.fn = step
            self.params = params
        elif kind == "lstm":
            batch, seq, n_in, hidden, classes = dims
            x = inputs[0].reshape(seq, batch, n_in)  # torch.nn.LSTM's default layout, seq first
            labels = inputs[1].long()
            lstm = torch.nn.LSTM(n_in, hidden)
            fc = torch.nn.Linear(hidden, classes)
            # Seeded weights in torch's own layouts and names: weight_ih_l0, weight_hh_l0, bias_ih_l0,
            # bias_hh_l0 (gate order i, f, g, o), then the Linear's weight and bias.
            params = list(lstm.parameters()) + list(fc.parameters())
            with torch.no_grad():
                for p, value in zip(params, inputs[2:]):
                    p.copy_(value.reshape(p.shape))
            opt = torch.optim.SGD(params, lr=MLP_LR)

            def step():
                opt.zero_grad(set_to_none=True)
                out, _ = lstm(x)  # zero initial state
                loss = torch.nn.functional.cross_entropy(fc(out[-1]), labels)
                loss.backward()
                opt.step()
                return loss.detach()

            self.fn = step
            self.params = params
        elif kind == "resnet9":
            (batch,) = dims
            x = inputs[0].reshape(batch, 3, 32, 32)
            labels = inputs[1].long()
            model = ResNet9().to(dtype)  # training mode: batch statistics, running statistics updated
            params = seeded(model, inputs[2:])
            opt = torch.optim.SGD(params, lr=MLP_LR)

            def step():
                opt.zero_grad(set_to_none=True)
                loss = torch.nn.functional.cross_entropy(model(x), labels)
                loss.backward()
                opt.step()
                return loss.detach()

            self.fn = step
            self.params = params
        elif kind == "lm":
            batch, seq, vocab, emb, hidden = dims
            ids = inputs[0].reshape(seq, batch).long()
            targets = inputs[1].long()
            model = LanguageModel(vocab, emb, hidden).to(dtype)
            params = seeded(model, inputs[2:])
            opt = torch.optim.SGD(params, lr=MLP_LR)

            def step():
                opt.zero_grad(set_to_none=True)
                loss = torch.nn.functional.cross_entropy(model(ids), targets)
                loss.backward()
                opt.step()
                return loss.detach()

            self.fn = step
            self.params = params
        else:
            raise Unavailable(f"{kind} is not a case this worker knows")
        self.kind = kind

    def step(self):
        self.last = self.fn()

    def output(self):
        if self.kind in ("mlp", "convnet", "lstm", "resnet9", "lm"):
            parts = [self.last.reshape(1)] + [p.detach().reshape(-1) for p in self.params]
            return torch.cat(parts).float().numpy()
        return self.last.reshape(-1).float().numpy()


def main():
    prepared = None
    info = None
    for line in sys.stdin:
        req = json.loads(line)
        op = req["op"]
        try:
            if op == "init":
                threads = int(req["threads"])
                torch.set_num_threads(threads)
                info = {
                    "threads": torch.get_num_threads(),
                    "details": f"torch {torch.__version__}, mkl={torch.backends.mkl.is_available()}, mkldnn={torch.backends.mkldnn.is_available()}, BLAS {blas_in_use()}{pool_settings()}",
                }
                reply = {"ok": True, "info": info}
            elif op == "prepare":
                prepared = None
                inputs = [read_f32(f) for f in req["inputFiles"]]
                prepared = Prepared(req["spec"], inputs)
                prepared.step()
                prepared.output().astype("<f4").tofile(req["outputFile"])
                reply = {"ok": True}
            elif op == "reference":
                # One step in float64, the reference of the flagship-model cases (src/reference.ts).
                inputs = [read_f32(f) for f in req["inputFiles"]]
                ref = Prepared(req["spec"], inputs, torch.float64)
                ref.step()
                ref.output().astype("<f4").tofile(req["outputFile"])
                reply = {"ok": True}
            elif op == "calibrate":
                n, t0 = 0, time.perf_counter()
                t = t0
                while n < 2 or (t - t0) * 1000 < req["warmupMs"]:
                    prepared.step()
                    n += 1
                    t = time.perf_counter()
                per_iter_ms = (t - t0) * 1000 / n
                reply = {"ok": True, "perIterMs": per_iter_ms, "batch": max(1, round(req["sampleMs"] / per_iter_ms))}
            elif op == "round":
                times = []
                for _ in range(req["samples"]):
                    t0 = time.perf_counter()
                    for _ in range(req["batch"]):
                        prepared.step()
                    times.append((time.perf_counter() - t0) * 1000 / req["batch"])
                reply = {"ok": True, "times": times}
            elif op == "release":
                prepared = None
                reply = {"ok": True}
            elif op == "exit":
                print(json.dumps({"ok": True}), flush=True)
                return
            else:
                reply = {"ok": False, "unavailable": False, "reason": f"unknown op {op}"}
        except Unavailable as e:
            reply = {"ok": False, "unavailable": True, "reason": str(e)}
        except Exception as e:  # reported to the harness, which marks the entry failed
            reply = {"ok": False, "unavailable": False, "reason": f"{type(e).__name__}: {e}"}
        print(json.dumps(reply), flush=True)


if __name__ == "__main__":
    main()
