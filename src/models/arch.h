/* arch.h — the family table: what makes GPT-2, the Llama family and BERT/RoBERTa different, as data.
 *
 * A family entry (src/models/arch_<family>.c) holds its config.json keys, the structure of its block
 * (model_config's structure fields, set by its reader), the names of its tensors in Hugging Face,
 * PEFT and GGUF checkpoints, its LoRA defaults and target aliases, and its tokenizer. Adding a family
 * is one such file and one line in arch.c; nothing else switches on the family.
 *
 * Tensor names are module names ("attn.c_attn"): ".weight" / ".bias" are appended. A name starting
 * with '^' is top-level (no prefix: "^lm_head", "^classifier"); the others take the family's prefix
 * ("transformer.", "model.", "bert."), which a bare checkpoint (GPT2Model, BertModel) may lack. */
#ifndef LORAC_ARCH_H
#define LORAC_ARCH_H

#include "lorac/hf_config.h"
#include "lorac/json.h"
#include "lorac/model.h"
#include "lorac/tokenizer.h"

/* The linear maps of a block. GPT-2 has QKV (fused), O, UP, DOWN; Llama Q, K, V, O, GATE, UP, DOWN;
 * BERT Q, K, V, O, UP, DOWN. The order is the checkpoints' (and the LoRA layout's). */
enum { ARCH_QKV = 0, ARCH_Q, ARCH_K, ARCH_V, ARCH_O, ARCH_GATE, ARCH_UP, ARCH_DOWN, ARCH_N_SITES };

typedef struct arch_family {
    const char *name;                    /* in messages: "GPT-2", "Llama", "BERT", "RoBERTa" */
    const char *model_types[4];          /* config.json model_type values (NULL-terminated) */
    /* config.json: the family's keys into model_config (sizes and structure), and back */
    int (*read_config)(const json_value *root, const char *path, model_config *c, lorac_err *err);
    int (*write_config)(json_writer *w, const model_config *c, const char *path, lorac_err *err);
    /* model_config_default: the structure and default sizes */
    void (*defaults)(model_config *c);
    /* Hugging Face tensor names */
    const char *prefix;
    const char *embed, *pos_embed, *type_embed, *emb_norm;
    const char *layer;                   /* "h.%d." */
    const char *site[ARCH_N_SITES];      /* NULL: the family has no such map */
    const char *norm[2];
    const char *final_norm;
    const char *lm_head;
    const char *cls[2];                  /* classification head: dense, output */
    const char *cls_save[2];             /* what PEFT's modules_to_save names of the head ("classifier", "pooler") */
    /* GGUF (llama.cpp): the architecture for a config (NULL: no GGUF form), whether its converter
     * permutes q/k rows for its rope, and tensor names */
    const char *(*gguf_arch)(const model_config *c, int *permute_qk);
    const char *gguf_site[ARCH_N_SITES];
    const char *gguf_norm[2];
    /* LoRA */
    int lora_r;
    float lora_alpha, lora_dropout;
    const char *lora_targets;            /* the default --targets */
    const char *slice_names[3];          /* names of a fused map's q/k/v slices ("q", "k", "v") */
    const char *embed_alias;             /* short name of the embedding as a target ("wte") */
    const char *targets_help;            /* for messages */
    /* tokenizer */
    text_tok_kind tok;                   /* which tokenizer the directory holds */
    const char *cls_tok, *sep_tok, *pad_tok; /* sentence-pair encoders */
    int pair_seps, pair_type_ids;
} arch_family;

/* The family of a config.json model_type (or a GGUF general.architecture, which names the model
 * type for the families with a GGUF form), or NULL. */
const arch_family *arch_find(const char *model_type);
/* "gpt2, llama, mistral, qwen2, bert, roberta": for messages. */
const char *arch_model_types(void);

/* ---- config.c: config.json helpers the family readers share (with json_field_*). */
/* The activation named by key (def when absent) among the allowed ones (mask of 1 << model_act). */
int cfg_act(const json_value *o, const char *key, const char *def, unsigned allowed, const char *path, model_config *c,
            lorac_err *err);
/* "architectures": [architecture] and the activation under act_key, for a written config.json. */
void cfg_write_class(json_writer *w, const char *architecture, const char *act_key, const model_config *c);
/* DIR/config.json: its family, then the family's reader, then model_config_validate. */
int model_config_load_dir(const char *dir, model_config *c, const arch_family **fam, lorac_err *err);

#endif
