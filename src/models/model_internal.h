/* model_internal.h — the model's state, shared by the files of src/models/ (not public API; tests
 * may include it to look inside).
 *
 * One model, whatever the family: the embeddings, n_layer blocks of the same linear maps ("sites"),
 * the final norm and a head. A family uses the sites it has (GPT-2: QKV, O, UP, DOWN; Llama: Q, K,
 * V, O, GATE, UP, DOWN; BERT: Q, K, V, O, UP, DOWN); an unused site has C == 0. */
#ifndef LORAC_MODEL_INTERNAL_H
#define LORAC_MODEL_INTERNAL_H

#include "lorac/gguf.h"
#include "lorac/model.h"
#include "lorac/ops.h"
#include "models/arch.h"
#include "io/hf_shards.h"
#include "lora/peft_attach.h"

/* The LoRA layer of one linear map: a LoRA Linear, or a MergedLinear on some slices of a fused
 * q/k/v map (GPT-2's q,v split of c_attn), or neither. */
typedef struct site_lora {
    lora_linear *lin;
    lora_merged *split;
} site_lora;

/* One linear map out (N,OC) = inp (N,C)·Wᵀ + b over a frozen (or, trained, owned) weight. Its LoRA
 * layer, if any, is in the model's LoRA layout (model.lora). */
typedef struct model_linear {
    qmat w;               /* (OC, C) rows in its stored type; with layout OP_W_IN_OUT an f32 (C, OC) */
    op_wlayout layout;
    const float *b;       /* (OC) or NULL */
    int C, OC;
    float *dw, *db;       /* gradients of a trained weight and bias (head, full fine-tuning), else NULL */
} model_linear;

typedef struct model_layer {
    model_linear site[ARCH_N_SITES];
    const float *norm_w[2], *norm_b[2];  /* norm1, norm2 (b NULL for RMSNorm) */
    float *dnorm_w[2], *dnorm_b[2];      /* full fine-tuning */
} model_layer;

/* The memory behind the weights: mapped safetensors shards or a mapped GGUF, and owned blocks
 * (converted tensors, permuted rows, a head, full fine-tuning copies), freed with the model. */
typedef struct model_store {
    hf_shards sh;
    gguf_file gf;
    int has_gguf;
    lorac_blocks owned;
} model_store;

/* The tokenizer the family uses (model_text.c): loaded from PATH (a directory's files, or a GGUF's
 * metadata) with the token ids a run needs, checked against the model's vocabulary. */
typedef struct model_text model_text;
int model_text_load(model *m, const char *path, lorac_err *err);
void model_text_free(model_text *t);
int model_save_tokenizer(model *m, const char *dir, lorac_err *err); /* tokenizer.json + tokenizer_config.json */

struct model {
    model_config cfg;
    const arch_family *fam;
    char path[1024];
    model_store store;              /* mapped files and owned copies behind every pointer below */
    /* embeddings */
    qmat embed;                     /* (V, C) */
    lora_embedding *embed_lora;     /* LoRA on the token lookup, or NULL */
    const float *pos_embed;         /* (n_positions, C) learned positions, or NULL */
    const float *type_embed;        /* (type_vocab, C) or NULL */
    const float *emb_norm_w, *emb_norm_b;
    float *dembed, *dpos_embed, *dtype_embed, *demb_norm_w, *demb_norm_b; /* full fine-tuning */
    model_layer *layers;            /* n_layer */
    const float *final_norm_w, *final_norm_b;
    float *dfinal_norm_w, *dfinal_norm_b;
    /* heads */
    qmat lm_head;                   /* (V, C); the embedding's matrix when tied */
    model_linear cls_dense, cls_out;/* classification head (trained, owned) */
    float *inv_freq;                /* (head_dim/2) rotary frequencies */
    const float *rope_freqs;        /* a GGUF's rope_freqs.weight (divisors of inv_freq: how llama.cpp
                                       stores Llama 3.1's scaling), or NULL */
    /* LoRA and training state */
    site_lora *lora;                /* the LoRA layout: n_layer·ARCH_N_SITES (layer l, site s at
                                       l·ARCH_N_SITES + s), or NULL */
    int has_lora;
    int lora_gen;                   /* changes whenever LoRA layers are attached, dropped or swapped */
    int training;
    int full_ft;
    float hidden_dropout;           /* what a training forward applies */
    model_lora_opts lora_opts;      /* what model_add_lora attached */
    lora_registry reg;              /* every f32 tensor by HF name */
    int reg_stale;                  /* reg predates a LoRA swap: rebuilt on next use, so switching is cheap */
    peft_adapter *peft_extra;       /* an adapter's trained biases / modules_to_save copies the model points at */
    model_text *text;
};

