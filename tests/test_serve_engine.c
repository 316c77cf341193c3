/* test_serve_engine.c — the serving engine (lorac/serve.h) without HTTP: 9 greedy requests over the
 * base, two adapters and a weighted sum of both, submitted at once to an engine of 3 slots with
 * prefill chunks of 4 tokens (so they queue, share batched steps at different lengths, and reuse
 * slots), each give exactly the text gen_generate gives for that prompt alone with that adapter
 * activated (unmerged). Then: an unknown adapter (LORAC_ENOTFOUND), a prompt plus max_tokens over
 * the context (LORAC_EINVAL), a request cancelled at once (freed, no leak under ASan), an adapter
 * unloaded while its requests run (they finish with it; a new request is refused; loaded again
 * under another name it gives the same text), a stop string, and a drain. The model is a random
 * Llama (vocabulary 401) with the ChatML test tokenizer. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "fixture.h"
#include "lorac/serve.h"

#define TOK LORAC_SOURCE_DIR "/tests/fixtures/tok/bl_smollm"
enum { NP = 3, NA = 3, MAXT = 12 }; /* adapters: 0, 1 and 0 + 0.5·1 */

static const char *prompts[NP] = {"hello there", "once upon a time in a land far away", "a b c"};
static char dirs[2][96];

/* The adapter at dir i over a model of cfg: fresh LoRA layers given random deltas, saved as PEFT. */
static int make_adapter(const model_config *cfg, int i) {
    lorac_err err = {0};
    model *m = NULL;
    model_lora_opts o = fx_lora_opts(2 + i, 8.0f, 0.0f, i ? "all-linear" : "q_proj,v_proj");
    int rc = model_random(cfg, 3, &m, &err);
    if (!rc) rc = model_add_lora(m, &o, 20 + (uint64_t)i, &err);
    if (!rc && !fx_lora_randomize(m, 0.3f, 30 + (uint64_t)i)) rc = 1;
    if (!rc) rc = model_save_adapter(m, dirs[i], &err);
    model_free(m);
    CHECK(rc == 0, "adapter %d: %s", i, err.msg);
    return rc;
}

static int32_t *encode(const model *m, const char *text, int *n) {
    int32_t *ids = NULL;
    size_t k = 0;
    lorac_err err = {0};
    CHECK(model_encode(m, text, strlen(text), 0, &ids, &k, &err) == 0, "encode: %s", err.msg);
    *n = (int)k;
    return ids;
}

/* What gen_generate decodes greedily for prompt p with adapter a (-1: base) activated unmerged. */
static char *reference(model *m, model_adapter_set *set, int a, int p) {
    lorac_err err = {0};
    gen_config gc;
    gen_config_default(&gc, -1);
    gen_model_eos(m, &gc);
    gc.max_new_tokens = MAXT;
    int n = 0;
    int32_t *ids = encode(m, prompts[p], &n);
    model_session *s = NULL;
    gen_model gm;
    gen_result res = {0};
    char *text = NULL;
    size_t len = 0;
    int rc = model_adapter_set_activate(set, a, 0, &err);
    if (!rc) rc = model_session_new(m, &s, &err);
    if (!rc) gen_model_session(&gm, m, s), rc = gen_generate(&gm, &gc, ids, n, &res, &err);
    if (!rc) {
        const gen_hyp *h = &res.hyps[0];
        rc = model_decode(m, h->tokens, (size_t)(h->n_tokens - h->finished), 1, &text, &len, &err);
    }
    CHECK(rc == 0, "reference %d/%d: %s", a, p, err.msg);
    model_adapter_set_activate(set, -1, 0, NULL);
    gen_result_free(&res);
    model_session_free(s);
    free(ids);
    return text;
}

/* The whole text of a request, read as a stream would read it. */
static char *read_all(serve_req *r, const char **finish) {
    char *all = calloc(1, 1), *d = NULL;
    size_t n = 0, dl = 0;
    lorac_err err = {0};
    *finish = NULL;
    while (!*finish && serve_req_read(r, &d, &dl, finish, &err) == 0) {
        all = realloc(all, n + dl + 1);
        memcpy(all + n, d, dl + 1);
        n += dl;
        free(d);
    }
    CHECK(*finish && strcmp(*finish, "error"), "request ended: %s", err.msg);
    return all;
}

