/* lorac/model.h — one transformer for every family: GPT-2, the Llama family (Llama 2/3, TinyLlama,
 * SmolLM2, Mistral, Qwen2) and BERT/RoBERTa encoders, with LoRA, from a Hugging Face directory or a
 * GGUF file.
 *
 * A family is a description, not code: model_config says what the block is made of (LayerNorm or
 * RMSNorm, before or after the residual add; learned or rotary positions; fused or split q/k/v;
 * grouped kv heads; causal or bidirectional; GELU or SwiGLU MLP; an LM head or a sequence-
 * classification head; which maps have biases; tied embeddings), and the family table
 * (src/models/arch_*.c) says how each family spells its tensors (HF, GGUF, PEFT) and its config.json
 * keys. Everything else is written once: the block forward/backward, the embedding and the sliced LM
 * head, the frozen matmul + LoRA site (fp32, bf16 or a quantized GGUF base; mixed-adapter rows), the
 * KV-cache session, adapter sets, PEFT load/save/attach, merging and saving.
 *
 * Three objects, as llama2.c separates them:
 *   model          frozen base weights (mapped from the checkpoint when F32, kept quantized from a
 *                  GGUF), the LoRA layers attached to them, the tokenizer; shared by requests;
 *   model_acts     per-batch activations kept for the backward pass;
 *   model_session  per-request inference state (a KV cache of several slots) for causal models.
 * Threads: one forward/backward or one session step at a time per model; OpenMP/OpenBLAS inside.
 * Errors: LORAC_OK or a status with a one-line message naming the file, tensor or field.
 */
#ifndef LORAC_MODEL_H
#define LORAC_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "lorac/base.h"
#include "lorac/lora.h"
#include "lorac/peft.h"
#include "lorac/ops_rope.h"
#include "lorac/quant.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- the description */

typedef enum model_norm { MODEL_NORM_LAYER = 0, MODEL_NORM_RMS = 1 } model_norm;
typedef enum model_act {
    MODEL_ACT_GELU_TANH = 0, /* GELU MLP, tanh approximation (gelu_new, gelu_pytorch_tanh) */
    MODEL_ACT_GELU_ERF = 1,  /* GELU MLP, exact erf (gelu) */
    MODEL_ACT_SWIGLU = 2,    /* down(silu(gate(x)) · up(x)) */
} model_act;
typedef enum model_pos { MODEL_POS_LEARNED = 0, MODEL_POS_ROPE = 1 } model_pos;
typedef enum model_head {
    MODEL_HEAD_LM = 0,        /* next-token logits: lm_head or the tied embedding */
    MODEL_HEAD_CLS_POOLER = 1,/* BERT: classifier(dropout(tanh(pooler.dense(h[CLS])))) */
    MODEL_HEAD_CLS_DENSE = 2, /* RoBERTa: out_proj(dropout(tanh(dense(dropout(h[<s>]))))) */
} model_head;

typedef struct model_config {
    char model_type[16];      /* config.json's model_type, or the GGUF architecture */
    /* structure: what the family's table entry and config.json make of the block */
    model_norm norm;
    int post_norm;            /* norm after the residual add (BERT) instead of before the sublayer */
    model_pos pos;
    int pos_padding_idx;      /* >= 0: RoBERTa's positions (real tokens count from padding_idx + 1) */
    int fused_qkv;            /* one projection writes [q | k | v] (GPT-2's c_attn) */
    model_act act;
    model_head head;
    int causal;               /* causal self-attention (else bidirectional with a padding mask) */
    int conv1d;               /* linear weights stored (in, out), as GPT-2's Conv1D */
    int emb_norm;             /* a norm after the embeddings (BERT) */
    int final_norm;           /* a norm before the head (GPT-2's ln_f, Llama's norm) */
    int qkv_bias, o_bias, mlp_bias; /* which linear maps have biases */
    int tie_word_embeddings;  /* the LM head is the token embedding */
    /* sizes */
    int n_layer, n_embd, n_inner, n_head, n_kv_head, head_dim, n_positions, vocab_size;
    int type_vocab;           /* token-type embeddings (BERT), 0 if none */
    int num_labels;           /* classification heads (1: regression) */
    double norm_eps;
    rope_params rope;         /* rotary positions (lorac/ops_rope.h) */
    int sliding_window;       /* > 0: attention window (Mistral); sequences longer than it are refused */
    /* special tokens (-1: none) */
    int bos_token_id, eos_token_id, pad_token_id;
    /* training: dropout probabilities and the head's initialisation */
    float hidden_dropout;     /* after the embeddings and on each sublayer's output (BERT's hidden_dropout_prob) */
    float classifier_dropout;
    float attn_dropout;       /* read, not applied: the attention never materialises its probabilities */
    float initializer_range;
} model_config;

