/* beam_batch.c — the beam-search driver: the model calls for up to G requests in flight, each a
 * beam_req (beam.c) on its own NB slots, g*NB.. for group g. One round:
 *   select   every request in flight picks its beams' next tokens from its logits;
 *   finish   a finished request gives its result (emitted in request order) and its group takes
 *            the next request: reset_slot, the prompt's prefill alone (a prompt's bits do not
 *            depend on other prompts' lengths), its first logits in the group's prefill rows;
 *   reorder  one gather over all slots: each running request's slots follow its beams' parents
 *            (after its first select: all copy the prompt's slot);
 *   step     one model step appends the running requests' tokens (G*NB rows at most).
 * With G == 1 these are gen_generate's calls for one request (begin per request, step over slots
 * 0..NB-1), so a model without step_slots/reset_slot runs here too.
 */
#include <stdlib.h>
#include <string.h>

#include "gen_internal.h"

typedef struct beam_pool {
    const gen_model *m;
    const gen_config *cfg;
    const int32_t *const *prompts;
    const int *n_prompts;
    int n, G, NB, V;
    beam_req *req;        /* (G) */
    int *input;           /* (G) the request group g decodes, -1: none */
    int *fresh;           /* (G) not yet selected: its logits are the prefill's, no step yet */
    float *step_logits;   /* (G*NB, V) a step's rows, packed in the order of the stepped slots */
    float *prefill_logits;/* (G*NB, V) group g's first logits at rows g*NB.. */
    int32_t *src, *tokens;/* (G*NB) the reorder's gather, a step's tokens */
    int *slots;           /* (G*NB) a step's slots */
    gen_result *res;      /* (n) finished results not yet emitted */
    uint8_t *ready;       /* (n) */
    int next_in, next_out;
    gen_emit_fn emit;
    void *user;
} beam_pool;

static int pool_step(beam_pool *p, const int *slots, const int32_t *tokens, int n_seq, int n_new, float *logits,
                     lorac_err *err) {
    if (p->G == 1) return p->m->step(p->m->ctx, tokens, n_seq, n_new, logits, err); // slots 0..n_seq-1
    return p->m->step_slots(p->m->ctx, slots, tokens, n_seq, n_new, logits, err);
}

// Group g takes request i: an empty first slot, the prompt's prefill, the beams' first logits.
static int pool_admit(beam_pool *p, int g, int i, lorac_err *err) {
    const gen_model *m = p->m;
    int P = p->n_prompts[i], slot = g * p->NB, rc;
    float *logits = p->prefill_logits + (size_t)slot * p->V;
    if (p->G == 1) rc = m->begin(m->ctx, p->NB, P + p->cfg->max_new_tokens, err);
    else rc = m->reset_slot(m->ctx, slot, err);
    if (rc == LORAC_OK) rc = beam_req_init(&p->req[g], p->cfg, p->V, P, err);
    if (rc != LORAC_OK) return rc;
    p->input[g] = i;
    if ((rc = pool_step(p, &slot, p->prompts[i], 1, P, logits, err)) != LORAC_OK) return rc;
    beam_req_start(&p->req[g], p->prompts[i], logits);
    p->fresh[g] = 1;
    return LORAC_OK;
}

// Group g's request is finished: its result waits for the earlier ones, then all ready are emitted.
static int pool_finish(beam_pool *p, int g, lorac_err *err) {
    int i = p->input[g];
    int rc = beam_req_finish(&p->req[g], &p->res[i], err);
    beam_req_free(&p->req[g]);
    p->input[g] = -1;
    if (rc != LORAC_OK) return rc;
    p->ready[i] = 1;
    for (; p->next_out < p->n && p->ready[p->next_out]; p->next_out++) {
        rc = p->emit(p->user, p->next_out, &p->res[p->next_out], err);
        gen_result_free(&p->res[p->next_out]);
        if (rc != LORAC_OK) return rc;
    }
    return p->next_in < p->n ? pool_admit(p, g, p->next_in++, err) : LORAC_OK;
}

