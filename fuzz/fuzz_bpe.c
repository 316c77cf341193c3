/* libFuzzer target for the GPT-2 byte-level BPE: any bytes must encode (GPT-2 is byte-level, so
 * invalid UTF-8 is encoded byte by byte) and decode back to exactly the same bytes. The vocabulary is
 * the toy one under tests/fixtures/bpe/toy. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lorac/tokenizer.h"

static bpe_tokenizer *btok;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!btok) {
        lorac_err err;
        if (bpe_load_dir(LORAC_SOURCE_DIR "/tests/fixtures/bpe/toy", &btok, &err)) {
            fprintf(stderr, "%s\n", err.msg);
            abort();
        }
    }
    int32_t *ids = NULL;
    size_t n = 0;
    lorac_err err;
    if (bpe_encode(btok, (const char *)data, size, &ids, &n, &err)) abort(); /* every input encodes */
    char *text = NULL;
    size_t len = 0;
    if (bpe_decode(btok, ids, n, &text, &len, &err)) abort();
    if (len != size || (size && memcmp(text, data, size))) abort(); /* exact round trip */
    free(text);
    free(ids);
    ids = NULL;
    if (bpe_encode_special(btok, (const char *)data, size, &ids, &n, &err) == 0) free(ids);
    return 0;
}
