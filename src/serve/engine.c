/* The serving engine: one thread decodes every running request in one batched step (continuous
 * batching over the ragged KV-cache session, each slot with its own adapter), admits queued requests
 * into free slots between steps and frees finished ones. See include/lorac/serve.h.
 *
 * Locks: mu guards the queue, the slots' owners, the adapter registry and every request's shared
 * fields (text, finish, cancelled, refs); model_mu is held by the engine thread for a step and by
 * adapter loading/unloading for their changes to the set. Order: model_mu before mu, never the
 * other way round. Fields marked "engine" are touched only by the engine thread. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lorac/generate.h"
#include "lorac/serve.h"
#include "serve/serve_internal.h"

void serve_opts_init(serve_opts *o) { memset(o, 0, sizeof *o); }

void serve_params_init(serve_params *p) {
    memset(p, 0, sizeof *p);
    p->max_tokens = 16;
    p->temperature = 1.0f;
    p->top_p = 1.0f;
}

static int eos_of(const serve_engine *e, int32_t t) {
    for (int i = 0; i < e->gc.n_eos; i++)
        if (e->gc.eos[i] == t) return 1;
    return 0;
}

/* ---------------------------------------------------------------- requests */

static void req_free(serve_req *r) {
    free(r->prompt);
    free(r->out);
    free(r->dec);
    free(r);
}

/* mu held */
static void req_unref(serve_req *r) {
    if (--r->refs > 0) return;
    serve_engine *e = r->e;
    req_free(r);
    if (--e->live == 0) pthread_cond_broadcast(&e->cv_out);
}

void serve_req_release(serve_req *r) {
    serve_engine *e = r->e;
    pthread_mutex_lock(&e->mu);
    req_unref(r);
    pthread_mutex_unlock(&e->mu);
}

void serve_req_cancel(serve_req *r) {
    serve_engine *e = r->e;
    pthread_mutex_lock(&e->mu);
    r->cancelled = 1;
    pthread_cond_broadcast(&e->cv_in);
    pthread_mutex_unlock(&e->mu);
}

void serve_req_usage(serve_req *r, int *prompt_tokens, int *completion_tokens) {
    pthread_mutex_lock(&r->e->mu);
    *prompt_tokens = r->n_prompt;
    *completion_tokens = r->n_gen;
    pthread_mutex_unlock(&r->e->mu);
}

int serve_req_read(serve_req *r, char **delta, size_t *len, const char **finish_reason, lorac_err *err) {
    serve_engine *e = r->e;
    int rc = LORAC_OK;
    *delta = NULL;
    *len = 0;
    pthread_mutex_lock(&e->mu);
    while (!r->finish && r->safe == r->taken) pthread_cond_wait(&e->cv_out, &e->mu);
    size_t n = r->safe - r->taken;
    if (r->err_code) {
        rc = lorac_fail(err, r->err_code, "%s", r->err_msg);
    } else if (!(*delta = malloc(n + 1))) {
        rc = lorac_fail(err, LORAC_ENOMEM, "out of memory");
    } else {
        if (n) memcpy(*delta, r->text + r->taken, n);
        (*delta)[n] = 0;
        *len = n;
        r->taken = r->safe;
    }
    *finish_reason = r->finish;
    pthread_mutex_unlock(&e->mu);
    return rc;
}

