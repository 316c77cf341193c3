/* lorac/train.h — the model-agnostic machinery of `lorac train`.
 *
 * The model's forward and backward live elsewhere; this module holds what every fine-tuning run
 * needs around them:
 *   - AdamW over ONE flat buffer of trainable parameters (llm.c style: grads, m and v share its
 *     layout), with torch.optim.AdamW's arithmetic;
 *   - the learning-rate schedule of Hugging Face's get_linear_schedule_with_warmup;
 *   - gradient clipping by the global L2 norm, as torch.nn.utils.clip_grad_norm_;
 *   - training data: E2E "context||completion" lines or JSONL, tokenized through a callback into
 *     sequences with next-token targets (TRAIN_IGNORE where there is no loss);
 *   - micro-batches: a seeded Fisher-Yates shuffle per epoch, rows padded to the longest in the batch;
 *   - the state a run needs to resume bit-exactly (params, AdamW moments, counters, rng, data
 *     position), stored as safetensors;
 *   - the training log (JSONL), the loss-curve SVG and the text of a progress-bar line.
 *
 * A training run, as the CLI drives it (S = optimizer steps, A = grad_accum):
 *   total = train_total_steps(...); train_batcher_seek(.., epoch, batch) when resuming
 *   for step in [start, total):
 *       zero grads; repeat A times: train_batcher_next → model forward/backward (+= grads of
 *                                   the batch's mean token loss / A, as the paper's gpt2_ft.py)
 *       train_clip_grad_norm(grads, n, max_norm)            (if max_norm > 0)
 *       adamw_update(.., train_lr_linear(lr, warmup, total, step), params, grads, decay_mask)
 *       trainlog_write_step; every N steps: eval, trainlog_write_eval, train_state_save
 * The data are one stream of micro-batches across epochs: optimizer step s consumes micro-batches
 * [s*A, (s+1)*A) of that stream, so an accumulation may straddle an epoch boundary, and resuming
 * needs only (epoch, batch) of the next micro-batch.
 *
 * Determinism: the shuffle of epoch e depends only on (seed, e); the AdamW update is elementwise
 * and the clipping norm is summed in a fixed order, so nothing here depends on the thread count.
 * Memory: train_data holds every token twice (ids and targets, int32); nothing is allocated per step.
 *
 * Where lorac departs from microsoft/LoRA's examples/NLG scripts (on purpose, all small):
 *   - AdamW is torch.optim.AdamW (decay before the step, eps 1e-8 added after the bias correction);
 *     the paper's own AdamW class decays after the step and adds eps (1e-6) before it;
 *   - the schedule advances once per optimizer step (HF Trainer's convention); gpt2_ft.py steps
 *     it per micro-batch, which differs only when grad_accum > 1;
 *   - an epoch's short last batch stays short (or is dropped); FT_Dataset fills it with random
 *     examples; examples with nothing left to score after the cut are dropped, not kept at loss 0;
 *   - the shuffle is lorac's own (seeded Fisher-Yates), not torch's DistributedSampler order.
 */
#ifndef LORAC_TRAIN_H
#define LORAC_TRAIN_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "lorac/base.h"
#include "lorac/lora.h"
#include "lorac/model.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- options */

/* The options of a run, with the LoRA paper's E2E recipe as defaults (train_options_default):
 * AdamW(β1 0.9, β2 0.999, eps 1e-8, weight decay 0.01), lr 2e-4, 500 warm-up steps, linear decay,
 * label smoothing 0.1, LoRA dropout 0.1, batch 8, 5 epochs, sequences up to 512 tokens,
 * no gradient clipping. */
