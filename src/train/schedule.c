/* Learning-rate schedule (linear warm-up, linear decay to 0) and training options. */
#include <math.h>
#include <string.h>

#include "lorac/train.h"

double train_lr_linear(double base_lr, long long warmup, long long total, long long step) {
    double lambda;
    if (step < warmup) {
        lambda = (double)step / (double)(warmup > 1 ? warmup : 1);
    } else {
        long long span = total - warmup;
        lambda = (double)(total - step) / (double)(span > 1 ? span : 1);
        if (lambda < 0.0) lambda = 0.0;
    }
    return base_lr * lambda;
}

void train_options_default(train_options *o) {
    memset(o, 0, sizeof *o);
    o->lr = 2e-4;
    o->beta1 = 0.9;
    o->beta2 = 0.999;
    o->eps = 1e-8;
    o->weight_decay = 0.01;
    o->warmup_steps = 500;
    o->label_smoothing = 0.1;
    model_lora_opts_init(&o->lora);
    o->lora.dropout = 0.1f;
    o->hidden_dropout = -1.0;
    o->batch_size = 8;
    o->grad_accum = 1;
    o->max_seq_len = 0; /* the model's positions, up to the paper's 512 */
    o->max_grad_norm = 0.0;
    o->epochs = 5;
    o->max_steps = 0;
    /* Keep an epoch's short last batch: every example is seen once per epoch and an epoch has
     * ceil(n/B) steps, the paper's count (its FT_Dataset fills the last batch up with random
     * examples instead). */
    o->drop_last = 0;
    o->seed = 110;    /* the paper's gpt2_ft.py --random_seed for E2E */
    o->eval_every = 0;
    o->save_every = 0;
    o->log_every = 1;
}

void train_options_classifier(train_options *o) {
    train_options_default(o);
    o->lr = 0.0;
    o->warmup_steps = 0;
    o->warmup_ratio = 0.06;
    o->label_smoothing = 0.0;
    o->max_grad_norm = 1.0;
    o->batch_size = 32;
    o->epochs = 3;
    o->max_seq_len = 0; /* 128, or the model's positions if fewer */
    o->seed = 42;
}

int train_options_check(const train_options *o, lorac_err *err) {
    if (!(o->lr >= 0.0) || !isfinite(o->lr)) return lorac_fail(err, LORAC_EINVAL, "--lr must be > 0 (0: the task's default)");
    if (!(o->warmup_ratio >= 0.0 && o->warmup_ratio <= 1.0))
        return lorac_fail(err, LORAC_EINVAL, "--warmup-ratio must be in [0, 1]");
    if (o->lora.r < 0) return lorac_fail(err, LORAC_EINVAL, "--rank must be >= 1");
    if (o->head_only && o->full_ft) return lorac_fail(err, LORAC_EINVAL, "--head-only and --full-ft exclude each other");
    if (!(o->hidden_dropout < 1.0)) return lorac_fail(err, LORAC_EINVAL, "--hidden-dropout must be in [0, 1)");
    if (!(o->beta1 >= 0.0 && o->beta1 < 1.0))
        return lorac_fail(err, LORAC_EINVAL, "--adam-beta1 must be in [0, 1)");
    if (!(o->beta2 >= 0.0 && o->beta2 < 1.0))
        return lorac_fail(err, LORAC_EINVAL, "--adam-beta2 must be in [0, 1)");
    if (!(o->eps >= 0.0) || !isfinite(o->eps)) return lorac_fail(err, LORAC_EINVAL, "--adam-eps must be >= 0");
    if (!(o->weight_decay >= 0.0) || !isfinite(o->weight_decay))
        return lorac_fail(err, LORAC_EINVAL, "--weight-decay must be >= 0");
    if (o->warmup_steps < 0) return lorac_fail(err, LORAC_EINVAL, "--warmup-steps must be >= 0");
    if (!(o->label_smoothing >= 0.0 && o->label_smoothing < 1.0))
        return lorac_fail(err, LORAC_EINVAL, "--label-smoothing must be in [0, 1)");
    if (!(o->lora.dropout < 1.0f)) return lorac_fail(err, LORAC_EINVAL, "--lora-dropout must be in [0, 1)");
    if (o->batch_size < 1) return lorac_fail(err, LORAC_EINVAL, "--batch-size must be >= 1");
    if (o->grad_accum < 1) return lorac_fail(err, LORAC_EINVAL, "--grad-accum must be >= 1");
    if (o->max_seq_len != 0 && o->max_seq_len < 2) return lorac_fail(err, LORAC_EINVAL, "--max-seq-len must be >= 2");
    if (!(o->max_grad_norm >= 0.0) || !isfinite(o->max_grad_norm))
        return lorac_fail(err, LORAC_EINVAL, "--max-grad-norm must be >= 0 (0 = no clipping)");
    if (o->max_steps < 0) return lorac_fail(err, LORAC_EINVAL, "--max-steps must be >= 0");
    if (o->max_steps == 0 && o->epochs < 1)
        return lorac_fail(err, LORAC_EINVAL, "--epochs must be >= 1 (or give --max-steps)");
    if (o->eval_every < 0) return lorac_fail(err, LORAC_EINVAL, "--eval-every must be >= 0");
    if (o->save_every < 0) return lorac_fail(err, LORAC_EINVAL, "--save-every must be >= 0");
    if (o->log_every < 1) return lorac_fail(err, LORAC_EINVAL, "--log-every must be >= 1");
    return LORAC_OK;
}

int train_total_steps(const train_options *o, size_t batches_per_epoch, long long *total,
                      lorac_err *err) {
    *total = 0;
    if (o->max_steps > 0) {
        *total = o->max_steps;
        return LORAC_OK;
    }
    size_t micro;
    if (lorac_size_mul(batches_per_epoch, (size_t)(o->epochs > 0 ? o->epochs : 0), &micro) ||
        micro / (size_t)(o->grad_accum > 0 ? o->grad_accum : 1) > (size_t)INT64_MAX)
        return lorac_fail(err, LORAC_EINVAL, "--epochs: too many steps");
    long long s = (long long)(micro / (size_t)(o->grad_accum > 0 ? o->grad_accum : 1));
    if (s == 0)
        return lorac_fail(err, LORAC_EINVAL,
                          "%zu micro-batches per epoch x %d epochs is less than one step of %d "
                          "accumulated micro-batches",
                          batches_per_epoch, o->epochs, o->grad_accum);
    *total = s;
    return LORAC_OK;
}
