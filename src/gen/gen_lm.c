/* A causal model's KV-cache session seen as the decoder's gen_model, and the eos ids a model ends a
 * sequence (or a chat turn) with. Lives in gen/ because it joins the models to the decoder. */
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

void gen_model_session(gen_model *gm, const model *m, model_session *s) {
    gm->ctx = s;
    gm->vocab = model_cfg(m)->vocab_size;
    gm->max_len = model_max_len(m);
    gm->begin = gm_begin;
    gm->step = gm_step;
    gm->reorder = gm_reorder;
}

void gen_model_eos(const model *m, gen_config *gc) {
    const model_tokens *k = model_tok(m);
    gc->n_eos = 0;
    if (k->eos >= 0) gc->eos[gc->n_eos++] = k->eos;
    if (k->has_chat && k->im_end >= 0 && k->im_end != k->eos) gc->eos[gc->n_eos++] = k->im_end;
}
