/* lorac/llama.h — the Llama family (Llama 2/3, TinyLlama, SmolLM2, Mistral, Qwen2) from a Hugging
 * Face directory or a GGUF file, with LoRA on any of the seven projections — on a base kept in its
 * quantized GGUF type too (QLoRA-style: frozen matmuls dequantize tile by tile; see docs/gguf.md).
 *
 * Architecture: token embedding; per block x += o_proj(attn(rope(q_proj(n1)), rope(k_proj(n1)),
 * v_proj(n1))) with n1 = RMSNorm(x), then x += down_proj(silu(gate_proj(n2)) · up_proj(n2)) with
 * n2 = RMSNorm(x); final RMSNorm; lm_head (or embed_tokens when tied). Grouped-query attention
 * (num_key_value_heads <= num_attention_heads), optional q/k/v biases (Qwen2, attention_bias),
 * rotary embeddings with rope_theta and rope_scaling null, "linear" or "llama3".
 *
 * As gpt2.h: llama_config (config.json or GGUF metadata), llama_weights (frozen qmats, mapped),
 * llama_model
 * (weights + LoRA layers + a registry of HF names), llama_acts (per-request activations).
 * Linear weights keep nn.Linear's (out, in) layout; LoRA layers use fan_in_fan_out = 0.
 */
#ifndef LORAC_LLAMA_H
#define LORAC_LLAMA_H

#include <stddef.h>
#include <stdint.h>

#include "lorac/base.h"
#include "lorac/gguf.h"
#include "lorac/lora.h"
#include "lorac/quant.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum llama_rope_scaling {
    LLAMA_ROPE_NONE = 0,
    LLAMA_ROPE_LINEAR = 1, /* positions / factor */
    LLAMA_ROPE_LLAMA3 = 2, /* Llama 3.1's frequency-dependent scaling */
} llama_rope_scaling;

typedef struct llama_config {
    char model_type[16];       /* "llama", "mistral" or "qwen2" */
    int n_layer;               /* num_hidden_layers */
    int n_embd;                /* hidden_size, C */
    int n_inner;               /* intermediate_size, I */
    int n_head;                /* num_attention_heads, NH */
    int n_kv_head;             /* num_key_value_heads, NKV (NH % NKV == 0) */
    int head_dim;              /* HS (hidden_size / heads unless config.json says) */
    int n_positions;           /* max_position_embeddings */
    int vocab_size;            /* V */
    double rms_norm_eps;
    double rope_theta;
    llama_rope_scaling rope_scaling;
    double rope_factor, rope_low_freq_factor, rope_high_freq_factor;
    int rope_original_max_positions;
    int tie_word_embeddings;
    int qkv_bias;              /* q, k, v projections have biases (qwen2, attention_bias) */
    int o_bias;                /* o_proj has a bias (llama's attention_bias) */
    int bos_token_id, eos_token_id; /* the first when config.json lists several; -1 if absent */
} llama_config;

/* Reads and validates DIR/config.json. */
int llama_config_load(const char *dir, llama_config *cfg, lorac_err *err);
/* HF's inv_freq (HS/2 floats) for cfg's rope_theta and rope_scaling. */
void llama_rope_inv_freq(const llama_config *cfg, float *inv_freq);

/* The seven linear maps of a block, in HF module order. */
enum { LLAMA_SITE_Q = 0, LLAMA_SITE_K, LLAMA_SITE_V, LLAMA_SITE_O, LLAMA_SITE_GATE, LLAMA_SITE_UP,
       LLAMA_SITE_DOWN, LLAMA_N_SITES };
/* Module name within a block, e.g. "self_attn.q_proj", "mlp.down_proj". */
const char *llama_site_name(int site);
/* in and out features of a site. */
void llama_site_shape(const llama_config *cfg, int site, int *C, int *OC);

/* Frozen matrices are qmats (lorac/quant.h): F32 from an HF directory or an F32 GGUF, or kept in
 * the GGUF's block type (Q4_1, Q8_0, ...) and dequantized tile by tile inside each matmul. */
typedef struct llama_layer_weights {
    const float *attn_norm, *mlp_norm;      /* input_layernorm, post_attention_layernorm (C) */
    qmat w[LLAMA_N_SITES];                  /* (OC, C) per site, HF row order */
    const float *b[LLAMA_N_SITES];          /* (OC) or NULL */
} llama_layer_weights;

typedef struct llama_weights {
    qmat embed;                /* (V, C) */
    const float *norm;         /* (C) */
    qmat lm_head;              /* (V, C); the same matrix as embed when tied */
    llama_layer_weights *layers;
    const float *rope_freqs;   /* (HS/2) divisors of the rotary frequencies (a GGUF's rope_freqs.weight,
                                  how llama.cpp stores Llama 3.1's scaling) or NULL */
    const gguf_file *gguf;     /* the GGUF the weights are mapped from, or NULL (HF directory) */
    void *priv;
    void (*priv_free)(void *priv);
} llama_weights;

