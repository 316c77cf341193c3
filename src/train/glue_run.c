/* GLUE fine-tuning and prediction with a BERT / RoBERTa encoder: LoRA (PEFT-style, head trained),
 * head only, or full fine-tuning; AdamW per tensor with HF Trainer's linear warm-up/decay schedule. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "lorac/bert.h"
#include "lorac/glue.h"
#include "lorac/train.h"

void glue_train_options_default(glue_train_options *o) {
    memset(o, 0, sizeof *o);
    o->rank = 8;
    o->alpha = 16;
    o->lora_dropout = 0.1;
    o->hidden_dropout = -1;
    o->targets = "query,value";
    o->weight_decay = 0.01;
    o->warmup_ratio = 0.06;
    o->epochs = 3;
    o->batch = 32;
    o->max_seq_len = 128;
    o->seed = 42;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Tokenized examples: row i is ids[i*T ...] with len[i] tokens. */
typedef struct enc_set {
    int T;
    int32_t *ids, *types;
    int *len;
    size_t n;
} enc_set;

static void enc_free(enc_set *s) {
    free(s->ids);
    free(s->types);
    free(s->len);
}

static int encode_all(const glue_encoder *e, const glue_data *d, size_t n, int T, enc_set *s, lorac_err *err) {
    s->T = T;
    s->n = n;
    s->ids = malloc(n * (size_t)T * sizeof(int32_t) + 1);
    s->types = malloc(n * (size_t)T * sizeof(int32_t) + 1);
    s->len = malloc(n * sizeof(int) + 1);
    if (!s->ids || !s->types || !s->len) return lorac_fail(err, LORAC_ENOMEM, "%s: out of memory", d->path);
    for (size_t i = 0; i < n; i++) {
        int rc = glue_encode(e, d->ex[i].a, d->ex[i].b, T, s->ids + i * T, s->types + i * T, &s->len[i], err);
        if (rc) return rc;
    }
    return LORAC_OK;
}

/* Packs rows idx[0..B) padded to the longest into ids/types/mask (B,Tb); returns Tb. */
static int pack(const enc_set *s, const size_t *idx, int B, int32_t pad, int32_t *ids, int32_t *types, uint8_t *mask) {
    int Tb = 1;
    for (int b = 0; b < B; b++) Tb = s->len[idx[b]] > Tb ? s->len[idx[b]] : Tb;
    for (int b = 0; b < B; b++) {
        const int32_t *src = s->ids + idx[b] * s->T, *st = s->types + idx[b] * s->T;
        for (int t = 0; t < Tb; t++) {
            int real = t < s->len[idx[b]];
            ids[b * Tb + t] = real ? src[t] : pad;
            types[b * Tb + t] = real ? st[t] : 0;
            mask[b * Tb + t] = (uint8_t)real;
        }
    }
    return Tb;
}

static void shuffle(size_t *p, size_t n, lorac_rng *rng) {
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)(lorac_rng_u64(rng) % i);
        size_t t = p[i - 1];
        p[i - 1] = p[j];
        p[j] = t;
    }
}