/* Reads DIR/config.json (transformers 4 and 5 layouts) through its family's entry and validates it;
 * a key that would change the arithmetic and is not implemented is an error naming it. */
int model_config_load(const char *dir, model_config *cfg, lorac_err *err);
/* A config of model_type's family with the given sizes filled in by the caller afterwards (random
 * models for tests and benchmarks): the family's structure and defaults. */
int model_config_default(const char *model_type, model_config *cfg, lorac_err *err);
/* Checks sizes and combinations; SRC names the file in messages. */
int model_config_validate(const model_config *cfg, const char *src, lorac_err *err);
/* Writes cfg as the family's config.json at PATH (atomically). */
int model_config_save(const model_config *cfg, const char *path, lorac_err *err);

/* ---------------------------------------------------------------- loading */

typedef struct model model;

typedef struct model_load_opts {
    int num_labels;           /* classifiers: > 0 overrides config.json (a head of another size is an error) */
    uint64_t seed;            /* initialises a classification head the checkpoint does not have */
    int no_tokenizer;         /* skip the tokenizer (weights-only tools, or model_load_tokenizer later) */
} model_load_opts;

/* A Hugging Face directory (config.json + safetensors, sharded or not) or a .gguf file (recognised by
 * its magic), with its tokenizer. opts may be NULL. */
int model_load(const char *path, const model_load_opts *opts, model **out, lorac_err *err);
/* The tokenizer of the model's family from dir (its files, or a GGUF's metadata; NULL: beside the
 * model's own path), for a model loaded with no_tokenizer or made by model_random. */
int model_load_tokenizer(model *m, const char *dir, lorac_err *err);
/* A model of cfg with random weights (normal(0, 0.02) matrices, unit norms, zero biases), seeded;
 * no tokenizer. */
int model_random(const model_config *cfg, uint64_t seed, model **out, lorac_err *err);
void model_free(model *m);
const model_config *model_cfg(const model *m);
const char *model_path(const model *m);
/* The longest sequence the model takes (positions, and a sliding window). */
int model_max_len(const model *m);

/* ---------------------------------------------------------------- text */

/* Text to ids (no bos; special tokens such as <|im_start|> become their ids when parse_special) and
 * back (special tokens skipped when skip_special); results are malloc'd. */
int model_encode(const model *m, const char *text, size_t len, int parse_special, int32_t **ids, size_t *n,
                 lorac_err *err);
int model_decode(const model *m, const int32_t *ids, size_t n, int skip_special, char **text, size_t *len,
                 lorac_err *err);
/* Token ids a run needs (-1 where the tokenizer has none). */
typedef struct model_tokens {
    int32_t bos, eos, pad, im_end;
    int add_bos;              /* sequences start with bos (tokenizers that say so) */
    int has_chat;             /* ChatML's <|im_start|> / <|im_end|> exist */
    int32_t cls, sep;         /* sentence(-pair) encoders: [CLS]/[SEP] or <s>/</s> */
    int pair_seps;            /* separators between a pair's sentences (BERT 1, RoBERTa 2) */
    int pair_type_ids;        /* the second sentence gets token type 1 (BERT) */
} model_tokens;
const model_tokens *model_tok(const model *m);
/* One chat message (NUL-terminated); role is "system", "user" or "assistant". */
typedef struct model_chat_msg {
    const char *role, *content;
} model_chat_msg;
/* The ChatML text of msgs, ending with "<|im_start|>assistant\n" when add_generation_prompt. */
int model_chat_format(const model *m, const model_chat_msg *msgs, int n, int add_generation_prompt, char **out,
                      size_t *len, lorac_err *err);

/* ---------------------------------------------------------------- LoRA */

