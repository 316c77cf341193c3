#!/usr/bin/env python3
"""Training trajectories of PyTorch + transformers + PEFT that `lorac train` must follow.

The reference trains exactly what `lorac train --init-adapter INIT --no-shuffle --precision fp32`
trains: the same model, the same initial adapter (PeftModel.from_pretrained(..., is_trainable=True)),
the same batches (file order, B rows per micro-batch, the last one of an epoch short, rows padded on
the right), the same loss (lorac's data rules below), torch.optim.AdamW with weight decay on
matrices only (HF Trainer's grouping: biases and LayerNorm weights get none), HF's linear warm-up /
decay schedule (get_linear_schedule_with_warmup), torch.nn.utils.clip_grad_norm_, every dropout 0.

lorac's data rules, as the reference rebuilds them:
  causal LM, JSONL {"prompt", "completion"}: ids = enc(prompt) + [eos] + enc(" " + completion) + [eos],
    the completion and the final eos scored (a bos in front when the tokenizer adds one); the
    micro-batch loss is the mean cross-entropy (label smoothing as given) over its scored tokens;
  GLUE single-sentence task (TSV "sentence<TAB>label"): [CLS] sentence [SEP] (BertTokenizerFast),
    the mean cross-entropy over the rows;
  gradient accumulation: each micro-batch's own mean, the micro-batches averaged.

Run from the repository root (torch 2.x, transformers 5, peft 0.21 or 0.22; made with torch 2.15,
transformers 5.25 on CPU, peft 0.21.2 for the fp32 cases and 0.22.0 for the *_bf16 ones):
  python tools/peft_trajectory_ref.py                     # regenerate tests/fixtures/traj/ (all cases)
  python tools/peft_trajectory_ref.py --case llama        # one case (the models are kept if present)
  python tools/peft_trajectory_ref.py --torch-bf16        # PyTorch's own bf16 drift on the *_bf16 cases
then `ctest -R test_trajectory` in the build directory runs lorac against them (docs/trajectory.md).

Writes tests/fixtures/traj/models/{gpt2,llama}/ (the tiny base models with their tokenizers; made once,
kept when present) and tests/fixtures/traj/<case>/ (test_trajectory.c checks lorac against them):
  args.txt      the `lorac train` options of the case (one line), the same hyper-parameters the
                reference used
  data.jsonl / train.tsv   the training examples
  init/         the initial PEFT adapter (random non-zero A and B; the BERT case also its head; the
                q,v case's safetensors metadata "lorac.c_attn_split": "1,0,1" says which blocks)
  final/        the adapter after the reference's last step (PEFT's save_pretrained, F32)
  losses.txt    "step loss lr grad_norm" per optimizer step (loss before the update, the global
                gradient norm before clipping)
Cases: gpt2  (a tiny GPT-2 with the byte-level BPE of tests/fixtures/tok/bl_gpt2 as vocab.json +
              merges.txt; LoRA q,v of the fused c_attn: PEFT's c_attn of rank 2r whose blocks
              outside q and v get zero gradients, as loralib's MergedLinear enable_lora=[q,v];
              gradient accumulation 2)
       gpt2_fused (the same model, PEFT's plain c_attn LoRA: all of q, k, v)
       llama (a tiny Llama, GQA 4 heads / 2 kv heads, tied embeddings, the tokenizer of
              tests/fixtures/tok/bl_smollm; LoRA on all seven projections)
       bert  (tests/fixtures/glue/tiny_bert with every dropout 0: config.json only is written here,
              the test puts it beside that model; LoRA query,key,value; classifier and pooler
              trained as PEFT modules_to_save)
       gpt2_bf16, llama_bf16, bert_bf16 (lorac at --precision bf16 against the same fp32 reference:
              64-wide models, 2 layers, F16 weights, in models/{gpt2,llama,bert}_wide: GPT-2 q,v of the
              fused c_attn; Llama with 4 heads of 32 and 2 kv heads, all seven projections; a BERT
              with a WordPiece vocabulary of the data's words, query,key,value plus its head)
"""
import argparse
import json
import os
import shutil
import sys

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from safetensors.torch import load_file, save_file

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
OUT = os.path.join(ROOT, "tests", "fixtures", "traj")
TOK = os.path.join(ROOT, "tests", "fixtures", "tok")
TINY_BERT = os.path.join(ROOT, "tests", "fixtures", "glue", "tiny_bert")
SPLIT_KEY = "lorac.c_attn_split"