int serve_submit(serve_engine *e, const serve_lora *lora, int n_lora, const int32_t *prompt, int n, const serve_params *p,
                 serve_req **out, lorac_err *err) {
    *out = NULL;
    int V = model_cfg(e->m)->vocab_size;
    if (n < 1) return lorac_fail(err, LORAC_EINVAL, "the prompt is empty");
    if (p->max_tokens < 1) return lorac_fail(err, LORAC_EINVAL, "max_tokens %d must be at least 1", p->max_tokens);
    if (n > e->o.ctx || p->max_tokens > e->o.ctx - n)
        return lorac_fail(err, LORAC_EINVAL,
                          "this model's maximum context length is %d tokens; the prompt has %d and max_tokens is %d", e->o.ctx,
                          n, p->max_tokens);
    if (!(p->temperature >= 0.0f && p->temperature <= 100.0f) || !(p->top_p > 0.0f && p->top_p <= 1.0f) || p->top_k < 0)
        return lorac_fail(err, LORAC_EINVAL, "temperature must be in [0, 100], top_p in (0, 1], top_k >= 0");
    for (int i = 0; i < n; i++)
        if (prompt[i] < 0 || prompt[i] >= V) return lorac_fail(err, LORAC_EINVAL, "token %d is outside the vocabulary (%d)", prompt[i], V);
    serve_req *r = calloc(1, sizeof *r);
    if (!r || !(r->prompt = malloc((size_t)n * sizeof *prompt)) || !(r->out = malloc((size_t)p->max_tokens * sizeof *r->out))) {
        if (r) req_free(r);
        return lorac_fail(err, LORAC_ENOMEM, "out of memory for a request of %d tokens", n);
    }
    memcpy(r->prompt, prompt, (size_t)n * sizeof *prompt);
    r->n_prompt = n;
    r->p = *p;
    r->e = e;
    r->slot = -1;
    r->refs = 2; /* the caller's and the engine's */
    lorac_rng_seed(&r->rng, p->seed);
    int rc = serve_adapter_acquire(e, lora, n_lora, &r->ad, err); /* a new combination is made outside mu */
    if (rc) {
        req_free(r);
        return rc;
    }
    pthread_mutex_lock(&e->mu);
    if (e->draining) rc = lorac_fail(err, LORAC_ECLOSED, "the server is shutting down");
    else if (e->nq >= e->o.max_queue) rc = lorac_fail(err, LORAC_EBUSY, "%d requests are waiting already; try again later", e->nq);
    if (!rc) {
        if (e->qtail) e->qtail->qnext = r;
        else e->qhead = r;
        e->qtail = r;
        e->nq++;
        e->live++;
        pthread_cond_broadcast(&e->cv_in);
    } else {
        serve_adapter_put(e, r->ad);
    }
    pthread_mutex_unlock(&e->mu);
    if (rc) req_free(r);
    else *out = r;
    return rc;
}

/* ---------------------------------------------------------------- slots (mu held) */

/* A request leaves the engine: its slot (if any) is free, its adapter reference dropped. */
static void leave(serve_engine *e, serve_req *r) {
    if (r->slot >= 0) {
        e->slots[r->slot] = NULL;
        e->ids[r->slot] = -1;
        e->ids_dirty = 1;
        r->slot = -1;
    }
    serve_adapter_put(e, r->ad);
    r->ad = NULL;
    e->st.requests_done++;
    req_unref(r);
}

/* Cancelled requests go; queued ones take free slots. */
static void admit(serve_engine *e) {
    for (int i = 0; i < e->o.max_batch; i++)
        if (e->slots[i] && e->slots[i]->cancelled) leave(e, e->slots[i]);
    for (serve_req **pp = &e->qhead; *pp;) {
        serve_req *r = *pp;
        if (!r->cancelled) {
            pp = &r->qnext;
            continue;
        }
        *pp = r->qnext;
        e->nq--;
        leave(e, r);
    }
    e->qtail = NULL;
    for (serve_req *r = e->qhead; r; r = r->qnext) e->qtail = r;
    for (int i = 0; i < e->o.max_batch && e->qhead; i++) {
        if (e->slots[i]) continue;
        serve_req *r = e->qhead;
        if (!(e->qhead = r->qnext)) e->qtail = NULL;
        e->nq--;
        r->slot = i;
        r->state = REQ_PREFILL;
        e->slots[i] = r;
        e->ids[i] = r->ad ? r->ad->id : -1;
        e->ids_dirty = 1;
        model_session_reset_slot(e->ses, i, NULL);
    }
}

