/* test_sampler.c — the logits processors and warpers (hand-computed values, edge cases, and HF's
 * own RepetitionPenalty / NoRepeatNGram / Temperature / TopK / TopP processors through the "warp"
 * cases of tests/fixtures/gen/decode.txt), log-softmax, argmax and the seeded sampler.
 *
 * Tolerances: processed logits within 1e-6 (abs + rel; the same float32 operations as torch), and
 * the set of -inf (removed) tokens must match exactly.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "lorac.h"

static int all_zero(const uint8_t *b, int n) {
    for (int i = 0; i < n; i++)
        if (b[i]) return 0;
    return 1;
}

static void test_repetition_penalty(void) {
    float x[6] = {2.0f, -1.0f, 0.5f, 0.0f, -3.0f, -INFINITY};
    const int32_t hist[] = {0, 1, 0, 3, 1, 5};
    uint8_t seen[6] = {0};
    gen_logits_repetition_penalty(x, 6, hist, 6, 2.0f, seen);
    const float want[6] = {1.0f, -2.0f, 0.5f, 0.0f, -3.0f, -INFINITY}; // repeats penalised once
    CHECK(memcmp(x, want, sizeof x) == 0, "repetition penalty: %g %g %g %g %g", x[0], x[1], x[2], x[3], x[4]);
    CHECK(all_zero(seen, 6), "seen is cleared");
    float y[3] = {1.5f, -1.5f, 0.25f};
    const int32_t h2[] = {0, 1, 2};
    gen_logits_repetition_penalty(y, 3, h2, 3, 0.5f, seen); // a penalty < 1 rewards repeats
    CHECK(y[0] == 3.0f && y[1] == -0.75f && y[2] == 0.5f, "penalty 0.5: %g %g %g", y[0], y[1], y[2]);
}

static int count_inf(const float *x, int n) {
    int c = 0;
    for (int i = 0; i < n; i++) c += x[i] == -INFINITY;
    return c;
}

static void test_no_repeat_ngram(void) {
    float x[8];
    const int32_t h[] = {1, 2, 3, 1, 2};
    for (int i = 0; i < 8; i++) x[i] = 0.0f;
    gen_logits_no_repeat_ngram(x, 8, h, 5, 3); // prefix (1,2) was followed by 3
    CHECK(x[3] == -INFINITY && count_inf(x, 8) == 1, "3-gram bans 3");
    for (int i = 0; i < 8; i++) x[i] = 0.0f;
    gen_logits_no_repeat_ngram(x, 8, h, 5, 2); // prefix (2) was followed by 3
    CHECK(x[3] == -INFINITY && count_inf(x, 8) == 1, "2-gram bans 3");
    const int32_t h2[] = {4, 2, 4, 5, 4};
    for (int i = 0; i < 8; i++) x[i] = 0.0f;
    gen_logits_no_repeat_ngram(x, 8, h2, 5, 2); // (4) was followed by 2 and by 5
    CHECK(x[2] == -INFINITY && x[5] == -INFINITY && count_inf(x, 8) == 2, "2-gram bans 2 and 5");
    for (int i = 0; i < 8; i++) x[i] = 0.0f;
    gen_logits_no_repeat_ngram(x, 8, h2, 5, 1); // unigrams: every token seen
    CHECK(x[2] == -INFINITY && x[4] == -INFINITY && x[5] == -INFINITY && count_inf(x, 8) == 3, "1-gram bans the seen");
    for (int i = 0; i < 8; i++) x[i] = 0.0f;
    gen_logits_no_repeat_ngram(x, 8, h, 5, 6); // too short to complete a 6-gram
    gen_logits_no_repeat_ngram(x, 8, h, 5, 5); // the only 5-gram prefix (2,3,1,2) is new
    gen_logits_no_repeat_ngram(x, 8, h, 5, 0);
    CHECK(count_inf(x, 8) == 0, "nothing banned");
}

/* Words: tokens 0..4 start a word, 5..9 continue one. */
static void test_no_repeat_word_ngram(void) {
    const uint8_t ws[10] = {1, 1, 1, 1, 1, 0, 0, 0, 0, 0};
    float x[10];
    // words [0 5][1][2 6][0 5][1]: the 2 words [0 5][1] were followed by the word starting with 2
    const int32_t h[] = {0, 5, 1, 2, 6, 0, 5, 1};
    for (int i = 0; i < 10; i++) x[i] = 0.0f;
    gen_logits_no_repeat_word_ngram(x, 10, h, 8, 3, ws);
    CHECK(x[2] == -INFINITY && count_inf(x, 10) == 1, "word 3-gram bans the start of the third word");
    // words [0 5][1 6][2][0 5][1]: the earlier second word was [1 6], not [1]: nothing repeats
    const int32_t h2[] = {0, 5, 1, 6, 2, 0, 5, 1};
    for (int i = 0; i < 10; i++) x[i] = 0.0f;
    gen_logits_no_repeat_word_ngram(x, 10, h2, 8, 3, ws);
    CHECK(count_inf(x, 10) == 0, "a longer earlier word is another word");
    // the token rule on the same history bans 6 (the 3-gram 5 1 6), inside a word
    gen_logits_no_repeat_ngram(x, 10, h2, 8, 3);
    CHECK(x[6] == -INFINITY && count_inf(x, 10) == 1, "token 3-gram bans 6");
    // hist[0] starts a word though 5 is a continuation; copies must start at word starts
    const int32_t h3[] = {5, 0, 1, 3, 6, 7, 0, 1};
    for (int i = 0; i < 10; i++) x[i] = 0.0f;
    gen_logits_no_repeat_word_ngram(x, 10, h3, 8, 3, ws);
    CHECK(x[3] == -INFINITY && count_inf(x, 10) == 1, "word 3-gram bans 3");
    const int32_t h4[] = {0, 6, 1, 3, 6, 1};  // [0 6][1][3 6][1]: (6 1) is no word-aligned pair
    for (int i = 0; i < 10; i++) x[i] = 0.0f;
    gen_logits_no_repeat_word_ngram(x, 10, h4, 6, 3, ws);
    gen_logits_no_repeat_word_ngram(x, 10, h4, 6, 5, ws); // fewer words than the prefix
    gen_logits_no_repeat_word_ngram(x, 10, h4, 6, 0, ws);
    CHECK(count_inf(x, 10) == 0, "nothing banned");
    gen_logits_no_repeat_word_ngram(x, 10, h4, 6, 1, ws); // unigrams: the words' first tokens
    CHECK(x[0] == -INFINITY && x[1] == -INFINITY && x[3] == -INFINITY && count_inf(x, 10) == 3, "word 1-gram");
}

