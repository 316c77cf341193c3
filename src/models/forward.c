/* The whole model's forward and backward over a batch (B,T): embeddings, the blocks, and the head
 * with its loss (a causal LM's sliced head + cross-entropy, or a classifier on the first token).
 * Shapes: N = B·T rows, C hidden, V vocabulary, NL labels. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "models/model_acts.h"

/* ---------------------------------------------------------------- the batch */

static int check_batch(const model *m, const model_acts *a, const model_batch *bt, int for_backward, lorac_err *err) {
    const model_config *c = &m->cfg;
    int lm = c->head == MODEL_HEAD_LM, V = c->vocab_size;
    if (bt->B < 1 || bt->T < 1 || bt->B > a->capB || bt->T > a->capT)
        return lorac_fail(err, LORAC_EINVAL, "%s: batch %d x %d does not fit the activations' %d x %d", m->path, bt->B,
                          bt->T, a->capB, a->capT);
    if (for_backward && !(lm ? bt->targets != NULL : bt->labels || bt->scores))
        return lorac_fail(err, LORAC_EINVAL, "%s: a backward needs %s", m->path, lm ? "targets" : "labels");
    if (!lm && (c->num_labels == 1 ? bt->labels != NULL : bt->scores != NULL))
        return lorac_fail(err, LORAC_EINVAL, "%s: a %s needs %s", m->path, c->num_labels == 1 ? "regression model" : "classifier",
                          c->num_labels == 1 ? "float scores" : "integer labels");
    size_t N = (size_t)bt->B * bt->T;
    for (size_t n = 0; n < N; n++) {
        if (bt->ids[n] < 0 || bt->ids[n] >= V)
            return lorac_fail(err, LORAC_EINVAL, "%s: token id %d at position %zu is outside the vocabulary (%d)", m->path,
                              bt->ids[n], n, V);
        if (lm && bt->targets && (bt->targets[n] >= V || (bt->targets[n] < 0 && bt->targets[n] != OP_IGNORE_INDEX)))
            return lorac_fail(err, LORAC_EINVAL, "%s: target %d at position %zu is outside the vocabulary (%d)", m->path,
                              bt->targets[n], n, V);
        if (bt->type_ids && (bt->type_ids[n] < 0 || bt->type_ids[n] >= (c->type_vocab ? c->type_vocab : 1)))
            return lorac_fail(err, LORAC_EINVAL, "%s: token type %d is outside the model's %d", m->path, bt->type_ids[n],
                              c->type_vocab);
    }
    for (int b = 0; !lm && bt->labels && b < bt->B; b++)
        if (bt->labels[b] < 0 || bt->labels[b] >= c->num_labels)
            return lorac_fail(err, LORAC_EINVAL, "%s: label %d is outside [0, %d)", m->path, bt->labels[b], c->num_labels);
    return LORAC_OK;
}

/* Copies the batch and derives the positions: t, or RoBERTa's count from padding_idx + 1 over real
 * tokens (create_position_ids_from_input_ids). */
static void take_batch(const model *m, model_acts *a, const model_batch *bt) {
    int B = bt->B, T = bt->T, pad = m->cfg.pos_padding_idx;
    size_t N = (size_t)B * T;
    a->B = B, a->T = T;
    memcpy(a->ids, bt->ids, N * sizeof(int32_t));
    if (bt->type_ids) memcpy(a->type_ids, bt->type_ids, N * sizeof(int32_t));
    else memset(a->type_ids, 0, N * sizeof(int32_t));
    a->has_mask = bt->mask != NULL;
    if (bt->mask) memcpy(a->mask, bt->mask, N);
    for (int b = 0; b < B; b++)
        for (int t = 0, run = 0; t < T; t++) {
            size_t i = (size_t)b * T + t;
            a->pos[i] = pad < 0 ? t : a->ids[i] != m->cfg.pad_token_id ? pad + (++run) : pad;
        }
    if (m->cfg.head == MODEL_HEAD_LM && bt->targets) memcpy(a->targets, bt->targets, N * sizeof(int32_t));
    for (int b = 0; m->cfg.head != MODEL_HEAD_LM && b < B; b++) {
        if (bt->labels) a->targets[b] = bt->labels[b];
        if (bt->scores) a->scores[b] = bt->scores[b];
    }
}

/* ---------------------------------------------------------------- embeddings */

