/* beam.c — beam search, as transformers 4.40 does it (gen_beam_hf) and as the LoRA paper's
 * examples/NLG/src/gpt2_beam.py does it (gen_beam_lora). The differences are listed at the top of
 * include/lorac/generate.h.
 *
 * Shapes: NB beams, V vocabulary, P prompt tokens, M = max_new_tokens.
 * The decode state (struct beam_state) holds everything per request; the model keeps one KV-cache
 * slot per beam and follows the beams through reorder().
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gen_internal.h"

typedef struct beam_state {
    int NB, V, len;   /* beams, vocabulary, tokens per history row */
    float *logits;    /* (NB, V) the model's output, then log-probs */
    float *scores;    /* (NB) running sum of log-probs per beam */
    float *next_scores; /* (NB) */
    int32_t *hist;    /* (NB, len) token history per beam */
    int32_t *hist2;   /* (NB, len) reorder scratch */
    int32_t *src;     /* (NB) beam each new beam continues */
    int32_t *tokens;  /* (NB) token each new beam appends */
    uint8_t *seen;    /* (V) zeroed scratch for the repetition penalty */
    float *cand_score; /* (K) top candidates, best first */
    int64_t *cand_idx; /* (K) their flat indices beam*V + token */
} beam_state;

static void beam_state_free(beam_state *s) {
    free(s->logits);
    free(s->scores);
    free(s->next_scores);
    free(s->hist);
    free(s->hist2);
    free(s->src);
    free(s->tokens);
    free(s->seen);
    free(s->cand_score);
    free(s->cand_idx);
}

static int beam_state_init(beam_state *s, int NB, int V, int len, int K, lorac_err *err) {
    memset(s, 0, sizeof *s);
    s->NB = NB;
    s->V = V;
    s->len = len;
    size_t nv, nl;
    if (lorac_size_mul((size_t)NB, (size_t)V, &nv) || lorac_size_mul((size_t)NB, (size_t)len, &nl) ||
        nv > SIZE_MAX / sizeof(float) || nl > SIZE_MAX / sizeof(int32_t))
        return lorac_fail(err, LORAC_ENOMEM, "generate: %d beams of %d tokens overflow", NB, len);
    s->logits = malloc(nv * sizeof *s->logits);
    s->scores = malloc((size_t)NB * sizeof *s->scores);
    s->next_scores = malloc((size_t)NB * sizeof *s->next_scores);
    s->hist = malloc(nl * sizeof *s->hist);
    s->hist2 = malloc(nl * sizeof *s->hist2);
    s->src = malloc((size_t)NB * sizeof *s->src);
    s->tokens = malloc((size_t)NB * sizeof *s->tokens);
    s->seen = calloc((size_t)V, 1);
    s->cand_score = malloc((size_t)K * sizeof *s->cand_score);
    s->cand_idx = malloc((size_t)K * sizeof *s->cand_idx);
    if (!s->logits || !s->scores || !s->next_scores || !s->hist || !s->hist2 || !s->src || !s->tokens ||
        !s->seen || !s->cand_score || !s->cand_idx) {
        beam_state_free(s);
        return lorac_fail(err, LORAC_ENOMEM, "generate: out of memory for %d beams over %d tokens", NB, V);
    }
    return LORAC_OK;
}

// Keeps the K best of the candidate rows x (R, V) + add[r], best first; on equal values the lower
// flat index r*V+v comes first (a strict > against the K-th, scanning in index order).
// Returns how many were kept (min(K, R*V)).
static int topk_candidates(const float *x, const float *add, int R, int V, int K, float *best, int64_t *idx) {
    int n = 0;
    for (int r = 0; r < R; r++) {
        for (int v = 0; v < V; v++) {
            float s = add ? x[(size_t)r * V + v] + add[r] : x[(size_t)r * V + v];
            if (n == K && !(s > best[K - 1])) continue;
            int pos = n < K ? n++ : K - 1;
            while (pos > 0 && s > best[pos - 1]) {
                best[pos] = best[pos - 1];
                idx[pos] = idx[pos - 1];
                pos--;
            }
            best[pos] = s;
            idx[pos] = (int64_t)r * V + v;
        }
    }
    return n;
}

