#!/usr/bin/env python3
"""PEFT interoperability fixtures: adapters made by the real PEFT library that lorac must load with
the same logits, and PEFT's logits for an adapter that lorac wrote.

Run:  .venv/bin/python tools/peft_ref.py        (from the repository root; peft 0.10.0,
      transformers 4.40.2, torch 1.13 (Debian's python3-torch via --system-site-packages))
Reads the tiny GPT-2 base of tests/fixtures/gpt2/tiny/base (tools/gpt2_ref.py) and, for the
"other direction", the adapters lorac wrote (tests/test_peft_ref.c regenerates each bit for bit
and checks it equals the committed copy): tests/fixtures/peft/lorac_written/ (trained-style: q,v
split, mlp.c_fc, wte), lorac_cat/ and lorac_svd/ (`lorac combine` of qv_c_attn:0.5 and
patterns_f16:-1 with cat, and with svd at rank 3: per-module rank_pattern keys as PEFT reads them).
Writes tests/fixtures/peft/:
  <name>/     a PEFT adapter directory (save_pretrained, safetensors), lora_B (and lora_A) random so
              the delta is non-zero; dtype F32 unless the name says f16/bf16 (the file's tensors
              cast after saving, and the logits computed from the cast values):
                qv_c_attn      c_attn only, r 4, alpha 8 (the paper's fused projection)
                patterns_f16   c_attn, c_proj, c_fc; rank_pattern {h.1.attn.c_attn: 2},
                               alpha_pattern {mlp.c_fc: 3}; F16 file
                rslora_bf16    regex target ".*\\.mlp\\.c_proj", use_rslora, r 4, alpha 6; BF16 file
                layers_wte     c_fc on layers_to_transform [1] + the token embedding wte (lora_embedding_A/B)
                lora_only_bias bias "lora_only" (biases changed before saving; PEFT 0.10 saves none)
                bias_all       bias "all" (every bias saved, trained: +0.5)
                lora_only_saved bias "lora_only" with the trained c_attn biases added to the file as
                               "...c_attn.base_layer.bias" (the name PEFT 0.10 loads them under)
                mts_lm_head    modules_to_save ["lm_head"] (a trained copy of the tied head)
                mts_wte        modules_to_save ["wte"] + c_fc LoRA (a trained copy of the tied embedding;
                               PEFT's head keeps the base wte)
              and on the Llama-family bases of tests/fixtures/llama (tools/llama_ref.py): qwen2_bias_all,
              biased_lora_only_saved, qwen2_mts_lm_head, qwen2_mts_embed (see LLAMA_ADAPTERS)
  ref.safetensors  input_ids (B,T) I64 (GPT-2), llama_input_ids (B,T) I64 (the Llama ones) and
              logits.<name> (B,T,V) F32 for each adapter above, and
              logits.lorac_written, logits.lorac_cat, logits.lorac_svd: PEFT's logits with lorac's adapters.
  names.txt   the non-LoRA tensor names PEFT 0.10 saves for bias="all", "lora_only" and
              modules_to_save=["lm_head"] / ["wte"].
"""
import json
import os
import shutil

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from safetensors.torch import load_file, save_file
from transformers import AutoModelForCausalLM

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
BASE = os.path.join(ROOT, "tests", "fixtures", "gpt2", "tiny", "base")
OUT = os.path.join(ROOT, "tests", "fixtures", "peft")