static int running(const serve_engine *e) {
    int n = 0;
    for (int i = 0; i < e->o.max_batch; i++) n += e->slots[i] != NULL;
    return n;
}

/* ---------------------------------------------------------------- a step (model_mu held) */

/* Bytes at the end of t that must wait: an incomplete UTF-8 character, or the start of a stop string. */
static size_t held_back(const char *t, size_t len, const serve_params *p) {
    size_t hold = 0;
    for (size_t k = 1; k <= 3 && k <= len; k++) {
        unsigned char c = (unsigned char)t[len - k];
        if ((c & 0xC0) == 0x80) continue;
        size_t need = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
        if (need > k) hold = k;
        break;
    }
    for (int s = 0; s < p->n_stop; s++) {
        size_t sl = strlen(p->stop[s]);
        for (size_t k = sl ? sl - 1 : 0; k > hold; k--)
            if (k <= len && !memcmp(t + len - k, p->stop[s], k)) {
                hold = k;
                break;
            }
    }
    return hold;
}

/* The first occurrence of stop (non-empty) in t[0..len), or len. */
static size_t find(const char *t, size_t len, const char *stop) {
    size_t sl = strlen(stop);
    for (size_t i = 0; sl && i + sl <= len; i++)
        if (t[i] == stop[0] && !memcmp(t + i, stop, sl)) return i;
    return len;
}

/* The text of the newest token: what decoding a short window ending with it adds to the window
 * without it (a token may complete a character, and SentencePiece drops the first piece's space:
 * the window's own first piece absorbs both). *t is malloc'd. */
static int token_text(serve_engine *e, serve_req *r, char **t, size_t *len, lorac_err *err) {
    int n = r->n_out, from = n > 8 ? n - 8 : 0;
    char *prev = NULL;
    size_t pl = 0;
    int rc = model_decode(e->m, r->out + from, (size_t)(n - from), 1, t, len, err);
    if (!rc && n - 1 > from) rc = model_decode(e->m, r->out + from, (size_t)(n - 1 - from), 1, &prev, &pl, err);
    if (!rc && pl && (pl > *len || memcmp(*t, prev, pl))) { /* not a prefix: decode the whole output */
        free(*t);
        rc = model_decode(e->m, r->out, (size_t)n, 1, t, len, err);
        pl = r->dec_len;
        if (!rc && pl && (*len < pl || memcmp(*t, r->dec, pl))) pl = 0; /* cannot happen for lorac's tokenizers */
    }
    if (!rc && pl) memmove(*t, *t + pl, *len - pl), *len -= pl;
    free(prev);
    return rc;
}

/* The request's text after a new token, cut at the first stop string. Returns 1 when a stop string
 * ended it, -1 on an error. */
static int update_text(serve_engine *e, serve_req *r, int finished, lorac_err *err) {
    char *t = NULL;
    size_t add = 0;
    if (token_text(e, r, &t, &add, err)) return -1;
    pthread_mutex_lock(&e->mu); /* readers copy from r->text under mu: it may move here */
    int rc = 0;
    if (r->dec_len + add + 1 > r->dec_cap) {
        size_t cap = (r->dec_len + add + 1) * 2;
        char *p = realloc(r->dec, cap);
        if (p) r->dec = r->text = p, r->dec_cap = cap;
        else rc = lorac_fail(err, LORAC_ENOMEM, "out of memory for a request's text");
    }
    if (!rc) memcpy(r->dec + r->dec_len, t, add), r->dec_len += add;
    pthread_mutex_unlock(&e->mu);
    free(t);
    if (rc) return -1;
    size_t len = r->dec_len;
    int stopped = 0;
    for (int s = 0; s < r->p.n_stop; s++) { /* only where the new text can complete one */
        size_t sl = strlen(r->p.stop[s]), from = len - add >= sl ? len - add - sl + 1 : 0;
        size_t at = from + find(r->dec + from, len - from, r->p.stop[s]);
        if (at < len) len = at, stopped = 1;
    }
    size_t safe = finished || stopped ? len : len - held_back(r->dec, len, &r->p);
    pthread_mutex_lock(&e->mu);
    r->text_len = len;
    if (safe > r->safe) r->safe = safe;
    pthread_mutex_unlock(&e->mu);
    return stopped;
}

