"""bert_ref.py — PyTorch/transformers/PEFT reference fixtures for tests/test_bert_parity.c.

Run:  .venv/bin/python tools/bert_ref.py   (from the repository root)
Writes tests/fixtures/bert/<case>/ for three tiny random models (seeded, a few hundred KB in all):
  config.json, model.safetensors      the base checkpoint (HF BertForSequenceClassification names;
                                      the RoBERTa case is written as a bare RobertaModel: no
                                      "roberta." prefix and no classifier, to test that path)
  adapter/                            PEFT 0.10 save_pretrained(task_type SEQ_CLS) output, with
                                      non-zero lora_B and a perturbed head (modules_to_save)
  ref.safetensors                     inputs (ids, type_ids, mask, labels/targets), logits, loss
                                      and grad.<name> of every trainable tensor (LoRA: the saved
                                      adapter name; head/base: the HF state-dict name)
Cases:
  bert_lora      BERT, 3 labels, LoRA r=2 on query,key,value,intermediate.dense,output.dense (all six sites)
  roberta_lora   RoBERTa, regression (num_labels 1, MSE), LoRA r=4 on query,value
  bert_full      BERT, 2 labels, full fine-tuning (gradients of every tensor), tanh GELU
  bert_lora/adapter_default, ref_default.safetensors: PEFT's default SEQ_CLS adapter (classifier
                 only in modules_to_save) and the eval-mode logits it gives
Dropout is 0 everywhere (the reference runs in train mode so the head/LoRA paths are the training ones).
"""
import json
import os

import torch
import transformers
import peft
from safetensors.torch import save_file

OUT = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "bert")


def tiny_config(family, num_labels, act="gelu"):
    common = dict(vocab_size=60, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                  intermediate_size=24, hidden_act=act, hidden_dropout_prob=0.0,
                  attention_probs_dropout_prob=0.0, num_labels=num_labels, layer_norm_eps=1e-12)
    if family == "bert":
        return transformers.BertConfig(max_position_embeddings=20, type_vocab_size=2, pad_token_id=0, **common)
    return transformers.RobertaConfig(max_position_embeddings=24, type_vocab_size=1, pad_token_id=1,
                                      bos_token_id=0, eos_token_id=2, layer_norm_eps=1e-5,
                                      **{k: v for k, v in common.items() if k != "layer_norm_eps"})


