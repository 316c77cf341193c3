/* lorac/lora.h — LoRA layers: Microsoft loralib's Linear, MergedLinear, Embedding and
 * Conv1d/Conv2d in C, with merge/unmerge, loralib's trainable-parameter rules and adapter-only state.
 *
 * LoRA (Hu et al. 2021) freezes a pre-trained weight W0 and learns a low-rank update:
 *     h = x·W0ᵀ + b + s · dropout(x)·Aᵀ·Bᵀ,   A (r, in), B (out, r), s = lora_alpha / r
 * (or lora_alpha / sqrt(r) with rsLoRA). B starts at zero, so training starts from the base model.
 *
 * Quick start — the four steps of loralib's README, in C:
 *
 *   (1) Replace a layer. Where the model had a Linear(in, out) with weight W (out, in) and bias b:
 *           lora_config cfg = lora_config_default(16, 16.0f);      // r = 16, lora_alpha = 16
 *           lora_linear L;
 *           lora_linear_init(&L, in, out, &cfg, W, b, &rng, &err);  // W and b are borrowed
 *       GPT-2's Conv1D stores W as (in, out): set cfg.fan_in_fan_out = 1. A fused projection
 *       such as GPT-2's c_attn (q, k, v) with LoRA on q and v only is a lora_merged with
 *       enable_lora = {1, 0, 1}. Embeddings and convolutions have their own layers below.
 *       Register every tensor of the model, by name, in a lora_registry:
 *           lora_linear_register(&L, &reg, "transformer.h.0.attn.c_attn", &err);
 *
 *   (2) Mark only LoRA as trainable:
 *           lora_mark_only_lora_as_trainable(&reg, LORA_BIAS_NONE);
 *           lora_registry_report(&reg, buf, sizeof buf);
 *           // "trainable params: 147,456 || all params: 124,587,264 || trainable%: 0.1184"
 *
 *   (3) Save only the LoRA state (a few MB instead of the whole model), as safetensors:
 *           lora_state_save(&reg, "adapter.safetensors", LORA_BIAS_NONE, &err);
 *
 *   (4) Load the base weights first, then the adapter:
 *           lora_base_load(&reg, "base.safetensors", &err);      // or the model family's loader
 *           lora_state_load(&reg, "adapter.safetensors", LORA_BIAS_NONE, &err);
 *       Unlike loralib's load_state_dict(strict=False), a missing tensor, an unknown tensor and a
 *       shape mismatch are errors, each a one-line message naming the file and the tensor.
 *
 * Training and inference. lora_*_train(L, 1) puts a layer in training mode (dropout active, LoRA
 * path separate); lora_*_train(L, 0) switches to inference and, when merge_weights is set, merges
 * W = W0 + s·BA so the forward pass costs exactly one GEMM (no extra latency). Switching back to
 * training unmerges.
 *
 * Merging and memory (a deliberate difference from loralib). loralib merges in place
 * (W += s·BA) and unmerges by subtraction (W -= s·BA), which does not restore W0 in float32: the
 * error grows with every cycle. lorac never writes W0 (it may be a read-only mapping of the
 * checkpoint): merging fills a separate owned buffer with W0 + s·BA and unmerging frees it, so W0
 * is restored bit-for-bit after any number of cycles. The cost is one extra copy of each merged
 * weight while merged; the base copy is untouched and, when mapped, can be paged out by the OS.
 *
 * Model state and request state are separate (as llama2.c separates Weights and RunState): a layer
 * holds the frozen base pointers, A, B, their gradients and the config; everything a forward pass
 * keeps for its backward (dropout mask, x·Aᵀ) lives in a lora_act that the caller owns, so many
 * requests (or later many adapters) can share one base.
 *
 * Gradients: backward gives dx, dA, dB and d(bias) when the bias is trainable; it never computes
 * dW0 (the convolution layers form the gradient of the effective kernel in their lora_act, because
 * ΔW's gradient flows through it; it is never stored as a weight gradient). Backward ACCUMULATES
 * into dx and into the layer's gradient buffers (zero them with lora_*_zero_grad).
 *
 * Differences from loralib 0.1.2, all fixes of known weaknesses:
 *  - bit-exact unmerge (above);
 *  - loralib's Conv1d (and Conv3d) only work for kernel_size 1: (B@A).view(weight.shape) fails
 *    otherwise. lorac's conv LoRA uses A (r·k, in·k^(d-1)), B (out/groups·k, r·k) for a d-dim
 *    kernel k: loralib's exact shapes for Conv2d and for Conv1d with k = 1, and shapes that fit the
 *    weight for Conv1d with k > 1;
 *  - r must be >= 1 (loralib's r = 0 layer is a plain layer: use the base layer);
 *  - rsLoRA scaling and a Gaussian A initialisation are options (loralib has neither).
 * Dropout on the LoRA path exists for Linear and MergedLinear, as in loralib; loralib's Embedding
 * has none, and its ConvLoRA ignores lora_dropout (lorac does the same).
 *
 * Threads and determinism: as lorac/ops.h. Initialisation draws from the lorac_rng given, in a
 * fixed order, so a seed reproduces a layer exactly (not torch's random stream).
 */
