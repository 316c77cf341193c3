/* lorac/ops.h — the core fp32 ops, each a forward/backward pair on plain float arrays.
 *
 * This is the narrow set of functions a GPU backend would implement. Conventions (llm.c style):
 *  - shapes are given in fixed letters: N rows (= B*T tokens), C in-features, OC out-features,
 *    B batch, T time, NH query heads, NKV key/value heads, HS head size, V vocabulary;
 *  - each forward writes what its backward needs (norm statistics, attention log-sum-exp) into
 *    caller-provided buffers whose sizes are stated below; nothing here allocates;
 *  - every backward ACCUMULATES (+=) into the gradient buffers it is given;
 *  - a gradient pointer that is NULL is not computed (frozen weights never get a dW GEMM);
 *  - determinism: the same inputs on the same thread count give the same bits, run after run.
 *    lorac's own loops and kernels (norms, activations, softmax, attention, embedding, dropout,
 *    cross-entropy, the bf16 GEMM) sum in orders fixed by the shapes, so their bits do not depend
 *    on the thread count either. The fp32 matmuls are OpenBLAS's, which may split a sum of K terms
 *    differently for another thread count: across thread counts they agree within fp32 rounding,
 *    |Δ| <= 2·γ_K·Σ|terms|, γ_K = K·2^-24/(1 - K·2^-24) (tests/check.h, check_sum_orders).
 *  - kernel levels (lorac_isa, base.h): avx2 and avx512 give the same bits for the attention tiles
 *    and the vector math; the generic level differs from them by rounding (libm's exp and tanh, a
 *    cblas tile product), within each op's tested tolerance; so do OpenBLAS's kernels on
 *    different CPUs (or OPENBLAS_CORETYPE).
 */
#ifndef LORAC_OPS_H
#define LORAC_OPS_H

#include <stddef.h>
#include <stdint.h>

#include "lorac/base.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- linear maps (cblas) ------------------------------------------------------------------- */
/* How a weight matrix of a linear map is stored. */
typedef enum op_wlayout {
    OP_W_OUT_IN = 0, /* W is (OC, C), as torch.nn.Linear */
    OP_W_IN_OUT = 1, /* W is (C, OC), as GPT-2's Conv1D (fan_in_fan_out) */
} op_wlayout;

/* out (N,OC) = inp (N,C) · Wᵀ + bias (OC, may be NULL). Overwrites out. */
void op_matmul_forward(float *out, const float *inp, const float *w, const float *bias,
                       int N, int C, int OC, op_wlayout layout);
/* out (N,OC) += alpha · inp (N,C) · Wᵀ. For fused low-rank paths. */
void op_matmul_forward_acc(float *out, const float *inp, const float *w, float alpha,
                           int N, int C, int OC, op_wlayout layout);
/* Backward of out = alpha·inp·Wᵀ + bias:
 * dinp (N,C) += alpha·dout·W; dw (stored like w) += alpha·doutᵀ·inp; dbias (OC) += Σ_n dout.
 * Any of dinp, dw, dbias may be NULL. */
void op_matmul_backward(float *dinp, float *dw, float *dbias, const float *dout, const float *inp,
                        const float *w, float alpha, int N, int C, int OC, op_wlayout layout);

/* Precision of the big matmuls (forward, and the input gradient of the backward; weight gradients
 * are always fp32). OP_PREC_BF16 rounds both operands to bf16 (8 significant bits, relative error
 * <= 2^-8) and accumulates in fp32 with AVX512-BF16: about 1.7x the fp32 GEMM speed, each output
 * within 2^-7 · Σ_k |a_ik·b_kj| (plus fp32 rounding) of the exact product. Process-wide; default fp32.
 * op_gemm_bf16 keeps its packing buffers per thread (about 5 MiB), the one allocation in this file.
 * Small products (fewer than 16 rows, or under 64 in K or N) stay fp32 whatever the setting. */
