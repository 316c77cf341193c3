/* GPT-2 seen through the decoder's gen_model interface (a gpt2_session is the per-request cache). */
#include "lorac/gen_gpt2.h"

static int gg_begin(void *ctx, int n_slots, int max_len, lorac_err *err) {
    return gpt2_session_begin(ctx, n_slots, max_len, err);
}

static int gg_step(void *ctx, const int32_t *tokens, int n_seq, int n_new, float *logits, lorac_err *err) {
    return gpt2_session_step(ctx, tokens, n_seq, n_new, logits, err);
}

static int gg_reorder(void *ctx, const int32_t *src, int n_seq, lorac_err *err) {
    return gpt2_session_reorder(ctx, src, n_seq, err);
}

void gen_model_gpt2(gen_model *gm, const gpt2_model *m, gpt2_session *s) {
    gm->ctx = s;
    gm->vocab = m->cfg.vocab_size;
    gm->max_len = m->cfg.n_positions;
    gm->begin = gg_begin;
    gm->step = gg_step;
    gm->reorder = gg_reorder;
}
