#!/usr/bin/env python3
"""Reference numbers for `lorac analyze` (src/lora/analyze.c, tests/test_analyze.c): the LoRA paper's
Section 7 computed the direct way in NumPy (float64): the explicit ΔW = s·B·A and its full SVD, φ from
numpy's SVDs of A and B, Uᵀ·W·Vᵀ with W's own full SVD.

Run:  .venv/bin/python tools/analyze_ref.py     (from the repository root; numpy and safetensors from
      PyPI: `.venv/bin/pip install numpy safetensors`)
Writes tests/fixtures/analyze/ (small, deterministic for the seed below):
  llama_r4/, llama_r6/   PEFT adapters for a Llama-style base ((out, in) weights): q_proj (24, 20) and
                         v_proj (12, 20) in layers 0 and 1, and the token embedding embed_tokens (30, 20)
                         (lora_embedding_A/B; ΔW is (B·A)ᵀ against W (vocab, dim)), r 4 (alpha 8) and
                         r 6 (alpha 3): a rank mismatch for φ. Layer 0's q_proj has a planted spectrum (ΔW = U·diag(σ)·Vᵀ
                         with σ = 5, 3, 2, 0.5 through a non-orthogonal factorisation) and a planted
                         shared subspace: the top 2 right-singular vectors of A are the same 2
                         directions in both adapters (φ = 1 where min(i, j) <= 2).
  gpt2_r2/, gpt2_r3/     GPT-2-style adapters (fan_in_fan_out, Conv1D weights stored (in, out)) as
                         `lorac train --targets q,v` writes them: c_attn of rank 2r with lorac's q,v
                         split (metadata lorac.c_attn_split "1,0,1", B block diagonal), and mlp.c_fc
                         of rank r; n_embd 16 (c_attn out 48, c_fc out 64), r 2 and r 3.
  base_llama.safetensors, base_gpt2.safetensors   the W matrices under their HF names (F32).
  ref.safetensors        F64 references, for entry E = <case>.<adapter>.<module>[.<slice>]:
      E.sv (k), E.energy (k), E.U (out, k), E.Vt (k, in) (numpy's full SVD of the explicit ΔW, k =
      min(r, out, in), each pair's sign fixed as lorac fixes it), E.scalars = [effective_rank,
      norm_delta, norm_weight, proj_delta, proj_weight, amplification]; and for a module pair
      P = <case>.<module>[.<slice>]: P.phi (k1, k2), P.phi_b (k1, k2); plus proj.U (24, 3), proj.Vt
      (3, 20), proj.value: ||Uᵀ·W·Vᵀ||_F for layer 0's q_proj W and random orthonormal U, V.
Effective rank: exp(H(p)), p = σ / Σσ. Energy: cumsum(σ²) / Σσ². φ(i, j) = ||U1[:, :i]ᵀ·U2[:, :j]||_F² / min(i, j).
"""
import json
import os
import shutil

import numpy as np
from safetensors.numpy import save_file

OUT = "tests/fixtures/analyze"
rng = np.random.default_rng(20240517)


def orthonormal(m, k):
    q, _ = np.linalg.qr(rng.standard_normal((m, k)))
    return q


def write_adapter(name, cfg, tensors, meta=None):
    d = os.path.join(OUT, name)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "adapter_config.json"), "w") as f:
        json.dump(cfg, f, indent=2, sort_keys=True)
        f.write("\n")
    md = {"format": "pt"}
    md.update(meta or {})
    save_file({k: np.ascontiguousarray(v, dtype=np.float32) for k, v in tensors.items()},
              os.path.join(d, "adapter_model.safetensors"), metadata=md)


def peft_cfg(r, alpha, targets, fan_in_fan_out=False, rank_pattern=None, alpha_pattern=None):
    return {"peft_type": "LORA", "r": r, "lora_alpha": alpha, "lora_dropout": 0.0, "bias": "none",
            "target_modules": targets, "fan_in_fan_out": fan_in_fan_out, "task_type": "CAUSAL_LM",
            "rank_pattern": rank_pattern or {}, "alpha_pattern": alpha_pattern or {}, "use_rslora": False,
            "init_lora_weights": True, "inference_mode": True}


