/* The fine-tuning run (lorac train) and the teacher-forced evaluation (lorac eval) for any lm. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "lorac/finetune.h"
#include "lorac/json.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int encode_cb(void *ctx, const char *text, size_t len, int32_t **ids, size_t *n, lorac_err *err) {
    return lm_encode(ctx, text, len, 0, ids, n, err);
}

/* Puts bos in front of every sequence (unscored), for tokenizers that add one. */
static int prepend_bos(train_data *d, int32_t bos, lorac_err *err) {
    size_t n = d->n_tokens + d->n;
    int32_t *ids = malloc(n * sizeof *ids + 1), *tg = malloc(n * sizeof *tg + 1);
    if (!ids || !tg) {
        free(ids);
        free(tg);
        return lorac_fail(err, LORAC_ENOMEM, "train: out of memory");
    }
    size_t o = 0, start = d->off[0];
    for (size_t i = 0; i < d->n; i++) {
        size_t end = d->off[i + 1]; /* old offsets: off[i] was already rewritten */
        d->off[i] = o;
        ids[o] = bos;
        tg[o++] = TRAIN_IGNORE; /* bos predicts the first token: context, or the start of a text */
        for (size_t p = start; p < end; p++, o++) {
            ids[o] = d->ids[p];
            tg[o] = d->targets[p];
        }
        start = end;
    }
    d->off[d->n] = o;
    free(d->ids);
    free(d->targets);
    d->ids = ids;
    d->targets = tg;
    d->n_tokens = n;
    d->max_len++;
    return LORAC_OK;
}

/* ---------------------------------------------------------------- chat data */

/* Appends n tokens (scored or not) to a growing sequence. */
typedef struct seqbuf {
    int32_t *ids;
    uint8_t *scored; /* token i is a target */
    size_t n, cap;
} seqbuf;

static int seq_push(seqbuf *b, const int32_t *ids, size_t n, int scored, lorac_err *err) {
    if (b->n + n > b->cap) {
        size_t cap = (b->n + n) * 2 + 64;
        int32_t *ni = realloc(b->ids, cap * sizeof *ni);
        if (ni) b->ids = ni;
        uint8_t *ns = realloc(b->scored, cap);
        if (ns) b->scored = ns;
        if (!ni || !ns) return lorac_fail(err, LORAC_ENOMEM, "train: out of memory");
        b->cap = cap;
    }
    memcpy(b->ids + b->n, ids, n * sizeof *ids);
    memset(b->scored + b->n, scored, n);
    b->n += n;
    return LORAC_OK;
}

static int seq_push_text(seqbuf *b, lm *m, const char *text, size_t len, int scored, lorac_err *err) {
    int32_t *ids = NULL;
    size_t n = 0;
    int rc = lm_encode(m, text, len, 1, &ids, &n, err);
    if (!rc) rc = seq_push(b, ids, n, scored, err);
    free(ids);
    return rc;
}

/* One {"messages": [...]} line as tokens: the ChatML text, assistant turns scored. The text before
 * each assistant turn is format(messages before it, generation prompt); the turn is what
 * format(messages through it) adds to that. */
static int chat_tokens(lm *m, const json_value *msgs, const char *where, seqbuf *b, lorac_err *err) {
    size_t n = json_len(msgs);
    if (json_kind(msgs) != JSON_ARRAY || n == 0)
        return lorac_fail(err, LORAC_EFORMAT, "%s: \"messages\" must be a non-empty array", where);
    lm_chat_msg *cm = calloc(n, sizeof *cm);
    if (!cm) return lorac_fail(err, LORAC_ENOMEM, "train: out of memory");
    int rc = LORAC_OK;
    for (size_t i = 0; i < n && !rc; i++) {
        const json_value *v = json_at(msgs, i);
        const json_value *r = json_get(v, "role"), *c = json_get(v, "content");
        if (!r || !c || json_kind(r) != JSON_STRING || json_kind(c) != JSON_STRING)
            rc = lorac_fail(err, LORAC_EFORMAT, "%s: message %zu needs string \"role\" and \"content\"", where, i + 1);
        else if (strcmp(json_str(r), "system") && strcmp(json_str(r), "user") && strcmp(json_str(r), "assistant"))
            rc = lorac_fail(err, LORAC_EFORMAT, "%s: message %zu has role \"%s\" (system, user, assistant)", where, i + 1,
                            json_str(r));
        else if (strlen(json_str(c)) != json_str_len(c))
            rc = lorac_fail(err, LORAC_EFORMAT, "%s: message %zu contains a NUL character", where, i + 1);
        else {
            cm[i].role = json_str(r);
            cm[i].content = json_str(c);
        }
    }
    size_t done = 0; /* bytes of the formatted text already turned into tokens */
    if (!rc && m->add_bos) rc = seq_push(b, &m->bos_id, 1, 0, err);
    for (size_t k = 0; k < n && !rc; k++) {
        if (strcmp(cm[k].role, "assistant")) continue;
        char *pre = NULL, *full = NULL;
        size_t pl = 0, fl = 0;
        rc = lm_chat_format(m, cm, (int)k, 1, &pre, &pl, err);
        if (!rc) rc = lm_chat_format(m, cm, (int)k + 1, 0, &full, &fl, err);
        if (!rc && (pl < done || fl < pl || memcmp(full, pre, pl)))
            rc = lorac_fail(err, LORAC_EFORMAT, "%s: the chat template does not grow by appending turns", where);
        if (!rc) rc = seq_push_text(b, m, pre + done, pl - done, 0, err);
        if (!rc) rc = seq_push_text(b, m, full + pl, fl - pl, 1, err);
        done = fl;
        free(pre);
        free(full);
    }
    if (!rc && done == 0) rc = lorac_fail(err, LORAC_EFORMAT, "%s: no assistant message to learn from", where);
    free(cm);
    return rc;
}

