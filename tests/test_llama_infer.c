/* The Llama KV-cache session (model_session) against the full forward and against transformers'
 * generate(), on the tiny fixtures of tools/llama_ref.py with their PEFT adapters:
 *   - a prefill of B slots gives the full forward's last-position logits; token-by-token steps give
 *     every position's logits (LoRA unmerged and merged); tolerance 2e-5 abs + 1e-4 rel;
 *   - greedy, beam search (3 beams) and beam search with an eos (4 beams, hypotheses finish and
 *     beams are reordered) through gen_generate equal generate()'s tokens
 *     (tests/fixtures/llama_gen/, from tools/llama_gen_ref.py);
 *   - bad steps (too many tokens, an id outside the vocabulary) fail with a message;
 *   - SmolLM2-135M-Instruct (Q4_1 GGUF, when cached by tools/fetch_smollm2.sh): the chat prompt's ids
 *     and the 32 greedy tokens equal tests/fixtures/llama_gen/smollm2_greedy.txt (transformers on
 *     the dequantized weights, tools/smollm2_greedy_ref.py; with fp32 products, qmat_set_direct(0));
 *     chat training data (ft_load_data): the
 *     ids are the tokens of the whole ChatML text and exactly the assistant turns are scored. */
#include "check.h"
#include "fixture.h"

#include <unistd.h>

#define FIX LORAC_SOURCE_DIR "/tests/fixtures"

/* Session logits against the full forward's for the fixture's input_ids, in the current mode. */
static void check_cache_vs_forward(model *m, const char *name, const int32_t *ids, int B, int T, const char *mode) {
    lorac_err err = {0};
    int V = model_cfg(m)->vocab_size;
    model_acts *a = NULL;
    int rc = model_acts_alloc(m, B, T, &a, &err);
    if (!rc) rc = fx_lm_forward(m, a, ids, NULL, B, T, 0.0f, 0, NULL, NULL, NULL, &err);
    CHECK(rc == 0, "%s forward: %s", name, err.msg);
    if (rc) {
        model_acts_free(a);
        return;
    }
    const float *full = model_acts_logits(a);
    model_session *s = NULL;
    float *logits = malloc((size_t)B * V * sizeof(float)), *want = malloc((size_t)B * V * sizeof(float));
    char what[160];
    rc = model_session_new(m, &s, &err);
    /* one prefill of all B rows as B slots */
    if (!rc) rc = model_session_begin(s, B, T, &err);
    if (!rc) rc = model_session_step(s, ids, B, T, logits, &err);
    CHECK(rc == 0, "%s prefill: %s", name, err.msg);
    for (int b = 0; b < B; b++) memcpy(want + (size_t)b * V, full + ((size_t)b * T + T - 1) * V, V * sizeof(float));
    snprintf(what, sizeof what, "%s %s: prefill logits", name, mode);
    if (!rc) check_arrays_close(logits, want, (size_t)B * V, 2e-5, 1e-4, what);
    CHECK(model_session_len(s) == T, "%s session length %d", name, model_session_len(s));
    /* row 0 one token at a time: every position's logits */
    if (!rc) rc = model_session_begin(s, 1, T, &err);
    for (int t = 0; !rc && t < T; t++) {
        rc = model_session_step(s, ids + t, 1, 1, logits, &err);
        snprintf(what, sizeof what, "%s %s: step %d logits", name, mode, t);
        if (!rc) check_arrays_close(logits, full + (size_t)t * V, V, 2e-5, 1e-4, what);
    }
    CHECK(rc == 0, "%s steps: %s", name, err.msg);
    /* two slots, prefill of 3 then a reorder {1,1} and one step: slot 0 continues row 1 */
    if (!rc && T >= 4 && B >= 2) {
        int32_t pre[6] = {ids[0], ids[1], ids[2], ids[T], ids[T + 1], ids[T + 2]}, src[2] = {1, 1};
        int32_t next[2] = {ids[T + 3], ids[T + 3]};
        rc = model_session_begin(s, 2, T, &err);
        if (!rc) rc = model_session_step(s, pre, 2, 3, logits, &err);
        if (!rc) rc = model_session_reorder(s, src, 2, &err);
        if (!rc) rc = model_session_step(s, next, 2, 1, logits, &err);
        CHECK(rc == 0, "%s reorder: %s", name, err.msg);
        snprintf(what, sizeof what, "%s %s: after reorder", name, mode);
        if (!rc) {
            check_arrays_close(logits, full + ((size_t)T + 3) * V, V, 2e-5, 1e-4, what);
            check_arrays_close(logits + V, full + ((size_t)T + 3) * V, V, 2e-5, 1e-4, what);
        }
    }
    /* bad steps */
    if (!rc) {
        int32_t bad = V;
        rc = model_session_begin(s, 1, 2, &err);
        CHECK(rc == 0, "begin: %s", err.msg);
        CHECK(model_session_step(s, &bad, 1, 1, logits, &err) != 0 && strstr(err.msg, "vocabulary"), "bad id: %s", err.msg);
        CHECK(model_session_step(s, ids, 1, 3, logits, &err) != 0 && strstr(err.msg, "exceed"), "overflow: %s", err.msg);
        CHECK(model_session_begin(s, 1, model_max_len(m) + 1, &err) != 0, "begin beyond max positions");
    }
    model_session_free(s);
    free(logits);
    free(want);
    model_acts_free(a);
}

