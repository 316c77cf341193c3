/* test_beam_batch.c — gen_generate_many (several requests' beams in one model step, continuous
 * batching) gives, for every request, the hypotheses gen_generate gives for it alone: the same
 * tokens, the same finished flags and the same scores, bit for bit, for both beam searches
 * (GEN_BEAM_LORA, GEN_BEAM_HF with 2 returned), in request order.
 *   tiny     test_llama_gguf's tiny Llama in Q4_1 and Q8_0 (direct int8 products: batched), 9
 *            prompts of 1..9 tokens (a one-token prompt is prefilled with the decode products), eos
 *            ids the model emits (requests end at different steps), batches of 2, 3 and 9; and a
 *            random fp32 GPT-2 and Llama, whose sgemm bits change with the row count: they stay one
 *            request at a time (model_session_rows_exact) and give the same results too;
 *   SmolLM2  Q4_1 (int8 decode products), base and with a random LoRA (unmerged: its fp32 low-rank
 *            path row by row in a decode step), the E2E preset on 5 E2E contexts, a batch of 4
 *            (3 contexts, 8 tokens at the generic level and under ASan; skipped with a message when
 *            the file is absent).
 * A counting wrapper checks that the batched runs really put several requests in one step. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "fixture.h"
#include "lorac.h"

#if defined(__SANITIZE_ADDRESS__)
#define SANITIZED 1
#else
#define SANITIZED 0
#endif

/* the session's gen_model, counting the largest step */
typedef struct counting {
    gen_model inner;
    int max_rows, steps;
} counting;

static int c_begin(void *ctx, int n_slots, int max_len, lorac_err *err) {
    counting *c = ctx;
    return c->inner.begin(c->inner.ctx, n_slots, max_len, err);
}
static int c_step(void *ctx, const int32_t *tokens, int n_seq, int n_new, float *logits, lorac_err *err) {
    counting *c = ctx;
    c->steps++;
    if (n_new == 1 && n_seq > c->max_rows) c->max_rows = n_seq;
    return c->inner.step(c->inner.ctx, tokens, n_seq, n_new, logits, err);
}
static int c_reorder(void *ctx, const int32_t *src, int n_seq, lorac_err *err) {
    counting *c = ctx;
    return c->inner.reorder(c->inner.ctx, src, n_seq, err);
}
static int c_step_slots(void *ctx, const int *slots, const int32_t *tokens, int n_seq, int n_new, float *logits,
                        lorac_err *err) {
    counting *c = ctx;
    c->steps++;
    if (n_new == 1 && n_seq > c->max_rows) c->max_rows = n_seq;
    return c->inner.step_slots(c->inner.ctx, slots, tokens, n_seq, n_new, logits, err);
}
static int c_reset_slot(void *ctx, int slot, lorac_err *err) {
    counting *c = ctx;
    return c->inner.reset_slot(c->inner.ctx, slot, err);
}

typedef struct collected {
    gen_result *res;
    int n, next, out_of_order;
} collected;

static int collect(void *user, int i, gen_result *r, lorac_err *err) {
    collected *c = user;
    (void)err;
    if (i != c->next++ || i >= c->n) {
        c->out_of_order = 1;
        return LORAC_OK;
    }
    c->res[i] = *r; /* moved out */
    r->hyps = NULL;
    r->n_hyps = 0;
    return LORAC_OK;
}

static int same_result(const gen_result *a, const gen_result *b) {
    if (a->n_hyps != b->n_hyps) return 0;
    for (int j = 0; j < a->n_hyps; j++) {
        const gen_hyp *x = &a->hyps[j], *y = &b->hyps[j];
        if (x->n_tokens != y->n_tokens || x->finished != y->finished || memcmp(&x->score, &y->score, sizeof x->score) ||
            memcmp(x->tokens, y->tokens, (size_t)x->n_tokens * sizeof *x->tokens))
            return 0;
    }
    return 1;
}

