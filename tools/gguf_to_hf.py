"""Dequantizes a GGUF model into a Hugging Face directory (fp32 safetensors, config.json in
transformers 5's layout, the tokenizer) with transformers' own GGUF loader: the real-model input of
bench/run.sh MODEL=DIR and of the by-hand parity checks. Needs PyPI's torch, transformers >= 5, gguf:
    bench/.venv/bin/python tools/gguf_to_hf.py ~/.cache/lorac/SmolLM2-135M-Instruct.Q4_1.gguf ~/.cache/lorac/SmolLM2-135M-hf"""
import os
import sys

import torch
import transformers as T

src, out = sys.argv[1], sys.argv[2]
d, f = os.path.dirname(os.path.abspath(src)), os.path.basename(src)
model = T.AutoModelForCausalLM.from_pretrained(d, gguf_file=f, torch_dtype=torch.float32)
tok = T.AutoTokenizer.from_pretrained(d, gguf_file=f)
model.save_pretrained(out, safe_serialization=True)
tok.save_pretrained(out)
print(out)
