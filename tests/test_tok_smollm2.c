/* test_tok_smollm2.c — the real SmolLM2-135M-Instruct tokenizer (GGUF metadata: gpt2 BPE, pre
 * "smollm", 49152 tokens, 48900 merges) against ids recorded by tools/tok_ref.py --smollm2 from an
 * HF `tokenizers` tokenizer built from the same GGUF's vocabulary with SmolLM2's pipeline, and its
 * ChatML prompt. Needs the cached model (tools/gguf_fixtures.py --fetch-smollm2, or `make deps`):
 * $LORAC_CACHE or ~/.cache/lorac/SmolLM2-135M-Instruct.Q4_1.gguf; skips (77) without it. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "check.h"
#include "lorac/tokenizer.h"

static int32_t *parse_ids(char *s, size_t *n) {
    int32_t *ids = malloc((strlen(s) / 2 + 2) * sizeof *ids);
    *n = 0;
    while (ids && strcmp(s, "-")) {
        char *end;
        long v = strtol(s, &end, 10);
        if (end == s) break;
        ids[(*n)++] = (int32_t)v;
        s = end;
    }
    return ids;
}

int main(void) {
    char path[1024];
    const char *cache = getenv("LORAC_CACHE"), *home = getenv("HOME");
    if (cache) snprintf(path, sizeof path, "%s/SmolLM2-135M-Instruct.Q4_1.gguf", cache);
    else snprintf(path, sizeof path, "%s/.cache/lorac/SmolLM2-135M-Instruct.Q4_1.gguf", home ? home : ".");
    struct stat st;
    if (stat(path, &st) != 0) {
        printf("skip: %s is absent (fetch it with tools/gguf_fixtures.py --fetch-smollm2)\n", path);
        return CHECK_SKIP;
    }
    tok *t = NULL;
    lorac_err err = {0};
    if (tok_load(path, &t, &err)) {
        CHECK(0, "%s", err.msg);
        return check_summary();
    }
    CHECK(tok_get_kind(t) == TOK_GPT2_BPE && tok_vocab_size(t) == 49152 && tok_bos_id(t) == 1 && tok_eos_id(t) == 2 &&
              tok_add_bos(t) == 0 && tok_find(t, "<|im_end|>") == 2,
          "kind %d vocab %d bos %d eos %d add_bos %d", tok_get_kind(t), tok_vocab_size(t), tok_bos_id(t), tok_eos_id(t),
          tok_add_bos(t));
    char *data = NULL;
    size_t len = 0, cases = 0, bad = 0;
    CHECK(lorac_read_file(LORAC_SOURCE_DIR "/tests/fixtures/tok/smollm2_ids.txt", &data, &len, &err) == LORAC_OK, "%s",
          err.msg);
    for (char *line = data ? strtok(data, "\n") : NULL; line; line = strtok(NULL, "\n")) {
        char *f[4] = {line, NULL, NULL, NULL};
        for (int k = 1; k < 4; k++) {
            f[k] = f[k - 1] ? strchr(f[k - 1], '\t') : NULL;
            if (f[k]) *f[k]++ = 0;
        }
        if (!f[3]) continue;
        size_t tl = strlen(f[2]) / 2, nw = 0, n = 0;
        char *text = malloc(tl + 1);
        for (size_t i = 0; i < tl; i++) {
            unsigned v;
            sscanf(f[2] + 2 * i, "%2x", &v);
            text[i] = (char)v;
        }
        text[tl] = 0;
        int32_t *want = parse_ids(f[3], &nw), *ids = NULL;
        int rc = tok_encode(t, text, tl, 0, f[1][0] == 's', &ids, &n, &err);
        cases++;
        if (rc || n != nw || (n && memcmp(ids, want, n * sizeof *ids))) {
            if (bad++ < 3) fprintf(stderr, "differs: \"%.60s\" (%s): %zu ids, want %zu\n", text, f[1], n, nw);
        }
        char *back = NULL;
        size_t blen = 0;
        int dropped = 0; /* SmolLM2 has no token for bytes such as 0x04: HF and llama.cpp drop them */
        for (size_t i = 0; i < tl; i++) dropped |= (unsigned char)text[i] < 0x09;
        CHECK(!rc && tok_decode(t, ids, n, 0, &back, &blen, &err) == LORAC_OK &&
                  (dropped || (blen == tl && !memcmp(back, text, tl))),
              "round trip of \"%.60s\"", text);
        if (!strcmp(f[0], "chat")) { /* lorac's ChatML prompt is the text the ids were recorded for */
            tok_chat_msg m = {"user", "What is the capital of France?"};
            char *chat = NULL;
            CHECK(tok_chat_format(t, &m, 1, 1, &chat, &err) == LORAC_OK && !strcmp(chat, text), "chat prompt: %s",
                  chat ? chat : err.msg);
            free(chat);
        }
        free(back);
        free(ids);
        free(want);
        free(text);
    }
    CHECK(cases > 80 && bad == 0, "%zu of %zu SmolLM2 cases differ from the reference", bad, cases);
    printf("SmolLM2: %zu cases equal the reference ids\n", cases - bad);
    free(data);
    tok_free(t);
    return check_summary();
}