def fix_signs(U, Vt):
    """lorac's convention: the largest-magnitude entry of each row of Vt is positive."""
    for j in range(Vt.shape[0]):
        if Vt[j, np.argmax(np.abs(Vt[j]))] < 0:
            Vt[j] *= -1
            U[:, j] *= -1
    return U, Vt


def spectrum(B, A, s, W, key, ref):
    """B (out, r), A (r, in) float32 as stored; W (out, in) float64 or None."""
    dW = s * (B.astype(np.float64) @ A.astype(np.float64))
    U, S, Vt = np.linalg.svd(dW)
    k = min(A.shape[0], dW.shape[0], dW.shape[1])
    U, Vt, sv = U[:, :k].copy(), Vt[:k].copy(), S[:k]
    U, Vt = fix_signs(U, Vt)
    p = sv / sv.sum()
    p = p[p > 0]
    erank = float(np.exp(-(p * np.log(p)).sum()))
    energy = np.cumsum(sv ** 2) / (sv ** 2).sum()
    norm_delta = np.linalg.norm(dW)
    Uw, Sw, Vtw = np.linalg.svd(W)
    proj_delta = np.linalg.norm(U.T @ W @ Vt.T)
    proj_weight = np.linalg.norm(Uw[:, :k].T @ W @ Vtw[:k].T)
    ref[key + ".sv"], ref[key + ".energy"], ref[key + ".U"], ref[key + ".Vt"] = sv, energy, U, Vt
    ref[key + ".scalars"] = np.array([erank, norm_delta, np.linalg.norm(W), proj_delta, proj_weight,
                                      norm_delta / proj_delta])


def phi(X1, X2, k1, k2):
    """φ over the row spaces of X1 (r1, n), X2 (r2, n): right-singular vectors, i <= k1, j <= k2."""
    V1 = np.linalg.svd(X1.astype(np.float64))[2][:k1]
    V2 = np.linalg.svd(X2.astype(np.float64))[2][:k2]
    out = np.zeros((k1, k2))
    for i in range(1, k1 + 1):
        for j in range(1, k2 + 1):
            out[i - 1, j - 1] = np.linalg.norm(V1[:i] @ V2[:j].T) ** 2 / min(i, j)
    return out


def planted_factors(out, inn, r, sigma, shared):
    """B, A with s·B·A = U·diag(sigma)·Vᵀ (s = 1 here; callers divide B by s) through a random
    non-orthogonal C: B = U·diag(sigma)·C⁻¹, A = C·Vᵀ; A's own top right-singular vectors start
    with the rows of `shared` (A = diag(d)·[shared; rest] for the first rows)."""
    U = orthonormal(out, r)
    ns = shared.shape[0]
    rest = orthonormal(inn, r)[:, :r - ns].T
    rest -= (rest @ shared.T) @ shared           # orthogonal to the shared directions
    rest = np.linalg.qr(rest.T)[0].T
    Vt = np.vstack([shared, rest])                 # (r, in) orthonormal rows
    d = np.linspace(9.0, 2.0, r)                   # A = diag(d)·Vt: A's right-singular vectors are Vt's rows
    A = np.diag(d) @ Vt
    B = U @ np.diag(sigma) @ np.diag(1 / d)        # B·A = U·diag(sigma)·Vt
    return B, A