#ifndef LORAC_LORA_H
#define LORAC_LORA_H

#include <stddef.h>
#include <stdint.h>

#include "lorac/base.h"
#include "lorac/conv.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- configuration */

typedef enum lora_init {
    LORA_INIT_KAIMING = 0, /* loralib: A ~ kaiming_uniform(a=√5) = U(-1/√fan_in, 1/√fan_in), B = 0 */
    LORA_INIT_GAUSSIAN,    /* the paper's "random Gaussian": A ~ N(0, (1/r)²) (PEFT's std 1/r), B = 0 */
} lora_init;

typedef struct lora_config {
    int r;              /* rank, >= 1 */
    float lora_alpha;   /* scaling numerator */
    float lora_dropout; /* p in [0,1) on the input of the low-rank path (Linear, MergedLinear) */
    int fan_in_fan_out; /* the base weight is stored (in, out), as GPT-2's Conv1D */
    int merge_weights;  /* merge W0 + s·BA when switching to inference (loralib default: 1) */
    int use_rslora;     /* scaling lora_alpha / sqrt(r) instead of lora_alpha / r */
    lora_init init;
} lora_config;

/* r, alpha, no dropout, fan_in_fan_out 0, merge_weights 1, no rsLoRA, Kaiming A. */
lora_config lora_config_default(int r, float lora_alpha);
/* lora_alpha / r, or lora_alpha / sqrt(r) with use_rslora. */
float lora_config_scaling(const lora_config *cfg);

/* ---------------------------------------------------------------- activations (per request) */

/* What a forward pass keeps for its backward, and the backward's scratch. One lora_act serves one
 * layer for up to cap_N rows (or, for convolutions, any batch). Free with lora_act_free. */
typedef struct lora_act {
    int cap_N;       /* rows this act can hold */
    int N;           /* rows of the last forward */
    int dropped;     /* the last forward applied dropout (training mode, p > 0) */
    float *xd;       /* (N,C) dropout(x), only when p > 0 */
    uint8_t *mask;   /* (N,C) dropout mask, only when p > 0 */
    float *dxd;      /* (N,C) gradient of dropout(x), only when p > 0 */
    float *h;        /* (N,R) x·Aᵀ, R = rows of A */
    float *dh;       /* (N,R) */
    float *w_eff;    /* conv: W0 + s·BA (numel of W) */
    float *dw_eff;   /* conv: gradient of w_eff */
    const float *x;  /* Linear: the low-rank path's input of the last unmerged forward (xd, or the
                        caller's inp, borrowed: it must outlive the backward) */
} lora_act;
void lora_act_free(lora_act *act);

/* ---------------------------------------------------------------- Linear */

typedef struct lora_linear {
    int C, OC;           /* in_features, out_features */
    lora_config cfg;
    float scaling;
    float *weight;       /* (OC,C), or (C,OC) with fan_in_fan_out: frozen W0, borrowed, never written;
                            NULL when the caller computes the base product itself */
    float *bias;         /* (OC) or NULL; borrowed */
    float *lora_A;       /* (r,C) owned */
    float *lora_B;       /* (OC,r) owned */
    float *grad_A, *grad_B; /* like lora_A, lora_B */
    float *grad_bias;    /* (OC) when bias != NULL */
    float *merged_w;     /* W0 + s·BA, stored like weight, while merged; else NULL */
    int merged;          /* loralib's `merged` */
    int merged_borrowed; /* merged_w is the caller's (lora_linear_merge_to): never freed here */
    int training;        /* loralib's module.training (1 after init) */
    int train_A, train_B, train_bias; /* requires_grad (1, 1, 1 after init, as in torch) */
} lora_linear;