/* Whether the first non-blank line of PATH is a JSON object with "messages". */
static int is_chat_file(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    char line[4096];
    int chat = 0;
    while (fgets(line, sizeof line, f)) {
        const char *p = line;
        while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n') p++;
        if (!*p) continue;
        chat = *p == '{' && strstr(p, "\"messages\"") != NULL;
        break;
    }
    fclose(f);
    return chat;
}

static int load_chat(lm *m, const char *path, size_t max_len, train_data *d, lorac_err *err) {
    char *text = NULL;
    size_t len = 0;
    int rc = lorac_read_file(path, &text, &len, err);
    if (rc) return rc;
    memset(d, 0, sizeof *d);
    d->pad_id = m->eos_id >= 0 ? m->eos_id : 0;
    seqbuf b = {0};
    size_t cap_seq = 0, cap_tok = 0;
    int line = 0;
    for (char *p = text; !rc && p < text + len;) {
        char *e = memchr(p, '\n', (size_t)(text + len - p));
        size_t ll = e ? (size_t)(e - p) : (size_t)(text + len - p);
        line++;
        char *q = p;
        p += ll + 1;
        while (ll && (*q == ' ' || *q == '\t' || *q == '\r')) q++, ll--;
        if (!ll) continue;
        char where[1200];
        snprintf(where, sizeof where, "%s:%d", path, line);
        json_doc *doc = NULL;
        if ((rc = json_parse(q, ll, path, line, &doc, err))) break;
        const json_value *msgs = json_get(json_root(doc), "messages");
        b.n = 0;
        if (!msgs) rc = lorac_fail(err, LORAC_EFORMAT, "%s: no \"messages\" (every line of a chat file needs one)", where);
        if (!rc) rc = chat_tokens(m, msgs, where, &b, err);
        json_free(doc);
        if (rc) break;
        size_t n = b.n;
        if (n > max_len) {
            n = max_len;
            d->n_truncated++;
        }
        size_t scored = 0;
        for (size_t i = 1; i < n; i++) scored += b.scored[i];
        if (n < 2 || !scored) {
            d->n_dropped++;
            continue;
        }
        if (d->n + 2 > cap_seq || d->n_tokens + n > cap_tok) { /* grow */
            cap_seq = cap_seq * 2 + 64;
            cap_tok = (d->n_tokens + n) * 2 + 1024;
            size_t *no = realloc(d->off, cap_seq * sizeof *no);
            if (no) d->off = no;
            int32_t *ni = realloc(d->ids, cap_tok * sizeof *ni);
            if (ni) d->ids = ni;
            int32_t *nt = realloc(d->targets, cap_tok * sizeof *nt);
            if (nt) d->targets = nt;
            if (!no || !ni || !nt) {
                rc = lorac_fail(err, LORAC_ENOMEM, "train: out of memory");
                break;
            }
        }
        size_t o = d->n_tokens;
        d->off[d->n] = o;
        for (size_t i = 0; i < n; i++) {
            d->ids[o + i] = b.ids[i];
            d->targets[o + i] = i + 1 < n && b.scored[i + 1] ? b.ids[i + 1] : TRAIN_IGNORE;
        }
        d->n++;
        d->n_tokens += n;
        d->off[d->n] = d->n_tokens;
        d->n_targets += scored;
        if (n > d->max_len) d->max_len = n;
    }
    free(b.ids);
    free(b.scored);
    free(text);
    if (!rc && d->n == 0) rc = lorac_fail(err, LORAC_EFORMAT, "%s: no conversation with an assistant turn to learn from", path);
    if (rc) train_data_free(d);
    return rc;
}