// The reorder of every slot, then one step for the requests that continue.
static int pool_advance(beam_pool *p, lorac_err *err) {
    int NB = p->NB, S = p->G * NB, identity = 1, n = 0, rc;
    for (int i = 0; i < S; i++) p->src[i] = i;
    for (int g = 0; g < p->G; g++) {
        if (p->input[g] < 0) continue;
        // after the first select every beam continues the prompt, the group's first slot
        for (int b = 0; b < NB && !p->fresh[g]; b++) p->src[g * NB + b] = g * NB + (p->req[g].t == 1 ? 0 : p->req[g].s.src[b]);
    }
    for (int i = 0; i < S; i++) identity &= p->src[i] == i;
    if (!identity && (rc = p->m->reorder(p->m->ctx, p->src, S, err)) != LORAC_OK) return rc; // a cache copy saved
    for (int g = 0; g < p->G; g++) {
        if (p->input[g] < 0 || p->fresh[g]) continue;
        for (int b = 0; b < NB; b++, n++) p->slots[n] = g * NB + b, p->tokens[n] = p->req[g].s.tokens[b];
    }
    if (n > 0 && (rc = pool_step(p, p->slots, p->tokens, n, 1, p->step_logits, err)) != LORAC_OK) return rc;
    for (int g = 0, row = 0; g < p->G; g++) {
        if (p->input[g] < 0 || p->fresh[g]) continue;
        p->req[g].s.logits = p->step_logits + (size_t)row * p->V;
        row += NB;
    }
    return LORAC_OK;
}

static int pool_run(beam_pool *p, lorac_err *err) {
    int max_len = 0, rc = LORAC_OK;
    for (int i = 0; i < p->n; i++) max_len = p->n_prompts[i] > max_len ? p->n_prompts[i] : max_len;
    if (p->G > 1 && (rc = p->m->begin(p->m->ctx, p->G * p->NB, max_len + p->cfg->max_new_tokens, err)) != LORAC_OK) return rc;
    for (int g = 0; g < p->G && rc == LORAC_OK; g++) rc = pool_admit(p, g, p->next_in++, err);
    for (int busy = 1; rc == LORAC_OK && busy;) {
        for (int g = 0; g < p->G && rc == LORAC_OK; g++)
            if (p->input[g] >= 0) rc = beam_req_select(&p->req[g], err), p->fresh[g] = 0;
        for (int g = 0; g < p->G && rc == LORAC_OK; g++) // a request admitted here is fresh, not finished
            if (p->input[g] >= 0 && p->req[g].finished) rc = pool_finish(p, g, err);
        busy = 0;
        for (int g = 0; g < p->G; g++) busy |= p->input[g] >= 0;
        if (rc == LORAC_OK && busy) rc = pool_advance(p, err);
    }
    return rc;
}

static void pool_free(beam_pool *p) {
    for (int g = 0; p->req && g < p->G; g++) beam_req_free(&p->req[g]);
    for (int i = 0; p->res && i < p->n; i++) gen_result_free(&p->res[i]);
    free(p->req), free(p->input), free(p->fresh), free(p->step_logits), free(p->prefill_logits);
    free(p->src), free(p->tokens), free(p->slots), free(p->res), free(p->ready);
}

int gen_beam_batch(const gen_model *m, const gen_config *cfg, const int32_t *const *prompts, const int *n_prompts, int n,
                   int batch, gen_emit_fn emit, void *user, lorac_err *err) {
    beam_pool p = {.m = m, .cfg = cfg, .prompts = prompts, .n_prompts = n_prompts, .n = n, .NB = cfg->num_beams,
                   .V = m->vocab, .emit = emit, .user = user};
    p.G = batch < n ? batch : n;
    if (p.G < 1 || !m->step_slots || !m->reset_slot) p.G = 1;
    size_t S = (size_t)p.G * p.NB, rows;
    if (lorac_size_mul(S, (size_t)p.V, &rows) || rows > SIZE_MAX / sizeof(float))
        return lorac_fail(err, LORAC_ENOMEM, "generate: %zu beams over %d tokens overflow", S, p.V);
    p.req = calloc((size_t)p.G, sizeof *p.req);
    p.input = malloc((size_t)p.G * sizeof *p.input);
    p.fresh = calloc((size_t)p.G, sizeof *p.fresh);
    p.step_logits = malloc(rows * sizeof(float));
    p.prefill_logits = malloc(rows * sizeof(float));
    p.src = malloc(S * sizeof *p.src);
    p.tokens = malloc(S * sizeof *p.tokens);
    p.slots = malloc(S * sizeof *p.slots);
    p.res = calloc((size_t)n, sizeof *p.res);
    p.ready = calloc((size_t)n, 1);
    int rc;
    if (!p.req || !p.input || !p.fresh || !p.step_logits || !p.prefill_logits || !p.src || !p.tokens || !p.slots || !p.res ||
        !p.ready) {
        rc = lorac_fail(err, LORAC_ENOMEM, "generate: out of memory for %d requests of %d beams over %d tokens", p.G, p.NB,
                        p.V);
    } else {
        for (int g = 0; g < p.G; g++) p.input[g] = -1;
        rc = pool_run(&p, err);
    }
    pool_free(&p);
    return rc;
}