typedef struct train_options {
    double lr;                /* 0: the task's default */
    double beta1, beta2, eps, weight_decay;
    long long warmup_steps;
    double label_smoothing;
    double warmup_ratio;      /* > 0: warm up over this fraction of the steps instead of warmup_steps */
    model_lora_opts lora;     /* the LoRA layers (lora.dropout is LoRA's dropout); unset fields: the family's */
    int head_only;            /* a classifier: train its head alone (no LoRA) */
    int full_ft;              /* train every weight (no LoRA) */
    double hidden_dropout;    /* < 0: the model's config (BERT's hidden_dropout_prob; 0 for causal LMs) */
    long long max_train;      /* > 0: only the first N training examples after a seeded shuffle */
    int batch_size;           /* sequences per micro-batch */
    int grad_accum;           /* micro-batches per optimizer step */
    int max_seq_len;          /* longer sequences are cut, keeping their start; 0: the task's default */
    double max_grad_norm;     /* clip the global L2 norm to this; 0 = no clipping */
    int epochs;               /* used when max_steps == 0 */
    long long max_steps;      /* optimizer steps; 0 = run `epochs` epochs */
    int drop_last;            /* drop an epoch's last partial micro-batch (default: keep it) */
    int no_shuffle;           /* every epoch in file order (TRAIN_ORDER_FILE) instead of a seeded shuffle */
    uint64_t seed;
    long long eval_every;     /* score --eval-data every N steps; 0 = only at the end */
    long long save_every;     /* write a resumable checkpoint every N steps; 0 = never */
    long long log_every;      /* write a log line every N steps (>= 1) */
} train_options;

void train_options_default(train_options *o);
/* HF Trainer's defaults for sequence classification (GLUE): lr 0 (the mode's: LoRA 5e-4, head only
 * 2e-3, full fine-tuning 5e-5), warm-up ratio 0.06, no label smoothing, clipping at 1, batch 32,
 * 3 epochs, 128 tokens, LoRA dropout 0.1, seed 42. */
void train_options_classifier(train_options *o);
/* Checks ranges (lr > 0, 0 <= β < 1, batch >= 1, ...); the message names the offending option
 * as the CLI spells it (e.g. "--batch-size must be >= 1"). */
int train_options_check(const train_options *o, lorac_err *err);

/* Optimizer steps in a run: max_steps if set, else floor(epochs * batches_per_epoch / grad_accum)
 * (a partial accumulation at the very end of the data is not stepped). Fails when that is 0. */
int train_total_steps(const train_options *o, size_t batches_per_epoch, long long *total,
                      lorac_err *err);

/* ---------------------------------------------------------------- AdamW, schedule, clipping */

/* Doubles, as torch keeps them in Python floats: 1 - β2 must be formed from 0.999, not 0.999f. */
typedef struct adamw_config {
    double beta1, beta2, eps, weight_decay;
} adamw_config;

/* The optimizer's state for n trainable parameters: first and second moments m and v (n each,
 * laid out like the parameter buffer) and the number of updates done. */
typedef struct adamw_state {
    size_t n;
    float *m;
    float *v;
    long long t;
} adamw_state;

int adamw_init(adamw_state *s, size_t n, lorac_err *err); /* m = v = 0, t = 0 */
void adamw_free(adamw_state *s);

/* One AdamW update with learning rate lr, as torch.optim.AdamW (decoupled weight decay, bias
 * correction): t += 1; p *= 1 - lr*wd; m = lerp(m, g, 1-β1); v = β2 v + (1-β2) g²;
 * p -= lr/(1-β1^t) · m / (sqrt(v)/sqrt(1-β2^t) + eps).
 * params, grads, m, v are (n). decay_mask (n) may be NULL (every parameter decays, as loralib's
 * recipe does for LoRA A/B); where given, parameters with decay_mask[i] == 0 get no weight decay
 * (e.g. biases trained with bias="lora_only"). */
void adamw_update(adamw_state *s, const adamw_config *c, double lr, float *params, const float *grads,
                  const uint8_t *decay_mask);

/* The trainable tensors of a registry (requires_grad, with a gradient buffer), in registry order,
 * gathered into one flat buffer so that AdamW, clipping and the checkpoint see a single vector.
 * decay (total) marks the matrices: they decay, vectors (biases, norm weights) do not, as HF
 * Trainer's default (LoRA's A and B are matrices). grads has TRAIN_PARAMS_TAIL floats after its
 * total: a run's loss and token count travel in them with the gradients (one all-reduce a step). */
