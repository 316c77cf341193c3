/* A causal model's KV-cache session seen as the decoder's gen_model, and the eos ids a model ends a
 * sequence (or a chat turn) with. Lives in gen/ because it joins the models to the decoder. */
#include <stdlib.h>

#include "lorac/generate.h"

static int gm_begin(void *ctx, int n_slots, int max_len, lorac_err *err) {
    return model_session_begin(ctx, n_slots, max_len, err);
}

static int gm_step(void *ctx, const int32_t *tokens, int n_seq, int n_new, float *logits, lorac_err *err) {
    return model_session_step(ctx, tokens, n_seq, n_new, logits, err);
}

static int gm_reorder(void *ctx, const int32_t *src, int n_seq, lorac_err *err) {
    return model_session_reorder(ctx, src, n_seq, err);
}

static int gm_step_slots(void *ctx, const int *slots, const int32_t *tokens, int n_seq, int n_new, float *logits,
                         lorac_err *err) {
    return model_session_step_slots(ctx, slots, tokens, n_seq, n_new, logits, err);
}

static int gm_reset_slot(void *ctx, int slot, lorac_err *err) {
    return model_session_reset_slot(ctx, slot, err);
}

void gen_model_session(gen_model *gm, const model *m, model_session *s) {
    gm->ctx = s;
    gm->vocab = model_cfg(m)->vocab_size;
    gm->max_len = model_max_len(m);
    gm->begin = gm_begin;
    gm->step = gm_step;
    gm->reorder = gm_reorder;
    /* several requests share a step only where that changes no bits (model_session_rows_exact) */
    int exact = model_session_rows_exact(s);
    gm->step_slots = exact ? gm_step_slots : NULL;
    gm->reset_slot = exact ? gm_reset_slot : NULL;
}

void gen_model_eos(const model *m, gen_config *gc) {
    const model_tokens *k = model_tok(m);
    gc->n_eos = 0;
    if (k->eos >= 0) gc->eos[gc->n_eos++] = k->eos;
    if (k->has_chat && k->im_end >= 0 && k->im_end != k->eos) gc->eos[gc->n_eos++] = k->im_end;
}

/* A token starts a word when its text starts with whitespace or ASCII punctuation (or is empty: special
 * tokens); letters, digits and bytes >= 0x80 (accents, symbols, pieces of a character) continue one.
 * So a tokenizer that splits digits or accents gives the words GPT-2's BPE mostly has as one token. */
int gen_model_word_starts(const model *m, uint8_t **out, lorac_err *err) {
    int V = model_cfg(m)->vocab_size;
    uint8_t *ws = malloc((size_t)V);
    if (!ws) return lorac_fail(err, LORAC_ENOMEM, "generate: out of memory for %d word starts", V);
    for (int32_t t = 0; t < V; t++) {
        char *text = NULL;
        size_t len = 0;
        int rc = model_decode(m, &t, 1, 0, &text, &len, err);
        if (rc) {
            free(ws);
            return rc;
        }
        unsigned char c = len ? (unsigned char)text[0] : ' ';
        int alnum = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
        ws[t] = c < 0x80 && !alnum;
        free(text);
    }
    *out = ws;
    return LORAC_OK;
}

void gen_model_e2e(const model *m, gen_config *cfg) {
    int32_t *ids = NULL;
    size_t n = 0;
    gen_config_e2e(cfg);
    gen_model_eos(m, cfg);
    if (!model_encode(m, "\n\n", 2, 0, &ids, &n, NULL) && n == 1 && cfg->n_eos < GEN_MAX_EOS) cfg->eos[cfg->n_eos++] = ids[0];
    free(ids);
}
