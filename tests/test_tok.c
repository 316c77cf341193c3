/* test_tok.c — the generic tokenizer (tok_*) against HF `tokenizers` and `sentencepiece` on tiny
 * trained vocabularies (tests/fixtures/tok, made by tools/tok_ref.py): byte-level BPE with GPT-2's,
 * SmolLM2's, Llama 3's and Qwen2's pre-tokenizers from tokenizer.json and from GGUF metadata, and
 * SentencePiece-style BPE from GGUF (scores) and tokenizer.json (legacy normalizer, Metaspace).
 * Also: round trips, special tokens, ChatML, and one-line errors for bad files. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "lorac/json.h"
#include "lorac/tokenizer.h"

#define FIX LORAC_SOURCE_DIR "/tests/fixtures/tok"

static char tmpdir[64];

/* ---- cases.txt: FIXTURE \t MODE \t TEXT-HEX \t IDS ---- */

typedef struct tcase {
    char fixture[32];
    int special;
    char *text;
    size_t len;
    int32_t *ids;
    size_t n;
} tcase;

static size_t read_cases(const char *path, tcase **out) {
    char *data = NULL;
    size_t len = 0, cap = 0, n = 0;
    lorac_err err = {0};
    *out = NULL;
    if (lorac_read_file(path, &data, &len, &err)) {
        CHECK(0, "%s", err.msg);
        return 0;
    }
    for (char *line = strtok(data, "\n"); line; line = strtok(NULL, "\n")) {
        char *f[4] = {line, NULL, NULL, NULL};
        for (int k = 1; k < 4; k++) {
            f[k] = f[k - 1] ? strchr(f[k - 1], '\t') : NULL;
            if (f[k]) *f[k]++ = 0;
        }
        if (!f[3]) continue;
        if (n == cap) *out = realloc(*out, (cap = cap ? 2 * cap : 256) * sizeof **out);
        tcase *c = &(*out)[n++];
        snprintf(c->fixture, sizeof c->fixture, "%s", f[0]);
        c->special = f[1][0] == 's';
        c->len = strlen(f[2]) / 2;
        c->text = malloc(c->len + 1);
        for (size_t i = 0; i < c->len; i++) {
            unsigned v;
            sscanf(f[2] + 2 * i, "%2x", &v);
            c->text[i] = (char)v;
        }
        c->text[c->len] = 0;
        c->ids = malloc((strlen(f[3]) / 2 + 2) * sizeof *c->ids);
        c->n = 0;
        for (char *p = f[3]; strcmp(f[3], "-");) {
            char *end;
            long v = strtol(p, &end, 10);
            if (end == p) break;
            c->ids[c->n++] = (int32_t)v;
            p = end;
        }
    }
    free(data);
    return n;
}

static void free_cases(tcase *c, size_t n) {
    for (size_t i = 0; i < n; i++) {
        free(c[i].text);
        free(c[i].ids);
    }
    free(c);
}

static int same_ids(const int32_t *a, size_t na, const int32_t *b, size_t nb) {
    return na == nb && (na == 0 || !memcmp(a, b, na * sizeof *a));
}

