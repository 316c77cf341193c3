/* A model family's tokenizer: one of lorac's three tokenizers behind one set of calls, so the layers
 * above load, look up, encode and decode without knowing which. */
#include <stdlib.h>
#include <string.h>

#include "lorac/tokenizer.h"
#include "lorac/wordpiece.h"

struct text_tok {
    bpe_tokenizer *bpe;
    tok *tok;
    wp_tokenizer *wp;
};

int text_tok_load(const char *path, text_tok_kind kind, text_tok **out, lorac_err *err) {
    text_tok *t = calloc(1, sizeof *t);
    *out = NULL;
    if (!t) return lorac_fail(err, LORAC_ENOMEM, "%s: out of memory", path);
    int rc = kind == TEXT_TOK_BPE_FILES ? bpe_load_dir(path, &t->bpe, err)
             : kind == TEXT_TOK_ANY     ? tok_load(path, &t->tok, err)
                                        : wp_load(path, &t->wp, err);
    if (rc) {
        text_tok_free(t);
        return rc;
    }
    *out = t;
    return LORAC_OK;
}

void text_tok_free(text_tok *t) {
    if (!t) return;
    bpe_free(t->bpe);
    tok_free(t->tok);
    wp_free(t->wp);
    free(t);
}

int32_t text_tok_id(const text_tok *t, const char *piece) {
    if (!piece) return -1;
    if (t->bpe) return bpe_token_id(t->bpe, piece);
    if (t->tok) return tok_find(t->tok, piece);
    return wp_token_id(t->wp, piece);
}

int text_tok_vocab_size(const text_tok *t) {
    return t->bpe ? bpe_vocab_size(t->bpe) : t->tok ? tok_vocab_size(t->tok) : wp_vocab_size(t->wp);
}

const tok *text_tok_generic(const text_tok *t) { return t->tok; }

int text_tok_encode(const text_tok *t, const char *text, size_t len, int parse_special, int32_t **ids, size_t *n,
                    lorac_err *err) {
    if (t->tok) return tok_encode(t->tok, text, len, 0, parse_special, ids, n, err);
    if (t->wp) return wp_encode(t->wp, text, len, ids, n, err);
    return parse_special ? bpe_encode_special(t->bpe, text, len, ids, n, err) : bpe_encode(t->bpe, text, len, ids, n, err);
}

/* A BPE vocabulary's special tokens are spelled "<|...|>" (GPT-2's <|endoftext|>). */
static int bpe_special(const bpe_tokenizer *b, int32_t id, const int32_t *extra, int n_extra) {
    size_t tl = 0;
    const char *s = bpe_token_bytes(b, id, &tl);
    for (int i = 0; i < n_extra; i++)
        if (id == extra[i]) return 1;
    return s && tl > 4 && !memcmp(s, "<|", 2) && !memcmp(s + tl - 2, "|>", 2);
}

int text_tok_decode(const text_tok *t, const int32_t *ids, size_t n, int skip_special, const int32_t *extra, int n_extra,
                    char **text, size_t *len, lorac_err *err) {
    if (t->tok) return tok_decode(t->tok, ids, n, skip_special, text, len, err);
    if (t->wp) return lorac_fail(err, LORAC_EUNSUPPORTED, "WordPiece ids are not decoded to text");
    int32_t *keep = malloc(n * sizeof *keep + 1);
    if (!keep) return lorac_fail(err, LORAC_ENOMEM, "out of memory");
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (!skip_special || !bpe_special(t->bpe, ids[i], extra, n_extra)) keep[k++] = ids[i];
    int rc = bpe_decode(t->bpe, keep, k, text, len, err);
    free(keep);
    return rc;
}