static int is_dir(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

/* The model's family and the longest input it takes (RoBERTa's positions start after padding_idx):
 * --max-seq-len beyond it is cut to it, as tokenizers cut to model_max_length. */
static int roberta_model(const char *dir, int *roberta, int *max_seq, lorac_err *err) {
    bert_config c;
    int rc = bert_config_load(dir, &c, err);
    if (rc) return rc;
    *roberta = c.family == BERT_FAMILY_ROBERTA;
    int cap = *roberta ? c.max_pos - c.pad_token_id - 1 : c.max_pos;
    if (*max_seq > cap) *max_seq = cap;
    return LORAC_OK;
}

int glue_train(const glue_train_options *o, double *train_seconds, FILE *log, lorac_err *err) {
    const glue_task *task = glue_task_find(o->task);
    if (!task) return lorac_fail(err, LORAC_EINVAL, "unknown GLUE task \"%s\" (cola, sst2, mrpc, stsb, qqp, mnli, qnli, rte)", o->task);
    if (o->head_only && o->full_ft) return lorac_fail(err, LORAC_EINVAL, "--head-only and --full-ft exclude each other");
    if (o->batch < 1 || o->epochs < 1 || o->max_seq_len < 4)
        return lorac_fail(err, LORAC_EINVAL, "--batch and --epochs must be >= 1, --max-seq-len >= 4");
    char path[4200];
    if (is_dir(o->data)) snprintf(path, sizeof path, "%s/train.tsv", o->data);
    else snprintf(path, sizeof path, "%s", o->data);
    int max_seq = o->max_seq_len, roberta = 0, rc = roberta_model(o->model, &roberta, &max_seq, err);
    if (rc) return rc;
    glue_data d;
    if ((rc = glue_read_tsv(task, path, &d, err))) return rc;
    glue_encoder *enc = NULL;
    bert_model *m = NULL;
    enc_set es = {0};
    size_t *order = NULL;
    adamw_state *opt = NULL;
    int32_t *ids = NULL, *types = NULL, *labels = NULL;
    uint8_t *mask = NULL;
    float *targets = NULL;
    if ((rc = glue_encoder_load(o->model, roberta, &enc, err))) goto done;
    /* a seeded subsample of the training set when --max-train is given */
    lorac_rng rng;
    lorac_rng_seed(&rng, o->seed);
    order = malloc(d.n * sizeof(size_t));
    if (!order) { rc = lorac_fail(err, LORAC_ENOMEM, "out of memory"); goto done; }
    for (size_t i = 0; i < d.n; i++) order[i] = i;
    size_t n = d.n;
    if (o->max_train > 0 && (size_t)o->max_train < d.n) {
        shuffle(order, d.n, &rng);
        n = (size_t)o->max_train;
        glue_example *sub = malloc(n * sizeof *sub);
        if (!sub) { rc = lorac_fail(err, LORAC_ENOMEM, "out of memory"); goto done; }
        for (size_t i = 0; i < n; i++) sub[i] = d.ex[order[i]];
        free(d.ex);
        d.ex = sub;
        d.n = n;
        for (size_t i = 0; i < n; i++) order[i] = i;
    }
    if ((rc = encode_all(enc, &d, n, max_seq, &es, err))) goto done;
    peft_config pc;
    peft_config_init(&pc);
    pc.r = o->rank;
    pc.lora_alpha = o->alpha;
    pc.lora_dropout = o->lora_dropout;
    snprintf(pc.task_type, sizeof pc.task_type, "SEQ_CLS");
    snprintf(pc.base_model_name_or_path, sizeof pc.base_model_name_or_path, "%s", o->model);
    pc.n_targets = 0;
    for (const char *p = o->targets; *p && pc.n_targets < PEFT_MAX_TARGETS;) {
        size_t l = strcspn(p, ",");
        if (l > 0 && l < 64) snprintf(pc.target_modules[pc.n_targets++], 64, "%.*s", (int)l, p);
        p += l;
        if (*p == ',') p++;
    }
    bert_options bo = {0};
    bo.num_labels = task->num_labels;
    bo.max_batch = o->batch;
    bo.max_seq = max_seq;
    bo.full_ft = o->full_ft;
    bo.lora = o->head_only || o->full_ft ? NULL : &pc;
    bo.seed = o->seed;
    if ((rc = bert_model_load(o->model, &bo, &m, err))) goto done;
    if (o->hidden_dropout >= 0 && (rc = bert_model_set_hidden_dropout(m, (float)o->hidden_dropout, err))) goto done;
    double lr = o->lr > 0 ? o->lr : o->full_ft ? 5e-5 : o->head_only ? 2e-3 : 5e-4;
    size_t np = bert_n_trainable(m);
    opt = calloc(np, sizeof *opt);
    if (!opt) { rc = lorac_fail(err, LORAC_ENOMEM, "out of memory"); goto done; }
    for (size_t i = 0; i < np && !rc; i++) rc = adamw_init(&opt[i], bert_trainable(m, i).numel, err);
    if (rc) goto done;
    size_t BT = (size_t)o->batch * max_seq;
    ids = malloc(BT * sizeof(int32_t));
    types = malloc(BT * sizeof(int32_t));
    mask = malloc(BT);
    labels = malloc((size_t)o->batch * sizeof(int32_t));
    targets = malloc((size_t)o->batch * sizeof(float));
    if (!ids || !types || !mask || !labels || !targets) { rc = lorac_fail(err, LORAC_ENOMEM, "out of memory"); goto done; }
    long long per_epoch = (long long)((n + (size_t)o->batch - 1) / (size_t)o->batch);
    long long total = per_epoch * o->epochs, step = 0;
    long long warmup = (long long)(o->warmup_ratio * (double)total);
    char rep[256];
    bert_report(m, rep, sizeof rep);
    const bert_config *mc = bert_model_config(m);
    if (log) {
        fprintf(log, "glue-%s: %zu examples, %lld steps, lr %g, %s\n", task->name, n, total, lr, rep);
        /* config.json's dropout is what training applies (hidden and head); the attention-probability
         * dropout is not implemented (op_attention never materialises the probabilities) */
        fprintf(log, "dropout: hidden %g, classifier %g, lora %g%s\n", (double)mc->hidden_dropout,
                (double)mc->classifier_dropout, o->head_only || o->full_ft ? 0.0 : o->lora_dropout,
                mc->attn_dropout > 0 ? " (attention_probs_dropout_prob not applied)" : "");
    }
    bert_model_train_mode(m, 1);
    double t0 = now_s(), run_loss = 0;
    int run_n = 0;
    for (int ep = 0; ep < o->epochs && !rc; ep++) {
        shuffle(order, n, &rng);
        for (size_t s = 0; s < n && !rc; s += (size_t)o->batch, step++) {
            int B = (int)(n - s < (size_t)o->batch ? n - s : (size_t)o->batch);
            int T = pack(&es, order + s, B, glue_encoder_pad(enc), ids, types, mask);
            for (int b = 0; b < B; b++) {
                labels[b] = d.ex[order[s + b]].label;
                targets[b] = d.ex[order[s + b]].score;
            }
            bert_batch bt = {B, T, ids, types, mask, task->num_labels > 1 ? labels : NULL, task->num_labels == 1 ? targets : NULL};
            float loss = 0;
            bert_zero_grad(m);
            rc = bert_forward(m, &bt, NULL, &loss, &rng, err);
            if (!rc) rc = bert_backward(m, 1.0f, err);
            if (rc) break;
            /* clip the global norm to 1 (HF Trainer's max_grad_norm) over every trainable tensor */
            double sq = 0;
            for (size_t i = 0; i < np; i++) {
                bert_param p = bert_trainable(m, i);
                for (size_t j = 0; j < p.numel; j++) sq += (double)p.grad[j] * p.grad[j];
            }
            double norm = sqrt(sq), coef = 1.0 / (norm + 1e-6);
            double lr_t = train_lr_linear(lr, warmup, total, step);
            for (size_t i = 0; i < np; i++) {
                bert_param p = bert_trainable(m, i);
                if (coef < 1)
                    for (size_t j = 0; j < p.numel; j++) p.grad[j] *= (float)coef;
                adamw_config ac = {0.9, 0.999, 1e-8, p.decay ? o->weight_decay : 0.0};
                adamw_update(&opt[i], &ac, lr_t, p.data, p.grad, NULL);
            }
            run_loss += loss;
            run_n++;
            if (log && (step + 1) % 20 == 0) {
                fprintf(log, "step %lld/%lld epoch %d loss %.4f lr %.3g %.1fs\n", step + 1, total, ep + 1, run_loss / run_n,
                        lr_t, now_s() - t0);
                fflush(log);
                run_loss = 0;
                run_n = 0;
            }
        }
    }
    if (train_seconds) *train_seconds = now_s() - t0;
    if (!rc) rc = o->full_ft ? bert_save_full(m, o->model, o->out, err) : bert_save_adapter(m, o->out, err);
done:
    for (size_t i = 0; opt && i < bert_n_trainable(m); i++) adamw_free(&opt[i]);
    free(opt);
    free(ids);
    free(types);
    free(mask);
    free(labels);
    free(targets);
    free(order);
    enc_free(&es);
    bert_model_free(m);
    glue_encoder_free(enc);
    glue_data_free(&d);
    return rc;
}

int glue_predict(const glue_task *t, const char *model, const char *adapter, const glue_data *d, int max_seq_len,
                 int batch, size_t n, float **logits, double *loss, lorac_err *err) {
    *logits = NULL;
    if (n == 0 || n > d->n) n = d->n;
    int roberta = 0, rc = roberta_model(model, &roberta, &max_seq_len, err);
    if (rc) return rc;
    glue_encoder *enc = NULL;
    bert_model *m = NULL;
    enc_set es = {0};
    size_t *idx = NULL;
    int32_t *ids = NULL, *types = NULL, *labels = NULL;
    uint8_t *mask = NULL;
    float *targets = NULL, *out = NULL;
    if ((rc = glue_encoder_load(model, roberta, &enc, err))) goto done;
    if ((rc = encode_all(enc, d, n, max_seq_len, &es, err))) goto done;
    bert_options bo = {0};
    bo.num_labels = t->num_labels;
    bo.max_batch = batch;
    bo.max_seq = max_seq_len;
    bo.seed = 0;
    if ((rc = bert_model_load(model, &bo, &m, err))) goto done;
    bert_model_train_mode(m, 0);
    if (adapter && (rc = bert_load_adapter(m, adapter, err))) goto done;
    size_t BT = (size_t)batch * max_seq_len;
    idx = malloc((size_t)batch * sizeof(size_t));
    ids = malloc(BT * sizeof(int32_t));
    types = malloc(BT * sizeof(int32_t));
    mask = malloc(BT);
    labels = malloc((size_t)batch * sizeof(int32_t));
    targets = malloc((size_t)batch * sizeof(float));
    out = malloc(n * (size_t)t->num_labels * sizeof(float));
    if (!idx || !ids || !types || !mask || !labels || !targets || !out) { rc = lorac_fail(err, LORAC_ENOMEM, "out of memory"); goto done; }
    double sum = 0;
    for (size_t s = 0; s < n && !rc; s += (size_t)batch) {
        int B = (int)(n - s < (size_t)batch ? n - s : (size_t)batch);
        for (int b = 0; b < B; b++) {
            idx[b] = s + (size_t)b;
            labels[b] = d->ex[s + b].label;
            targets[b] = d->ex[s + b].score;
        }
        int T = pack(&es, idx, B, glue_encoder_pad(enc), ids, types, mask);
        bert_batch bt = {B, T, ids, types, mask, t->num_labels > 1 ? labels : NULL, t->num_labels == 1 ? targets : NULL};
        float l = 0;
        rc = bert_forward(m, &bt, out + s * (size_t)t->num_labels, &l, NULL, err);
        sum += (double)l * B;
    }
    if (!rc) {
        *logits = out;
        out = NULL;
        if (loss) *loss = sum / (double)n;
    }
done:
    free(out);
    free(idx);
    free(ids);
    free(types);
    free(mask);
    free(labels);
    free(targets);
    enc_free(&es);
    bert_model_free(m);
    glue_encoder_free(enc);
    return rc;
}
