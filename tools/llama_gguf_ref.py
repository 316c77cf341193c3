#!/usr/bin/env python3
"""GGUF fixtures for lorac's Llama path: the tiny HF models of tools/llama_ref.py written as GGUF the
way llama.cpp's convert_hf_to_gguf.py writes them, references for the quantized variants, an
rsLoRA/alpha_pattern/rank_pattern PEFT adapter, and a check of GGUF LoRA adapters with llama.cpp's
semantics.

Run:  .venv/bin/python tools/llama_gguf_ref.py          (after tools/llama_ref.py; repository root)
      .venv/bin/python tools/llama_gguf_ref.py --check-adapter tests/fixtures/llama/gguf/gqa_rs.lorac.gguf
Writes tests/fixtures/llama/gguf/:
  gqa.f32.gguf, qwen2.f32.gguf, biased.f32.gguf   the HF fixtures' base models as GGUF (F32): names
        token_embd / blk.N.attn_q ... / output_norm / output, llama.* (or qwen2.*) metadata,
        a placeholder tokenizer (tokenizer.ggml.tokens "<tN>"), and for architecture llama the
        rows of attn_q / attn_k (and their biases) permuted as llama.cpp's converter does
        (LlamaModel.permute); qwen2 is not permuted (NEOX rope).
  gqa_llama3.f32.gguf   gqa plus rope_freqs.weight, the per-frequency factors llama.cpp's converter
        writes for Llama 3.1 rope scaling (factor 4, low/high_freq_factor 1/4, original context 64),
        which the C test compares with the HF model under that rope_scaling.
  gqa.q8_0.gguf, gqa.q4_0.gguf, gqa.q4_1.gguf   the same with every 2-D tensor quantized by gguf.quants (1-D
        tensors stay F32, as the converter does).
  gqa.<type>.ref.safetensors   references from transformers+PEFT on the
        DEQUANTIZED weights (gguf.quants.dequantize, rows un-permuted): base_logits, logits (with
        tests/fixtures/llama/gqa/adapter), loss_ls (label smoothing 0.1) and grad.<PEFT name> for
        every LoRA tensor, on gqa/ref.safetensors' input_ids/targets.
  gqa_rs/adapter/   a PEFT adapter on the gqa base with use_rslora, rank_pattern {o_proj: 2} and
        alpha_pattern {v_proj: 3} (r 4, alpha 8), random A and B; gqa_rs/ref.safetensors: logits
        (B,T,V) of base+adapter (PEFT) on the same input_ids.
With --smollm2-ids GGUF: tokenizes held-out English (the sentence1 column of the first 40 rows of
../shared/data/glue/RTE/dev.tsv, joined by spaces) with SmolLM2's vocabulary and merges read from
the GGUF (HF `tokenizers` BPE, digits split, byte-level pre-tokenizer: SmolLM2's tokenizer.json
settings) into smollm2_rte_ids.txt, the perplexity input of tests/test_llama_gguf.c.
With --check-adapter FILE (a GGUF adapter lorac wrote from gqa_rs/adapter, see
tests/test_llama_gguf.c): applies it the way llama.cpp does (per tensor pair: W += (alpha/r)·B·A
with r read from lora_a's shape, on GGUF-order rows) to gqa.f32.gguf and compares with PEFT's
merged weights permuted into GGUF order; prints the largest difference and exits non-zero above
1e-6.
"""
import argparse
import json
import math
import os
import sys

import numpy as np
import torch
from gguf import GGMLQuantizationType as Q, GGUFReader, GGUFWriter
from gguf import quants
from peft import LoraConfig, PeftModel, get_peft_model
from safetensors.numpy import load_file
from safetensors.torch import load_file as load_torch, save_file
from transformers import AutoConfig, AutoModelForCausalLM

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
LL = os.path.join(ROOT, "tests", "fixtures", "llama")
OUT = os.path.join(LL, "gguf")
SITES = [("self_attn.q_proj", "attn_q"), ("self_attn.k_proj", "attn_k"), ("self_attn.v_proj", "attn_v"),
         ("self_attn.o_proj", "attn_output"), ("mlp.gate_proj", "ffn_gate"), ("mlp.up_proj", "ffn_up"),
         ("mlp.down_proj", "ffn_down")]


