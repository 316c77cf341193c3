/* lorac/metrics.h — the E2E NLG challenge metrics (BLEU, NIST, METEOR, ROUGE-L, CIDEr), scored as
 * the challenge's official scorer (tuetschek/e2e-metrics measure_scores.py) scores them.
 *
 * What each number reproduces (parity fixtures: tests/fixtures/metrics, tools/metrics_ref.py):
 *   BLEU     BLEU-4 of e2e-metrics' pymteval (its mteval-v13a port): corpus level, multi-reference,
 *            case-insensitive, mteval-v13a basic tokenization, closest reference length (ties go to
 *            the shorter), precisions floored at 1e-15 / 1e-9 instead of smoothing.
 *   NIST     NIST-5 of the same port: information weights from reference n-gram counts over the
 *            whole corpus, mteval-v13a's length penalty (beta = -ln 0.5 / ln(1.5)^2).
 *   ROUGE_L  pycocoevalcap's ROUGE-L (LCS F-measure, beta 1.2, best precision and best recall over
 *            the references, averaged over inputs).
 *   CIDEr    pycocoevalcap's CIDEr-D (tf-idf n-grams 1..4 with document frequencies over the
 *            references, clipped cosine, Gaussian length penalty sigma 6, x10, averaged).
 *   METEOR   METEOR 1.5 as pycocoevalcap runs it (meteor-1.5.jar -l en -norm): the exact, stem,
 *            WordNet synonym and paraphrase stages, alpha .85, beta .2, gamma .6, delta .75, stage
 *            weights 1.0 / 0.6 / 0.8 / 0.6, English function words (metrics_compute_meteor). Its
 *            synonym and paraphrase data are not shipped: tools/fetch_meteor.sh fetches them (from
 *            PyPI's pycocoevalcap wheel). Without them, metrics_score_corpus gives meteor_es: the
 *            exact and stem stages only (weights 1.0 / 0.6), which is NOT the official METEOR.
 *   ROUGE_L, CIDEr and METEOR see the text as COCOEvalCap does: lowercased, tokenized like the
 *   Stanford PTBTokenizer 3.4.1 (a re-implementation of the rules that E2E-style English text meets),
 *   with COCO's punctuation tokens removed.
 *
 * Text is UTF-8; lowercasing covers ASCII and Latin-1 letters. Deterministic; no global state.
 */
#ifndef LORAC_METRICS_H
#define LORAC_METRICS_H

#include <stddef.h>

#include "lorac/base.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A scored corpus: n inputs; input i has hypothesis hyps[i] and references
 * refs[ref_start[i] .. ref_start[i+1]-1]. All strings are owned by the corpus. */
typedef struct metrics_corpus {
    size_t n;
    char **hyps;        /* n */
    size_t *ref_start;  /* n + 1 */
    char **refs;        /* ref_start[n] */
} metrics_corpus;

/* Reads references grouped per input. Either the E2E `context||reference` format (the first
 * non-blank line contains "||"; consecutive lines with the same context form one group) or blocks
 * of one reference per line separated by blank lines (as measure_scores.py reads them). Lines are
 * stripped of surrounding whitespace. Then reads one hypothesis per line from hyps_path (trailing
 * blank lines at the end of the file are ignored). Fails with a one-line message on unreadable or
 * empty files, invalid UTF-8 (naming file and line) and disagreeing counts. */
int metrics_read_corpus(const char *refs_path, const char *hyps_path, metrics_corpus *c, lorac_err *err);
/* Builds a corpus from memory (copies the strings). refs_per_input[i] references each. */
int metrics_corpus_from_strings(metrics_corpus *c, size_t n, const char *const *hyps,
                                const size_t *refs_per_input, const char *const *refs, lorac_err *err);
void metrics_corpus_free(metrics_corpus *c);

typedef struct metrics_scores {
    double bleu;      /* 0..1 */
    double nist;
    double meteor_es; /* METEOR 1.5 exact+stem stages only: not the official METEOR */
    double rouge_l;   /* 0..1 */
    double cider;     /* 0..10 */
} metrics_scores;

/* Scores the whole corpus. */
int metrics_score_corpus(const metrics_corpus *c, metrics_scores *s, lorac_err *err);

/* The single metrics (same definitions as above), for callers that want one. */
int metrics_compute_bleu(const metrics_corpus *c, double *bleu, lorac_err *err);
int metrics_compute_nist(const metrics_corpus *c, double *nist, lorac_err *err);
int metrics_compute_rouge_l(const metrics_corpus *c, double *rouge_l, lorac_err *err);
int metrics_compute_cider(const metrics_corpus *c, double *cider, lorac_err *err);
/* METEOR with its exact and stem stages only (not the official score); per_input (n values) may be NULL. */
int metrics_compute_meteor_es(const metrics_corpus *c, double *meteor, double *per_input, lorac_err *err);
/* The official METEOR 1.5 (all four stages) with the data in data_dir (english.synsets,
 * english.exceptions, paraphrase-en.gz: see metrics_meteor_data_dir); per_input may be NULL.
 * Reads the paraphrase table (~62 MB gzipped) each call, keeping only the phrases of the corpus. */
int metrics_compute_meteor(const metrics_corpus *c, const char *data_dir, double *meteor, double *per_input,
                           lorac_err *err);
/* The METEOR data directory: dir when given, else $LORAC_METEOR_DATA, else $LORAC_CACHE/meteor,
 * else $XDG_CACHE_HOME/lorac/meteor, else ~/.cache/lorac/meteor (where tools/fetch_meteor.sh puts
 * it), written to buf. Returns 1 when its three files are there, else 0. */
int metrics_meteor_data_dir(const char *dir, char *buf, size_t cap);

/* ---------------------------------------------------------------- GLUE tasks and their metrics */

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
/* Scores n rows of logits (n·num_labels) against labels (classification) or scores (regression);
 * s->loss is kept. Fails only when out of memory. */
int glue_score(const glue_task *t, const float *logits, const int *labels, const float *scores, size_t n, glue_scores *s);

/* Tokenizers, exposed for tests. Each writes the tokens of s, lowercased, joined by single spaces,
 * into a malloc'd string *out. */
int metrics_tokenize_mteval(const char *s, char **out, lorac_err *err); /* mteval-v13a basic */
int metrics_tokenize_coco(const char *s, char **out, lorac_err *err);   /* PTB + COCO punct removal */

#ifdef __cplusplus
}
#endif
#endif