/* The next token from one row of logits (row is overwritten). */
static int32_t pick(serve_engine *e, serve_req *r, float *row) {
    int V = model_cfg(e->m)->vocab_size;
    if (r->p.temperature == 0.0f) return gen_argmax(row, V);
    if (r->p.temperature != 1.0f) gen_logits_temperature(row, V, r->p.temperature);
    gen_logits_top_k(row, V, r->p.top_k, e->fwork);
    gen_logits_top_p(row, V, r->p.top_p, e->uwork);
    return gen_sample(row, V, &r->rng);
}

static void finish(serve_engine *e, serve_req *r, const char *why) {
    pthread_mutex_lock(&e->mu);
    r->finish = why;
    r->safe = r->text_len;
    pthread_mutex_unlock(&e->mu);
}

/* A sampled token: eos ends the request; else it joins the text (stop strings, max_tokens). */
static void emit(serve_engine *e, serve_req *r, float *row) {
    int32_t t = pick(e, r, row);
    lorac_err err = {0};
    pthread_mutex_lock(&e->mu);
    r->n_gen++;
    e->st.tokens++;
    pthread_mutex_unlock(&e->mu);
    if (eos_of(e, t) && !r->p.ignore_eos) {
        finish(e, r, "stop");
        return;
    }
    r->out[r->n_out++] = t;
    r->next = t;
    int full = r->n_gen >= r->p.max_tokens, stopped = update_text(e, r, full, &err);
    if (stopped < 0) {
        pthread_mutex_lock(&e->mu);
        r->err_code = err.code ? err.code : LORAC_EINVAL;
        snprintf(r->err_msg, sizeof r->err_msg, "%s", err.msg);
        pthread_mutex_unlock(&e->mu);
        finish(e, r, "error");
    } else if (stopped || full) {
        finish(e, r, stopped ? "stop" : "length");
    }
}

static void note_rows(serve_engine *e, int rows, int decode) {
    pthread_mutex_lock(&e->mu);
    e->st.steps++;
    if (rows > e->st.max_step_rows) e->st.max_step_rows = rows;
    if (decode && rows > e->st.max_decode_seqs) e->st.max_decode_seqs = rows;
    pthread_mutex_unlock(&e->mu);
}

/* One chunk of every prefilling prompt, as one batched step. */
static int prefill(serve_engine *e, lorac_err *err) {
    int n = 0, chunk = e->o.prefill_chunk;
    for (int i = 0; i < e->o.max_batch; i++) {
        serve_req *r = e->slots[i];
        if (!r || r->state != REQ_PREFILL || r->finish) continue;
        if (r->n_prompt - r->fed < chunk) chunk = r->n_prompt - r->fed;
        e->step_slots[n++] = i;
    }
    if (!n) return LORAC_OK;
    for (int k = 0; k < n; k++) {
        serve_req *r = e->slots[e->step_slots[k]];
        memcpy(e->step_tok + (size_t)k * chunk, r->prompt + r->fed, (size_t)chunk * sizeof *e->step_tok);
    }
    int rc = model_session_prefill_slots(e->ses, e->step_slots, e->step_tok, n, chunk, e->logits, err);
    if (rc) return rc;
    size_t V = (size_t)model_cfg(e->m)->vocab_size;
    for (int k = 0; k < n; k++) {
        serve_req *r = e->slots[e->step_slots[k]];
        if ((r->fed += chunk) < r->n_prompt) continue;
        r->state = REQ_DECODE;
        emit(e, r, e->logits + k * V);
    }
    note_rows(e, n * chunk, 0);
    return LORAC_OK;
}

