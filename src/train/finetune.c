/* The one trainer (lorac train) and evaluation (lorac eval) for every family and task: the model and
 * its data in, micro-batches through model_forward/model_backward, AdamW over the trainable tensors
 * gathered into one flat buffer, the log, the checkpoint and the outputs.
 *
 * Data-parallel (lorac/dist.h, mpirun -np N): every rank walks the same global batches and takes
 * its share of the rows of each; the gradients, weighted by each rank's share of the scored tokens,
 * the loss and the token count are summed in one all-reduce a step, and every rank applies the same
 * AdamW step. Rank 0 alone writes. With one process every collective is a no-op. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "lorac/dist.h"
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

/* This rank's rows [*r0, *r1) of a global batch of B rows (contiguous, as even as they come). */
static void shard_rows(int B, int *r0, int *r1) {
    *r0 = (int)((long long)B * dist_rank() / dist_size());
    *r1 = (int)((long long)B * (dist_rank() + 1) / dist_size());
}

/* The model's view of this rank's rows of a batch: still padded to the global batch's T, so that a
 * row's numbers do not depend on how the rows were split. */
static model_batch shard_view(const train_batch *b, const train_data *d) {
    model_batch mb = batch_view(b, d);
    int r0, r1;
    shard_rows(b->B, &r0, &r1);
    size_t o = (size_t)r0 * (size_t)b->T;
    mb.B = r1 - r0;
    mb.ids += o;
    if (mb.type_ids) mb.type_ids += o;
    if (mb.mask) mb.mask += o;
    if (mb.targets) mb.targets += o;
    if (mb.labels) mb.labels += r0;
    if (mb.scores) mb.scores += r0;
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
    if (!rc && task && !(logits = calloc(d.n * (size_t)nl, sizeof(float)))) rc = lorac_fail(err, LORAC_ENOMEM, "out of memory");
    if (!rc) rc = train_batcher_init(&bt, &d, batch_size, 0, TRAIN_ORDER_LENGTH, 0, err);
    if (!rc) rc = train_batch_init(&batch, batch_size, d.max_len, err);
    if (!rc) rc = model_acts_alloc_inference(m, batch_size, (int)d.max_len, &acts, err);
    if (!rc) rc = model_train_mode(m, 0, err); /* inference: no dropout, adapters merged */
    double sum = 0.0;
    size_t count = 0;
    /* data-parallel: rank k evaluates batches k, k + N, ...; the sums (and a classifier's logits,
     * zero in the rows of other ranks) are then added up */
    for (size_t i = 0; !rc && i < bt.n_batches; i++) {
        float loss = 0;
        int cnt = 0;
        rc = train_batcher_next(&bt, &batch, err);
        if (i % (size_t)dist_size() != (size_t)dist_rank()) continue;
        model_batch mb = batch_view(&batch, &d);
        if (!rc) rc = model_forward(m, acts, &mb, 0.0f, MODEL_FWD_LOSS, NULL, &loss, &cnt, err);
        if (!rc) eval_batch(acts, &batch, nl, loss, cnt, &sum, &count, logits);
    }
    double sums[2] = {sum, (double)count};
    if (!rc) rc = dist_allreduce_sum_f64(sums, 2, err);
    if (!rc && logits) rc = dist_allreduce_sum(logits, d.n * (size_t)nl, err);
    sum = sums[0], count = (size_t)sums[1];
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
    lorac_rng drop;      /* several ranks: this rank's dropout stream for the step */
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
    if (cls && o->label_smoothing != 0.0) /* the classifier's loss has none: refused, not ignored */
        return lorac_fail(err, LORAC_EUNSUPPORTED, "--label-smoothing applies to causal LMs only (%s is a classifier)", a->model_path);
    if (o->hidden_dropout >= 0 && (rc = model_set_hidden_dropout(r->m, (float)o->hidden_dropout, err))) return rc;
    if ((rc = run_max_len(r->m, a->task, o->max_seq_len, &r->max_len, err))) return rc;
    rc = o->full_ft || o->head_only ? LORAC_OK : model_lora_check(r->m, &o->lora, err);
    return rc ? lora_option_error(rc, err) : LORAC_OK;
}