/* gen_generate through the session against generate()'s new tokens. */
static void check_decode(model *m, const char *name, const st_file *ref) {
    lorac_err err = {0};
    size_t np, ng, nb, ne, nbe;
    int32_t *prompt = fx_i64(ref, "prompt", &np), *greedy = fx_i64(ref, "greedy", &ng);
    int32_t *beam = fx_i64(ref, "beam", &nb), *eos = fx_i64(ref, "beam_eos", &ne);
    int32_t *beam_eos = fx_i64(ref, "beam_eos_out", &nbe);
    model_session *s = NULL;
    int rc = model_session_new(m, &s, &err);
    CHECK(rc == 0, "session: %s", err.msg);
    gen_model gm;
    gen_model_session(&gm, m, s);
    struct {
        const char *what;
        int beams;
        int32_t eos;
        const int32_t *want;
        size_t n;
    } cases[] = {{"greedy", 1, -1, greedy, ng}, {"beam 3", 3, -1, beam, nb}, {"beam 4 with eos", 4, eos[0], beam_eos, nbe}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0] && !rc; c++) {
        gen_config gc;
        gen_config_default(&gc, cases[c].eos);
        gc.max_new_tokens = 12;
        gc.num_beams = cases[c].beams;
        gen_result res;
        rc = gen_generate(&gm, &gc, prompt, (int)np, &res, &err);
        CHECK(rc == 0, "%s %s: %s", name, cases[c].what, err.msg);
        if (rc) break;
        int same = (size_t)res.hyps[0].n_tokens == cases[c].n;
        for (size_t i = 0; same && i < cases[c].n; i++) same = res.hyps[0].tokens[i] == cases[c].want[i];
        CHECK(same, "%s %s: tokens differ from transformers' generate() (got %d tokens, first %d; want %zu, first %d)", name,
              cases[c].what, res.hyps[0].n_tokens, res.hyps[0].n_tokens ? res.hyps[0].tokens[0] : -1, cases[c].n,
              cases[c].want[0]);
        gen_result_free(&res);
    }
    model_session_free(s);
    free(prompt);
    free(greedy);
    free(beam);
    free(eos);
    free(beam_eos);
}

static void run(const char *name) {
    char base[512], adapter[512], refp[512], genp[512];
    snprintf(base, sizeof base, FIX "/llama/%s/base", name);
    snprintf(adapter, sizeof adapter, FIX "/llama/%s/adapter", name);
    snprintf(refp, sizeof refp, FIX "/llama/%s/ref.safetensors", name);
    snprintf(genp, sizeof genp, FIX "/llama_gen/%s.safetensors", name);
    lorac_err err = {0};
    st_file ref, gref;
    model *m = NULL;
    int rc = st_open(refp, &ref, &err);
    CHECK(rc == 0, "%s", err.msg);
    if (rc) return;
    rc = st_open(genp, &gref, &err);
    CHECK(rc == 0, "%s", err.msg);
    if (rc) {
        st_close(&ref);
        return;
    }
    const char *spec = adapter;
    rc = model_load(base, &FX_NO_TOK, &m, &err);
    if (!rc) rc = model_attach_adapters(m, &spec, 1, NULL, 0, &err);
    CHECK(rc == 0, "%s load: %s", name, err.msg);
    if (!rc) {
        size_t n;
        int32_t *ids = fx_i64(&ref, "input_ids", &n);
        const st_tensor *lt = st_find(&ref, "logits");
        int B = (int)lt->shape[0], T = (int)lt->shape[1];
        check_cache_vs_forward(m, name, ids, B, T, "unmerged");
        rc = model_train_mode(m, 0, &err);
        CHECK(rc == 0, "merge: %s", err.msg);
        check_cache_vs_forward(m, name, ids, B, T, "merged");
        check_decode(m, name, &gref);
        free(ids);
    }
    model_free(m);
    st_close(&gref);
    st_close(&ref);
}

/* Reads one line of space-separated ids. */
static size_t parse_ids(char *line, int32_t *ids, size_t cap) {
    size_t n = 0;
    for (char *t = strtok(line, " \n"); t && n < cap; t = strtok(NULL, " \n")) ids[n++] = (int32_t)atoi(t);
    return n;
}

/* A two-turn conversation through ft_load_data: ids == encode(ChatML text), and the scored
 * targets spell the two assistant turns each with its <|im_end|>\n. */
