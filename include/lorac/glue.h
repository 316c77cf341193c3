/* lorac/glue.h — GLUE data: the TSV layouts of the GLUE distribution and sentence(-pair) encoding
 * for the encoders (BERT's WordPiece, RoBERTa's byte-level BPE). Training and evaluation run through
 * the one trainer (lorac/finetune.h, ft_train / ft_eval with a task); the task table and metrics are
 * in lorac/metrics.h.
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
 */
#ifndef LORAC_GLUE_H
#define LORAC_GLUE_H

#include <stddef.h>
#include <stdint.h>

#include "lorac/base.h"
#include "lorac/metrics.h"
#include "lorac/model.h"

#ifdef __cplusplus
extern "C" {
#endif

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

/* Sentence(-pair) encoding: [CLS] a [SEP] (b [SEP]) with type ids 0 / 1 (BERT), or
 * <s> a </s></s> b </s> with type ids 0 (RoBERTa), truncated longest-first to max_len tokens. */
typedef struct glue_encoder glue_encoder;
/* The layout and tokenizer of a loaded model (its family's special tokens). */
int glue_encoder_for_model(const model *m, glue_encoder **out, lorac_err *err);
void glue_encoder_free(glue_encoder *e);
/* ids and types hold max_len entries; returns the length in *len. */
int glue_encode(const glue_encoder *e, const char *a, const char *b, int max_len, int32_t *ids, int32_t *types,
                int *len, lorac_err *err);
int32_t glue_encoder_pad(const glue_encoder *e);

#ifdef __cplusplus
}
#endif
#endif