/* x (N,C) += table rows idx (N) */
static void add_rows(float *x, const float *table, const int32_t *idx, int N, int C) {
#pragma omp parallel for schedule(static) if ((size_t)N * C > 65536)
    for (int n = 0; n < N; n++) op_add(x + (size_t)n * C, x + (size_t)n * C, table + (size_t)idx[n] * C, (size_t)C);
}

static int embed_forward(model *m, model_acts *a, lorac_rng *rng, lorac_err *err) {
    const model_config *c = &m->cfg;
    int N = a->B * a->T, C = c->n_embd, T = a->T, rc;
    float *x = c->emb_norm ? a->emb : a->in[0];
    if (m->embed_lora) {
        if (!a->embed_act.cap_N && (rc = lora_embedding_act_init(&a->embed_act, m->embed_lora, a->capB * a->capT, err)))
            return rc;
        if ((rc = lora_embedding_forward(m->embed_lora, &a->embed_act, x, a->ids, N, err))) return rc;
    } else if (m->embed.type == QUANT_F32) {
        op_embedding_forward(x, a->ids, m->embed.data, N, C, c->vocab_size);
    } else {
#pragma omp parallel for schedule(static) if (N > 64)
        for (int n = 0; n < N; n++) qmat_row_f32(&m->embed, a->ids[n], x + (size_t)n * C);
    }
    if (m->pos_embed && c->pos_padding_idx < 0) /* rows 0..T-1: one contiguous block per sequence */
        for (int b = 0; b < a->B; b++) op_add(x + (size_t)b * T * C, x + (size_t)b * T * C, m->pos_embed, (size_t)T * C);
    else if (m->pos_embed)
        add_rows(x, m->pos_embed, a->pos, N, C);
    if (m->type_embed) add_rows(x, m->type_embed, a->type_ids, N, C);
    if (c->emb_norm) norm_forward(m, m->emb_norm_w, m->emb_norm_b, a->in[0], a->emb_mean, a->emb_rstd, a->emb, N);
    if (a->drop > 0.0f) op_dropout_forward(a->in[0], a->drop_masks, a->in[0], a->drop, (size_t)N * C, rng);
    return LORAC_OK;
}

static int embed_backward(model *m, model_acts *a, lorac_err *err) {
    const model_config *c = &m->cfg;
    int N = a->B * a->T, C = c->n_embd;
    size_t NC = (size_t)N * C;
    float *d = a->dres; /* the gradient at the first block's input */
    if (a->drop > 0.0f) {
        op_zero(a->ddrop, NC);
        op_dropout_backward(a->ddrop, d, a->drop_masks, a->drop, NC);
        d = a->ddrop;
    }
    if (c->emb_norm) {
        op_zero(a->o, NC);
        norm_backward(m, m->emb_norm_w, m->demb_norm_w, m->demb_norm_b, a->o, d, a->emb, a->emb_mean, a->emb_rstd, N);
        d = a->o;
    }
    int rc = m->embed_lora ? lora_embedding_backward(m->embed_lora, &a->embed_act, d, a->ids, err) : LORAC_OK;
    /* nn.Embedding(padding_idx) never updates that row (RoBERTa's positions have one too) */
    if (m->dembed) {
        op_embedding_backward(m->dembed, d, a->ids, N, C);
        if (c->pad_token_id >= 0 && c->pad_token_id < c->vocab_size) memset(m->dembed + (size_t)c->pad_token_id * C, 0, (size_t)C * sizeof(float));
    }
    if (m->dpos_embed) {
        op_embedding_backward(m->dpos_embed, d, a->pos, N, C);
        if (c->pos_padding_idx >= 0) memset(m->dpos_embed + (size_t)c->pos_padding_idx * C, 0, (size_t)C * sizeof(float));
    }
    if (m->dtype_embed) op_embedding_backward(m->dtype_embed, d, a->type_ids, N, C);
    return rc;
}

/* ---------------------------------------------------------------- LM head */

/* bf16 training packs an f32 head once per step in each orientation, not once per slice (converting
 * a 50k x 768 head is memory-bound, as costly as a slice's multiply); a stored type (a GGUF's Q8_0
 * head) is never trained: packed on the first step for good. 1 when both packed copies are ready. */
