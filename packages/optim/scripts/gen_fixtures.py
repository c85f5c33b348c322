"""Golden values for @needle/optim's tests, computed with PyTorch.

Run with Debian's torch (apt-get install -y python3-torch):
    /usr/bin/python3 packages/optim/scripts/gen_fixtures.py
It rewrites packages/optim/test/fixtures/*.json; commit them with any change here.

Optimizer cases feed predetermined gradients (seeded random) to two parameters over several steps,
so the fixtures test the update rules alone, independent of autograd. Values are float32, as in
needle.
"""
import json
import math
import os

import torch

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "test", "fixtures")
STEPS = 6
SHAPES = [[3, 4], [5]]


def tolist(t):
    return [float(x) for x in t.detach().reshape(-1).tolist()]


def optimizer_case(name, make, groups=None):
    g = torch.Generator().manual_seed(1234)
    params = [torch.nn.Parameter(torch.randn(*s, generator=g)) for s in SHAPES]
    init = [tolist(p) for p in params]
    opt = make(params if groups is None else [dict(params=[params[i]], **o) for i, o in enumerate(groups)])
    grads, after = [], []
    for _ in range(STEPS):
        step_grads = [torch.randn(*s, generator=g) for s in SHAPES]
        for p, gr in zip(params, step_grads):
            p.grad = gr.clone()
        opt.step()
        grads.append([tolist(gr) for gr in step_grads])
        after.append([tolist(p) for p in params])
    return dict(name=name, shapes=SHAPES, init=init, grads=grads, after=after)


def optimizer_cases():
    SGD, Adam, AdamW = torch.optim.SGD, torch.optim.Adam, torch.optim.AdamW
    return [
        optimizer_case("sgd", lambda ps: SGD(ps, lr=0.1)),
        optimizer_case("sgd_weight_decay", lambda ps: SGD(ps, lr=0.1, weight_decay=0.05)),
        optimizer_case("sgd_momentum_dampening", lambda ps: SGD(ps, lr=0.05, momentum=0.9, dampening=0.1, weight_decay=0.01)),
        optimizer_case("sgd_nesterov", lambda ps: SGD(ps, lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.05)),
        optimizer_case("adam", lambda ps: Adam(ps, lr=0.01)),
        optimizer_case("adam_weight_decay_betas", lambda ps: Adam(ps, lr=0.02, betas=(0.8, 0.95), eps=1e-6, weight_decay=0.1)),
        optimizer_case("adam_amsgrad", lambda ps: Adam(ps, lr=0.01, weight_decay=0.05, amsgrad=True)),
        optimizer_case("adamw", lambda ps: AdamW(ps, lr=0.01, weight_decay=0.1)),
        optimizer_case("adamw_amsgrad", lambda ps: AdamW(ps, lr=0.02, weight_decay=0.3, amsgrad=True)),
        # Per-group options override the defaults.
        optimizer_case("sgd_param_groups", lambda gs: SGD(gs, lr=0.1, momentum=0.5),
                       groups=[dict(lr=0.2), dict(momentum=0.9, weight_decay=0.1)]),
    ]


def schedule(make_sched, epochs, lr=0.1):
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=lr)
    sched = make_sched(opt)
    lrs = []
    for _ in range(epochs):
        lrs.append(sched.get_last_lr()[0])
        opt.step()
        sched.step()
    return lrs


def scheduler_cases():
    S = torch.optim.lr_scheduler
    return [
        dict(name="step_lr", lr=0.1, step_size=3, gamma=0.5,
             lrs=schedule(lambda o: S.StepLR(o, step_size=3, gamma=0.5), 12)),
        dict(name="cosine_annealing", lr=0.1, t_max=10, eta_min=0.001,
             lrs=schedule(lambda o: S.CosineAnnealingLR(o, T_max=10, eta_min=0.001), 25)),
        dict(name="linear_lr", lr=0.1, start_factor=0.1, end_factor=1.0, total_iters=4,
             lrs=schedule(lambda o: S.LinearLR(o, start_factor=0.1, end_factor=1.0, total_iters=4), 8)),
        # Warm-up then cosine: the two chainable schedulers stepped together.
        dict(name="linear_then_cosine_chained", lr=0.1, start_factor=0.25, total_iters=3, t_max=8, eta_min=0.0,
             lrs=schedule_chained(lambda o: [S.LinearLR(o, start_factor=0.25, total_iters=3),
                                             S.CosineAnnealingLR(o, T_max=8)], 10)),
    ]


def schedule_chained(make, epochs, lr=0.1):
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=lr)
    scheds = make(opt)
    lrs = []
    for _ in range(epochs):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        for s in scheds:
            s.step()
    return lrs


def clip_cases():
    g = torch.Generator().manual_seed(99)
    cases = []
    for max_norm, norm_type in [(1.0, 2.0), (100.0, 2.0), (0.5, 1.0), (0.3, math.inf), (2.0, 3.0)]:
        params = [torch.nn.Parameter(torch.zeros(*s)) for s in SHAPES]
        grads = [torch.randn(*s, generator=g) for s in SHAPES]
        for p, gr in zip(params, grads):
            p.grad = gr.clone()
        total = torch.nn.utils.clip_grad_norm_(params, max_norm, norm_type=norm_type)
        cases.append(dict(max_norm=max_norm, norm_type="inf" if math.isinf(norm_type) else norm_type,
                          shapes=SHAPES, grads=[tolist(x) for x in grads], total=float(total),
                          clipped=[tolist(p.grad) for p in params]))
    return cases


def main():
    os.makedirs(OUT, exist_ok=True)
    for name, data in [("optimizers", optimizer_cases()), ("schedulers", scheduler_cases()), ("clip_grad_norm", clip_cases())]:
        with open(os.path.join(OUT, name + ".json"), "w") as f:
            json.dump(dict(torch=torch.__version__, cases=data), f, indent=1)
            f.write("\n")
    print("wrote fixtures with torch", torch.__version__)


if __name__ == "__main__":
    main()
