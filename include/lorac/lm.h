/* lorac/lm.h — one causal language model, whichever family: a thin handle over gpt2_model and
 * llama_model with its tokenizer, so that training, evaluation, generation and merging are written
 * once. Also the Llama KV-cache session (llama_session) and its gen_model adapter.
 *
 * Loading: a Hugging Face directory is recognised by config.json's model_type ("gpt2"; "llama",
 * "mistral", "qwen2"); a .gguf file (by its magic) is a Llama-family model whose tokenizer comes
 * from the GGUF's own metadata.
 * LoRA: --targets names are the family's (GPT-2: q, k, v, c_attn, attn.c_proj, c_fc, mlp.c_proj,
 * c_proj; Llama: q_proj ... down_proj) and "all-linear" for both.
 * Memory: the handle owns the model, the tokenizer and (after lm_gen_model) one KV-cache session.
 * Threads: one request at a time per handle.
 */
#ifndef LORAC_LM_H
#define LORAC_LM_H

#include <stddef.h>
#include <stdint.h>

#include "lorac/base.h"
#include "lorac/generate.h"
#include "lorac/gen_gpt2.h"
#include "lorac/gpt2.h"
#include "lorac/llama.h"
#include "lorac/quant.h"
#include "lorac/tokenizer.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- Llama KV-cache session */

/* As gpt2_session (see generate.h's gen_model for the protocol): keys enter the cache already
 * rotated at their absolute positions; the cache holds num_key_value_heads heads per token. LoRA
 * layers run merged or not as llama_model_train_mode left them (dropout never applies). */
typedef struct llama_session llama_session;
int llama_session_new(llama_model *m, llama_session **out, lorac_err *err);
void llama_session_free(llama_session *s);
/* Forgets every slot; n_slots empty slots of max_len tokens (<= max_position_embeddings). */
int llama_session_begin(llama_session *s, int n_slots, int max_len, lorac_err *err);
/* tokens (n_seq, n_new) appended to slots 0..n_seq-1; logits (n_seq, V) after each slot's last. */
int llama_session_step(llama_session *s, const int32_t *tokens, int n_seq, int n_new, float *logits, lorac_err *err);
/* Mixed-adapter batches: slot i (< n) runs adapter ids[i] of set (-1: the base alone), unmerged, in
 * the same forward as the other slots: the base GEMM once for all rows (f32 or quantized), then per
 * adapter present one gathered pair of thin GEMMs (rows·Aᵀ, then ·Bᵀ·scale) added to its slots' rows,
 * as S-LoRA/Punica. Nothing is merged, so W0 is never touched and each slot's logits are those of
 * running it alone with its adapter. The session refuses (at this call and at every step) while
 * the set has an active adapter, merged or not: activate -1 first, so no delta is applied twice.
 * Errors, with the session left as it was: a set over another model than the session's, n < 1, n
 * above the slots of a begun session, an id outside -1 .. count-1. ids follow
 * llama_session_reorder; the set must outlive its use here. set NULL: back to the model's LoRA. */
int llama_session_use_adapters(llama_session *s, const llama_adapter_set *set, const int *ids, int n, lorac_err *err);
/* Slot i := old slot src[i] for i < n_seq. */
int llama_session_reorder(llama_session *s, const int32_t *src, int n_seq, lorac_err *err);
/* Tokens every live slot holds. */
int llama_session_len(const llama_session *s);
/* Fills gm so that gen_generate decodes with model m through session s. */
void gen_model_llama(gen_model *gm, const llama_model *m, llama_session *s);

/* ---------------------------------------------------------------- the handle */

typedef enum lm_arch { LM_GPT2 = 1, LM_LLAMA = 2 } lm_arch;

typedef struct lm {
    lm_arch arch;
    gpt2_model gpt2;            /* arch == LM_GPT2 */
    llama_model llama;          /* arch == LM_LLAMA */
    bpe_tokenizer *bpe;         /* GPT-2's vocab.json + merges.txt, when that is the tokenizer */
    tok *tok;                   /* the generic tokenizer (Llama family) */
    int vocab_size;             /* the model's V */
    int n_ctx;                  /* longest sequence the model takes */
    int32_t bos_id, eos_id;     /* -1 when the model has none */
    int add_bos;                /* sequences start with bos (Llama-family tokenizers that say so) */
    int has_chat;               /* the tokenizer knows ChatML's <|im_start|> / <|im_end|> */
    int32_t im_end_id;          /* <|im_end|> or -1: ends an assistant turn */
    int training;               /* the LoRA layers' mode (lm_train_mode) */
    gpt2_session *gs;           /* the decoding session, made by lm_gen_model */
    llama_session *ls;
    char path[1024];
} lm;