static int head_pack(model_acts *a, const qmat *hd, int N) {
    int C = hd->cols, V = hd->rows;
    if (!op_matmul_bf16_applies(N, V, C)) return 0;
    if (a->head_frozen_packed) return 1;
    size_t wb = op_bf16_pack_words(V, C), wf = op_bf16_pack_words(C, V);
    if (!a->head_bwd) a->head_bwd = aligned_alloc(64, (wb * sizeof(uint32_t) + 63) / 64 * 64);
    if (!a->head_fwd) a->head_fwd = aligned_alloc(64, (wf * sizeof(uint32_t) + 63) / 64 * 64);
    if (!a->head_bwd || !a->head_fwd) return 0; /* no memory for them: pack per slice */
    int ok = qmat_bf16_pack(hd, a->head_fwd, a->head_bwd) == 0;
    a->head_frozen_packed = ok && hd->type != QUANT_F32;
    return ok;
}

/* out (R,V) = x (R,C) · headᵀ */
static int head_logits(const qmat *hd, float *out, const float *x, int R, lorac_err *err) {
    if (hd->type != QUANT_F32) return qmat_matmul_forward(out, x, hd, NULL, R, err);
    op_matmul_forward(out, x, hd->data, NULL, R, hd->cols, hd->rows, OP_W_OUT_IN);
    return LORAC_OK;
}

/* The head in slices of lm_rows rows: logits = x·headᵀ, the fused cross-entropy turns them into
 * dlogits in place, and (backward) dfinal = dlogits·head; *mean is the mean loss over scored rows.
 * No (N,V) buffer: training and loss-only evaluation hold one slice of logits. */
static int head_slices(const model *m, model_acts *a, const float *x, int N, float ls, int backward, float *mean,
                       lorac_err *err) {
    const qmat *hd = &m->lm_head;
    int C = hd->cols, V = hd->rows, packed = backward && head_pack(a, hd, N), rc = LORAC_OK;
    for (int n0 = 0; n0 < N && !rc; n0 += a->lm_rows) {
        int R = N - n0 < a->lm_rows ? N - n0 : a->lm_rows;
        const float *xs = x + (size_t)n0 * C;
        float *dx = a->dfinal + (size_t)n0 * C;
        if (!packed || op_gemm_bf16_packed(R, V, C, 1.0f, xs, C, a->head_fwd, 0.0f, NULL, a->lm_chunk, V))
            if ((rc = head_logits(hd, a->lm_chunk, xs, R, err))) break;
        op_crossentropy_fused(a->lm_chunk, a->losses + n0, a->targets + n0, R, V, ls, a->dloss);
        if (!backward) continue;
        if (packed && !op_gemm_bf16_packed(R, C, V, 1.0f, a->lm_chunk, V, a->head_bwd, 0.0f, NULL, dx, C)) continue;
        memset(dx, 0, (size_t)R * C * sizeof(float));
        if (hd->type != QUANT_F32) rc = qmat_matmul_backward_input(dx, a->lm_chunk, hd, R, err);
        else op_matmul_backward(dx, NULL, NULL, a->lm_chunk, NULL, hd->data, 1.0f, R, C, V, OP_W_OUT_IN);
    }
    double sum = 0.0; /* the mean over scored rows, summed in row order as op_crossentropy_forward does */
    int cnt = 0;
    for (int n = 0; n < N; n++)
        if (a->targets[n] >= 0) sum += a->losses[n], cnt++;
    *mean = cnt ? (float)(sum / cnt) : 0.0f;
    return rc;
}

static int lm_forward(model *m, model_acts *a, const model_batch *bt, float ls, model_fwd mode, float *loss,
                      int *count, lorac_err *err) {
    const model_config *c = &m->cfg;
    int N = a->B * a->T, L = c->n_layer, rc;
    const float *x = a->in[L];
    if (c->final_norm) norm_forward(m, m->final_norm_w, m->final_norm_b, a->h, a->fmean, a->frstd, a->in[L], N), x = a->h;
    int cnt = bt->targets ? op_crossentropy_count(a->targets, N) : 0;
    float mean = 0.0f;
    if (mode != MODEL_FWD_LOGITS) {
        a->dloss = cnt ? 1.0f / (float)cnt : 0.0f;
        if (bt->targets && (rc = head_slices(m, a, x, N, ls, mode == MODEL_FWD_TRAIN, &mean, err))) return rc;
        a->have_grad = mode == MODEL_FWD_TRAIN;
    } else {
        /* the caller wants the logits: the full (N,V) buffer, made once */
        size_t n = (size_t)a->capB * a->capT * c->vocab_size;
        if (!a->logits && !(a->logits = malloc(n * sizeof(float))))
            return lorac_fail(err, LORAC_ENOMEM, "%s: out of memory for the logits of a %d x %d batch", m->path, a->capB,
                              a->capT);
        if ((rc = head_logits(&m->lm_head, a->logits, x, N, err))) return rc;
        if (bt->targets) mean = op_crossentropy_forward(a->losses, a->dres, a->logits, a->targets, N, c->vocab_size, ls);
    }
    if (loss) *loss = mean;
    if (count) *count = cnt;
    return LORAC_OK;
}

