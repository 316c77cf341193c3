#!/usr/bin/env python3
"""Reference fixtures for lorac's Llama-family path, from Hugging Face transformers + PEFT.

Run:  .venv/bin/python tools/llama_ref.py          (from the repository root; transformers 4.40.2,
      peft 0.10.0, torch 1.13)
Writes tests/fixtures/llama/<variant>/ for two variants:
  gqa    LlamaForCausalLM, hidden 32, 2 layers, 4 heads / 2 kv heads (GQA), intermediate 64, vocab 96,
         rope_theta 10000, untied lm_head, saved SHARDED (model.safetensors.index.json + shards)
  qwen2  Qwen2ForCausalLM, hidden 16, 1 layer, 4 heads / 2 kv heads, q/k/v biases, tied embeddings,
         rope_theta 1e6 (transformers 4.40.2's Qwen2 has no rope_scaling)
  biased LlamaForCausalLM, hidden 16, 1 layer, 4 heads / 1 kv head, attention_bias (q/k/v/o biases),
         tied embeddings, linear rope scaling (factor 2)
Each variant holds:
  base/     the model in HF layout (every weight, norms and biases included, perturbed off its init)
  adapter/  a PEFT LoRA adapter (r=4, alpha=8, all seven projections, dropout 0) with random
            non-zero A and B
  ref.safetensors  input_ids (B,T) I64, targets (B,T) I64 (-100 = ignored), base_logits (B,T,V)
            without the adapter, logits (B,T,V) with it, loss (plain CE), loss_ls (label smoothing
            0.1), grad.<peft tensor name> for every LoRA tensor after loss_ls.backward(),
            greedy_prompt (P) I64 and greedy_out (P+N) I64 from generate() (greedy, with the adapter).
"""
import os
import shutil

import torch
from peft import LoraConfig, get_peft_model
from safetensors.torch import save_file
from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
OUT = os.path.join(ROOT, "tests", "fixtures", "llama")
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def build(name, model, V, B, T, shard):
    out = os.path.join(OUT, name)
    with torch.no_grad():  # every parameter non-trivial (norm weights, biases)
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    model.eval()
    if os.path.isdir(out):
        shutil.rmtree(out)
    kw = {"max_shard_size": "40KB"} if shard else {}
    model.save_pretrained(os.path.join(out, "base"), safe_serialization=True, **kw)

    ids = torch.randint(0, V, (B, T))
    targets = torch.full((B, T), -100, dtype=torch.long)
    targets[:, :-1] = ids[:, 1:]
    targets[0, :3] = -100
    targets[1, :1] = -100
    with torch.no_grad():
        base_logits = model(ids).logits.clone()

    lcfg = LoraConfig(r=4, lora_alpha=8, target_modules=TARGETS, lora_dropout=0.0, bias="none",
                      task_type="CAUSAL_LM")
    pm = get_peft_model(model, lcfg)
    with torch.no_grad():
        for n, p in pm.named_parameters():
            if "lora_" in n:
                p.copy_(0.1 * torch.randn_like(p))
    pm.save_pretrained(os.path.join(out, "adapter"), safe_serialization=True)
    os.remove(os.path.join(out, "adapter", "README.md"))  # PEFT's empty model card
    pm.train()  # dropout 0 everywhere: deterministic

    def ce(logits, ls):
        return torch.nn.functional.cross_entropy(logits.reshape(-1, V), targets.reshape(-1),
                                                 ignore_index=-100, label_smoothing=ls)

    logits = pm(ids).logits
    loss = ce(logits, 0.0)
    loss_ls = ce(logits, 0.1)
    loss_ls.backward()
    tensors = {
        "input_ids": ids.contiguous(), "targets": targets.contiguous(),
        "logits": logits.detach().contiguous(), "base_logits": base_logits.contiguous(),
        "loss": loss.detach().reshape(1), "loss_ls": loss_ls.detach().reshape(1),
    }
    for n, p in pm.named_parameters():
        if p.requires_grad:
            tensors["grad." + n.replace(".default", "")] = p.grad.detach().clone().contiguous()
    pm.eval()
    prompt = torch.tensor([[5, 17, 42]])
    with torch.no_grad():
        gen = pm.generate(input_ids=prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=10,
                          do_sample=False, num_beams=1, pad_token_id=0, eos_token_id=None)
    tensors["greedy_prompt"] = prompt[0].contiguous()
    tensors["greedy_out"] = gen[0].contiguous()
    save_file(tensors, os.path.join(out, "ref.safetensors"))
    print(name, "loss", loss.item(), "loss_ls", loss_ls.item(), "greedy", gen[0].tolist())


def main():
    torch.manual_seed(1234)
    V = 96
    cfg = LlamaConfig(vocab_size=V, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                      rms_norm_eps=1e-6, rope_theta=10000.0, tie_word_embeddings=False,
                      bos_token_id=1, eos_token_id=2, attn_implementation="eager")
    build("gqa", LlamaForCausalLM(cfg), V, 2, 12, shard=True)
    V = 64
    cfg = Qwen2Config(vocab_size=V, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                      rms_norm_eps=1e-6, rope_theta=1000000.0, tie_word_embeddings=True,
                      bos_token_id=1, eos_token_id=2, attn_implementation="eager")
    build("qwen2", Qwen2ForCausalLM(cfg), V, 2, 10, shard=False)
    cfg = LlamaConfig(vocab_size=V, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                      num_attention_heads=4, num_key_value_heads=1, max_position_embeddings=64,
                      rms_norm_eps=1e-5, rope_theta=10000.0, tie_word_embeddings=True,
                      attention_bias=True, rope_scaling={"type": "linear", "factor": 2.0},
                      bos_token_id=1, eos_token_id=[2, 3], attn_implementation="eager")
    build("biased", LlamaForCausalLM(cfg), V, 2, 10, shard=False)
    with open(os.path.join(OUT, "README.md"), "w") as f:
        f.write("Generated by tools/llama_ref.py (transformers + PEFT); see that script's docstring.\n"
                "gguf/: generated by tools/llama_gguf_ref.py from those models (GGUF F32/Q8_0/Q4_0/Q4_1, references on\n"
                "dequantized weights, an rsLoRA adapter, llama.cpp-semantics adapter check); see its docstring.\n")


if __name__ == "__main__":
    main()
