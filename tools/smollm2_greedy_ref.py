#!/usr/bin/env python3
"""Greedy-generation golden for SmolLM2-135M-Instruct (Q4_1 GGUF), from transformers on the GGUF's
dequantized weights (an independent implementation of the model, its tokenizer and its chat
template; llama-cpp-python has no prebuilt wheel on PyPI, so it is not used).

Run:  .venv/bin/python tools/smollm2_greedy_ref.py [GGUF]
      (GGUF defaults to ~/.cache/lorac/SmolLM2-135M-Instruct.Q4_1.gguf, from tools/fetch_smollm2.sh;
      needs gguf, transformers 4.40.2, tokenizers, torch)
Writes tests/fixtures/llama_gen/smollm2_greedy.txt, four lines:
  the user message; the prompt ids (ChatML with SmolLM2's default system message and the generation
  prompt, tokenized by HF `tokenizers` with the GGUF's vocabulary and merges, digits split as
  SmolLM2's tokenizer.json does); the greedy ids generate() gives (max_new_tokens 32, eos
  <|im_end|>, the eos kept when emitted); their decoded text (one line, \\n escaped).
"""
import os
import sys

import numpy as np
import torch
from gguf import GGUFReader
from tokenizers import Tokenizer, models, pre_tokenizers, decoders
from transformers import LlamaConfig, LlamaForCausalLM

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from llama_gguf_ref import dequantized_state  # noqa: E402

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
OUT = os.path.join(ROOT, "tests", "fixtures", "llama_gen", "smollm2_greedy.txt")
USER = "Give me three tips for learning a new language."
SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"


def field(r, k):
    f = r.fields[k]
    v = f.parts[f.data[0]]
    return bytes(v).decode() if f.types[0].name == "STRING" else v.tolist()[0]


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else os.path.expanduser("~/.cache/lorac/SmolLM2-135M-Instruct.Q4_1.gguf")
    r = GGUFReader(path)
    a = "llama"
    cfg = dict(model_type="llama", vocab_size=len(r.fields["tokenizer.ggml.tokens"].data),
               hidden_size=field(r, f"{a}.embedding_length"), intermediate_size=field(r, f"{a}.feed_forward_length"),
               num_hidden_layers=field(r, f"{a}.block_count"), num_attention_heads=field(r, f"{a}.attention.head_count"),
               num_key_value_heads=field(r, f"{a}.attention.head_count_kv"),
               max_position_embeddings=field(r, f"{a}.context_length"),
               rms_norm_eps=field(r, f"{a}.attention.layer_norm_rms_epsilon"), rope_theta=field(r, f"{a}.rope.freq_base"),
               tie_word_embeddings="output.weight" not in {t.name for t in r.tensors})
    sd = dequantized_state(path, cfg)
    model = LlamaForCausalLM(LlamaConfig(**cfg, attn_implementation="eager")).eval()
    missing, unexpected = model.load_state_dict(sd, strict=False)
    assert not unexpected and all(k == "lm_head.weight" for k in missing), (missing, unexpected)
    model.tie_weights()

    f = r.fields["tokenizer.ggml.tokens"]
    toks = [bytes(f.parts[i]).decode() for i in f.data]
    f = r.fields["tokenizer.ggml.merges"]
    merges = [tuple(bytes(f.parts[i]).decode().split(" ", 1)) for i in f.data]
    tk = Tokenizer(models.BPE({t: i for i, t in enumerate(toks)}, merges))
    tk.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True),
                                                pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])
    tk.decoder = decoders.ByteLevel()
    start, end = toks.index("<|im_start|>"), toks.index("<|im_end|>")
    ids = []
    for role, text in (("system", SYSTEM), ("user", USER)):
        ids += [start] + tk.encode(role + "\n" + text).ids + [end] + tk.encode("\n").ids
    ids += [start] + tk.encode("assistant\n").ids
    with torch.no_grad():
        p = torch.tensor([ids])
        g = model.generate(input_ids=p, attention_mask=torch.ones_like(p), max_new_tokens=32, do_sample=False,
                           num_beams=1, eos_token_id=end, pad_token_id=end)[0, len(ids):].tolist()
    text = tk.decode([t for t in g if t != end]).replace("\n", "\\n")
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as fo:
        fo.write(USER + "\n" + " ".join(map(str, ids)) + "\n" + " ".join(map(str, g)) + "\n" + text + "\n")
    print(open(OUT).read())


if __name__ == "__main__":
    main()