/* Fresh LoRA layers: rank, scaling numerator, dropout on the low-rank path, rsLoRA, the paper's
 * Gaussian A instead of Kaiming, and the targets: PEFT module names matched as suffixes
 * ("q_proj", "c_attn", "query", "attn.c_proj"), the family's aliases (GPT-2's q, k, v slices of
 * c_attn; "wte" or "embed_tokens" for the embedding) and "all-linear". Empty: the family default.
 * r, alpha 0 and dropout < 0 take the family's defaults (GPT-2 the paper's E2E r 4, alpha 32,
 * dropout 0.1, q,v; Llama r 8, alpha 16, 0.05, q_proj,v_proj; BERT r 8, alpha 16, 0.1, query,value). */
typedef struct model_lora_opts {
    int r;
    float alpha;
    float dropout;
    int use_rslora;
    int gaussian_init;
    char targets[256];
} model_lora_opts;
/* r 0, alpha 0, dropout -1, no targets: "the family's default" for every field. */
void model_lora_opts_init(model_lora_opts *o);
/* The family's defaults filled into o's unset fields (as model_add_lora will use them). */
void model_lora_opts_resolve(const model *m, model_lora_opts *o);
/* Checks o against the model (ranges, target names) without changing it. */
int model_lora_check(const model *m, const model_lora_opts *o, lorac_err *err);
/* Attaches fresh LoRA layers (A from a rng seeded with seed, B = 0); only they train. */
int model_add_lora(model *m, const model_lora_opts *o, uint64_t seed, lorac_err *err);
/* Attaches an adapter in memory (peft_adapter_read, peft_adapters_load_weighted,
 * peft_adapter_combine): every tensor must be used and of this model's shapes; trained biases and
 * modules_to_save (a classifier head) are taken too. On failure the model is left as it was. */
int model_peft_attach(model *m, const peft_adapter *a, lorac_err *err);
/* Drops every LoRA layer (PEFT's unload()); refused after an adapter replaced base tensors
 * (trained biases, modules_to_save). */
int model_remove_lora(model *m, lorac_err *err);
/* One adapter, a PEFT directory or a GGUF LoRA adapter file (families with GGUF names, its tensors
 * checked against this base), as a PEFT adapter in memory: for model_peft_attach or an adapter set. */
int model_adapter_read(const model *m, const char *path, peft_adapter **out, char *warn, size_t warn_size, lorac_err *err);
/* Adapters by spec "PATH[:SCALE]", each a PEFT directory or a GGUF LoRA adapter; several (or a scale)
 * are one adapter whose delta is Σ SCALE·ΔW. Config warnings go to warn. */
int model_attach_adapters(model *m, const char *const *specs, int n, char *warn, size_t warn_size, lorac_err *err);
/* Writes the LoRA layers (and a trained head / modules_to_save) as a PEFT directory, or as a GGUF
 * LoRA adapter for llama.cpp when PATH ends in .gguf (families with GGUF names). */
int model_save_adapter(model *m, const char *path, lorac_err *err);
/* Whether model_save_adapter(m, path) can write this model's LoRA layout (for a GGUF path: a family
 * with GGUF names, LoRA Linear layers only, no embedding LoRA); checked before a run, not after. */
int model_save_adapter_check(const model *m, const char *path, lorac_err *err);
/* Merged weights W0 + s·BA: a GGUF file when PATH ends in .gguf (type F32, F16, BF16, a block type,
 * or -1 for the base's own), else a Hugging Face directory (config.json, model.safetensors and the
 * tokenizer files beside the base). */
int model_save_merged(model *m, const char *path, int type, lorac_err *err);
/* The same Hugging Face files (config.json, model.safetensors with LoRA merged, the tokenizer files
 * beside the base) written one by one, each atomically, into the existing directory DIR (a fully
 * fine-tuned model beside its training log). */
int model_save_files(model *m, const char *dir, lorac_err *err);
/* Full fine-tuning: every f32 base tensor gets a gradient and trains (no LoRA). */
int model_set_full_ft(model *m, lorac_err *err);
int model_has_lora(const model *m);
/* 1: training (LoRA unmerged, dropout on), 0: inference (LoRA merged where the base is f32). */
int model_train_mode(model *m, int on, lorac_err *err);
int model_is_training(const model *m);
/* Overrides cfg.hidden_dropout for training, p in [0, 1). */
int model_set_hidden_dropout(model *m, float p, lorac_err *err);
void model_zero_grad(model *m);
/* Every f32 tensor by its HF name; the trainable ones (LoRA A/B, a classification head, all under
 * full fine-tuning) have gradient buffers. */