/* Every request alone (gen_generate), then all of them with `batch` in flight: the same results. */
static void check_batched(model *m, const gen_config *cfg, const int32_t *const *prompts, const int *n_prompts, int n,
                          int batch, int vary, const char *what) {
    model_session *s = NULL;
    lorac_err err = {0};
    gen_result *alone = calloc((size_t)n, sizeof *alone), *got = calloc((size_t)n, sizeof *got);
    int rc = model_session_new(m, &s, &err);
    CHECK(rc == 0 && alone && got, "%s: session: %s", what, err.msg);
    if (rc || !alone || !got) goto done;
    gen_model gm;
    gen_model_session(&gm, m, s);
    unsigned lengths = 0;
    int finished = 0, unfinished = 0;
    for (int i = 0; i < n && !rc; i++) {
        rc = gen_generate(&gm, cfg, prompts[i], n_prompts[i], &alone[i], &err);
        CHECK(rc == 0, "%s: alone %d: %s", what, i, err.msg);
        if (rc) break;
        lengths |= 1u << (alone[i].hyps[0].n_tokens & 31);
        finished += alone[i].hyps[0].finished, unfinished += !alone[i].hyps[0].finished;
    }
    if (rc) goto done;
    /* the case is worth checking: the requests end at different steps */
    CHECK(!vary || __builtin_popcount(lengths) >= 2, "%s: every request gives the same length", what);
    int exact = model_session_rows_exact(s);
    counting cm = {gm, 0, 0};
    gen_model wrapped = {&cm, gm.vocab, gm.max_len, c_begin, c_step, c_reorder, exact ? c_step_slots : NULL,
                         exact ? c_reset_slot : NULL};
    CHECK(!gm.step_slots == !exact && !gm.reset_slot == !exact, "%s: gen_model_session batches %s", what,
          exact ? "rows that are exact" : "rows whose bits change with the row count");
    collected col = {got, n, 0, 0};
    rc = gen_generate_many(&wrapped, cfg, prompts, n_prompts, n, batch, collect, &col, &err);
    CHECK(rc == 0, "%s: batch %d: %s", what, batch, err.msg);
    CHECK(!col.out_of_order && col.next == n, "%s: batch %d: %d results, in order %d", what, batch, col.next, !col.out_of_order);
    int nb = cfg->num_beams, want = (exact ? (batch < n ? batch : n) : 1) * nb;
    CHECK(cm.max_rows == want, "%s: batch %d: at most %d rows in a step, not %d", what, batch, cm.max_rows, want);
    for (int i = 0; i < n && !rc; i++)
        CHECK(same_result(&alone[i], &got[i]), "%s: batch %d: request %d (%d prompt tokens) differs from alone", what, batch,
              i, n_prompts[i]);
    if (getenv("LORAC_TEST_VERBOSE"))
        printf("%s: batch %d (exact rows %d): %d requests, %d finished, %d cut, %d steps, lengths %x\n", what, batch, exact, n,
               finished, unfinished, cm.steps, lengths);
done:
    for (int i = 0; i < n; i++) gen_result_free(&alone[i]), gen_result_free(&got[i]);
    free(alone);
    free(got);
    model_session_free(s);
}

/* 9 prompts of 1..9 tokens, eos ids V-2 and V-1, both beam searches, batches of 2, 3 and 9 */
static void check_tiny(model *m, const char *name) {
    enum { N = 9 };
    const int V = model_cfg(m)->vocab_size;
    int32_t buf[N][N];
    const int32_t *prompts[N];
    int lens[N];
    for (int i = 0; i < N; i++) {
        lens[i] = (i * 5) % N + 1; /* 1..9, not in order */
        for (int t = 0; t < lens[i]; t++) buf[i][t] = (int32_t)((i * 7 + t * 3) % (V - 2));
        prompts[i] = buf[i];
    }
    gen_config cfg;
    gen_config_e2e(&cfg);
    cfg.num_beams = 4;
    cfg.max_new_tokens = 12;
    cfg.no_repeat_ngram_size = 2;
    /* end-of-text ids the model does emit (so that requests end at different steps): the 2nd and
     * 4th tokens request 0 generates greedily with no eos */
    cfg.n_eos = 0;
    cfg.eos[0] = V - 2, cfg.eos[1] = V - 1;
    {
        gen_config g;
        gen_config_default(&g, -1);
        g.max_new_tokens = 8;
        model_session *s = NULL;
        gen_result r = {0};
        gen_model gm;
        lorac_err err = {0};
        int rc = model_session_new(m, &s, &err);
        if (!rc) gen_model_session(&gm, m, s), rc = gen_generate(&gm, &g, prompts[0], lens[0], &r, &err);
        CHECK(rc == 0 && r.n_hyps == 1 && r.hyps[0].n_tokens == 8, "%s: greedy: %s", name, err.msg);
        if (!rc) cfg.eos[0] = r.hyps[0].tokens[1], cfg.eos[1] = r.hyps[0].tokens[3];
        cfg.n_eos = cfg.eos[0] == cfg.eos[1] ? 1 : 2;
        gen_result_free(&r);
        model_session_free(s);
    }
    gen_config hf = cfg;
    hf.beam_algo = GEN_BEAM_HF;
    hf.num_return = 2;
    hf.length_penalty = 1.0;
    char what[96];
    const int batches[3] = {2, 3, 9};
    for (int k = 0; k < 3; k++) {
        snprintf(what, sizeof what, "%s lora-beam", name);
        check_batched(m, &cfg, prompts, lens, N, batches[k], 1, what);
        snprintf(what, sizeof what, "%s hf-beam", name);
        check_batched(m, &hf, prompts, lens, N, batches[k], 1, what);
    }
}

/* The tiny quantized Llama of test_llama_gguf (Q4_1, Q8_0: direct int8 products): batched; a random
 * fp32 GPT-2 and Llama (sgemm products, whose bits change with the row count): gen_model_session
 * keeps them one request at a time, and the results are the same too. */
