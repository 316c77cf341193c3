#!/usr/bin/env python3
"""PyTorch forward (and a few gradient) references for lorac's core ops (tests/test_ops_ref.c).

Run:   .venv/bin/python tools/ops_ref.py
Writes tests/fixtures/ops/*.bin (~130 KB in all, 116 KB of it the long attention case): raw little-endian float32 arrays, concatenated in
the order listed beside each file below (integers such as targets, positions and mask bits are
stored as exact float32 values). Shapes are fixed here and in the C test; change both together.
These pin the definitions where frameworks differ: GPT-2's gelu_new (tanh) vs exact erf GELU,
LayerNorm's biased variance and eps, Llama's RMSNorm, torch's CrossEntropyLoss with
label_smoothing and ignore_index, grouped-query attention (HF repeat_kv) with a padding mask, and
HF Llama's rotate-half rotary embedding.
"""
import math
import os

import numpy as np
import torch
import torch.nn.functional as F

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "ops")
g = torch.Generator().manual_seed(20261123)


def randn(*shape, scale=1.0):
    return torch.randn(*shape, generator=g, dtype=torch.float32) * scale


def write(name, *arrays):
    data = b"".join(np.ascontiguousarray(a.detach().numpy() if torch.is_tensor(a) else a,
                                         dtype="<f4").tobytes() for a in arrays)
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(data)
    print(f"{name}: {len(data)} bytes")


