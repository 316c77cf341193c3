/* `generate --preset e2e` for every family (gen_model_e2e) and the word unit of `--ngram-unit words`.
 * The preset is the paper's on any vocabulary: GPT-2 (a random model with the GPT-2 vocabulary of
 * ../shared/data/gpt2-vocab) gets eos {50256, 628} and token 4-grams; SmolLM2 (the real tokenizer,
 * tools/fetch_smollm2.sh) its own end-of-text and token 4-grams too. Each part is skipped when its
 * files are absent. On SmolLM2's vocabulary (which splits digits: " 5" is " " + "5"),
 * gen_model_word_starts groups a sentence into its words, and on a history where the token rule
 * bans " out" and " with" after "... price of 5" (its 4-gram " of", " ", "5", X was seen) the word
 * rule bans nothing (the 4 words "price of 5 X" are new). */
#include "check.h"
#include "fixture.h"
#include "lorac/generate.h"

static int count_inf(const float *x, int n) {
    int c = 0;
    for (int i = 0; i < n; i++) c += x[i] == -INFINITY;
    return c;
}

/* The words of text as word_start groups its tokens, joined by "|". */
static void words_of(const model *m, const uint8_t *ws, const char *text, char *out, size_t cap) {
    int32_t *ids = NULL;
    size_t n = 0;
    lorac_err err = {0};
    out[0] = 0;
    CHECK(model_encode(m, text, strlen(text), 0, &ids, &n, &err) == 0, "encode: %s", err.msg);
    for (size_t i = 0, j; i < n; i = j) {
        for (j = i + 1; j < n && !ws[ids[j]]; j++) {}
        char *w = NULL;
        size_t len = 0;
        CHECK(model_decode(m, ids + i, j - i, 0, &w, &len, &err) == 0, "decode: %s", err.msg);
        if (strlen(out) + len + 2 < cap) strcat(strncat(out, w, len), "|");
        free(w);
    }
    free(ids);
}

static void test_smollm2(const char *path) {
    model *m = NULL;
    lorac_err err = {0};
    gen_config cfg;
    uint8_t *ws = NULL;
    CHECK(model_load(path, NULL, &m, &err) == 0, "load %s: %s", path, err.msg);
    if (!m) return;
    gen_model_e2e(m, &cfg);
    CHECK(cfg.beam_algo == GEN_BEAM_LORA && cfg.num_beams == 10 && cfg.no_repeat_ngram_size == 4 && cfg.n_eos >= 1 &&
          cfg.eos[0] == model_tok(m)->eos && !cfg.ngram_word_start, "the E2E preset on SmolLM2");
    CHECK(gen_model_word_starts(m, &ws, &err) == 0 && ws, "word starts: %s", err.msg);
    if (!ws) {
        model_free(m);
        return;
    }
    char got[1024];
    words_of(m, ws, " has a rating of 5 out of 5, a price range of \xC2\xA3" "20-25 near Caf\xC3\xA9 Sicilia.", got,
             sizeof got);
    const char *want = " has| a| rating| of| 5| out| of| 5|,| a| price| range| of| \xC2\xA3" "20|-25| near| Caf\xC3\xA9| Sicilia|.|";
    CHECK(!strcmp(got, want), "words: \"%s\", want \"%s\"", got, want);

    int32_t *ids = NULL, *outs = NULL;
    size_t n = 0, no = 0;
    const char *hist = " rating of 5 out of 5 with price of 5";
    CHECK(model_encode(m, hist, strlen(hist), 0, &ids, &n, &err) == 0 && n == 13, "%zu tokens: %s", n, err.msg);
    CHECK(model_encode(m, " out with", 9, 0, &outs, &no, &err) == 0 && no == 2, "' out with': %zu tokens", no);
    int V = model_cfg(m)->vocab_size;
    float *x = calloc((size_t)V, sizeof *x);
    if (x && n == 13 && no == 2) {
        gen_logits_no_repeat_ngram(x, V, ids, (int)n, 4);
        CHECK(count_inf(x, V) == 2 && x[outs[0]] == -INFINITY && x[outs[1]] == -INFINITY,
              "token 4-grams ban ' out' and ' with' after ' of', ' ', '5'");
        memset(x, 0, (size_t)V * sizeof *x);
        gen_logits_no_repeat_word_ngram(x, V, ids, (int)n, 4, ws);
        CHECK(count_inf(x, V) == 0, "word 4-grams: 'price of 5 X' is new (%d banned)", count_inf(x, V));
        gen_logits_no_repeat_word_ngram(x, V, ids, (int)n, 2, ws); // the words "of 5" were followed by out, with
        CHECK(count_inf(x, V) == 2 && x[outs[0]] == -INFINITY && x[outs[1]] == -INFINITY, "word 2-grams");
    }
    free(x);
    free(ids);
    free(outs);
    free(ws);
    model_free(m);
}

static void test_gpt2(const char *vocab_dir) {
    model_config c = fx_gpt2_config(1, 16, 2, 32, 64, 50257);
    model *m = NULL;
    lorac_err err = {0};
    gen_config cfg, paper;
    CHECK(model_random(&c, 1, &m, &err) == 0 && model_load_tokenizer(m, vocab_dir, &err) == 0, "gpt2: %s", err.msg);
    if (!m) return;
    gen_model_e2e(m, &cfg);
    gen_config_e2e(&paper); // the paper's setting, GPT-2's ids: the preset must be exactly it
    CHECK(!memcmp(&cfg, &paper, sizeof cfg), "GPT-2's preset is gen_config_e2e (eos %d ids, first %d)", cfg.n_eos,
          cfg.eos[0]);
    model_free(m);
}

int main(void) {
    char path[1024], vocab[1024];
    snprintf(vocab, sizeof vocab, "%s/../shared/data/gpt2-vocab", LORAC_SOURCE_DIR);
    FILE *f = fopen(fx_smollm2_path(path, sizeof path), "rb"), *g = NULL;
    char probe[1100];
    snprintf(probe, sizeof probe, "%s/encoder.json", vocab);
    g = fopen(probe, "rb");
    if (!f && !g) {
        printf("SKIP: neither %s (tools/fetch_smollm2.sh) nor %s is present\n", path, vocab);
        return 77;
    }
    if (f) {
        fclose(f);
        test_smollm2(path);
    } else {
        printf("SKIP (SmolLM2 part): %s is absent (tools/fetch_smollm2.sh fetches it)\n", path);
    }
    if (g) {
        fclose(g);
        test_gpt2(vocab);
    } else {
        printf("SKIP (GPT-2 part): %s is absent\n", vocab);
    }
    return check_summary();
}