LM_DATA = [
    ("name : The Eagle | food : French", "The Eagle serves French food ."),
    ("name : Zizzi | area : riverside", "Zizzi is by the river ."),
    ("name : Aromi | eatType : coffee shop | rating : high", "Aromi is a highly rated coffee shop ."),
    ("name : Bibimbap House", "Try Bibimbap House ."),
    ("name : The Mill | near : Raja Indian Cuisine | price : cheap", "The Mill is cheap, near Raja Indian Cuisine ."),
    ("name : Alimentum", "Alimentum ."),
    ("name : Cotto | food : Italian | family friendly : yes", "Cotto is a family friendly Italian place ."),
    ("name : Wildwood | price : high", "Wildwood is expensive ."),
    ("name : Loch Fyne | food : seafood | area : city centre", "Loch Fyne serves seafood in the city centre ."),
    ("name : Fitzbillies", "Fitzbillies is a shop ."),
]
CLS_DATA = [
    ("a charming and often affecting journey", 1), ("bleak and desperate", 0), ("the best film of the year", 1),
    ("not good at all", 0), ("super fun", 1), ("a mess from start to finish", 0), ("it is fine", 1),
    ("boring", 0), ("hello world , what a delight", 1), ("the worst", 0), ("warm and funny", 1),
]

# Each case: the lorac options (also the reference's hyper-parameters), the LoRA layout.
CASES = {
    "gpt2": dict(kind="gpt2", r=2, alpha=8, targets=["c_attn"], split=(1, 0, 1),
                 steps=30, batch=4, accum=2, lr=1e-2, warmup=5, wd=0.01, ls=0.1, clip=0.15),
    "gpt2_fused": dict(kind="gpt2", r=2, alpha=4, targets=["c_attn"], split=None,
                       steps=30, batch=4, accum=1, lr=1e-2, warmup=3, wd=0.01, ls=0.1, clip=0.2),
    "llama": dict(kind="llama", r=4, alpha=8, split=None,
                  targets=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
                  steps=30, batch=4, accum=1, lr=5e-3, warmup=5, wd=0.01, ls=0.1, clip=1.0),
    "bert": dict(kind="bert", r=4, alpha=8, targets=["query", "key", "value"], split=None,
                 steps=30, batch=4, accum=1, lr=1e-2, warmup=3, wd=0.01, ls=0.0, clip=0.2),
    # lorac --precision bf16 against the same fp32 reference: 64-wide models (F16 weights, which bf16
    # rounding does not keep) so that the frozen products reach the bf16 kernel (>= 16 rows, >= 64 in K, N)
    "gpt2_bf16": dict(kind="gpt2", model="gpt2_wide", precision="bf16", r=4, alpha=8, targets=["c_attn"], split=(1, 0, 1),
                      steps=30, batch=4, accum=1, lr=5e-3, warmup=3, wd=0.01, ls=0.1, clip=0.4),
    "llama_bf16": dict(kind="llama", model="llama_wide", precision="bf16", r=4, alpha=8, split=None,
                       targets=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
                       steps=30, batch=4, accum=1, lr=5e-3, warmup=3, wd=0.01, ls=0.1, clip=1.5),
    "bert_bf16": dict(kind="bert", model="bert_wide", precision="bf16", r=4, alpha=8, targets=["query", "key", "value"],
                      split=None, steps=30, batch=4, accum=1, lr=2e-3, warmup=3, wd=0.01, ls=0.0, clip=2.0),
}


