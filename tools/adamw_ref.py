#!/usr/bin/env python3
"""Reference for lorac's AdamW, LR schedule and gradient clipping (tests/test_adamw.c).

Run:   .venv/bin/python tools/adamw_ref.py
Writes tests/fixtures/train/adamw_ref.txt (~40 KB, text): a small parameter vector in two groups
(the first N_DECAY with weight decay, the rest without, as a decay mask does), random gradients, and
the parameters torch.optim.AdamW leaves after each of STEPS steps when the learning rate follows
get_linear_schedule_with_warmup (HF's lambda, via torch's LambdaLR stepped after each optimizer step)
and gradients are clipped with torch.nn.utils.clip_grad_norm_. Floats are written with float.hex so
C reads them back exactly with strtod.

Lines: "key value" for scalars; "key i v0 v1 ..." (i = step) or "key v0 v1 ..." for vectors.
"""
import os

import numpy as np
import torch

N, N_DECAY, STEPS = 64, 40, 14
LR, WARMUP, TOTAL = 2e-3, 3, 11  # steps past TOTAL run at lr 0
WD, BETA1, BETA2, EPS, MAX_NORM = 0.1, 0.9, 0.999, 1e-8, 1.0


def lr_lambda(k):  # transformers.get_linear_schedule_with_warmup
    if k < WARMUP:
        return float(k) / float(max(1, WARMUP))
    return max(0.0, float(TOTAL - k) / float(max(1, TOTAL - WARMUP)))


def hexes(t):
    return " ".join(float(x).hex() for x in t.detach().reshape(-1).tolist())


def main():
    torch.manual_seed(1234)
    rng = np.random.default_rng(1234)
    p0 = rng.standard_normal(N).astype(np.float32)
    # gradient scales straddle MAX_NORM so some steps clip and some do not
    scales = [0.05, 0.3, 2.0, 0.08, 5.0, 0.2, 1.5, 0.02, 0.4, 3.0, 0.1, 0.6, 0.05, 2.5]
    grads = [(rng.standard_normal(N) * s / np.sqrt(N)).astype(np.float32) for s in scales[:STEPS]]

    a = torch.nn.Parameter(torch.from_numpy(p0[:N_DECAY].copy()))
    b = torch.nn.Parameter(torch.from_numpy(p0[N_DECAY:].copy()))
    opt = torch.optim.AdamW([{"params": [a]}, {"params": [b], "weight_decay": 0.0}],
                            lr=LR, betas=(BETA1, BETA2), eps=EPS, weight_decay=WD,
                            foreach=False)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda)

    out = [f"# written by tools/adamw_ref.py with torch {torch.__version__}; do not edit",
           f"n {N}", f"n_decay {N_DECAY}", f"steps {STEPS}", f"lr {LR.hex()}", f"warmup {WARMUP}",
           f"total {TOTAL}", f"weight_decay {WD.hex()}", f"beta1 {BETA1.hex()}",
           f"beta2 {BETA2.hex()}", f"eps {EPS.hex()}", f"max_norm {MAX_NORM.hex()}",
           f"params0 {hexes(torch.from_numpy(p0))}"]
    for k in range(STEPS):
        g = torch.from_numpy(grads[k])
        a.grad = g[:N_DECAY].clone()
        b.grad = g[N_DECAY:].clone()
        lr_used = opt.param_groups[0]["lr"]
        norm = torch.nn.utils.clip_grad_norm_([a, b], MAX_NORM, foreach=False)
        opt.step()
        sched.step()
        out.append(f"grad {k} {hexes(g)}")
        out.append(f"lr_used {k} {float(lr_used).hex()}")
        out.append(f"norm {k} {float(norm).hex()}")
        out.append(f"clipped {k} {hexes(torch.cat([a.grad, b.grad]))}")
        out.append(f"params {k} {hexes(torch.cat([a, b]))}")
    out.append(f"m {hexes(torch.cat([opt.state[a]['exp_avg'], opt.state[b]['exp_avg']]))}")
    out.append(f"v {hexes(torch.cat([opt.state[a]['exp_avg_sq'], opt.state[b]['exp_avg_sq']]))}")

    here = os.path.dirname(os.path.abspath(__file__))
    path = os.path.join(here, "..", "tests", "fixtures", "train", "adamw_ref.txt")
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")
    print(f"wrote {os.path.normpath(path)}")


if __name__ == "__main__":
    main()