/* Creates the layer over a borrowed base weight (and bias, may be NULL) and initialises A and B
 * from rng as loralib does (cfg->init). The layer starts in training mode, unmerged.
 * weight may be NULL when the caller computes the base product itself (e.g. over a quantized
 * base): such a layer only runs lora_linear_delta_forward/backward, never merges
 * (lora_linear_train(L, 0) keeps it unmerged) and registers no "weight" tensor. */
int lora_linear_init(lora_linear *L, int C, int OC, const lora_config *cfg, float *weight, float *bias,
                     lorac_rng *rng, lorac_err *err);
void lora_linear_free(lora_linear *L);
/* An activation record for up to N rows. */
int lora_linear_act_init(lora_act *act, const lora_linear *L, int N, lorac_err *err);
/* inp is (N,C), out is (N,OC). Dropout draws from rng in training mode when p > 0 (rng may be
 * NULL otherwise). */
int lora_linear_forward(lora_linear *L, lora_act *act, float *out, const float *inp, int N,
                        lorac_rng *rng, lorac_err *err);
/* dout is (N,OC), inp the forward's input; dinp (N,C) += ∂L/∂inp (may be NULL); grad_A, grad_B
 * and grad_bias += their gradients when trainable. Needs the unmerged state of the forward. */
int lora_linear_backward(lora_linear *L, lora_act *act, float *dinp, const float *dout,
                         const float *inp, lorac_err *err);
/* Only the low-rank path, for a caller that computed the base product (and bias) itself:
 * out (N,OC) += s·(dropout(inp)·Aᵀ)·Bᵀ, nothing else. inp (N,C) is borrowed by act until the backward
 * when no dropout applies. Works whether or not the layer has a weight; never uses a merged copy. */
int lora_linear_delta_forward(lora_linear *L, lora_act *act, float *out, const float *inp, int N,
                              lorac_rng *rng, lorac_err *err);
/* Backward of lora_linear_delta_forward: grad_A, grad_B += (when trainable); dinp (N,C) += the
 * low-rank path's input gradient (dinp may be NULL). No bias gradient, no base term. */
int lora_linear_delta_backward(lora_linear *L, lora_act *act, float *dinp, const float *dout, lorac_err *err);
/* loralib's train(mode): mode 1 unmerges, mode 0 merges (when merge_weights). */
int lora_linear_train(lora_linear *L, int mode, lorac_err *err);
void lora_linear_zero_grad(lora_linear *L);
/* Inference with W0 + s·BA merged into buf (the weight's numel, caller-owned), used until the
 * layer unmerges (lora_linear_train(L, 1)), which drops the pointer without freeing it: a caller
 * switching adapters keeps one buffer per weight and allocates nothing per switch. One fused,
 * threaded pass (reads W0 once, writes buf once); W0 is never written. */
int lora_linear_merge_to(lora_linear *L, float *buf, lorac_err *err);

/* ---------------------------------------------------------------- MergedLinear */

/* One fused projection (e.g. GPT-2's qkv) split into n_groups equal slices of OC/n_groups rows,
 * with LoRA on the slices where enable_lora[g] is set. As loralib: A is (r·k, C) and B is
 * (OC/n_groups·k, r) for k enabled slices; slice j (the j-th enabled one) gets
 * ΔW_j = B[j·OCg:(j+1)·OCg, :] · A[j·r:(j+1)·r, :] (loralib's grouped conv1d), and the rows of
 * disabled slices get no update (loralib's zero_pad). */
#define LORA_MAX_GROUPS 16
typedef struct lora_merged {
    int C, OC;
    int n_groups, n_enabled;
    int enable_lora[LORA_MAX_GROUPS];
    lora_config cfg;
    float scaling;
    float *weight, *bias; /* borrowed, as in lora_linear */
    float *lora_A;        /* (r·k, C) */
    float *lora_B;        /* (OC/n_groups·k, r) */
    float *grad_A, *grad_B, *grad_bias;
    float *merged_w;
    int merged, training;
    int merged_borrowed;  /* as lora_linear */
    int train_A, train_B, train_bias;
} lora_merged;

