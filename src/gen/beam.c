/* beam.c — beam search, as transformers 4.40 does it (GEN_BEAM_HF) and as the LoRA paper's
 * examples/NLG/src/gpt2_beam.py does it (GEN_BEAM_LORA). The differences are listed at the top of
 * include/lorac/generate.h.
 *
 * Shapes: NB beams, V vocabulary, P prompt tokens, M = max_new_tokens.
 * One request is a beam_req (gen_internal.h): its decode state, advanced one step at a time by
 * beam_req_select on the logits the model gave its beams. The model calls (prefill, reorder, step)
 * are the driver's, beam_many.c, which runs one request or many in the same model steps.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gen_internal.h"

static void beam_state_free(beam_state *s) {
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
    size_t nl;
    if (lorac_size_mul((size_t)NB, (size_t)len, &nl) || nl > SIZE_MAX / sizeof(int32_t))
        return lorac_fail(err, LORAC_ENOMEM, "generate: %d beams of %d tokens overflow", NB, len);
    s->scores = malloc((size_t)NB * sizeof *s->scores);
    s->next_scores = malloc((size_t)NB * sizeof *s->next_scores);
    s->hist = malloc(nl * sizeof *s->hist);
    s->hist2 = malloc(nl * sizeof *s->hist2);
    s->src = malloc((size_t)NB * sizeof *s->src);
    s->tokens = malloc((size_t)NB * sizeof *s->tokens);
    s->seen = calloc((size_t)V, 1);
    s->cand_score = malloc((size_t)K * sizeof *s->cand_score);
    s->cand_idx = malloc((size_t)K * sizeof *s->cand_idx);
    if (!s->scores || !s->next_scores || !s->hist || !s->hist2 || !s->src || !s->tokens || !s->seen || !s->cand_score ||
        !s->cand_idx) {
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

// Beam b's history row := old row src[b] + token[b] (cur tokens before); the model's cache
// follows when the driver reorders the slots by src.
static void beam_advance(beam_state *s, int cur) {
    for (int b = 0; b < s->NB; b++) {
        memcpy(s->hist2 + (size_t)b * s->len, s->hist + (size_t)s->src[b] * s->len, (size_t)cur * sizeof *s->hist);
        s->hist2[(size_t)b * s->len + cur] = s->tokens[b];
    }
    int32_t *t = s->hist;
    s->hist = s->hist2;
    s->hist2 = t;
}

/* ---------------------------------------------------------------------------------------------
 * HF: BeamHypotheses keeps up to NB finished hypotheses in insertion order, like the Python list.
 * ------------------------------------------------------------------------------------------- */
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

// One HF step at new-token index r->t: the finished hypotheses, then the NB running beams.
static int hf_select(beam_req *r, lorac_err *err) {
    beam_state *s = &r->s;
    const gen_config *cfg = r->cfg;
    int NB = s->NB, V = s->V, M = cfg->max_new_tokens, P = r->P, t = r->t;
    int cur = P + t; // tokens per beam before this step
    for (int b = 0; b < NB; b++) {
        float *x = s->logits + (size_t)b * V;
        const int32_t *h = s->hist + (size_t)b * s->len;
        gen_log_softmax(x, V);
        if (cfg->repetition_penalty != 1.0f) gen_logits_repetition_penalty(x, V, h, cur, cfg->repetition_penalty, s->seen);
        gen_no_repeat(cfg, x, V, h, cur);
        gen_logits_min_new_tokens(x, cfg->eos, cfg->n_eos, t, cfg->min_new_tokens);
    }
    int nc = topk_candidates(s->logits, s->scores, NB, V, r->K, s->cand_score, s->cand_idx);
    int nb = 0;
    for (int c = 0; c < nc && nb < NB; c++) {
        int b = (int)(s->cand_idx[c] / V);
        int32_t tok = (int32_t)(s->cand_idx[c] % V);
        if (gen_is_eos(cfg, tok)) {
            if (c >= NB) continue; // an eos ranked below the top NB is not a hypothesis
            // the hypothesis is this beam's generated tokens plus the eos: t+1 new tokens
            int32_t *h = s->hist + (size_t)b * s->len;
            h[cur] = tok; // row b is rebuilt from hist2 in beam_advance, so this slot is free
            int rc = hf_hyps_add(&r->hs, cfg, h + P, t + 1, 1, s->cand_score[c], t + 1, err);
            if (rc != LORAC_OK) return rc;
        } else {
            s->next_scores[nb] = s->cand_score[c];
            s->tokens[nb] = tok;
            s->src[nb] = b;
            nb++;
        }
    }
    if (nb < NB) return lorac_fail(err, LORAC_EINVAL, "generate: beam search found only %d of %d non-eos candidates", nb, NB);
    r->hf_done = hf_is_done(&r->hs, cfg, s->cand_score[0], t + 1);
    memcpy(s->scores, s->next_scores, (size_t)NB * sizeof *s->scores);
    beam_advance(s, cur);
    r->finished = r->hf_done || t + 1 == M;
    return LORAC_OK;
}

