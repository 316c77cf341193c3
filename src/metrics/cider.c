/* cider.c — CIDEr-D as pycocoevalcap computes it (the E2E scorer's CIDEr).
 *
 * n-grams n = 1..4 weighted tf * (log(#inputs) - log(max(1, df))), df = the number of inputs whose
 * references contain the n-gram. Per input and per reference, for each n: the clipped cosine
 * sum_g min(vh, vr) vr / (|vh| |vr|) times exp(-d^2 / (2 sigma^2)), sigma 6, where d is the
 * difference of the bigram counts (pycocoevalcap's "length"); mean over n, mean over references,
 * times 10. Corpus score: the mean over inputs.
 */
#include <math.h>
#include <stdlib.h>

#include "metrics_internal.h"

#define CIDER_N 4
#define CIDER_SIGMA 6.0

/* tf-idf weight of the n-gram at s[p..p+n) (its term frequency in s times its idf). */
static double tfidf(const mt_sent *s, size_t n, size_t p, const mt_ngram_map *df, double log_inputs) {
    double d = mt_ngram_map_get(df, s->ids + p, n, NULL);
    return (double)mt_count_in(s, n, s->ids + p) * (log_inputs - log(fmax(1.0, d)));
}

/* The norm of s's tf-idf vector for n-grams of length n. */
static double tfidf_norm(const mt_sent *s, size_t n, const mt_ngram_map *df, double log_inputs) {
    double sq = 0;
    for (size_t p = 0; p + n <= s->len; p++) {
        if (!mt_first_occurrence(s, n, p)) continue;
        double w = tfidf(s, n, p, df, log_inputs);
        sq += w * w;
    }
    return sqrt(sq);
}

int metrics_compute_cider(const metrics_corpus *c, double *cider, lorac_err *err) {
    mt_corpus t;
    int rc = mt_corpus_tokenize(c, MT_TOK_COCO, &t, err);
    if (rc) return rc;
    /* document frequencies: each input counts an n-gram once however many references have it */
    mt_ngram_map df;
    rc = mt_ngram_map_init(&df, 1u << 16, err);
    for (size_t i = 0; i < t.n && !rc; i++) {
        for (size_t r = t.ref_start[i]; r < t.ref_start[i + 1] && !rc; r++) {
            const mt_sent *s = &t.refs[r];
            for (size_t n = 1; n <= CIDER_N && !rc; n++) {
                for (size_t p = 0; p + n <= s->len && !rc; p++) {
                    if (!mt_first_occurrence(s, n, p)) continue;
                    int seen = 0; /* already in an earlier reference of this input? */
                    for (size_t q = t.ref_start[i]; q < r && !seen; q++) seen = mt_count_in(&t.refs[q], n, s->ids + p) > 0;
                    if (!seen) rc = mt_ngram_map_add(&df, s->ids + p, n, 1.0, err);
                }
            }
        }
    }
    double log_inputs = log((double)t.n), total = 0;
    for (size_t i = 0; i < t.n && !rc; i++) {
        const mt_sent *h = &t.hyps[i];
        size_t nr = t.ref_start[i + 1] - t.ref_start[i];
        double hlen = h->len > 1 ? (double)(h->len - 1) : 0, score = 0;
        for (size_t r = t.ref_start[i]; r < t.ref_start[i + 1]; r++) {
            const mt_sent *ref = &t.refs[r];
            double rlen = ref->len > 1 ? (double)(ref->len - 1) : 0, delta = hlen - rlen;
            double penalty = exp(-(delta * delta) / (2 * CIDER_SIGMA * CIDER_SIGMA));
            for (size_t n = 1; n <= CIDER_N; n++) {
                double val = 0;
                for (size_t p = 0; p + n <= h->len; p++) {
                    if (!mt_first_occurrence(h, n, p)) continue;
                    double vh = tfidf(h, n, p, &df, log_inputs);
                    double vr = (double)mt_count_in(ref, n, h->ids + p) *
                                (log_inputs - log(fmax(1.0, mt_ngram_map_get(&df, h->ids + p, n, NULL))));
                    val += fmin(vh, vr) * vr;
                }
                double nh = tfidf_norm(h, n, &df, log_inputs), nrm = tfidf_norm(ref, n, &df, log_inputs);
                if (nh != 0 && nrm != 0) val /= nh * nrm;
                score += val * penalty / CIDER_N;
            }
        }
        total += score / (double)nr * 10.0;
    }
    size_t n_inputs = t.n;
    mt_ngram_map_free(&df);
    mt_corpus_free(&t);
    if (rc) return rc;
    *cider = n_inputs ? total / (double)n_inputs : 0.0;
    return LORAC_OK;
}