int lora_merged_init(lora_merged *L, int C, int OC, const int *enable_lora, int n_groups,
                     const lora_config *cfg, float *weight, float *bias, lorac_rng *rng, lorac_err *err);
void lora_merged_free(lora_merged *L);
int lora_merged_act_init(lora_act *act, const lora_merged *L, int N, lorac_err *err);
int lora_merged_forward(lora_merged *L, lora_act *act, float *out, const float *inp, int N,
                        lorac_rng *rng, lorac_err *err);
int lora_merged_backward(lora_merged *L, lora_act *act, float *dinp, const float *dout,
                         const float *inp, lorac_err *err);
int lora_merged_train(lora_merged *L, int mode, lorac_err *err);
void lora_merged_zero_grad(lora_merged *L);
/* As lora_linear_merge_to. The slices without LoRA are copied from W0 unless keep_disabled says
 * buf already holds W0 there (e.g. it held a merge with the same or fewer enabled slices). */
int lora_merged_merge_to(lora_merged *L, float *buf, int keep_disabled, lorac_err *err);
/* ΔW (OC,C) (or (C,OC) with fan_in_fan_out) without scaling: loralib's merge_AB(). */
void lora_merged_delta(const lora_merged *L, float *delta);
/* The same LoRA as one on the whole fused map (how PEFT, which has no slices, can hold it): A is
 * unchanged, rank k·r, and B' (OC, k·r) has slice g's rows hold B_j in column block j (j its index
 * among the enabled slices), zeros elsewhere. fused_B writes B' into Bx (OC·k·r floats);
 * set_fused_B reads one back, refusing a non-zero entry outside the blocks (what names it). */
void lora_merged_fused_B(const lora_merged *L, float *Bx);
int lora_merged_set_fused_B(lora_merged *L, const float *Bx, const char *what, lorac_err *err);

/* ---------------------------------------------------------------- mixed-adapter rows */
/* A batch of S sequence slots, each n_new rows, where slot q uses adapter ids[q] (-1: none).
 * lora_rows_first_use: 1 when ids[slot] is an adapter not used by an earlier slot (so each adapter
 * is run once). lora_rows_gather copies the rows (width C) of every slot q >= first with
 * ids[q] == ids[first] into xg and returns how many rows it copied; lora_rows_scatter_add adds the
 * matching rows of yg (width OC) back into out, in the same order. lora_rows_reserve grows *buf to
 * rows x want columns (kept when *cols already >= want); -1 when out of memory (*buf unchanged). */
int lora_rows_first_use(const int *ids, int slot);
int lora_rows_gather(float *xg, const float *inp, const int *ids, int S, int first, int n_new, int C);
void lora_rows_scatter_add(float *out, const float *yg, const int *ids, int S, int first, int n_new, int OC);
int lora_rows_reserve(float **buf, int *cols, size_t rows, int want);
/* Checks a session's adapter ids (n of them, each -1..held-1, n <= n_slots when n_slots > 0) and stores
 * a copy in *dst / *n_dst (the old array freed); on failure one error naming `who`, nothing changed. */
int lora_rows_set_ids(int **dst, int *n_dst, const int *ids, int n, int held, int n_slots, const char *who,
                      lorac_err *err);
/* yg (n,OC) = s·(xg (n,C)·Aᵀ)·Bᵀ through hg (n,r): one adapter's low-rank product on gathered rows. */
void lora_rows_lowrank(const lora_linear *L, const float *xg, float *hg, float *yg, int n);
/* As lora_rows_lowrank for a MergedLinear: each enabled slice's block of A and B into its columns
 * of yg (n,OC), zeros in the others. */
void lora_rows_lowrank_merged(const lora_merged *M, const float *xg, float *hg, float *yg, int n);
/* After a KV-cache reorder (slot i becomes a copy of slot src[i], i < n_seq): slot i takes the
 * adapter of slot src[i] (-1 past n_ids). Nothing to do when n_seq > n_ids. */
int lora_rows_reorder_ids(int *ids, int n_ids, const int32_t *src, int n_seq, const char *who, lorac_err *err);

/* ---------------------------------------------------------------- Embedding */

/* As loralib: A (r, V) starts at zero, B (D, r) ~ N(0,1); out[n] = W0[id] + s·A[:,id]ᵀ·Bᵀ; no
 * dropout (cfg->lora_dropout must be 0) and no fan_in_fan_out. padding_idx (or -1) gets no
 * gradient in A, as F.embedding's padding_idx. */