/* ---- tensors.c: the base tensors of a model in checkpoint order, and the memory they live in */
typedef struct model_tensor {
    char name[160];       /* HF name ("transformer.h.0.ln_1.weight") */
    char gguf[64];        /* llama.cpp's name, "" when the family has no GGUF form */
    int ndim;
    int64_t shape[2];     /* as the HF checkpoint stores it */
    const float **f32;    /* where an f32 tensor's pointer goes, or NULL for ... */
    qmat *q;              /* ... a matrix that may stay in its stored type */
    float **grad;         /* where its gradient goes (full fine-tuning, the head) */
    int head;             /* classification head: always trained; initialised when absent */
    int norm;             /* a norm's weight (1 at random initialisation) */
    int permute;          /* GGUF keeps its rows in llama.cpp's rotary order (q, k of "llama") */
    model_linear *lin;    /* a linear map's weight: the map (a block site when site >= 0, else the head) */
    int layer, site;      /* the block and site of a site's weight or bias, else -1 */
} model_tensor;
/* Allocates the layers and sets every linear map's shape and layout from the config. */
int model_shape(model *m, lorac_err *err);
/* Every base tensor of m (its config and family), in checkpoint order; *out is malloc'd. */
int model_tensors(model *m, model_tensor **out, size_t *n, lorac_err *err);
/* A tied LM head as an entry of its own (an untied head's names over the embedding's matrix): what a
 * merged checkpoint writes when an embedding LoRA unties them, and what modules_to_save may copy.
 * Its name is "" when out of memory. */
model_tensor model_tied_head(model *m);
/* The tensor's values now: its f32 pointer or its matrix's data (NULL when stored quantized). */
const float *model_tensor_f32(const model_tensor *t);
/* Points the tensor at f32 data (a matrix becomes an F32 qmat of the tensor's shape). */
void model_tensor_set(const model_tensor *t, const float *data);
/* A matrix's values as f32 in its stored shape into out: dequantized, and with merge its LoRA
 * layer's s·BA added (a site's, or the embedding LoRA's on the token embedding). */
int model_tensor_matrix_f32(const model *m, const model_tensor *t, int merge, float *out, lorac_err *err);
/* A block owned by the model (freed with it); NULL when out of memory. */
void *model_store_alloc(model *m, size_t bytes);
void model_store_free(model_store *s);

/* ---- weights.c / gguf_model.c: filling the tensors */
int model_weights_load_hf(model *m, const char *dir, const model_load_opts *o, lorac_err *err);
int model_weights_load_gguf(model *m, const char *path, lorac_err *err);
/* Random weights (matrices normal(0, initializer_range), norms 1, biases 0) from seed. */
int model_weights_random(model *m, uint64_t seed, lorac_err *err);
/* Writes config.json and model.safetensors (every tensor f32; LoRA merged when merge) into DIR. */
int model_weights_save_files(model *m, const char *dir, int merge, lorac_err *err);
/* The GGUF the model was read from, or NULL. */
const gguf_file *model_gguf(const model *m);
/* llama.cpp's rotary row permutation of q/k (heads of head_dim rows): GGUF row r holds HF row
 * model_gguf_row_to_hf(r): h·HS + 2i + j holds h·HS + j·HS/2 + i. */
int model_gguf_row_to_hf(int r, int head_dim);

/* ---- model.c */
/* Sets cfg-derived fields (inv_freq) and builds the registry after the weights are in place. */
int model_finish_load(model *m, lorac_err *err);
/* Rebuilds the registry in checkpoint order (after attaching, dropping or swapping LoRA). */
int model_register_all(model *m, lorac_err *err);
/* Call once after attaching LoRA layers with the attaching's status: a new lora_gen, the registry,
 * only LoRA (and a head) trainable; on failure every LoRA layer is dropped. */
int model_lora_finish(model *m, int rc, lorac_err *err);
/* The LoRA layer of (layer, site), or NULL when the site has none. */
const site_lora *model_site_lora(const model *m, int layer, int site);
/* A LoRA layout: every site's layers (n_layer·ARCH_N_SITES) and the embedding's. model_lora_swap
 * exchanges the model's with *sites / *embed (an adapter set keeps those not active), marks the
 * registry stale and gives the model a new lora_gen. */
void model_lora_swap(model *m, site_lora **sites, lora_embedding **embed);
void model_lora_free_layout(const model *m, site_lora *sites, lora_embedding *embed);
/* Drops every LoRA layer of the model. */
void model_free_lora(model *m);
/* Attaches one LoRA layer to (layer, site): a MergedLinear over the enabled q/k/v slices of a fused
 * map when slices is non-NULL, else a LoRA Linear; lc's fan_in_fan_out follows the map's layout. */
int model_lora_attach(model *m, int layer, int site, const lora_config *lc, const int *slices, lorac_rng *rng,
                      lorac_err *err);
int model_lora_attach_embed(model *m, const lora_config *lc, lorac_rng *rng, lorac_err *err);
/* HF module name of a site ("transformer.h.3.attn.c_attn") or the embedding (layer < 0). */
void model_site_module(const model *m, int layer, int site, char *buf, size_t size);

/* ---- linear.c: one site's forward/backward, whatever its base and LoRA */
/* out (N,OC) = L(inp (N,C)) with its LoRA layer lo (may be NULL); act is the site's LoRA record
 * (made for cap_N rows on first use); decode: a decode step's rows (a quantized base's products by
 * qmat_matmul_decode). */
