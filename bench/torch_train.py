#!/usr/bin/env python3
"""The PyTorch + loralib reference of `lorac bench train`: the same training step, side by side.

Run (bench/run.sh does this; any venv with torch, loralib and transformers from PyPI):
    python bench/torch_train.py --batch 8 --seq 128 --steps 5 [--json]

What it does, mirroring cli/cmd_bench.c:
  - GPT2LMHeadModel(GPT2Config(...)) with random weights (transformers' GPT-2 init) of the given
    shape; every block's attn.c_attn (a Conv1D) is replaced by loralib.MergedLinear(C, 3C, r,
    lora_alpha, lora_dropout, enable_lora=[q, k, v], fan_in_fan_out=True) holding the same weight,
    exactly as microsoft/LoRA's examples/NLG GPT-2 does; --targets c_attn puts a loralib.Linear
    (fan_in_fan_out) on the whole projection instead;
  - loralib.mark_only_lora_as_trainable: the base is frozen, so no weight gradients are computed;
  - a step = zero_grad, forward on random ids, cross-entropy with label smoothing 0.1 on random
    targets (mean over B*T), backward, torch.optim.AdamW(lr 2e-4, wd 0.01) on the LoRA params;
  - median tokens/s = B*T / median step time over --steps after --warmup steps;
  - peak RSS from resource.getrusage(RUSAGE_SELF).ru_maxrss (KiB on Linux);
  - torch.set_num_threads(--threads, default os.cpu_count()).
Writes nothing; prints a human summary or, with --json, one JSON object with the keys lorac uses
(tokens_per_s, ms_per_step, peak_rss_mb, forward_ms, backward_ms, adamw_ms, ...).
"""
import argparse
import json
import os
import re
import resource
import statistics
import sys
import time


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--layers", type=int, default=12)
    p.add_argument("--embd", type=int, default=768)
    p.add_argument("--heads", type=int, default=12)
    p.add_argument("--vocab", type=int, default=50257)
    p.add_argument("--positions", type=int, default=1024)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--seq", type=int, default=128)
    p.add_argument("--rank", type=int, default=4)
    p.add_argument("--alpha", type=float, default=32.0)
    p.add_argument("--targets", default="q,v", help="q,k,v slices of c_attn (comma list) or c_attn")
    p.add_argument("--lora-dropout", type=float, default=0.1)
    p.add_argument("--label-smoothing", type=float, default=0.1)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--json", action="store_true")
    return p.parse_args()


def attach_lora(model, a, loralib, torch):
    targets = [t.strip() for t in a.targets.split(",") if t.strip()]
    C = a.embd
    for block in model.transformer.h:
        old = block.attn.c_attn  # transformers Conv1D: weight (C, 3C), bias (3C)
        if targets == ["c_attn"]:
            new = loralib.Linear(C, 3 * C, r=a.rank, lora_alpha=a.alpha, lora_dropout=a.lora_dropout,
                                 fan_in_fan_out=True, merge_weights=False)
        else:
            bad = [t for t in targets if t not in ("q", "k", "v")]
            if bad:
                sys.exit("torch_train.py: --targets takes q,k,v or c_attn (got %s)" % a.targets)
            enable = [s in targets for s in ("q", "k", "v")]
            new = loralib.MergedLinear(C, 3 * C, r=a.rank, lora_alpha=a.alpha, lora_dropout=a.lora_dropout,
                                       enable_lora=enable, fan_in_fan_out=True, merge_weights=False)
        with torch.no_grad():
            new.weight.copy_(old.weight)  # fan_in_fan_out: stored (in, out) like Conv1D
            new.bias.copy_(old.bias)
        block.attn.c_attn = new
    loralib.mark_only_lora_as_trainable(model)


def blas_info(torch):
    """BLAS_INFO, the MKL/oneDNN lines and the CPU capability from torch.__config__.show()."""
    show = torch.__config__.show()
    parts = re.findall(r"BLAS_INFO=[^,]*", show)
    parts += [l.strip(" -") for l in show.splitlines() if "Math Kernel" in l or "MKL-DNN" in l or "CPU capability" in l]
    return "; ".join(parts)


def main():
    a = parse_args()
    import torch
    import loralib
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    cfg = GPT2Config(n_layer=a.layers, n_embd=a.embd, n_head=a.heads, vocab_size=a.vocab,
                     n_positions=max(a.positions, a.seq), resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    model = GPT2LMHeadModel(cfg)
    attach_lora(model, a, loralib, torch)
    model.train()  # LoRA dropout on, as lorac's training mode; GPT-2's own dropouts are 0 above
    params = [p for p in model.parameters() if p.requires_grad]
    n_trainable = sum(p.numel() for p in params)
    opt = torch.optim.AdamW(params, lr=2e-4, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)
    loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=a.label_smoothing)
    ids = torch.randint(0, a.vocab, (a.batch, a.seq))
    targets = torch.randint(0, a.vocab, (a.batch, a.seq))

    t_step, t_fwd, t_bwd, t_opt = [], [], [], []
    loss_v = float("nan")
    for s in range(a.warmup + a.steps):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        logits = model(input_ids=ids).logits
        loss = loss_fn(logits.view(-1, a.vocab), targets.view(-1))
        t1 = time.perf_counter()
        loss.backward()
        t2 = time.perf_counter()
        opt.step()
        t3 = time.perf_counter()
        loss_v = loss.item()
        del logits, loss
        if not a.json:
            what = "warm-up %d" % (s + 1) if s < a.warmup else "step %d" % (s - a.warmup + 1)
            print("%s: %.1f ms (loss %.4f)" % (what, 1e3 * (t3 - t0), loss_v), file=sys.stderr)
        if s >= a.warmup:
            t_step.append(t3 - t0)
            t_fwd.append(t1 - t0)
            t_bwd.append(t2 - t1)
            t_opt.append(t3 - t2)

    med = statistics.median(t_step)
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    out = {
        "tokens_per_s": round(a.batch * a.seq / med, 2),
        "ms_per_step": round(1e3 * med, 2),
        "peak_rss_mb": round(rss_mb, 1),
        "forward_ms": round(1e3 * statistics.median(t_fwd), 2),
        "backward_ms": round(1e3 * statistics.median(t_bwd), 2),
        "adamw_ms": round(1e3 * statistics.median(t_opt), 3),
        "batch": a.batch, "seq": a.seq, "steps": a.steps, "warmup": a.warmup,
        "trainable_params": n_trainable, "loss": round(loss_v, 4),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__, "loralib": getattr(loralib, "__version__", "?"),
        "cpu_capability": torch.backends.cpu.get_cpu_capability() if hasattr(torch.backends, "cpu") else "?",
        "blas": blas_info(torch),
    }
    if a.json:
        print(json.dumps(out))
    else:
        print("torch %s + loralib | threads %d | %s" % (out["torch"], out["threads"], out["blas"]))
        print("batch %d x seq %d, %d steps after %d warm-up, %d trainable params" %
              (a.batch, a.seq, a.steps, a.warmup, n_trainable))
        print("median step %.1f ms: forward+loss %.1f ms, backward %.1f ms, AdamW %.3f ms" %
              (out["ms_per_step"], out["forward_ms"], out["backward_ms"], out["adamw_ms"]))
        print("tokens/s %.1f | peak RSS %.1f MiB" % (out["tokens_per_s"], out["peak_rss_mb"]))


if __name__ == "__main__":
    main()
