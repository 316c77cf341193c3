"""peft_glue_check.py — loads an adapter written by `lorac train --task glue-*` with Hugging Face PEFT
0.10 (PeftModel.from_pretrained on the base model) and scores a GLUE dev TSV, so the numbers can be
compared with `lorac eval --task glue-* --json` on the same adapter (the check that PEFT reads
lorac's SEQ_CLS adapters: LoRA tensors and the modules_to_save head).

Run:  .venv/bin/python tools/peft_glue_check.py TASK MODEL_DIR ADAPTER_DIR DEV_TSV [MAX_SEQ] [MAX_EVAL]
      TASK is sst2, mrpc or stsb. ADAPTER_DIR "-" scores MODEL_DIR alone (a `--full-ft` output:
      checks that transformers loads lorac's full model directory). Prints one JSON line: n, loss, accuracy/f1 or pearson/spearman.
Writes nothing.
"""
import json
import sys

import torch
from peft import PeftModel
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import accuracy_score, f1_score
from transformers import AutoTokenizer, BertForSequenceClassification

COLS = {"sst2": ("sentence", None, "label"), "mrpc": ("#1 String", "#2 String", "Quality"),
        "stsb": ("sentence1", "sentence2", "score")}


def main():
    task, model_dir, adapter, dev = sys.argv[1:5]
    max_seq = int(sys.argv[5]) if len(sys.argv) > 5 else 128
    max_eval = int(sys.argv[6]) if len(sys.argv) > 6 else 0
    ca, cb, cl = COLS[task]
    rows = [r.rstrip("\n").split("\t") for r in open(dev, encoding="utf-8-sig")]
    head, body = rows[0], rows[1:]
    if max_eval:
        body = body[:max_eval]
    ia, il = head.index(ca), head.index(cl)
    ib = head.index(cb) if cb else None
    nl = 1 if task == "stsb" else 2
    tok = AutoTokenizer.from_pretrained(model_dir)
    base = BertForSequenceClassification.from_pretrained(model_dir, num_labels=nl)
    model = (base if adapter == "-" else PeftModel.from_pretrained(base, adapter)).eval()
    logits = []
    with torch.no_grad():
        for s in range(0, len(body), 32):
            rs = body[s:s + 32]
            enc = tok([r[ia] for r in rs], [r[ib] for r in rs] if cb else None, truncation="longest_first",
                      max_length=max_seq, padding=True, return_tensors="pt")
            logits.append(model(**enc).logits)
    z = torch.cat(logits)
    out = {"task": task, "n": len(body)}
    if nl == 1:
        y = torch.tensor([float(r[il]) for r in body])
        p = z[:, 0]
        out["loss"] = torch.mean((p - y) ** 2).item()
        out["pearson"] = float(pearsonr(p.numpy(), y.numpy())[0])
        out["spearman"] = float(spearmanr(p.numpy(), y.numpy())[0])
    else:
        y = torch.tensor([int(r[il]) for r in body])
        out["loss"] = torch.nn.functional.cross_entropy(z, y).item()
        pred = z.argmax(-1).numpy()
        out["accuracy"] = float(accuracy_score(y.numpy(), pred))
        out["f1"] = float(f1_score(y.numpy(), pred))
    print(json.dumps(out))


if __name__ == "__main__":
    main()