typedef enum op_precision { OP_PREC_FP32 = 0, OP_PREC_BF16 = 1 } op_precision;
/* 1 when this CPU (and build) can run the bf16 kernel and LORAC_ISA does not cap it: the kernel
 * level is avx512bf16 (base.h). */
int op_bf16_supported(void);
/* Returns 0, or -1 (setting unchanged) when bf16 is asked for and not supported. */
int op_set_matmul_precision(op_precision p);
op_precision op_matmul_precision(void);
/* 1 when a product of M rows, N columns and depth K runs in bf16 now (the precision and the sizes
 * above: bf16 only where packing pays for itself). */
int op_matmul_bf16_applies(int M, int N, int K);
/* C (M,N) = alpha · A (M,K) · op(B) + beta · C + bias with bf16 operands and fp32 accumulation;
 * A row-major (lda); op(B) = B (K,N) row-major for transb 0, Bᵀ with B stored (N,K) for transb 1;
 * bias (N) is added to every row, or NULL. beta 0 never reads C. Returns -1 (C untouched) when the
 * CPU lacks AVX512-BF16 or memory runs out. */
int op_gemm_bf16(int transb, int M, int N, int K, float alpha, const float *A, int lda, const float *B,
                 int ldb, float beta, const float *bias, float *C, int ldc);
/* op(B) packed once into the kernel's bf16 layout, for a frozen B that many products read (the
 * LM head): op_bf16_pack_words(K, N) 32-bit words at dst (op(B) is (K,N), stored as for
 * op_gemm_bf16); op_gemm_bf16_packed then skips the per-call conversion. Both return -1 without
 * AVX512-BF16. dst must be 64-byte aligned (aligned_alloc(64, ...)). The packed copy is a snapshot:
 * repack after B changes. */
size_t op_bf16_pack_words(int K, int N);
int op_bf16_pack(uint32_t *dst, int transb, int K, int N, const float *B, int ldb);
int op_gemm_bf16_packed(int M, int N, int K, float alpha, const float *A, int lda, const uint32_t *Bp, float beta,
                        const float *bias, float *C, int ldc);

/* ---- bias add ---------------------------------------------------------------------------- */
/* out (N,C) = inp (N,C) + bias (C); out may equal inp (in place). */
void op_bias_add_forward(float *out, const float *inp, const float *bias, int N, int C);
/* out (n) = a + b (out may equal a or b): the residual add; op_zero: x (n) = 0. Both parallel,
 * for the large activation buffers a training step adds and clears. */
void op_add(float *out, const float *a, const float *b, size_t n);
void op_zero(float *x, size_t n);
/* dinp (N,C) += dout; dbias (C) += Σ_n dout. Either may be NULL. */
void op_bias_add_backward(float *dinp, float *dbias, const float *dout, int N, int C);

/* ---- normalisation --------------------------------------------------------------------------- */
/* LayerNorm over the last dim (torch.nn.LayerNorm): out = (x - mean) * rstd * gamma + beta,
 * rstd = 1/sqrt(var + eps), var the biased variance. inp, out (N,C); gamma, beta (C) or NULL
 * (no affine: 1 and 0). mean, rstd (N) are written for the backward. out may equal inp. */
void op_layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *gamma,
                          const float *beta, int N, int C, float eps);
/* dinp (N,C), dgamma (C), dbeta (C) accumulate; any may be NULL (a frozen norm passes NULL for
 * dgamma and dbeta). gamma NULL means 1. Parameter gradients are summed over rows in a fixed
 * order, so they do not depend on the thread count. */
void op_layernorm_backward(float *dinp, float *dgamma, float *dbeta, const float *dout,
                           const float *inp, const float *gamma, const float *mean,
                           const float *rstd, int N, int C);
/* RMSNorm as Llama's: out = x * rstd * w, rstd = 1/sqrt(mean(x²) + eps). inp, out (N,C);
 * w (C) or NULL (1); rstd (N) is written for the backward. out may equal inp. */
void op_rmsnorm_forward(float *out, float *rstd, const float *inp, const float *w, int N, int C,
                        float eps);