def llama_case(ref):
    C, V, outs = 20, 30, {"q_proj": 24, "v_proj": 12}
    W = {"model.embed_tokens.weight": rng.standard_normal((V, C))}   # embeddings: (vocab, dim)
    for l in range(2):
        for m, o in outs.items():
            W[f"model.layers.{l}.self_attn.{m}.weight"] = rng.standard_normal((o, C)) * 0.5
    save_file({k: v.astype(np.float32) for k, v in W.items()}, os.path.join(OUT, "base_llama.safetensors"))
    shared = orthonormal(C, 2).T
    adapters = {}
    for name, r, alpha, sig in (("llama_r4", 4, 8.0, [5, 3, 2, 0.5]), ("llama_r6", 6, 3.0, [4, 3.5, 1, 0.8, 0.3, 0.1])):
        s = alpha / r
        t = {}
        for l in range(2):
            for m, o in outs.items():
                if l == 0 and m == "q_proj":
                    B, A = planted_factors(o, C, r, np.array(sig, dtype=float), shared)
                    B = B / s
                else:
                    A = rng.standard_normal((r, C)) * np.linspace(1.0, 0.3, r)[:, None]
                    B = rng.standard_normal((o, r)) * 0.2
                t[f"base_model.model.model.layers.{l}.self_attn.{m}.lora_A.weight"] = A.astype(np.float32)
                t[f"base_model.model.model.layers.{l}.self_attn.{m}.lora_B.weight"] = B.astype(np.float32)
        # the token embedding: lora_embedding_A (r, V), lora_embedding_B (C, r); PEFT's delta is (B·A)ᵀ
        t["base_model.model.model.embed_tokens.lora_embedding_A"] = (rng.standard_normal((r, V))).astype(np.float32)
        t["base_model.model.model.embed_tokens.lora_embedding_B"] = (rng.standard_normal((C, r)) * 0.1).astype(np.float32)
        write_adapter(name, peft_cfg(r, alpha, ["q_proj", "v_proj", "embed_tokens"]), t)
        adapters[name] = (t, s)
    for name, (t, s) in adapters.items():
        Wemb = W["model.embed_tokens.weight"].astype(np.float32).astype(np.float64).T   # (out, in) = (C, V)
        spectrum(t["base_model.model.model.embed_tokens.lora_embedding_B"],
                 t["base_model.model.model.embed_tokens.lora_embedding_A"], s, Wemb, f"{name}.model.embed_tokens", ref)
        for l in range(2):
            for m in outs:
                mod = f"model.layers.{l}.self_attn.{m}"
                A = t[f"base_model.model.{mod}.lora_A.weight"]
                B = t[f"base_model.model.{mod}.lora_B.weight"]
                Wf = W[mod + ".weight"].astype(np.float32).astype(np.float64)
                spectrum(B, A, s, Wf, f"{name}.{mod}", ref)
    (t1, _), (t2, _) = adapters["llama_r4"], adapters["llama_r6"]
    e1, e2 = "base_model.model.model.embed_tokens.lora_embedding_", "base_model.model.model.embed_tokens.lora_embedding_"
    ref["llama.model.embed_tokens.phi"] = phi(t1[e1 + "A"], t2[e2 + "A"], 4, 6)
    ref["llama.model.embed_tokens.phi_b"] = phi(t1[e1 + "B"].T, t2[e2 + "B"].T, 4, 6)
    for l in range(2):
        for m, o in outs.items():
            mod = f"model.layers.{l}.self_attn.{m}"
            A1, A2 = t1[f"base_model.model.{mod}.lora_A.weight"], t2[f"base_model.model.{mod}.lora_A.weight"]
            B1, B2 = t1[f"base_model.model.{mod}.lora_B.weight"], t2[f"base_model.model.{mod}.lora_B.weight"]
            ref[f"llama.{mod}.phi"] = phi(A1, A2, 4, 6)
            ref[f"llama.{mod}.phi_b"] = phi(B1.T, B2.T, 4, 6)
    # projection with given orthonormal U, V (lorac's analyze_projection)
    Wq = W["model.layers.0.self_attn.q_proj.weight"].astype(np.float32).astype(np.float64)
    U, Vt = orthonormal(24, 3), orthonormal(20, 3).T
    ref["proj.U"], ref["proj.Vt"], ref["proj.value"] = U, Vt, np.array([np.linalg.norm(U.T @ Wq @ Vt.T)])


