/* bleu.c — corpus BLEU-4 as e2e-metrics' pymteval (its mteval-v13a port) computes it.
 *
 * Per input: clipped n-gram hits against the per-n-gram maximum count over the references, the
 * candidate n-gram count len-n+1 (pymteval lets it go negative for short hypotheses, and so do we),
 * and the length of the reference closest to the hypothesis (ties: the shorter). Corpus score:
 * BP * exp(mean_n log(max(hits_n, 1e-15) / max(len_n, 1e-9))), BP = exp(1 - ref/cand) when
 * cand <= ref. Case-insensitive; mteval-v13a tokenization.
 */
#include <math.h>

#include "metrics_internal.h"

#define BLEU_N 4

/* Clipped hits of the n-grams of h against the references refs[0..nr). */
static double clipped_hits(const mt_sent *h, const mt_sent *refs, size_t nr, size_t n) {
    double hits = 0;
    for (size_t i = 0; i + n <= h->len; i++) {
        if (!mt_first_occurrence(h, n, i)) continue;
        size_t ch = mt_count_in(h, n, h->ids + i), best = 0;
        for (size_t r = 0; r < nr; r++) {
            size_t cr = mt_count_in(&refs[r], n, h->ids + i);
            if (cr > best) best = cr;
        }
        hits += (double)(ch < best ? ch : best);
    }
    return hits;
}

int metrics_compute_bleu(const metrics_corpus *c, double *bleu, lorac_err *err) {
    mt_corpus t;
    int rc = mt_corpus_tokenize(c, MT_TOK_MTEVAL, &t, err);
    if (rc) return rc;
    double hits[BLEU_N] = {0}, cand[BLEU_N] = {0}, ref_len = 0;
    for (size_t i = 0; i < t.n; i++) {
        const mt_sent *h = &t.hyps[i], *refs = &t.refs[t.ref_start[i]];
        size_t nr = t.ref_start[i + 1] - t.ref_start[i];
        for (size_t n = 1; n <= BLEU_N; n++) {
            hits[n - 1] += clipped_hits(h, refs, nr, n);
            cand[n - 1] += (double)h->len - (double)(n - 1);
        }
        size_t best = 0;
        for (size_t r = 1; r < nr; r++) {
            size_t lr = refs[r].len, lb = refs[best].len;
            size_t dr = lr > h->len ? lr - h->len : h->len - lr, db = lb > h->len ? lb - h->len : h->len - lb;
            if (dr < db || (dr == db && lr < lb)) best = r;
        }
        ref_len += (double)refs[best].len;
    }
    mt_corpus_free(&t);
    double bp = 1.0;
    if (cand[0] <= ref_len) bp = exp(1.0 - ref_len / (cand[0] != 0 ? cand[0] : 1e-5));
    double logsum = 0;
    for (size_t n = 0; n < BLEU_N; n++) logsum += log(fmax(hits[n], 1e-15) / fmax(cand[n], 1e-9));
    *bleu = bp * exp(logsum / BLEU_N);
    return LORAC_OK;
}
