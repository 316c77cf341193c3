/* test_beam.c — greedy and beam decoding on a toy model against transformers' generate() and the
 * LoRA paper's beam search (fixture: tests/fixtures/gen/decode.txt from tools/beam_ref.py), plus
 * the decoder's contract with gen_model (slots, reorder, errors) and sampling reproducibility.
 *
 * Tolerances: token sequences must match exactly; scores within 1e-5 absolute (+1e-6 relative):
 * lorac sums log-softmax in double where torch uses float32, a difference of ~1e-7 per step.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "lorac.h"

/* ---- the toy model (see tools/beam_ref.py for the definition) ---- */
static uint32_t mix32(uint32_t x) {
    x ^= x >> 16;
    x *= 0x7feb352du;
    x ^= x >> 15;
    x *= 0x846ca68bu;
    x ^= x >> 16;
    return x;
}

static double toy_u(uint32_t k, uint32_t a, uint32_t b, uint32_t v) {
    uint32_t h = mix32(k * 0x9e3779b9u + mix32(a * 0x85ebca6bu + mix32(b * 0xc2b2ae35u + v)));
    return (double)(h >> 8) / 16777216.0;
}

typedef struct toy_slot {
    int32_t prev, last;
    int n;
} toy_slot;

typedef struct toy_model {
    int V, seed, n_boost;
    double boost;
    int32_t boost_ids[8];
    toy_slot *slots, *tmp;
    int n_slots, max_len;
    long n_steps, n_tokens; /* calls and tokens run, for checks */
    int fail_at_step;       /* > 0: the n-th step call fails (error propagation test) */
} toy_model;

static void toy_row(const toy_model *t, const toy_slot *s, float *out) {
    for (int v = 0; v < t->V; v++) {
        double x = 4.0 * toy_u(2u * t->seed + 1, (uint32_t)(s->last + 1), (uint32_t)(s->prev + 1), (uint32_t)v) - 2.0 +
                   2.0 * toy_u(2u * t->seed + 2, (uint32_t)s->n, 0, (uint32_t)v) - 1.0;
        for (int i = 0; i < t->n_boost; i++)
            if (t->boost_ids[i] == v) x += t->boost * s->n;
        out[v] = (float)x;
    }
}

static int toy_begin(void *ctx, int n_slots, int max_len, lorac_err *err) {
    toy_model *t = ctx;
    free(t->slots);
    free(t->tmp);
    t->slots = calloc((size_t)n_slots, sizeof *t->slots);
    t->tmp = calloc((size_t)n_slots, sizeof *t->tmp);
    if (!t->slots || !t->tmp) return lorac_fail(err, LORAC_ENOMEM, "toy: out of memory");
    t->n_slots = n_slots;
    t->max_len = max_len;
    return LORAC_OK;
}

static int toy_step(void *ctx, const int32_t *tokens, int n_seq, int n_new, float *logits, lorac_err *err) {
    toy_model *t = ctx;
    if (t->fail_at_step > 0 && t->n_steps + 1 == t->fail_at_step)
        return lorac_fail(err, LORAC_EIO, "toy: step %ld fails on purpose", t->n_steps + 1);
    if (n_seq < 1 || n_seq > t->n_slots || n_new < 1) return lorac_fail(err, LORAC_EINVAL, "toy: bad step %d x %d", n_seq, n_new);
    int n0 = t->slots[0].n;
    for (int s = 0; s < n_seq; s++) {
        toy_slot *sl = &t->slots[s];
        if (sl->n != n0) return lorac_fail(err, LORAC_EINVAL, "toy: slots of unequal length");
        if (sl->n + n_new > t->max_len) return lorac_fail(err, LORAC_EINVAL, "toy: slot %d overflows %d", s, t->max_len);
        for (int i = 0; i < n_new; i++) {
            int32_t tok = tokens[(size_t)s * n_new + i];
            if (tok < 0 || tok >= t->V) return lorac_fail(err, LORAC_EINVAL, "toy: token %d", (int)tok);
            sl->prev = sl->n > 0 ? sl->last : -1;
            sl->last = tok;
            sl->n++;
        }
        toy_row(t, sl, logits + (size_t)s * t->V);
    }
    t->n_steps++;
    t->n_tokens += (long)n_seq * n_new;
    return LORAC_OK;
}