/* Encodes every case of fixture with t; round trips where the tokenizer promises them. */
static void check_fixture(const char *path, const char *fixture, tcase *cs, size_t ncs) {
    tok *t = NULL;
    lorac_err err = {0};
    int rc = tok_load(path, &t, &err);
    CHECK(rc == LORAC_OK, "%s: %s", path, err.msg);
    if (rc) return;
    size_t cases = 0, bad = 0, trips = 0;
    for (size_t i = 0; i < ncs; i++) {
        tcase *c = &cs[i];
        if (strcmp(c->fixture, fixture)) continue;
        cases++;
        int32_t *ids = NULL;
        size_t n = 0;
        rc = tok_encode(t, c->text, c->len, 0, c->special, &ids, &n, &err);
        if (rc || !same_ids(ids, n, c->ids, c->n)) {
            if (bad++ < 3) {
                fprintf(stderr, "%s: \"%s\" (%s): rc %d, %zu ids, want %zu:", path, c->text, c->special ? "special" : "plain",
                        rc, n, c->n);
                for (size_t k = 0; k < n && k < 40; k++) fprintf(stderr, " %d%s", ids[k], k < c->n && ids[k] == c->ids[k] ? "" : "*");
                fprintf(stderr, "\n");
            }
        }
        int leading_space = c->len && c->text[0] == ' ';
        int spm_meta = strstr(fixture, "spm_meta") != NULL;
        if (!rc && (tok_get_kind(t) == TOK_GPT2_BPE || (!c->special && !(spm_meta && leading_space)))) {
            char *back = NULL;
            size_t blen = 0;
            CHECK(tok_decode(t, ids, n, 0, &back, &blen, &err) == LORAC_OK && blen == c->len && !memcmp(back, c->text, blen),
                  "%s: decode(encode(\"%s\")) = \"%s\"", path, c->text, back ? back : "(error)");
            free(back);
            trips++;
        }
        free(ids);
    }
    CHECK(cases > 0 && bad == 0, "%s: %zu of %zu cases differ from the reference", path, bad, cases);
    printf("%-40s %3zu cases equal the reference, %3zu round trips\n", strrchr(path, '/') + 1, cases - bad, trips);
    tok_free(t);
}

static void test_references(void) {
    tcase *cs = NULL;
    size_t n = read_cases(FIX "/cases.txt", &cs);
    CHECK(n > 500, "cases.txt has %zu cases", n);
    static const char *const bl[] = {"bl_gpt2", "bl_smollm", "bl_llama3", "bl_qwen2"};
    char path[512];
    for (int i = 0; i < 4; i++) {
        snprintf(path, sizeof path, FIX "/%s", bl[i]); /* a directory with tokenizer.json */
        check_fixture(path, bl[i], cs, n);
        snprintf(path, sizeof path, FIX "/%s.gguf", bl[i]); /* the same vocabulary from GGUF metadata */
        check_fixture(path, bl[i], cs, n);
    }
    check_fixture(FIX "/spm.gguf", "spm.gguf", cs, n);
    check_fixture(FIX "/spm_legacy/tokenizer.json", "spm_legacy", cs, n);
    check_fixture(FIX "/spm_meta", "spm_meta", cs, n);
    free_cases(cs, n);
}

/* ---- tok_save_hf: every fixture written as tokenizer.json + tokenizer_config.json and read back ---- */

static void same_settings(const char *name, const tok *a, const tok *b) {
    int same_pieces = tok_vocab_size(a) == tok_vocab_size(b);
    for (int32_t i = 0; same_pieces && i < tok_vocab_size(a); i++) {
        const char *p = tok_piece(a, i), *q = tok_piece(b, i);
        same_pieces = (!p && !q) || (p && q && !strcmp(p, q) && tok_is_special(a, i) == tok_is_special(b, i));
    }
    const char *ca = tok_chat_template(a), *cb = tok_chat_template(b);
    CHECK(same_pieces && tok_get_kind(a) == tok_get_kind(b), "%s: saved vocabulary or kind differs", name);
    CHECK(tok_bos_id(a) == tok_bos_id(b) && tok_eos_id(a) == tok_eos_id(b) && tok_unk_id(a) == tok_unk_id(b) &&
              tok_pad_id(a) == tok_pad_id(b) && tok_add_bos(a) == tok_add_bos(b),
          "%s: bos %d/%d eos %d/%d unk %d/%d pad %d/%d add_bos %d/%d (loaded/saved)", name, tok_bos_id(a), tok_bos_id(b),
          tok_eos_id(a), tok_eos_id(b), tok_unk_id(a), tok_unk_id(b), tok_pad_id(a), tok_pad_id(b), tok_add_bos(a),
          tok_add_bos(b));
    CHECK((!ca && !cb) || (ca && cb && !strcmp(ca, cb)), "%s: chat template differs after saving", name);
}