def lorac_args(c):
    a = ["--no-shuffle", f"--precision {c.get('precision', 'fp32')}", "--lora-dropout 0", "--threads 1", f"--steps {c['steps']}",
         f"--batch-size {c['batch']}", f"--grad-accum {c['accum']}", f"--lr {c['lr']!r}", f"--warmup {c['warmup']}",
         f"--weight-decay {c['wd']!r}", f"--clip {c['clip']!r}"]
    if c["kind"] == "bert":
        a += ["--task glue-sst2", "--max-seq-len 32", "--hidden-dropout 0"]
    else:
        a += [f"--label-smoothing {c['ls']!r}"]
    return " ".join(a)


# ---------------------------------------------------------------- models and tokenizers

def perturb(model, seed):
    torch.manual_seed(seed)
    with torch.no_grad():  # every parameter non-trivial (norm weights, biases)
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))


def make_gpt2(d, n_embd=32, n_inner=None, dtype=torch.float32):
    from transformers import GPT2Config, GPT2LMHeadModel
    tj = json.load(open(os.path.join(TOK, "bl_gpt2", "tokenizer.json")))
    vocab = tj["model"]["vocab"]
    merges = [m if isinstance(m, str) else " ".join(m) for m in tj["model"]["merges"]]
    os.makedirs(d, exist_ok=True)
    json.dump(vocab, open(os.path.join(d, "vocab.json"), "w"), ensure_ascii=False)
    with open(os.path.join(d, "merges.txt"), "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n" + "\n".join(merges) + "\n")
    eos = vocab["<|endoftext|>"]
    torch.manual_seed(1)
    cfg = GPT2Config(vocab_size=len(vocab), n_positions=96, n_embd=n_embd, n_inner=n_inner, n_layer=2, n_head=4,
                     bos_token_id=eos, eos_token_id=eos, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    m = GPT2LMHeadModel(cfg)
    perturb(m, 2)
    m.to(dtype).save_pretrained(d, safe_serialization=True)


def make_llama(d, hidden=32, head_dim=None, dtype=torch.float32):
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast
    os.makedirs(d, exist_ok=True)
    for f in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(os.path.join(TOK, "bl_smollm", f), d)
    eos = PreTrainedTokenizerFast(tokenizer_file=os.path.join(d, "tokenizer.json")).convert_tokens_to_ids("<|im_end|>")
    torch.manual_seed(3)
    cfg = LlamaConfig(vocab_size=404, hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, head_dim=head_dim or hidden // 4,
                      max_position_embeddings=96, rms_norm_eps=1e-6, rope_theta=10000.0, tie_word_embeddings=True,
                      bos_token_id=1, eos_token_id=eos, attention_dropout=0.0)
    m = LlamaForCausalLM(cfg)
    perturb(m, 4)
    m.to(dtype).save_pretrained(d, safe_serialization=True)


def make_bert(d, hidden=64, dtype=torch.float16):
    """A BERT encoder (no head: the case's adapter brings classifier and pooler) with a WordPiece vocabulary
    of the case's words only, every dropout 0."""
    from transformers import BertConfig, BertModel
    words = sorted({w for s, _ in CLS_DATA for w in s.split()})
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + words
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "vocab.txt"), "w") as f:
        f.write("\n".join(vocab) + "\n")
    shutil.copy(os.path.join(TINY_BERT, "tokenizer_config.json"), d)
    torch.manual_seed(5)
    cfg = BertConfig(vocab_size=len(vocab), hidden_size=hidden, num_hidden_layers=2, num_attention_heads=4,
                     intermediate_size=2 * hidden, max_position_embeddings=64, hidden_dropout_prob=0.0,
                     attention_probs_dropout_prob=0.0, classifier_dropout=0.0, pad_token_id=0)
    m = BertModel(cfg)
    perturb(m, 6)
    m.to(dtype).save_pretrained(d, safe_serialization=True)


