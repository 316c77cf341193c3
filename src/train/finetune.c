/* The GPT-2 fine-tuning run (lorac train) and the teacher-forced evaluation (lorac eval). */
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

static int encode_cb(void *ctx, const char *text, size_t len, int32_t **ids, size_t *n, lorac_err *err) {
    return bpe_encode(ctx, text, len, ids, n, err);
}

/* Reads and tokenizes a data file by the paper's recipe. */
static int load_data(const char *path, const bpe_tokenizer *tok, int32_t eos, size_t max_len, train_data *d,
                     lorac_err *err) {
    train_examples ex;
    int rc = train_examples_read(path, TRAIN_FORMAT_AUTO, &ex, err);
    if (rc) return rc;
    rc = train_data_build(&ex, encode_cb, (void *)tok, eos, max_len, d, err);
    train_examples_free(&ex);
    return rc;
}

int ft_eval(gpt2_model *m, const bpe_tokenizer *tok, const char *data_path, int batch_size, int max_seq_len,
            ft_eval_result *out, lorac_err *err) {
    memset(out, 0, sizeof *out);
    if (batch_size < 1) return lorac_fail(err, LORAC_EINVAL, "--batch-size must be >= 1");
    size_t max_len = (size_t)(max_seq_len > 0 && max_seq_len < m->cfg.n_positions ? max_seq_len : m->cfg.n_positions);
    train_data d;
    int rc = load_data(data_path, tok, m->cfg.eos_token_id, max_len, &d, err);
    if (rc) return rc;
    train_batcher bt;
    train_batch batch;
    gpt2_acts *acts = NULL;
    memset(&bt, 0, sizeof bt);
    memset(&batch, 0, sizeof batch);
    int was_training = m->has_lora && (m->blocks[0].qkv ? m->blocks[0].qkv->training : 1);
    rc = train_batcher_init(&bt, &d, batch_size, 0, 0, 0, err);
    if (!rc) rc = train_batch_init(&batch, batch_size, d.max_len, err);
    if (!rc) rc = gpt2_acts_alloc(m, batch_size, (int)d.max_len, &acts, err);
    if (!rc) rc = gpt2_model_train_mode(m, 0, err); /* inference: no dropout, adapters merged */
    double sum = 0.0;
    size_t count = 0;
    for (size_t i = 0; !rc && i < bt.n_batches; i++) {
        rc = train_batcher_next(&bt, &batch, err);
        float loss = 0;
        int cnt = 0;
        if (!rc) rc = gpt2_forward(m, acts, batch.ids, batch.targets, batch.B, batch.T, 0.0f, 0, NULL, &loss, &cnt, err);
        sum += (double)loss * cnt;
        count += (size_t)cnt;
    }
    if (!rc && was_training) rc = gpt2_model_train_mode(m, 1, err);
    gpt2_acts_free(acts);
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

static int flat_init(flat *f, gpt2_model *m, lorac_err *err) {
    memset(f, 0, sizeof *f);
    f->p = calloc(m->reg.n + 1, sizeof *f->p);
    if (!f->p) return lorac_fail(err, LORAC_ENOMEM, "train: out of memory");
    for (size_t i = 0; i < m->reg.n; i++)
        if (lora_param_requires_grad(&m->reg.params[i]) && m->reg.params[i].grad) {
            f->p[f->n++] = &m->reg.params[i];
            f->total += m->reg.params[i].numel;
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
static void options_string(const ft_args *a, long long total, char *buf, size_t n) {
    const train_options *o = &a->opt;
    snprintf(buf, n, "lr=%.9g warmup=%lld wd=%.9g ls=%.9g batch=%d accum=%d maxlen=%d clip=%.9g total=%lld seed=%llu "
             "r=%d alpha=%.9g dropout=%.9g qkv=%d%d%d c_attn=%d proj=%d fc=%d fcproj=%d",
             o->lr, o->warmup_steps, o->weight_decay, o->label_smoothing, o->batch_size, o->grad_accum, o->max_seq_len,
             o->max_grad_norm, total, (unsigned long long)o->seed, a->lora.r, a->lora.alpha, o->lora_dropout,
             a->lora.qkv[0], a->lora.qkv[1], a->lora.qkv[2], a->lora.c_attn_full, a->lora.attn_proj, a->lora.mlp_fc,
             a->lora.mlp_proj);
}

int ft_train(const ft_args *a, lorac_err *err) {
    int rc = train_options_check(&a->opt, err);
    if (rc) return rc;
    gpt2_model m;
    bpe_tokenizer *tok = NULL;
    train_data data, edata;
    train_batcher bt;
    train_batch batch;
    gpt2_acts *acts = NULL;
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

    rc = gpt2_model_load(a->model_dir, &m, err);
    if (!rc) rc = bpe_load_dir(a->model_dir, &tok, err);
    if (!rc && bpe_vocab_size(tok) > m.cfg.vocab_size)
        rc = lorac_fail(err, LORAC_EFORMAT, "%s: the tokenizer has %d tokens but the model only %d", a->model_dir,
                        bpe_vocab_size(tok), m.cfg.vocab_size);
    size_t max_len = (size_t)(o->max_seq_len < m.cfg.n_positions ? o->max_seq_len : m.cfg.n_positions);
    if (!rc) rc = load_data(a->data_path, tok, m.cfg.eos_token_id, max_len, &data, err);
    if (!rc && a->eval_path) { /* validated now so that a bad eval file fails before any training */
        rc = load_data(a->eval_path, tok, m.cfg.eos_token_id, max_len, &edata, err);
        train_data_free(&edata);
    }
    gpt2_lora_opts lo = a->lora;
    lo.dropout = (float)o->lora_dropout;
    if (!rc) rc = gpt2_model_add_lora(&m, &lo, o->seed, err);
    if (!rc) rc = train_batcher_init(&bt, &data, o->batch_size, o->drop_last, 1, o->seed, err);
    long long total = 0;
    if (!rc) rc = train_total_steps(o, bt.n_batches, &total, err);
    if (!rc) rc = train_batch_init(&batch, o->batch_size, data.max_len, err);
    if (!rc) rc = gpt2_acts_alloc(&m, o->batch_size, (int)data.max_len, &acts, err);
    if (!rc) rc = flat_init(&fl, &m, err);
    if (!rc) rc = adamw_init(&opt, fl.total, err);
    if (!rc) options_string(a, total, options, sizeof options);

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
        gpt2_model_zero_grad(&m);
        double loss_sum = 0.0;
        size_t toks = 0;
        for (int micro = 0; micro < o->grad_accum && !rc; micro++) {
            rc = train_batcher_next(&bt, &batch, err);
            float loss = 0;
            if (!rc) rc = gpt2_forward(&m, acts, batch.ids, batch.targets, batch.B, batch.T, (float)o->label_smoothing, 1,
                                       &st.rng, &loss, NULL, err);
            if (!rc) rc = gpt2_backward(&m, acts, err);
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
            rc = ft_eval(&m, tok, a->eval_path, o->batch_size, (int)max_len, &ev, err);
            if (!rc) rc = trainlog_write_eval(&lg, st.step, ev.loss, ev.tokens, err);
            pg.is_eval = 1;
            pg.eval_loss = ev.loss;
            if (!rc && a->progress) a->progress(a->progress_ctx, &pg);
        }
        if (a->stop_after > 0 && st.step >= a->stop_after) break;
        if (!rc && o->save_every > 0 && st.step % o->save_every == 0 && st.step < total) {
            rc = gpt2_peft_save(&m, a->out_dir, err);
            if (!rc) rc = train_state_save(path, &st, fl.params, &opt, options, err);
        }
    }
    if (!rc) rc = gpt2_peft_save(&m, a->out_dir, err);
    if (!rc) rc = train_state_save(path, &st, fl.params, &opt, options, err);
    char svg[4200];
    snprintf(svg, sizeof svg, "%s/loss.svg", a->out_dir);
    if (!rc) rc = trainlog_write_svg(&lg, svg, "lorac train: loss", err);
    lorac_err ignored;
    trainlog_close(&lg, rc ? &ignored : err);
    adamw_free(&opt);
    flat_free(&fl);
    gpt2_acts_free(acts);
    train_batch_free(&batch);
    train_batcher_free(&bt);
    train_data_free(&data);
    bpe_free(tok);
    gpt2_model_free(&m);
    return rc;
}
