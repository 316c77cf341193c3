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
 * "transformer." prefix as transformers saves GPT2LMHeadModel. The directory is created. */
int gpt2_weights_save_dir(const gpt2_config *cfg, const gpt2_weights *w, const char *dir, lorac_err *err);
void gpt2_weights_free(gpt2_weights *w);
/* Number of base parameters (tied LM head counted once, as PyTorch counts). */
size_t gpt2_param_count(const gpt2_config *cfg);

#ifdef __cplusplus
}
#endif
#endif
