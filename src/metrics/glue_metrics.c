/* GLUE metrics, as sklearn (accuracy_score, f1_score, matthews_corrcoef) and scipy (pearsonr,
 * spearmanr with average ranks for ties) compute them, in double precision; the task table. */
#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lorac/metrics.h"

double glue_accuracy(const int *pred, const int *label, size_t n) {
    size_t ok = 0;
    for (size_t i = 0; i < n; i++) ok += pred[i] == label[i];
    return n ? (double)ok / (double)n : 0.0;
}

double glue_f1(const int *pred, const int *label, size_t n) {
    double tp = 0, fp = 0, fn = 0;
    for (size_t i = 0; i < n; i++) {
        tp += pred[i] == 1 && label[i] == 1;
        fp += pred[i] == 1 && label[i] != 1;
        fn += pred[i] != 1 && label[i] == 1;
    }
    return tp > 0 ? 2 * tp / (2 * tp + fp + fn) : 0.0;
}

/* sklearn's multiclass MCC from the confusion matrix C:
 * (c·s - Σ_k p_k t_k) / sqrt((s² - Σ p_k²)(s² - Σ t_k²)), c = trace, s = n, p/t the column/row sums. */
double glue_matthews(const int *pred, const int *label, size_t n) {
    int K = 0;
    for (size_t i = 0; i < n; i++) {
        if (pred[i] + 1 > K) K = pred[i] + 1;
        if (label[i] + 1 > K) K = label[i] + 1;
    }
    if (K <= 0 || n == 0) return 0.0;
    double *p = calloc((size_t)K, sizeof(double)), *t = calloc((size_t)K, sizeof(double));
    if (!p || !t) {
        free(p);
        free(t);
        return NAN;
    }
    double c = 0, s = (double)n;
    for (size_t i = 0; i < n; i++) {
        if (pred[i] < 0 || label[i] < 0) continue;
        p[pred[i]] += 1;
        t[label[i]] += 1;
        c += pred[i] == label[i];
    }
    double pt = 0, pp = 0, tt = 0;
    for (int k = 0; k < K; k++) {
        pt += p[k] * t[k];
        pp += p[k] * p[k];
        tt += t[k] * t[k];
    }
    free(p);
    free(t);
    double den = (s * s - pp) * (s * s - tt);
    return den > 0 ? (c * s - pt) / sqrt(den) : 0.0;
}

static double pearson_d(const double *x, const double *y, size_t n) {
    double mx = 0, my = 0;
    for (size_t i = 0; i < n; i++) { mx += x[i]; my += y[i]; }
    mx /= (double)n;
    my /= (double)n;
    double sxy = 0, sxx = 0, syy = 0;
    for (size_t i = 0; i < n; i++) {
        double a = x[i] - mx, b = y[i] - my;
        sxy += a * b;
        sxx += a * a;
        syy += b * b;
    }
    return sxx > 0 && syy > 0 ? sxy / sqrt(sxx * syy) : NAN;
}

double glue_pearson(const float *x, const float *y, size_t n) {
    double *a = malloc(n * sizeof(double) + 1), *b = malloc(n * sizeof(double) + 1);
    double r = NAN;
    if (a && b && n > 1) {
        for (size_t i = 0; i < n; i++) { a[i] = x[i]; b[i] = y[i]; }
        r = pearson_d(a, b, n);
    }
    free(a);
    free(b);
    return r;
}

typedef struct val_idx { float v; size_t i; } val_idx;
static int cmp_val(const void *pa, const void *pb) {
    const val_idx *a = pa, *b = pb;
    if (a->v < b->v) return -1;
    if (a->v > b->v) return 1;
    return a->i < b->i ? -1 : a->i > b->i;
}

/* 1-based ranks, tied values sharing the mean of their ranks (scipy.stats.rankdata 'average'). */
static int rank_average(const float *x, size_t n, double *r) {
    val_idx *s = malloc(n * sizeof *s + 1);
    if (!s) return -1;
    for (size_t i = 0; i < n; i++) s[i] = (val_idx){x[i], i};
    qsort(s, n, sizeof *s, cmp_val);
    for (size_t i = 0; i < n;) {
        size_t j = i;
        while (j + 1 < n && s[j + 1].v == s[i].v) j++;
        double avg = (double)(i + j) / 2.0 + 1.0;
        for (size_t k = i; k <= j; k++) r[s[k].i] = avg;
        i = j + 1;
    }
    free(s);
    return 0;
}

double glue_spearman(const float *x, const float *y, size_t n) {
    double *a = malloc(n * sizeof(double) + 1), *b = malloc(n * sizeof(double) + 1);
    double r = NAN;
    if (a && b && n > 1 && !rank_average(x, n, a) && !rank_average(y, n, b)) r = pearson_d(a, b, n);
    free(a);
    free(b);
    return r;
}

static const glue_task TASKS[] = {
    {"cola", "CoLA", 2, 0, GLUE_M_MCC, "dev.tsv"},
    {"sst2", "SST-2", 2, 0, GLUE_M_ACC, "dev.tsv"},
    {"mrpc", "MRPC", 2, 1, GLUE_M_ACC_F1, "dev.tsv"},
    {"stsb", "STS-B", 1, 1, GLUE_M_PEARSON_SPEARMAN, "dev.tsv"},
    {"qqp", "QQP", 2, 1, GLUE_M_ACC_F1, "dev.tsv"},
    {"mnli", "MNLI", 3, 1, GLUE_M_ACC, "dev_matched.tsv"},
    {"mnli-mm", "MNLI", 3, 1, GLUE_M_ACC, "dev_mismatched.tsv"},
    {"qnli", "QNLI", 2, 1, GLUE_M_ACC, "dev.tsv"},
    {"rte", "RTE", 2, 1, GLUE_M_ACC, "dev.tsv"},
};

const glue_task *glue_task_find(const char *name) {
    if (!name) return NULL;
    if (!strncmp(name, "glue-", 5)) name += 5;
    char norm[32];
    size_t n = 0;
    for (const char *p = name; *p && n + 1 < sizeof norm; p++) /* "SST-2" -> "sst2", "STS-B" -> "stsb" */
        if (*p != '-' || !strcmp(p, "-mm")) norm[n++] = (char)tolower((unsigned char)*p);
    norm[n] = 0;
    for (size_t i = 0; i < sizeof TASKS / sizeof TASKS[0]; i++)
        if (!strcmp(norm, TASKS[i].name)) return &TASKS[i];
    return NULL;
}

int glue_score(const glue_task *t, const float *logits, const int *labels, const float *scores, size_t n, glue_scores *s) {
    double loss = s->loss;
    memset(s, 0, sizeof *s);
    s->n = n;
    s->loss = loss;
    if (t->num_labels == 1) {
        s->pearson = glue_pearson(logits, scores, n);
        s->spearman = glue_spearman(logits, scores, n);
        s->main = (s->pearson + s->spearman) / 2;
        return LORAC_OK;
    }
    int *p = malloc(n * sizeof(int) + 1);
    if (!p) return LORAC_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        const float *z = logits + i * (size_t)t->num_labels;
        int best = 0;
        for (int k = 1; k < t->num_labels; k++)
            if (z[k] > z[best]) best = k;
        p[i] = best;
    }
    s->accuracy = glue_accuracy(p, labels, n);
    s->f1 = glue_f1(p, labels, n);
    s->mcc = glue_matthews(p, labels, n);
    s->main = t->metric == GLUE_M_MCC ? s->mcc : t->metric == GLUE_M_ACC_F1 ? (s->accuracy + s->f1) / 2 : s->accuracy;
    free(p);
    return LORAC_OK;
}