/* Loads DIR/model.safetensors or the shards of model.safetensors.index.json; F32 mapped, F16/BF16
 * converted; every shape checked against cfg. */
int llama_weights_load(const char *dir, const llama_config *cfg, llama_weights *w, lorac_err *err);
/* Reads the config from a GGUF's metadata (general.architecture llama or qwen2) and maps its
 * tensors: block types stay quantized (no copy); only attn_q/attn_k rows are copied, to undo the
 * rotary row permutation llama.cpp's converter applies for the llama architecture. */
int llama_weights_load_gguf(const char *path, llama_config *cfg, llama_weights *w, lorac_err *err);
void llama_weights_free(llama_weights *w);
/* Checks a config's numbers (ranges, heads dividing the width); SRC names the file in messages. */
int llama_config_validate(const llama_config *cfg, const char *src, lorac_err *err);
/* Whether PATH is a GGUF file (its first four bytes are "GGUF"). */
int llama_path_is_gguf(const char *path);
/* The rotary permutation llama.cpp's converter applies to q/k rows (for n_head heads of head_dim
 * rows): GGUF row h·HS + 2i + j holds HF row h·HS + j·HS/2 + i. Returns the HF row of GGUF row r. */
int llama_gguf_row_to_hf(int r, int head_dim);

/* ---------------------------------------------------------------- LoRA placement */

typedef struct llama_lora_opts {
    int r;
    float alpha;
    float dropout;
    int use_rslora;
    int gaussian_init;
    int sites[LLAMA_N_SITES];  /* 1 = LoRA on this projection in every block */
} llama_lora_opts;

/* r 8, alpha 16, dropout 0.05, q_proj and v_proj. */
void llama_lora_opts_default(llama_lora_opts *o);
/* A --targets list of HF names: q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj,
 * all-linear. */
int llama_lora_targets_parse(const char *spec, llama_lora_opts *o, lorac_err *err);

typedef struct llama_model {
    llama_config cfg;
    llama_weights w;
    float *inv_freq;           /* (HS/2) */
    int has_lora;
    lora_linear **lora;        /* n_layer * LLAMA_N_SITES; NULL where a site has none */
    int lora_gen;              /* bumped whenever LoRA layers are attached or dropped */
    lora_registry reg;         /* every tensor by HF name ("model.layers.0.self_attn.q_proj.weight") */
    struct peft_adapter *peft_extra; /* a PEFT adapter's trained biases / modules_to_save copies that w
                                        points at instead of the base tensors (owned), or NULL */
} llama_model;

/* A Hugging Face directory, or a .gguf file (recognised by its magic). */
int llama_model_load(const char *dir, llama_model *m, lorac_err *err);
int llama_model_load_gguf(const char *path, llama_model *m, lorac_err *err);
/* Fresh LoRA layers (A from rng seeded with seed, B = 0) on the chosen sites; only they train. */
int llama_model_add_lora(llama_model *m, const llama_lora_opts *o, uint64_t seed, lorac_err *err);
/* The LoRA layer of (layer, site) or NULL. */
lora_linear *llama_model_lora(const llama_model *m, int layer, int site);
/* PEFT adapter directories ("base_model.model.model.layers.N.self_attn.q_proj.lora_A.weight"). */
int llama_peft_save(const llama_model *m, const char *dir, lorac_err *err);
int llama_peft_load(llama_model *m, const char *dir, char *warn, size_t warn_size, lorac_err *err);
/* Attaches an adapter read with peft_adapter_read / peft_adapters_load_weighted (lorac/peft.h) to a
 * model without LoRA; as gpt2_peft_attach. */
struct peft_adapter;
int llama_peft_attach(llama_model *m, const struct peft_adapter *a, lorac_err *err);
/* Several LoRA-only PEFT adapters over one model without LoRA, as gpt2_adapter_set: activate(id,
 * merge) makes one the model's layers, merged into buffers reused by every switch (W0 never
 * written) or unmerged (a pointer swap); id -1 = none. A quantized site merges nowhere: an adapter
 * touching one is activated unmerged only (merge is a clear error). keep_merged(1) gives each
 * adapter its own merged weights (memory: one copy of each adapted weight per adapter), computed
 * on its first merged activation and kept, so a later merged switch to it is a pointer swap;
 * activating it unmerged (its A and B may then be trained) marks the copy stale and the next
 * merged activation recomputes it; keep_merged(0) frees the copies (the active adapter stays
 * active). The model must outlive the set. To give each sequence of one batch its own adapter
 * without switching, see llama_session_use_adapters (lorac/lm.h). */
