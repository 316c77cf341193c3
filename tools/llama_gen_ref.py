#!/usr/bin/env python3
"""Decoding references for lorac's Llama KV-cache session, from Hugging Face transformers + PEFT.

Run:  .venv/bin/python tools/llama_gen_ref.py     (from the repository root; transformers 4.40.2,
      peft 0.10.0, torch 1.13; needs tests/fixtures/llama/ from tools/llama_ref.py)
Writes tests/fixtures/llama_gen/<variant>.safetensors for the gqa and qwen2 tiny models with their
PEFT adapters (tests/fixtures/llama/<variant>/{base,adapter}), eval mode:
  prompt (P) I64
  greedy (N) I64         generate(do_sample=False, num_beams=1, max_new_tokens=12), new tokens only
  beam (N) I64           generate(num_beams=3, length_penalty=1.0, early_stopping=False,
                         max_new_tokens=12), new tokens only (exercises the cache reorder)
  beam_eos (1) I64       the eos id given to the beam search (a token that greedy emits, so that
                         hypotheses finish early and beams get reshuffled)
  beam_eos_out (M) I64   generate(num_beams=4, eos_token_id=beam_eos, max_new_tokens=12), new tokens
"""
import os

import torch
from peft import PeftModel
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
SRC = os.path.join(ROOT, "tests", "fixtures", "llama")
OUT = os.path.join(ROOT, "tests", "fixtures", "llama_gen")


def run(name, prompt):
    base = AutoModelForCausalLM.from_pretrained(os.path.join(SRC, name, "base"), torch_dtype=torch.float32,
                                                attn_implementation="eager")
    pm = PeftModel.from_pretrained(base, os.path.join(SRC, name, "adapter")).eval()
    ids = torch.tensor([prompt])
    kw = dict(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=12, pad_token_id=0)
    P = ids.shape[1]
    with torch.no_grad():
        greedy = pm.generate(do_sample=False, num_beams=1, eos_token_id=None, **kw)[0, P:]
        beam = pm.generate(do_sample=False, num_beams=3, length_penalty=1.0, early_stopping=False,
                           eos_token_id=None, **kw)[0, P:]
        eos = int(greedy[3])
        beam_eos = pm.generate(do_sample=False, num_beams=4, length_penalty=1.0, early_stopping=False,
                               eos_token_id=eos, **kw)[0, P:]
    t = {"prompt": ids[0].contiguous(), "greedy": greedy.contiguous(), "beam": beam.contiguous(),
         "beam_eos": torch.tensor([eos]), "beam_eos_out": beam_eos.contiguous()}
    os.makedirs(OUT, exist_ok=True)
    save_file(t, os.path.join(OUT, name + ".safetensors"))
    print(name, "greedy", greedy.tolist(), "beam", beam.tolist(), "eos", eos, "beam_eos", beam_eos.tolist())


def main():
    run("gqa", [5, 17, 42, 7, 9])
    run("qwen2", [3, 11, 29])


if __name__ == "__main__":
    main()
