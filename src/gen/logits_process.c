/* logits_process.c — the logits processors and warpers of HF generate(), on one row of logits.
 *
 * Each function takes a row x (V) of logits (or log-probs) and edits it in place. Banned tokens
 * become -inf. Semantics and tie rules are documented in include/lorac/generate.h.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lorac/generate.h"

// x is (V); hist is (n_hist); seen is (V) zeroed scratch
void gen_logits_repetition_penalty(float *x, int V, const int32_t *hist, int n_hist, float penalty,
                                   uint8_t *seen) {
    // HF gathers the original values of the distinct tokens, so a repeated token is penalised once
    for (int i = 0; i < n_hist; i++) {
        int32_t t = hist[i];
        if (t < 0 || t >= V || seen[t]) continue;
        seen[t] = 1;
        x[t] = x[t] < 0.0f ? x[t] * penalty : x[t] / penalty;
    }
    for (int i = 0; i < n_hist; i++) {
        int32_t t = hist[i];
        if (t >= 0 && t < V) seen[t] = 0;
    }
}

// x is (V); hist is (n_hist)
void gen_logits_no_repeat_ngram(float *x, int V, const int32_t *hist, int n_hist, int ngram) {
    if (ngram <= 0 || n_hist + 1 < ngram) return;
    // the n-1 tokens a new token would complete into an n-gram
    const int32_t *prefix = hist + n_hist - (ngram - 1);
    for (int j = 0; j + ngram <= n_hist; j++) {
        if (memcmp(hist + j, prefix, (size_t)(ngram - 1) * sizeof *hist) != 0) continue;
        int32_t t = hist[j + ngram - 1];
        if (t >= 0 && t < V) x[t] = -INFINITY;
    }
}

// x is (V); hist is (n_hist); word_start is (V)
void gen_logits_no_repeat_word_ngram(float *x, int V, const int32_t *hist, int n_hist, int ngram,
                                     const uint8_t *word_start) {
    if (ngram <= 0 || n_hist == 0) return;
    // the last ngram-1 words of hist (the last one taken as complete): hist[s..n_hist)
    int s = n_hist, words = 0;
    while (words < ngram - 1 && s > 0) {
        s--;
        if (s == 0 || word_start[hist[s]]) words++;
    }
    if (words < ngram - 1) return; // fewer words than the n-gram's prefix
    int L = n_hist - s;
    // an earlier word-aligned copy of them, followed by a word start: that word's first token
    // would begin a repeated word n-gram (so a word is judged by its first token, as a GPT-2
    // token n-gram judges a word the vocabulary splits)
    for (int j = 0; j + L < n_hist; j++) {
        if (j > 0 && !word_start[hist[j]]) continue;
        int32_t t = hist[j + L];
        if (!word_start[t] || memcmp(hist + j, hist + s, (size_t)L * sizeof *hist) != 0) continue;
        if (t >= 0 && t < V) x[t] = -INFINITY;
    }
}

void gen_logits_min_new_tokens(float *x, const int32_t *eos, int n_eos, int n_generated,
                               int min_new_tokens) {
    if (n_generated >= min_new_tokens) return;
    for (int i = 0; i < n_eos; i++) x[eos[i]] = -INFINITY;
}

void gen_logits_temperature(float *x, int V, float temperature) {
    for (int i = 0; i < V; i++) x[i] /= temperature;
}

// the k-th largest of a (n) (k is 1-based), by quickselect; a is permuted
static float select_kth_largest(float *a, int n, int k) {
    int lo = 0, hi = n - 1, want = k - 1;
    while (lo < hi) {
        float pivot = a[lo + (hi - lo) / 2];
        int i = lo, j = hi;
        while (i <= j) {
            while (a[i] > pivot) i++;
            while (a[j] < pivot) j--;
            if (i <= j) {
                float t = a[i];
                a[i] = a[j];
                a[j] = t;
                i++;
                j--;
            }
        }
        // now a[lo..j] >= pivot >= a[i..hi], and a[j+1..i-1] == pivot
        if (want <= j) hi = j;
        else if (want >= i) lo = i;
        else return pivot;
    }
    return a[want];
}

// x is (V); work is (V)
void gen_logits_top_k(float *x, int V, int k, float *work) {
    if (k <= 0) return;
    if (k > V) k = V;
    memcpy(work, x, (size_t)V * sizeof *x);
    float kth = select_kth_largest(work, V, k);
    for (int i = 0; i < V; i++)
        if (x[i] < kth) x[i] = -INFINITY;
}

// float -> uint32 that orders like the float (-inf lowest)
static uint32_t float_order_key(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

static int u64_cmp(const void *pa, const void *pb) {
    uint64_t a = *(const uint64_t *)pa, b = *(const uint64_t *)pb;
    return (a > b) - (a < b);
}

static double row_max(const float *x, int V) {
    float m = -INFINITY;
    for (int i = 0; i < V; i++)
        if (x[i] > m) m = x[i];
    return m;
}

// x is (V); work is (V)
void gen_logits_top_p(float *x, int V, float top_p, uint64_t *work) {
    if (!(top_p < 1.0f)) return;
    double m = row_max(x, V);
    if (m == -INFINITY) return;
    double z = 0.0;
    // one sortable key per surviving token: value descending, then token id ascending. Tokens
    // already at -inf carry no mass; HF removes them first, so they need no sorting (after a
    // top-k this sorts k values, not V)
    int n = 0;
    for (int i = 0; i < V; i++) {
        if (x[i] == -INFINITY) continue;
        z += exp((double)x[i] - m);
        work[n++] = ((uint64_t)~float_order_key(x[i]) << 32) | (uint32_t)i;
    }
    qsort(work, (size_t)n, sizeof *work, u64_cmp);
    // HF walks the ascending order and removes while the cumulative mass is <= 1 - top_p,
    // always keeping the most probable token (work[0])
    double cum = 0.0, cut = 1.0 - (double)top_p;
    for (int r = n - 1; r >= 1; r--) {
        int t = (int)(uint32_t)work[r];
        cum += exp((double)x[t] - m) / z;
        if (cum > cut) break;
        x[t] = -INFINITY;
    }
}

// x is (V)
void gen_log_softmax(float *x, int V) {
    double m = row_max(x, V);
    if (m == -INFINITY) return;
    // float exponentials (as torch), summed in double
    float mf = (float)m;
    double s = 0.0;
    for (int i = 0; i < V; i++) s += (double)expf(x[i] - mf);
    double lse = m + log(s);
    for (int i = 0; i < V; i++) x[i] = (float)((double)x[i] - lse);
}

int gen_argmax(const float *x, int V) {
    int best = 0;
    for (int i = 1; i < V; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

int gen_sample(const float *x, int V, lorac_rng *rng) {
    double m = row_max(x, V);
    double u = (double)lorac_rng_uniform(rng);
    if (m == -INFINITY) return 0;
    double z = 0.0;
    for (int i = 0; i < V; i++) z += exp((double)x[i] - m);
    double target = u * z, cum = 0.0;
    int last = 0;
    for (int i = 0; i < V; i++) {
        if (x[i] == -INFINITY) continue;
        cum += exp((double)x[i] - m);
        last = i;
        if (target < cum) return i;
    }
    return last; // rounding left target just above the total
}
