/* The model's tokenizer, of the kind its family names (text_tok: GPT-2's and RoBERTa's vocab.json +
 * merges.txt, tokenizer.json or a GGUF's metadata, BERT's WordPiece vocab.txt), and the special
 * token ids training, generation and sentence-pair encoding use. */
#include <stdlib.h>
#include <string.h>

#include "models/model_internal.h"

struct model_text {
    text_tok *tt;
    model_tokens ids;
};

void model_text_free(model_text *t) {
    if (!t) return;
    text_tok_free(t->tt);
    free(t);
}

int model_text_load(model *m, const char *path, lorac_err *err) {
    const arch_family *f = m->fam;
    model_text *t = calloc(1, sizeof *t);
    if (!t) return lorac_fail(err, LORAC_ENOMEM, "%s: out of memory", path);
    m->text = t;
    int rc = text_tok_load(path, f->tok, &t->tt, err);
    if (rc) return rc;
    const tok *g = text_tok_generic(t->tt);
    model_tokens *k = &t->ids;
    k->bos = m->cfg.bos_token_id, k->eos = m->cfg.eos_token_id, k->pad = m->cfg.pad_token_id;
    k->im_end = text_tok_id(t->tt, "<|im_end|>");
    k->has_chat = g && k->im_end >= 0 && tok_find(g, "<|im_start|>") >= 0;
    if (g) {
        k->add_bos = tok_add_bos(g) && tok_bos_id(g) >= 0;
        if (tok_bos_id(g) >= 0) k->bos = tok_bos_id(g);
        if (tok_eos_id(g) >= 0) k->eos = tok_eos_id(g);
    }
    k->cls = text_tok_id(t->tt, f->cls_tok), k->sep = text_tok_id(t->tt, f->sep_tok);
    k->pair_seps = f->pair_seps, k->pair_type_ids = f->pair_type_ids;
    if (f->pad_tok && (k->pad = text_tok_id(t->tt, f->pad_tok)) < 0) k->pad = m->cfg.pad_token_id;
    if (f->cls_tok && (k->cls < 0 || k->sep < 0 || k->pad < 0))
        return lorac_fail(err, LORAC_EFORMAT, "%s: the vocabulary lacks %s, %s or %s", path, f->cls_tok, f->sep_tok, f->pad_tok);
    if (text_tok_vocab_size(t->tt) > m->cfg.vocab_size)
        return lorac_fail(err, LORAC_EFORMAT, "%s: the tokenizer has %d tokens but the model only %d", path,
                          text_tok_vocab_size(t->tt), m->cfg.vocab_size);
    return LORAC_OK;
}

int model_load_tokenizer(model *m, const char *dir, lorac_err *err) {
    if (m->text) return LORAC_OK;
    int rc = model_text_load(m, dir ? dir : m->path, err);
    if (rc) model_text_free(m->text), m->text = NULL;
    return rc;
}

/* A GGUF's tokenizer (metadata) as the Hugging Face files of a model directory; none when the GGUF has
 * none lorac reads (weights-only files: `lorac merge` loads the tokenizer first and says so). */
int model_save_tokenizer(model *m, const char *dir, lorac_err *err) {
    lorac_err absent;
    const tok *g = m->text || !model_load_tokenizer(m, NULL, &absent) ? text_tok_generic(m->text->tt) : NULL;
    return g ? tok_save_hf(g, dir, err) : LORAC_OK;
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
    return t ? text_tok_encode(t->tt, text, len, parse_special, ids, n, err) : LORAC_EINVAL;
}

int model_decode(const model *m, const int32_t *ids, size_t n, int skip_special, char **text, size_t *len, lorac_err *err) {
    const model_text *t = text_of(m, err);
    if (!t) return LORAC_EINVAL;
    const int32_t extra[3] = {t->ids.cls, t->ids.sep, t->ids.pad}; /* a BPE family's <s>, </s>, <pad> */
    int rc = text_tok_decode(t->tt, ids, n, skip_special, extra, 3, text, len, err);
    return rc == LORAC_EUNSUPPORTED ? lorac_fail(err, rc, "%s: WordPiece ids are not decoded to text", m->path) : rc;
}

int model_chat_format(const model *m, const model_chat_msg *msgs, int n, int add_generation_prompt, char **out, size_t *len,
                      lorac_err *err) {
    *out = NULL;
    *len = 0;
    if (!m->text || !m->text->ids.has_chat)
        return lorac_fail(err, LORAC_EUNSUPPORTED, "%s: the tokenizer has no chat template (ChatML)", m->path);
    int rc = tok_chat_format(text_tok_generic(m->text->tt), (const tok_chat_msg *)msgs, n, add_generation_prompt, out, err);
    if (!rc) *len = strlen(*out);
    return rc;
}