ADAPTERS = {
    "qv_c_attn": dict(r=4, lora_alpha=8, target_modules=["c_attn"]),
    "patterns_f16": dict(r=4, lora_alpha=8, target_modules=["c_attn", "c_proj", "c_fc"],
                         rank_pattern={"h.1.attn.c_attn": 2}, alpha_pattern={"mlp.c_fc": 3}),
    "rslora_bf16": dict(r=4, lora_alpha=6, target_modules=r".*\.mlp\.c_proj", use_rslora=True),
    "layers_wte": dict(r=3, lora_alpha=5, target_modules=["c_fc", "wte"], layers_to_transform=[1]),
    # bias="lora_only": the c_attn biases are changed before saving, but PEFT 0.10 saves none of them
    # (so the saved adapter is plain LoRA, and PEFT's reloaded logits use the base biases)
    "lora_only_bias": dict(r=2, lora_alpha=4, target_modules=["c_attn"], bias="lora_only"),
    # bias="all": every bias of the model is saved (the LoRA-wrapped c_attn's as "c_attn.base_layer.bias")
    "bias_all": dict(r=2, lora_alpha=4, target_modules=["c_attn"], bias="all"),
    # bias="lora_only" with its trained c_attn biases in the file, under the name PEFT 0.10 loads
    # ("c_attn.base_layer.bias"; its own save_pretrained drops them, see lora_only_bias)
    "lora_only_saved": dict(r=2, lora_alpha=4, target_modules=["c_attn"], bias="lora_only"),
    # modules_to_save copies of the tied head and of the tied embedding (each unties the pair in PEFT)
    "mts_lm_head": dict(r=2, lora_alpha=4, target_modules=["c_attn"], modules_to_save=["lm_head"]),
    "mts_wte": dict(r=2, lora_alpha=4, target_modules=["c_fc"], modules_to_save=["wte"]),
}


def base_model(path=BASE):
    m = AutoModelForCausalLM.from_pretrained(path)
    m.eval()
    return m


LLAMA = os.path.join(ROOT, "tests", "fixtures", "llama")
# Llama-family adapters with trained biases / modules_to_save: (base under tests/fixtures/llama, LoraConfig)
LLAMA_ADAPTERS = {
    # Qwen2 (q/k/v biases, tied embeddings): every bias trained
    "qwen2_bias_all": ("qwen2", dict(r=2, lora_alpha=4, target_modules=["q_proj", "v_proj"], bias="all")),
    # Llama with attention_bias: lora_only with the trained biases in the file (as base_layer.bias)
    "biased_lora_only_saved": ("biased", dict(r=2, lora_alpha=4, target_modules=["q_proj", "o_proj"], bias="lora_only")),
    # copies of the tied head / embedding
    "qwen2_mts_lm_head": ("qwen2", dict(r=2, lora_alpha=4, target_modules=["q_proj"], modules_to_save=["lm_head"])),
    "qwen2_mts_embed": ("qwen2", dict(r=2, lora_alpha=4, target_modules=["k_proj"], modules_to_save=["embed_tokens"])),
}


def cast_file(path, dtype):
    """Casts every tensor of a safetensors file to dtype, keeping its metadata."""
    t = load_file(path)
    save_file({k: v.to(dtype).contiguous() for k, v in t.items()}, path, metadata={"format": "pt"})


def make(name, kw, ids, seed, base=BASE, fan_in_fan_out=True):
    torch.manual_seed(seed)
    opts = dict(fan_in_fan_out=fan_in_fan_out, lora_dropout=0.0, bias="none", task_type="CAUSAL_LM")
    opts.update(kw)
    pm = get_peft_model(base_model(base), LoraConfig(**opts))
    with torch.no_grad():
        for n, p in pm.named_parameters():
            if "lora_" in n:
                p.copy_(0.3 * torch.randn_like(p))
            elif opts["bias"] != "none" and n.endswith("bias") and p.requires_grad:
                p.add_(0.5)  # a "trained" bias
            elif "modules_to_save" in n:
                p.add_(0.1 * torch.randn_like(p))  # a "trained" copy
    d = os.path.join(OUT, name)
    pm.peft_config["default"].base_model_name_or_path = "tests/fixtures/gpt2/tiny/base"  # not this machine's path
    pm.save_pretrained(d, safe_serialization=True)
    os.remove(os.path.join(d, "README.md"))  # PEFT's model-card template
    st = os.path.join(d, "adapter_model.safetensors")
    if name.endswith("lora_only_saved"):
        t = load_file(st)
        for n, p in pm.named_parameters():
            if n.endswith("base_layer.bias") and p.requires_grad:
                t[n.replace(".default", "")] = p.detach().clone().contiguous()
        save_file(t, st, metadata={"format": "pt"})
    if name.endswith("_f16"):
        cast_file(st, torch.float16)
    if name.endswith("_bf16"):
        cast_file(st, torch.bfloat16)
    # the logits of the adapter as saved (after the cast), loaded back the way users load it
    pm2 = PeftModel.from_pretrained(base_model(base), d)
    pm2.eval()
    with torch.no_grad():
        return pm2(ids).logits.float().contiguous()


