/* lorac/gpt2.h — the GPT-2 family (gpt2, -medium, -large, -xl shapes) from a Hugging Face directory.
 *
 * A model is three separate things, as in llama2.c:
 *   gpt2_config   hyperparameters from config.json;
 *   gpt2_model    frozen base weights (mapped from model.safetensors when F32, converted otherwise)
 *                 plus the LoRA adapters attached to it (model state, shared by all requests);
 *   gpt2_acts     per-request activations for a batch (B,T), kept for the backward pass.
 */
#ifndef LORAC_GPT2_H
#define LORAC_GPT2_H

#include <stddef.h>
#include <stdint.h>

#include "lorac/base.h"
#include "lorac/lora.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum gpt2_act {
    GPT2_ACT_GELU_NEW = 0, /* tanh approximation ("gelu_new", "gelu_pytorch_tanh") */
    GPT2_ACT_GELU = 1,     /* exact erf ("gelu") */
} gpt2_act;

typedef struct gpt2_config {
    int n_layer;
    int n_embd;    /* C */
    int n_head;    /* NH */
    int n_positions;
    int n_inner;   /* MLP width, 4*C unless config.json says otherwise */
    int vocab_size;
    double layer_norm_epsilon;
    gpt2_act activation;
    int eos_token_id;
    int bos_token_id;
    int tie_word_embeddings; /* 1: the LM head is wte (GPT-2's checkpoints); 0: lm_head.weight */
} gpt2_config;

/* Reads and validates DIR/config.json. */
int gpt2_config_load(const char *dir, gpt2_config *cfg, lorac_err *err);
/* Writes cfg as a Hugging Face config.json (atomically). */
int gpt2_config_save(const gpt2_config *cfg, const char *path, lorac_err *err);

/* Frozen base weights of one block; Conv1D weights are stored (in, out) as in the checkpoint. */
typedef struct gpt2_layer_weights {
    const float *ln1_w, *ln1_b;      /* (C) */
    const float *attn_w, *attn_b;    /* c_attn (C, 3C), (3C) */
    const float *proj_w, *proj_b;    /* attn.c_proj (C, C), (C) */
    const float *ln2_w, *ln2_b;      /* (C) */
    const float *fc_w, *fc_b;        /* mlp.c_fc (C, I), (I) */
    const float *fcproj_w, *fcproj_b;/* mlp.c_proj (I, C), (C) */
} gpt2_layer_weights;

typedef struct gpt2_weights {
    const float *wte;                /* (V, C), also the LM head (tied) */
    const float *wpe;                /* (P, C) */
    const float *lnf_w, *lnf_b;      /* (C) */
    const float *lm_head;            /* (V, C) when the config unties it, else NULL (the head is wte) */
    gpt2_layer_weights *layers;      /* n_layer */
    void *priv;                      /* mapped files and converted copies */
} gpt2_weights;

/* Loads DIR/model.safetensors (or the shards named by model.safetensors.index.json), with or
 * without the "transformer." prefix; F32 tensors are mapped, F16/BF16 converted. Every tensor's
 * shape is checked against cfg. */
int gpt2_weights_load(const char *dir, const gpt2_config *cfg, gpt2_weights *w, lorac_err *err);
/* Random weights as GPT-2's initialisation (normal std 0.02, LN 1/0, biases 0), seeded. */
int gpt2_weights_random(const gpt2_config *cfg, uint64_t seed, gpt2_weights *w, lorac_err *err);
/* Writes a Hugging Face directory DIR (config.json + model.safetensors) holding w, with the
 * "transformer." prefix as transformers saves GPT2LMHeadModel. The directory is built under a
 * temporary name and renamed into place (replacing DIR). */
int gpt2_weights_save_dir(const gpt2_config *cfg, const gpt2_weights *w, const char *dir, lorac_err *err);
/* The same two files written into an existing directory (e.g. a lorac_outdir's tmp). */
int gpt2_weights_save_files(const gpt2_config *cfg, const gpt2_weights *w, const char *dir, lorac_err *err);
void gpt2_weights_free(gpt2_weights *w);
/* Number of base parameters (tied LM head counted once, as PyTorch counts). */
size_t gpt2_param_count(const gpt2_config *cfg);