static void test_min_new_and_temperature(void) {
    float x[4] = {1.0f, 2.0f, 3.0f, 4.0f};
    const int32_t eos[2] = {1, 3};
    gen_logits_min_new_tokens(x, eos, 2, 2, 2);
    CHECK(count_inf(x, 4) == 0, "min_new reached");
    gen_logits_min_new_tokens(x, eos, 2, 1, 2);
    CHECK(x[1] == -INFINITY && x[3] == -INFINITY && x[0] == 1.0f, "eos banned before min_new");
    float y[3] = {1.0f, -2.0f, 0.3f};
    gen_logits_temperature(y, 3, 0.5f);
    CHECK(y[0] == 2.0f && y[1] == -4.0f && y[2] == 0.3f / 0.5f, "temperature divides");
}

static void test_top_k(void) {
    float work[8];
    float x[8] = {1.0f, 3.0f, 3.0f, 0.5f, 3.0f, -2.0f, 1.0f, 1.0f};
    gen_logits_top_k(x, 8, 2, work);
    CHECK(count_inf(x, 8) == 5 && x[1] == 3.0f && x[2] == 3.0f && x[4] == 3.0f, "ties at the k-th are all kept");
    float y[8] = {1.0f, 3.0f, 2.0f, 0.5f, 4.0f, -2.0f, 1.5f, -INFINITY};
    gen_logits_top_k(y, 8, 3, work);
    CHECK(count_inf(y, 8) == 5 && y[4] == 4.0f && y[1] == 3.0f && y[2] == 2.0f, "top 3");
    float z[3] = {1.0f, -INFINITY, 2.0f};
    gen_logits_top_k(z, 3, 10, work);
    CHECK(z[0] == 1.0f && z[2] == 2.0f && count_inf(z, 3) == 1, "k > V keeps everything");
    gen_logits_top_k(z, 3, 0, work);
    CHECK(z[0] == 1.0f && z[2] == 2.0f, "k = 0 is off");
}