int linear_forward(const model_linear *L, const site_lora *lo, lora_act *act, int cap_N, float *out, const float *inp,
                   int N, int decode, lorac_rng *rng, lorac_err *err);
/* dinp (N,C) += ∂/∂inp (dinp may be NULL); LoRA layers and trained weights accumulate their own. */
int linear_backward(const model_linear *L, const site_lora *lo, lora_act *act, float *dinp, const float *dout,
                    const float *inp, int N, lorac_err *err);
/* 1 when the backward reads the site's input (a LoRA layer's or a trained weight's gradient). */
int linear_reads_input(const model_linear *L, const site_lora *lo);
/* The map's weight as f32 in its stored layout ((OC, C), or (C, OC) for OP_W_IN_OUT) into out,
 * dequantized, plus s·BA of lo when lo is non-NULL. */
int linear_weight_f32(const model_linear *L, const site_lora *lo, float *out, lorac_err *err);

/* ---- gguf_adapter.c: llama.cpp's LoRA adapters */
int model_gguf_adapter_check(const model *m, const char *path, lorac_err *err);
int model_gguf_adapter_save(model *m, const char *path, lorac_err *err);
int model_gguf_adapter_read(const model *m, const char *path, peft_adapter **out, lorac_err *err);

/* ---- block.c: one transformer block, forward and backward, for every family */
/* The buffers of one block's pass over N = B·T rows (row b·T + t at position pos0 + t). The training
 * forward points them into its per-layer activations, a session into its scratch and KV cache. */
typedef struct block_bufs {
    int N, B, T, pos0;
    const uint8_t *mask;        /* (B,T) padding mask, or NULL */
    const float *x;             /* (N,C) the block's input */
    float *out;                 /* (N,C) its output (may be x: a session runs in place) */
    float *sum1, *sum2;         /* (N,C) x + attention, and (post-norm) x1 + MLP; may alias x in a session */
    float *mean[2], *rstd[2];   /* (N) statistics of the two norms (mean NULL for RMSNorm) */
    float *h;                   /* (N,C) a norm's output */
    float *qkv;                 /* fused: (N, QD+2·KD) rows [q|k|v]; split: q (N,QD), k (N,KD), v (N,KD) */
    float *att, *lse;           /* (N,QD), (B,NH,T) */
    float *o;                   /* (N,C) a sublayer's output; the backward's gradient at a norm output */
    float *pre;                 /* MLP pre-activations kept in f32: (N,I), or SwiGLU gate then up (N,2I) ... */
    uint16_t *pre16;            /* ... or as bf16 (then pre is NULL) */
    float *mlp;                 /* (N,I) the activation's output; (N,2I) with SwiGLU and pre16 */
    float drop;                 /* hidden dropout on both sublayer outputs (training), with its masks */
    uint8_t *drop_mask[2];
    lorac_rng *rng;
    lora_act *lacts;            /* the block's ARCH_N_SITES LoRA records, made for cap_N rows */
    int cap_N;
    /* a session: the layer's KV cache (n_slots of cap tokens; sequence b in slot slots[b], its first
     * new row at seq_pos[b], row r at pos[r]), gathered q rows of a fused map, the scores scratch, and
     * the mixed-adapter hook run after every site */
    float *kc, *vc, *qg, *scores;
    const int *slots, *seq_pos, *pos;
    int cap, decode;            /* decode: one new token per sequence (quant.h's decode products) */
    int (*mixed)(void *ctx, int layer, int site, float *out, const float *inp, lorac_err *err);
    void *mixed_ctx;
    /* backward scratch */
    float *dres;                /* (N,C) gradient at the block's output, turned into its input's */
    float *datt;                /* (N,QD) */
    float *g;                   /* (N,I) the recomputed activation; then the gradient at pre (first half) */
    float *dg;                  /* (N,max(I, QD+2·KD)) gradient at the activation; then at qkv */
    float *dup;                 /* (N,I) SwiGLU's up gradient; then the rotated k gradient (N,KD) */
    float *ddrop;               /* (N,C) gradient through a dropout */
} block_bufs;
int block_forward(model *m, int layer, block_bufs *b, lorac_err *err);
/* b->dres holds the gradient at the block's output; it leaves holding the gradient at its input
 * (not computed when need_dx is 0: the first block when nothing below wants it). */
int block_backward(model *m, int layer, block_bufs *b, int need_dx, lorac_err *err);
/* The embedding's / final norm: out = norm(x) with statistics, and the backward (accumulating, with
 * parameter gradients where dw/db are non-NULL). */
void norm_forward(const model *m, const float *w, const float *bias, float *out, float *mean, float *rstd,
                  const float *x, int N);
void norm_backward(const model *m, const float *w, float *dw, float *db, float *dinp, const float *dout,
                   const float *x, const float *mean, const float *rstd, int N);

/* ---- mixed-adapter rows (session.c uses them; adapter_set.c provides the layouts) */
/* Adapter id's layout (n_layer·ARCH_N_SITES sites) and embedding LoRA, or NULL for a bad id. */
const site_lora *model_adapter_set_layout(const model_adapter_set *s, int id, const lora_embedding **embed);

#endif
