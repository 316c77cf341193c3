/* The one trainer (lorac train) and evaluation (lorac eval) for every family and task: the model and
 * its data in, micro-batches through model_forward/model_backward, AdamW over the trainable tensors
 * gathered into one flat buffer, the log, the checkpoint and the outputs. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "lorac/finetune.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* The model's view of a micro-batch: an LM's next-token targets, or a classifier's rows with their
 * padding mask, token types and classes or scores. */
static model_batch batch_view(const train_batch *b, const train_data *d) {
    int cls = d->labels || d->scores;
    model_batch mb = {b->B, b->T, b->ids, d->type_ids ? b->type_ids : NULL, cls ? b->mask : NULL, cls ? NULL : b->targets,
                      d->labels ? b->labels : NULL, d->scores ? b->scores : NULL};
    return mb;
}

/* The longest sequence of a run: the option, checked against the model, or by default the model's
 * own up to 512 tokens (a causal LM, the paper's recipe) or 128 (a classifier, HF's GLUE examples). */
static int run_max_len(const model *m, const glue_task *task, int max_seq_len, size_t *out, lorac_err *err) {
    int cap = model_max_len(m), dflt = task ? 128 : 512;
    if (max_seq_len > cap)
        return lorac_fail(err, LORAC_EINVAL, "--max-seq-len %d exceeds the %d positions of %s", max_seq_len, cap, model_path(m));
    *out = (size_t)(max_seq_len > 0 ? max_seq_len : cap < dflt ? cap : dflt);
    return LORAC_OK;
}

/* ---------------------------------------------------------------- evaluation */

/* Sums the losses of one forward; a classifier's logits go to their rows of logits. */
static void eval_batch(const model_acts *acts, const train_batch *b, int nl, float loss, int cnt, double *sum, size_t *count,
                       float *logits) {
    *sum += (double)loss * cnt;
    *count += (size_t)cnt;
    for (int r = 0; logits && r < b->B; r++)
        memcpy(logits + b->index[r] * (size_t)nl, model_acts_logits(acts) + (size_t)r * nl, (size_t)nl * sizeof(float));
}

int ft_eval(model *m, const glue_task *task, const char *path, int batch_size, int max_seq_len, long long max_examples,
            ft_eval_result *out, lorac_err *err) {
    memset(out, 0, sizeof *out);
    if (batch_size < 1) return lorac_fail(err, LORAC_EINVAL, "--batch-size must be >= 1");
    double t0 = now_s();
    size_t max_len = 0;
    train_data d;
    train_batcher bt;
    train_batch batch;
    model_acts *acts = NULL;
    float *logits = NULL;
    memset(&d, 0, sizeof d), memset(&bt, 0, sizeof bt), memset(&batch, 0, sizeof batch);
    int rc = run_max_len(m, task, max_seq_len, &max_len, err), was_training = model_is_training(m);
    int nl = model_cfg(m)->num_labels;
    if (!rc) rc = ft_load_data(m, task, path, max_len, &d, err);
    if (!rc && max_examples > 0) rc = train_data_subset(&d, (size_t)max_examples, 0, 0, err);
    if (!rc && task && !(logits = malloc(d.n * (size_t)nl * sizeof(float)))) rc = lorac_fail(err, LORAC_ENOMEM, "out of memory");
    if (!rc) rc = train_batcher_init(&bt, &d, batch_size, 0, 0, 0, err);
    if (!rc) rc = train_batch_init(&batch, batch_size, d.max_len, err);
    if (!rc) rc = model_acts_alloc_inference(m, batch_size, (int)d.max_len, &acts, err);
    if (!rc) rc = model_train_mode(m, 0, err); /* inference: no dropout, adapters merged */
    double sum = 0.0;
    size_t count = 0;
    for (size_t i = 0; !rc && i < bt.n_batches; i++) {
        float loss = 0;
        int cnt = 0;
        rc = train_batcher_next(&bt, &batch, err);
        model_batch mb = batch_view(&batch, &d);
        if (!rc) rc = model_forward(m, acts, &mb, 0.0f, MODEL_FWD_LOSS, NULL, &loss, &cnt, err);
        if (!rc) eval_batch(acts, &batch, nl, loss, cnt, &sum, &count, logits);
    }
    if (was_training && !rc) rc = model_train_mode(m, 1, err);
    out->tokens = count;
    out->loss = count ? sum / (double)count : 0.0;
    out->ppl = task ? 0.0 : exp(out->loss);
    out->scores.loss = out->loss;
    out->seconds = now_s() - t0;
    if (!rc && task && glue_score(task, logits, d.labels, d.scores, d.n, &out->scores))
        rc = lorac_fail(err, LORAC_ENOMEM, "out of memory");
    free(logits);
    model_acts_free(acts);
    train_batch_free(&batch);
    train_batcher_free(&bt);
    train_data_free(&d);
    return rc;
}