/* One token of every decoding sequence, whatever its adapter, as one batched step. */
static int decode(serve_engine *e, lorac_err *err) {
    int n = 0;
    for (int i = 0; i < e->o.max_batch; i++) {
        serve_req *r = e->slots[i];
        if (!r || r->state != REQ_DECODE || r->finish) continue;
        e->step_tok[n] = r->next;
        e->step_slots[n++] = i;
    }
    if (!n) return LORAC_OK;
    int rc = model_session_step_slots(e->ses, e->step_slots, e->step_tok, n, 1, e->logits, err);
    if (rc) return rc;
    size_t V = (size_t)model_cfg(e->m)->vocab_size;
    for (int k = 0; k < n; k++) emit(e, e->slots[e->step_slots[k]], e->logits + k * V);
    note_rows(e, n, 1);
    return LORAC_OK;
}

static void fail_running(serve_engine *e, const lorac_err *err) {
    for (int i = 0; i < e->o.max_batch; i++) {
        serve_req *r = e->slots[i];
        if (!r || r->finish) continue;
        pthread_mutex_lock(&e->mu);
        r->err_code = err->code ? err->code : LORAC_EINVAL;
        snprintf(r->err_msg, sizeof r->err_msg, "%s", err->msg);
        pthread_mutex_unlock(&e->mu);
        finish(e, r, "error");
    }
}

static void step(serve_engine *e) {
    lorac_err err = {0};
    int rc = LORAC_OK;
    serve_adapter_collect(e); /* unloaded adapters no request holds any more */
    if (e->ids_dirty) rc = model_session_use_adapters(e->ses, e->set, e->ids, e->o.max_batch, &err);
    e->ids_dirty = rc != 0;
    if (!rc) rc = prefill(e, &err);
    if (!rc) rc = decode(e, &err);
    if (rc) fail_running(e, &err);
}

static void *engine_main(void *arg) {
    serve_engine *e = arg;
    lorac_set_threads(e->o.threads);
    pthread_mutex_lock(&e->mu);
    for (;;) {
        for (int i = 0; i < e->o.max_batch; i++)
            if (e->slots[i] && e->slots[i]->finish) leave(e, e->slots[i]);
        admit(e);
        pthread_cond_broadcast(&e->cv_out);
        if (!running(e)) {
            if (e->draining && !e->qhead) break;
            if (e->collect) {
                pthread_mutex_unlock(&e->mu);
                pthread_mutex_lock(&e->model_mu);
                serve_adapter_collect(e);
                pthread_mutex_unlock(&e->model_mu);
                pthread_mutex_lock(&e->mu);
                continue;
            }
            pthread_cond_wait(&e->cv_in, &e->mu);
            continue;
        }
        pthread_mutex_unlock(&e->mu);
        pthread_mutex_lock(&e->model_mu);
        step(e);
        pthread_mutex_unlock(&e->model_mu);
        pthread_mutex_lock(&e->mu);
    }
    pthread_mutex_unlock(&e->mu);
    return NULL;
}

/* ---------------------------------------------------------------- the engine */