static serve_req *submit(serve_engine *e, int a, int p, int max_tokens, lorac_err *err) {
    static const serve_lora adapters[NA][2] = {{{"a0", 1.0f}}, {{"a1", 1.0f}}, {{"a0", 1.0f}, {"a1", 0.5f}}};
    int n = 0;
    int32_t *ids = encode(serve_engine_model(e), prompts[p], &n);
    serve_params sp;
    serve_params_init(&sp);
    sp.temperature = 0.0f;
    sp.max_tokens = max_tokens;
    serve_req *r = NULL;
    int rc = serve_submit(e, a >= 0 ? adapters[a] : NULL, a < 0 ? 0 : a == 2 ? 2 : 1, ids, n, &sp, &r, err);
    free(ids);
    return rc ? NULL : r;
}

static void engine_checks(model *m, char *ref[NA + 1][NP]) {
    lorac_err err = {0};
    serve_opts o;
    serve_opts_init(&o);
    o.max_batch = 3, o.ctx = 48, o.prefill_chunk = 4, o.threads = 1;
    serve_engine *e = NULL;
    CHECK(serve_engine_new(m, &o, &e, &err) == 0, "engine: %s", err.msg);
    if (!e) return;
    CHECK(serve_adapter_load(e, "a0", dirs[0], &err) == 0 && serve_adapter_load(e, "a1", dirs[1], &err) == 0, "load: %s", err.msg);
    serve_req *r[(NA + 1) * NP];
    for (int i = 0; i < (NA + 1) * NP; i++) r[i] = submit(e, i / NP - 1, i % NP, MAXT, &err);
    for (int i = 0; i < (NA + 1) * NP; i++) {
        const char *fin;
        char *got = r[i] ? read_all(r[i], &fin) : NULL;
        CHECK(got && !strcmp(got, ref[i / NP][i % NP]), "request %d (adapter %d, prompt %d): '%s' != '%s'", i, i / NP - 1, i % NP,
              got ? got : "(refused)", ref[i / NP][i % NP]);
        free(got);
        if (r[i]) serve_req_release(r[i]);
    }
    serve_stats st;
    serve_engine_stats(e, &st);
    CHECK(st.max_decode_seqs >= 2, "requests shared a decode step (at most %lld)", st.max_decode_seqs);
    /* refusals */
    CHECK(!submit(e, -1, 0, o.ctx, &err) && err.code == LORAC_EINVAL && strstr(err.msg, "context"), "too long: %s", err.msg);
    serve_lora nope = {"nope", 1.0f};
    serve_params sp;
    serve_params_init(&sp);
    int32_t one = 5;
    serve_req *x = NULL;
    CHECK(serve_submit(e, &nope, 1, &one, 1, &sp, &x, &err) == LORAC_ENOTFOUND, "unknown adapter: %s", err.msg);
    /* cancelled at once */
    if ((x = submit(e, 0, 1, MAXT, &err))) serve_req_cancel(x), serve_req_release(x);
    /* unloaded while its requests run */
    serve_req *u[3];
    for (int i = 0; i < 3; i++) u[i] = submit(e, 0, i, MAXT, &err);
    CHECK(serve_adapter_unload(e, "a0", &err) == 0, "unload: %s", err.msg);
    CHECK(!submit(e, 0, 0, MAXT, &err) && err.code == LORAC_ENOTFOUND, "a0 after unload: %s", err.msg);
    for (int i = 0; i < 3; i++) {
        const char *fin;
        char *got = u[i] ? read_all(u[i], &fin) : NULL;
        CHECK(got && !strcmp(got, ref[1][i]), "a0 request %d across its unload: '%s'", i, got ? got : "(refused)");
        free(got);
        if (u[i]) serve_req_release(u[i]);
    }
    CHECK(serve_adapter_load(e, "again", dirs[0], &err) == 0, "load again: %s", err.msg);
    serve_lora again = {"again", 1.0f};
    int n = 0;
    int32_t *ids = encode(m, prompts[2], &n);
    sp.temperature = 0.0f, sp.max_tokens = MAXT;
    const char *fin = NULL;
    char *got = NULL;
    if (serve_submit(e, &again, 1, ids, n, &sp, &x, &err) == 0) got = read_all(x, &fin), serve_req_release(x);
    CHECK(got && !strcmp(got, ref[1][2]), "a0 loaded again: '%s'", got ? got : err.msg);
    /* a stop string: the text before its first occurrence */
    if (got && strlen(got) > 3) {
        snprintf(sp.stop[0], sizeof sp.stop[0], "%.2s", got + 2);
        sp.n_stop = 1;
        char *cut = NULL;
        if (serve_submit(e, &again, 1, ids, n, &sp, &x, &err) == 0) cut = read_all(x, &fin), serve_req_release(x);
        CHECK(cut && strlen(cut) <= 2 && !strncmp(cut, got, strlen(cut)) && fin && !strcmp(fin, "stop"), "stop '%s': '%s'",
              sp.stop[0], cut ? cut : err.msg);
        free(cut);
    }
    free(got);
    free(ids);
    char **names = NULL;
    int nn = 0;
    CHECK(serve_adapter_names(e, &names, &nn) == 0 && nn == 2, "2 adapters listed, %d", nn);
    serve_names_free(names, nn);
    serve_engine_drain(e);
    CHECK(!submit(e, -1, 0, 4, &err) && err.code == LORAC_ECLOSED, "after the drain: %s", err.msg);
    serve_engine_free(e);
}