int ft_load_data(lm *m, const char *path, size_t max_len, train_data *d, lorac_err *err) {
    memset(d, 0, sizeof *d);
    if (is_chat_file(path)) return load_chat(m, path, max_len, d, err);
    if (m->eos_id < 0) return lorac_fail(err, LORAC_EFORMAT, "%s: the model has no end-of-text token for this data format", m->path);
    train_examples ex;
    int rc = train_examples_read(path, TRAIN_FORMAT_AUTO, &ex, err);
    if (rc) return rc;
    int bos = m->add_bos && max_len > 2;
    rc = train_data_build(&ex, encode_cb, m, m->eos_id, max_len - (size_t)bos, d, err);
    train_examples_free(&ex);
    if (!rc && bos && (rc = prepend_bos(d, m->bos_id, err))) train_data_free(d);
    return rc;
}

int ft_eval(lm *m, const char *data_path, int batch_size, int max_seq_len, ft_eval_result *out, lorac_err *err) {
    memset(out, 0, sizeof *out);
    if (batch_size < 1) return lorac_fail(err, LORAC_EINVAL, "--batch-size must be >= 1");
    size_t max_len = (size_t)(max_seq_len > 0 && max_seq_len < m->n_ctx ? max_seq_len : m->n_ctx);
    train_data d;
    int rc = ft_load_data(m, data_path, max_len, &d, err);
    if (rc) return rc;
    train_batcher bt;
    train_batch batch;
    lm_acts *acts = NULL;
    memset(&bt, 0, sizeof bt);
    memset(&batch, 0, sizeof batch);
    int was_training = lm_has_lora(m) && lm_is_training(m);
    rc = train_batcher_init(&bt, &d, batch_size, 0, 0, 0, err);
    if (!rc) rc = train_batch_init(&batch, batch_size, d.max_len, err);
    if (!rc) rc = lm_acts_alloc(m, batch_size, (int)d.max_len, &acts, err);
    if (!rc) rc = lm_train_mode(m, 0, err); /* inference: no dropout, adapters merged */
    double sum = 0.0;
    size_t count = 0;
    for (size_t i = 0; !rc && i < bt.n_batches; i++) {
        rc = train_batcher_next(&bt, &batch, err);
        float loss = 0;
        int cnt = 0;
        if (!rc) rc = lm_forward(m, acts, batch.ids, batch.targets, batch.B, batch.T, 0.0f, 0, NULL, &loss, &cnt, err);
        sum += (double)loss * cnt;
        count += (size_t)cnt;
    }
    if (!rc && was_training) rc = lm_train_mode(m, 1, err);
    lm_acts_free(acts);
    train_batch_free(&batch);
    train_batcher_free(&bt);
    train_data_free(&d);
    if (rc) return rc;
    out->tokens = count;
    out->loss = count ? sum / (double)count : 0.0;
    out->ppl = exp(out->loss);
    return LORAC_OK;
}

/* The trainable tensors in registry order, gathered into / scattered from one flat buffer so that
 * AdamW, clipping and the checkpoint see a single vector (LoRA params are a few MB). */
typedef struct flat {
    lora_param **p;
    int n;
    size_t total;
    float *params, *grads;
} flat;

static int flat_init(flat *f, lora_registry *reg, lorac_err *err) {
    memset(f, 0, sizeof *f);
    f->p = calloc(reg->n + 1, sizeof *f->p);
    if (!f->p) return lorac_fail(err, LORAC_ENOMEM, "train: out of memory");
    for (size_t i = 0; i < reg->n; i++)
        if (lora_param_requires_grad(&reg->params[i]) && reg->params[i].grad) {
            f->p[f->n++] = &reg->params[i];
            f->total += reg->params[i].numel;
        }
    f->params = malloc(f->total * sizeof(float) + 1);
    f->grads = malloc(f->total * sizeof(float) + 1);
    if (!f->params || !f->grads) return lorac_fail(err, LORAC_ENOMEM, "train: out of memory");
    return LORAC_OK;
}

static void flat_free(flat *f) {
    free(f->p);
    free(f->params);
    free(f->grads);
}