MAKERS = {  # the models the cases train (made once, kept when present)
    "gpt2": make_gpt2,
    "llama": make_llama,
    "gpt2_wide": lambda d: make_gpt2(d, n_embd=64, n_inner=128, dtype=torch.float16),
    "llama_wide": lambda d: make_llama(d, hidden=64, head_dim=32, dtype=torch.float16),
    "bert_wide": make_bert,
}


def bert_config(d):
    cfg = json.load(open(os.path.join(TINY_BERT, "config.json")))
    cfg.update(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, classifier_dropout=0.0)
    os.makedirs(d, exist_ok=True)
    json.dump(cfg, open(os.path.join(d, "config.json"), "w"), indent=2)


def bert_dir(case_dir, tmp):
    """tiny_bert's weights and vocabulary beside the case's config.json (every dropout 0)."""
    os.makedirs(tmp, exist_ok=True)
    for f in ("model.safetensors", "vocab.txt", "tokenizer_config.json"):
        shutil.copy(os.path.join(TINY_BERT, f), tmp)
    shutil.copy(os.path.join(case_dir, "config.json"), tmp)
    return tmp


# ---------------------------------------------------------------- data and batches

def lm_examples(tok, eos, path, add_bos=None, max_len=None):
    """JSONL {prompt, completion} lines, or E2E `context||completion` lines (stripped, as lorac reads them);
    max_len keeps the first max_len tokens of a row, as lorac's --max-seq-len does."""
    rows = []
    for lineno, line in enumerate(open(path, encoding="utf-8"), 1):
        if not line.strip():
            continue
        if line.lstrip().startswith("{"):
            ex = json.loads(line)
        elif line.count("||") == 1:
            ctx, comp = line.strip().split("||")
            ex = {"prompt": ctx, "completion": comp}
        else:
            raise SystemExit(f"{path}:{lineno}: expected one \"||\" between context and completion (or a JSON object)")
        a = tok.encode(ex["prompt"], add_special_tokens=False)
        c = tok.encode(" " + ex["completion"], add_special_tokens=False)
        ids = ([add_bos] if add_bos is not None else []) + a + [eos] + c + [eos]
        first = len(ids) - len(c) - 1  # the first scored (predicted) position: the completion's first token
        tg = [ids[q + 1] if q + 1 >= first else -100 for q in range(len(ids) - 1)] + [-100]
        if max_len and len(ids) > max_len:
            ids, tg = ids[:max_len], tg[:max_len - 1] + [-100]
        rows.append((ids, tg))
    return rows


def cls_examples(tok, path, max_len):
    rows = []
    lines = open(path, encoding="utf-8").read().splitlines()
    for line in lines[1:]:
        s, y = line.split("\t")
        enc = tok(s, truncation=True, max_length=max_len)
        rows.append((enc["input_ids"], int(y)))
    return rows


def batches(rows, B, pad):
    """File order, epoch after epoch: batch k holds rows kB .. kB+B-1, the last one of an epoch short."""
    while True:
        for s in range(0, len(rows), B):
            chunk = rows[s:s + B]
            T = max(len(r[0]) for r in chunk)
            ids = torch.full((len(chunk), T), pad, dtype=torch.long)
            mask = torch.zeros((len(chunk), T), dtype=torch.long)
            if isinstance(chunk[0][1], list):
                y = torch.full((len(chunk), T), -100, dtype=torch.long)
            else:
                y = torch.zeros(len(chunk), dtype=torch.long)
            for i, (x, t) in enumerate(chunk):
                ids[i, :len(x)] = torch.tensor(x)
                mask[i, :len(x)] = 1
                if isinstance(t, list):
                    y[i, :len(t)] = torch.tensor(t)
                else:
                    y[i] = t
            yield ids, mask, y


# ---------------------------------------------------------------- the initial adapter