#define TRAIN_PARAMS_TAIL 2
typedef struct train_params {
    lora_param **p;
    size_t n, total;
    float *params, *grads;
    uint8_t *decay;
} train_params;
int train_params_init(train_params *f, lora_registry *reg, lorac_err *err);
void train_params_free(train_params *f);
/* params := the tensors' values (and grads their gradients when with_grads). */
void train_params_gather(train_params *f, int with_grads);
/* The tensors := params. */
void train_params_scatter(const train_params *f);
/* dst (total) += w · the tensors' gradients (a micro-batch's share of a step's gradient). */
void train_params_add_grads(const train_params *f, float *dst, float w);

/* Learning rate of optimizer step `step` (0-based), as HF get_linear_schedule_with_warmup with
 * the scheduler stepped after each optimizer step (so step k uses lr_lambda(k), and the first
 * step of a warm-up uses lr 0):
 *   lambda(k) = k / max(1, warmup)                               if k < warmup
 *             = max(0, (total - k) / max(1, total - warmup))     otherwise. */
double train_lr_linear(double base_lr, long long warmup, long long total, long long step);

/* grads (n): returns the global L2 norm before clipping (summed in double, in index order) and,
 * when max_norm > 0, scales grads by clip_coef = max_norm / (norm + 1e-6) if that is < 1, as
 * torch.nn.utils.clip_grad_norm_. */
float train_clip_grad_norm(float *grads, size_t n, float max_norm);

/* ---------------------------------------------------------------- training data */

/* The target of a position that is not scored (context, padding, the last position). */
#define TRAIN_IGNORE (-100)

typedef enum train_format {
    TRAIN_FORMAT_AUTO = 0, /* .jsonl/.json or a first non-blank byte '{' → JSONL, else E2E */
    TRAIN_FORMAT_E2E,      /* "context||completion" per line (the LoRA paper's E2E files) */
    TRAIN_FORMAT_JSONL,    /* {"prompt","completion"}, {"context","completion"} or {"text"} */
} train_format;

/* One example as read from the file. A context/completion example has context != NULL; a {"text"}
 * example has context == NULL and its text in completion. Strings are UTF-8 and NUL-terminated,
 * but JSON's \u0000 can put a NUL inside: use the lengths. */
typedef struct train_example {
    const char *context;
    size_t context_len;
    const char *completion;
    size_t completion_len;
    int line; /* 1-based line in the file */
} train_example;

typedef struct train_examples {
    train_example *ex;
    size_t n;
    char path[1024]; /* for messages */
    char *text;      /* owns every string */
} train_examples;

/* Reads every example of PATH. E2E lines are stripped of surrounding whitespace and split at "||"
 * (as the paper's scripts do: line.strip().split('||')); blank lines are skipped in both formats;
 * for JSONL, "prompt" or "context" with "completion" make a context/completion example, else "text"
 * makes a text example (other keys are ignored). Errors name the file and line: a line without
 * "||" or with two, invalid UTF-8, a bad JSON line (FILE:LINE:COL), a JSONL object with none of
 * the accepted keys or a non-string value, a file with no examples. */
int train_examples_read(const char *path, train_format fmt, train_examples *out, lorac_err *err);
void train_examples_free(train_examples *e);

/* A tokenizer, supplied by the caller: encodes text[0..len) into *ids (malloc'd by the callback,
 * freed by the caller) of *n tokens. Returns LORAC_OK or a status with a message in err. */
typedef int (*train_encode_fn)(void *ctx, const char *text, size_t len, int32_t **ids, size_t *n,
                               lorac_err *err);

/* Tokenized sequences, concatenated. Sequence i is positions [off[i], off[i+1]); targets[p] is the
 * token the model must predict at p (ids[p+1]) or TRAIN_IGNORE. */
typedef struct train_data {
    size_t n;            /* sequences */
    size_t *off;         /* (n+1) */
    int32_t *ids;        /* (off[n]) */
    int32_t *targets;    /* (off[n]) */
    size_t max_len;      /* longest sequence */
    size_t n_tokens;     /* off[n] */
    size_t n_targets;    /* scored positions */
    size_t n_truncated;  /* sequences cut to max_seq_len */
    size_t n_dropped;    /* examples left with nothing to score (not in the data) */
    int32_t pad_id;      /* = eos_id; fills padding in batches */
    /* sequence classification: per token types (sentence pairs), and per sequence a class or a
     * regression target; each NULL when the data has none */
    int32_t *type_ids;   /* (off[n]) */
    int32_t *labels;     /* (n) */
    float *scores;       /* (n) */
} train_data;