/* Loads a model (HF directory or .gguf) and its tokenizer. On failure *m holds nothing. */
int lm_load(const char *path, lm *m, lorac_err *err);
void lm_free(lm *m);
const char *lm_arch_name(const lm *m);

typedef struct lm_lora_opts {
    int r;
    float alpha;
    float dropout;
    int use_rslora;
    int gaussian_init;
    char targets[256];          /* a --targets list; "" = the family's default */
} lm_lora_opts;

/* The family's defaults: GPT-2 the paper's E2E (r 4, alpha 32, dropout 0.1, q,v), Llama PEFT's
 * usual (r 8, alpha 16, dropout 0.05, q_proj,v_proj). */
void lm_lora_opts_default(const lm *m, lm_lora_opts *o);
/* Checks a --targets list against the family's names without changing the model. */
int lm_lora_targets_check(const lm *m, const char *targets, lorac_err *err);
/* Fresh LoRA layers (B = 0) on o's targets; only they train. */
int lm_add_lora(lm *m, const lm_lora_opts *o, uint64_t seed, lorac_err *err);
/* Attaches adapters: each spec is "PATH[:SCALE]" (a PEFT directory, or a GGUF adapter for Llama).
 * Warnings (unknown adapter_config keys) go to warn. */
int lm_attach_adapters(lm *m, const char *const *specs, int n, char *warn, size_t warn_size, lorac_err *err);
/* The model, then lm_attach_adapters (n may be 0), then (with_tokenizer) the tokenizer: what eval,
 * generate and merge start with. */
int lm_open(const char *path, const char *const *adapters, int n_adapters, int with_tokenizer, lm *m, char *warn,
            size_t warn_size, lorac_err *err);
int lm_has_lora(const lm *m);
/* Every tensor by HF name; LoRA tensors are the trainable ones. */
lora_registry *lm_registry(lm *m);
/* 1: training (unmerged, dropout on), 0: inference (merged where the base is f32). */
int lm_train_mode(lm *m, int mode, lorac_err *err);
/* Whether LoRA layers are in training mode (1 when there are none). */
int lm_is_training(const lm *m);
void lm_zero_grad(lm *m);

/* Forward / backward over a (B,T) batch, as gpt2_forward / llama_forward. */
typedef struct lm_acts lm_acts;
int lm_acts_alloc(lm *m, int B, int T, lm_acts **out, lorac_err *err);
void lm_acts_free(lm_acts *a);
int lm_forward(lm *m, lm_acts *a, const int32_t *ids, const int32_t *targets, int B, int T, float label_smoothing,
               int for_backward, lorac_rng *rng, float *loss, int *count, lorac_err *err);
int lm_backward(lm *m, lm_acts *a, lorac_err *err);
/* (B,T,V) logits of the last forward without for_backward. */
const float *lm_acts_logits(const lm_acts *a);

/* Text to ids (no bos; special tokens such as <|im_start|> become their ids when parse_special)
 * and back (special tokens skipped when skip_special). Results are malloc'd. */
int lm_encode(const lm *m, const char *text, size_t len, int parse_special, int32_t **ids, size_t *n, lorac_err *err);
int lm_decode(const lm *m, const int32_t *ids, size_t n, int skip_special, char **text, size_t *len, lorac_err *err);

/* One chat message (NUL-terminated strings); role is "system", "user" or "assistant". */
typedef tok_chat_msg lm_chat_msg;
/* The ChatML text of msgs (tok_chat_format: the model's default system prompt when msgs has none,
 * as SmolLM2's template adds), ending with "<|im_start|>assistant\n" when add_generation_prompt. */
int lm_chat_format(const lm *m, const lm_chat_msg *msgs, int n, int add_generation_prompt, char **out, size_t *len,
                   lorac_err *err);

/* Fills gm for gen_generate over this handle's KV-cache session (made on first use). */
int lm_gen_model(lm *m, gen_model *gm, lorac_err *err);
/* gen_config's eos ids for this model: its eos and, with a chat template, <|im_end|>. */
void lm_gen_eos(const lm *m, gen_config *gc);

/* Saves the LoRA layers: a PEFT directory, or (Llama) a GGUF adapter when PATH ends in .gguf. */
int lm_save_adapter(lm *m, const char *path, lorac_err *err);
/* Merged weights W + s·BA: a GGUF file when PATH ends in .gguf (type F32, F16, a block type, or
 * -1 for the base's own), else an HF directory. */
int lm_save_merged(lm *m, const char *path, int type, lorac_err *err);

#ifdef __cplusplus
}
#endif
#endif