/* ---------------------------------------------------------------- a run */

typedef struct run {
    const ft_args *a;
    model *m;
    train_data data;
    train_batcher bt;
    train_batch batch;
    model_acts *acts;
    train_params fl;
    adamw_state opt;
    trainlog lg;
    train_state st;
    size_t max_len;
    long long total, warmup;
    double lr;
    char options[640], ckpt[4200];
} run;

/* The library names a LoRA field ("targets: ...", "lora r 0 ..."); a run reports the option that
 * set it, as the CLI spells it. */
static int lora_option_error(int rc, lorac_err *err) {
    static const char *const map[][2] = {{"targets: ", "--targets: "}, {"lora r ", "--rank "}, {"lora alpha ", "--alpha "},
                                         {"lora dropout ", "--lora-dropout "}};
    for (size_t i = 0; err && i < sizeof map / sizeof map[0]; i++) {
        size_t k = strlen(map[i][0]);
        if (strncmp(err->msg, map[i][0], k)) continue;
        char rest[sizeof err->msg];
        snprintf(rest, sizeof rest, "%s", err->msg + k);
        return lorac_fail(err, rc, "%s%s", map[i][1], rest);
    }
    return rc;
}

/* The model with what it trains: LoRA (the family's defaults where unset), its head alone, or
 * everything; checked against the task. */
static int run_model(run *r, lorac_err *err) {
    const ft_args *a = r->a;
    const train_options *o = &a->opt;
    model_load_opts lo = {a->task ? a->task->num_labels : 0, o->seed, 0};
    int rc = model_load(a->model_path, &lo, &r->m, err);
    if (rc) return rc;
    int cls = model_cfg(r->m)->head != MODEL_HEAD_LM;
    if (a->task && !cls)
        return lorac_fail(err, LORAC_EUNSUPPORTED, "%s: --task glue-%s needs an encoder with a classification head (BERT, "
                          "RoBERTa)", a->model_path, a->task->name);
    if (!a->task && cls)
        return lorac_fail(err, LORAC_EUNSUPPORTED, "%s: a %s classifier trains on a task (--task glue-<name>)", a->model_path,
                          model_cfg(r->m)->model_type);
    if (o->head_only && !cls) return lorac_fail(err, LORAC_EINVAL, "--head-only needs a model with a classification head");
    if (o->hidden_dropout >= 0 && (rc = model_set_hidden_dropout(r->m, (float)o->hidden_dropout, err))) return rc;
    if ((rc = run_max_len(r->m, a->task, o->max_seq_len, &r->max_len, err))) return rc;
    rc = o->full_ft || o->head_only ? LORAC_OK : model_lora_check(r->m, &o->lora, err);
    return rc ? lora_option_error(rc, err) : LORAC_OK;
}

/* The options that must not change across --resume. */
static void options_string(run *r) {
    const train_options *o = &r->a->opt;
    model_lora_opts lo = o->lora;
    model_lora_opts_resolve(r->m, &lo);
    snprintf(r->options, sizeof r->options, "lr=%.9g warmup=%lld wd=%.9g ls=%.9g batch=%d accum=%d maxlen=%zu clip=%.9g "
             "total=%lld seed=%llu r=%d alpha=%.9g dropout=%.9g rslora=%d targets=%s task=%s mode=%s",
             r->lr, r->warmup, o->weight_decay, o->label_smoothing, o->batch_size, o->grad_accum, r->max_len,
             o->max_grad_norm, r->total, (unsigned long long)o->seed, lo.r, lo.alpha, lo.dropout, lo.use_rslora, lo.targets,
             r->a->task ? r->a->task->name : "lm", o->full_ft ? "full" : o->head_only ? "head" : "lora");
}

