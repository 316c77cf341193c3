/* sampler.c — decoding configuration, greedy and sampled decoding (one slot), and the entry point
 * gen_generate that picks a decoder. Beam searches are in beam.c. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gen_internal.h"

void gen_config_default(gen_config *cfg, int32_t eos_id) {
    memset(cfg, 0, sizeof *cfg);
    cfg->max_new_tokens = 20;
    cfg->temperature = 1.0f;
    cfg->top_k = 50;
    cfg->top_p = 1.0f;
    cfg->repetition_penalty = 1.0f;
    cfg->num_beams = 1;
    cfg->length_penalty = 1.0;
    cfg->early_stopping = GEN_EARLY_HEURISTIC;
    cfg->beam_algo = GEN_BEAM_HF;
    cfg->num_return = 1;
    if (eos_id >= 0) {
        cfg->n_eos = 1;
        cfg->eos[0] = eos_id;
    }
}

void gen_config_e2e(gen_config *cfg) {
    gen_config_default(cfg, 50256);
    cfg->beam_algo = GEN_BEAM_LORA;
    cfg->num_beams = 10;
    cfg->length_penalty = 0.8;
    cfg->no_repeat_ngram_size = 4;
    cfg->repetition_penalty = 1.0f;
    cfg->max_new_tokens = 64;
    cfg->n_eos = 2;
    cfg->eos[1] = 628; // "\n\n", which ends an E2E target line
}

int gen_config_check(const gen_config *cfg, int vocab, lorac_err *err) {
    if (vocab < 2) return lorac_fail(err, LORAC_EINVAL, "generate: vocabulary of %d tokens is too small", vocab);
    if (cfg->max_new_tokens < 1)
        return lorac_fail(err, LORAC_EINVAL, "generate: max_new_tokens %d must be >= 1", cfg->max_new_tokens);
    if (cfg->min_new_tokens < 0)
        return lorac_fail(err, LORAC_EINVAL, "generate: min_new_tokens %d must be >= 0", cfg->min_new_tokens);
    if (!(cfg->temperature > 0.0f) || !isfinite(cfg->temperature))
        return lorac_fail(err, LORAC_EINVAL, "generate: temperature %g must be > 0", cfg->temperature);
    if (cfg->top_k < 0) return lorac_fail(err, LORAC_EINVAL, "generate: top_k %d must be >= 0", cfg->top_k);
    if (!(cfg->top_p > 0.0f && cfg->top_p <= 1.0f))
        return lorac_fail(err, LORAC_EINVAL, "generate: top_p %g must be in (0, 1]", cfg->top_p);
    if (!(cfg->repetition_penalty > 0.0f) || !isfinite(cfg->repetition_penalty))
        return lorac_fail(err, LORAC_EINVAL, "generate: repetition_penalty %g must be > 0",
                          cfg->repetition_penalty);
    if (cfg->no_repeat_ngram_size < 0)
        return lorac_fail(err, LORAC_EINVAL, "generate: no_repeat_ngram_size %d must be >= 0",
                          cfg->no_repeat_ngram_size);
    if (cfg->num_beams < 1 || cfg->num_beams > 4096)
        return lorac_fail(err, LORAC_EINVAL, "generate: num_beams %d must be in [1, 4096]", cfg->num_beams);
    if (!isfinite(cfg->length_penalty))
        return lorac_fail(err, LORAC_EINVAL, "generate: length_penalty must be finite");
    if (cfg->early_stopping < GEN_EARLY_HEURISTIC || cfg->early_stopping > GEN_EARLY_NEVER)
        return lorac_fail(err, LORAC_EINVAL, "generate: early_stopping %d is not a gen_early", (int)cfg->early_stopping);
    if (cfg->beam_algo != GEN_BEAM_HF && cfg->beam_algo != GEN_BEAM_LORA)
        return lorac_fail(err, LORAC_EINVAL, "generate: beam_algo %d is not a gen_beam_algo", (int)cfg->beam_algo);
    if (cfg->do_sample && (cfg->num_beams > 1 || cfg->beam_algo == GEN_BEAM_LORA))
        return lorac_fail(err, LORAC_EUNSUPPORTED, "generate: sampling with beam search is not implemented");
    int beam_hf = cfg->num_beams > 1 && cfg->beam_algo == GEN_BEAM_HF;
    if (cfg->num_return < 1 || cfg->num_return > (beam_hf ? cfg->num_beams : 1))
        return lorac_fail(err, LORAC_EINVAL, "generate: num_return %d must be in [1, %d] for this decoder",
                          cfg->num_return, beam_hf ? cfg->num_beams : 1);
    if (cfg->n_eos < 0 || cfg->n_eos > GEN_MAX_EOS)
        return lorac_fail(err, LORAC_EINVAL, "generate: %d eos ids (at most %d)", cfg->n_eos, GEN_MAX_EOS);
    for (int i = 0; i < cfg->n_eos; i++)
        if (cfg->eos[i] < 0 || cfg->eos[i] >= vocab)
            return lorac_fail(err, LORAC_EINVAL, "generate: eos id %d is outside the vocabulary of %d",
                              (int)cfg->eos[i], vocab);
    // HF's beam search needs enough non-eos candidates among its max(2, 1+n_eos)*num_beams
    if (beam_hf && vocab < (cfg->n_eos + 1 > 2 ? cfg->n_eos + 1 : 2))
        return lorac_fail(err, LORAC_EINVAL, "generate: vocabulary of %d is too small for %d eos ids",
                          vocab, cfg->n_eos);
    return LORAC_OK;
}

int gen_hyp_set(gen_hyp *h, const int32_t *tokens, int n, int finished, double score, lorac_err *err) {
    h->tokens = malloc((size_t)(n > 0 ? n : 1) * sizeof *h->tokens);
    if (!h->tokens) return lorac_fail(err, LORAC_ENOMEM, "generate: out of memory for a hypothesis");
    if (n > 0) memcpy(h->tokens, tokens, (size_t)n * sizeof *tokens);
    h->n_tokens = n;
    h->finished = finished;
    h->score = score;
    return LORAC_OK;
}

void gen_result_free(gen_result *r) {
    if (!r) return;
    for (int i = 0; i < r->n_hyps; i++) free(r->hyps[i].tokens);
    free(r->hyps);
    r->hyps = NULL;
    r->n_hyps = 0;
}

/* Greedy or sampled decoding on one slot. */
static int decode_single(const gen_model *m, const gen_config *cfg, const int32_t *prompt, int n_prompt,
                         gen_result *out, lorac_err *err) {
    int V = m->vocab, total = n_prompt + cfg->max_new_tokens, rc;
    int32_t *hist = malloc((size_t)total * sizeof *hist);
    float *logits = malloc((size_t)V * sizeof *logits);
    float *lp = malloc((size_t)V * sizeof *lp);
    float *fwork = malloc((size_t)V * sizeof *fwork);
    uint64_t *uwork = malloc((size_t)V * sizeof *uwork);
    uint8_t *seen = calloc((size_t)V, 1);
    out->hyps = calloc(1, sizeof *out->hyps);
    if (!hist || !logits || !lp || !fwork || !uwork || !seen || !out->hyps) {
        rc = lorac_fail(err, LORAC_ENOMEM, "generate: out of memory for a vocabulary of %d", V);
        goto done;
    }
    memcpy(hist, prompt, (size_t)n_prompt * sizeof *prompt);
    lorac_rng rng;
    lorac_rng_seed(&rng, cfg->seed);
    if ((rc = m->begin(m->ctx, 1, total, err)) != LORAC_OK) goto done;
    if ((rc = m->step(m->ctx, prompt, 1, n_prompt, logits, err)) != LORAC_OK) goto done;
    int n = n_prompt, finished = 0;
    double score = 0.0;
    for (;;) {
        int n_gen = n - n_prompt;
        // HF's processors, in its order, on the raw logits
        if (cfg->repetition_penalty != 1.0f)
            gen_logits_repetition_penalty(logits, V, hist, n, cfg->repetition_penalty, seen);
        gen_no_repeat(cfg, logits, V, hist, n);
        gen_logits_min_new_tokens(logits, cfg->eos, cfg->n_eos, n_gen, cfg->min_new_tokens);
        int32_t tok;
        if (cfg->do_sample) {
            if (cfg->temperature != 1.0f) gen_logits_temperature(logits, V, cfg->temperature);
            gen_logits_top_k(logits, V, cfg->top_k, fwork);
            gen_logits_top_p(logits, V, cfg->top_p, uwork);
            tok = gen_sample(logits, V, &rng);
        } else {
            tok = gen_argmax(logits, V);
        }
        memcpy(lp, logits, (size_t)V * sizeof *lp);
        gen_log_softmax(lp, V);
        score += lp[tok];
        hist[n++] = tok;
        if (gen_is_eos(cfg, tok)) {
            finished = 1;
            break;
        }
        if (n == total) break;
        if ((rc = m->step(m->ctx, &tok, 1, 1, logits, err)) != LORAC_OK) goto done;
    }
    out->n_hyps = 1;
    rc = gen_hyp_set(&out->hyps[0], hist + n_prompt, n - n_prompt, finished, score, err);
    if (rc != LORAC_OK) out->n_hyps = 0;
done:
    free(hist);
    free(logits);
    free(lp);
    free(fwork);
    free(uwork);
    free(seen);
    if (rc != LORAC_OK) gen_result_free(out);
    return rc;
}

