/* nist.c — corpus NIST-5 as e2e-metrics' pymteval (its mteval-v13a port) computes it.
 *
 * info(w1..wn) = log2(count(w1..wn-1) / count(w1..wn)), counts over every reference of the corpus
 * (the empty n-gram counts all reference words). Score = sum_n sum(info * clipped hits) / (sum of
 * len-n+1 over hypotheses), times exp(-beta log^2(ratio)) when the hypotheses are shorter than the
 * mean reference lengths summed over inputs, beta = -ln 0.5 / ln^2 1.5. Case-insensitive.
 */
#include <math.h>

#include "metrics_internal.h"

#define NIST_N 5

int metrics_compute_nist(const metrics_corpus *c, double *nist, lorac_err *err) {
    mt_corpus t;
    int rc = mt_corpus_tokenize(c, MT_TOK_MTEVAL, &t, err);
    if (rc) return rc;
    mt_ngram_map counts;
    rc = mt_ngram_map_init(&counts, 1u << 16, err);
    if (rc) { mt_corpus_free(&t); return rc; }
    /* reference n-gram counts over the corpus, and the mean reference length per input */
    double avg_ref_len = 0;
    for (size_t i = 0; i < t.n && !rc; i++) {
        size_t nr = t.ref_start[i + 1] - t.ref_start[i];
        double total = 0;
        for (size_t r = t.ref_start[i]; r < t.ref_start[i + 1] && !rc; r++) {
            const mt_sent *s = &t.refs[r];
            total += (double)s->len;
            for (size_t n = 1; n <= NIST_N && !rc; n++)
                for (size_t p = 0; p + n <= s->len && !rc; p++) rc = mt_ngram_map_add(&counts, s->ids + p, n, 1.0, err);
        }
        static const uint32_t none[1] = {0};
        if (!rc) rc = mt_ngram_map_add(&counts, none, 0, total, err);
        avg_ref_len += total / (double)nr;
    }
    double info_sum[NIST_N] = {0}, cand[NIST_N] = {0};
    for (size_t i = 0; i < t.n && !rc; i++) {
        const mt_sent *h = &t.hyps[i], *refs = &t.refs[t.ref_start[i]];
        size_t nr = t.ref_start[i + 1] - t.ref_start[i];
        for (size_t n = 1; n <= NIST_N; n++) {
            cand[n - 1] += (double)h->len - (double)(n - 1);
            for (size_t p = 0; p + n <= h->len; p++) {
                if (!mt_first_occurrence(h, n, p)) continue;
                size_t ch = mt_count_in(h, n, h->ids + p), best = 0;
                for (size_t r = 0; r < nr; r++) {
                    size_t cr = mt_count_in(&refs[r], n, h->ids + p);
                    if (cr > best) best = cr;
                }
                size_t hits = ch < best ? ch : best;
                if (!hits) continue;
                int found;
                double cnt = mt_ngram_map_get(&counts, h->ids + p, n, &found);
                double prefix = mt_ngram_map_get(&counts, h->ids + p, n - 1, NULL);
                if (found) info_sum[n - 1] += log(prefix / cnt) / log(2.0) * (double)hits;
            }
        }
    }
    mt_ngram_map_free(&counts);
    mt_corpus_free(&t);
    if (rc) return rc;
    double sum = 0;
    for (size_t n = 0; n < NIST_N; n++)
        if (cand[n] != 0) sum += info_sum[n] / cand[n]; /* pymteval would divide by zero here */
    double beta = -log(0.5) / (log(1.5) * log(1.5));
    double ratio = cand[0] / avg_ref_len, bp;
    if (ratio >= 1) bp = 1.0;
    else if (ratio <= 0) bp = 0.0;
    else bp = exp(-beta * log(ratio) * log(ratio));
    *nist = bp * sum;
    return LORAC_OK;
}