/* ---------------------------------------------------------------- LoRA placement */

/* Where LoRA goes in every block. The paper's split of the fused attention projection (q and v
 * only) is a MergedLinear on c_attn with enable_lora = qkv; "c_attn" puts a plain LoRA Linear on
 * the whole projection (as PEFT does). */
typedef struct gpt2_lora_opts {
    int r;
    float alpha;
    float dropout;
    int use_rslora;
    int gaussian_init;
    int c_attn_full;  /* LoRA Linear on all of c_attn */
    int qkv[3];       /* else MergedLinear on these slices of c_attn (q, k, v) */
    int attn_proj;    /* attn.c_proj */
    int mlp_fc;       /* mlp.c_fc */
    int mlp_proj;     /* mlp.c_proj */
    int wte;          /* LoRA Embedding on the token lookup (the tied LM head keeps W0, as PEFT does) */
} gpt2_lora_opts;

/* r 4, alpha 32, dropout 0.1, targets q,v: the paper's E2E setting. */
void gpt2_lora_opts_default(gpt2_lora_opts *o);
/* Parses a --targets list: q, k, v, c_attn, attn.c_proj, c_fc (mlp.c_fc), mlp.c_proj, all-linear
 * ("c_proj" alone means both projections, as PEFT's suffix match does). */
int gpt2_lora_targets_parse(const char *spec, gpt2_lora_opts *o, lorac_err *err);

typedef struct gpt2_block_lora {
    lora_merged *qkv;      /* MergedLinear on c_attn, or NULL */
    lora_linear *c_attn;   /* LoRA Linear on all of c_attn, or NULL */
    lora_linear *attn_proj, *mlp_fc, *mlp_proj; /* or NULL */
} gpt2_block_lora;

/* ---------------------------------------------------------------- the model */

typedef struct gpt2_model {
    gpt2_config cfg;
    gpt2_weights w;
    int has_lora;
    gpt2_lora_opts lora;
    gpt2_block_lora *blocks;   /* n_layer, when has_lora */
    lora_embedding *wte_lora;  /* LoRA on the token embedding lookup, or NULL */
    int lora_gen;              /* bumped whenever LoRA layers are attached or dropped */
    lora_registry reg;         /* every tensor by its HF name ("transformer.h.0.attn.c_attn.weight") */
    struct peft_adapter *peft_extra; /* a PEFT adapter's trained biases / modules_to_save copies that w
                                        points at instead of the base tensors (owned), or NULL */
} gpt2_model;

/* Loads config.json and the weights of DIR. */
int gpt2_model_load(const char *dir, gpt2_model *m, lorac_err *err);
/* A model of cfg's shape with random weights (benchmarks, tests). */
int gpt2_model_random(const gpt2_config *cfg, uint64_t seed, gpt2_model *m, lorac_err *err);
/* Attaches fresh LoRA layers (A from rng seeded with seed, B = 0) and marks only them trainable. */
int gpt2_model_add_lora(gpt2_model *m, const gpt2_lora_opts *o, uint64_t seed, lorac_err *err);
/* The four linear maps of a block, in checkpoint order. */
enum { GPT2_SITE_C_ATTN = 0, GPT2_SITE_ATTN_PROJ, GPT2_SITE_MLP_FC, GPT2_SITE_MLP_PROJ, GPT2_N_SITES };
/* Module name of a site, e.g. "attn.c_attn". */
const char *gpt2_site_name(int site);
/* Low-level: attach one LoRA layer (a MergedLinear over the qkv slices when site is c_attn and qkv
 * is non-NULL), then call gpt2_lora_finish once with the status of the attaching. */
int gpt2_lora_attach(gpt2_model *m, int layer, int site, const lora_config *lc, const int *qkv, lorac_rng *rng,
                     lorac_err *err);
int gpt2_lora_finish(gpt2_model *m, int rc, lorac_err *err);
/* Low-level: exchanges the model's LoRA layers (blocks: n_layer entries or NULL; wte or NULL) with
 * *blocks and *wte, re-registers the tensors and gives the model a new lora_gen (activations and
 * sessions then rebuild their LoRA records). Used to hold several adapters over one base. */