// The hypotheses (the running beams too when not done), best first; on equal scores the
// later-added first (Python's sorted() then pop()).
static int hf_finish(beam_req *r, gen_result *out, lorac_err *err) {
    const gen_config *cfg = r->cfg;
    hf_hyps *hs = &r->hs;
    int M = cfg->max_new_tokens;
    for (int b = 0; !r->hf_done && b < r->s.NB; b++) { // length M, none ends with an eos
        int rc = hf_hyps_add(hs, cfg, r->s.hist + (size_t)b * r->s.len + r->P, M, 0, r->s.scores[b], M, err);
        if (rc != LORAC_OK) return rc;
    }
    out->hyps = calloc((size_t)cfg->num_return, sizeof *out->hyps);
    if (!out->hyps) return lorac_fail(err, LORAC_ENOMEM, "generate: out of memory for %d results", cfg->num_return);
    for (int j = 0; j < cfg->num_return && hs->n > 0; j++) {
        int best = 0;
        for (int i = 1; i < hs->n; i++)
            if (hs->h[i].score >= hs->h[best].score) best = i;
        out->hyps[out->n_hyps++] = hs->h[best];
        memmove(hs->h + best, hs->h + best + 1, (size_t)(hs->n - best - 1) * sizeof *hs->h);
        hs->n--;
    }
    return LORAC_OK;
}

/* ---------------------------------------------------------------------------------------------
 * The LoRA paper's beam search (gpt2_beam.py). History rows hold only generated tokens.
 * ------------------------------------------------------------------------------------------- */

// score / len^lp as the paper computes it: a float32 tensor divided by a Python float
static float lora_final_score(float sum, int len, double lp) {
    return sum / (float)pow((double)len, lp);
}

// Beam b (a hypothesis of len tokens scoring f) replaces the best when strictly better.
static void lora_offer(beam_req *r, int b, int len, float f) {
    if (r->have_best && !(r->best < f)) return;
    r->have_best = 1;
    r->best = f;
    r->best_len = len;
    memcpy(r->best_seq, r->s.hist + (size_t)b * r->s.len, (size_t)len * sizeof *r->best_seq);
}

// Exact early exit: a live beam's sum never rises (log-probs <= 0), so its best possible final
// score is at the shortest or the longest remaining length (s/L^lp is monotone in L).
static int lora_can_improve(const beam_req *r) {
    const gen_config *cfg = r->cfg;
    if (!r->have_best) return 1;
    for (int b = 0; b < r->s.NB; b++) {
        if (r->s.scores[b] == -INFINITY) continue;
        float lo = lora_final_score(r->s.scores[b], r->t + 2, cfg->length_penalty);
        float hi = lora_final_score(r->s.scores[b], cfg->max_new_tokens, cfg->length_penalty);
        if (r->best < lo || r->best < hi) return 1;
    }
    return 0;
}

static int lora_select(beam_req *r, lorac_err *err) {
    beam_state *s = &r->s;
    const gen_config *cfg = r->cfg;
    int NB = s->NB, V = s->V, M = cfg->max_new_tokens, t = r->t;
    // at the first step all beams are copies of the prompt: the paper takes beam 0 alone
    int R = t == 0 ? 1 : NB;
    for (int b = 0; b < R; b++) {
        float *x = s->logits + (size_t)b * V;
        const int32_t *h = s->hist + (size_t)b * s->len;
        if (t > 0 && cfg->repetition_penalty != 1.0f) gen_logits_repetition_penalty(x, V, h, t, cfg->repetition_penalty, s->seen);
        gen_logits_min_new_tokens(x, cfg->eos, cfg->n_eos, t, cfg->min_new_tokens);
        if (t > 0) gen_no_repeat(cfg, x, V, h, t);
        gen_log_softmax(x, V);
    }
    int nc = topk_candidates(s->logits, t == 0 ? NULL : s->scores, R, V, NB, s->cand_score, s->cand_idx);
    if (nc < NB) return lorac_fail(err, LORAC_EINVAL, "generate: %d beams exceed the %d first-step candidates", NB, nc);
    for (int c = 0; c < NB; c++) {
        s->scores[c] = s->cand_score[c];
        s->src[c] = (int32_t)(s->cand_idx[c] / V);
        s->tokens[c] = (int32_t)(s->cand_idx[c] % V);
    }
    beam_advance(s, t);
    // a beam that emitted an eos is a candidate answer; its slot lives on at -inf
    for (int b = 0; b < NB; b++) {
        if (!gen_is_eos(cfg, s->tokens[b])) continue;
        lora_offer(r, b, t + 1, lora_final_score(s->scores[b], t + 1, cfg->length_penalty));
        s->scores[b] = -INFINITY;
    }
    r->finished = t + 1 == M || !lora_can_improve(r);
    return LORAC_OK;
}