/* dinp (N,C) and dw (C) accumulate; either may be NULL. */
void op_rmsnorm_backward(float *dinp, float *dw, const float *dout, const float *inp,
                         const float *w, const float *rstd, int N, int C);
/* The forward's output again from its saved statistics, with the forward's own arithmetic (the same
 * bits): (x - mean)·rstd·w + b (LayerNorm; b may be NULL), or x·rstd·w when mean is NULL (RMSNorm).
 * Lets a backward recompute a norm's output instead of keeping it. */
void op_norm_apply(float *out, const float *inp, const float *mean, const float *rstd, const float *w, const float *b,
                   int N, int C);

/* ---- activations (elementwise on n values; out may equal inp) ------------------------------- */
/* GELU, tanh approximation (GPT-2's gelu_new, torch gelu(approximate='tanh')):
 * 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))). */
void op_gelu_tanh_forward(float *out, const float *inp, size_t n);
void op_gelu_tanh_backward(float *dinp, const float *dout, const float *inp, size_t n);
/* GELU, exact: 0.5·x·(1 + erf(x/√2)) (BERT, torch gelu default). */
void op_gelu_erf_forward(float *out, const float *inp, size_t n);
void op_gelu_erf_backward(float *dinp, const float *dout, const float *inp, size_t n);
/* The same four with the input stored as bf16 (training under bf16 precision keeps the MLP's
 * pre-activation so, in half the memory): the bits of widening inp and calling the fp32 op. */
void op_gelu_tanh_forward_bf16(float *out, const uint16_t *inp, size_t n);
void op_gelu_tanh_backward_bf16(float *dinp, const float *dout, const uint16_t *inp, size_t n);
void op_gelu_erf_forward_bf16(float *out, const uint16_t *inp, size_t n);
void op_gelu_erf_backward_bf16(float *dinp, const float *dout, const uint16_t *inp, size_t n);
/* bf16 storage: round to nearest even (NaN stays NaN), and back (exact). */
void op_f32_to_bf16(uint16_t *out, const float *inp, size_t n);
void op_bf16_to_f32(float *out, const uint16_t *inp, size_t n);
/* SiLU (swish): x·σ(x). */
void op_silu_forward(float *out, const float *inp, size_t n);
void op_silu_backward(float *dinp, const float *dout, const float *inp, size_t n);
/* SwiGLU (Llama MLP): out = silu(gate) · up; gate, up, out (N,C). out may equal gate or up. */
void op_swiglu_forward(float *out, const float *gate, const float *up, int N, int C);
/* dgate, dup (N,C) accumulate; either may be NULL. */
void op_swiglu_backward(float *dgate, float *dup, const float *dout, const float *gate,
                        const float *up, int N, int C);

/* ---- softmax over the last dim ---------------------------------------------------------------- */
/* out (N,C) = softmax(inp (N,C)) row by row; out may equal inp. */
void op_softmax_forward(float *out, const float *inp, int N, int C);
/* dinp (N,C) += out · (dout - Σ_c dout·out), from the forward's out. */
void op_softmax_backward(float *dinp, const float *dout, const float *out, int N, int C);

/* ---- causal / bidirectional multi-head self-attention -------------------------------------------
 * q (B,T,NH·HS), k and v (B,T,NKV·HS), out (B,T,NH·HS): head h lives in columns [h·HS,(h+1)·HS)
 * (torch .view(B,T,NH,HS)). Grouped-query: NH % NKV == 0 and query head h uses kv head
 * h / (NH/NKV) (HF repeat_kv). Scores are q·k / √HS; key j is visible to query t when
 * (!causal || j <= t) and (pad_mask == NULL || pad_mask[b·T + j] != 0) (pad_mask (B,T): 1 real
 * token, 0 padding). A query row that sees no key gets out = 0 (never NaN).
 * lse (B,NH,T) receives the log-sum-exp of each query row's visible scores (-INFINITY for a row
 * that sees nothing): it is all the backward needs besides the inputs; no (T,T) matrix is ever
 * stored. Tiled (64 queries x 64 keys, an AVX-512 or AVX2 kernel product per tile, cblas at the
 * generic kernel level; online softmax;
 * causal tiles above the diagonal skipped), parallel over (b, h, query tile). Under bf16 matmul
 * precision (op_set_matmul_precision) and HS <= 128 the tile products take bf16 operands (q, k,
 * v, dout and the probabilities rounded; fp32 sums): within ~0.5% relative L2 of fp32. */
