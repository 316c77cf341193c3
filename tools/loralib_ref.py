#!/usr/bin/env python3
"""Reference fixtures for the LoRA layers, computed by Microsoft's loralib (0.1.2) under PyTorch.

Run:   .venv/bin/python tools/loralib_ref.py [outdir]
Writes tests/fixtures/loralib/<case>.txt (or into outdir), read by tests/test_lora_parity.c:
  linear, linear_fifo_nobias     lora.Linear (fan_in_fan_out off/on)
  merged_qv_fifo, merged_mask    lora.MergedLinear, enable_lora [T,F,T] (GPT-2 c_attn style, Conv1D
                                 weights) and [F,T,T,F] (nn.Linear weights)
  embedding, embedding_pad       lora.Embedding (padding_idx None / 2)
  conv2d, conv2d_groups, conv1d  lora.Conv2d (stride/padding/groups) and lora.Conv1d (kernel 1: loralib's
                                 Conv1d only works for kernel_size 1)
  rules                          mark_only_lora_as_trainable / lora_state_dict for each bias mode on a
                                 small model using every layer, and PEFT's trainable-parameter line
Dropout is off (p = 0). lora_B (and the Embedding's lora_A, zero at init) are drawn from N(0,1) so the
low-rank path is not trivially zero. Each layer case holds the weights, the input x, an upstream
gradient dy, the training-mode output y and gradients (dx, dA, dB, dbias), the merged weight after
.eval() (loralib's merge) and the eval-mode output. Text format, one tensor per two lines:
  cfg <key> <value>
  t <name> <ndim> <dims...>
  <values, %.9g, space separated>
"""
import os
import sys

import torch
import torch.nn as nn
import loralib as lora

OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "loralib")


class Writer:
    def __init__(self, name, note):
        self.path = os.path.join(OUT, name + ".txt")
        self.lines = ["# loralib %s reference (%s), written by tools/loralib_ref.py" % (lora.__version__ if hasattr(lora, "__version__") else "0.1.2", note)]

    def cfg(self, key, value):
        self.lines.append("cfg %s %s" % (key, value))

    def t(self, name, x):
        x = x.detach().to(torch.float32).contiguous()
        self.lines.append("t %s %d %s" % (name, x.dim(), " ".join(str(d) for d in x.shape)))
        self.lines.append(" ".join("%.9g" % v for v in x.reshape(-1).tolist()))

    def close(self):
        with open(self.path, "w") as f:
            f.write("\n".join(self.lines) + "\n")
        print("wrote", self.path, os.path.getsize(self.path), "bytes")


def loralib_drift(cycles=1000):
    """Prints how far loralib's in-place merge (W += s·BA) and unmerge (W -= s·BA) move W0 (not a fixture)."""
    torch.manual_seed(0)
    m = lora.Linear(64, 64, r=4, lora_alpha=8)
    with torch.no_grad():
        m.lora_B.normal_()
    w = m.weight.detach().clone()
    for _ in range(cycles):
        m.eval()
        m.train()
    d = (m.weight - w).abs()
    print("loralib Linear(64,64,r=4): after %d merge/unmerge cycles %d of %d weights differ from W0, max |dW| %.3g"
          % (cycles, int((d > 0).sum()), d.numel(), d.max().item()))


def linear_case(name, C, OC, r, alpha, fifo, bias, N):
    torch.manual_seed(1)
    m = lora.Linear(C, OC, r=r, lora_alpha=alpha, fan_in_fan_out=fifo, bias=bias)
    with torch.no_grad():
        m.lora_B.normal_()
    m.train()
    x = torch.randn(N, C, requires_grad=True)
    y = m(x)
    dy = torch.randn_like(y)
    y.backward(dy)
    w = Writer(name, "lora.Linear")
    for k, v in (("C", C), ("OC", OC), ("r", r), ("alpha", alpha), ("fan_in_fan_out", int(fifo)), ("bias", int(bias)), ("N", N)):
        w.cfg(k, v)
    w.t("weight", m.weight)
    if bias:
        w.t("bias", m.bias)
    w.t("lora_A", m.lora_A)
    w.t("lora_B", m.lora_B)
    w.t("x", x)
    w.t("dy", dy)
    w.t("y", y)
    w.t("dx", x.grad)
    w.t("dA", m.lora_A.grad)
    w.t("dB", m.lora_B.grad)
    if bias:
        w.t("dbias", m.bias.grad)
    m.eval()
    w.t("merged_weight", m.weight)
    with torch.no_grad():
        w.t("y_eval", m(x))
    w.close()


