/* WordPiece parity with Hugging Face tokenizers' BertTokenizerFast (fixtures from tools/glue_ref.py):
 * English with accents and punctuation, CJK, Hangul, control and whitespace characters, long words,
 * uncased (vocab.txt + tokenizer_config.json, and tokenizer.json) and cased; then, when the MiniLM
 * vocabulary is cached and ../shared/data/glue is present, every GLUE dev sentence (ids hashed). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "lorac/wordpiece.h"

static int hexval(char c) { return c <= '9' ? c - '0' : c - 'a' + 10; }

static void run_cases(const wp_tokenizer *unc, const wp_tokenizer *cased, const char *label) {
    char path[1024];
    snprintf(path, sizeof path, "%s/tests/fixtures/glue/wp_cases.txt", LORAC_SOURCE_DIR);
    FILE *f = fopen(path, "r");
    CHECK(f != NULL, "%s", path);
    if (!f) return;
    static char line[1 << 16];
    int ncase = 0;
    while (fgets(line, sizeof line, f)) {
        char *hex = line;
        const wp_tokenizer *t = unc;
        if (!strncmp(hex, "cased:", 6)) {
            hex += 6;
            t = cased;
        }
        char *tab = strchr(hex, '\t');
        if (!tab) continue;
        *tab = 0;
        size_t tl = strlen(hex) / 2;
        char *text = malloc(tl + 1);
        for (size_t i = 0; i < tl; i++) text[i] = (char)(hexval(hex[2 * i]) * 16 + hexval(hex[2 * i + 1]));
        int32_t want[4096];
        size_t nw = 0;
        for (char *p = tab + 1; *p && *p != '\n';) {
            want[nw++] = (int32_t)strtol(p, &p, 10);
            while (*p == ' ') p++;
        }
        int32_t *ids = NULL;
        size_t n = 0;
        lorac_err err = {0};
        int rc = wp_encode(t, text, tl, &ids, &n, &err);
        int same = rc == 0 && n == nw && (n == 0 || !memcmp(ids, want, n * sizeof(int32_t)));
        CHECK(same, "%s case %d (%s): got %zu ids, want %zu", label, ncase, t == cased ? "cased" : "uncased", n, nw);
        if (!same) {
            for (size_t i = 0; i < n; i++) fprintf(stderr, "%d ", ids[i]);
            fprintf(stderr, "\n");
        }
        free(ids);
        free(text);
        ncase++;
    }
    fclose(f);
    CHECK(ncase >= 30, "only %d cases", ncase);
}

static uint64_t fnv_ids(uint64_t h, const int32_t *ids, size_t n) {
    for (size_t i = 0; i < n; i++) {
        uint32_t v = (uint32_t)ids[i];
        for (int b = 0; b < 4; b++) h = (h ^ ((v >> (8 * b)) & 0xff)) * 0x100000001b3ULL;
    }
    return h;
}

/* Real vocabulary, real sentences: returns 1 if it ran. */
static int glue_sentences(void) {
    const char *home = getenv("HOME");
    char vocab[1024], fix[1024];
    snprintf(vocab, sizeof vocab, "%s/.cache/lorac/all-MiniLM-L6-v2", home ? home : "/root");
    wp_tokenizer *t = NULL;
    lorac_err err = {0};
    if (wp_load(vocab, &t, &err)) {
        printf("skip GLUE sentences: %s (run tools/fetch_minilm.sh)\n", err.msg);
        return 0;
    }
    snprintf(fix, sizeof fix, "%s/tests/fixtures/glue/wp_glue.txt", LORAC_SOURCE_DIR);
    FILE *f = fopen(fix, "r");
    char file[256];
    int col, nsent, ran = 0;
    long ntok;
    unsigned long long want;
    static char line[1 << 16];
    while (f && fscanf(f, "%255s %d %d %ld %llx", file, &col, &nsent, &ntok, &want) == 5) {
        char path[1400];
        snprintf(path, sizeof path, "%s/../shared/data/glue/%s", LORAC_SOURCE_DIR, file);
        FILE *d = fopen(path, "r");
        if (!d) {
            printf("skip %s: not present\n", path);
            continue;
        }
        int row = 0, cola = strstr(file, "CoLA") != NULL;
        uint64_t h = 0xcbf29ce484222325ULL;
        long tokens = 0;
        int sents = 0;
        while (fgets(line, sizeof line, d)) {
            if (row++ == 0 && !cola) continue; /* header */
            size_t L = strcspn(line, "\n");
            line[L] = 0;
            char *p = line;
            if (!strncmp(p, "\xEF\xBB\xBF", 3)) p += 3;
            for (int c = 0; c < col && p; c++) {
                p = strchr(p, '\t');
                if (p) p++;
            }
            if (!p) continue;
            size_t len = strcspn(p, "\t");
            int32_t *ids = NULL;
            size_t n = 0;
            if (wp_encode(t, p, len, &ids, &n, &err)) break;
            h = fnv_ids(h, ids, n);
            tokens += (long)n;
            sents++;
            free(ids);
        }
        fclose(d);
        CHECK(sents == nsent && tokens == ntok && h == want, "%s column %d: %d sentences %ld ids hash %016llx, want %d %ld %016llx",
              file, col, sents, tokens, (unsigned long long)h, nsent, ntok, want);
        ran = 1;
    }
    if (f) fclose(f);
    wp_free(t);
    return ran;
}

int main(void) {
    char dir[1024], vt[1100];
    snprintf(dir, sizeof dir, "%s/tests/fixtures/glue/wp", LORAC_SOURCE_DIR);
    snprintf(vt, sizeof vt, "%s/vocab.txt", dir);
    lorac_err err = {0};
    wp_tokenizer *json = NULL, *txt = NULL, *cased = NULL;
    CHECK(wp_load(dir, &json, &err) == 0, "%s", err.msg);
    CHECK(wp_load(vt, &txt, &err) == 0, "%s", err.msg);
    wp_options o;
    wp_options_default(&o);
    o.lowercase = 0;
    CHECK(wp_load_vocab(vt, &o, &cased, &err) == 0, "%s", err.msg);
    if (json && txt && cased) {
        CHECK(wp_vocab_size(json) == wp_vocab_size(txt), "vocab sizes");
        CHECK(wp_token_id(txt, "[CLS]") == 101 || wp_token_id(txt, "[CLS]") >= 0, "[CLS]");
        run_cases(json, cased, "tokenizer.json");
        run_cases(txt, cased, "vocab.txt");
    }
    /* bad input: a vocabulary without [UNK], a repeated token */
    char bad[1200];
    snprintf(bad, sizeof bad, "%s/wp_bad_vocab.txt", LORAC_BINARY_DIR);
    FILE *f = fopen(bad, "w");
    fputs("[PAD]\nhello\nhello\n", f);
    fclose(f);
    wp_tokenizer *b = NULL;
    int rc = wp_load_vocab(bad, &o, &b, &err);
    CHECK(rc == LORAC_EFORMAT && strstr(err.msg, "repeated"), "%s", err.msg);
    f = fopen(bad, "w");
    fputs("[PAD]\nhello\n", f);
    fclose(f);
    rc = wp_load_vocab(bad, &o, &b, &err);
    CHECK(rc == LORAC_EFORMAT && strstr(err.msg, "[UNK]"), "%s", err.msg);
    wp_free(json);
    wp_free(txt);
    wp_free(cased);
    glue_sentences();
    return check_summary();
}