static int toy_reorder(void *ctx, const int32_t *src, int n_seq, lorac_err *err) {
    toy_model *t = ctx;
    if (n_seq > t->n_slots) return lorac_fail(err, LORAC_EINVAL, "toy: reorder of %d slots", n_seq);
    for (int i = 0; i < n_seq; i++) {
        if (src[i] < 0 || src[i] >= t->n_slots) return lorac_fail(err, LORAC_EINVAL, "toy: reorder from %d", (int)src[i]);
        t->tmp[i] = t->slots[src[i]];
    }
    memcpy(t->slots, t->tmp, (size_t)n_seq * sizeof *t->slots);
    return LORAC_OK;
}

static gen_model toy_interface(toy_model *t) {
    gen_model m = {t, t->V, 0, toy_begin, toy_step, toy_reorder, NULL, NULL};
    return m;
}

static void toy_free(toy_model *t) {
    free(t->slots);
    free(t->tmp);
    t->slots = t->tmp = NULL;
}

/* ---- fixture reading ---- */
static char *next_word(char **p) {
    char *s = *p;
    while (*s == ' ' || *s == '\n' || *s == '\t') s++;
    if (!*s) return NULL;
    char *w = s;
    while (*s && *s != ' ' && *s != '\n' && *s != '\t') s++;
    if (*s) *s++ = 0;
    *p = s;
    return w;
}

static int expect_word(char **p, const char *want) {
    char *w = next_word(p);
    if (!w || strcmp(w, want) != 0) {
        fprintf(stderr, "fixture: expected '%s', got '%s'\n", want, w ? w : "(end)");
        return 0;
    }
    return 1;
}

static long read_int(char **p) {
    char *w = next_word(p);
    return w ? strtol(w, NULL, 10) : 0;
}

static double read_num(char **p) {
    char *w = next_word(p);
    return w ? strtod(w, NULL) : 0.0;
}

/* Reads "case ..." into cfg, name, prompt; returns 0 on a malformed line. */
static int read_case(char **p, char *name, size_t name_cap, gen_config *cfg, int32_t *prompt, int *n_prompt, int *is_lora) {
    char *w = next_word(p);
    if (!w) return 0;
    snprintf(name, name_cap, "%s", w);
    if (!expect_word(p, "algo")) return 0;
    w = next_word(p);
    *is_lora = w && strcmp(w, "lora") == 0;
    gen_config_default(cfg, -1);
    if (!expect_word(p, "beams")) return 0;
    cfg->num_beams = (int)read_int(p);
    if (!expect_word(p, "lp")) return 0;
    cfg->length_penalty = read_num(p);
    if (!expect_word(p, "early")) return 0;
    cfg->early_stopping = (gen_early)read_int(p);
    if (!expect_word(p, "ngram")) return 0;
    cfg->no_repeat_ngram_size = (int)read_int(p);
    if (!expect_word(p, "rep")) return 0;
    cfg->repetition_penalty = (float)read_num(p);
    if (!expect_word(p, "min_new")) return 0;
    cfg->min_new_tokens = (int)read_int(p);
    if (!expect_word(p, "max_new")) return 0;
    cfg->max_new_tokens = (int)read_int(p);
    if (!expect_word(p, "nret")) return 0;
    cfg->num_return = (int)read_int(p);
    if (!expect_word(p, "eos")) return 0;
    cfg->n_eos = (int)read_int(p);
    if (cfg->n_eos < 0 || cfg->n_eos > GEN_MAX_EOS) return 0;
    for (int i = 0; i < cfg->n_eos; i++) cfg->eos[i] = (int32_t)read_int(p);
    if (!expect_word(p, "prompt")) return 0;
    *n_prompt = (int)read_int(p);
    if (*n_prompt < 1 || *n_prompt > 64) return 0;
    for (int i = 0; i < *n_prompt; i++) prompt[i] = (int32_t)read_int(p);
    cfg->beam_algo = *is_lora ? GEN_BEAM_LORA : GEN_BEAM_HF;
    return 1;
}

static int is_eos(const gen_config *cfg, int32_t t) {
    for (int i = 0; i < cfg->n_eos; i++)
        if (cfg->eos[i] == t) return 1;
    return 0;
}