static void flat_gather(flat *f, int grads) {
    size_t off = 0;
    for (int i = 0; i < f->n; i++) {
        memcpy((grads ? f->grads : f->params) + off, grads ? f->p[i]->grad : f->p[i]->data, f->p[i]->numel * sizeof(float));
        off += f->p[i]->numel;
    }
}

static void flat_scatter(flat *f) {
    size_t off = 0;
    for (int i = 0; i < f->n; i++) {
        memcpy(f->p[i]->data, f->params + off, f->p[i]->numel * sizeof(float));
        off += f->p[i]->numel;
    }
}

/* The options that must not change across --resume. */
static void options_string(const ft_args *a, const lm_lora_opts *lo, long long total, char *buf, size_t n) {
    const train_options *o = &a->opt;
    snprintf(buf, n, "lr=%.9g warmup=%lld wd=%.9g ls=%.9g batch=%d accum=%d maxlen=%d clip=%.9g total=%lld seed=%llu "
             "r=%d alpha=%.9g dropout=%.9g rslora=%d targets=%s",
             o->lr, o->warmup_steps, o->weight_decay, o->label_smoothing, o->batch_size, o->grad_accum, o->max_seq_len,
             o->max_grad_norm, total, (unsigned long long)o->seed, lo->r, lo->alpha, o->lora_dropout, lo->use_rslora,
             lo->targets[0] ? lo->targets : "default");
}