/* ---------------------------------------------------------------- classification head */

static int cls_forward(model *m, model_acts *a, lorac_rng *rng, lorac_err *err) {
    const model_config *c = &m->cfg;
    int B = a->B, C = c->n_embd, rc;
    size_t BC = (size_t)B * C;
    for (int b = 0; b < B; b++) /* the first token: [CLS] / <s> */
        memcpy(a->cls_in + (size_t)b * C, a->in[c->n_layer] + (size_t)b * a->T * C, (size_t)C * sizeof(float));
    const float *din = a->cls_in;
    if (c->head == MODEL_HEAD_CLS_DENSE) { /* RoBERTa: dropout before the dense map too */
        op_dropout_forward(a->cls_d, a->mask_cls, a->cls_in, a->cls_drop, BC, rng);
        din = a->cls_d;
    }
    if ((rc = linear_forward(&m->cls_dense, NULL, NULL, 0, a->dense, din, B, 0, rng, err))) return rc;
    for (size_t i = 0; i < BC; i++) a->tanh_out[i] = tanhf(a->dense[i]);
    op_dropout_forward(a->tanh_d, a->mask_tanh, a->tanh_out, a->cls_drop, BC, rng);
    return linear_forward(&m->cls_out, NULL, NULL, 0, a->cls_logits, a->tanh_d, B, 0, rng, err);
}

/* Mean loss over the rows: MSE for one label, else cross-entropy (the LM's op on (B, NL) logits);
 * dlogits (zeroed) receives its gradient when given. */
static float cls_loss(const model *m, model_acts *a, float *dlogits) {
    int B = a->B, NL = m->cfg.num_labels;
    if (NL > 1) {
        float *z = dlogits ? dlogits : a->dtanh; /* scratch of B·C >= B·NL floats when no gradient is wanted */
        memcpy(z, a->cls_logits, (size_t)B * NL * sizeof(float));
        return op_crossentropy_fused(z, a->cls_losses, a->targets, B, NL, 0.0f, 1.0f / (float)B);
    }
    double sum = 0;
    for (int b = 0; b < B; b++) {
        double d = (double)a->cls_logits[b] - a->scores[b];
        sum += d * d;
        if (dlogits) dlogits[b] = (float)(2.0 * d / B);
    }
    return (float)(sum / B);
}

static int cls_backward(model *m, model_acts *a, lorac_err *err) {
    int B = a->B, C = m->cfg.n_embd, rc;
    size_t BC = (size_t)B * C;
    cls_loss(m, a, a->dcls_logits);
    /* logits = out(tanh_d) */
    memset(a->dtanh, 0, BC * sizeof(float));
    if ((rc = linear_backward(&m->cls_out, NULL, NULL, a->dtanh, a->dcls_logits, a->tanh_d, B, err))) return rc;
    /* tanh_d = dropout(tanh(dense)) */
    memset(a->ddense, 0, BC * sizeof(float));
    op_dropout_backward(a->ddense, a->dtanh, a->mask_tanh, a->cls_drop, BC);
    for (size_t i = 0; i < BC; i++) a->ddense[i] *= 1.0f - a->tanh_out[i] * a->tanh_out[i];
    /* dense = dense(cls_d or cls_in) */
    memset(a->dcls, 0, BC * sizeof(float));
    if (m->cfg.head != MODEL_HEAD_CLS_DENSE) return linear_backward(&m->cls_dense, NULL, NULL, a->dcls, a->ddense, a->cls_in, B, err);
    memset(a->dtanh, 0, BC * sizeof(float));
    if ((rc = linear_backward(&m->cls_dense, NULL, NULL, a->dtanh, a->ddense, a->cls_d, B, err))) return rc;
    op_dropout_backward(a->dcls, a->dtanh, a->mask_cls, a->cls_drop, BC);
    return LORAC_OK;
}