static void test_fixture(void) {
    char path[4096], *text = NULL;
    size_t n_text;
    snprintf(path, sizeof path, "%s/tests/fixtures/gen/decode.txt", LORAC_SOURCE_DIR);
    lorac_err err = {0};
    int rc = lorac_read_file(path, &text, &n_text, &err);
    CHECK(rc == LORAC_OK, "%s", err.msg);
    if (rc != LORAC_OK) return;
    char *p = text;
    toy_model toy = {0};
    CHECK(expect_word(&p, "toy"), "fixture header");
    toy.V = (int)read_int(&p);
    toy.seed = (int)read_int(&p);
    toy.boost = read_num(&p);
    toy.n_boost = (int)read_int(&p);
    CHECK(toy.V > 0 && toy.n_boost >= 0 && toy.n_boost <= 8, "toy header V=%d n_boost=%d", toy.V, toy.n_boost);
    if (!(toy.V > 0 && toy.n_boost >= 0 && toy.n_boost <= 8)) {
        free(text);
        return;
    }
    for (int i = 0; i < toy.n_boost; i++) toy.boost_ids[i] = (int32_t)read_int(&p);
    gen_model m = toy_interface(&toy);
    int n_cases = 0, n_lora = 0;
    char *w;
    while ((w = next_word(&p)) != NULL) {
        if (strcmp(w, "warp") == 0) break; // the warp cases are test_sampler.c's
        CHECK(strcmp(w, "case") == 0, "fixture: expected 'case', got '%s'", w);
        if (strcmp(w, "case") != 0) break;
        char name[128];
        gen_config cfg;
        int32_t prompt[64];
        int n_prompt = 0, is_lora = 0;
        int ok = read_case(&p, name, sizeof name, &cfg, prompt, &n_prompt, &is_lora);
        CHECK(ok, "fixture: malformed case line");
        if (!ok) break;
        gen_result res;
        toy.n_tokens = 0;
        rc = gen_generate(&m, &cfg, prompt, n_prompt, &res, &err);
        CHECK(rc == LORAC_OK, "%s: %s", name, err.msg);
        for (int h = 0; h < cfg.num_return; h++) {
            CHECK(expect_word(&p, "hyp"), "%s: hyp line", name);
            double want_score = read_num(&p);
            int want_finished = (int)read_int(&p);
            int want_n = (int)read_int(&p);
            int32_t want[256];
            if (want_n < 0 || want_n > 256) want_n = 0;
            for (int i = 0; i < want_n; i++) want[i] = (int32_t)read_int(&p);
            if (rc != LORAC_OK || h >= res.n_hyps) continue;
            const gen_hyp *g = &res.hyps[h];
            CHECK(g->n_tokens == want_n && g->finished == want_finished, "%s hyp %d: %d tokens (finished %d), want %d (%d)",
                  name, h, g->n_tokens, g->finished, want_n, want_finished);
            if (g->n_tokens != want_n) continue;
            // HF beam search shows every finished hypothesis ending in eos[0], whichever eos ended it
            int quirk = !is_lora && cfg.num_beams > 1 && want_finished;
            int same = 1;
            for (int i = 0; i < want_n - quirk; i++) same &= g->tokens[i] == want[i];
            if (quirk) same &= is_eos(&cfg, g->tokens[want_n - 1]) && want[want_n - 1] == cfg.eos[0];
            CHECK(same, "%s hyp %d: tokens differ from the reference", name, h);
            CHECK_CLOSE(g->score, want_score, 1e-5, 1e-6, name);
        }
        if (rc == LORAC_OK) {
            CHECK(res.n_hyps == cfg.num_return, "%s: %d hypotheses", name, res.n_hyps);
            // the decoder feeds one token per beam per step after the prompt: never more
            CHECK(toy.n_tokens <= n_prompt + (long)cfg.num_beams * cfg.max_new_tokens, "%s: %ld tokens run", name, toy.n_tokens);
        }
        gen_result_free(&res);
        n_cases++;
        n_lora += is_lora;
    }
    CHECK(n_cases >= 10 && n_lora >= 3, "fixture holds %d cases (%d lora)", n_cases, n_lora);
    toy_free(&toy);
    free(text);
}

/* A toy with the fixture's parameters, for the contract tests below. */
static toy_model toy_default(void) {
    toy_model t = {0};
    t.V = 48;
    t.seed = 3;
    t.boost = 0.125;
    t.n_boost = 2;
    t.boost_ids[0] = 2;
    t.boost_ids[1] = 7;
    return t;
}