def split_mask(pm, split, r):
    """Gradient masks for PEFT's c_attn B (3n, k·r): only slice g's rows in column block j (q, v)."""
    masks = {}
    for n, p in pm.named_parameters():
        if "c_attn" in n and "lora_B" in n:
            OC = p.shape[0] // 3
            m = torch.zeros_like(p)
            j = 0
            for g in range(3):
                if split[g]:
                    m[g * OC:(g + 1) * OC, j * r:(j + 1) * r] = 1
                    j += 1
            masks[n] = m
    return masks


def make_init(base, c, out, seed, scale=0.2):
    """A PEFT adapter with random non-zero A and B (and a perturbed head for a classifier); scale 0 keeps PEFT's own
    initialisation (A Kaiming-uniform, B zero: a fresh run's start, as tools/e2e_overlay.sh uses)."""
    torch.manual_seed(seed)
    k = sum(c["split"]) if c["split"] else 1
    kw = dict(r=c["r"] * k, lora_alpha=c["alpha"] * k, target_modules=c["targets"], lora_dropout=0.0, bias="none")
    if c["kind"] == "bert":
        kw.update(task_type="SEQ_CLS", modules_to_save=["classifier", "pooler"])
    else:
        kw.update(task_type="CAUSAL_LM", fan_in_fan_out=base.config.model_type == "gpt2")
    pm = get_peft_model(base, LoraConfig(**kw))
    masks = split_mask(pm, c["split"], c["r"]) if c["split"] else {}
    with torch.no_grad():
        for n, p in pm.named_parameters():
            if "lora_" in n and scale > 0:
                p.copy_(scale * torch.randn_like(p) * masks.get(n, 1))
            elif "modules_to_save" in n:
                p.add_(0.1 * torch.randn_like(p))
    pm.save_pretrained(out, safe_serialization=True)
    os.remove(os.path.join(out, "README.md"))  # PEFT's model-card template
    cfg = json.load(open(os.path.join(out, "adapter_config.json")))
    cfg["base_model_name_or_path"] = None  # not this machine's path
    cfg["target_modules"] = sorted(cfg["target_modules"])  # PEFT keeps a set: the order of a run
    json.dump(cfg, open(os.path.join(out, "adapter_config.json"), "w"), indent=2, sort_keys=True)
    if c["split"]:  # lorac reads the fused c_attn back as its q,v split
        st = os.path.join(out, "adapter_model.safetensors")
        save_file(load_file(st), st, metadata={"format": "pt", SPLIT_KEY: ",".join(str(s) for s in c["split"])})


# ---------------------------------------------------------------- training

def decay_groups(model):
    """HF Trainer's grouping, as lorac's: matrices decay, vectors (biases, norm weights) do not."""
    ps = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    return [dict(params=[p for n, p in ps if p.ndim >= 2]), dict(params=[p for n, p in ps if p.ndim < 2], weight_decay=0.0)]