lora_registry *model_registry(model *m);
/* Trainable and all elements (quantized base matrices included). */
void model_count_params(const model *m, size_t *trainable, size_t *all);
/* A base matrix as f32 (out, in), dequantized if stored quantized: by HF module name
 * ("model.layers.0.self_attn.q_proj"); *out is malloc'd. LORAC_ENOTFOUND if no such linear map. */
int model_linear_f32(const model *m, const char *module, float **out, int *rows, int *cols, lorac_err *err);

/* ---------------------------------------------------------------- forward / backward */

/* One batch (B,T), row-major. ids always; the rest as the task needs:
 *   targets (B,T): next-token targets of a causal LM, OP_IGNORE_INDEX (-100) where not scored;
 *   labels (B): classes of a classifier; scores (B): regression targets (num_labels 1);
 *   type_ids (B,T) or NULL (all 0); mask (B,T) 1 real / 0 padding, or NULL (all real; a causal
 *   model needs no mask for right padding: its targets there are ignored). */
typedef struct model_batch {
    int B, T;
    const int32_t *ids, *type_ids;
    const uint8_t *mask;
    const int32_t *targets;
    const int32_t *labels;
    const float *scores;
} model_batch;

typedef struct model_acts model_acts;
/* Activations for batches of up to B x T tokens. Made while the matmul precision is bf16
 * (op_set_matmul_precision), they keep the MLP's pre-activations as bf16 (half the memory of the
 * largest activations; the activation function then sees bf16-rounded inputs). */
int model_acts_alloc(const model *m, int B, int T, model_acts **out, lorac_err *err);
/* The same for forwards only (MODEL_FWD_LOGITS / LOSS): one layer's activations, reused by every
 * layer, so its memory does not grow with the depth (evaluation, scoring). */
int model_acts_alloc_inference(const model *m, int B, int T, model_acts **out, lorac_err *err);
void model_acts_free(model_acts *a);
/* The logits of the last forward: (B,T,V) for an LM after a MODEL_FWD_LOGITS one (allocated on
 * first use), (B,num_labels) for a classifier. */
const float *model_acts_logits(const model_acts *a);

/* What a forward keeps: LOGITS the logits (model_acts_logits; an LM holds (B,T,V)); TRAIN what
 * model_backward needs (an LM runs its head and loss in slices of rows, never holding (B,T,V));
 * LOSS only the loss (an LM's head in slices, as TRAIN; a classifier's logits stay readable). */
typedef enum model_fwd { MODEL_FWD_LOGITS = 0, MODEL_FWD_TRAIN = 1, MODEL_FWD_LOSS = 2 } model_fwd;
/* Forward over a batch; with targets/labels/scores the mean loss goes to *loss (LM: cross-entropy
 * with label smoothing over the scored tokens, their count to *count; classifier: cross-entropy or
 * MSE over the rows, count = B). rng drives dropout in training mode (may be NULL otherwise). */
int model_forward(model *m, model_acts *a, const model_batch *b, float label_smoothing, model_fwd mode, lorac_rng *rng,
                  float *loss, int *count, lorac_err *err);
/* Accumulates the gradients of the last forward's mean loss into the trainable tensors. */
int model_backward(model *m, model_acts *a, lorac_err *err);

/* ---------------------------------------------------------------- several adapters over one base */

/* Adapters held over one base (LoRA-only PEFT adapters, attached once each); one of them at a time
 * is the model's active LoRA:
 *   merge 1: W0 + s·BA written into buffers the set owns (allocated on the first merged activation,
 *            reused by every switch); a quantized site merges nowhere (merge is then an error);
 *   merge 0: the low-rank path runs beside the frozen matmul (a pointer swap).
 * W0 is never written: activating -1 gives the base back bit for bit. keep_merged(1) gives each
 * adapter its own merged weights (one copy of each adapted weight per adapter), computed on its
 * first merged activation, so a later merged switch to it is a pointer swap; an unmerged activation
 * marks the copy stale. The model must have no LoRA; free the set before the model. */