static void test_saved(void) {
    tcase *cs = NULL;
    size_t n = read_cases(FIX "/cases.txt", &cs);
    static const char *const src[][2] = {
        {"bl_gpt2.gguf", "bl_gpt2"},     {"bl_smollm.gguf", "bl_smollm"}, {"bl_llama3.gguf", "bl_llama3"},
        {"bl_qwen2.gguf", "bl_qwen2"},   {"spm.gguf", "spm.gguf"},        {"spm_legacy/tokenizer.json", "spm_legacy"},
        {"spm_meta", "spm_meta"},        {"bl_smollm", "bl_smollm"},
    };
    char dir[64], path[512];
    for (size_t i = 0; i < sizeof src / sizeof src[0]; i++) {
        tok *a = NULL, *b = NULL;
        lorac_err err = {0};
        snprintf(path, sizeof path, FIX "/%s", src[i][0]);
        snprintf(dir, sizeof dir, "/tmp/lorac_test_toksave_XXXXXX");
        CHECK(tok_load(path, &a, &err) == LORAC_OK && mkdtemp(dir), "%s: %s", src[i][0], err.msg);
        if (!a) continue;
        CHECK(tok_save_hf(a, dir, &err) == LORAC_OK, "%s: save: %s", src[i][0], err.msg);
        printf("saved %-26s ", src[i][0]);
        check_fixture(dir, src[i][1], cs, n); /* the reference's ids from the saved files */
        CHECK(tok_load(dir, &b, &err) == LORAC_OK, "%s: reload: %s", src[i][0], err.msg);
        if (b) same_settings(src[i][0], a, b);
        tok_free(a);
        tok_free(b);
        snprintf(path, sizeof path, "%s/tokenizer.json", dir);
        unlink(path);
        snprintf(path, sizeof path, "%s/tokenizer_config.json", dir);
        unlink(path);
        rmdir(dir);
    }
    lorac_err err = {0};
    tok *t = NULL;
    CHECK(tok_load(FIX "/bl_gpt2.gguf", &t, &err) == LORAC_OK, "%s", err.msg);
    CHECK(t && tok_save_hf(t, "/nonexistent-dir/x", &err) != LORAC_OK && strstr(err.msg, "/nonexistent-dir/x"),
          "saving into a missing directory: %s", err.msg);
    tok_free(t);
    free_cases(cs, n);
}

/* ---- the API on the SmolLM2-like fixture, SentencePiece BOS, GPT-2 directories ---- */