/* The LoRA layers a run trains: fresh ones (A from the seed, B = 0), or an adapter's (--init-adapter,
 * read as every --adapter is): its config gives the layout (rank, alpha, targets, rsLoRA, a q/k/v split), the run
 * gives the dropout, and a head it saved (modules_to_save) replaces the model's. */
static int run_lora(run *r, lorac_err *err) {
    const ft_args *a = r->a;
    const model_lora_opts *lo = &a->opt.lora;
    if (!a->init_adapter) return model_add_lora(r->m, lo, a->opt.seed, err);
    if (lo->r || lo->alpha > 0 || lo->targets[0] || lo->use_rslora || lo->gaussian_init)
        return lorac_fail(err, LORAC_EINVAL, "--init-adapter %s: its adapter_config.json gives the rank, alpha and targets "
                          "(drop --rank, --alpha, --targets, --rslora, --gaussian-init)", a->init_adapter);
    peft_adapter *x = NULL;
    int rc = model_adapter_read(r->m, a->init_adapter, &x, NULL, 0, err); /* a PEFT directory or a GGUF adapter */
    if (rc) return rc;
    model_lora_opts d = *lo;
    model_lora_opts_resolve(r->m, &d);
    x->cfg.lora_dropout = d.dropout;
    rc = model_peft_attach(r->m, x, err);
    peft_adapter_free(x);
    return rc;
}

/* The options that must not change across --resume. */
static void options_string(run *r) {
    const train_options *o = &r->a->opt;
    model_lora_opts lo = o->lora;
    model_lora_opts_resolve(r->m, &lo);
    snprintf(r->options, sizeof r->options, "lr=%.9g warmup=%lld wd=%.9g ls=%.9g batch=%d accum=%d maxlen=%zu clip=%.9g "
             "total=%lld seed=%llu r=%d alpha=%.9g dropout=%.9g rslora=%d targets=%s task=%s mode=%s%s%s",
             r->lr, r->warmup, o->weight_decay, o->label_smoothing, o->batch_size, o->grad_accum, r->max_len,
             o->max_grad_norm, r->total, (unsigned long long)o->seed, lo.r, lo.alpha, lo.dropout, lo.use_rslora, lo.targets,
             r->a->task ? r->a->task->name : "lm", o->full_ft ? "full" : o->head_only ? "head" : "lora",
             o->no_shuffle ? " file-order" : "", r->a->init_adapter ? " init-adapter" : ""); /* (older checkpoints lack both) */
}

/* Everything a run needs, validated before anything is written. */
static int run_setup(run *r, lorac_err *err) {
    const ft_args *a = r->a;
    const train_options *o = &a->opt;
    int rc = run_model(r, err);
    if (!rc) rc = ft_load_data(r->m, a->task, a->data_path, r->max_len, &r->data, err);
    if (!rc && o->max_train > 0) rc = train_data_subset(&r->data, (size_t)o->max_train, !o->no_shuffle, o->seed, err);
    if (!rc && a->eval_path) { /* validated now so that a bad eval file fails before any training */
        train_data ed;
        rc = ft_load_data(r->m, a->task, a->eval_path, r->max_len, &ed, err);
        train_data_free(&ed);
    }
    if (!rc && o->full_ft) rc = model_set_full_ft(r->m, err);
    if (!rc && a->init_adapter && (o->full_ft || o->head_only))
        rc = lorac_fail(err, LORAC_EINVAL, "--init-adapter trains LoRA layers; it excludes --head-only and --full-ft");
    if (!rc && !o->full_ft && !o->head_only) rc = run_lora(r, err);
    if (!rc && a->gguf_adapter && !lorac_has_suffix(a->gguf_adapter, ".gguf"))
        rc = lorac_fail(err, LORAC_EINVAL, "--gguf-adapter %s: the file name must end in .gguf", a->gguf_adapter);
    if (!rc && a->gguf_adapter) rc = model_save_adapter_check(r->m, a->gguf_adapter, err);
    if (!rc) rc = train_batcher_init(&r->bt, &r->data, o->batch_size, o->drop_last,
                                    o->no_shuffle ? TRAIN_ORDER_FILE : TRAIN_ORDER_SHUFFLE, o->seed, err);
    if (!rc) rc = train_total_steps(o, r->bt.n_batches, &r->total, err);
    r->warmup = o->warmup_ratio > 0 ? (long long)(o->warmup_ratio * (double)r->total) : o->warmup_steps;
    /* lr 0: the task's default (a classifier's per mode, as HF examples use them) */
    r->lr = o->lr > 0 ? o->lr : !a->task ? 2e-4 : o->full_ft ? 5e-5 : o->head_only ? 2e-3 : 5e-4;
    if (!rc) rc = train_batch_init(&r->batch, o->batch_size, r->data.max_len, err);
    int rows = (o->batch_size + dist_size() - 1) / dist_size(); /* this rank's share of a batch, at most */
    if (!rc) rc = model_acts_alloc(r->m, rows, (int)r->data.max_len, &r->acts, err);
    if (!rc) rc = train_params_init(&r->fl, model_registry(r->m), err);
    if (!rc) rc = adamw_init(&r->opt, r->fl.total, err);
    if (!rc) options_string(r);
    r->st.seed = o->seed;
    lorac_rng_seed(&r->st.rng, o->seed ^ 0x6c6f7261ULL); /* dropout stream, separate from the shuffle */
    snprintf(r->ckpt, sizeof r->ckpt, "%s/checkpoint.safetensors", a->out_dir);
    return rc;
}