static void test_sampling_reproducible(void) {
    toy_model toy = toy_default();
    gen_model m = toy_interface(&toy);
    gen_config cfg;
    gen_config_default(&cfg, 2);
    cfg.do_sample = 1;
    cfg.temperature = 1.3f;
    cfg.top_k = 20;
    cfg.top_p = 0.95f;
    cfg.max_new_tokens = 30;
    const int32_t prompt[] = {5, 9, 13};
    lorac_err err = {0};
    gen_result a, b, c;
    cfg.seed = 1234;
    CHECK(gen_generate(&m, &cfg, prompt, 3, &a, &err) == LORAC_OK, "%s", err.msg);
    CHECK(gen_generate(&m, &cfg, prompt, 3, &b, &err) == LORAC_OK, "%s", err.msg);
    int same = a.n_hyps == 1 && b.n_hyps == 1 && a.hyps[0].n_tokens == b.hyps[0].n_tokens &&
               memcmp(a.hyps[0].tokens, b.hyps[0].tokens, (size_t)a.hyps[0].n_tokens * sizeof(int32_t)) == 0 &&
               a.hyps[0].score == b.hyps[0].score;
    CHECK(same, "the same seed gives the same sample");
    // different seeds: over several seeds at least one sequence differs from seed 1234's
    int differs = 0;
    for (uint64_t s = 1; s <= 8 && !differs; s++) {
        cfg.seed = s;
        CHECK(gen_generate(&m, &cfg, prompt, 3, &c, &err) == LORAC_OK, "%s", err.msg);
        differs = c.hyps[0].n_tokens != a.hyps[0].n_tokens ||
                  memcmp(c.hyps[0].tokens, a.hyps[0].tokens, (size_t)a.hyps[0].n_tokens * sizeof(int32_t)) != 0;
        gen_result_free(&c);
    }
    CHECK(differs, "other seeds give other samples");
    gen_result_free(&a);
    gen_result_free(&b);

    // top_k = 1 sampling is greedy, whatever the seed and temperature
    gen_config g;
    gen_config_default(&g, 2);
    g.max_new_tokens = 25;
    g.repetition_penalty = 1.4f;
    CHECK(gen_generate(&m, &g, prompt, 3, &a, &err) == LORAC_OK, "%s", err.msg);
    g.do_sample = 1;
    g.top_k = 1;
    g.temperature = 0.6f;
    g.seed = 99;
    CHECK(gen_generate(&m, &g, prompt, 3, &b, &err) == LORAC_OK, "%s", err.msg);
    same = a.hyps[0].n_tokens == b.hyps[0].n_tokens &&
           memcmp(a.hyps[0].tokens, b.hyps[0].tokens, (size_t)a.hyps[0].n_tokens * sizeof(int32_t)) == 0;
    CHECK(same, "top_k=1 sampling equals greedy");
    CHECK(b.hyps[0].score == 0.0, "top_k=1 leaves one token of probability 1: score %g", b.hyps[0].score);
    gen_result_free(&a);
    gen_result_free(&b);
    toy_free(&toy);
}