int ft_train(const ft_args *a, lorac_err *err) {
    int rc = train_options_check(&a->opt, err);
    if (rc) return rc;
    lm m;
    train_data data, edata;
    train_batcher bt;
    train_batch batch;
    lm_acts *acts = NULL;
    flat fl;
    adamw_state opt;
    trainlog lg;
    memset(&data, 0, sizeof data);
    memset(&edata, 0, sizeof edata);
    memset(&bt, 0, sizeof bt);
    memset(&batch, 0, sizeof batch);
    memset(&fl, 0, sizeof fl);
    memset(&opt, 0, sizeof opt);
    memset(&lg, 0, sizeof lg);
    memset(&m, 0, sizeof m);
    char path[4200], options[512];
    const train_options *o = &a->opt;

    rc = lm_load(a->model_dir, &m, err);
    if (rc) return rc;
    lm_lora_opts lo;
    lm_lora_opts_default(&m, &lo);
    if (a->lora.r > 0) lo.r = a->lora.r;
    if (a->lora.alpha > 0) lo.alpha = a->lora.alpha;
    lo.use_rslora = a->lora.use_rslora;
    lo.gaussian_init = a->lora.gaussian_init;
    memcpy(lo.targets, a->lora.targets, sizeof lo.targets);
    lo.dropout = (float)o->lora_dropout;
    rc = lm_lora_targets_check(&m, lo.targets, err);
    size_t max_len = (size_t)(o->max_seq_len < m.n_ctx ? o->max_seq_len : m.n_ctx);
    if (!rc) rc = ft_load_data(&m, a->data_path, max_len, &data, err);
    if (!rc && a->eval_path) { /* validated now so that a bad eval file fails before any training */
        rc = ft_load_data(&m, a->eval_path, max_len, &edata, err);
        train_data_free(&edata);
    }
    if (!rc) rc = lm_add_lora(&m, &lo, o->seed, err);
    if (!rc) rc = train_batcher_init(&bt, &data, o->batch_size, o->drop_last, 1, o->seed, err);
    long long total = 0;
    if (!rc) rc = train_total_steps(o, bt.n_batches, &total, err);
    if (!rc) rc = train_batch_init(&batch, o->batch_size, data.max_len, err);
    if (!rc) rc = lm_acts_alloc(&m, o->batch_size, (int)data.max_len, &acts, err);
    if (!rc) rc = flat_init(&fl, lm_registry(&m), err);
    if (!rc) rc = adamw_init(&opt, fl.total, err);
    if (!rc) options_string(a, &lo, total, options, sizeof options);

    train_state st;
    memset(&st, 0, sizeof st);
    st.seed = o->seed;
    lorac_rng_seed(&st.rng, o->seed ^ 0x6c6f7261ULL); /* LoRA dropout stream, separate from the shuffle */
    snprintf(path, sizeof path, "%s/checkpoint.safetensors", a->out_dir);
    if (!rc && a->resume) {
        flat_gather(&fl, 0);
        rc = train_state_load(path, &st, fl.params, &opt, options, err);
        if (!rc) flat_scatter(&fl);
        if (!rc) rc = train_batcher_seek(&bt, st.epoch, (size_t)st.batch, err);
    }
    /* everything is checked: only now does the output directory appear */
    if (!rc && mkdir(a->out_dir, 0777) != 0 && errno != EEXIST)
        rc = lorac_fail(err, LORAC_EIO, "%s: cannot create directory: %s", a->out_dir, strerror(errno));
    char logp[4200];
    snprintf(logp, sizeof logp, "%s/train_log.jsonl", a->out_dir);
    if (!rc) rc = trainlog_open(&lg, logp, a->resume ? st.step : -1, err);
    adamw_config ac = {o->beta1, o->beta2, o->eps, o->weight_decay};
    double t0 = now_s() - st.elapsed_s;
    for (long long step = st.step; !rc && step < total; step++) {
        double ts = now_s();
        lm_zero_grad(&m);
        double loss_sum = 0.0;
        size_t toks = 0;
        for (int micro = 0; micro < o->grad_accum && !rc; micro++) {
            rc = train_batcher_next(&bt, &batch, err);
            float loss = 0;
            if (!rc) rc = lm_forward(&m, acts, batch.ids, batch.targets, batch.B, batch.T, (float)o->label_smoothing, 1,
                                       &st.rng, &loss, NULL, err);
            if (!rc) rc = lm_backward(&m, acts, err);
            loss_sum += loss;
            toks += batch.n_tokens;
        }
        if (rc) break;
        flat_gather(&fl, 0);
        flat_gather(&fl, 1);
        if (o->grad_accum > 1) /* each micro-batch contributed the gradient of its own mean loss */
            for (size_t i = 0; i < fl.total; i++) fl.grads[i] /= (float)o->grad_accum;
        double gnorm = train_clip_grad_norm(fl.grads, fl.total, (float)o->max_grad_norm);
        double lr = train_lr_linear(o->lr, o->warmup_steps, total, step);
        adamw_update(&opt, &ac, lr, fl.params, fl.grads, NULL);
        flat_scatter(&fl);
        st.step = step + 1;
        st.epoch = bt.epoch;
        st.batch = (long long)bt.batch;
        st.tokens += (long long)toks;
        double t1 = now_s();
        st.elapsed_s = t1 - t0;
        ft_progress pg = {st.step, total, loss_sum / o->grad_accum, lr, (double)toks / (t1 - ts),
                          (t1 - t0) / (double)st.step * (double)(total - st.step), st.elapsed_s, 0, 0};
        if (st.step % o->log_every == 0 || st.step == total) {
            trainlog_entry e = {st.step, (double)bt.epoch + (double)bt.batch / (double)bt.n_batches, pg.loss, lr, gnorm,
                                pg.tokens_per_s, st.elapsed_s};
            rc = trainlog_write_step(&lg, &e, err);
        }
        if (a->progress) a->progress(a->progress_ctx, &pg);
        if (!rc && a->eval_path && ((o->eval_every > 0 && st.step % o->eval_every == 0) || st.step == total)) {
            ft_eval_result ev;
            rc = ft_eval(&m, a->eval_path, o->batch_size, (int)max_len, &ev, err);
            if (!rc) rc = trainlog_write_eval(&lg, st.step, ev.loss, ev.tokens, err);
            pg.is_eval = 1;
            pg.eval_loss = ev.loss;
            if (!rc && a->progress) a->progress(a->progress_ctx, &pg);
        }
        if (a->stop_after > 0 && st.step >= a->stop_after) break;
        if (!rc && o->save_every > 0 && st.step % o->save_every == 0 && st.step < total) {
            rc = lm_save_adapter(&m, a->out_dir, err);
            if (!rc) rc = train_state_save(path, &st, fl.params, &opt, options, err);
        }
    }
    if (!rc) rc = lm_save_adapter(&m, a->out_dir, err);
    if (!rc && a->gguf_adapter) rc = lm_save_adapter(&m, a->gguf_adapter, err);
    if (!rc) rc = train_state_save(path, &st, fl.params, &opt, options, err);
    char svg[4200];
    snprintf(svg, sizeof svg, "%s/loss.svg", a->out_dir);
    if (!rc) rc = trainlog_write_svg(&lg, svg, "lorac train: loss", err);
    lorac_err ignored;
    trainlog_close(&lg, rc ? &ignored : err);
    adamw_free(&opt);
    flat_free(&fl);
    lm_acts_free(acts);
    train_batch_free(&batch);
    train_batcher_free(&bt);
    train_data_free(&data);
    lm_free(&m);
    return rc;
}
