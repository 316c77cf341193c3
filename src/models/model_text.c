/* The model's tokenizer: GPT-2's and RoBERTa's vocab.json + merges.txt (bpe_*), tokenizer.json or a
 * GGUF's metadata (tok_*, the Llama family), or BERT's WordPiece vocab.txt (wp_*), as the family
 * table says; and the special token ids training, generation and sentence-pair encoding use. */
#include <stdlib.h>
#include <string.h>

#include "lorac/tokenizer.h"
#include "lorac/wordpiece.h"
#include "models/model_text.h"

struct model_text {
    bpe_tokenizer *bpe;
    tok *tok;
    wp_tokenizer *wp;
    model_tokens ids;
};

void model_text_free(model_text *t) {
    if (!t) return;
    bpe_free(t->bpe);
    tok_free(t->tok);
    wp_free(t->wp);
    free(t);
}

static int32_t find_id(const model_text *t, const char *piece) {
    if (!piece) return -1;
    if (t->bpe) return bpe_token_id(t->bpe, piece);
    if (t->tok) return tok_find(t->tok, piece);
    return wp_token_id(t->wp, piece);
}

static int vocab_size(const model_text *t) {
    return t->bpe ? bpe_vocab_size(t->bpe) : t->tok ? tok_vocab_size(t->tok) : wp_vocab_size(t->wp);
}

int model_text_load(model *m, const char *path, lorac_err *err) {
    const arch_family *f = m->fam;
    model_text *t = calloc(1, sizeof *t);
    if (!t) return lorac_fail(err, LORAC_ENOMEM, "%s: out of memory", path);
    m->text = t;
    int rc = f->tok == ARCH_TOK_BPE ? bpe_load_dir(path, &t->bpe, err)
             : f->tok == ARCH_TOK_GENERIC ? tok_load(path, &t->tok, err)
                                          : wp_load(path, &t->wp, err);
    if (rc) return rc;
    model_tokens *k = &t->ids;
    k->bos = m->cfg.bos_token_id, k->eos = m->cfg.eos_token_id, k->pad = m->cfg.pad_token_id;
    k->im_end = find_id(t, "<|im_end|>");
    k->has_chat = t->tok && k->im_end >= 0 && tok_find(t->tok, "<|im_start|>") >= 0;
    if (t->tok) {
        k->add_bos = tok_add_bos(t->tok) && tok_bos_id(t->tok) >= 0;
        if (tok_bos_id(t->tok) >= 0) k->bos = tok_bos_id(t->tok);
        if (tok_eos_id(t->tok) >= 0) k->eos = tok_eos_id(t->tok);
    }
    k->cls = find_id(t, f->cls_tok), k->sep = find_id(t, f->sep_tok);
    k->pair_seps = f->pair_seps, k->pair_type_ids = f->pair_type_ids;
    if (f->pad_tok && (k->pad = find_id(t, f->pad_tok)) < 0) k->pad = m->cfg.pad_token_id;
    if (f->cls_tok && (k->cls < 0 || k->sep < 0 || k->pad < 0))
        return lorac_fail(err, LORAC_EFORMAT, "%s: the vocabulary lacks %s, %s or %s", path, f->cls_tok, f->sep_tok, f->pad_tok);
    if (vocab_size(t) > m->cfg.vocab_size)
        return lorac_fail(err, LORAC_EFORMAT, "%s: the tokenizer has %d tokens but the model only %d", path, vocab_size(t),
                          m->cfg.vocab_size);
    return LORAC_OK;
}

int model_load_tokenizer(model *m, const char *dir, lorac_err *err) {
    if (m->text) return LORAC_OK;
    int rc = model_text_load(m, dir ? dir : m->path, err);
    if (rc) model_text_free(m->text), m->text = NULL;
    return rc;
}

static const model_text *text_of(const model *m, lorac_err *err) {
    if (!m->text) lorac_fail(err, LORAC_EINVAL, "%s: the model was loaded without its tokenizer", m->path);
    return m->text;
}

const model_tokens *model_tok(const model *m) {
    static const model_tokens none = {-1, -1, -1, -1, 0, 0, -1, -1, 0, 0};
    return m->text ? &m->text->ids : &none;
}

int model_encode(const model *m, const char *text, size_t len, int parse_special, int32_t **ids, size_t *n, lorac_err *err) {
    const model_text *t = text_of(m, err);
    if (!t) return LORAC_EINVAL;
    if (t->tok) return tok_encode(t->tok, text, len, 0, parse_special, ids, n, err);
    if (t->wp) return wp_encode(t->wp, text, len, ids, n, err);
    return parse_special ? bpe_encode_special(t->bpe, text, len, ids, n, err) : bpe_encode(t->bpe, text, len, ids, n, err);
}

/* A BPE vocabulary's special tokens: spelled "<|...|>" (GPT-2), or the family's [CLS]/[SEP]/[PAD]. */
static int bpe_special(const model_text *t, int32_t id) {
    size_t tl = 0;
    const char *s = bpe_token_bytes(t->bpe, id, &tl);
    if (id == t->ids.cls || id == t->ids.sep || id == t->ids.pad) return 1;
    return s && tl > 4 && !memcmp(s, "<|", 2) && !memcmp(s + tl - 2, "|>", 2);
}

int model_decode(const model *m, const int32_t *ids, size_t n, int skip_special, char **text, size_t *len, lorac_err *err) {
    const model_text *t = text_of(m, err);
    if (!t) return LORAC_EINVAL;
    if (t->tok) return tok_decode(t->tok, ids, n, skip_special, text, len, err);
    if (t->wp) return lorac_fail(err, LORAC_EUNSUPPORTED, "%s: WordPiece ids are not decoded to text", m->path);
    int32_t *keep = malloc(n * sizeof *keep + 1);
    if (!keep) return lorac_fail(err, LORAC_ENOMEM, "out of memory");
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (!skip_special || !bpe_special(t, ids[i])) keep[k++] = ids[i];
    int rc = bpe_decode(t->bpe, keep, k, text, len, err);
    free(keep);
    return rc;
}

int model_chat_format(const model *m, const model_chat_msg *msgs, int n, int add_generation_prompt, char **out, size_t *len,
                      lorac_err *err) {
    *out = NULL;
    *len = 0;
    if (!m->text || !m->text->ids.has_chat)
        return lorac_fail(err, LORAC_EUNSUPPORTED, "%s: the tokenizer has no chat template (ChatML)", m->path);
    int rc = tok_chat_format(m->text->tok, (const tok_chat_msg *)msgs, n, add_generation_prompt, out, err);
    if (!rc) *len = strlen(*out);
    return rc;
}