int gen_check_prompt(const gen_model *model, const gen_config *cfg, const int32_t *prompt, int n_prompt, lorac_err *err) {
    if (n_prompt < 1) return lorac_fail(err, LORAC_EINVAL, "generate: the prompt is empty");
    for (int i = 0; i < n_prompt; i++)
        if (prompt[i] < 0 || prompt[i] >= model->vocab)
            return lorac_fail(err, LORAC_EINVAL, "generate: prompt token %d (%d) is outside the vocabulary of %d",
                              i, (int)prompt[i], model->vocab);
    if (n_prompt > INT32_MAX / 2 - cfg->max_new_tokens ||
        (model->max_len > 0 && n_prompt + cfg->max_new_tokens > model->max_len))
        return lorac_fail(err, LORAC_EINVAL,
                          "generate: a prompt of %d tokens plus max_new_tokens %d exceeds the model's %d positions",
                          n_prompt, cfg->max_new_tokens, model->max_len);
    return LORAC_OK;
}

static int check_model(const gen_model *model, const gen_config *cfg, lorac_err *err) {
    if (!model->begin || !model->step || !model->reorder)
        return lorac_fail(err, LORAC_EINVAL, "generate: the model lacks a begin, step or reorder callback");
    return gen_config_check(cfg, model->vocab, err);
}