static void test_api(void) {
    tok *t = NULL;
    lorac_err err = {0};
    CHECK(tok_load(FIX "/bl_smollm.gguf", &t, &err) == LORAC_OK, "%s", err.msg);
    if (!t) return;
    int32_t im_start = tok_find(t, "<|im_start|>"), im_end = tok_find(t, "<|im_end|>");
    CHECK(tok_get_kind(t) == TOK_GPT2_BPE && tok_vocab_size(t) == 401 && im_start == 1 && im_end == 2,
          "kind %d, vocab %d, im_start %d, im_end %d", tok_get_kind(t), tok_vocab_size(t), im_start, im_end);
    CHECK(tok_bos_id(t) == 1 && tok_eos_id(t) == 2 && tok_add_bos(t) == 0,
          "bos %d eos %d (the template's <|im_end|>) add_bos %d", tok_bos_id(t), tok_eos_id(t), tok_add_bos(t));
    CHECK(tok_piece(t, 0) && !strcmp(tok_piece(t, 0), "<|endoftext|>") && !tok_piece(t, 401) && !tok_piece(t, -1) &&
              tok_find(t, "nope-not-a-token") == -1 && tok_find(t, "<tool>") == 400 && tok_is_special(t, 1) &&
              !tok_is_special(t, 400),
          "pieces");
    char *sys = tok_chat_default_system(t);
    CHECK(sys && !strcmp(sys, "You are a helpful AI assistant named SmolLM, trained by Hugging Face"), "default system: %s",
          sys ? sys : "(none)");
    free(sys);
    tok_chat_msg msgs[] = {{"user", "Hi!"}, {"assistant", "Hello."}, {"user", "2+2?"}};
    char *out = NULL;
    CHECK(tok_chat_format(t, msgs, 3, 1, &out, &err) == LORAC_OK && out &&
              !strcmp(out, "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
                           "<|im_start|>user\nHi!<|im_end|>\n<|im_start|>assistant\nHello.<|im_end|>\n"
                           "<|im_start|>user\n2+2?<|im_end|>\n<|im_start|>assistant\n"),
          "chat: %s", out ? out : err.msg);
    int32_t *ids = NULL;
    size_t n = 0;
    CHECK(out && tok_encode(t, out, strlen(out), 0, 1, &ids, &n, &err) == LORAC_OK && n > 10 && ids[0] == im_start &&
              ids[n - 1] != im_end,
          "chat ids");
    char *back = NULL;
    size_t blen = 0;
    CHECK(ids && tok_decode(t, ids, n, 0, &back, &blen, &err) == LORAC_OK && !strcmp(back, out), "chat round trip");
    free(back);
    CHECK(ids && tok_decode(t, ids, n, 1, &back, &blen, &err) == LORAC_OK && !strstr(back, "<|im_start|>") &&
              strstr(back, "Hi!"),
          "skip_special: %s", back);
    free(back);
    free(ids);
    free(out);
    tok_chat_msg sysmsg[] = {{"system", "Be brief."}, {"user", "Hi"}};
    CHECK(tok_chat_format(t, sysmsg, 2, 0, &out, &err) == LORAC_OK &&
              !strcmp(out, "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"),
          "chat with a system message: %s", out);
    free(out);
    CHECK(tok_encode(t, "x", 1, 1, 1, &ids, &n, &err) == LORAC_OK && n == 2 && ids[0] == 1, "add_bos");
    free(ids);
    CHECK(tok_decode(t, (int32_t[]){5, 401}, 2, 0, &back, &blen, &err) == LORAC_EINVAL && strstr(err.msg, "401") && !back,
          "decode of a bad id: %s", err.msg);
    tok_free(t);

    CHECK(tok_load(FIX "/spm.gguf", &t, &err) == LORAC_OK, "%s", err.msg);
    if (t) {
        CHECK(tok_get_kind(t) == TOK_SPM && tok_add_bos(t) == 1 && tok_bos_id(t) == 1 && tok_eos_id(t) == 2 &&
                  tok_unk_id(t) == 0,
              "spm ids");
        CHECK(tok_encode(t, "Hello world", 11, tok_add_bos(t), 0, &ids, &n, &err) == LORAC_OK && n > 1 && ids[0] == 1,
              "spm bos");
        CHECK(tok_decode(t, ids, n, 1, &back, &blen, &err) == LORAC_OK && !strcmp(back, "Hello world"), "spm decode: %s",
              back);
        free(back);
        free(ids);
        CHECK(tok_chat_format(t, msgs, 1, 1, &out, &err) == LORAC_EUNSUPPORTED && strstr(err.msg, "ChatML"), "no ChatML: %s",
              err.msg);
        tok_free(t);
    }

    /* a directory's tokenizer_config.json: SmolLM2-Instruct's bos/eos/pad and chat template */
    CHECK(tok_load(FIX "/bl_smollm", &t, &err) == LORAC_OK, "%s", err.msg);
    if (t) {
        sys = tok_chat_default_system(t);
        CHECK(tok_bos_id(t) == 1 && tok_eos_id(t) == 2 && tok_pad_id(t) == 2 && tok_add_bos(t) == 0 && tok_chat_template(t) &&
                  sys && !strcmp(sys, "You are a helpful AI assistant named SmolLM, trained by Hugging Face"),
              "tokenizer_config.json: bos %d eos %d pad %d add_bos %d", tok_bos_id(t), tok_eos_id(t), tok_pad_id(t),
              tok_add_bos(t));
        free(sys);
        tok_free(t);
    }
    CHECK(tok_load(FIX "/spm_legacy", &t, &err) == LORAC_OK, "%s", err.msg);
    if (t) { /* no tokenizer_config.json: BOS from the TemplateProcessing post-processor, EOS by name */
        CHECK(tok_add_bos(t) == 1 && tok_bos_id(t) == 1 && tok_eos_id(t) == 2 && tok_unk_id(t) == 0 && !tok_chat_template(t),
              "spm_legacy: add_bos %d bos %d eos %d unk %d", tok_add_bos(t), tok_bos_id(t), tok_eos_id(t), tok_unk_id(t));
        tok_free(t);
    }

    /* GPT-2's files through tok_load agree with bpe_* */
    CHECK(tok_load(LORAC_SOURCE_DIR "/tests/fixtures/bpe/toy", &t, &err) == LORAC_OK, "%s", err.msg);
    bpe_tokenizer *b = NULL;
    CHECK(bpe_load_dir(LORAC_SOURCE_DIR "/tests/fixtures/bpe/toy", &b, &err) == LORAC_OK, "%s", err.msg);
    if (t && b) {
        const char *s = "Hello world, it's <|endoftext|> 2024!";
        int32_t *want = NULL;
        size_t nw = 0;
        CHECK(bpe_encode_special(b, s, strlen(s), &want, &nw, &err) == LORAC_OK &&
                  tok_encode(t, s, strlen(s), 0, 1, &ids, &n, &err) == LORAC_OK && same_ids(ids, n, want, nw),
              "toy GPT-2 through tok_load");
        free(ids);
        free(want);
        CHECK(bpe_encode(b, s, strlen(s), &want, &nw, &err) == LORAC_OK &&
                  tok_encode(t, s, strlen(s), 0, 0, &ids, &n, &err) == LORAC_OK && same_ids(ids, n, want, nw),
              "toy GPT-2 through tok_load, plain");
        CHECK(tok_piece(t, 39) && tok_find(t, tok_piece(t, 39)) == 39 && tok_eos_id(t) == tok_find(t, "<|endoftext|>"),
              "toy pieces");
        free(ids);
        free(want);
    }
    tok_free(t);
    bpe_free(b);
}