static void test_top_p(void) {
    uint64_t work[8];
    float x[4] = {logf(0.5f), logf(0.3f), logf(0.15f), logf(0.05f)};
    gen_logits_top_p(x, 4, 0.75f, work); // ascending cumulative 0.05, 0.2 <= 0.25 go; 0.5 stays
    CHECK(x[0] == logf(0.5f) && x[1] == logf(0.3f) && x[2] == -INFINITY && x[3] == -INFINITY, "top_p 0.75");
    float y[4] = {logf(0.05f), logf(0.5f), logf(0.15f), logf(0.3f)}; // same, permuted
    gen_logits_top_p(y, 4, 0.75f, work);
    CHECK(count_inf(y, 4) == 2 && y[1] != -INFINITY && y[3] != -INFINITY, "top_p is order-free");
    float z[4] = {0.0f, 0.0f, 0.0f, 0.0f}; // ties: the higher ids go first; 0.25 + 0.25 <= 0.5
    gen_logits_top_p(z, 4, 0.5f, work);
    CHECK(z[0] == 0.0f && z[1] == 0.0f && z[2] == -INFINITY && z[3] == -INFINITY, "ties");
    float t[3] = {2.0f, 1.0f, 1.5f};
    gen_logits_top_p(t, 3, 1e-6f, work);
    CHECK(t[0] == 2.0f && count_inf(t, 3) == 2, "a tiny top_p keeps the most probable token");
    float u[3] = {2.0f, 1.0f, 1.5f};
    gen_logits_top_p(u, 3, 1.0f, work);
    CHECK(count_inf(u, 3) == 0, "top_p 1 is off");
    float w[4] = {-INFINITY, 1.0f, -INFINITY, -INFINITY};
    gen_logits_top_p(w, 4, 0.1f, work);
    CHECK(w[1] == 1.0f && count_inf(w, 4) == 3, "one finite token survives");
    float all[2] = {-INFINITY, -INFINITY};
    gen_logits_top_p(all, 2, 0.5f, work);
    CHECK(count_inf(all, 2) == 2, "all -inf is left alone");
}

static void test_softmax_argmax(void) {
    float x[5] = {1.0f, 2.0f, -INFINITY, 2.0f, -1.0f};
    CHECK(gen_argmax(x, 5) == 1, "argmax takes the lowest id on ties");
    gen_log_softmax(x, 5);
    double s = 0.0;
    for (int i = 0; i < 5; i++) s += exp((double)x[i]);
    CHECK_CLOSE(s, 1.0, 1e-6, 0.0, "log_softmax normalises");
    CHECK(x[2] == -INFINITY && x[1] == x[3], "-inf stays -inf; ties stay tied");
    double lse = log(exp(1.0) + 2 * exp(2.0) + exp(-1.0));
    CHECK_CLOSE(x[0], 1.0 - lse, 1e-6, 0.0, "log_softmax value");
    float y[2] = {-INFINITY, -INFINITY};
    gen_log_softmax(y, 2);
    CHECK(y[0] == -INFINITY && y[1] == -INFINITY, "all -inf stays (no NaN)");
}