int gpt2_lora_swap(gpt2_model *m, gpt2_block_lora **blocks, lora_embedding **wte, lorac_err *err);
/* Frees LoRA layers taken out of a model with gpt2_lora_swap. */
void gpt2_lora_free_layers(const gpt2_config *c, gpt2_block_lora *blocks, lora_embedding *wte);
/* Low-level: attach a LoRA Embedding (lc's r and alpha) to wte. */
int gpt2_lora_attach_wte(gpt2_model *m, const lora_config *lc, lorac_rng *rng, lorac_err *err);

/* PEFT adapter directories (adapter_config.json + adapter_model.safetensors). A q,v split is written
 * as the exactly equivalent PEFT adapter on c_attn (rank k·r, zero blocks for the disabled slices,
 * alpha scaled so the scaling is unchanged) and read back into the split form. */
int gpt2_peft_save(const gpt2_model *m, const char *dir, lorac_err *err);
/* Base weights with every LoRA delta merged in (W0 + s·BA), as a new gpt2_weights that borrows the
 * unchanged tensors from m; free with gpt2_weights_free. m is left as it was. */
int gpt2_weights_merged(gpt2_model *m, gpt2_config *out_cfg, gpt2_weights *out, lorac_err *err);
/* (A LoRA on wte changes only the lookup, so a merged model with one has an untied lm_head = W0:
 * out_cfg says so.) */
/* Attaches the adapter in DIR to a model without LoRA. Warnings (unknown config keys) are copied
 * to warn (one per line) when warn is non-NULL. */
int gpt2_peft_load(gpt2_model *m, const char *dir, char *warn, size_t warn_size, lorac_err *err);
/* Attaches an adapter already in memory (peft_adapter_read, peft_adapters_load_weighted,
 * peft_adapter_combine) to a model without LoRA; gpt2_peft_load is read + attach. Every tensor
 * must be used and of this model's shapes; on failure the model is left without LoRA. */
struct peft_adapter;
int gpt2_peft_attach(gpt2_model *m, const struct peft_adapter *a, lorac_err *err);

/* ---------------------------------------------------------------- several adapters over one base */

/* An adapter set holds any number of adapters over one base model (model state: A and B of each,
 * attached once) and makes one of them the model's active LoRA:
 *   merge 1: W0 + s·BA is written into merged buffers the set owns, one per weight, allocated on
 *            the first merged activation and reused by every later switch (one fused, threaded
 *            pass per weight; the q/k/v slices an adapter leaves alone are not rewritten);
 *   merge 0: the forward runs the low-rank path (no per-switch work at all).
 * W0 is never written, so activating -1 (none) gives the base model back bit for bit. Per-request
 * state (gpt2_acts, gpt2_session) follows the switch (the model's lora_gen changes). To give each
 * sequence of one batch its own adapter without switching, see gpt2_session_use_adapters. */
typedef struct gpt2_adapter_set gpt2_adapter_set;
/* m must have no LoRA layers; the set manages m's LoRA from now on (free the set before m). */
int gpt2_adapter_set_new(gpt2_model *m, gpt2_adapter_set **out, lorac_err *err);
/* Attaches a (as gpt2_peft_attach) as adapter *id (0, 1, ...); the active adapter stays active. */
int gpt2_adapter_set_add(gpt2_adapter_set *s, const struct peft_adapter *a, int *id, lorac_err *err);
int gpt2_adapter_set_count(const gpt2_adapter_set *s);
/* The base model the set was made over (gpt2_adapter_set_new). */
const gpt2_model *gpt2_adapter_set_model(const gpt2_adapter_set *s);
/* Makes adapter id (-1: none) the model's LoRA, merged or not. */
int gpt2_adapter_set_activate(gpt2_adapter_set *s, int id, int merge, lorac_err *err);
/* on = 1: every adapter keeps its own merged weights once it has been activated merged (memory:
 * one copy of each adapted weight per adapter), so a later merged switch to it is a pointer swap;
 * activating an adapter unmerged drops the validity of its copy (it may be trained), the next
 * merged activation recomputes it. on = 0 frees them (the active adapter stays active). */