def gpt2_case(ref):
    C, I = 16, 64
    W = {"transformer.h.0.attn.c_attn.weight": rng.standard_normal((C, 3 * C)) * 0.3,   # Conv1D: (in, out)
         "transformer.h.0.mlp.c_fc.weight": rng.standard_normal((C, I)) * 0.3}
    save_file({k: v.astype(np.float32) for k, v in W.items()}, os.path.join(OUT, "base_gpt2.safetensors"))
    adapters = {}
    for name, r, alpha in (("gpt2_r2", 2, 16.0), ("gpt2_r3", 3, 6.0)):
        s = alpha / r
        Aq, Av = rng.standard_normal((r, C)), rng.standard_normal((r, C))
        Bq, Bv = rng.standard_normal((C, r)) * 0.1, rng.standard_normal((C, r)) * 0.1
        A = np.vstack([Aq, Av])                       # (2r, C)
        B = np.zeros((3 * C, 2 * r))                  # q rows use columns 0..r-1, v rows r..2r-1
        B[:C, :r], B[2 * C:, r:] = Bq, Bv
        Af, Bf = rng.standard_normal((r, C)), rng.standard_normal((I, r)) * 0.1
        t = {"base_model.model.transformer.h.0.attn.c_attn.lora_A.weight": A,
             "base_model.model.transformer.h.0.attn.c_attn.lora_B.weight": B,
             "base_model.model.transformer.h.0.mlp.c_fc.lora_A.weight": Af,
             "base_model.model.transformer.h.0.mlp.c_fc.lora_B.weight": Bf}
        t = {k: v.astype(np.float32) for k, v in t.items()}
        # as lorac writes it: c_attn of rank 2r, alpha chosen so that PEFT's scaling stays alpha/r
        cfg = peft_cfg(r, alpha, ["c_attn", "c_fc"], fan_in_fan_out=True,
                       rank_pattern={"c_attn": 2 * r}, alpha_pattern={"c_attn": s * 2 * r})
        write_adapter(name, cfg, t, {"lorac.c_attn_split": "1,0,1"})
        adapters[name] = (t, s)
        cat = t["base_model.model.transformer.h.0.attn.c_attn.lora_A.weight"]
        cbt = t["base_model.model.transformer.h.0.attn.c_attn.lora_B.weight"]
        Wa = W["transformer.h.0.attn.c_attn.weight"].astype(np.float32).astype(np.float64).T   # (3C, C) = (out, in)
        for sl, g, j in (("q", 0, 0), ("v", 2, 1)):
            spectrum(cbt[g * C:(g + 1) * C, j * r:(j + 1) * r], cat[j * r:(j + 1) * r], s, Wa[g * C:(g + 1) * C],
                     f"{name}.transformer.h.0.attn.c_attn.{sl}", ref)
        Wf = W["transformer.h.0.mlp.c_fc.weight"].astype(np.float32).astype(np.float64).T
        spectrum(t["base_model.model.transformer.h.0.mlp.c_fc.lora_B.weight"],
                 t["base_model.model.transformer.h.0.mlp.c_fc.lora_A.weight"], s, Wf,
                 f"{name}.transformer.h.0.mlp.c_fc", ref)
    (t1, _), (t2, _) = adapters["gpt2_r2"], adapters["gpt2_r3"]
    a1, a2 = t1["base_model.model.transformer.h.0.attn.c_attn.lora_A.weight"], t2["base_model.model.transformer.h.0.attn.c_attn.lora_A.weight"]
    b1, b2 = t1["base_model.model.transformer.h.0.attn.c_attn.lora_B.weight"], t2["base_model.model.transformer.h.0.attn.c_attn.lora_B.weight"]
    for sl, g, j in (("q", 0, 0), ("v", 2, 1)):
        ref[f"gpt2.transformer.h.0.attn.c_attn.{sl}.phi"] = phi(a1[j * 2:(j + 1) * 2], a2[j * 3:(j + 1) * 3], 2, 3)
        ref[f"gpt2.transformer.h.0.attn.c_attn.{sl}.phi_b"] = phi(b1[g * C:(g + 1) * C, j * 2:(j + 1) * 2].T,
                                                                 b2[g * C:(g + 1) * C, j * 3:(j + 1) * 3].T, 2, 3)
    ref["gpt2.transformer.h.0.mlp.c_fc.phi"] = phi(t1["base_model.model.transformer.h.0.mlp.c_fc.lora_A.weight"],
                                                   t2["base_model.model.transformer.h.0.mlp.c_fc.lora_A.weight"], 2, 3)
    ref["gpt2.transformer.h.0.mlp.c_fc.phi_b"] = phi(t1["base_model.model.transformer.h.0.mlp.c_fc.lora_B.weight"].T,
                                                     t2["base_model.model.transformer.h.0.mlp.c_fc.lora_B.weight"].T, 2, 3)


def main():
    if os.path.isdir(OUT):
        shutil.rmtree(OUT)
    os.makedirs(OUT)
    ref = {}
    llama_case(ref)
    gpt2_case(ref)
    save_file({k: np.ascontiguousarray(v, dtype=np.float64) for k, v in ref.items()},
              os.path.join(OUT, "ref.safetensors"))
    print(f"wrote {OUT}: {len(ref)} reference tensors")


if __name__ == "__main__":
    main()