typedef struct lora_embedding {
    int V, D;
    int padding_idx;
    lora_config cfg;
    float scaling;
    float *weight;        /* (V,D) borrowed */
    float *lora_A;        /* (r,V) */
    float *lora_B;        /* (D,r) */
    float *grad_A, *grad_B;
    float *merged_w;
    int merged, training;
    int train_A, train_B;
} lora_embedding;
/* x (n,D) += s·B·A[:, token] for each row's token (mixed-adapter rows; see lora_rows_* above). */
void lora_rows_embedding_add(const lora_embedding *E, float *x, const int32_t *tokens, int n);

int lora_embedding_init(lora_embedding *L, int V, int D, int padding_idx, const lora_config *cfg,
                        float *weight, lorac_rng *rng, lorac_err *err);
void lora_embedding_free(lora_embedding *L);
int lora_embedding_act_init(lora_act *act, const lora_embedding *L, int N, lorac_err *err);
/* ids is (N) in [0,V), out is (N,D). */
int lora_embedding_forward(lora_embedding *L, lora_act *act, float *out, const int32_t *ids, int N,
                           lorac_err *err);
/* dout is (N,D): grad_A, grad_B += their gradients (there is no input gradient). */
int lora_embedding_backward(lora_embedding *L, lora_act *act, const float *dout, const int32_t *ids,
                            lorac_err *err);
int lora_embedding_train(lora_embedding *L, int mode, lorac_err *err);
void lora_embedding_zero_grad(lora_embedding *L);

/* ---------------------------------------------------------------- Conv1d / Conv2d */

/* loralib's ConvLoRA: out = conv(x, W0 + s·view(B·A, W0.shape)) + bias, with kernel k
 * (square for 2-D), A (r·k, C·k^(dims-1)), B (OC/groups·k, r·k). loralib applies no dropout here. */
typedef struct lora_conv {
    int dims;             /* 1 or 2 */
    int k;
    op_conv_cfg conv;     /* geometry */
    lora_config cfg;
    float scaling;
    int a_rows, a_cols, b_rows; /* A (a_rows, a_cols), B (b_rows, a_rows) */
    float *weight;        /* (OC, C/groups, k) or (OC, C/groups, k, k), borrowed */
    float *bias;          /* (OC) or NULL, borrowed */
    float *lora_A, *lora_B;
    float *grad_A, *grad_B, *grad_bias;
    float *merged_w;
    int merged, training;
    int train_A, train_B, train_bias;
} lora_conv;

/* conv is op_conv1d_cfg(...) (dims 1) or op_conv2d_cfg(...) (dims 2) with a square kernel. */
int lora_conv_init(lora_conv *L, int dims, const op_conv_cfg *conv, const lora_config *cfg,
                   float *weight, float *bias, lorac_rng *rng, lorac_err *err);
void lora_conv_free(lora_conv *L);
int lora_conv_act_init(lora_act *act, const lora_conv *L, lorac_err *err);
/* inp is (B,C,H,W) (H = 1 for 1-D), out is (B,OC,OH,OW). */
int lora_conv_forward(lora_conv *L, lora_act *act, float *out, const float *inp, int B, int H, int W,
                      lorac_err *err);
int lora_conv_backward(lora_conv *L, lora_act *act, float *dinp, const float *dout, const float *inp,
                       int B, int H, int W, lorac_err *err);
int lora_conv_train(lora_conv *L, int mode, lorac_err *err);
void lora_conv_zero_grad(lora_conv *L);

/* ---------------------------------------------------------------- named parameters */

/* Every tensor of a model, by loralib/PyTorch name: "<module>.weight", "<module>.bias",
 * "<module>.lora_A", "<module>.lora_B" (conv layers: "<module>.conv.weight", "<module>.conv.bias",
 * as loralib's ConvLoRA wraps an inner conv). Parameters keep registration order (loralib's
 * state_dict order when modules register in model order). */