void op_attention_forward(float *out, float *lse, const float *q, const float *k, const float *v,
                          const uint8_t *pad_mask, int B, int T, int NH, int NKV, int HS, int causal);
/* dq (B,T,NH·HS), dk, dv (B,T,NKV·HS) accumulate; any may be NULL. out and lse are the forward's.
 * Scores are recomputed tile by tile in one pass: a task per (b, kv head) owns its dk, dv rows and
 * the dq rows of its query heads, so every sum runs in a fixed order (no atomics,
 * thread-independent); B·NKV tasks share the threads. */
void op_attention_backward(float *dq, float *dk, float *dv, const float *dout, const float *out,
                           const float *lse, const float *q, const float *k, const float *v,
                           const uint8_t *pad_mask, int B, int T, int NH, int NKV, int HS,
                           int causal);

/* The same on a packed projection as GPT-2's c_attn (or a fused Wqkv) writes it: qkv (B,T,W),
 * W = (NH+2·NKV)·HS, each row [q (NH·HS) | k (NKV·HS) | v (NKV·HS)]; out (B,T,NH·HS). Saves
 * splitting q, k, v into copies. The backward accumulates into dqkv (B,T,W), which may be NULL. */
void op_attention_qkv_forward(float *out, float *lse, const float *qkv, const uint8_t *pad_mask, int B, int T,
                              int NH, int NKV, int HS, int causal);
void op_attention_qkv_backward(float *dqkv, const float *dout, const float *out, const float *lse, const float *qkv,
                               const uint8_t *pad_mask, int B, int T, int NH, int NKV, int HS, int causal);

/* Inference attention against a KV cache (causal, grouped-query as above, no mask, no backward),
 * ragged: q, out (S,Tq,NH·HS) are the new queries of S sequences; kc, vc (n_slots,cap,NKV·HS) are the
 * cache, sequence s reading slot[s] (slot NULL: slot s), which holds its keys and values for
 * positions [0, offset[s]+Tq) (the new ones already written). Query i of sequence s is at position
 * offset[s]+i and sees keys 0..offset[s]+i, so sequences of different lengths share one call
 * (continuous batching). scratch holds (S·NH, cap) floats. */
void op_attention_cached_forward(float *out, const float *q, const float *kc, const float *vc, int S, int Tq,
                                 const int *slot, const int *offset, int cap, int NH, int NKV, int HS, float *scratch);
/* ---- rotary position embedding (HF Llama, rotate-half) -----------------------------------------
 * inp, out (B,T,NH·HS), HS even; out may equal inp. For each head, pairs (i, i+HS/2), i < HS/2,
 * are rotated by angle pos·theta^(-2i/HS):
 *   out[i] = x[i]·cos - x[i+HS/2]·sin,  out[i+HS/2] = x[i+HS/2]·cos + x[i]·sin.
 * pos (B,T) gives each token's position, or NULL for 0..T-1 in every row. cos/sin are computed
 * in double. Call once for q (NH heads) and once for k (NKV heads). */
void op_rope_forward(float *out, const float *inp, const int *pos, int B, int T, int NH, int HS,
                     float theta);
/* dinp += the inverse rotation of dout (the rotation is orthogonal). dinp must not alias dout. */
void op_rope_backward(float *dinp, const float *dout, const int *pos, int B, int T, int NH, int HS,
                      float theta);