typedef struct llama_adapter_set llama_adapter_set;
int llama_adapter_set_new(llama_model *m, llama_adapter_set **out, lorac_err *err);
int llama_adapter_set_add(llama_adapter_set *s, const struct peft_adapter *a, int *id, lorac_err *err);
int llama_adapter_set_count(const llama_adapter_set *s);
int llama_adapter_set_activate(llama_adapter_set *s, int id, int merge, lorac_err *err);
int llama_adapter_set_keep_merged(llama_adapter_set *s, int on, lorac_err *err);
void llama_adapter_set_free(llama_adapter_set *s);
/* Adapter id's n_layer·LLAMA_N_SITES layers (NULL entries where it has none; the model's own while
 * it is the active one), or NULL for a bad id. */
const lora_linear *const *llama_adapter_set_layers(const llama_adapter_set *s, int id);
/* The active adapter (-1: none); whether it is merged to *merged when non-NULL. */
int llama_adapter_set_active(const llama_adapter_set *s, int *merged);
/* GGUF LoRA adapters as llama.cpp loads them (--lora): general.type "adapter", adapter.type "lora",
 * adapter.lora.alpha; tensors "blk.N.attn_q.weight.lora_a" ne=[n_in, r] and ".lora_b" ne=[r, n_out],
 * lora_b's rows in GGUF (rotary-permuted) order for attn_q/attn_k of llama. Every layer's exact
 * scale is folded into lora_b so that one global alpha = r gives scale alpha/r = 1 per layer
 * (rsLoRA, per-module alpha_pattern and rank_pattern stay exact). Load reads them back as LoRA
 * layers with scaling alpha/r (checking names, ranks and shapes against the model). */
int llama_gguf_adapter_save(const llama_model *m, const char *path, lorac_err *err);
int llama_gguf_adapter_load(llama_model *m, const char *path, lorac_err *err);
/* Merged weights W + s·BA written as a GGUF with the base's metadata (tokenizer included): TYPE is
 * F32, F16, BF16 (every matrix converted) or a block type: then matrices without LoRA are copied as
 * stored and merged ones quantized to TYPE (to Q8_0 for Q5_0/Q5_1/Q5_K, which lorac cannot
 * quantize, or where TYPE's block does not divide the row). From a GGUF-loaded
 * model every key/value of the base is copied (tokenizer included) and q/k rows are permuted back
 * to GGUF order; from an HF directory the llama.* keys are written from the config (no tokenizer). */
int llama_merged_save_gguf(llama_model *m, const char *path, quant_type type, lorac_err *err);
/* Merged weights as an HF directory: config.json + model.safetensors (F32), merged in f32 from the
 * dequantized base, so an adapter trained on a quantized base merges without re-quantization. */
int llama_merged_save_hf(llama_model *m, const char *dir, lorac_err *err);
/* 1: training (unmerged, dropout on), 0: inference (merged; LoRA on a quantized site stays
 * unmerged and is added after the frozen matmul). */
int llama_model_train_mode(llama_model *m, int mode, lorac_err *err);
void llama_model_zero_grad(llama_model *m);
/* Trainable elements (LoRA A and B) and all elements, quantized base matrices included (the
 * registry holds only f32 tensors, so lora_registry_count misses a quantized base). */
void llama_model_count_params(const llama_model *m, size_t *trainable, size_t *all);
void llama_model_free(llama_model *m);

/* ---------------------------------------------------------------- forward / backward */

typedef struct llama_acts llama_acts;
int llama_acts_alloc(const llama_model *m, int B, int T, llama_acts **out, lorac_err *err);
void llama_acts_free(llama_acts *a);
/* (B,T,V) logits of the last forward (valid when it ran with for_backward == 0). */
const float *llama_acts_logits(const llama_acts *a);

/* As gpt2_forward: ids (B,T), positions 0..T-1 in every row; targets (B,T) with -100 ignored give
 * the mean cross-entropy (label smoothing) in *loss and the scored count in *count; for_backward
 * overwrites the logits with their gradient for llama_backward. */
int llama_forward(llama_model *m, llama_acts *a, const int32_t *ids, const int32_t *targets, int B, int T,
                  float label_smoothing, int for_backward, lorac_rng *rng, float *loss, int *count,
                  lorac_err *err);
/* Accumulates the mean loss's gradients into the LoRA layers (frozen weights get none). */
int llama_backward(llama_model *m, llama_acts *a, lorac_err *err);

#ifdef __cplusplus
}
#endif
#endif
