#!/usr/bin/env python3
"""PyTorch + PEFT beside `lorac bench train --model DIR`: the same training step on the same real model.

Run (bench/run.sh does this with MODEL=DIR; a venv with torch, transformers and peft from PyPI):
    python bench/peft_train.py --model DIR --batch 8 --seq 128 --steps 5 [--json]

What it does, mirroring cli/cmd_bench.c's bench train:
  - AutoModelForCausalLM (or, for BERT/RoBERTa, AutoModelForSequenceClassification) from DIR in fp32,
    the model's own dropout off (lorac trains causal LMs without it; for classifiers it is left on,
    as lorac applies hidden_dropout_prob);
  - peft.LoraConfig(r, lora_alpha, lora_dropout 0.1, target_modules = the family's defaults, as lorac's:
    GPT-2 c_attn, Llama q_proj,v_proj, BERT query,value), get_peft_model: the base is frozen;
  - a step = zero_grad, forward on random ids, cross-entropy with label smoothing 0.1 on random targets
    (a classifier: random labels, no smoothing), backward, torch.optim.AdamW(lr 2e-4, wd 0.01);
  - median tokens/s = B*T / median step time over --steps after --warmup; peak RSS (ru_maxrss).
GPT-2's q,v split of c_attn (lorac's default) has no PEFT form: PEFT puts rank r on all of c_attn.
Prints a summary or, with --json, the keys lorac bench train prints."""
import argparse
import json
import os
import resource
import statistics
import sys
import time

DEFAULT_TARGETS = {"gpt2": ["c_attn"], "bert": ["query", "value"], "roberta": ["query", "value"]}


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", required=True)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--seq", type=int, default=128)
    p.add_argument("--rank", type=int, default=0, help="0: the family's default (lorac's)")
    p.add_argument("--alpha", type=float, default=0)
    p.add_argument("--targets", default="", help="comma list of PEFT target modules; default: lorac's")
    p.add_argument("--lora-dropout", type=float, default=0.1)
    p.add_argument("--label-smoothing", type=float, default=0.1)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--json", action="store_true")
    return p.parse_args()


def main():
    a = parse_args()
    import torch
    import transformers as T
    import peft

    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    cfg = T.AutoConfig.from_pretrained(a.model)
    mt = cfg.model_type
    cls = mt in ("bert", "roberta")
    r = a.rank or (4 if mt == "gpt2" else 8)
    alpha = a.alpha or (32 if mt == "gpt2" else 16)
    targets = a.targets.split(",") if a.targets else DEFAULT_TARGETS.get(mt, ["q_proj", "v_proj"])
    if cls:
        model = T.AutoModelForSequenceClassification.from_pretrained(a.model, torch_dtype=torch.float32)
    else:
        for k in ("resid_pdrop", "embd_pdrop", "attn_pdrop", "attention_dropout"):
            if hasattr(cfg, k):
                setattr(cfg, k, 0.0)
        model = T.AutoModelForCausalLM.from_pretrained(a.model, config=cfg, torch_dtype=torch.float32)
    lc = peft.LoraConfig(r=r, lora_alpha=alpha, lora_dropout=a.lora_dropout, target_modules=targets,
                         task_type="SEQ_CLS" if cls else "CAUSAL_LM", fan_in_fan_out=mt == "gpt2")
    model = peft.get_peft_model(model, lc)
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    n_trainable = sum(p.numel() for p in params)
    opt = torch.optim.AdamW(params, lr=2e-4, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)
    V = cfg.vocab_size
    ids = torch.randint(0, V, (a.batch, a.seq))
    nl = getattr(cfg, "num_labels", 2)
    targets_t = torch.randint(0, nl if cls else V, (a.batch,) if cls else (a.batch, a.seq))
    loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=0.0 if cls else a.label_smoothing)

    t_step, t_fwd, t_bwd, t_opt, loss_v = [], [], [], [], float("nan")
    for s in range(a.warmup + a.steps):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        logits = model(input_ids=ids).logits
        loss = loss_fn(logits.reshape(-1, logits.shape[-1]), targets_t.reshape(-1))
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
            t_step += [t3 - t0]
            t_fwd += [t1 - t0]
            t_bwd += [t2 - t1]
            t_opt += [t3 - t2]
    med = statistics.median(t_step)
    out = {
        "tokens_per_s": round(a.batch * a.seq / med, 2), "ms_per_step": round(1e3 * med, 2),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1),
        "forward_ms": round(1e3 * statistics.median(t_fwd), 2), "backward_ms": round(1e3 * statistics.median(t_bwd), 2),
        "adamw_ms": round(1e3 * statistics.median(t_opt), 3), "batch": a.batch, "seq": a.seq, "steps": a.steps,
        "warmup": a.warmup, "trainable_params": n_trainable, "loss": round(loss_v, 4), "model_type": mt,
        "threads": torch.get_num_threads(), "torch": torch.__version__, "peft": peft.__version__,
        "transformers": T.__version__, "targets": ",".join(targets), "rank": r, "alpha": alpha,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
    }
    if a.json:
        print(json.dumps(out))
    else:
        print("torch %s + peft %s | %s %s r %d on %s | threads %d" % (out["torch"], out["peft"], mt, a.model, r,
                                                                     out["targets"], out["threads"]))
        print("median step %.1f ms: forward+loss %.1f ms, backward %.1f ms, AdamW %.3f ms" %
              (out["ms_per_step"], out["forward_ms"], out["backward_ms"], out["adamw_ms"]))
        print("tokens/s %.1f | peak RSS %.1f MiB" % (out["tokens_per_s"], out["peak_rss_mb"]))


if __name__ == "__main__":
    main()