def permute(w, n_head):
    """llama.cpp's LlamaModel.permute (n_head already the kv count for k)."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def unpermute(w, n_head):
    return w.reshape(n_head, w.shape[0] // n_head // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def load_hf(d):
    sd = {}
    for f in sorted(os.listdir(d)):
        if f.endswith(".safetensors"):
            sd.update(load_file(os.path.join(d, f)))
    return sd, json.load(open(os.path.join(d, "config.json")))


def gguf_names(cfg):
    """(hf name, gguf name, permute heads or 0) for every tensor, in llama.cpp's order."""
    arch = cfg["model_type"]
    nh, nkv = cfg["num_attention_heads"], cfg.get("num_key_value_heads", cfg["num_attention_heads"])
    out = [("model.embed_tokens.weight", "token_embd.weight", 0)]
    for l in range(cfg["num_hidden_layers"]):
        out.append((f"model.layers.{l}.input_layernorm.weight", f"blk.{l}.attn_norm.weight", 0))
        for hf, gg in SITES:
            ph = (nh if gg == "attn_q" else nkv if gg == "attn_k" else 0) if arch == "llama" else 0
            out.append((f"model.layers.{l}.{hf}.weight", f"blk.{l}.{gg}.weight", ph))
            out.append((f"model.layers.{l}.{hf}.bias", f"blk.{l}.{gg}.bias", ph))
        out.append((f"model.layers.{l}.post_attention_layernorm.weight", f"blk.{l}.ffn_norm.weight", 0))
    out.append(("model.norm.weight", "output_norm.weight", 0))
    out.append(("lm_head.weight", "output.weight", 0))
    return out


def write_gguf(hf_dir, path, qtype, llama3=False):
    sd, cfg = load_hf(hf_dir)
    arch = cfg["model_type"]
    w = GGUFWriter(path, arch)
    a = arch
    nh = cfg["num_attention_heads"]
    w.add_name(os.path.basename(os.path.dirname(hf_dir)))
    w.add_uint32(f"{a}.context_length", cfg["max_position_embeddings"])
    w.add_uint32(f"{a}.embedding_length", cfg["hidden_size"])
    w.add_uint32(f"{a}.block_count", cfg["num_hidden_layers"])
    w.add_uint32(f"{a}.feed_forward_length", cfg["intermediate_size"])
    w.add_uint32(f"{a}.rope.dimension_count", cfg["hidden_size"] // nh)
    w.add_uint32(f"{a}.attention.head_count", nh)
    w.add_uint32(f"{a}.attention.head_count_kv", cfg.get("num_key_value_heads", nh))
    w.add_float32(f"{a}.attention.layer_norm_rms_epsilon", cfg["rms_norm_eps"])
    w.add_float32(f"{a}.rope.freq_base", cfg["rope_theta"])
    rs = cfg.get("rope_scaling")
    if rs and rs.get("type", rs.get("rope_type")) == "linear":
        w.add_string(f"{a}.rope.scaling.type", "linear")
        w.add_float32(f"{a}.rope.scaling.factor", rs["factor"])
    w.add_uint32("general.file_type", {Q.F32: 0, Q.Q8_0: 7, Q.Q4_0: 2, Q.Q4_1: 3}[qtype])
    V = cfg["vocab_size"]
    w.add_string("tokenizer.ggml.model", "gpt2")
    w.add_array("tokenizer.ggml.tokens", [f"<t{i}>" for i in range(V)])
    w.add_array("tokenizer.ggml.token_type", [1] * V)
    w.add_array("tokenizer.ggml.merges", [])
    eos = cfg.get("eos_token_id")
    w.add_uint32("tokenizer.ggml.bos_token_id", cfg.get("bos_token_id") or 0)
    w.add_uint32("tokenizer.ggml.eos_token_id", eos[0] if isinstance(eos, list) else eos)
    for hf, gg, ph in gguf_names(cfg):
        if hf not in sd:
            continue
        t = sd[hf].astype(np.float32)
        if ph:
            t = permute(t, ph)
        if t.ndim == 2 and qtype != Q.F32:
            w.add_tensor(gg, quants.quantize(t, qtype), raw_dtype=qtype)
        else:
            w.add_tensor(gg, np.ascontiguousarray(t))
    if llama3:
        w.add_tensor("rope_freqs.weight", llama3_factors(cfg))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


LLAMA3 = {"rope_type": "llama3", "factor": 4.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
          "original_max_position_embeddings": 64}


def llama3_factors(cfg):
    """convert_hf_to_gguf.py's LlamaModel rope_freqs for rope_type llama3 (LLAMA3's parameters)."""
    base, dim = cfg["rope_theta"], cfg["hidden_size"] // cfg["num_attention_heads"]
    freqs = 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.float32) / dim))
    rs = LLAMA3
    factor, lo, hi, old = rs["factor"], rs["low_freq_factor"], rs["high_freq_factor"], rs["original_max_position_embeddings"]
    out = []
    for f in freqs.tolist():
        wl = 2 * math.pi / f
        if wl < old / hi:
            out.append(1.0)
        elif wl > old / lo:
            out.append(factor)
        else:
            sm = (old / wl - lo) / (hi - lo)
            out.append(1 / ((1 - sm) / factor + sm))
    return np.array(out, dtype=np.float32)


