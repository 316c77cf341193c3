/* libFuzzer target for the generic tokenizer. The first byte picks what the rest is:
 *   bit 7 set: a GGUF file, loaded with tok_load_gguf (any bytes: an error or a tokenizer, never a
 *              crash; a tokenizer that loads then encodes the text "Hello <|im_start|> 123");
 *   else:      text for one of the committed tiny tokenizers (tests/fixtures/tok: byte-level with
 *              SmolLM2's, Llama 3's and Qwen2's pre-tokenizers, SentencePiece from GGUF and from
 *              tokenizer.json), bit 3 = parse special tokens. Every text encodes; byte-level ones
 *              decode back to exactly the text, SentencePiece ones too when the text has no "▁",
 *              no special tokens are parsed and (legacy prepend) the decode strips the added space. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lorac/gguf.h"
#include "lorac/tokenizer.h"

#define NTOK 5
static tok *toks[NTOK];

static void load_all(void) {
    static const char *const paths[NTOK] = {"bl_smollm.gguf", "bl_llama3.gguf", "bl_qwen2/tokenizer.json", "spm.gguf",
                                            "spm_legacy/tokenizer.json"};
    for (int i = 0; i < NTOK; i++) {
        char path[1024];
        lorac_err err;
        snprintf(path, sizeof path, "%s/tests/fixtures/tok/%s", LORAC_SOURCE_DIR, paths[i]);
        if (tok_load(path, &toks[i], &err)) {
            fprintf(stderr, "%s\n", err.msg);
            abort();
        }
    }
}

static void fuzz_gguf(const uint8_t *data, size_t size) {
    gguf_file g;
    lorac_err err;
    if (gguf_open_buffer(data, size, "fuzz.gguf", &g, &err)) return;
    tok *t = NULL;
    if (tok_load_gguf(&g, NULL, &t, &err) == 0) {
        int32_t *ids = NULL;
        size_t n = 0;
        const char *s = "Hello <|im_start|> 123";
        if (tok_encode(t, s, strlen(s), 1, 1, &ids, &n, &err) == 0) {
            char *text = NULL;
            size_t len = 0;
            if (tok_decode(t, ids, n, 0, &text, &len, &err) == 0) free(text);
            free(ids);
        }
        tok_chat_msg m = {"user", "hi"};
        char *chat = NULL;
        if (tok_chat_format(t, &m, 1, 1, &chat, &err) == 0) free(chat);
        tok_free(t);
    }
    gguf_close(&g);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!toks[0]) load_all();
    if (size == 0) return 0;
    if (data[0] & 0x80) {
        fuzz_gguf(data + 1, size - 1);
        return 0;
    }
    const tok *t = toks[data[0] % NTOK];
    int special = (data[0] >> 3) & 1;
    const char *text = (const char *)data + 1;
    size_t len = size - 1;
    int32_t *ids = NULL;
    size_t n = 0;
    lorac_err err;
    if (tok_encode(t, text, len, 0, special, &ids, &n, &err)) abort(); /* every text encodes */
    char *back = NULL;
    size_t blen = 0;
    if (tok_decode(t, ids, n, 0, &back, &blen, &err)) abort();
    int exact = tok_get_kind(t) == TOK_GPT2_BPE;
    if (!exact && !special) {
        exact = 1;
        for (size_t i = 0; i + 2 < len; i++)
            if (!memcmp(text + i, "\xE2\x96\x81", 3)) exact = 0;
    }
    if (exact && (blen != len || (len && memcmp(back, text, len)))) abort();
    free(back);
    free(ids);
    return 0;
}
