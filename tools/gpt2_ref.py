#!/usr/bin/env python3
"""Reference fixtures for lorac's GPT-2 path, from Hugging Face transformers + PEFT.

Run:  .venv/bin/python tools/gpt2_ref.py          (from the repository root; transformers 4.40.2,
      peft 0.10.0, torch 1.13 from Debian's python3-torch via a --system-site-packages venv)
Writes tests/fixtures/gpt2/tiny/:
  base/     a tiny random GPT2LMHeadModel in HF layout (config.json, model.safetensors)
  adapter/  a PEFT LoRA adapter on c_attn, attn.c_proj, mlp.c_fc, mlp.c_proj (r=4, alpha=8,
            fan_in_fan_out) with random non-zero A and B
  ref.safetensors  input_ids (B,T) I64, targets (B,T) I64 (-100 = ignored; targets[t] = ids[t+1]),
            logits (B,T,V) with the adapter, loss (plain CE), loss_ls (label smoothing 0.1),
            grad.<peft tensor name> for every LoRA tensor after loss_ls.backward(),
            adam_losses (3): loss_ls before each of 3 AdamW steps (lr 1e-2, wd 0.01),
            base_logits (B,T,V) without the adapter,
            greedy_prompt (P) I64 and greedy_out (P+N) I64: greedy decoding with the adapter;
            beam_out: beam search (4 beams, length_penalty 0.8, no_repeat_ngram_size 2, 8 new tokens).
"""
import json
import os
import shutil

import torch
from peft import LoraConfig, get_peft_model
from safetensors.torch import save_file
from transformers import GPT2Config, GPT2LMHeadModel

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
OUT = os.path.join(ROOT, "tests", "fixtures", "gpt2", "tiny")


def main():
    torch.manual_seed(1234)
    V, T, B = 96, 12, 2
    cfg = GPT2Config(vocab_size=V, n_positions=32, n_embd=32, n_layer=2, n_head=4,
                     activation_function="gelu_new", resid_pdrop=0.0, embd_pdrop=0.0,
                     attn_pdrop=0.0, layer_norm_epsilon=1e-5, bos_token_id=V - 1,
                     eos_token_id=V - 1)
    model = GPT2LMHeadModel(cfg)
    with torch.no_grad():  # make every parameter non-trivial (LN weights, biases)
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    model.eval()
    if os.path.isdir(OUT):
        shutil.rmtree(OUT)
    model.save_pretrained(os.path.join(OUT, "base"), safe_serialization=True)

    ids = torch.randint(0, V - 1, (B, T))
    targets = torch.full((B, T), -100, dtype=torch.long)
    targets[:, :-1] = ids[:, 1:]
    targets[0, :4] = -100  # a "context" part that is not predicted
    targets[1, :2] = -100

    with torch.no_grad():
        base_logits = model(ids).logits.clone()

    lcfg = LoraConfig(r=4, lora_alpha=8, target_modules=["c_attn", "c_proj", "c_fc"],
                      fan_in_fan_out=True, lora_dropout=0.0, bias="none", task_type="CAUSAL_LM")
    pm = get_peft_model(model, lcfg)
    with torch.no_grad():
        for n, p in pm.named_parameters():
            if "lora_" in n:
                p.copy_(0.1 * torch.randn_like(p))
    pm.save_pretrained(os.path.join(OUT, "adapter"), safe_serialization=True)
    pm.train()  # dropout probabilities are all 0, so train mode is deterministic

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
            # PEFT's saved name drops the adapter name ("default")
            tensors["grad." + n.replace(".default", "")] = p.grad.detach().clone().contiguous()

    trainable = [p for p in pm.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(trainable, lr=1e-2, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)
    losses = []
    for _ in range(3):
        opt.zero_grad()
        l = ce(pm(ids).logits, 0.1)
        losses.append(l.item())
        l.backward()
        opt.step()
    tensors["adam_losses"] = torch.tensor(losses, dtype=torch.float32)

    # greedy decoding with the (untrained) adapter as saved
    pm2 = get_peft_model(GPT2LMHeadModel.from_pretrained(os.path.join(OUT, "base")), lcfg)
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file
    set_peft_model_state_dict(pm2, load_file(os.path.join(OUT, "adapter", "adapter_model.safetensors")))
    pm2.eval()
    prompt = torch.tensor([[5, 17, 42]])
    with torch.no_grad():
        out = pm2.generate(input_ids=prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=10,
                           do_sample=False, num_beams=1, pad_token_id=V - 1, eos_token_id=None)
    tensors["greedy_prompt"] = prompt[0].contiguous()
    tensors["greedy_out"] = out[0].contiguous()
    # beam search as transformers does it (the C test runs lorac's GEN_BEAM_HF with the same options)
    with torch.no_grad():
        beam = pm2.generate(input_ids=prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=8,
                            do_sample=False, num_beams=4, length_penalty=0.8, no_repeat_ngram_size=2,
                            early_stopping=False, pad_token_id=V - 1, eos_token_id=V - 1)
    tensors["beam_out"] = beam[0].contiguous()
    save_file(tensors, os.path.join(OUT, "ref.safetensors"))
    with open(os.path.join(OUT, "README.md"), "w") as f:
        f.write("Generated by tools/gpt2_ref.py (transformers + PEFT); see that script's docstring.\n")
    print("wrote", OUT, "loss", loss.item(), "loss_ls", loss_ls.item(), "adam", losses,
          "greedy", out[0].tolist(), "beam", beam[0].tolist())


if __name__ == "__main__":
    main()