// Beam b's history row := old row src[b] + token[b]; the model follows with reorder().
static int beam_advance(beam_state *s, const gen_model *m, int cur, lorac_err *err) {
    for (int b = 0; b < s->NB; b++) {
        memcpy(s->hist2 + (size_t)b * s->len, s->hist + (size_t)s->src[b] * s->len, (size_t)cur * sizeof *s->hist);
        s->hist2[(size_t)b * s->len + cur] = s->tokens[b];
    }
    int32_t *t = s->hist;
    s->hist = s->hist2;
    s->hist2 = t;
    int identity = 1;
    for (int b = 0; b < s->NB; b++) identity &= s->src[b] == b;
    return identity ? LORAC_OK : m->reorder(m->ctx, s->src, s->NB, err); // a cache copy saved
}

// Prefill slot 0 with the prompt, then copy it into all NB slots (logits rows too).
static int beam_prefill(beam_state *s, const gen_model *m, const int32_t *prompt, int P, int hist_prompt,
                        lorac_err *err) {
    int rc = m->begin(m->ctx, s->NB, s->len + (hist_prompt ? 0 : P), err);
    if (rc == LORAC_OK) rc = m->step(m->ctx, prompt, 1, P, s->logits, err);
    if (rc != LORAC_OK) return rc;
    for (int b = 0; b < s->NB; b++) {
        s->src[b] = 0;
        if (b > 0) memcpy(s->logits + (size_t)b * s->V, s->logits, (size_t)s->V * sizeof *s->logits);
        if (hist_prompt) memcpy(s->hist + (size_t)b * s->len, prompt, (size_t)P * sizeof *prompt);
    }
    return s->NB > 1 ? m->reorder(m->ctx, s->src, s->NB, err) : LORAC_OK;
}

/* ---------------------------------------------------------------------------------------------
 * HF: BeamHypotheses keeps up to NB finished hypotheses in insertion order, like the Python list.
 * ------------------------------------------------------------------------------------------- */
typedef struct hf_hyps {
    gen_hyp *h;  /* (NB+1) in list order */
    int n;
    double worst;
} hf_hyps;

static int hf_hyps_add(hf_hyps *hs, const gen_config *cfg, const int32_t *tokens, int n_tokens,
                       int finished, float sum_logprobs, int generated_len, lorac_err *err) {
    double score = (double)sum_logprobs / pow((double)generated_len, cfg->length_penalty);
    if (!(hs->n < cfg->num_beams || score > hs->worst)) return LORAC_OK;
    int rc = gen_hyp_set(&hs->h[hs->n], tokens, n_tokens, finished, score, err);
    if (rc != LORAC_OK) return rc;
    hs->n++;
    if (hs->n > cfg->num_beams) {
        // drop the lowest score (the earliest on ties); the new worst is the next lowest
        int lo = 0;
        for (int i = 1; i < hs->n; i++)
            if (hs->h[i].score < hs->h[lo].score) lo = i;
        free(hs->h[lo].tokens);
        memmove(hs->h + lo, hs->h + lo + 1, (size_t)(hs->n - lo - 1) * sizeof *hs->h);
        hs->n--;
        hs->worst = hs->h[0].score;
        for (int i = 1; i < hs->n; i++)
            if (hs->h[i].score < hs->worst) hs->worst = hs->h[i].score;
    } else if (score < hs->worst) {
        hs->worst = score;
    }
    return LORAC_OK;
}

static int hf_is_done(const hf_hyps *hs, const gen_config *cfg, float best_sum, int cur_new) {
    if (hs->n < cfg->num_beams) return 0;
    if (cfg->early_stopping == GEN_EARLY_FIRST) return 1;
    int len = cfg->early_stopping == GEN_EARLY_NEVER && cfg->length_penalty > 0.0 ? cfg->max_new_tokens : cur_new;
    double highest = (double)best_sum / pow((double)len, cfg->length_penalty);
    return hs->worst >= highest;
}

