/* A Llama-family model seen through the decoder's gen_model interface (a llama_session is the
 * per-request KV cache). */
#include "lorac/lm.h"

static int gl_begin(void *ctx, int n_slots, int max_len, lorac_err *err) {
    return llama_session_begin(ctx, n_slots, max_len, err);
}

static int gl_step(void *ctx, const int32_t *tokens, int n_seq, int n_new, float *logits, lorac_err *err) {
    return llama_session_step(ctx, tokens, n_seq, n_new, logits, err);
}

static int gl_reorder(void *ctx, const int32_t *src, int n_seq, lorac_err *err) {
    return llama_session_reorder(ctx, src, n_seq, err);
}

void gen_model_llama(gen_model *gm, const llama_model *m, llama_session *s) {
    gm->ctx = s;
    gm->vocab = m->cfg.vocab_size;
    gm->max_len = m->cfg.n_positions;
    gm->begin = gl_begin;
    gm->step = gl_step;
    gm->reorder = gl_reorder;
}