def merged_case(name, C, OC, r, alpha, enable, fifo, bias, N):
    torch.manual_seed(2)
    m = lora.MergedLinear(C, OC, r=r, lora_alpha=alpha, enable_lora=enable, fan_in_fan_out=fifo, bias=bias)
    with torch.no_grad():
        m.lora_B.normal_()
    m.train()
    x = torch.randn(N, C, requires_grad=True)
    y = m(x)
    dy = torch.randn_like(y)
    y.backward(dy)
    w = Writer(name, "lora.MergedLinear")
    for k, v in (("C", C), ("OC", OC), ("r", r), ("alpha", alpha), ("fan_in_fan_out", int(fifo)), ("bias", int(bias)), ("N", N)):
        w.cfg(k, v)
    w.cfg("enable_lora", "".join("1" if e else "0" for e in enable))
    w.t("weight", m.weight)
    if bias:
        w.t("bias", m.bias)
    w.t("lora_A", m.lora_A)
    w.t("lora_B", m.lora_B)
    w.t("x", x)
    w.t("dy", dy)
    w.t("y", y)
    w.t("dx", x.grad)
    w.t("dA", m.lora_A.grad)
    w.t("dB", m.lora_B.grad)
    if bias:
        w.t("dbias", m.bias.grad)
    with torch.no_grad():
        w.t("delta", m.merge_AB())
    m.eval()
    w.t("merged_weight", m.weight)
    with torch.no_grad():
        w.t("y_eval", m(x))
    w.close()


def embedding_case(name, V, D, r, alpha, padding_idx, ids):
    torch.manual_seed(3)
    m = lora.Embedding(V, D, r=r, lora_alpha=alpha, padding_idx=padding_idx)
    with torch.no_grad():
        m.lora_A.normal_()
    m.train()
    idx = torch.tensor(ids, dtype=torch.long)
    y = m(idx)
    dy = torch.randn_like(y)
    y.backward(dy)
    w = Writer(name, "lora.Embedding")
    for k, v in (("V", V), ("D", D), ("r", r), ("alpha", alpha), ("padding_idx", -1 if padding_idx is None else padding_idx), ("N", len(ids))):
        w.cfg(k, v)
    w.t("weight", m.weight)
    w.t("lora_A", m.lora_A)
    w.t("lora_B", m.lora_B)
    w.t("ids", idx.to(torch.float32))
    w.t("dy", dy)
    w.t("y", y)
    w.t("dA", m.lora_A.grad)
    w.t("dB", m.lora_B.grad)
    m.eval()
    w.t("merged_weight", m.weight)
    with torch.no_grad():
        w.t("y_eval", m(idx))
    w.close()