static uint64_t fnv1a(uint64_t h, const void *p, size_t n) {
    for (size_t i = 0; i < n; i++) h = (h ^ ((const unsigned char *)p)[i]) * 0x100000001b3ULL;
    return h;
}

/* Every rank must run the same steps over the same data with the same tensors: checked on a
 * fingerprint of the options, the data's tokens and the trainable count (a data file that differs
 * between hosts would otherwise train on other rows, or make all-reduces of different sizes). */
static int run_check_ranks(run *r, lorac_err *err) {
    size_t v[5] = {r->data.n, r->data.n_tokens, r->data.n_targets, r->fl.total, r->bt.n_batches};
    uint64_t h = fnv1a(fnv1a(0xcbf29ce484222325ULL, r->options, strlen(r->options)), v, sizeof v);
    h = fnv1a(h, r->data.ids, r->data.n_tokens * sizeof *r->data.ids);
    int same = 1, rc = dist_same(h, &same, err);
    if (!rc && !same)
        rc = lorac_fail(err, LORAC_EINVAL, "the ranks differ in options, data or trainable tensors (%zu sequences of %s, "
                        "%zu trainable values on rank %d): every rank needs the same files", r->data.n, r->a->data_path,
                        r->fl.total, dist_rank());
    return dist_agree(rc, err);
}

/* --resume: rank 0 reads the checkpoint (a file on its disk only, when hosts do not share one) and
 * every rank receives the parameters, AdamW's moments and the counters. A checkpoint holds the
 * global run, so it resumes into any number of ranks. */
static int run_resume(run *r, lorac_err *err) {
    int rc = LORAC_OK;
    if (dist_rank() == 0) {
        struct stat sb;
        train_params_gather(&r->fl, 0);
        if (stat(r->ckpt, &sb) != 0)
            rc = lorac_fail(err, LORAC_ENOTFOUND, "--resume: %s does not exist (no interrupted run to continue in %s)",
                            r->ckpt, r->a->out_dir);
        else rc = train_state_load(r->ckpt, &r->st, r->fl.params, &r->opt, r->options, err);
    }
    if ((rc = dist_agree(rc, err))) return rc;
    size_t n = r->fl.total * sizeof(float);
    rc = dist_bcast(&r->st, sizeof r->st, err);
    if (!rc) rc = dist_bcast(r->fl.params, n, err);
    if (!rc) rc = dist_bcast(r->opt.m, n, err);
    if (!rc) rc = dist_bcast(r->opt.v, n, err);
    if (rc) return rc;
    r->opt.t = r->st.step;
    train_params_scatter(&r->fl);
    return train_batcher_seek(&r->bt, r->st.epoch, (size_t)r->st.batch, err);
}

/* Whether every rank ends a step with the same parameters (they apply the same update to the same
 * sums; an MPI whose all-reduce gave ranks different bits would break that), checked before rank 0
 * writes them. */
static int run_check_params(run *r, lorac_err *err) {
    int same = 1, rc = dist_same(fnv1a(0xcbf29ce484222325ULL, r->fl.params, r->fl.total * sizeof(float)), &same, err);
    if (!rc && !same)
        rc = lorac_fail(err, LORAC_EINVAL, "after step %lld the ranks hold different parameters (the all-reduce was not "
                        "bitwise the same on every rank)", r->st.step);
    return dist_agree(rc, err);
}