static int is_beam(const gen_config *cfg) {
    return cfg->beam_algo == GEN_BEAM_LORA || cfg->num_beams > 1;
}

static int take_result(void *user, int i, gen_result *r, lorac_err *err) {
    (void)i, (void)err;
    *(gen_result *)user = *r;
    r->hyps = NULL;
    r->n_hyps = 0;
    return LORAC_OK;
}

int gen_generate(const gen_model *model, const gen_config *cfg, const int32_t *prompt, int n_prompt,
                 gen_result *out, lorac_err *err) {
    out->hyps = NULL;
    out->n_hyps = 0;
    int rc = check_model(model, cfg, err);
    if (rc == LORAC_OK) rc = gen_check_prompt(model, cfg, prompt, n_prompt, err);
    if (rc != LORAC_OK) return rc;
    if (is_beam(cfg)) return gen_beam_batch(model, cfg, &prompt, &n_prompt, 1, 1, take_result, out, err);
    return decode_single(model, cfg, prompt, n_prompt, out, err);
}

int gen_generate_many(const gen_model *model, const gen_config *cfg, const int32_t *const *prompts, const int *n_prompts,
                      int n, int batch, gen_emit_fn emit, void *user, lorac_err *err) {
    int rc = check_model(model, cfg, err);
    for (int i = 0; rc == LORAC_OK && i < n; i++) {
        lorac_err e = {0};
        if ((rc = gen_check_prompt(model, cfg, prompts[i], n_prompts[i], &e)) != LORAC_OK)
            lorac_fail(err, rc, "request %d: %s", i, e.msg);
    }
    if (rc != LORAC_OK || n < 1) return rc;
    if (is_beam(cfg)) return gen_beam_batch(model, cfg, prompts, n_prompts, n, batch, emit, user, err);
    for (int i = 0; rc == LORAC_OK && i < n; i++) { // one slot per request: nothing to batch yet
        gen_result r;
        if ((rc = decode_single(model, cfg, prompts[i], n_prompts[i], &r, err)) != LORAC_OK) break;
        rc = emit(user, i, &r, err);
        gen_result_free(&r);
    }
    return rc;
}
