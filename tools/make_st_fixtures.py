#!/usr/bin/env python3
"""Writes the safetensors reader's reference fixture with the official safetensors library.

Run from the repository root:
    .venv/bin/python tools/make_st_fixtures.py

Writes (committed; about 1 KB together):
    tests/fixtures/safetensors/small.safetensors   F32, F16, BF16, I64 tensors (incl. a scalar and an
                                                   empty tensor) and __metadata__, via
                                                   safetensors.torch.save_file
    tests/fixtures/safetensors/small.expected.txt  what a reader must find, one line per item:
        meta KEY VALUE
        tensor NAME DTYPE NDIM DIM... NUMEL VALUE...   (values as float32 after the exact
                                                        F16/BF16 -> F32 conversion, %.9g)
Broken files are not committed: tests/test_safetensors.c and tests/cli/inspect.sh build them at run
time from this fixture or from scratch.
"""
import os

import torch
from safetensors.torch import save_file

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "safetensors")


def main():
    g = torch.Generator().manual_seed(1234)
    tensors = {
        "weight.f32": (torch.arange(12, dtype=torch.float32) * 0.25 - 1.0).reshape(3, 4),
        "weight.f16": torch.randn(2, 3, 2, generator=g).to(torch.float16),
        "embed.bf16": torch.randn(5, generator=g).to(torch.bfloat16),
        "scalar": torch.tensor(3.5, dtype=torch.float32),
        "empty": torch.zeros(0, 4, dtype=torch.float32),
        "ids": torch.tensor([7, -1, 1 << 40, 0], dtype=torch.int64),
    }
    meta = {"format": "pt", "note": "lorac fixture: caf\u00e9 = 1"}
    os.makedirs(OUT, exist_ok=True)
    path = os.path.join(OUT, "small.safetensors")
    save_file(tensors, path, metadata=meta)
    lines = [f"meta {k} {v}" for k, v in sorted(meta.items())]
    names = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16", torch.int64: "I64"}
    for name, t in tensors.items():
        vals = t.reshape(-1).tolist() if t.dtype == torch.int64 else t.float().reshape(-1).tolist()
        fmt = (lambda v: str(v)) if t.dtype == torch.int64 else (lambda v: "%.9g" % v)
        dims = " ".join(str(d) for d in t.shape)
        lines.append(" ".join(x for x in ["tensor", name, names[t.dtype], str(t.dim()), dims, str(t.numel()),
                                          " ".join(fmt(v) for v in vals)] if x != ""))
    with open(os.path.join(OUT, "small.expected.txt"), "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    print("wrote", path, os.path.getsize(path), "bytes")


if __name__ == "__main__":
    main()