static void test_sample(void) {
    const int V = 6;
    float x[6] = {0.0f, 1.0f, -INFINITY, 0.5f, -1.0f, 2.0f};
    double p[6], z = 0.0;
    for (int i = 0; i < V; i++) z += exp((double)x[i]);
    for (int i = 0; i < V; i++) p[i] = exp((double)x[i]) / z;
    lorac_rng rng, rng2;
    lorac_rng_seed(&rng, 42);
    lorac_rng_seed(&rng2, 42);
    const int N = 60000;
    int count[6] = {0}, same = 1;
    for (int n = 0; n < N; n++) {
        int a = gen_sample(x, V, &rng), b = gen_sample(x, V, &rng2);
        same &= a == b;
        if (a >= 0 && a < V) count[a]++;
    }
    CHECK(same, "one seed, one stream of draws");
    CHECK(count[2] == 0, "a -inf token is never drawn");
    // each frequency within 5 standard deviations of N*p (a true sampler fails this ~1e-6 of runs)
    for (int i = 0; i < V; i++) {
        double sd = sqrt(N * p[i] * (1 - p[i]));
        CHECK(fabs(count[i] - N * p[i]) <= 5 * sd + 1e-9, "token %d drawn %d times, expected %.0f", i, count[i], N * p[i]);
    }
    float one[4] = {-INFINITY, -INFINITY, 3.0f, -INFINITY};
    int ok = 1;
    for (int n = 0; n < 100; n++) ok &= gen_sample(one, 4, &rng) == 2;
    CHECK(ok, "a single finite token is always drawn");
}

/* HF's processors on fixture rows: rep, ngram, temperature, top-k, top-p, in HF's order. */
static void test_warp_fixture(void) {
    char path[4096], *text = NULL;
    size_t n_text;
    snprintf(path, sizeof path, "%s/tests/fixtures/gen/decode.txt", LORAC_SOURCE_DIR);
    lorac_err err = {0};
    int rc = lorac_read_file(path, &text, &n_text, &err);
    CHECK(rc == LORAC_OK, "%s", err.msg);
    if (rc != LORAC_OK) return;
    int V = 0, n_cases = 0;
    sscanf(text, "toy %d", &V);
    CHECK(V > 0 && V <= 4096, "toy V %d", V);
    float *in = malloc(sizeof(float) * (size_t)(V > 0 ? V : 1) * 2), *want = in + (V > 0 ? V : 1);
    float fwork[4096];
    uint64_t uwork[4096];
    uint8_t seen[4096] = {0};
    char *line = strstr(text, "\nwarp ");
    while (V > 0 && V <= 4096 && line) {
        line++;
        char name[128];
        float temp, topp, rep;
        int topk, ngram, n_hist, used;
        int32_t hist[64];
        if (sscanf(line, "warp %127s temp %f topk %d topp %f rep %f ngram %d hist %d%n", name, &temp, &topk, &topp,
                   &rep, &ngram, &n_hist, &used) != 7 || n_hist < 0 || n_hist > 64) {
            CHECK(0, "malformed warp line");
            break;
        }
        char *q = line + used;
        for (int i = 0; i < n_hist; i++) hist[i] = (int32_t)strtol(q, &q, 10);
        q = strstr(q, "\nin ");
        char *r = q ? strstr(q + 1, "\nout ") : NULL;
        if (!q || !r) {
            CHECK(0, "%s: missing in/out rows", name);
            break;
        }
        q += 4;
        r += 5;
        for (int i = 0; i < V; i++) in[i] = strtof(q, &q);
        for (int i = 0; i < V; i++) want[i] = strtof(r, &r);
        if (rep != 1.0f) gen_logits_repetition_penalty(in, V, hist, n_hist, rep, seen);
        gen_logits_no_repeat_ngram(in, V, hist, n_hist, ngram);
        if (temp != 1.0f) gen_logits_temperature(in, V, temp);
        gen_logits_top_k(in, V, topk, fwork);
        gen_logits_top_p(in, V, topp, uwork);
        int same_inf = 1;
        for (int i = 0; i < V; i++) {
            same_inf &= (in[i] == -INFINITY) == (want[i] == -INFINITY);
            if (want[i] == -INFINITY) in[i] = want[i] = 0.0f; // compare the survivors below
        }
        CHECK(same_inf, "%s: the removed tokens differ from HF's", name);
        check_arrays_close(in, want, (size_t)V, 1e-6, 1e-6, name);
        n_cases++;
        line = strstr(r, "\nwarp ");
    }
    CHECK(n_cases >= 8, "%d warp cases", n_cases);
    free(in);
    free(text);
}

int main(void) {
    test_repetition_penalty();
    test_no_repeat_ngram();
    test_no_repeat_word_ngram();
    test_min_new_and_temperature();
    test_top_k();
    test_top_p();
    test_softmax_argmax();
    test_sample();
    test_warp_fixture();
    return check_summary();
}