static void test_errors(void) {
    toy_model toy = toy_default();
    gen_model m = toy_interface(&toy);
    gen_config cfg;
    gen_config_default(&cfg, 2);
    const int32_t prompt[] = {5, 9, 13};
    lorac_err err = {0};
    gen_result r;

    m.max_len = 10; // prompt 3 + 20 new tokens do not fit
    CHECK(gen_generate(&m, &cfg, prompt, 3, &r, &err) == LORAC_EINVAL && r.n_hyps == 0, "too long for the model");
    CHECK(strstr(err.msg, "max_new_tokens") != NULL, "message: %s", err.msg);
    m.max_len = 0;

    const int32_t bad[] = {5, 48};
    CHECK(gen_generate(&m, &cfg, bad, 2, &r, &err) == LORAC_EINVAL, "a prompt token outside the vocabulary");
    CHECK(gen_generate(&m, &cfg, prompt, 0, &r, &err) == LORAC_EINVAL, "an empty prompt");

    gen_config c = cfg;
    c.num_beams = 3;
    c.do_sample = 1;
    CHECK(gen_generate(&m, &c, prompt, 3, &r, &err) == LORAC_EUNSUPPORTED, "beam sampling is not implemented");
    c = cfg;
    c.num_return = 2;
    CHECK(gen_config_check(&c, 48, &err) == LORAC_EINVAL, "greedy returns one hypothesis");
    c.num_beams = 2;
    CHECK(gen_config_check(&c, 48, &err) == LORAC_OK, "beam 2 may return 2: %s", err.msg);
    c.num_return = 3;
    CHECK(gen_config_check(&c, 48, &err) == LORAC_EINVAL, "num_return > num_beams");
    c = cfg;
    c.top_p = 0.0f;
    CHECK(gen_config_check(&c, 48, &err) == LORAC_EINVAL, "top_p 0");
    c = cfg;
    c.eos[0] = 48;
    CHECK(gen_config_check(&c, 48, &err) == LORAC_EINVAL, "eos outside the vocabulary");
    c = cfg;
    c.max_new_tokens = 0;
    CHECK(gen_config_check(&c, 48, &err) == LORAC_EINVAL, "max_new_tokens 0");
    c = cfg;
    c.temperature = 0.0f;
    CHECK(gen_config_check(&c, 48, &err) == LORAC_EINVAL, "temperature 0");

    // a failing model step is reported and nothing leaks, in every decoder
    const gen_beam_algo algos[3] = {GEN_BEAM_HF, GEN_BEAM_HF, GEN_BEAM_LORA};
    const int beams[3] = {1, 4, 4};
    for (int a = 0; a < 3; a++) {
        for (int at = 1; at <= 3; at++) {
            c = cfg;
            c.beam_algo = algos[a];
            c.num_beams = beams[a];
            c.n_eos = 0; // run to max_new_tokens so that step 3 is reached
            toy.fail_at_step = at;
            toy.n_steps = 0;
            int rc = gen_generate(&m, &c, prompt, 3, &r, &err);
            CHECK(rc == LORAC_EIO && r.n_hyps == 0 && r.hyps == NULL, "decoder %d: failure at step %d gives %d", a, at, rc);
            CHECK(strstr(err.msg, "on purpose") != NULL, "message: %s", err.msg);
        }
    }
    toy.fail_at_step = 0;
    toy_free(&toy);
}

/* gen_config_e2e is the paper's setting, and the LoRA decoder runs it on the toy model (10 beams)
 * using one slot per beam and one token per slot per step. */
static void test_e2e_preset(void) {
    gen_config cfg;
    gen_config_e2e(&cfg);
    CHECK(cfg.beam_algo == GEN_BEAM_LORA && cfg.num_beams == 10 && cfg.length_penalty == 0.8 &&
          cfg.no_repeat_ngram_size == 4 && cfg.repetition_penalty == 1.0f && cfg.max_new_tokens == 64 &&
          cfg.n_eos == 2 && cfg.eos[0] == 50256 && cfg.eos[1] == 628 && cfg.min_new_tokens == 0,
          "the E2E preset");
    lorac_err err = {0};
    CHECK(gen_config_check(&cfg, 50257, &err) == LORAC_OK, "%s", err.msg);
    CHECK(gen_config_check(&cfg, 600, &err) == LORAC_EINVAL, "628 is outside a 600-token vocabulary");

    toy_model toy = toy_default();
    gen_model m = toy_interface(&toy);
    cfg.n_eos = 2;
    cfg.eos[0] = 2;
    cfg.eos[1] = 7;
    const int32_t prompt[] = {1, 2, 3, 4};
    gen_result r;
    CHECK(gen_generate(&m, &cfg, prompt, 4, &r, &err) == LORAC_OK, "%s", err.msg);
    CHECK(r.n_hyps == 1 && r.hyps[0].n_tokens >= 1 && r.hyps[0].n_tokens <= 64, "one hypothesis");
    CHECK(toy.n_slots == 10, "10 slots: %d", toy.n_slots);
    if (r.n_hyps == 1) {
        const gen_hyp *h = &r.hyps[0];
        CHECK(h->finished == is_eos(&cfg, h->tokens[h->n_tokens - 1]), "finished flag");
        // no 4-gram repeats in the answer
        int rep = 0;
        for (int i = 0; i + 4 <= h->n_tokens; i++)
            for (int j = i + 1; j + 4 <= h->n_tokens; j++)
                rep |= memcmp(h->tokens + i, h->tokens + j, 4 * sizeof(int32_t)) == 0;
        CHECK(!rep, "a 4-gram repeats");
    }
    gen_result_free(&r);
    toy_free(&toy);
}

/* A bigram model: the logits depend only on the last token (row of a V x V table). */
typedef struct bigram_model {
    int V;
    const float *table; /* (V, V) */
    int32_t last[16];
    int32_t tmp[16];
} bigram_model;