def saved_names(kw):
    torch.manual_seed(0)
    pm = get_peft_model(base_model(), LoraConfig(fan_in_fan_out=True, task_type="CAUSAL_LM", **kw))
    tmp = os.path.join(OUT, "_tmp")
    pm.save_pretrained(tmp, safe_serialization=True)
    names = sorted(load_file(os.path.join(tmp, "adapter_model.safetensors")).keys())
    shutil.rmtree(tmp)
    return [n for n in names if "lora_" not in n]


def main():
    os.makedirs(OUT, exist_ok=True)
    for name in ADAPTERS:
        if os.path.isdir(os.path.join(OUT, name)):
            shutil.rmtree(os.path.join(OUT, name))
    V = json.load(open(os.path.join(BASE, "config.json")))["vocab_size"]
    g = torch.Generator().manual_seed(77)
    ids = torch.randint(0, V - 1, (2, 8), generator=g)
    ref = {"input_ids": ids}
    for i, (name, kw) in enumerate(ADAPTERS.items()):
        ref["logits." + name] = make(name, kw, ids, 100 + i)
    g = torch.Generator().manual_seed(78)
    ref["llama_input_ids"] = torch.randint(0, 63, (2, 8), generator=g)  # both Llama bases have 64 tokens
    for i, (name, (base, kw)) in enumerate(LLAMA_ADAPTERS.items()):
        if os.path.isdir(os.path.join(OUT, name)):
            shutil.rmtree(os.path.join(OUT, name))
        ref["logits." + name] = make(name, kw, ref["llama_input_ids"], 200 + i, os.path.join(LLAMA, base, "base"), False)
    for name in ("lorac_written", "lorac_cat", "lorac_svd"):
        lw = os.path.join(OUT, name)
        if os.path.isdir(lw):
            pm = PeftModel.from_pretrained(base_model(), lw)
            pm.eval()
            with torch.no_grad():
                ref["logits." + name] = pm(ids).logits.float().contiguous()
        else:
            print("no", lw, "yet: run LORAC_PEFT_WRITE=1 build/test_peft_ref first, then this script again")
    save_file(ref, os.path.join(OUT, "ref.safetensors"))
    with open(os.path.join(OUT, "names.txt"), "w") as f:
        f.write("# bias=\"all\" (c_attn target): non-LoRA tensors PEFT 0.10 saves\n")
        f.writelines(n + "\n" for n in saved_names(dict(target_modules=["c_attn"], bias="all")))
        f.write("# bias=\"lora_only\" (c_attn target)\n")
        f.writelines(n + "\n" for n in saved_names(dict(target_modules=["c_attn"], bias="lora_only")))
        f.write("# modules_to_save=[\"lm_head\"] (c_attn target)\n")
        f.writelines(n + "\n" for n in saved_names(dict(target_modules=["c_attn"], modules_to_save=["lm_head"])))
        f.write("# modules_to_save=[\"wte\"] (c_attn target)\n")
        f.writelines(n + "\n" for n in saved_names(dict(target_modules=["c_attn"], modules_to_save=["wte"])))
    print("wrote", OUT)


if __name__ == "__main__":
    main()
