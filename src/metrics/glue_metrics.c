/* GLUE metrics, as sklearn (accuracy_score, f1_score, matthews_corrcoef) and scipy (pearsonr,
 * spearmanr with average ranks for ties) compute them, in double precision. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lorac/glue.h"

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

void glue_score(const glue_task *t, const float *logits, const glue_data *d, glue_scores *s) {
    double loss = s->loss;
    size_t n = s->n ? s->n : d->n;
    memset(s, 0, sizeof *s);
    s->n = n;
    s->loss = loss;
    if (t->num_labels == 1) {
        float *y = malloc(n * sizeof(float) + 1);
        if (!y) return;
        for (size_t i = 0; i < n; i++) y[i] = d->ex[i].score;
        s->pearson = glue_pearson(logits, y, n);
        s->spearman = glue_spearman(logits, y, n);
        s->main = (s->pearson + s->spearman) / 2;
        free(y);
        return;
    }
    int *p = malloc(n * sizeof(int) + 1), *y = malloc(n * sizeof(int) + 1);
    if (!p || !y) {
        free(p);
        free(y);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        const float *z = logits + i * (size_t)t->num_labels;
        int best = 0;
        for (int k = 1; k < t->num_labels; k++)
            if (z[k] > z[best]) best = k;
        p[i] = best;
        y[i] = d->ex[i].label;
    }
    s->accuracy = glue_accuracy(p, y, n);
    s->f1 = glue_f1(p, y, n);
    s->mcc = glue_matthews(p, y, n);
    s->main = t->metric == GLUE_M_MCC ? s->mcc : t->metric == GLUE_M_ACC_F1 ? (s->accuracy + s->f1) / 2 : s->accuracy;
    free(p);
    free(y);
}
