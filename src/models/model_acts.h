/* model_acts.h — what a forward keeps for its backward (internal to src/models/). */
#ifndef LORAC_MODEL_ACTS_H
#define LORAC_MODEL_ACTS_H

#include "models/model_internal.h"

struct model_acts {
    int capB, capT, n_layer;
    const model *owner;          /* the model (and LoRA layout, lora_gen) the LoRA records were made for */
    int lora_gen;
    int B, T;                    /* of the last forward */
    int have_grad;               /* the last forward left what model_backward needs */
    int has_mask;                /* the last batch had a padding mask */
    int pre_bf16;                /* MLP pre-activations kept as bf16 */
    int infer;                   /* forwards only: every layer shares one layer's buffers, inputs ping-pong */
    float drop;                  /* hidden dropout the last forward applied */
    float cls_drop;              /* classifier dropout the last forward applied */
    float dloss;                 /* gradient of the mean loss per scored token / row */
    float *arena;
    /* per layer l (tables of pointers into the arena) */
    float **in;                  /* (N,C) the input of layer l; in[L] leaves the last one */
    float **sum1, **sum2;        /* (N,C) the residual sums (sum2: post-norm) */
    float **mean0, **rstd0, **mean1, **rstd1; /* (N) norm statistics (means: LayerNorm) */
    float **qkv, **att, **lse;   /* (N,W), (N,QD), (B,NH,T) */
    float **pre;                 /* MLP pre-activations: floats, or bf16 values (pre_bf16) */
    /* embeddings and the end */
    float *emb, *emb_mean, *emb_rstd; /* (N,C) the embedding sum before its norm (BERT) */
    float *fmean, *frstd;        /* the final norm's statistics */
    float *h;                    /* (N,C) a norm's output; the final norm's output for the head */
    /* LM head */
    float *dfinal;               /* (N,C) the loss gradient at the final norm's output */
    float *losses;               /* (N) */
    float *lm_chunk;             /* (lm_rows,V) logits, then dlogits, of a slice of rows */
    int lm_rows;
    float *logits;               /* (capN,V), made by the first forward that is not for a backward */
    uint32_t *head_fwd, *head_bwd; /* bf16 training: the head packed for each product, or NULL */
    int head_frozen_packed;        /* 1: they hold a stored-type (never trained) head, packed for good */
    /* classification head (B rows) */
    float *cls_in, *cls_d, *dense, *tanh_out, *tanh_d, *cls_logits;
    float *dcls_logits, *dtanh, *ddense, *dcls;
    float *scores;               /* (B) regression targets */
    float *cls_losses;           /* (B) each row's loss */
    /* scratch (shared with the LM head's slice) */
    float *o, *mlp, *g, *dres, *datt, *dg, *dup;
    /* the last batch */
    int32_t *ints, *ids, *type_ids, *pos, *targets; /* targets (N), or a classifier's labels (B) */
    uint8_t *bytes, *mask, *mask_cls, *mask_tanh;
    /* hidden dropout, made on first use: the embeddings' mask, then two per layer */
    uint8_t *drop_masks;
    float *ddrop;
    lora_act *lacts;             /* n_layer·ARCH_N_SITES */
    lora_act embed_act;
};

void model_acts_drop_lora(model_acts *a);
int model_acts_dropout(model_acts *a, const model_config *c, lorac_err *err);
/* Points a block's buffers at layer l's activations and the shared scratch. */
void model_acts_block(const model *m, model_acts *a, int l, block_bufs *b);

#endif
