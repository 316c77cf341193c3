/* libFuzzer target for `lorac metrics` input: the bytes before the first NUL are the references file,
 * the rest the hypotheses. Reading must succeed or fail cleanly; a corpus that reads must score
 * without crashing. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lorac/metrics.h"

static void put(const char *path, const uint8_t *d, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) abort();
    fwrite(d, 1, n, f);
    fclose(f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const uint8_t *nul = memchr(data, 0, size);
    size_t nr = nul ? (size_t)(nul - data) : size;
    char refs[128], hyps[128];
    snprintf(refs, sizeof refs, "/tmp/lorac_fuzz_refs_%d.txt", (int)getpid());
    snprintf(hyps, sizeof hyps, "/tmp/lorac_fuzz_hyps_%d.txt", (int)getpid());
    put(refs, data, nr);
    put(hyps, nul ? nul + 1 : data + size, nul ? size - nr - 1 : 0);
    metrics_corpus c;
    lorac_err err;
    if (metrics_read_corpus(refs, hyps, &c, &err) == 0) {
        metrics_scores s;
        if (metrics_score_corpus(&c, &s, &err) != 0 && strchr(err.msg, '\n')) abort();
        metrics_corpus_free(&c);
    } else if (strchr(err.msg, '\n')) {
        abort();
    }
    unlink(refs);
    unlink(hyps);
    return 0;
}