/* Dropout's stream for a step: the run's own with one process; with several, each rank draws its
 * own masks from a seed that the run's stream gives every rank alike, so that a checkpoint holds
 * one stream for any number of ranks. */
static lorac_rng *step_rng(run *r) {
    if (dist_size() == 1) return &r->st.rng;
    uint64_t s = lorac_rng_u64(&r->st.rng);
    lorac_rng_seed(&r->drop, s ^ (0xD1B54A32D192ED03ULL * (uint64_t)(dist_rank() + 1)));
    return &r->drop;
}

/* One micro-batch (global: every rank reads all of it) on this rank's rows: acc (total + 2) gets
 * the gradient of the global batch's mean loss that these rows make, their part of that loss and
 * their tokens. A row's loss is its scored tokens' (a classifier's: the row's) share of the mean, so
 * the rank's mean is weighted by its share of them; with one process that weight is exactly 1. */
static int run_micro(run *r, lorac_rng *rng, float *acc, lorac_err *err) {
    int rc = train_batcher_next(&r->bt, &r->batch, err), cls = r->data.labels || r->data.scores;
    model_batch mb = shard_view(&r->batch, &r->data);
    if (rc || mb.B == 0) return rc;
    float loss = 0;
    int cnt = 0;
    model_zero_grad(r->m);
    rc = model_forward(r->m, r->acts, &mb, (float)r->a->opt.label_smoothing, MODEL_FWD_TRAIN, rng, &loss, &cnt, err);
    if (!rc) rc = model_backward(r->m, r->acts, err);
    if (rc) return rc;
    size_t all = cls ? (size_t)r->batch.B : r->batch.n_targets;
    float w = (float)((double)cnt / (double)all);
    train_params_add_grads(&r->fl, acc, w);
    acc[r->fl.total] += w * loss;
    int r0, r1;
    shard_rows(r->batch.B, &r0, &r1);
    for (int i = r0; i < r1; i++) acc[r->fl.total + 1] += (float)r->batch.lens[i];
    return LORAC_OK;
}

/* One optimizer step: the micro-batches' gradients (each of its own mean loss, averaged), summed
 * over the ranks with the loss and the tokens, clipping, the scheduled AdamW update. */
static int run_step(run *r, long long step, double *loss, double *gnorm, double *lr, size_t *toks, lorac_err *err) {
    const train_options *o = &r->a->opt;
    size_t n = r->fl.total;
    float *g = r->fl.grads;
    memset(g, 0, (n + TRAIN_PARAMS_TAIL) * sizeof *g);
    lorac_rng *rng = step_rng(r);
    int rc = LORAC_OK;
    for (int micro = 0; micro < o->grad_accum && !rc; micro++) rc = run_micro(r, rng, g, err);
    if (!rc) rc = dist_allreduce_sum(g, n + TRAIN_PARAMS_TAIL, err);
    if (rc) return rc;
    *loss = (double)g[n] / o->grad_accum;
    *toks = (size_t)g[n + 1];
    if (o->grad_accum > 1)
        for (size_t i = 0; i < n; i++) g[i] /= (float)o->grad_accum;
    *gnorm = train_clip_grad_norm(g, n, (float)o->max_grad_norm);
    *lr = train_lr_linear(r->lr, r->warmup, r->total, step);
    adamw_config ac = {o->beta1, o->beta2, o->eps, o->weight_decay};
    train_params_gather(&r->fl, 0);
    adamw_update(&r->opt, &ac, *lr, r->fl.params, g, r->fl.decay);
    train_params_scatter(&r->fl);
    return LORAC_OK;
}

/* The run's outputs: the adapter (or, fully fine-tuned, the model) in out_dir. */
static int run_save(run *r, lorac_err *err) {
    return r->a->opt.full_ft ? model_save_files(r->m, r->a->out_dir, err) : model_save_adapter(r->m, r->a->out_dir, err);
}

