/* lorac/bert.h — BERT and RoBERTa encoders with a sequence-classification head, LoRA and full
 * fine-tuning, as Hugging Face's BertForSequenceClassification / RobertaForSequenceClassification.
 *
 * Model: post-LayerNorm blocks (x1 = LN(x + attn(x)), out = LN(x1 + ffn(x1))), GELU, absolute
 * positions (RoBERTa: position ids from create_position_ids_from_input_ids, i.e. padding_idx + 1
 * onwards for real tokens and padding_idx for padding), token-type embeddings, bidirectional
 * attention with a padding mask. Heads:
 *   BERT:    pooled = tanh(pooler.dense(h[CLS])); logits = classifier(dropout(pooled))
 *   RoBERTa: logits = out_proj(dropout(tanh(dense(dropout(h[<s>])))))
 * num_labels == 1 is regression (MSE loss, STS-B), else cross-entropy.
 * Dropout (training mode only; inverted, as torch): hidden_dropout_prob after the embeddings
 * LayerNorm and on the attention-output and FFN-output dense results before their residual+LN;
 * the head's dropout (classifier_dropout, else hidden_dropout_prob) and LoRA dropout. NOT done:
 * attention-probability dropout (attention_probs_dropout_prob): op_attention is a tiled online
 * softmax that never materialises the probabilities, so there is nothing to mask.
 *
 * Checkpoints: DIR/config.json (model_type "bert" or "roberta") and DIR/model.safetensors, tensor
 * names with or without the "bert." / "roberta." prefix. A head missing from the checkpoint is
 * initialised as HF does (normal(0, initializer_range), zero bias) from the seed.
 *
 * Training: LoRA on any of the sites query, key, value, attention.output.dense, intermediate.dense,
 * output.dense (PEFT suffix matching on "<prefix>encoder.layer.N.<site>"); the head is always
 * trained; with full fine-tuning every tensor is trained (and gets a gradient buffer); only
 * trainable tensors ever get a dW GEMM.
 * Threads: one model serves one forward/backward at a time (it owns its activations).
 */
#ifndef LORAC_BERT_H
#define LORAC_BERT_H

#include <stddef.h>
#include <stdint.h>

#include "lorac/base.h"
#include "lorac/peft.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum bert_family { BERT_FAMILY_BERT = 0, BERT_FAMILY_ROBERTA = 1 } bert_family;

typedef struct bert_config {
    bert_family family;
    int vocab_size, hidden, n_layer, n_head, intermediate, max_pos, type_vocab;
    int pad_token_id;
    int gelu_tanh;          /* hidden_act gelu_new / gelu_pytorch_tanh (else exact erf GELU) */
    float ln_eps;
    float hidden_dropout;   /* hidden_dropout_prob */
    float attn_dropout;     /* attention_probs_dropout_prob (read, not applied: see above) */
    float classifier_dropout; /* classifier_dropout, or hidden_dropout_prob when null */
    float initializer_range;
    int num_labels;         /* from config.json (id2label / num_labels), may be overridden */
} bert_config;

/* Reads DIR/config.json; errors name the file and the field. */
int bert_config_load(const char *dir, bert_config *cfg, lorac_err *err);

/* The six linear sites of a block that may carry LoRA (PEFT module-name suffixes). */
enum { BERT_SITE_Q = 0, BERT_SITE_K, BERT_SITE_V, BERT_SITE_AO, BERT_SITE_FC, BERT_SITE_FO, BERT_N_SITES };
const char *bert_site_name(int site); /* "attention.self.query", ... "output.dense" */

typedef struct bert_model bert_model;

typedef struct bert_options {
    int num_labels;        /* 0: take config.json's */
    int max_batch;         /* rows per forward */
    int max_seq;           /* tokens per row, <= max_pos (RoBERTa: max_pos - pad - 1) */
    int full_ft;           /* train every tensor (no LoRA) */
    int head_only;         /* no LoRA, frozen encoder */
    const peft_config *lora; /* LoRA config (targets, r, alpha, dropout); NULL = no LoRA */
    uint64_t seed;         /* head and LoRA A initialisation */
} bert_options;

/* Loads DIR (config + weights) and builds the model. A classifier found in the checkpoint with a
 * different number of labels is an error. */
int bert_model_load(const char *dir, const bert_options *opt, bert_model **out, lorac_err *err);
void bert_model_free(bert_model *m);
const bert_config *bert_model_config(const bert_model *m);

/* Training mode (hidden, head and LoRA dropout active) or inference. */
void bert_model_train_mode(bert_model *m, int on);
/* Overrides hidden_dropout_prob (the encoder's three hidden dropouts; not the head's), p in [0, 1). */
int bert_model_set_hidden_dropout(bert_model *m, float p, lorac_err *err);

/* One batch: ids, type_ids (may be NULL = 0), mask (1 real token, 0 padding) are (B,T), row-major,
 * B <= max_batch, T <= max_seq. logits (B,num_labels) are written. With labels (int class ids for
 * classification, floats for regression, one of them non-NULL) the mean loss is returned in *loss.
 * rng drives dropout in training mode (may be NULL in inference or when every p is 0); the masks
 * are drawn from it in a fixed order, so re-seeding reproduces them. */
typedef struct bert_batch {
    int B, T;
    const int32_t *ids, *type_ids;
    const uint8_t *mask;
    const int32_t *labels;  /* classification */
    const float *targets;   /* regression */
} bert_batch;
int bert_forward(bert_model *m, const bert_batch *b, float *logits, float *loss, lorac_rng *rng,
                 lorac_err *err);
/* Backward of the mean loss of the last forward (which must have had labels): gradients
 * ACCUMULATE into the trainable tensors' buffers (scaled by scale, e.g. 1/grad_accum). */
int bert_backward(bert_model *m, float scale, lorac_err *err);
void bert_zero_grad(bert_model *m);

/* The trainable tensors, for the optimizer: name, data, grad, numel, decay (matrices decay,
 * biases and LayerNorm weights do not, as HF Trainer's defaults). i in [0, n). */
typedef struct bert_param {
    const char *name; /* the PEFT / HF state-dict name */
    float *data, *grad;
    size_t numel;
    int decay;
} bert_param;
size_t bert_n_trainable(const bert_model *m);
bert_param bert_trainable(const bert_model *m, size_t i);
/* "trainable params: ... || all params: ... || trainable%: ..." (PEFT's line). */
void bert_report(const bert_model *m, char *buf, size_t size);

/* Saves a PEFT adapter directory (adapter_config.json with task_type SEQ_CLS and modules_to_save,
 * adapter_model.safetensors with lora_A/B and the head under PEFT's names), atomically. */
int bert_save_adapter(const bert_model *m, const char *dir, lorac_err *err);
/* Loads such a directory (written by lorac or by PEFT 0.10) into a model that was built with
 * opt.lora = NULL: builds LoRA layers from its config, then copies the tensors. */
int bert_load_adapter(bert_model *m, const char *dir, lorac_err *err);
/* Saves the whole model (full fine-tuning) as a Hugging Face directory: config.json with
 * num_labels, model.safetensors with the ForSequenceClassification names, and src_dir's tokenizer files. */
int bert_save_full(const bert_model *m, const char *src_dir, const char *dir, lorac_err *err);

#ifdef __cplusplus
}
#endif
#endif