static void test_tiny(void) {
    static const char *files[] = {"gqa.q4_1.gguf", "gqa.q8_0.gguf"};
    lorac_err err = {0};
    for (int f = 0; f < 2; f++) {
        char path[512];
        snprintf(path, sizeof path, LORAC_SOURCE_DIR "/tests/fixtures/llama/gguf/%s", files[f]);
        model *m = NULL;
        if (model_load(path, &FX_NO_TOK, &m, &err)) {
            CHECK(0, "%s", err.msg);
            continue;
        }
        check_tiny(m, files[f]);
        model_free(m);
    }
    const char *families[2] = {"gpt2", "llama"};
    for (int f = 0; f < 2; f++) {
        model_config c = fx_gpt2_config(2, 32, 2, 64, 64, 24);
        if (f == 1) {
            CHECK(model_config_default("llama", &c, &err) == 0, "llama config: %s", err.msg);
            c.n_layer = 2, c.n_embd = 32, c.n_head = 4, c.n_kv_head = 2, c.head_dim = 8, c.n_inner = 48;
            c.n_positions = 64, c.vocab_size = 24, c.eos_token_id = c.bos_token_id = 23;
        }
        model *m = NULL;
        if (model_random(&c, 7, &m, &err)) {
            CHECK(0, "%s: %s", families[f], err.msg);
            continue;
        }
        char what[64];
        snprintf(what, sizeof what, "random fp32 %s", families[f]);
        check_tiny(m, what);
        model_free(m);
    }
}

/* SmolLM2 Q4_1: the E2E preset on E2E contexts, base and with a random LoRA */
static void test_smollm2(void) {
    char path[4096];
    fx_smollm2_path(path, sizeof path);
    FILE *f = fopen(path, "rb");
    if (!f) {
        printf("SKIP the SmolLM2 part: %s is absent (tools/fetch_smollm2.sh)\n", path);
        return;
    }
    fclose(f);
    static const char *ctx[] = {
        "name : Blue Spice | Type : coffee shop | area : city centre",
        "name : The Vaults | Type : pub | price : more than £ 30 | customer rating : 5 out of 5 | near : Café Adriatic",
        "name : Cocum | Type : coffee shop",
        "name : The Punter | Type : restaurant | food : Indian | price : £ 20 - 25 | family friendly : yes",
        "name : Wildwood | Type : pub | food : Fast food",
        "name : Zizzi | Type : pub | food : Chinese | customer rating : low | family friendly : no | near : The Sorrento",
    };
    /* fewer and shorter in the sanitizer build (-O1 and ASan) and at the generic kernel level (plain
     * C, ~3x slower; its bits are avx2's and avx512's, test_qdot) */
    const int small = SANITIZED || lorac_isa_active() == LORAC_ISA_GENERIC, n = small ? 3 : 5;
    model *m = NULL;
    lorac_err err = {0};
    if (model_load(path, NULL, &m, &err)) {
        CHECK(0, "%s", err.msg);
        return;
    }
    int32_t *ids[6] = {0};
    int lens[6];
    for (int i = 0; i < n; i++) {
        size_t k = 0;
        CHECK(model_encode(m, ctx[i], strlen(ctx[i]), 0, &ids[i], &k, &err) == 0, "%s", err.msg);
        lens[i] = (int)k;
    }
    gen_config cfg;
    gen_model_e2e(m, &cfg);
    /* the base model continues the context: "." and " |" end it too, at different steps */
    for (int e = 0; e < 2 && cfg.n_eos < GEN_MAX_EOS; e++) {
        int32_t *t = NULL;
        size_t k = 0;
        if (!model_encode(m, e ? " |" : ".", e ? 2 : 1, 0, &t, &k, &err) && k == 1) cfg.eos[cfg.n_eos++] = t[0];
        free(t);
    }
    cfg.max_new_tokens = small ? 8 : 20;
    CHECK(model_train_mode(m, 0, &err) == 0, "%s", err.msg);
    check_batched(m, &cfg, (const int32_t *const *)ids, lens, n, 4, 1, "SmolLM2 Q4_1 e2e");
    model_lora_opts o = fx_lora_opts(4, 8.0f, 0.0f, "q_proj,v_proj");
    CHECK(model_add_lora(m, &o, 3, &err) == 0, "%s", err.msg);
    CHECK(fx_lora_randomize(m, 0.02f, 5) > 0, "random LoRA");
    CHECK(model_train_mode(m, 0, &err) == 0, "%s", err.msg);
    check_batched(m, &cfg, (const int32_t *const *)ids, lens, n, 4, 1, "SmolLM2 Q4_1 + LoRA e2e");
    for (int i = 0; i < n; i++) free(ids[i]);
    model_free(m);
}

int main(void) {
    test_tiny();
    test_smollm2();
    return check_summary();
}