def conv_case(name, dims, C, OC, k, stride, padding, groups, r, alpha, shape):
    torch.manual_seed(4)
    cls = lora.Conv2d if dims == 2 else lora.Conv1d
    m = cls(C, OC, k, r=r, lora_alpha=alpha, stride=stride, padding=padding, groups=groups)
    with torch.no_grad():
        m.lora_B.normal_()
    m.train()
    x = torch.randn(*shape, requires_grad=True)
    y = m(x)
    dy = torch.randn_like(y)
    y.backward(dy)
    w = Writer(name, cls.__name__)
    for kk, v in (("dims", dims), ("C", C), ("OC", OC), ("k", k), ("stride", stride), ("padding", padding),
                  ("groups", groups), ("r", r), ("alpha", alpha)):
        w.cfg(kk, v)
    w.t("weight", m.conv.weight)
    w.t("bias", m.conv.bias)
    w.t("lora_A", m.lora_A)
    w.t("lora_B", m.lora_B)
    w.t("x", x)
    w.t("dy", dy)
    w.t("y", y)
    w.t("dx", x.grad)
    w.t("dA", m.lora_A.grad)
    w.t("dB", m.lora_B.grad)
    w.t("dbias", m.conv.bias.grad)
    m.eval()
    w.t("merged_weight", m.conv.weight)
    with torch.no_grad():
        w.t("y_eval", m(x))
    w.close()


class RulesModel(nn.Module):
    """Every layer kind; mirrored by build_rules_model() in tests/test_lora_parity.c."""

    def __init__(self):
        super().__init__()
        self.emb = lora.Embedding(10, 6, r=2)
        self.ln = nn.LayerNorm(6)
        self.attn = lora.MergedLinear(6, 12, r=2, enable_lora=[True, False, True], fan_in_fan_out=True)
        self.proj = lora.Linear(12, 6, r=2, bias=False)
        self.head = nn.Linear(6, 4)
        self.conv = lora.Conv2d(3, 4, 3, r=2)


def rules_case():
    w = Writer("rules", "mark_only_lora_as_trainable, lora_state_dict")
    m = RulesModel()
    for n, p in m.named_parameters():
        w.lines.append("param %s %s" % (n, " ".join(str(d) for d in p.shape)))
    for mode in ("none", "all", "lora_only"):
        m = RulesModel()
        lora.mark_only_lora_as_trainable(m, bias=mode)
        w.lines.append("trainable %s %s" % (mode, " ".join(n for n, p in m.named_parameters() if p.requires_grad)))
        w.lines.append("state %s %s" % (mode, " ".join(sorted(lora.lora_state_dict(m, bias=mode).keys()))))
        t = sum(p.numel() for p in m.parameters() if p.requires_grad)
        a = sum(p.numel() for p in m.parameters())
        # PEFT's print_trainable_parameters line
        w.lines.append("report %s trainable params: %s || all params: %s || trainable%%: %.4f" % (mode, format(t, ",d"), format(a, ",d"), 100 * t / a))
    w.close()


def main():
    os.makedirs(OUT, exist_ok=True)
    torch.set_num_threads(1)
    linear_case("linear", C=7, OC=5, r=3, alpha=6, fifo=False, bias=True, N=4)
    linear_case("linear_fifo_nobias", C=6, OC=8, r=2, alpha=3, fifo=True, bias=False, N=5)
    merged_case("merged_qv_fifo", C=6, OC=9, r=2, alpha=8, enable=[True, False, True], fifo=True, bias=True, N=4)
    merged_case("merged_mask", C=5, OC=8, r=3, alpha=4, enable=[False, True, True, False], fifo=False, bias=True, N=3)
    embedding_case("embedding", V=9, D=5, r=3, alpha=6, padding_idx=None, ids=[0, 3, 3, 8, 1, 5, 3])
    embedding_case("embedding_pad", V=7, D=4, r=2, alpha=2, padding_idx=2, ids=[2, 1, 2, 6, 0])
    conv_case("conv2d", 2, C=3, OC=4, k=3, stride=1, padding=1, groups=1, r=2, alpha=4, shape=(2, 3, 5, 5))
    conv_case("conv2d_groups", 2, C=4, OC=4, k=3, stride=2, padding=1, groups=2, r=2, alpha=2, shape=(1, 4, 6, 5))
    conv_case("conv1d", 1, C=4, OC=6, k=1, stride=1, padding=0, groups=1, r=2, alpha=4, shape=(2, 4, 7))
    rules_case()
    loralib_drift()


if __name__ == "__main__":
    main()