/* Builds sequences by the LoRA paper's recipe. A context/completion example becomes
 *   ids = enc(context) + [eos] + enc(" " + completion) + [eos]
 * with loss on the completion only: position p is scored (targets[p] = ids[p+1]) when ids[p+1]
 * is a token of " "+completion or the final eos; every other position, the last included, is
 * TRAIN_IGNORE (exactly the input/target/mask of the paper's FT_Dataset). A text example becomes
 * enc(text) + [eos], every next token predicted. A sequence longer than max_seq_len is cut to its
 * first max_seq_len tokens (as the paper's padding_tokens does; counted in n_truncated); an example
 * left with nothing to score (or of one token) is dropped (counted in n_dropped). Fails if no
 * sequence remains. Tokenizer errors are prefixed with "FILE:LINE: ". */
int train_data_build(const train_examples *ex, train_encode_fn encode, void *encode_ctx,
                     int32_t eos_id, size_t max_seq_len, train_data *out, lorac_err *err);
void train_data_free(train_data *d);
/* Keeps n of d's sequences (all when n >= d->n): the first n, or the first n of a Fisher-Yates
 * shuffle seeded by seed. */
int train_data_subset(train_data *d, size_t n, int shuffle, uint64_t seed, lorac_err *err);

/* ---------------------------------------------------------------- batches */

/* A micro-batch of B rows padded on the right to T = the longest row in it. */
typedef struct train_batch {
    int B, T;            /* B may be < capacity for an epoch's last partial batch */
    int32_t *ids;        /* (B,T) input tokens; pad_id at padding */
    int32_t *targets;    /* (B,T) next-token targets; TRAIN_IGNORE at unscored and padded positions */
    uint8_t *mask;       /* (B,T) 1 on real tokens, 0 on padding */
    int32_t *type_ids;   /* (B,T) token types, when the data has them */
    int32_t *labels;     /* (B) classes, when the data has them */
    float *scores;       /* (B) regression targets, when the data has them */
    int32_t *lens;       /* (B) real length of each row */
    size_t *index;       /* (B) which sequence of the train_data each row is */
    size_t n_tokens;     /* real tokens in the batch */
    size_t n_targets;    /* scored positions in the batch */
    long long epoch;     /* position of this batch in the stream */
    size_t batch;
    int cap_B;           /* capacity, from train_batch_init */
    size_t cap_T;
} train_batch;

/* Walks the data as an endless stream of micro-batches, epoch after epoch. Epoch e visits the
 * sequences in a Fisher-Yates permutation drawn from lorac_rng seeded with (seed, e)
 * (TRAIN_ORDER_SHUFFLE), in file order (TRAIN_ORDER_FILE), or longest first, ties in file order
 * (TRAIN_ORDER_LENGTH: evaluation, where rows of like length pad less; each row's result goes back
 * to its place through train_batch.index). */
enum { TRAIN_ORDER_FILE = 0, TRAIN_ORDER_SHUFFLE = 1, TRAIN_ORDER_LENGTH = 2 };
typedef struct train_batcher {
    const train_data *data;
    int batch_size;
    int drop_last;
    int shuffle;         /* TRAIN_ORDER_* */
    uint64_t seed;
    size_t n_batches;    /* micro-batches per epoch */
    long long epoch;     /* position of the next micro-batch */
    size_t batch;
    long long order_epoch; /* epoch that `order` was drawn for */
    size_t *order;       /* (data->n) */
} train_batcher;

int train_batcher_init(train_batcher *b, const train_data *d, int batch_size, int drop_last,
                       int shuffle, uint64_t seed, lorac_err *err);
void train_batcher_free(train_batcher *b);
/* Moves to micro-batch `batch` of epoch `epoch` (to resume). */
int train_batcher_seek(train_batcher *b, long long epoch, size_t batch, lorac_err *err);
/* Fills out with the next micro-batch and advances (into the next epoch after the last). out must
 * come from train_batch_init with capacity >= (batch_size, data->max_len). */
int train_batcher_next(train_batcher *b, train_batch *out, lorac_err *err);