def dequantized_state(path, cfg):
    """HF state dict from a GGUF: dequantized, q/k rows un-permuted."""
    r = GGUFReader(path)
    by = {t.name: t for t in r.tensors}
    sd = {}
    for hf, gg, ph in gguf_names(cfg):
        if gg not in by:
            continue
        t = by[gg]
        x = quants.dequantize(t.data, t.tensor_type).astype(np.float32)
        x = x.reshape([int(n) for n in reversed(t.shape)]) if x.ndim != len(t.shape) else x
        if ph:
            x = unpermute(x, ph)
        sd[hf] = torch.from_numpy(np.ascontiguousarray(x))
    return sd


def quantized_ref(qname, qtype):
    hf_dir = os.path.join(LL, "gqa", "base")
    path = os.path.join(OUT, f"gqa.{qname}.gguf")
    write_gguf(hf_dir, path, qtype)
    cfg = AutoConfig.from_pretrained(hf_dir)
    cfg._attn_implementation = "eager"
    model = AutoModelForCausalLM.from_pretrained(hf_dir, config=cfg)
    sd = dequantized_state(path, json.load(open(os.path.join(hf_dir, "config.json"))))
    missing = model.load_state_dict(sd, strict=False)
    assert not missing.unexpected_keys and all("rotary" in k for k in missing.missing_keys), missing
    model.eval()
    ref = load_torch(os.path.join(LL, "gqa", "ref.safetensors"))
    ids, targets = ref["input_ids"], ref["targets"]
    V = model.config.vocab_size
    with torch.no_grad():
        base_logits = model(ids).logits.clone()
    pm = PeftModel.from_pretrained(model, os.path.join(LL, "gqa", "adapter"), is_trainable=True)
    pm.train()
    logits = pm(ids).logits
    loss_ls = torch.nn.functional.cross_entropy(logits.reshape(-1, V), targets.reshape(-1), ignore_index=-100,
                                                label_smoothing=0.1)
    loss_ls.backward()
    out = {"base_logits": base_logits.contiguous(), "logits": logits.detach().contiguous(),
           "loss_ls": loss_ls.detach().reshape(1)}
    for n, p in pm.named_parameters():
        if p.requires_grad:
            out["grad." + n.replace(".default", "")] = p.grad.detach().clone().contiguous()
    save_file(out, os.path.join(OUT, f"gqa.{qname}.ref.safetensors"))
    print(qname, "loss_ls", loss_ls.item())


def rs_adapter():
    hf_dir = os.path.join(LL, "gqa", "base")
    torch.manual_seed(99)
    cfg = AutoConfig.from_pretrained(hf_dir)
    cfg._attn_implementation = "eager"
    model = AutoModelForCausalLM.from_pretrained(hf_dir, config=cfg)
    lcfg = LoraConfig(r=4, lora_alpha=8, use_rslora=True, rank_pattern={"o_proj": 2}, alpha_pattern={"v_proj": 3},
                      target_modules=[s.split(".")[1] for s, _ in SITES], lora_dropout=0.0, task_type="CAUSAL_LM")
    pm = get_peft_model(model, lcfg)
    with torch.no_grad():
        for n, p in pm.named_parameters():
            if "lora_" in n:
                p.copy_(0.1 * torch.randn_like(p))
    d = os.path.join(OUT, "gqa_rs")
    pm.save_pretrained(os.path.join(d, "adapter"), safe_serialization=True)
    readme = os.path.join(d, "adapter", "README.md")
    if os.path.exists(readme):
        os.remove(readme)
    pm.eval()
    ids = load_torch(os.path.join(LL, "gqa", "ref.safetensors"))["input_ids"]
    with torch.no_grad():
        logits = pm(ids).logits
    save_file({"logits": logits.contiguous()}, os.path.join(d, "ref.safetensors"))