def train(pm, it, c, masks, log):
    from transformers import get_linear_schedule_with_warmup
    opt = torch.optim.AdamW(decay_groups(pm), lr=c["lr"], betas=(0.9, 0.999), eps=1e-8, weight_decay=c["wd"])
    sched = get_linear_schedule_with_warmup(opt, c["warmup"], c.get("schedule_steps") or c["steps"])
    ce = torch.nn.CrossEntropyLoss(ignore_index=-100, label_smoothing=c["ls"])
    params = [p for p in pm.parameters() if p.requires_grad]
    for n, p in pm.named_parameters():
        if n in masks:
            p.register_hook(lambda g, m=masks[n]: g * m)
    pm.train()
    out = []
    for step in range(c["steps"]):
        total = 0.0
        for _ in range(c["accum"]):
            ids, mask, y = next(it)
            if c["kind"] == "bert":
                logits = pm(input_ids=ids, attention_mask=mask, token_type_ids=torch.zeros_like(ids)).logits
                loss = ce(logits, y)
            else:
                logits = pm(input_ids=ids, attention_mask=mask).logits
                loss = ce(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
            (loss / c["accum"]).backward()
            total += loss.item()
        lr = sched.get_last_lr()[0]
        gn = torch.nn.utils.clip_grad_norm_(params, c["clip"] if c["clip"] > 0 else float("inf")).item()
        opt.step()
        sched.step()
        opt.zero_grad()
        out.append((step + 1, total / c["accum"], lr, gn))
        if log:
            print(f"step {step + 1}: loss {total / c['accum']:.6f} lr {lr:.3g} grad_norm {gn:.4f}")
    return out


def load_base(kind, d):
    from transformers import AutoModelForCausalLM, BertForSequenceClassification
    if kind == "bert":
        m = BertForSequenceClassification.from_pretrained(d, attn_implementation="eager")
    else:
        m = AutoModelForCausalLM.from_pretrained(d, attn_implementation="eager")
    for mod in m.modules():  # every dropout 0, whatever config.json says (lorac's LM runs have none)
        if isinstance(mod, torch.nn.Dropout):
            mod.p = 0.0
        if isinstance(getattr(mod, "attention_dropout", None), float):
            mod.attention_dropout = 0.0
    return m.float()


def case_data(name, c, d, model_dir):
    if c["kind"] == "bert":
        from transformers import BertTokenizerFast
        tok = BertTokenizerFast(os.path.join(model_dir, "vocab.txt"), do_lower_case=True)
        return cls_examples(tok, os.path.join(d, "train.tsv"), 32), tok.pad_token_id
    if c["kind"] == "gpt2":
        from transformers import GPT2TokenizerFast
        tok = GPT2TokenizerFast.from_pretrained(model_dir)  # (its constructor from the two files encodes nothing)
        eos = tok.convert_tokens_to_ids("<|endoftext|>")
    else:
        from transformers import PreTrainedTokenizerFast
        tok = PreTrainedTokenizerFast(tokenizer_file=os.path.join(model_dir, "tokenizer.json"))
        eos = tok.convert_tokens_to_ids("<|im_end|>")
    return lm_examples(tok, eos, os.path.join(d, "data.jsonl")), eos


def run_case(name, c, tmp):
    d = os.path.join(OUT, name)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    model_dir = os.path.join(OUT, "models", c.get("model", c["kind"]))
    if c.get("model", c["kind"]) == "bert":  # tiny_bert with every dropout 0
        bert_config(d)
        model_dir = bert_dir(d, os.path.join(tmp, "bert"))
    elif not os.path.exists(os.path.join(model_dir, "config.json")):
        MAKERS[c.get("model", c["kind"])](model_dir)
    if c["kind"] == "bert":
        with open(os.path.join(d, "train.tsv"), "w") as f:
            f.write("sentence\tlabel\n" + "".join(f"{s}\t{y}\n" for s, y in CLS_DATA))
    else:
        with open(os.path.join(d, "data.jsonl"), "w") as f:
            for p, q in LM_DATA:
                f.write(json.dumps({"prompt": p, "completion": q}) + "\n")
    torch.manual_seed(0)  # tiny_bert has no classifier: from_pretrained draws one
    make_init(load_base(c["kind"], model_dir), c, os.path.join(d, "init"), seed=sum(map(ord, name)))
    rows, pad = case_data(name, c, d, model_dir)
    pm = PeftModel.from_pretrained(load_base(c["kind"], model_dir), os.path.join(d, "init"), is_trainable=True)
    masks = split_mask(pm, c["split"], c["r"]) if c["split"] else {}
    log = train(pm, batches(rows, c["batch"], pad), c, masks, True)
    pm.save_pretrained(os.path.join(d, "final"), safe_serialization=True)
    for f in ("README.md", "adapter_config.json"):
        if os.path.exists(os.path.join(d, "final", f)):
            os.remove(os.path.join(d, "final", f))  # the tensors are what the test compares
    with open(os.path.join(d, "losses.txt"), "w") as f:
        for s, loss, lr, gn in log:
            f.write(f"{s} {loss!r} {lr!r} {gn!r}\n")
    with open(os.path.join(d, "args.txt"), "w") as f:
        f.write(lorac_args(c) + "\n")
    print(f"{name}: loss {log[0][1]:.5f} -> {log[-1][1]:.5f}, clipped at {sum(g > c['clip'] for *_, g in log)} of "
          f"{len(log)} steps")


def torch_bf16_drift(name, c):
    """PyTorch's own bf16 run (CPU autocast: every linear's operands rounded to bf16, LoRA's too) against the
    committed fp32 reference of a case: how far bf16 rounding alone carries a 30-step run (docs/trajectory.md)."""
    d = os.path.join(OUT, name)
    model_dir = os.path.join(OUT, "models", c.get("model", c["kind"]))
    rows, pad = case_data(name, c, d, model_dir)
    pm = PeftModel.from_pretrained(load_base(c["kind"], model_dir), os.path.join(d, "init"), is_trainable=True)
    fp32_forward = pm.forward

    def forward(*a, **k):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = fp32_forward(*a, **k)
        out.logits = out.logits.float()
        return out
    pm.forward = forward
    log = train(pm, batches(rows, c["batch"], pad), c, split_mask(pm, c["split"], c["r"]) if c["split"] else {}, False)
    want = [float(ln.split()[1]) for ln in open(os.path.join(d, "losses.txt"))]
    rel = [abs(g[1] - w) / abs(w) for g, w in zip(log, want)]
    ours = {k.replace(".default", "").replace(".modules_to_save", ""): v for k, v in pm.state_dict().items()}
    wt = load_file(os.path.join(d, "final", "adapter_model.safetensors"))
    err = [((ours[k].float() - v).norm() / v.norm()).item() for k, v in wt.items()]
    print(f"{name}: torch bf16 autocast against torch fp32: step 1 loss {rel[0]:.2e}, worst step {max(rel):.2e} relative; "
          f"final adapter worst {max(err):.2e} relative L2 ({len(err)} tensors)")


def by_hand(a):
    """Any model: a reference run into a.out (losses.txt, final/) and, with --compare, lorac's against it
    (the reference is not run again when a.out holds one)."""
    kind = "bert" if json.load(open(os.path.join(a.model, "config.json")))["model_type"] in ("bert", "roberta") else "lm"
    c = dict(kind=kind, r=a.rank, alpha=a.alpha, targets=a.targets.split(","), split=None, steps=a.steps, batch=a.batch_size,
             accum=a.grad_accum, lr=a.lr, warmup=a.warmup, wd=a.weight_decay, ls=a.label_smoothing, clip=a.clip,
             schedule_steps=a.schedule_steps)
    done = os.path.join(a.out, "losses.txt")
    if a.compare and os.path.exists(done):  # the reference ran already: compare only
        return compare(a, [(int(s), float(x), float(lr), float(g)) for s, x, lr, g in (ln.split() for ln in open(done))])
    if not os.path.exists(os.path.join(a.init_adapter, "adapter_config.json")):
        make_init(load_base(kind, a.model), c, a.init_adapter, seed=a.seed, scale=a.init_scale)
    if a.init_only:
        return 0
    from transformers import AutoTokenizer
    tok = AutoTokenizer.from_pretrained(a.model)
    if kind == "bert":
        rows, pad = cls_examples(tok, a.data, a.max_seq_len), tok.pad_token_id
    else:
        bos = tok.bos_token_id if tok("x")["input_ids"][:1] == [tok.bos_token_id] else None
        rows, pad = lm_examples(tok, tok.eos_token_id, a.data, bos, a.max_seq_len), tok.eos_token_id
    pm = PeftModel.from_pretrained(load_base(kind, a.model), a.init_adapter, is_trainable=True)
    if a.lora_dropout > 0:  # PEFT builds an Identity where the adapter's config says 0
        torch.manual_seed(a.seed)
        for m in pm.modules():
            if isinstance(getattr(m, "lora_dropout", None), torch.nn.ModuleDict):
                for k in m.lora_dropout:
                    m.lora_dropout[k] = torch.nn.Dropout(a.lora_dropout)
    log = train(pm, batches(rows, c["batch"], pad), c, {}, True)
    pm.save_pretrained(os.path.join(a.out, "final"), safe_serialization=True)
    with open(os.path.join(a.out, "losses.txt"), "w") as f:
        f.writelines(f"{s} {loss!r} {lr!r} {gn!r}\n" for s, loss, lr, gn in log)
    return compare(a, log) if a.compare else 0


def compare(a, log):
    got = [json.loads(line) for line in open(os.path.join(a.compare, "train_log.jsonl")) if '"loss"' in line]
    worst = max(abs(g["loss"] - w[1]) / abs(w[1]) for g, w in zip(got, log))
    gt = load_file(os.path.join(a.compare, "adapter_model.safetensors"))
    wt = load_file(os.path.join(a.out, "final", "adapter_model.safetensors"))
    rel = {k: ((gt[k].float() - v.float()).norm() / v.float().norm()).item() for k, v in wt.items() if k in gt}
    print(f"{len(got)} steps: worst loss {worst:.3g} relative; {len(rel)} of {len(wt)} tensors in lorac's adapter, "
          f"worst {max(rel.values()):.3g} relative L2 ({max(rel, key=rel.get)})")
    return 0 if len(got) == len(log) and worst <= 1e-4 and len(rel) == len(wt) and max(rel.values()) <= 1e-3 else 1


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--case", choices=sorted(CASES), action="append")
    ap.add_argument("--torch-bf16", action="store_true", help="with --case: PyTorch's own bf16 run against the committed "
                    "fp32 reference (nothing is written)")
    h = ap.add_argument_group("by hand on any model (a Hugging Face directory with its tokenizer)")
    h.add_argument("--model")
    h.add_argument("--data", help="JSONL {prompt, completion} lines, or a GLUE single-sentence TSV for an encoder")
    h.add_argument("--init-adapter", help="a PEFT adapter; made (random A, B) with --rank/--alpha/--targets if absent")
    h.add_argument("--out", help="writes losses.txt and final/ here")
    h.add_argument("--compare", help="lorac's --out directory of the same run: checks 1e-4 / 1e-3 as the test does")
    for k, v in dict(rank=4, alpha=8.0, steps=30, batch_size=4, grad_accum=1, lr=1e-3, warmup=5, weight_decay=0.01,
                     label_smoothing=0.0, clip=1.0, max_seq_len=128, init_scale=0.02).items():
        h.add_argument("--" + k.replace("_", "-"), type=type(v), default=v)
    h.add_argument("--targets", default="q_proj,v_proj")
    h.add_argument("--schedule-steps", type=int, default=0, help="the length of the linear schedule (default --steps): "
                   "the first --steps of a longer run")
    h.add_argument("--seed", type=int, default=0, help="the initial adapter's seed (when it is made)")
    h.add_argument("--init-only", action="store_true", help="make --init-adapter and stop")
    h.add_argument("--lora-dropout", type=float, default=0.0, help="LoRA dropout of the run (its random draws are "
                   "PyTorch's, not lorac's: only for overlays, not with --compare)")
    h.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.model:
        os.makedirs(args.out, exist_ok=True)
        return by_hand(args)
    if args.torch_bf16:
        for name in args.case or [n for n in sorted(CASES) if CASES[n].get("precision") == "bf16"]:
            torch_bf16_drift(name, CASES[name])
        return 0
    tmp = os.path.join(OUT, ".tmp")
    for name in args.case or sorted(CASES):
        run_case(name, CASES[name], tmp)
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