/* ---------------------------------------------------------------- the model */

/* New LoRA records whenever the model (or its LoRA layout) is not the one they were made for. */
static int lora_records(model *m, model_acts *a, lorac_err *err) {
    if (a->lacts && (a->owner != m || a->lora_gen != m->lora_gen)) model_acts_drop_lora(a);
    a->owner = m;
    a->lora_gen = m->lora_gen;
    if (!a->lacts && !(a->lacts = calloc((size_t)a->n_layer * ARCH_N_SITES, sizeof *a->lacts)))
        return lorac_fail(err, LORAC_ENOMEM, "%s: out of memory", m->path);
    return LORAC_OK;
}

int model_forward(model *m, model_acts *a, const model_batch *bt, float label_smoothing, model_fwd mode, lorac_rng *rng,
                  float *loss, int *count, lorac_err *err) {
    const model_config *c = &m->cfg;
    int for_backward = mode == MODEL_FWD_TRAIN;
    if (mode != MODEL_FWD_LOGITS && mode != MODEL_FWD_TRAIN && mode != MODEL_FWD_LOSS)
        return lorac_fail(err, LORAC_EINVAL, "%s: forward mode %d", m->path, (int)mode);
    if (for_backward && a->infer)
        return lorac_fail(err, LORAC_EINVAL, "%s: activations made for inference keep nothing for a backward", m->path);
    int rc = check_batch(m, a, bt, for_backward, err);
    if (!rc) rc = lora_records(m, a, err);
    if (rc) return rc;
    a->have_grad = 0;
    take_batch(m, a, bt);
    a->drop = m->training ? m->hidden_dropout : 0.0f;
    a->cls_drop = m->training && c->head != MODEL_HEAD_LM ? c->classifier_dropout : 0.0f;
    if (!rng && (a->drop > 0.0f || a->cls_drop > 0.0f))
        return lorac_fail(err, LORAC_EINVAL, "%s: training with dropout needs an rng", m->path);
    if (a->drop > 0.0f && (rc = model_acts_dropout(a, c, err))) return rc;
    if ((rc = embed_forward(m, a, rng, err))) return rc;
    for (int l = 0; l < c->n_layer; l++) {
        block_bufs b;
        model_acts_block(m, a, l, &b);
        b.rng = rng;
        if ((rc = block_forward(m, l, &b, err))) return rc;
    }
    if (c->head == MODEL_HEAD_LM) return lm_forward(m, a, bt, label_smoothing, mode, loss, count, err);
    if ((rc = cls_forward(m, a, rng, err))) return rc;
    if (bt->labels || bt->scores) {
        if (loss) *loss = cls_loss(m, a, NULL);
        if (count) *count = a->B;
        a->have_grad = for_backward;
    }
    return LORAC_OK;
}

int model_backward(model *m, model_acts *a, lorac_err *err) {
    if (!a->have_grad) return lorac_fail(err, LORAC_EINVAL, "%s: backward without a forward for_backward", m->path);
    const model_config *c = &m->cfg;
    int N = a->B * a->T, C = c->n_embd, L = c->n_layer, rc;
    size_t NC = (size_t)N * C;
    a->have_grad = 0;
    op_zero(a->dres, NC);
    if (c->head == MODEL_HEAD_LM) { /* the forward left dfinal (the head's backward ran slice by slice) */
        if (c->final_norm)
            norm_backward(m, m->final_norm_w, m->dfinal_norm_w, m->dfinal_norm_b, a->dres, a->dfinal, a->in[L], a->fmean,
                          a->frstd, N);
        else
            op_add(a->dres, a->dres, a->dfinal, NC);
    } else {
        if ((rc = cls_backward(m, a, err))) return rc;
        for (int b = 0; b < a->B; b++) /* cls_in[b] = in[L][b, 0] */
            memcpy(a->dres + (size_t)b * a->T * C, a->dcls + (size_t)b * C, (size_t)C * sizeof(float));
    }
    int emb_grad = m->embed_lora || m->full_ft;
    if (!m->lora && !emb_grad) return LORAC_OK; /* a frozen encoder under a trained head */
    for (int l = L - 1; l >= 0; l--) {
        block_bufs b;
        model_acts_block(m, a, l, &b);
        if ((rc = block_backward(m, l, &b, l > 0 || emb_grad, err))) return rc;
    }
    return emb_grad ? embed_backward(m, a, err) : LORAC_OK;
}