def inputs(family):
    g = torch.Generator().manual_seed(7)
    B, T = 3, 7
    lens = [7, 5, 3]
    pad = 0 if family == "bert" else 1
    ids = torch.randint(3, 60, (B, T), generator=g)
    mask = torch.zeros(B, T, dtype=torch.long)
    tt = torch.zeros(B, T, dtype=torch.long)
    for b, n in enumerate(lens):
        ids[b, 0] = 2 if family == "bert" else 0
        ids[b, n:] = pad
        mask[b, :n] = 1
        if family == "bert":
            tt[b, n // 2:n] = 1
    return ids, tt, mask


def write_base(model, d, strip_prefix=None):
    os.makedirs(d, exist_ok=True)
    model.config.to_json_file(os.path.join(d, "config.json"))
    sd = {k: v.detach().contiguous() for k, v in model.state_dict().items() if "position_ids" not in k}
    if strip_prefix:
        sd = {k[len(strip_prefix):]: v for k, v in sd.items() if k.startswith(strip_prefix)}
    save_file(sd, os.path.join(d, "model.safetensors"), metadata={"format": "pt"})


def lora_case(name, family, num_labels, targets, r, alpha, strip):
    torch.manual_seed(1)
    cfg = tiny_config(family, num_labels)
    cls = transformers.BertForSequenceClassification if family == "bert" else transformers.RobertaForSequenceClassification
    model = cls(cfg)
    d = os.path.join(OUT, name)
    write_base(model, d, strip_prefix="roberta." if strip else None)
    mts = ["classifier", "pooler"] if family == "bert" else ["classifier"]
    pc = peft.LoraConfig(task_type="SEQ_CLS", r=r, lora_alpha=alpha, target_modules=targets,
                         lora_dropout=0.0, modules_to_save=mts)
    pm = peft.get_peft_model(model, pc)
    with torch.no_grad():
        for n, p in pm.named_parameters():
            if "lora_B" in n or "modules_to_save" in n:
                p.add_(0.3 * torch.randn_like(p))
    pm.save_pretrained(os.path.join(d, "adapter"))
    pm.train()
    ids, tt, mask = inputs(family)
    if num_labels == 1:
        labels = torch.tensor([0.5, 3.25, -1.0])
    else:
        labels = torch.tensor([2, 0, 1])
    out = pm(input_ids=ids, token_type_ids=tt if family == "bert" else None, attention_mask=mask, labels=labels)
    out.loss.backward()
    ref = {"ids": ids.int(), "type_ids": tt.int(), "mask": mask.int(), "logits": out.logits.detach(),
           "loss": out.loss.detach().reshape(1)}
    ref["labels" if num_labels > 1 else "targets"] = labels.int() if num_labels > 1 else labels.float()
    for n, p in pm.named_parameters():
        if p.grad is None:
            continue
        if "lora_" in n:
            key = n.replace(".default", "")
        else:
            key = n.replace("base_model.model.", "").replace("modules_to_save.default.", "")
        ref["grad." + key] = p.grad.detach().contiguous()
    save_file(ref, os.path.join(d, "ref.safetensors"))
    print(name, "loss", out.loss.item(), "grads", sum(1 for k in ref if k.startswith("grad.")))


def default_head_case(name):
    """PEFT's default SEQ_CLS adapter (modules_to_save = classifier only: the pooler stays the base's)
    on the bert_lora base: adapter_default/ and ref_default.safetensors (inputs' logits, eval mode)."""
    d = os.path.join(OUT, name)
    model = transformers.BertForSequenceClassification.from_pretrained(d)
    pm = peft.get_peft_model(model, peft.LoraConfig(task_type="SEQ_CLS", r=2, lora_alpha=4, target_modules=["query", "value"]))
    torch.manual_seed(2)
    with torch.no_grad():
        for n, p in pm.named_parameters():
            if "lora_B" in n or "modules_to_save" in n:
                p.add_(0.3 * torch.randn_like(p))
    pm.save_pretrained(os.path.join(d, "adapter_default"))
    pm.eval()
    ids, tt, mask = inputs("bert")
    logits = pm(input_ids=ids, token_type_ids=tt, attention_mask=mask).logits.detach()
    save_file({"logits": logits}, os.path.join(d, "ref_default.safetensors"))


def full_case(name):
    torch.manual_seed(3)
    cfg = tiny_config("bert", 2, act="gelu_new")
    model = transformers.BertForSequenceClassification(cfg)
    d = os.path.join(OUT, name)
    write_base(model, d)
    model.train()
    ids, tt, mask = inputs("bert")
    labels = torch.tensor([1, 0, 1])
    out = model(input_ids=ids, token_type_ids=tt, attention_mask=mask, labels=labels)
    out.loss.backward()
    ref = {"ids": ids.int(), "type_ids": tt.int(), "mask": mask.int(), "labels": labels.int(),
           "logits": out.logits.detach(), "loss": out.loss.detach().reshape(1)}
    for n, p in model.named_parameters():
        ref["grad." + n] = p.grad.detach().contiguous()
    save_file(ref, os.path.join(d, "ref.safetensors"))
    print(name, "loss", out.loss.item(), "grads", sum(1 for k in ref if k.startswith("grad.")))


def cli_model():
    """tests/fixtures/glue/tiny_bert/: a tiny random BERT over the reduced WordPiece vocabulary of
    tests/fixtures/glue/wp (run tools/glue_ref.py first) plus toy SST-2 style TSVs, for tests/cli/glue.sh."""
    wp = os.path.join(OUT, "..", "glue", "wp")
    d = os.path.join(OUT, "..", "glue", "tiny_bert")
    os.makedirs(d, exist_ok=True)
    vocab = open(os.path.join(wp, "vocab.txt"), encoding="utf-8").read()
    torch.manual_seed(5)
    cfg = transformers.BertConfig(vocab_size=len(vocab.split("\n")) - 1, hidden_size=16, num_hidden_layers=2,
                                  num_attention_heads=2, intermediate_size=32, max_position_embeddings=64)
    write_base(transformers.BertModel(cfg, add_pooling_layer=True), d)
    for f in ("vocab.txt", "tokenizer_config.json"):
        open(os.path.join(d, f), "w", encoding="utf-8").write(open(os.path.join(wp, f), encoding="utf-8").read())
    good = ["a charming and often affecting journey", "hello world", "it is fine", "the best film", "super fun"]
    bad = ["bleak and desperate", "not good at all", "a mess", "boring", "the worst"]
    rows = [(t, 1) for t in good] + [(t, 0) for t in bad]
    with open(os.path.join(d, "train.tsv"), "w") as f:
        f.write("sentence\tlabel\n" + "".join("%s\t%d\n" % r for r in rows * 2))
    with open(os.path.join(d, "dev.tsv"), "w") as f:
        f.write("sentence\tlabel\n" + "".join("%s\t%d\n" % r for r in rows))


if __name__ == "__main__":
    cli_model()
    lora_case("bert_lora", "bert", 3, ["query", "key", "value", "intermediate.dense", "output.dense"], 2, 4, strip=False)
    lora_case("roberta_lora", "roberta", 1, ["query", "value"], 4, 8, strip=True)
    default_head_case("bert_lora")
    full_case("bert_full")