int gpt2_adapter_set_keep_merged(gpt2_adapter_set *s, int on, lorac_err *err);
/* Adapter id's layers (wte LoRA to *wte when non-NULL), or NULL for a bad id. */
const gpt2_block_lora *gpt2_adapter_set_layers(const gpt2_adapter_set *s, int id, const lora_embedding **wte);
/* Detaches every adapter (the model is left without LoRA) and frees them. */
void gpt2_adapter_set_free(gpt2_adapter_set *s);

/* Training (1: dropout on, unmerged) or inference (0: merged into the weights) for every LoRA layer. */
int gpt2_model_train_mode(gpt2_model *m, int mode, lorac_err *err);
void gpt2_model_zero_grad(gpt2_model *m);
void gpt2_model_free(gpt2_model *m);

/* Per-request activations for batches of up to B x T tokens. Allocated while the matmul precision
 * is bf16 (op_set_matmul_precision), they keep the MLP's pre-activation as bf16 (half the memory of
 * the largest activation; GELU and its gradient then see the bf16-rounded values in every forward). */
typedef struct gpt2_acts gpt2_acts;
int gpt2_acts_alloc(const gpt2_model *m, int B, int T, gpt2_acts **out, lorac_err *err);
void gpt2_acts_free(gpt2_acts *a);
/* (B,T,V) logits of the last forward with for_backward == 0 (allocated on the first such forward;
 * NULL before it). */
const float *gpt2_acts_logits(const gpt2_acts *a);

/* Forward over ids (B,T) (row b uses positions 0..T-1; right padding needs no mask in a causal
 * model, as its targets are ignored). With targets (B,T) (TRAIN_IGNORE/-100 = not scored) the mean
 * cross-entropy with label smoothing goes to *loss and the scored-token count to *count. With
 * for_backward, the LM head and the loss run in slices of rows and no (B,T,V) logits are kept (the
 * slices' gradients flow straight into the final LayerNorm's), so gpt2_backward can follow. rng drives LoRA dropout in training mode (may be NULL otherwise). */
int gpt2_forward(gpt2_model *m, gpt2_acts *a, const int32_t *ids, const int32_t *targets, int B, int T,
                 float label_smoothing, int for_backward, lorac_rng *rng, float *loss, int *count,
                 lorac_err *err);
/* Accumulates the gradients of the mean loss into the LoRA layers' grad buffers. */
int gpt2_backward(gpt2_model *m, gpt2_acts *a, lorac_err *err);

/* ---------------------------------------------------------------- inference with a KV cache */

/* Per-request inference state: a KV cache of n_slots sequences (beams) and its scratch. The model
 * is only read (put it in inference mode first, so merged adapters cost nothing). */
typedef struct gpt2_session gpt2_session;
int gpt2_session_new(gpt2_model *m, gpt2_session **out, lorac_err *err);
void gpt2_session_free(gpt2_session *s);
/* Empties the cache and makes n_slots slots of up to max_len tokens (<= n_positions). */
int gpt2_session_begin(gpt2_session *s, int n_slots, int max_len, lorac_err *err);
/* Appends tokens (n_seq, n_new) to slots 0..n_seq-1 (all of equal length) and writes the logits
 * after the last new token of each slot to logits (n_seq, V). */
int gpt2_session_step(gpt2_session *s, const int32_t *tokens, int n_seq, int n_new, float *logits, lorac_err *err);
/* Mixed-adapter batches: slot i (< n) runs adapter ids[i] of set (-1: the base), unmerged, in the
 * same forward as the other slots (the base GEMM once for all rows, then per adapter present one
 * gathered pair of thin GEMMs, as S-LoRA/Punica). The set must have no active adapter
 * (gpt2_adapter_set_activate(set, -1, ...)) while the session steps. ids follow
 * gpt2_session_reorder. set NULL: back to the model's own LoRA. */
int gpt2_session_use_adapters(gpt2_session *s, gpt2_adapter_set *set, const int *ids, int n, lorac_err *err);
/* Slot i := old slot src[i] for i < n_seq (a gather; src may repeat). */
int gpt2_session_reorder(gpt2_session *s, const int32_t *src, int n_seq, lorac_err *err);

#ifdef __cplusplus
}
#endif
#endif