int gen_beam_hf(const gen_model *m, const gen_config *cfg, const int32_t *prompt, int P, gen_result *out,
                lorac_err *err) {
    int NB = cfg->num_beams, V = m->vocab, M = cfg->max_new_tokens;
    int K = (cfg->n_eos + 1 > 2 ? cfg->n_eos + 1 : 2) * NB;
    beam_state s;
    int rc = beam_state_init(&s, NB, V, P + M, K, err);
    if (rc != LORAC_OK) return rc;
    hf_hyps hs = {calloc((size_t)NB + 1, sizeof(gen_hyp)), 0, 1e9};
    if (!hs.h) {
        rc = lorac_fail(err, LORAC_ENOMEM, "generate: out of memory for %d hypotheses", NB);
        goto done;
    }
    if ((rc = beam_prefill(&s, m, prompt, P, 1, err)) != LORAC_OK) goto done;
    // only beam 0 is live at first: the others start at -1e9, as HF
    for (int b = 0; b < NB; b++) s.scores[b] = b == 0 ? 0.0f : -1e9f;
    int done = 0;
    for (int t = 0; t < M; t++) {
        int cur = P + t; // tokens per beam before this step
        for (int b = 0; b < NB; b++) {
            float *x = s.logits + (size_t)b * V;
            const int32_t *h = s.hist + (size_t)b * s.len;
            gen_log_softmax(x, V);
            if (cfg->repetition_penalty != 1.0f)
                gen_logits_repetition_penalty(x, V, h, cur, cfg->repetition_penalty, s.seen);
            gen_no_repeat(cfg, x, V, h, cur);
            gen_logits_min_new_tokens(x, cfg->eos, cfg->n_eos, t, cfg->min_new_tokens);
        }
        int nc = topk_candidates(s.logits, s.scores, NB, V, K, s.cand_score, s.cand_idx);
        int nb = 0;
        for (int r = 0; r < nc && nb < NB; r++) {
            int b = (int)(s.cand_idx[r] / V);
            int32_t tok = (int32_t)(s.cand_idx[r] % V);
            if (gen_is_eos(cfg, tok)) {
                if (r >= NB) continue; // an eos ranked below the top NB is not a hypothesis
                // the hypothesis is this beam's generated tokens plus the eos: t+1 new tokens
                int32_t *h = s.hist + (size_t)b * s.len;
                h[cur] = tok; // row b is rebuilt from hist2 in beam_advance, so this slot is free
                rc = hf_hyps_add(&hs, cfg, h + P, t + 1, 1, s.cand_score[r], t + 1, err);
                if (rc != LORAC_OK) goto done;
            } else {
                s.next_scores[nb] = s.cand_score[r];
                s.tokens[nb] = tok;
                s.src[nb] = b;
                nb++;
            }
        }
        if (nb < NB) {
            rc = lorac_fail(err, LORAC_EINVAL, "generate: beam search found only %d of %d non-eos candidates", nb, NB);
            goto done;
        }
        done = hf_is_done(&hs, cfg, s.cand_score[0], t + 1);
        memcpy(s.scores, s.next_scores, (size_t)NB * sizeof *s.scores);
        if ((rc = beam_advance(&s, m, cur, err)) != LORAC_OK) goto done;
        if (done || t + 1 == M) break;
        if ((rc = m->step(m->ctx, s.tokens, NB, 1, s.logits, err)) != LORAC_OK) goto done;
    }
    if (!done) {
        // the running beams (length M, none ends with an eos) join the hypotheses
        for (int b = 0; b < NB; b++) {
            rc = hf_hyps_add(&hs, cfg, s.hist + (size_t)b * s.len + P, M, 0, s.scores[b], M, err);
            if (rc != LORAC_OK) goto done;
        }
    }
    // best first; among equal scores the later-added first (Python's sorted() then pop())
    out->hyps = calloc((size_t)cfg->num_return, sizeof *out->hyps);
    if (!out->hyps) {
        rc = lorac_fail(err, LORAC_ENOMEM, "generate: out of memory for %d results", cfg->num_return);
        goto done;
    }
    for (int j = 0; j < cfg->num_return && hs.n > 0; j++) {
        int best = 0;
        for (int i = 1; i < hs.n; i++)
            if (hs.h[i].score >= hs.h[best].score) best = i;
        out->hyps[out->n_hyps++] = hs.h[best];
        memmove(hs.h + best, hs.h + best + 1, (size_t)(hs.n - best - 1) * sizeof *hs.h);
        hs.n--;
    }
done:
    if (hs.h) {
        for (int i = 0; i < hs.n; i++) free(hs.h[i].tokens);
        free(hs.h);
    }
    beam_state_free(&s);
    if (rc != LORAC_OK) gen_result_free(out);
    return rc;
}

/* ---------------------------------------------------------------------------------------------
 * The LoRA paper's beam search (gpt2_beam.py). History rows hold only generated tokens.
 * ------------------------------------------------------------------------------------------- */

// score / len^lp as the paper computes it: a float32 tensor divided by a Python float
static float lora_final_score(float sum, int len, double lp) {
    return sum / (float)pow((double)len, lp);
}