/* Everything a run needs, validated before anything is written. */
static int run_setup(run *r, lorac_err *err) {
    const ft_args *a = r->a;
    const train_options *o = &a->opt;
    int rc = run_model(r, err);
    if (!rc) rc = ft_load_data(r->m, a->task, a->data_path, r->max_len, &r->data, err);
    if (!rc && o->max_train > 0) rc = train_data_subset(&r->data, (size_t)o->max_train, 1, o->seed, err);
    if (!rc && a->eval_path) { /* validated now so that a bad eval file fails before any training */
        train_data ed;
        rc = ft_load_data(r->m, a->task, a->eval_path, r->max_len, &ed, err);
        train_data_free(&ed);
    }
    if (!rc && o->full_ft) rc = model_set_full_ft(r->m, err);
    if (!rc && !o->full_ft && !o->head_only) rc = model_add_lora(r->m, &o->lora, o->seed, err);
    if (!rc && a->gguf_adapter && !lorac_has_suffix(a->gguf_adapter, ".gguf"))
        rc = lorac_fail(err, LORAC_EINVAL, "--gguf-adapter %s: the file name must end in .gguf", a->gguf_adapter);
    if (!rc && a->gguf_adapter) rc = model_save_adapter_check(r->m, a->gguf_adapter, err);
    if (!rc) rc = train_batcher_init(&r->bt, &r->data, o->batch_size, o->drop_last, 1, o->seed, err);
    if (!rc) rc = train_total_steps(o, r->bt.n_batches, &r->total, err);
    r->warmup = o->warmup_ratio > 0 ? (long long)(o->warmup_ratio * (double)r->total) : o->warmup_steps;
    /* lr 0: the task's default (a classifier's per mode, as HF examples use them) */
    r->lr = o->lr > 0 ? o->lr : !a->task ? 2e-4 : o->full_ft ? 5e-5 : o->head_only ? 2e-3 : 5e-4;
    if (!rc) rc = train_batch_init(&r->batch, o->batch_size, r->data.max_len, err);
    if (!rc) rc = model_acts_alloc(r->m, o->batch_size, (int)r->data.max_len, &r->acts, err);
    if (!rc) rc = train_params_init(&r->fl, model_registry(r->m), err);
    if (!rc) rc = adamw_init(&r->opt, r->fl.total, err);
    if (!rc) options_string(r);
    r->st.seed = o->seed;
    lorac_rng_seed(&r->st.rng, o->seed ^ 0x6c6f7261ULL); /* dropout stream, separate from the shuffle */
    snprintf(r->ckpt, sizeof r->ckpt, "%s/checkpoint.safetensors", a->out_dir);
    if (!rc && a->resume) {
        struct stat sb;
        if (stat(r->ckpt, &sb) != 0)
            return lorac_fail(err, LORAC_ENOTFOUND, "--resume: %s does not exist (no interrupted run to continue in %s)",
                              r->ckpt, a->out_dir);
        train_params_gather(&r->fl, 0);
        rc = train_state_load(r->ckpt, &r->st, r->fl.params, &r->opt, r->options, err);
        if (!rc) train_params_scatter(&r->fl);
        if (!rc) rc = train_batcher_seek(&r->bt, r->st.epoch, (size_t)r->st.batch, err);
    }
    return rc;
}

/* One optimizer step: the micro-batches' gradients (each of its own mean loss, averaged), clipping,
 * the scheduled AdamW update. */
static int run_step(run *r, long long step, double *loss, double *gnorm, double *lr, size_t *toks, lorac_err *err) {
    const train_options *o = &r->a->opt;
    int rc = LORAC_OK;
    *loss = 0.0, *toks = 0;
    model_zero_grad(r->m);
    for (int micro = 0; micro < o->grad_accum && !rc; micro++) {
        float l = 0;
        rc = train_batcher_next(&r->bt, &r->batch, err);
        model_batch mb = batch_view(&r->batch, &r->data);
        if (!rc) rc = model_forward(r->m, r->acts, &mb, (float)o->label_smoothing, MODEL_FWD_TRAIN, &r->st.rng, &l, NULL, err);
        if (!rc) rc = model_backward(r->m, r->acts, err);
        *loss += l;
        *toks += r->batch.n_tokens;
    }
    if (rc) return rc;
    *loss /= o->grad_accum;
    train_params_gather(&r->fl, 1);
    if (o->grad_accum > 1)
        for (size_t i = 0; i < r->fl.total; i++) r->fl.grads[i] /= (float)o->grad_accum;
    *gnorm = train_clip_grad_norm(r->fl.grads, r->fl.total, (float)o->max_grad_norm);
    *lr = train_lr_linear(r->lr, r->warmup, r->total, step);
    adamw_config ac = {o->beta1, o->beta2, o->eps, o->weight_decay};
    adamw_update(&r->opt, &ac, *lr, r->fl.params, r->fl.grads, r->fl.decay);
    train_params_scatter(&r->fl);
    return LORAC_OK;
}