def check_adapter(path):
    """Merges a GGUF adapter into gqa.f32.gguf as llama.cpp does and compares with PEFT's merge."""
    hf_dir = os.path.join(LL, "gqa", "base")
    hcfg = json.load(open(os.path.join(hf_dir, "config.json")))
    ad = GGUFReader(path)
    kv = {f.name: f for f in ad.fields.values()}

    def sval(k):
        f = kv[k]
        return bytes(f.parts[f.data[0]]).decode()

    assert sval("general.type") == "adapter" and sval("adapter.type") == "lora", "not a LoRA adapter"
    assert sval("general.architecture") == "llama"
    alpha = float(kv["adapter.lora.alpha"].parts[kv["adapter.lora.alpha"].data[0]][0])
    base = GGUFReader(os.path.join(OUT, "gqa.f32.gguf"))
    W = {t.name: np.array(t.data, dtype=np.float32).reshape([int(n) for n in reversed(t.shape)]) for t in base.tensors}
    T = {t.name: np.array(t.data, dtype=np.float32).reshape([int(n) for n in reversed(t.shape)]) for t in ad.tensors}
    cpp = {}
    for name in T:
        if not name.endswith(".lora_a"):
            continue
        tname = name[: -len(".lora_a")]
        A, B = T[name], T[tname + ".lora_b"]  # numpy (r, n_in), (n_out, r): ggml ne reversed
        r = A.shape[0]
        scale = alpha / r if alpha else 1.0  # llama.cpp: adapter_scale * alpha / rank
        cpp[tname] = W[tname] + scale * (B @ A)
    # PEFT's merge in HF layout, permuted into GGUF order
    cfg = AutoConfig.from_pretrained(hf_dir)
    cfg._attn_implementation = "eager"
    model = AutoModelForCausalLM.from_pretrained(hf_dir, config=cfg)
    merged = PeftModel.from_pretrained(model, os.path.join(OUT, "gqa_rs", "adapter")).merge_and_unload()
    msd = {k: v.detach().numpy() for k, v in merged.state_dict().items()}
    worst, n = 0.0, 0
    for hf, gg, ph in gguf_names(hcfg):
        if gg not in cpp:
            continue
        want = msd[hf]
        if ph:
            want = permute(want, ph)
        worst = max(worst, float(np.abs(cpp[gg] - want).max()))
        n += 1
    print(f"{path}: {n} tensors merged with llama.cpp's semantics (alpha {alpha}); "
          f"max |llama.cpp merge - PEFT merge| = {worst:.3g}")
    return 0 if n == 7 * hcfg["num_hidden_layers"] and worst <= 1e-6 else 1


def smollm2_ids(path):
    from tokenizers import Tokenizer, models, pre_tokenizers
    r = GGUFReader(path)
    f = r.fields["tokenizer.ggml.tokens"]
    toks = [bytes(f.parts[i]).decode() for i in f.data]
    f = r.fields["tokenizer.ggml.merges"]
    merges = [tuple(bytes(f.parts[i]).decode().split(" ", 1)) for i in f.data]
    tk = Tokenizer(models.BPE({t: i for i, t in enumerate(toks)}, merges))
    tk.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True),
                                                pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])
    rows = open(os.path.join(ROOT, "..", "shared", "data", "glue", "RTE", "dev.tsv")).read().split("\n")[1:41]
    text = " ".join(r.split("\t")[1] for r in rows)
    ids = tk.encode(text).ids
    with open(os.path.join(OUT, "smollm2_rte_ids.txt"), "w") as f:
        f.write(" ".join(map(str, ids)) + "\n")
    print(len(ids), "tokens")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--check-adapter")
    ap.add_argument("--smollm2-ids")
    a = ap.parse_args()
    if a.check_adapter:
        sys.exit(check_adapter(a.check_adapter))
    if a.smollm2_ids:
        smollm2_ids(a.smollm2_ids)
        return
    os.makedirs(OUT, exist_ok=True)
    for name in ("gqa", "qwen2", "biased"):
        write_gguf(os.path.join(LL, name, "base"), os.path.join(OUT, f"{name}.f32.gguf"), Q.F32)
    write_gguf(os.path.join(LL, "gqa", "base"), os.path.join(OUT, "gqa_llama3.f32.gguf"), Q.F32, llama3=True)
    quantized_ref("q8_0", Q.Q8_0)
    quantized_ref("q4_0", Q.Q4_0)
    quantized_ref("q4_1", Q.Q4_1)
    rs_adapter()


if __name__ == "__main__":
    main()