/* Evaluation (sharded over the ranks), reported by rank 0. */
static int run_eval(run *r, ft_progress *pg, lorac_err *err) {
    const ft_args *a = r->a;
    ft_eval_result ev;
    int rc = ft_eval(r->m, a->task, a->eval_path, a->opt.batch_size, (int)r->max_len, 0, &ev, err);
    if (!rc && dist_rank() == 0) rc = trainlog_write_eval(&r->lg, r->st.step, ev.loss, ev.tokens, err);
    if (!rc && a->final_eval) *a->final_eval = ev;
    pg->is_eval = 1;
    pg->eval_loss = ev.loss;
    if (!rc && a->progress && dist_rank() == 0) a->progress(a->progress_ctx, pg);
    return rc;
}

/* A checkpoint on the way (--save-every): the same parameters everywhere, written by rank 0. */
static int run_checkpoint(run *r, lorac_err *err) {
    int rc = run_check_params(r, err);
    if (!rc && dist_rank() == 0) rc = run_save(r, err);
    if (!rc && dist_rank() == 0) rc = train_state_save(r->ckpt, &r->st, r->fl.params, &r->opt, r->options, err);
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
                          (t1 - t0) / (double)st->step * (double)(r->total - st->step), st->elapsed_s, 0, 0, 0, 0,
                          dist_size(), dist_size() > 1 ? (r->fl.total + TRAIN_PARAMS_TAIL) * sizeof(float) : 0};
        model_count_params(r->m, &pg.trainable_params, &pg.all_params);
        int root = dist_rank() == 0;
        if (root && (st->step % o->log_every == 0 || st->step == r->total)) {
            trainlog_entry e = {st->step, (double)r->bt.epoch + (double)r->bt.batch / (double)r->bt.n_batches, loss, lr, gnorm,
                                pg.tokens_per_s, st->elapsed_s};
            rc = trainlog_write_step(&r->lg, &e, err);
        }
        if (root && a->progress) a->progress(a->progress_ctx, &pg);
        if (!rc && a->eval_path && ((o->eval_every > 0 && st->step % o->eval_every == 0) || st->step == r->total))
            rc = run_eval(r, &pg, err);
        if (a->stop_after > 0 && st->step >= a->stop_after) break;
        if (!rc && o->save_every > 0 && st->step % o->save_every == 0 && st->step < r->total) rc = run_checkpoint(r, err);
    }
    return rc;
}

/* The output directory and the log (rank 0), once everything is checked. */
static int run_open_outputs(run *r, lorac_err *err) {
    const ft_args *a = r->a;
    int rc = LORAC_OK;
    char path[4200];
    snprintf(path, sizeof path, "%s/train_log.jsonl", a->out_dir);
    if (dist_rank() == 0 && mkdir(a->out_dir, 0777) != 0 && errno != EEXIST)
        rc = lorac_fail(err, LORAC_EIO, "%s: cannot create directory: %s", a->out_dir, strerror(errno));
    if (!rc && dist_rank() == 0) rc = trainlog_open(&r->lg, path, a->resume ? r->st.step : -1, err);
    return dist_agree(rc, err);
}

/* The run's outputs (rank 0): the adapter or model, the GGUF adapter, the checkpoint, the curve;
 * every rank learns whether they were written. */
static int run_finish(run *r, lorac_err *err) {
    const ft_args *a = r->a;
    int rc = run_check_params(r, err);
    if (rc || dist_rank() != 0) return rc ? rc : dist_agree(rc, err);
    char path[4200];
    snprintf(path, sizeof path, "%s/loss.svg", a->out_dir);
    rc = run_save(r, err);
    if (!rc && a->gguf_adapter) rc = model_save_adapter(r->m, a->gguf_adapter, err);
    if (!rc) rc = train_state_save(r->ckpt, &r->st, r->fl.params, &r->opt, r->options, err);
    if (!rc) rc = trainlog_write_svg(&r->lg, path, "lorac train: loss", err);
    return dist_agree(rc, err);
}

int ft_train(const ft_args *a, lorac_err *err) {
    run r;
    memset(&r, 0, sizeof r);
    r.a = a;
    /* everything is checked (on every rank) before the output directory appears */
    int rc = train_options_check(&a->opt, err);
    if (!rc) rc = run_setup(&r, err);
    rc = dist_agree(rc, err);
    if (!rc) rc = run_check_ranks(&r, err);
    if (!rc && a->resume) rc = run_resume(&r, err);
    if (!rc) rc = run_open_outputs(&r, err);
    if (!rc) rc = run_loop(&r, err);
    if (!rc) rc = run_finish(&r, err);
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
