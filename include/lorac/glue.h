/* lorac/glue.h — GLUE tasks: the TSV layouts of the GLUE distribution, sentence(-pair) encoding for
 * BERT (WordPiece) and RoBERTa (byte-level BPE), the task metrics, and the fine-tuning / evaluation
 * drivers behind `lorac train --task glue-<name>` and `lorac eval --task glue-<name>`.
 *
 * Layouts (as the GLUE download script writes them; a UTF-8 BOM is skipped; fields are split on
 * tabs with no quoting, as HF's run_glue / the GLUE processors do):
 *   CoLA  no header; source, label, original label, sentence
 *   SST-2 sentence, label                     MRPC  Quality, #1 ID, #2 ID, #1 String, #2 String
 *   STS-B ... sentence1, sentence2, score     QQP   id, qid1, qid2, question1, question2, is_duplicate
 *   MNLI  ... sentence1, sentence2, ..., gold_label (contradiction / entailment / neutral)
 *   QNLI  index, question, sentence, label    RTE   index, sentence1, sentence2, label
 * Columns of files with a header are found by name. Labels are integers or the task's names
 * (entailment = 0, not_entailment = 1 for QNLI/RTE; contradiction 0, entailment 1, neutral 2 for
 * MNLI: the order of HF's GLUE processors). Errors name FILE:LINE.
 * Layers: readers, encoding and drivers live in src/train/glue_*.c, the metrics and glue_score in
 * src/metrics/glue_metrics.c (above train), so the CLI scores what glue_predict returns.
 */
#ifndef LORAC_GLUE_H
#define LORAC_GLUE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "lorac/base.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum glue_metric_kind { GLUE_M_ACC = 0, GLUE_M_ACC_F1, GLUE_M_MCC, GLUE_M_PEARSON_SPEARMAN } glue_metric_kind;

typedef struct glue_task {
    const char *name;     /* "sst2" */
    const char *dir;      /* "SST-2": the folder of the GLUE distribution */
    int num_labels;       /* 1 = regression */
    int pair;             /* sentence pairs */
    glue_metric_kind metric;
    const char *dev_file; /* "dev.tsv" ("dev_matched.tsv" for MNLI) */
} glue_task;

/* "sst2", "sst-2", "glue-sst2", "SST-2", "mnli-mm" (MNLI mismatched dev), ... */
const glue_task *glue_task_find(const char *name);

typedef struct glue_example {
    const char *a, *b;   /* b NULL for single sentences */
    int label;           /* classification */
    float score;         /* regression */
    int line;
} glue_example;

typedef struct glue_data {
    glue_example *ex;
    size_t n;
    char path[1024];
    char *text;          /* owns every string */
} glue_data;

/* Reads a GLUE TSV of task t. Every row must have the layout's columns and a valid label. */
int glue_read_tsv(const glue_task *t, const char *path, glue_data *out, lorac_err *err);
void glue_data_free(glue_data *d);

/* ---------------------------------------------------------------- metrics */
double glue_accuracy(const int *pred, const int *label, size_t n);
double glue_f1(const int *pred, const int *label, size_t n);         /* positive class 1; 0 if no positives */
double glue_matthews(const int *pred, const int *label, size_t n);   /* sklearn's multiclass form; 0 if undefined */
double glue_pearson(const float *x, const float *y, size_t n);
double glue_spearman(const float *x, const float *y, size_t n);      /* ties get their average rank */

typedef struct glue_scores {
    size_t n;
    double accuracy, f1, mcc, pearson, spearman;
    double main;          /* the task's headline metric (F1/acc average, Pearson/Spearman average, ...) */
    double loss;          /* mean eval loss */
} glue_scores;
void glue_score(const glue_task *t, const float *logits, const glue_data *d, glue_scores *s);

/* ---------------------------------------------------------------- encoding */
typedef struct glue_encoder glue_encoder;
/* The tokenizer of model DIR: WordPiece (bert) or byte-level BPE (roberta). */
int glue_encoder_load(const char *dir, int roberta, glue_encoder **out, lorac_err *err);
void glue_encoder_free(glue_encoder *e);
/* [CLS] a [SEP] (b [SEP]) with type ids 0 / 1, or <s> a </s></s> b </s> (types 0), truncated
 * longest-first to max_len tokens. ids and types hold max_len entries; returns the length. */
int glue_encode(const glue_encoder *e, const char *a, const char *b, int max_len, int32_t *ids, int32_t *types,
                int *len, lorac_err *err);
int32_t glue_encoder_pad(const glue_encoder *e);

/* ---------------------------------------------------------------- drivers */
typedef struct glue_train_options {
    const char *task, *model, *data, *eval_data, *out;
    int rank;               /* LoRA r (default 8) */
    double alpha;           /* default 16 */
    double lora_dropout;    /* default 0.1 */
    double hidden_dropout;  /* < 0 (default): config.json's hidden_dropout_prob */
    const char *targets;    /* comma list, default "query,value" */
    double lr;              /* 0: per mode (LoRA 5e-4, head only 2e-3, full 5e-5) */
    double weight_decay;    /* default 0.01 (not on biases and LayerNorm) */
    double warmup_ratio;    /* default 0.06 */
    int epochs, batch, max_seq_len;
    int head_only, full_ft;
    long max_train;         /* use the first N examples after a seeded shuffle; 0 = all */
    long max_eval;
    uint64_t seed;
    int threads;
} glue_train_options;
void glue_train_options_default(glue_train_options *o);

/* Trains and writes OUT (a PEFT adapter dir, or with full_ft a whole HF model dir). Progress
 * lines go to log (may be NULL); *train_seconds is the wall time of the training loop. */
int glue_train(const glue_train_options *o, double *train_seconds, FILE *log, lorac_err *err);
/* Runs model DIR (+ adapter dir, may be NULL) over d (the first max_eval examples if > 0) and
 * returns malloc'd logits (n · num_labels) and the mean loss; score them with glue_score. */
int glue_predict(const glue_task *t, const char *model, const char *adapter, const glue_data *d, int max_seq_len,
                 int batch, size_t n, float **logits, double *loss, lorac_err *err);

#ifdef __cplusplus
}
#endif
#endif