/* ---- embedding lookup --------------------------------------------------------------------------
 * out (N,C) = wte (V,C)[ids (N)]. ids must be in [0,V): the caller validates them (V is only
 * used for that contract). */
void op_embedding_forward(float *out, const int *ids, const float *wte, int N, int C, int V);
/* dwte (V,C) += scatter of dout (N,C) by ids. Parallel over channel ranges, each summing tokens
 * in order, so the result is deterministic and does not depend on the thread count. */
void op_embedding_backward(float *dwte, const float *dout, const int *ids, int N, int C);

/* ---- cross-entropy over a vocabulary --------------------------------------------------------------
 * As torch.nn.CrossEntropyLoss(ignore_index=-100, label_smoothing=ls, reduction='mean'):
 *   loss_n = (1-ls)·(-log p[y_n]) + ls·mean_v(-log p[v]),  p = softmax(logits_n),
 * for rows with targets[n] >= 0; rows with a negative target (-100) are ignored (loss 0, no
 * gradient, not counted). Non-negative targets must be < V (the caller validates).
 * logits (N,V); losses (N) and lse (N, the row log-sum-exp for the backward) are written.
 * Returns the mean of losses over non-ignored rows (0 if there are none). */
#define OP_IGNORE_INDEX (-100)
float op_crossentropy_forward(float *losses, float *lse, const float *logits, const int *targets,
                              int N, int V, float label_smoothing);
/* dlogits (N,V) += (softmax - smoothed one-hot) · dlosses[n] for non-ignored rows, where
 * smoothed one-hot = (1-ls)·onehot(y) + ls/V. For the mean loss, dlosses[n] = 1/count. */
void op_crossentropy_backward(float *dlogits, const float *dlosses, const float *logits,
                              const float *lse, const int *targets, int N, int V,
                              float label_smoothing);
/* Number of non-ignored rows (targets >= 0). */
int op_crossentropy_count(const int *targets, int N);
/* Fused forward + backward that saves a (N,V) buffer: writes losses (N), returns the mean loss as
 * the forward does, and OVERWRITES logits with dlogits = (softmax - smoothed one-hot) · dloss
 * (0 for ignored rows). For the mean loss, dloss = 1/count. Same bits as forward + backward
 * into a zeroed buffer with every dlosses[n] = dloss. */
float op_crossentropy_fused(float *logits, float *losses, const int *targets, int N, int V,
                            float label_smoothing, float dloss);

/* ---- vector math on arrays (AVX-512 or AVX2, the same bits; libm at the generic level, a few ulp
 * apart; chosen at run time, base.h) ------------------------------------------------------------- */
/* out[i] = exp(inp[i]·scale - shift) for n values; returns their float sum. out may equal inp. */
float op_vexp_sum(float *out, const float *inp, float scale, float shift, size_t n);
/* out[i] = tanh(inp[i]) (absolute error ~1e-7); out may equal inp. */
void op_vtanh(float *out, const float *inp, size_t n);
/* out[i] = erf(inp[i]), absolute error < 4e-7 (libm's erff at the generic level); out may equal
 * inp. An absolute bound: meant for GELU, not for erf of tiny arguments. */
void op_verf(float *out, const float *inp, size_t n);
/* max of n values (-INFINITY for n == 0; NaNs are skipped). */
float op_vmax(const float *inp, size_t n);

/* ---- dropout ------------------------------------------------------------------------------------ */
/* Inverted dropout on n values: mask[i] ~ Bernoulli(1-p) from a counter-based stream keyed by one
 * draw from rng (so the result does not depend on threads), out = inp * mask / (1-p). p == 0 copies and leaves mask
 * untouched (it may be NULL then). */
void op_dropout_forward(float *out, uint8_t *mask, const float *inp, float p, size_t n, lorac_rng *rng);
/* dinp += dout * mask / (1-p) (dout when p == 0). */
void op_dropout_backward(float *dinp, const float *dout, const uint8_t *mask, float p, size_t n);

#ifdef __cplusplus
}
#endif
#endif