static int bigram_begin(void *ctx, int n_slots, int max_len, lorac_err *err) {
    (void)ctx;
    (void)max_len;
    return n_slots <= 16 ? LORAC_OK : lorac_fail(err, LORAC_EINVAL, "bigram: %d slots", n_slots);
}
static int bigram_step(void *ctx, const int32_t *tokens, int n_seq, int n_new, float *logits, lorac_err *err) {
    bigram_model *b = ctx;
    (void)err;
    for (int s = 0; s < n_seq; s++) {
        b->last[s] = tokens[(size_t)s * n_new + n_new - 1];
        memcpy(logits + (size_t)s * b->V, b->table + (size_t)b->last[s] * b->V, (size_t)b->V * sizeof(float));
    }
    return LORAC_OK;
}
static int bigram_reorder(void *ctx, const int32_t *src, int n_seq, lorac_err *err) {
    bigram_model *b = ctx;
    (void)err;
    for (int i = 0; i < n_seq; i++) b->tmp[i] = b->last[src[i]];
    memcpy(b->last, b->tmp, (size_t)n_seq * sizeof(int32_t));
    return LORAC_OK;
}

/* The paper's decoder with a negative length penalty: a hypothesis found at step 0 must not end
 * the search while a live beam can still beat it at the next length (hand-computed case).
 * Tokens: 0 = eos, 1 = A, 2 = B, 3 = the prompt. After the prompt: p(A) 0.7, p(eos) 0.2, p(B) 0.1.
 * After A: p(eos) 0.9. With lp = -1 a score is sum * len: [eos] scores log 0.2 = -1.609 at step 0;
 * [A, eos] scores 2 * (log 0.7 + log 0.9) = -0.924 and wins. */
static void test_lora_bound(void) {
    const float L = -30.0f; // ~ probability 0
    float table[16] = {
        L, L, L, L,
        logf(0.9f), logf(0.05f), logf(0.05f), L,
        logf(0.5f), logf(0.25f), logf(0.25f), L,
        logf(0.2f), logf(0.7f), logf(0.1f), L,
    };
    bigram_model bm = {.V = 4, .table = table};
    gen_model m = {&bm, 4, 0, bigram_begin, bigram_step, bigram_reorder, NULL, NULL};
    gen_config cfg;
    gen_config_default(&cfg, 0);
    cfg.beam_algo = GEN_BEAM_LORA;
    cfg.num_beams = 2;
    cfg.length_penalty = -1.0;
    cfg.max_new_tokens = 10;
    const int32_t prompt[1] = {3};
    gen_result r;
    lorac_err err = {0};
    CHECK(gen_generate(&m, &cfg, prompt, 1, &r, &err) == LORAC_OK, "%s", err.msg);
    if (r.n_hyps == 1) {
        const gen_hyp *h = &r.hyps[0];
        CHECK(h->n_tokens == 2 && h->tokens[0] == 1 && h->tokens[1] == 0 && h->finished, "[A, eos] wins (%d tokens)",
              h->n_tokens);
        CHECK_CLOSE(h->score, 2.0 * (log(0.7) + log(0.9)), 1e-5, 0.0, "lp -1 score");
    }
    gen_result_free(&r);
    // HF's decoder on the same model: both eos candidates rank within the top 2, so both are
    // hypotheses; sum / len^lp with lp = -1 is sum * len, and [A, eos] again wins
    cfg.beam_algo = GEN_BEAM_HF;
    cfg.num_return = 2;
    CHECK(gen_generate(&m, &cfg, prompt, 1, &r, &err) == LORAC_OK, "%s", err.msg);
    if (r.n_hyps == 2) {
        CHECK(r.hyps[0].n_tokens == 2 && r.hyps[0].tokens[0] == 1 && r.hyps[0].tokens[1] == 0, "HF: [A, eos] first");
        CHECK_CLOSE(r.hyps[0].score, 2.0 * (log(0.7) + log(0.9)), 1e-5, 0.0, "HF: first score");
        CHECK(r.hyps[1].n_tokens == 1 && r.hyps[1].tokens[0] == 0, "HF: [eos] second");
        CHECK_CLOSE(r.hyps[1].score, log(0.2), 1e-5, 0.0, "HF: second score");
    }
    gen_result_free(&r);
}

int main(void) {
    test_fixture();
    test_sampling_reproducible();
    test_errors();
    test_e2e_preset();
    test_lora_bound();
    return check_summary();
}
