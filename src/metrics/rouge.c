/* rouge.c — ROUGE-L as pycocoevalcap computes it (the E2E scorer's ROUGE_L).
 *
 * Per input: LCS length against each reference, precision lcs/len(hyp) and recall lcs/len(ref);
 * take the best precision and the best recall separately, F = (1+b^2) P R / (R + b^2 P) with
 * b = 1.2 (0 when either is 0). Corpus score: the mean over inputs. Tokens are the COCO ones; like
 * Python's "".split(" "), an empty sentence counts as one empty token.
 */
#include <stdlib.h>

#include "metrics_internal.h"

#define ROUGE_BETA 1.2

/* Longest common subsequence length; row is scratch of at least b->len + 1 entries. */
static size_t lcs_len(const mt_sent *a, const mt_sent *b, size_t *row) {
    for (size_t j = 0; j <= b->len; j++) row[j] = 0;
    for (size_t i = 1; i <= a->len; i++) {
        size_t diag = 0; /* row[j-1] of the previous row */
        for (size_t j = 1; j <= b->len; j++) {
            size_t up = row[j];
            if (a->ids[i - 1] == b->ids[j - 1]) row[j] = diag + 1;
            else if (row[j - 1] > row[j]) row[j] = row[j - 1];
            diag = up;
        }
    }
    return row[b->len];
}

int metrics_compute_rouge_l(const metrics_corpus *c, double *rouge_l, lorac_err *err) {
    mt_corpus t;
    int rc = mt_corpus_tokenize(c, MT_TOK_COCO, &t, err);
    if (rc) return rc;
    /* the empty token: an id no word has */
    uint32_t empty_id = (uint32_t)t.n_words;
    mt_sent empty = {&empty_id, 1};
    size_t maxlen = 1;
    for (size_t i = 0; i < t.n; i++) if (t.hyps[i].len > maxlen) maxlen = t.hyps[i].len;
    size_t *row = malloc((maxlen + 1) * sizeof *row);
    if (!row) { mt_corpus_free(&t); return lorac_fail(err, LORAC_ENOMEM, "metrics: out of memory"); }
    double sum = 0;
    for (size_t i = 0; i < t.n; i++) {
        const mt_sent *h = t.hyps[i].len ? &t.hyps[i] : &empty;
        double pmax = 0, rmax = 0;
        for (size_t r = t.ref_start[i]; r < t.ref_start[i + 1]; r++) {
            const mt_sent *ref = t.refs[r].len ? &t.refs[r] : &empty;
            double l = (double)lcs_len(ref, h, row);
            if (l / (double)h->len > pmax) pmax = l / (double)h->len;
            if (l / (double)ref->len > rmax) rmax = l / (double)ref->len;
        }
        double b2 = ROUGE_BETA * ROUGE_BETA;
        if (pmax != 0 && rmax != 0) sum += (1 + b2) * pmax * rmax / (rmax + b2 * pmax);
    }
    free(row);
    *rouge_l = t.n ? sum / (double)t.n : 0.0;
    mt_corpus_free(&t);
    return LORAC_OK;
}