int main(void) {
    char tmp[] = "/tmp/lorac_serveXXXXXX";
    if (!mkdtemp(tmp)) {
        CHECK(0, "mkdtemp");
        return check_summary();
    }
    for (int i = 0; i < 2; i++) snprintf(dirs[i], sizeof dirs[i], "%s/a%d", tmp, i);
    lorac_err err = {0};
    model_config cfg;
    CHECK(model_config_default("llama", &cfg, &err) == 0, "llama config: %s", err.msg);
    cfg.n_layer = 2, cfg.n_embd = 32, cfg.n_head = 4, cfg.n_kv_head = 2, cfg.head_dim = 8, cfg.n_inner = 64;
    cfg.n_positions = 64, cfg.vocab_size = 401;
    model *m = NULL;
    model_adapter_set *set = NULL;
    peft_adapter *pa[NA] = {0};
    int rc = make_adapter(&cfg, 0) || make_adapter(&cfg, 1) || model_random(&cfg, 3, &m, &err) || model_load_tokenizer(m, TOK, &err);
    const char *specs[2] = {dirs[0], NULL};
    char spec1[120];
    snprintf(spec1, sizeof spec1, "%s:0.5", dirs[1]);
    specs[1] = spec1;
    if (!rc) rc = model_adapter_set_new(m, &set, &err);
    for (int i = 0; !rc && i < NA; i++) {
        rc = i < 2 ? peft_adapter_read(dirs[i], &pa[i], NULL, 0, &err) : peft_adapters_load_weighted(specs, 2, &pa[i], NULL, 0, &err);
        if (!rc) rc = model_adapter_set_add(set, pa[i], NULL, &err);
    }
    CHECK(rc == 0, "setup: %s", err.msg);
    char *ref[NA + 1][NP] = {{0}};
    for (int a = -1; !rc && a < NA; a++)
        for (int p = 0; p < NP; p++) ref[a + 1][p] = reference(m, set, a, p);
    model_adapter_set_free(set);
    if (!rc) {
        CHECK(strcmp(ref[0][0], ref[1][0]) || strcmp(ref[0][1], ref[1][1]), "adapter 0 changes the text");
        for (int a = 0; a <= NA; a++) fprintf(stderr, "reference, adapter %d, prompt 1: %s\n", a - 1, ref[a][1]);
        engine_checks(m, ref);
    }
    for (int a = 0; a <= NA; a++)
        for (int p = 0; p < NP; p++) free(ref[a][p]);
    for (int i = 0; i < NA; i++) peft_adapter_free(pa[i]);
    model_free(m);
    for (int i = 0; i < 2; i++) fx_rm_adapter(dirs[i]);
    rmdir(tmp);
    return check_summary();
}