def main():
    os.makedirs(OUT, exist_ok=True)

    # act.bin: x (64), gelu_new(x) (64), gelu_erf(x) (64), silu(x) (64)
    x = torch.linspace(-6, 6, 64) + randn(64, scale=0.05)
    gelu_new = 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))
    write("act.bin", x, gelu_new, F.gelu(x), F.silu(x))

    # norm.bin (N=3, C=16): x, gamma, beta, layernorm(eps 1e-5), rms weight, rmsnorm(eps 1e-6)
    N, C = 3, 16
    x = randn(N, C, scale=2.0) + 0.5
    gamma, beta, w = randn(C), randn(C), randn(C)
    ln = F.layer_norm(x, (C,), gamma, beta, eps=1e-5)
    var = x.pow(2).mean(-1, keepdim=True)  # LlamaRMSNorm
    rms = w * (x * torch.rsqrt(var + 1e-6))
    write("norm.bin", x, gamma, beta, ln, w, rms)

    # softmax.bin (N=3, C=10): x, softmax(x)
    x = randn(3, 10, scale=3.0)
    write("softmax.bin", x, torch.softmax(x, -1))

    # ce.bin (N=6, V=13, label_smoothing 0.1): logits, targets (-100 ignored), per-row losses,
    # mean loss (1), dlogits of the mean loss
    N, V = 6, 13
    logits = randn(N, V, scale=2.0).requires_grad_(True)
    targets = torch.tensor([3, -100, 0, 12, -100, 7])
    rows = F.cross_entropy(logits, targets, ignore_index=-100, label_smoothing=0.1, reduction="none")
    mean = F.cross_entropy(logits, targets, ignore_index=-100, label_smoothing=0.1)
    mean.backward()
    write("ce.bin", logits, targets.float(), rows, mean.reshape(1), logits.grad)

    # attn.bin (B=2, T=5, NH=4, NKV=2, HS=8): q (B,T,NH*HS), k, v (B,T,NKV*HS), pad mask (B,T),
    # R (B,T,NH*HS), causal out, bidirectional out, dq, dk, dv of sum(R * causal out)
    B, T, NH, NKV, HS = 2, 5, 4, 2, 8
    q = randn(B, T, NH * HS).requires_grad_(True)
    k = randn(B, T, NKV * HS).requires_grad_(True)
    v = randn(B, T, NKV * HS).requires_grad_(True)
    mask = torch.tensor([[1, 1, 1, 1, 0], [0, 0, 1, 1, 1]], dtype=torch.float32)
    R = randn(B, T, NH * HS)

    def attention(causal):
        qh = q.view(B, T, NH, HS).transpose(1, 2)
        kh = k.view(B, T, NKV, HS).transpose(1, 2).repeat_interleave(NH // NKV, dim=1)  # repeat_kv
        vh = v.view(B, T, NKV, HS).transpose(1, 2).repeat_interleave(NH // NKV, dim=1)
        s = qh @ kh.transpose(-1, -2) / math.sqrt(HS)
        visible = mask[:, None, None, :].bool().expand(B, NH, T, T)
        if causal:
            visible = visible & torch.tril(torch.ones(T, T, dtype=torch.bool))
        s = s.masked_fill(~visible, float("-inf"))
        p = torch.softmax(s, -1)
        p = torch.where(visible.any(-1, keepdim=True), p, torch.zeros_like(p))  # no key: out 0
        return (p @ vh).transpose(1, 2).reshape(B, T, NH * HS)

    out_c = attention(True)
    out_b = attention(False)
    (out_c * R).sum().backward()
    write("attn.bin", q, k, v, mask, R, out_c, out_b, q.grad, k.grad, v.grad)

    # rope.bin (B=2, T=4, NH=2, HS=8, theta 10000): x (B,T,NH*HS), positions (B,T), out
    B, T, NH, HS, theta = 2, 4, 2, 8, 10000.0
    x = randn(B, T, NH, HS)
    pos = torch.tensor([[0, 1, 2, 3], [5, 6, 7, 40]])
    inv_freq = 1.0 / (theta ** (torch.arange(0, HS, 2).float() / HS))  # HF LlamaRotaryEmbedding
    freqs = pos[..., None].float() * inv_freq  # (B,T,HS/2)
    emb = torch.cat((freqs, freqs), dim=-1)
    cos, sin = emb.cos()[:, :, None, :], emb.sin()[:, :, None, :]

    def rotate_half(t):
        return torch.cat((-t[..., HS // 2:], t[..., : HS // 2]), dim=-1)

    out = x * cos + rotate_half(x) * sin
    write("rope.bin", x, pos.float(), out)

    # attn_long.bin (B=2, T=130, NH=2, NKV=1, HS=8): as attn.bin, with T spanning three of lorac's
    # 64-key tiles (the last partial) and batch row 1 padded on its first 70 keys (a whole tile)
    B, T, NH, NKV, HS = 2, 130, 2, 1, 8
    q = randn(B, T, NH * HS).requires_grad_(True)
    k = randn(B, T, NKV * HS).requires_grad_(True)
    v = randn(B, T, NKV * HS).requires_grad_(True)
    mask = torch.ones(B, T)
    mask[0, T - 3:] = 0
    mask[1, :70] = 0
    R = randn(B, T, NH * HS)
    out_c = attention_ref(q, k, v, mask, NH, NKV, True)
    out_b = attention_ref(q, k, v, mask, NH, NKV, False)
    (out_c * R).sum().backward()
    write("attn_long.bin", q, k, v, mask, R, out_c, out_b, q.grad, k.grad, v.grad)


def attention_ref(q, k, v, mask, NH, NKV, causal):
    """Grouped-query attention with a padding mask (B,T) as HF (repeat_kv); rows that see no key get 0."""
    B, T = mask.shape
    HS = q.shape[-1] // NH
    qh = q.view(B, T, NH, HS).transpose(1, 2)
    kh = k.view(B, T, NKV, HS).transpose(1, 2).repeat_interleave(NH // NKV, dim=1)
    vh = v.view(B, T, NKV, HS).transpose(1, 2).repeat_interleave(NH // NKV, dim=1)
    s = qh @ kh.transpose(-1, -2) / math.sqrt(HS)
    visible = mask[:, None, None, :].bool().expand(B, NH, T, T)
    if causal:
        visible = visible & torch.tril(torch.ones(T, T, dtype=torch.bool))
    s = s.masked_fill(~visible, float("-inf"))
    p = torch.softmax(s, -1)
    p = torch.where(visible.any(-1, keepdim=True), p, torch.zeros_like(p))
    return (p @ vh).transpose(1, 2).reshape(B, T, NH * HS)


if __name__ == "__main__":
    torch.manual_seed(0)
    main()