/* Random bytes round trip through every byte-level kind. */
static void test_round_trip_random(void) {
    static const char *const paths[] = {FIX "/bl_gpt2.gguf", FIX "/bl_smollm.gguf", FIX "/bl_llama3.gguf",
                                        FIX "/bl_qwen2/tokenizer.json"};
    lorac_rng rng;
    lorac_rng_seed(&rng, 7);
    for (int p = 0; p < 4; p++) {
        tok *t = NULL;
        lorac_err err = {0};
        if (tok_load(paths[p], &t, &err)) {
            CHECK(0, "%s", err.msg);
            continue;
        }
        int ok = 1;
        for (int it = 0; it < 300 && ok; it++) {
            char buf[64];
            size_t len = (uint32_t)lorac_rng_u64(&rng) % sizeof buf;
            static const char alphabet[] = " \t\n\r'sSlL09aZ<|>\xC3\xA9\xF0\x9F\x98\x80\xE4\xB8\xAD.,";
            for (size_t i = 0; i < len; i++) {
                uint32_t r = (uint32_t)lorac_rng_u64(&rng);
                buf[i] = r & 1 ? (char)(r >> 8) : alphabet[(r >> 8) % (sizeof alphabet - 1)];
            }
            int32_t *ids = NULL;
            size_t n = 0;
            char *back = NULL;
            size_t blen = 0;
            ok = tok_encode(t, buf, len, 0, it & 1, &ids, &n, &err) == LORAC_OK &&
                 tok_decode(t, ids, n, 0, &back, &blen, &err) == LORAC_OK && blen == len && !memcmp(back, buf, len);
            free(ids);
            free(back);
        }
        CHECK(ok, "%s: random bytes do not round-trip", paths[p]);
        tok_free(t);
    }
}

/* ---- bad input: one-line errors that name the file ---- */

