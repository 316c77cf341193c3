/* gen_internal.h — shared between the decoders of src/gen (not public). */
#ifndef LORAC_GEN_INTERNAL_H
#define LORAC_GEN_INTERNAL_H

#include "lorac/generate.h"

static inline int gen_is_eos(const gen_config *cfg, int32_t t) {
    for (int i = 0; i < cfg->n_eos; i++)
        if (cfg->eos[i] == t) return 1;
    return 0;
}

/* The no-repeat-ngram rule the config asks for: over tokens, or over words. */
static inline void gen_no_repeat(const gen_config *cfg, float *x, int V, const int32_t *hist, int n_hist) {
    if (cfg->ngram_word_start)
        gen_logits_no_repeat_word_ngram(x, V, hist, n_hist, cfg->no_repeat_ngram_size, cfg->ngram_word_start);
    else
        gen_logits_no_repeat_ngram(x, V, hist, n_hist, cfg->no_repeat_ngram_size);
}

/* Fills h with a copy of tokens (n). */
int gen_hyp_set(gen_hyp *h, const int32_t *tokens, int n, int finished, double score, lorac_err *err);

/* Beam searches; prompt and config are already checked, model->begin not yet called. */
int gen_beam_hf(const gen_model *m, const gen_config *cfg, const int32_t *prompt, int n_prompt,
                gen_result *out, lorac_err *err);
int gen_beam_lora(const gen_model *m, const gen_config *cfg, const int32_t *prompt, int n_prompt,
                  gen_result *out, lorac_err *err);

#endif