int train_batch_init(train_batch *bt, int B, size_t max_T, lorac_err *err);
void train_batch_free(train_batch *bt);

/* ---------------------------------------------------------------- checkpoint (resume) */

/* Everything besides params and AdamW's moments that a resumed run needs to continue exactly. */
typedef struct train_state {
    long long step;      /* optimizer steps done (= adamw t) */
    long long epoch;     /* the next micro-batch: (epoch, batch) */
    long long batch;
    uint64_t seed;
    lorac_rng rng;       /* the run's rng (LoRA dropout) after `step` steps */
    double elapsed_s;    /* training wall time so far */
    long long tokens;    /* tokens trained on so far */
} train_state;

/* Writes PATH (safetensors, atomically): tensors "train.params", "adamw.m", "adamw.v" (F32, (n))
 * and metadata format="lorac-train-state", version, step, epoch, batch, seed, rng (4 hex words),
 * elapsed_s, tokens, n_params and `options` — a caller-made string of the options that must not
 * change across a resume (e.g. lr, warm-up, batch size, total steps) — may be NULL. */
int train_state_save(const char *path, const train_state *st, const float *params,
                     const adamw_state *opt, const char *options, lorac_err *err);
/* Reads PATH into st, params (n) and opt (already adamw_init'ed with n) and checks it: the format
 * tag, every field present and well-formed, tensor shapes = (n), opt->t = step, and (if options is
 * non-NULL) the saved options string equal to it. On error nothing is modified. */
int train_state_load(const char *path, train_state *st, float *params, adamw_state *opt,
                     const char *options, lorac_err *err);

/* ---------------------------------------------------------------- log, loss curve, progress */

/* The training log: one JSON object per line, flushed as written so it can be watched live:
 *   {"step":1,"epoch":0.0019,"loss":3.21,"lr":4e-07,"grad_norm":1.5,"tokens_per_s":812.5,"elapsed_s":0.9}
 *   {"step":100,"eval_loss":2.48,"eval_tokens":20431}
 * It also keeps the losses in memory for the SVG curve. */
typedef struct trainlog {
    FILE *f;
    char path[4096];
    long long *step;     /* train points */
    float *loss;
    size_t n, cap;
    long long *eval_step; /* eval points */
    float *eval_loss;
    size_t n_eval, cap_eval;
} trainlog;

typedef struct trainlog_entry {
    long long step;      /* 1-based: the number of optimizer steps done */
    double epoch;        /* fractional epochs done */
    double loss;
    double lr;                /* 0: the task's default */
    double grad_norm;    /* < 0: not written */
    double tokens_per_s;
    double elapsed_s;
} trainlog_entry;

/* Opens PATH for appending. resume_step < 0 starts a new log (an existing file is replaced);
 * otherwise the existing log is kept up to and including step resume_step (entries of an
 * interrupted run after its checkpoint are removed, atomically) and its losses are reloaded. */
int trainlog_open(trainlog *lg, const char *path, long long resume_step, lorac_err *err);
int trainlog_write_step(trainlog *lg, const trainlog_entry *e, lorac_err *err);
int trainlog_write_eval(trainlog *lg, long long step, double eval_loss, size_t eval_tokens,
                        lorac_err *err);
int trainlog_close(trainlog *lg, lorac_err *err); /* also frees; safe on a zeroed trainlog */

/* Writes the loss curve as an SVG (atomically): train loss per step (raw, and smoothed when there
 * are many points), eval loss points, axes with ticks and labels, a legend and the title. */
int trainlog_write_svg(const trainlog *lg, const char *path, const char *title, lorac_err *err);

/* Formats one progress line of at most width columns (width >= 20), e.g.
 *   "step 120/1000 [#####.....] loss 2.3456 | 1234 tok/s | ETA 3m12s"
 * into buf (cap bytes). The bar takes what the text leaves; NaN loss or a negative ETA print "--".
 * Returns the length written. The CLI prints it after '\r' on a terminal. */
size_t train_progress_format(char *buf, size_t cap, int width, long long step, long long total,
                             double loss, double tokens_per_s, double eta_s);

#ifdef __cplusplus
}
#endif
#endif
