/* lorac/llama.h — the Llama family (Llama 2/3, TinyLlama, SmolLM2, Mistral, Qwen2) from a Hugging
 * Face directory, with LoRA on any of the seven projections.
 *
 * Architecture: token embedding; per block x += o_proj(attn(rope(q_proj(n1)), rope(k_proj(n1)),
 * v_proj(n1))) with n1 = RMSNorm(x), then x += down_proj(silu(gate_proj(n2)) · up_proj(n2)) with
 * n2 = RMSNorm(x); final RMSNorm; lm_head (or embed_tokens when tied). Grouped-query attention
 * (num_key_value_heads <= num_attention_heads), optional q/k/v biases (Qwen2, attention_bias),
 * rotary embeddings with rope_theta and rope_scaling null, "linear" or "llama3".
 *
 * As gpt2.h: llama_config (config.json), llama_weights (frozen, mapped when F32), llama_model
 * (weights + LoRA layers + a registry of HF names), llama_acts (per-request activations).
 * Linear weights keep nn.Linear's (out, in) layout; LoRA layers use fan_in_fan_out = 0.
 */
#ifndef LORAC_LLAMA_H
#define LORAC_LLAMA_H

#include <stddef.h>
#include <stdint.h>

#include "lorac/base.h"
#include "lorac/lora.h"

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

typedef struct llama_layer_weights {
    const float *attn_norm, *mlp_norm;      /* input_layernorm, post_attention_layernorm (C) */
    const float *w[LLAMA_N_SITES];          /* (OC, C) per site */
    const float *b[LLAMA_N_SITES];          /* (OC) or NULL */
} llama_layer_weights;

typedef struct llama_weights {
    const float *embed;        /* (V, C) */
    const float *norm;         /* (C) */
    const float *lm_head;      /* (V, C); == embed when tied */
    llama_layer_weights *layers;
    void *priv;
} llama_weights;

/* Loads DIR/model.safetensors or the shards of model.safetensors.index.json; F32 mapped, F16/BF16
 * converted; every shape checked against cfg. */
int llama_weights_load(const char *dir, const llama_config *cfg, llama_weights *w, lorac_err *err);
void llama_weights_free(llama_weights *w);

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
} llama_model;

int llama_model_load(const char *dir, llama_model *m, lorac_err *err);
/* Fresh LoRA layers (A from rng seeded with seed, B = 0) on the chosen sites; only they train. */
int llama_model_add_lora(llama_model *m, const llama_lora_opts *o, uint64_t seed, lorac_err *err);
/* The LoRA layer of (layer, site) or NULL. */
lora_linear *llama_model_lora(const llama_model *m, int layer, int site);
/* PEFT adapter directories ("base_model.model.model.layers.N.self_attn.q_proj.lora_A.weight"). */
int llama_peft_save(const llama_model *m, const char *dir, lorac_err *err);
int llama_peft_load(llama_model *m, const char *dir, char *warn, size_t warn_size, lorac_err *err);
/* 1: training (unmerged, dropout on), 0: inference (merged). */
int llama_model_train_mode(llama_model *m, int mode, lorac_err *err);
void llama_model_zero_grad(llama_model *m);
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