int gen_beam_lora(const gen_model *m, const gen_config *cfg, const int32_t *prompt, int P, gen_result *out,
                  lorac_err *err) {
    int NB = cfg->num_beams, V = m->vocab, M = cfg->max_new_tokens;
    beam_state s;
    int rc = beam_state_init(&s, NB, V, M, NB, err);
    if (rc != LORAC_OK) return rc;
    int32_t *best_seq = malloc((size_t)M * sizeof *best_seq);
    if (!best_seq) {
        rc = lorac_fail(err, LORAC_ENOMEM, "generate: out of memory for %d tokens", M);
        goto done;
    }
    int have_best = 0, best_len = 0;
    float best = 0.0f;
    if ((rc = beam_prefill(&s, m, prompt, P, 0, err)) != LORAC_OK) goto done;
    for (int b = 0; b < NB; b++) s.scores[b] = 0.0f;
    int t = 0;
    for (; t < M; t++) {
        // at the first step all beams are copies of the prompt: the paper takes beam 0 alone
        int R = t == 0 ? 1 : NB;
        for (int b = 0; b < R; b++) {
            float *x = s.logits + (size_t)b * V;
            const int32_t *h = s.hist + (size_t)b * s.len;
            if (t > 0 && cfg->repetition_penalty != 1.0f)
                gen_logits_repetition_penalty(x, V, h, t, cfg->repetition_penalty, s.seen);
            gen_logits_min_new_tokens(x, cfg->eos, cfg->n_eos, t, cfg->min_new_tokens);
            if (t > 0) gen_no_repeat(cfg, x, V, h, t);
            gen_log_softmax(x, V);
        }
        int nc = topk_candidates(s.logits, t == 0 ? NULL : s.scores, R, V, NB, s.cand_score, s.cand_idx);
        if (nc < NB) {
            rc = lorac_fail(err, LORAC_EINVAL, "generate: %d beams exceed the %d first-step candidates", NB, nc);
            goto done;
        }
        for (int r = 0; r < NB; r++) {
            s.scores[r] = s.cand_score[r];
            s.src[r] = (int32_t)(s.cand_idx[r] / V);
            s.tokens[r] = (int32_t)(s.cand_idx[r] % V);
        }
        if ((rc = beam_advance(&s, m, t, err)) != LORAC_OK) goto done;
        // a beam that emitted an eos is a candidate answer; its slot lives on at -inf
        for (int b = 0; b < NB; b++) {
            if (!gen_is_eos(cfg, s.tokens[b])) continue;
            float f = lora_final_score(s.scores[b], t + 1, cfg->length_penalty);
            if (!have_best || best < f) {
                have_best = 1;
                best = f;
                best_len = t + 1;
                memcpy(best_seq, s.hist + (size_t)b * s.len, (size_t)best_len * sizeof *best_seq);
            }
            s.scores[b] = -INFINITY;
        }
        if (t + 1 == M) break;
        // Exact early exit: a live beam's sum never rises (log-probs <= 0), so its best possible
        // final score is at the shortest or the longest remaining length (s/L^lp is monotone in L).
        if (have_best) {
            int can_improve = 0;
            for (int b = 0; b < NB && !can_improve; b++) {
                if (s.scores[b] == -INFINITY) continue;
                float lo = lora_final_score(s.scores[b], t + 2, cfg->length_penalty);
                float hi = lora_final_score(s.scores[b], M, cfg->length_penalty);
                if (best < lo || best < hi) can_improve = 1;
            }
            if (!can_improve) break;
        }
        if ((rc = m->step(m->ctx, s.tokens, NB, 1, s.logits, err)) != LORAC_OK) goto done;
    }
    if (t + 1 >= M) {
        // after the last step every beam is a candidate at length M
        for (int b = 0; b < NB; b++) {
            float f = lora_final_score(s.scores[b], M, cfg->length_penalty);
            if (!have_best || best < f) {
                have_best = 1;
                best = f;
                best_len = M;
                memcpy(best_seq, s.hist + (size_t)b * s.len, (size_t)M * sizeof *best_seq);
            }
        }
    }
    out->hyps = calloc(1, sizeof *out->hyps);
    if (!out->hyps) {
        rc = lorac_fail(err, LORAC_ENOMEM, "generate: out of memory for a result");
        goto done;
    }
    out->n_hyps = 1;
    rc = gen_hyp_set(&out->hyps[0], best_seq, best_len, gen_is_eos(cfg, best_seq[best_len - 1]), best, err);
    if (rc != LORAC_OK) out->n_hyps = 0;
done:
    free(best_seq);
    beam_state_free(&s);
    if (rc != LORAC_OK) gen_result_free(out);
    return rc;
}
