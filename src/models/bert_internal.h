/* bert_internal.h — shared by the BERT/RoBERTa files in src/models/ (not part of the public API). */
#ifndef LORAC_BERT_INTERNAL_H
#define LORAC_BERT_INTERNAL_H

#include "lorac/bert.h"
#include "lorac/lora.h"

/* One named tensor of the model: its values live in m->arena, its gradient (when trainable) in
 * m->garena. */
typedef struct bert_tensor {
    char name[160];     /* HF name with the family prefix ("bert.encoder.layer.0...."), head names as saved */
    int ndim;
    int64_t shape[2];
    size_t numel, off;
    float *w, *g;       /* g NULL when frozen */
    int decay;
    int head;           /* part of the classification head (PEFT modules_to_save) */
} bert_tensor;

/* A linear site: frozen (or fully trained) W (OC,C) and b, or a LoRA layer over them. */
typedef struct bert_lin {
    int C, OC;
    float *w, *b, *dw, *db;  /* dw/db NULL when not trained */
    lora_linear *lora;       /* NULL without LoRA here */
    lora_act act;
    char module[160];        /* PEFT module name, e.g. "bert.encoder.layer.0.attention.self.query" */
} bert_lin;

typedef struct bert_layer {
    bert_lin site[BERT_N_SITES];
    float *ln1_g, *ln1_b, *ln2_g, *ln2_b;
    float *dln1_g, *dln1_b, *dln2_g, *dln2_b;
} bert_layer;

/* What a forward keeps for the backward (capacity N = max_batch·max_seq tokens). */
typedef struct bert_acts {
    float *emb_in, *emb_mean, *emb_rstd;       /* (N,C), (N), (N) */
    float **x;                                 /* (L+1) × (N,C): input of layer l, x[L] = output */
    float *q, *k, *v, *att, *lse;              /* per layer: (N,C)×4, (B·NH·T) */
    float *ln1_in, *ln1_mean, *ln1_rstd, *x1;  /* per layer */
    float *fc, *ge;                            /* per layer: (N,FF) */
    float *ln2_in, *ln2_mean, *ln2_rstd;       /* per layer */
    /* head, (B,C) / (B,L) */
    float *cls, *cls_d, *dense, *tanh_out, *tanh_d, *logits;
    uint8_t *mask_cls, *mask_tanh;
    /* hidden dropout masks: after the embeddings LN (N,C); per layer after AO and FO (L·N·C each) */
    uint8_t *mask_emb, *mask_ao, *mask_fo;
    /* backward scratch */
    float *dx, *dx1, *dtmp, *dq, *dk, *dv, *datt, *dfc, *dge;
    float *dcls, *dtanh, *ddense, *dlogits;
    float *ddrop;                              /* (N,C): gradient through a hidden dropout */
    int32_t *pos;                              /* (N) position ids */
} bert_acts;

struct bert_model {
    bert_config cfg;
    bert_options opt;
    char prefix[16];          /* "bert." or "roberta." */
    float *arena, *garena;
    size_t n_floats, head_off;
    bert_tensor *t;           /* every tensor, in checkpoint order */
    size_t n_t;
    /* views into arena */
    float *wte, *wpe, *wtt, *emb_ln_g, *emb_ln_b;
    float *dwte, *dwpe, *dwtt, *demb_ln_g, *demb_ln_b;
    bert_layer *layers;
    bert_lin dense, cls;      /* BERT: pooler.dense, classifier; RoBERTa: classifier.dense, out_proj */
    peft_config lora_cfg;
    int has_lora;
    int training;
    bert_acts a;
    /* the last forward */
    int B, T, have_labels;
    float hid_p;              /* the hidden dropout the last forward applied (0 in inference) */
    int32_t *ids, *type_ids, *labels;  /* copies (N) / (B) */
    uint8_t *mask;
    float *targets;
    float loss;
    /* the trainable tensors (bert_trainable), names in tp_names (200 bytes each) */
    bert_param *tp;
    size_t n_tp;
    char *tp_names;
    size_t n_all; /* every parameter, LoRA included (for the report) */
};

/* bert_weights.c: the tensor table, the arena, the checkpoint copy and head initialisation. */
int bert_weights_load(bert_model *m, const char *dir, lorac_err *err);
/* bert_model.c: LoRA layers for the sites peft_targets_module picks. */
int bert_attach_lora(bert_model *m, const peft_config *pc, lorac_rng *rng, lorac_err *err);
/* bert_model.c: the head's / a site's lora_linear forward or plain matmul. */
int bert_lin_forward(bert_lin *s, float *out, const float *inp, int N, lorac_rng *rng, lorac_err *err);
int bert_lin_backward(bert_lin *s, float *dinp, const float *dout, const float *inp, int N, lorac_err *err);

#endif
