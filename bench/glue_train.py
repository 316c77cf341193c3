#!/usr/bin/env python3
"""PyTorch + PEFT beside `lorac train --task glue-*`: the same fine-tuning run on the same rows.

Run (bench/glue.sh does this; a venv with torch, transformers and peft from PyPI):
    python bench/glue_train.py --model DIR --train FILE.tsv --dev FILE.tsv [--task sst2] [--json]

What it does, mirroring lorac's trainer for a classifier (src/train/finetune.c):
  - AutoModelForSequenceClassification from DIR in fp32 (BERT or RoBERTa), attention dropout 0 (lorac
    has none; hidden and classifier dropout stay at the config's values, as lorac applies them);
  - peft.LoraConfig(r 8, alpha 16, dropout 0.1, target_modules query,value, task_type SEQ_CLS): the
    encoder frozen, LoRA and the classifier head trained (--head-only: the head alone, --full-ft: all);
  - the training rows in file order, batches of --batch rows padded to the batch's longest pair and
    truncated longest-first to --max-len (the tokenizer's own pair encoding, as lorac's glue_encode);
    no shuffling (lorac shuffles with its seed: the same rows, another order);
  - AdamW (lr, weight decay 0.01 on matrices only, eps 1e-8), linear warm-up over 6 % of the steps
    and linear decay, gradient-norm clipping at 1, --epochs epochs;
  - then the dev set in batches of --batch under no_grad: accuracy (SST-2, RTE), F1 (MRPC), Matthews
    (CoLA), Pearson/Spearman (STS-B).
Reports training rows/s (rows x epochs / training seconds), evaluation rows/s, the dev scores and the
peak RSS (ru_maxrss), as one JSON line with --json."""
import argparse
import json
import math
import resource
import sys
import time

COLS = {"sst2": ("sentence", None, "label"), "cola": (3, None, 1), "mrpc": ("#1 String", "#2 String", "Quality"),
        "stsb": ("sentence1", "sentence2", "score"), "rte": ("sentence1", "sentence2", "label")}


def read_tsv(path, task):
    rows = [r.rstrip("\n").split("\t") for r in open(path, encoding="utf-8-sig")]
    ca, cb, cl = COLS[task]
    if task == "cola":  # no header: source, label, original label, sentence
        return [(r[ca], None, r[cl]) for r in rows if len(r) >= 4]
    head, body = rows[0], rows[1:]
    ia, il = head.index(ca), head.index(cl)
    ib = head.index(cb) if cb else None
    return [(r[ia], r[ib] if ib is not None else None, r[il]) for r in body]


def label_of(task, v):
    if task == "stsb":
        return float(v)
    if task == "rte":
        return 0 if v == "entailment" else 1
    return int(v)


def scores(task, logits, labels):
    import numpy as np
    if task == "stsb":
        from scipy.stats import pearsonr, spearmanr
        p = logits[:, 0]
        return {"pearson": float(pearsonr(p, labels)[0]), "spearman": float(spearmanr(p, labels)[0])}
    pred = logits.argmax(1)
    out = {"accuracy": float((pred == labels).mean())}
    if task == "mrpc":
        tp = float(((pred == 1) & (labels == 1)).sum())
        out["f1"] = 2 * tp / max(1.0, float((pred == 1).sum() + (labels == 1).sum()))
    if task == "cola":
        tp, tn = float(((pred == 1) & (labels == 1)).sum()), float(((pred == 0) & (labels == 0)).sum())
        fp, fn = float(((pred == 1) & (labels == 0)).sum()), float(((pred == 0) & (labels == 1)).sum())
        d = math.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
        out["mcc"] = (tp * tn - fp * fn) / d if d else 0.0
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", required=True)
    p.add_argument("--train", required=True)
    p.add_argument("--dev", required=True)
    p.add_argument("--task", default="sst2", choices=sorted(COLS))
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--max-len", type=int, default=64)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--head-only", action="store_true")
    p.add_argument("--full-ft", action="store_true")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--json", action="store_true")
    a = p.parse_args()
    import numpy as np
    import torch
    import transformers as T
    import peft

    if a.threads:
        torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    t_load = time.perf_counter()
    nl = 1 if a.task == "stsb" else 2
    cfg = T.AutoConfig.from_pretrained(a.model, num_labels=nl)
    cfg.attention_probs_dropout_prob = 0.0
    tok = T.AutoTokenizer.from_pretrained(a.model)
    model = T.AutoModelForSequenceClassification.from_pretrained(a.model, config=cfg, torch_dtype=torch.float32)
    if not a.full_ft:
        lc = peft.LoraConfig(r=8, lora_alpha=16, lora_dropout=0.1, target_modules=["query", "value"], task_type="SEQ_CLS")
        model = peft.get_peft_model(model, lc)
        if a.head_only:
            for n, q in model.named_parameters():
                if "lora_" in n:
                    q.requires_grad_(False)
    train, dev = read_tsv(a.train, a.task), read_tsv(a.dev, a.task)

    def batches(rows):
        for i in range(0, len(rows), a.batch):
            chunk = rows[i:i + a.batch]
            first = [r[0] for r in chunk]
            second = [r[1] for r in chunk] if chunk[0][1] is not None else None
            enc = tok(first, second, padding="longest", truncation="longest_first", max_length=a.max_len,
                      return_tensors="pt")
            lab = [label_of(a.task, r[2]) for r in chunk]
            yield enc, torch.tensor(lab, dtype=torch.float32 if a.task == "stsb" else torch.long)

    named = [(n, q) for n, q in model.named_parameters() if q.requires_grad]
    groups = [{"params": [q for n, q in named if q.ndim >= 2], "weight_decay": 0.01},
              {"params": [q for n, q in named if q.ndim < 2], "weight_decay": 0.0}]
    opt = torch.optim.AdamW(groups, lr=a.lr, eps=1e-8)
    steps = a.epochs * math.ceil(len(train) / a.batch)
    warm = int(0.06 * steps)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: (s + 1) / max(1, warm) if s < warm else max(0.0, (steps - s) / max(1, steps - warm)))
    setup_s = time.perf_counter() - t_load
    model.train()
    t0 = time.perf_counter()
    for _ in range(a.epochs):
        for enc, lab in batches(train):
            opt.zero_grad(set_to_none=True)
            loss = model(**enc, labels=lab).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_([q for _, q in named], 1.0)
            opt.step()
            sched.step()
    train_s = time.perf_counter() - t0
    model.eval()
    t1 = time.perf_counter()
    logits, labels = [], []
    with torch.no_grad():
        for enc, lab in batches(dev):
            logits.append(model(**enc).logits.float().numpy())
            labels.append(lab.numpy())
    eval_s = time.perf_counter() - t1
    out = {"task": a.task, "train_rows": len(train), "epochs": a.epochs, "train_s": round(train_s, 2),
           "train_rows_per_s": round(len(train) * a.epochs / train_s, 2), "dev_rows": len(dev),
           "eval_s": round(eval_s, 2), "eval_rows_per_s": round(len(dev) / eval_s, 2), "setup_s": round(setup_s, 2),
           "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1),
           "threads": torch.get_num_threads(), "torch": torch.__version__, "peft": peft.__version__,
           "transformers": T.__version__}
    out.update(scores(a.task, np.concatenate(logits), np.concatenate(labels)))
    print(json.dumps(out) if a.json else "\n".join("%s: %s" % kv for kv in out.items()))


if __name__ == "__main__":
    sys.exit(main())
