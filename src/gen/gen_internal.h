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

/* Checks a prompt against the model and cfg (tokens in the vocabulary, room for max_new_tokens). */
int gen_check_prompt(const gen_model *model, const gen_config *cfg, const int32_t *prompt, int n_prompt, lorac_err *err);

/* Beam search for n requests, up to batch of them in one model step (beam_batch.c); the config
 * and the prompts are already checked. */
int gen_beam_batch(const gen_model *m, const gen_config *cfg, const int32_t *const *prompts, const int *n_prompts, int n,
                   int batch, gen_emit_fn emit, void *user, lorac_err *err);

/* ---- beam search (beam.c): one request's decode state, advanced one model step at a time ---- */
typedef struct beam_state {
    int NB, V, len;     /* beams, vocabulary, tokens per history row */
    float *logits;      /* (NB, V) the model's output, then log-probs (the driver's buffer) */
    float *scores;      /* (NB) running sum of log-probs per beam */
    float *next_scores; /* (NB) */
    int32_t *hist;      /* (NB, len) token history per beam */
    int32_t *hist2;     /* (NB, len) reorder scratch */
    int32_t *src;       /* (NB) beam each new beam continues: the model's slots follow it */
    int32_t *tokens;    /* (NB) token each new beam appends: the next step's input */
    uint8_t *seen;      /* (V) zeroed scratch for the repetition penalty */
    float *cand_score;  /* (K) top candidates, best first */
    int64_t *cand_idx;  /* (K) their flat indices beam*V + token */
} beam_state;

typedef struct hf_hyps {
    gen_hyp *h; /* (NB+1) in list order */
    int n;
    double worst;
} hf_hyps;

typedef struct beam_req {
    beam_state s;
    const gen_config *cfg;
    int P, K;     /* prompt tokens, candidates per step */
    int t;        /* new tokens selected so far (the next select is step t) */
    int finished; /* no further model step: beam_req_finish gives the result */
    int hf_done;  /* GEN_BEAM_HF: the hypotheses are final (else the running beams join them) */
    hf_hyps hs;   /* GEN_BEAM_HF: the finished hypotheses */
    int32_t *best_seq; /* GEN_BEAM_LORA: the single best (M), */
    int have_best, best_len;
    float best;
} beam_req;

int beam_req_init(beam_req *r, const gen_config *cfg, int V, int n_prompt, lorac_err *err);
/* After the prompt's prefill: logits (NB, V), row 0 the prompt's, becomes the beams' first logits
 * (the model's slots are all copies of the prompt's: src is all 0). */
void beam_req_start(beam_req *r, const int32_t *prompt, float *logits);
/* One step on r->s.logits: sets s.tokens and s.src (the beams' next tokens and parents), and
 * r->finished; otherwise the model reorders the slots by src and steps s.tokens into s.logits. */
int beam_req_select(beam_req *r, lorac_err *err);
int beam_req_finish(beam_req *r, gen_result *out, lorac_err *err);
void beam_req_free(beam_req *r);

#endif