typedef struct model_adapter_set model_adapter_set;
int model_adapter_set_new(model *m, model_adapter_set **out, lorac_err *err);
int model_adapter_set_add(model_adapter_set *s, const peft_adapter *a, int *id, lorac_err *err);
int model_adapter_set_count(const model_adapter_set *s);
const model *model_adapter_set_model(const model_adapter_set *s);
int model_adapter_set_activate(model_adapter_set *s, int id, int merge, lorac_err *err);
/* The active adapter (-1: none); whether it is merged to *merged when non-NULL. */
int model_adapter_set_active(const model_adapter_set *s, int *merged);
int model_adapter_set_keep_merged(model_adapter_set *s, int on, lorac_err *err);
/* Frees adapter id's layers (a server unloading it); ids of the others stay as they are and id is
 * never given again. Refused for the active adapter; a session must no longer run it. */
int model_adapter_set_remove(model_adapter_set *s, int id, lorac_err *err);
void model_adapter_set_free(model_adapter_set *s);

/* ---------------------------------------------------------------- inference with a KV cache */

/* A causal model's inference state: n_slots sequences (beams, or a server's requests) of up to
 * max_len tokens each, every slot at its own length. Keys enter the cache already rotated at their
 * positions. LoRA runs merged or not as model_train_mode left it (dropout never applies). */
typedef struct model_session model_session;
int model_session_new(model *m, model_session **out, lorac_err *err);
void model_session_free(model_session *s);
/* Empties the cache and makes n_slots slots of up to max_len tokens (<= model_max_len). */
int model_session_begin(model_session *s, int n_slots, int max_len, lorac_err *err);
/* Appends tokens (n_seq, n_new) to slots 0..n_seq-1 and writes the logits after the last new token
 * of each slot to logits (n_seq, V).
 * Products on a quantized base (quant.h): a step of one new token per slot (n_new == 1) is a decode
 * step, whose products all go through qmat_matmul_decode (int8 activations on the block types that
 * have direct kernels) whatever n_seq; a longer step is a prompt, whose products are fp32 over the
 * dequantized weights (the GEMM path: faster for many rows, measured in bench/results.md). A row's
 * result never depends on how many other slots share its step; it does depend on the step's kind,
 * so a caller whose prompt chunks can be one token long (a server) uses model_session_prefill_slots. */
int model_session_step(model_session *s, const int32_t *tokens, int n_seq, int n_new, float *logits, lorac_err *err);
/* The same for the distinct slots slots[0..n_seq-1], each at its own length (continuous batching:
 * sequences at any point of their decoding, or prefill chunks, share one batched step). Row i of
 * tokens and logits is slots[i]'s. A refused step changes nothing. */
int model_session_step_slots(model_session *s, const int *slots, const int32_t *tokens, int n_seq, int n_new, float *logits,
                             lorac_err *err);
/* model_session_step_slots with a prompt's (fp32) products whatever n_new: prompt chunks whose
 * length depends on other requests (one token, at times) never switch to the decode products. */
int model_session_prefill_slots(model_session *s, const int *slots, const int32_t *tokens, int n_seq, int n_new,
                                float *logits, lorac_err *err);
/* Empties one slot (a finished sequence's slot then takes a new one); the others are untouched. */
int model_session_reset_slot(model_session *s, int slot, lorac_err *err);
/* Tokens slot holds (-1: no such slot). */
int model_session_slot_len(const model_session *s, int slot);
/* 1 when a decode step's rows are each the same bits whatever the other rows of the step: every
 * product of the base and the LM head through the direct int8 kernels (quant.h; --exact-products
 * turns them off), LoRA Linear layers (their low-rank path runs row by row in a decode step), no
 * embedding LoRA, fused-q/k/v LoRA or mixed adapters (fp32 sgemm's bits change with its row count).
 * gen_model_session batches several requests' beams only then. */
int model_session_rows_exact(const model_session *s);
/* Slot i := old slot src[i] for i < n_seq (a gather; src may repeat); each slot takes its source's
 * length. */
int model_session_reorder(model_session *s, const int32_t *src, int n_seq, lorac_err *err);
/* Tokens slot 0 holds (every live slot's, when the slots run in lockstep as beams do). */
int model_session_len(const model_session *s);
/* Mixed-adapter batches: slot i (< n) runs adapter ids[i] of set (-1: the base), unmerged, in the
 * same forward as the other slots (the base matmul once for all rows, then per adapter present one
 * gathered pair of thin products, as S-LoRA/Punica). Refused while the set has an active adapter.
 * ids follow model_session_reorder. set NULL: back to the model's own LoRA. */
int model_session_use_adapters(model_session *s, const model_adapter_set *set, const int *ids, int n, lorac_err *err);

#ifdef __cplusplus
}
#endif
#endif