/* The run's outputs: the adapter (or, fully fine-tuned, the model) in out_dir. */
static int run_save(run *r, lorac_err *err) {
    return r->a->opt.full_ft ? model_save_files(r->m, r->a->out_dir, err) : model_save_adapter(r->m, r->a->out_dir, err);
}

static int run_eval(run *r, ft_progress *pg, lorac_err *err) {
    const ft_args *a = r->a;
    ft_eval_result ev;
    int rc = ft_eval(r->m, a->task, a->eval_path, a->opt.batch_size, (int)r->max_len, 0, &ev, err);
    if (!rc) rc = trainlog_write_eval(&r->lg, r->st.step, ev.loss, ev.tokens, err);
    if (!rc && a->final_eval) *a->final_eval = ev;
    pg->is_eval = 1;
    pg->eval_loss = ev.loss;
    if (!rc && a->progress) a->progress(a->progress_ctx, pg);
    return rc;
}

static int run_loop(run *r, lorac_err *err) {
    const ft_args *a = r->a;
    const train_options *o = &a->opt;
    int rc = LORAC_OK;
    double t0 = now_s() - r->st.elapsed_s;
    for (long long step = r->st.step; !rc && step < r->total; step++) {
        double ts = now_s(), loss, gnorm, lr;
        size_t toks;
        if ((rc = run_step(r, step, &loss, &gnorm, &lr, &toks, err))) break;
        train_state *st = &r->st;
        st->step = step + 1, st->epoch = r->bt.epoch, st->batch = (long long)r->bt.batch, st->tokens += (long long)toks;
        double t1 = now_s();
        st->elapsed_s = t1 - t0;
        ft_progress pg = {st->step, r->total, loss, lr, (double)toks / (t1 - ts),
                          (t1 - t0) / (double)st->step * (double)(r->total - st->step), st->elapsed_s, 0, 0, 0, 0};
        model_count_params(r->m, &pg.trainable_params, &pg.all_params);
        if (st->step % o->log_every == 0 || st->step == r->total) {
            trainlog_entry e = {st->step, (double)r->bt.epoch + (double)r->bt.batch / (double)r->bt.n_batches, loss, lr, gnorm,
                                pg.tokens_per_s, st->elapsed_s};
            rc = trainlog_write_step(&r->lg, &e, err);
        }
        if (a->progress) a->progress(a->progress_ctx, &pg);
        if (!rc && a->eval_path && ((o->eval_every > 0 && st->step % o->eval_every == 0) || st->step == r->total))
            rc = run_eval(r, &pg, err);
        if (a->stop_after > 0 && st->step >= a->stop_after) break;
        if (!rc && o->save_every > 0 && st->step % o->save_every == 0 && st->step < r->total) {
            rc = run_save(r, err);
            if (!rc) rc = train_state_save(r->ckpt, st, r->fl.params, &r->opt, r->options, err);
        }
    }
    return rc;
}

int ft_train(const ft_args *a, lorac_err *err) {
    int rc = train_options_check(&a->opt, err);
    if (rc) return rc;
    run r;
    memset(&r, 0, sizeof r);
    r.a = a;
    rc = run_setup(&r, err);
    /* everything is checked: only now does the output directory appear */
    if (!rc && mkdir(a->out_dir, 0777) != 0 && errno != EEXIST)
        rc = lorac_fail(err, LORAC_EIO, "%s: cannot create directory: %s", a->out_dir, strerror(errno));
    char path[4200];
    snprintf(path, sizeof path, "%s/train_log.jsonl", a->out_dir);
    if (!rc) rc = trainlog_open(&r.lg, path, a->resume ? r.st.step : -1, err);
    if (!rc) rc = run_loop(&r, err);
    if (!rc) rc = run_save(&r, err);
    if (!rc && a->gguf_adapter) rc = model_save_adapter(r.m, a->gguf_adapter, err);
    if (!rc) rc = train_state_save(r.ckpt, &r.st, r.fl.params, &r.opt, r.options, err);
    snprintf(path, sizeof path, "%s/loss.svg", a->out_dir);
    if (!rc) rc = trainlog_write_svg(&r.lg, path, "lorac train: loss", err);
    lorac_err ignored;
    trainlog_close(&r.lg, rc ? &ignored : err);
    adamw_free(&r.opt);
    train_params_free(&r.fl);
    model_acts_free(r.acts);
    train_batch_free(&r.batch);
    train_batcher_free(&r.bt);
    train_data_free(&r.data);
    model_free(r.m);
    return rc;
}