/* A GGUF with a byte-level vocabulary (all 256 bytes, "ab", "abc") and what mutate changes. */
enum { NO_MODEL, BAD_MODEL, NO_MERGES, UNKNOWN_MERGE, BAD_MERGE, TYPES_SHORT, BAD_PRE, BOS_RANGE, NO_SCORES,
       SCORES_SHORT, GOOD_GPT2, N_MUTATIONS };

static void write_gguf(const char *path, int mutation) {
    gguf_writer *w = gguf_writer_new();
    static char spell[258][3];
    const char *toks[258];
    int32_t types[258];
    float scores[258];
    for (int b = 0; b < 256; b++) {
        uint32_t cp = b < 33 ? 256u + (uint32_t)b : (uint32_t)b; /* any distinct spellings do for these checks */
        if (b >= 127 && b <= 160) cp = 256u + 33u + (uint32_t)(b - 127);
        if (b == 173) cp = 256u + 67u;
        if (cp < 0x80) snprintf(spell[b], 3, "%c", (char)cp);
        else snprintf(spell[b], 3, "%c%c", (char)(0xC0 | (cp >> 6)), (char)(0x80 | (cp & 0x3F)));
        toks[b] = spell[b];
        types[b] = 1;
        scores[b] = 0;
    }
    toks[256] = "ab";
    toks[257] = "abc";
    types[256] = types[257] = 1;
    scores[256] = scores[257] = -1;
    int llama = mutation == NO_SCORES || mutation == SCORES_SHORT;
    if (mutation != NO_MODEL) gguf_writer_add_str(w, "tokenizer.ggml.model", mutation == BAD_MODEL ? "bert" : llama ? "llama" : "gpt2");
    gguf_writer_add_arr_str(w, "tokenizer.ggml.tokens", toks, 258);
    gguf_writer_add_arr(w, "tokenizer.ggml.token_type", GGUF_I32, types, mutation == TYPES_SHORT ? 200 : 258);
    const char *merges[] = {"a b", mutation == UNKNOWN_MERGE ? "ab zq" : "ab c", "abc"};
    if (mutation != NO_MERGES && !llama) gguf_writer_add_arr_str(w, "tokenizer.ggml.merges", merges, mutation == BAD_MERGE ? 3 : 2);
    if (mutation == BAD_PRE) gguf_writer_add_str(w, "tokenizer.ggml.pre", "mystery");
    if (mutation == BOS_RANGE) gguf_writer_add_u32(w, "tokenizer.ggml.bos_token_id", 9999);
    if (mutation == SCORES_SHORT) gguf_writer_add_arr(w, "tokenizer.ggml.scores", GGUF_F32, scores, 100);
    lorac_err err = {0};
    CHECK(gguf_writer_write(w, path, &err) == LORAC_OK, "write %s: %s", path, err.msg);
    gguf_writer_free(w);
}

static void expect_load_error(const char *path, const char *want, const char *what) {
    tok *t = (tok *)1;
    lorac_err err = {0};
    int rc = tok_load(path, &t, &err);
    CHECK(rc != LORAC_OK && t == NULL && strstr(err.msg, path) && strstr(err.msg, want) && !strchr(err.msg, '\n'),
          "%s: rc %d, message '%s' (want '%s')", what, rc, err.msg, want);
}

static void write_file(const char *path, const char *text, size_t len) {
    FILE *f = fopen(path, "wb");
    if (f) {
        fwrite(text, 1, len, f);
        fclose(f);
    }
}