static void check_chat_data(model *m) {
    char path[] = "/tmp/lorac_chat_XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0, "mkstemp");
    if (fd < 0) return;
    const char *line = "{\"messages\": [{\"role\": \"user\", \"content\": \"Hi there\"}, {\"role\": \"assistant\", "
                       "\"content\": \"Hello!\"}, {\"role\": \"user\", \"content\": \"2+2?\"}, {\"role\": "
                       "\"assistant\", \"content\": \"4\"}]}\n";
    CHECK(write(fd, line, strlen(line)) == (ssize_t)strlen(line), "write");
    close(fd);
    train_data d;
    lorac_err err = {0};
    int rc = ft_load_data(m, NULL, path, 512, &d, &err);
    unlink(path);
    CHECK(rc == 0 && d.n == 1, "chat data: %s", err.msg);
    if (rc) return;
    model_chat_msg msgs[4] = {{"user", "Hi there"}, {"assistant", "Hello!"}, {"user", "2+2?"}, {"assistant", "4"}};
    char *text = NULL, *scored = NULL;
    size_t tl = 0, n = 0, sl = 0;
    int32_t *ids = NULL, tg[512];
    rc = model_chat_format(m, msgs, 4, 0, &text, &tl, &err);
    if (!rc) rc = model_encode(m, text, tl, 1, &ids, &n, &err);
    int same = !rc && n == d.n_tokens;
    for (size_t i = 0; same && i < n; i++) same = ids[i] == d.ids[i];
    CHECK(same, "chat ids are not the tokens of the ChatML text (%zu vs %zu)", d.n_tokens, n);
    size_t k = 0;
    for (size_t i = 0; i < d.n_tokens && k < 512; i++)
        if (d.targets[i] != TRAIN_IGNORE) tg[k++] = d.targets[i];
    if (!model_decode(m, tg, k, 0, &scored, &sl, &err))
        CHECK(!strcmp(scored, "Hello!<|im_end|>\n4<|im_end|>\n"), "scored text is \"%s\"", scored);
    free(scored);
    free(text);
    free(ids);
    train_data_free(&d);
}

static void smollm2_golden(void) {
    char path[1024], line[3][8192], user[1024];
    fx_smollm2_path(path, sizeof path);
    FILE *f = fopen(path, "rb");
    if (!f) {
        printf("note: %s is absent (tools/fetch_smollm2.sh), so the SmolLM2 greedy golden is not checked\n", path);
        return;
    }
    fclose(f);
    f = fopen(FIX "/llama_gen/smollm2_greedy.txt", "r");
    CHECK(f != NULL, "smollm2_greedy.txt");
    if (!f) return;
    int got_lines = fgets(user, sizeof user, f) && fgets(line[0], sizeof line[0], f) && fgets(line[1], sizeof line[1], f);
    fclose(f);
    CHECK(got_lines, "smollm2_greedy.txt has 3 lines");
    if (!got_lines) return;
    user[strcspn(user, "\n")] = 0;
    int32_t want_prompt[512], want_out[64];
    size_t np = parse_ids(line[0], want_prompt, 512), no = parse_ids(line[1], want_out, 64);
    model *m = NULL;
    lorac_err err = {0};
    int rc = model_load(path, NULL, &m, &err);
    CHECK(rc == 0, "load %s: %s", path, err.msg);
    if (rc) return;
    model_chat_msg msg = {"user", user};
    char *text = NULL;
    size_t tl = 0, n = 0;
    int32_t *ids = NULL;
    rc = model_chat_format(m, &msg, 1, 1, &text, &tl, &err);
    if (!rc) rc = model_encode(m, text, tl, 1, &ids, &n, &err);
    CHECK(rc == 0, "chat prompt: %s", err.msg);
    int same = !rc && n == np;
    for (size_t i = 0; same && i < n; i++) same = ids[i] == want_prompt[i];
    CHECK(same, "SmolLM2 chat prompt ids differ from the reference (%zu vs %zu tokens)", n, np);
    gen_config gc;
    gen_config_default(&gc, -1);
    gen_model_eos(m, &gc);
    gc.max_new_tokens = 32;
    gen_model gm;
    gen_result res;
    memset(&res, 0, sizeof res);
    model_session *s = NULL;
    if (!rc) rc = model_train_mode(m, 0, &err);
    if (!rc) rc = model_session_new(m, &s, &err);
    if (!rc) gen_model_session(&gm, m, s);
    /* the golden is transformers on the dequantized weights: the fp32 products (the direct int8
     * decode kernels are held to test_decode_e2e's log-probability bound instead) */
    qmat_set_direct(0);
    if (!rc) rc = gen_generate(&gm, &gc, ids, (int)n, &res, &err);
    qmat_set_direct(1);
    CHECK(rc == 0, "generate: %s", err.msg);
    if (!rc) {
        same = (size_t)res.hyps[0].n_tokens == no;
        for (size_t i = 0; same && i < no; i++) same = res.hyps[0].tokens[i] == want_out[i];
        CHECK(same, "SmolLM2 greedy tokens differ from the reference (%d vs %zu tokens)", res.hyps[0].n_tokens, no);
        gen_result_free(&res);
    }
    free(text);
    free(ids);
    model_session_free(s);
    check_chat_data(m);
    model_free(m);
}

int main(void) {
    run("gqa");
    run("qwen2");
    smollm2_golden();
    return check_summary();
}