static int lora_finish(beam_req *r, gen_result *out, lorac_err *err) {
    const gen_config *cfg = r->cfg;
    int M = cfg->max_new_tokens;
    // after the last step every beam is a candidate at length M
    for (int b = 0; r->t == M && b < r->s.NB; b++) lora_offer(r, b, M, lora_final_score(r->s.scores[b], M, cfg->length_penalty));
    out->hyps = calloc(1, sizeof *out->hyps);
    if (!out->hyps) return lorac_fail(err, LORAC_ENOMEM, "generate: out of memory for a result");
    out->n_hyps = 1;
    int rc = gen_hyp_set(&out->hyps[0], r->best_seq, r->best_len, gen_is_eos(cfg, r->best_seq[r->best_len - 1]), r->best, err);
    if (rc != LORAC_OK) out->n_hyps = 0;
    return rc;
}

/* ---------------------------------------------------------------------------------------------
 * A request: the state of either search, and its steps.
 * ------------------------------------------------------------------------------------------- */

void beam_req_free(beam_req *r) {
    if (r->hs.h) {
        for (int i = 0; i < r->hs.n; i++) free(r->hs.h[i].tokens);
        free(r->hs.h);
    }
    free(r->best_seq);
    beam_state_free(&r->s);
    memset(r, 0, sizeof *r);
}

int beam_req_init(beam_req *r, const gen_config *cfg, int V, int P, lorac_err *err) {
    int NB = cfg->num_beams, M = cfg->max_new_tokens, hf = cfg->beam_algo == GEN_BEAM_HF;
    memset(r, 0, sizeof *r);
    r->cfg = cfg;
    r->P = P;
    r->K = hf ? (cfg->n_eos + 1 > 2 ? cfg->n_eos + 1 : 2) * NB : NB;
    // HF's history rows hold the prompt too (its penalties see it), the paper's only new tokens
    int rc = beam_state_init(&r->s, NB, V, hf ? P + M : M, r->K, err);
    if (rc != LORAC_OK) return rc;
    if (hf && !(r->hs.h = calloc((size_t)NB + 1, sizeof(gen_hyp))))
        rc = lorac_fail(err, LORAC_ENOMEM, "generate: out of memory for %d hypotheses", NB);
    if (!hf && !(r->best_seq = malloc((size_t)M * sizeof *r->best_seq)))
        rc = lorac_fail(err, LORAC_ENOMEM, "generate: out of memory for %d tokens", M);
    r->hs.worst = 1e9;
    if (rc != LORAC_OK) beam_req_free(r);
    return rc;
}

void beam_req_start(beam_req *r, const int32_t *prompt, float *logits) {
    beam_state *s = &r->s;
    int hf = r->cfg->beam_algo == GEN_BEAM_HF;
    s->logits = logits;
    for (int b = 0; b < s->NB; b++) {
        s->src[b] = 0;
        if (b > 0) memcpy(s->logits + (size_t)b * s->V, s->logits, (size_t)s->V * sizeof *s->logits);
        if (hf) memcpy(s->hist + (size_t)b * s->len, prompt, (size_t)r->P * sizeof *prompt);
        // HF: only beam 0 is live at first: the others start at -1e9
        s->scores[b] = hf && b > 0 ? -1e9f : 0.0f;
    }
}

int beam_req_select(beam_req *r, lorac_err *err) {
    int rc = r->cfg->beam_algo == GEN_BEAM_HF ? hf_select(r, err) : lora_select(r, err);
    r->t++;
    return rc;
}

int beam_req_finish(beam_req *r, gen_result *out, lorac_err *err) {
    out->hyps = NULL;
    out->n_hyps = 0;
    int rc = r->cfg->beam_algo == GEN_BEAM_HF ? hf_finish(r, out, err) : lora_finish(r, out, err);
    if (rc != LORAC_OK) gen_result_free(out);
    return rc;
}