int serve_engine_new(model *m, const serve_opts *o, serve_engine **out, lorac_err *err) {
    *out = NULL;
    serve_engine *e = calloc(1, sizeof *e);
    if (!e) return lorac_fail(err, LORAC_ENOMEM, "out of memory");
    e->m = m;
    e->o = *o;
    if (e->o.max_batch <= 0) e->o.max_batch = 8;
    if (e->o.max_queue <= 0) e->o.max_queue = 64;
    if (e->o.ctx <= 0) e->o.ctx = model_max_len(m) < 2048 ? model_max_len(m) : 2048;
    if (e->o.prefill_chunk <= 0) e->o.prefill_chunk = 64;
    int B = e->o.max_batch, rc = LORAC_OK;
    size_t V = (size_t)model_cfg(m)->vocab_size, rows = (size_t)B * e->o.prefill_chunk;
    if (e->o.max_batch > 256 || e->o.ctx > model_max_len(m))
        rc = lorac_fail(err, LORAC_EINVAL, "--max-batch %d (at most 256) or --ctx %d (the model's %d)", B, e->o.ctx, model_max_len(m));
    gen_config_default(&e->gc, -1);
    gen_model_eos(m, &e->gc);
    if (!rc && (!(e->slots = calloc((size_t)B, sizeof *e->slots)) || !(e->ids = malloc((size_t)B * sizeof *e->ids)) ||
                !(e->step_slots = malloc((size_t)B * sizeof *e->step_slots)) || !(e->step_tok = malloc(rows * sizeof *e->step_tok)) ||
                !(e->logits = malloc((size_t)B * V * sizeof *e->logits)) || !(e->fwork = malloc(V * sizeof *e->fwork)) ||
                !(e->uwork = malloc(V * sizeof *e->uwork))))
        rc = lorac_fail(err, LORAC_ENOMEM, "out of memory for %d sequences", B);
    for (int i = 0; !rc && i < B; i++) e->ids[i] = -1;
    if (!rc) rc = model_train_mode(m, 0, err);
    if (!rc) rc = model_adapter_set_new(m, &e->set, err);
    if (!rc) rc = model_session_new(m, &e->ses, err);
    if (!rc) rc = model_session_begin(e->ses, B, e->o.ctx, err);
    if (!rc) rc = model_session_use_adapters(e->ses, e->set, e->ids, B, err);
    if (!rc) {
        pthread_mutex_init(&e->mu, NULL);
        pthread_mutex_init(&e->model_mu, NULL);
        pthread_cond_init(&e->cv_in, NULL);
        pthread_cond_init(&e->cv_out, NULL);
        e->inited = 1;
        if (pthread_create(&e->thread, NULL, engine_main, e)) rc = lorac_fail(err, LORAC_ENOMEM, "cannot start the engine thread");
        else e->started = 1;
    }
    if (rc) serve_engine_free(e);
    else *out = e;
    return rc;
}

void serve_engine_drain(serve_engine *e) {
    if (!e || !e->started) return;
    pthread_mutex_lock(&e->mu);
    e->draining = 1;
    pthread_cond_broadcast(&e->cv_in);
    pthread_mutex_unlock(&e->mu);
    pthread_join(e->thread, NULL);
    e->started = 0;
}

void serve_engine_free(serve_engine *e) {
    if (!e) return;
    serve_engine_drain(e);
    serve_adapter_free_all(e);
    model_session_free(e->ses);
    model_adapter_set_free(e->set);
    if (e->inited) {
        pthread_mutex_destroy(&e->mu);
        pthread_mutex_destroy(&e->model_mu);
        pthread_cond_destroy(&e->cv_in);
        pthread_cond_destroy(&e->cv_out);
    }
    free(e->slots);
    free(e->ids);
    free(e->step_slots);
    free(e->step_tok);
    free(e->logits);
    free(e->fwork);
    free(e->uwork);
    free(e);
}

int serve_engine_wait_released(serve_engine *e, double seconds) {
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += (time_t)seconds;
    until.tv_nsec += (long)((seconds - (double)(time_t)seconds) * 1e9);
    if (until.tv_nsec >= 1000000000L) until.tv_sec++, until.tv_nsec -= 1000000000L;
    pthread_mutex_lock(&e->mu);
    while (e->live > 0 && pthread_cond_timedwait(&e->cv_out, &e->mu, &until) == 0) {}
    int live = e->live;
    pthread_mutex_unlock(&e->mu);
    return live;
}

const model *serve_engine_model(const serve_engine *e) { return e->m; }
int serve_engine_ctx(const serve_engine *e) { return e->o.ctx; }

void serve_engine_stats(serve_engine *e, serve_stats *s) {
    pthread_mutex_lock(&e->mu);
    *s = e->st;
    s->running = running(e);
    s->queued = e->nq;
    s->adapters = 0;
    for (serve_adapter *a = e->ads; a; a = a->next) s->adapters += a->name[0] && !a->unloaded;
    pthread_mutex_unlock(&e->mu);
}