static void test_errors(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/lorac_test_tok_XXXXXX");
    if (!mkdtemp(tmpdir)) {
        CHECK(0, "mkdtemp");
        return;
    }
    static const char *const want[N_MUTATIONS] = {
        "missing key 'tokenizer.ggml.model'", "tokenizer.ggml.model is \"bert\"", "missing key 'tokenizer.ggml.merges'",
        "token \"zq\" is not in", "tokenizer.ggml.merges[2]", "token_type has 200", "tokenizer.ggml.pre is \"mystery\"",
        "bos token id 9999", "missing key 'tokenizer.ggml.scores'", "scores has 100 entries", ""};
    char path[128];
    for (int m = 0; m < N_MUTATIONS; m++) {
        snprintf(path, sizeof path, "%s/m%d.gguf", tmpdir, m);
        write_gguf(path, m);
        if (m == GOOD_GPT2) {
            tok *t = NULL;
            lorac_err err = {0};
            int32_t *ids = NULL;
            size_t n = 0;
            CHECK(tok_load(path, &t, &err) == LORAC_OK && tok_encode(t, "abcab", 5, 0, 0, &ids, &n, &err) == LORAC_OK &&
                      n == 2 && ids[0] == 257 && ids[1] == 256,
                  "good gguf: %s", err.msg);
            free(ids);
            tok_free(t);
        } else {
            expect_load_error(path, want[m], want[m]);
        }
    }
    /* a truncated GGUF */
    char *data = NULL;
    size_t len = 0;
    lorac_err err = {0};
    if (lorac_read_file(FIX "/bl_smollm.gguf", &data, &len, &err) == LORAC_OK) {
        snprintf(path, sizeof path, "%s/trunc.gguf", tmpdir);
        write_file(path, data, len / 2);
        expect_load_error(path, "", "truncated gguf");
        free(data);
    }
    /* tokenizer.json problems */
    static const struct { const char *json, *want; } js[] = {
        {"{\"model\": {\"type\": \"WordPiece\", \"vocab\": {}}}", "model.type is \"WordPiece\""},
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": []}}", "model.vocab must be an object"},
        {"{\"pre_tokenizer\": {\"type\": \"ByteLevel\"}, \"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1}, \"merges\": [\"a b\"]}}",
         "merging \"a b\" gives a token"},
        {"{\"normalizer\": {\"type\": \"Replace\", \"pattern\": {\"String\": \" \"}, \"content\": \"\xE2\x96\x81\"}, \"model\": "
         "{\"type\": \"BPE\", \"byte_fallback\": true, \"vocab\": {\"a\": 0, \"b\": 1}, \"merges\": [\"a q\"]}}",
         "model.merges[0]: token \"q\" is not in"},
        {"{\"normalizer\": {\"type\": \"Replace\", \"pattern\": {\"String\": \" \"}, \"content\": \"\xE2\x96\x81\"}, \"model\": "
         "{\"type\": \"BPE\", \"byte_fallback\": true, \"vocab\": {\"a\": 0, \"b\": 1}, \"merges\": [\"a b\"]}}",
         "gives a piece that is not in"},
        {"{\"normalizer\": {\"type\": \"NFKC\"}, \"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []}}",
         "byte-fallback BPE needs"},
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": -3}, \"merges\": []}}", "model.vocab entry 0"},
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []}, \"added_tokens\": [{\"id\": 5}]}",
         "added_tokens entry 0"},
        {"{\"model\": ", ""},
    };
    for (size_t i = 0; i < sizeof js / sizeof js[0]; i++) {
        snprintf(path, sizeof path, "%s/t%zu.json", tmpdir, i);
        write_file(path, js[i].json, strlen(js[i].json));
        expect_load_error(path, js[i].want, js[i].want);
    }
    snprintf(path, sizeof path, "%s/absent.json", tmpdir);
    expect_load_error(path, "no such file", "absent");
    for (int m = 0; m < N_MUTATIONS; m++) {
        snprintf(path, sizeof path, "%s/m%d.gguf", tmpdir, m);
        unlink(path);
    }
    snprintf(path, sizeof path, "%s/trunc.gguf", tmpdir);
    unlink(path);
    for (size_t i = 0; i < sizeof js / sizeof js[0]; i++) {
        snprintf(path, sizeof path, "%s/t%zu.json", tmpdir, i);
        unlink(path);
    }
    rmdir(tmpdir);
}

int main(void) {
    test_references();
    test_saved();
    test_api();
    test_round_trip_random();
    test_errors();
    return check_summary();
}