#define LORA_MAX_DIMS 4
typedef struct lora_param {
    char *name;
    int ndim;
    int64_t shape[LORA_MAX_DIMS];
    size_t numel;
    float *data;          /* where the values live (borrowed) */
    float *grad;          /* gradient buffer, or NULL (frozen base weights have none) */
    int *requires_grad;   /* the owner's flag, or NULL: the registry keeps it (own_flag) */
    int own_flag;
    int lora_layer_bias;  /* the bias of a LoRA layer (loralib's bias='lora_only' marks these) */
} lora_param;

typedef struct lora_registry {
    lora_param *params;
    size_t n, cap;
} lora_registry;

void lora_registry_init(lora_registry *reg);
void lora_registry_free(lora_registry *reg);
/* Adds a tensor. requires_grad may point at the owner's flag (a layer reads it in backward) or be
 * NULL (the registry keeps the flag; initial value requires_grad_init). Names must be unique. */
int lora_registry_add(lora_registry *reg, const char *name, int ndim, const int64_t *shape, float *data,
                      float *grad, int *requires_grad, int requires_grad_init, int lora_layer_bias,
                      lorac_err *err);
lora_param *lora_registry_find(const lora_registry *reg, const char *name);
int lora_param_requires_grad(const lora_param *p);
void lora_param_set_requires_grad(lora_param *p, int on);

/* Registers the layer's tensors under prefix (e.g. "transformer.h.0.attn.c_attn"). */
int lora_linear_register(lora_linear *L, lora_registry *reg, const char *prefix, lorac_err *err);
int lora_merged_register(lora_merged *L, lora_registry *reg, const char *prefix, lorac_err *err);
int lora_embedding_register(lora_embedding *L, lora_registry *reg, const char *prefix, lorac_err *err);
int lora_conv_register(lora_conv *L, lora_registry *reg, const char *prefix, lorac_err *err);

/* ---------------------------------------------------------------- training state */

typedef enum lora_bias_mode {
    LORA_BIAS_NONE = 0,  /* 'none' */
    LORA_BIAS_ALL,       /* 'all': every tensor whose name contains "bias" */
    LORA_BIAS_LORA_ONLY, /* 'lora_only': biases of LoRA layers only */
} lora_bias_mode;
const char *lora_bias_mode_name(lora_bias_mode m); /* "none", "all", "lora_only" */
int lora_bias_mode_parse(const char *s, lora_bias_mode *m);

/* loralib's mark_only_lora_as_trainable: every tensor without "lora_" in its name is frozen; then
 * 'all' unfreezes every tensor whose name contains "bias" and 'lora_only' the biases of LoRA
 * layers. */
void lora_mark_only_lora_as_trainable(lora_registry *reg, lora_bias_mode bias);
/* Sums the elements of trainable and of all tensors. */
void lora_registry_count(const lora_registry *reg, size_t *trainable, size_t *all);
/* PEFT's line: "trainable params: 147,456 || all params: 124,587,264 || trainable%: 0.1184". */
void lora_format_trainable(char *buf, size_t size, size_t trainable, size_t all);
void lora_registry_report(const lora_registry *reg, char *buf, size_t size);

/* Whether loralib's lora_state_dict(model, bias) keeps this tensor: names containing "lora_";
 * with 'all' also names containing "bias"; with 'lora_only' also "<P>bias" for every "<P>lora_..."
 * (P the text before the first "lora_"). */
int lora_state_keeps(const lora_registry *reg, const lora_param *p, lora_bias_mode bias);

/* Writes the adapter tensors (lora_state_keeps) as F32 safetensors with metadata
 * {"format": "lorac-lora", "lora_bias": mode}. */
int lora_state_save(const lora_registry *reg, const char *path, lora_bias_mode bias, lorac_err *err);
/* Loads an adapter written for the same model: every tensor the mode keeps must be in the file with
 * the registered shape, and the file must hold nothing else (F32, F16 or BF16 data). Nothing is
 * written unless every check passes. Values are copied into each tensor's data, which must be
 * writable; load while the layers are unmerged (a merged copy is not recomputed). */
int lora_state_load(lora_registry *reg, const char *path, lora_bias_mode bias, lorac_err *err);
/* The base counterpart: every tensor without "lora_" in its name (into writable buffers; a model
 * that maps its checkpoint read-only loads the base with its own loader instead). */
int lora_base_save(const lora_registry *reg, const char *path, lorac_err *err);
int lora_base_load(lora_registry *reg, const char *path, lorac_err *err);

#ifdef __cplusplus
}
#endif
#endif
