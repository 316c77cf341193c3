/* Per-batch activations: one arena carved into what the backward needs per layer, and scratch that
 * is shared between phases whose lives do not overlap (llm.c style).
 * Shapes: N = B·T rows, C hidden, I MLP width, QD = NH·HS, KD = NKV·HS, W = QD + 2·KD, V vocabulary. */
#include <stdlib.h>
#include <string.h>

#include "models/model_acts.h"

/* Rows of the LM head + cross-entropy done at once in training: only a (LM_ROWS, V) slice of the
 * logits and of their gradient ever exists; more rows stream the head's weights fewer times but
 * cost memory. The slice shares memory with the backward's scratch, so when that scratch is larger
 * (long batches) the slice takes all of it. */
#define LM_ROWS 192

const float *model_acts_logits(const model_acts *a) { return a->cls_logits ? a->cls_logits : a->logits; }

void model_acts_free(model_acts *a) {
    if (!a) return;
    free(a->arena), free(a->in), free(a->logits), free(a->head_fwd), free(a->head_bwd);
    free(a->ints), free(a->bytes), free(a->drop_masks), free(a->ddrop);
    model_acts_drop_lora(a);
    free(a);
}

void model_acts_drop_lora(model_acts *a) {
    if (a->lacts)
        for (int i = 0; i < a->n_layer * ARCH_N_SITES; i++) lora_act_free(&a->lacts[i]);
    free(a->lacts);
    a->lacts = NULL;
    lora_act_free(&a->embed_act);
}

/* Carves n floats from the arena (a first pass with base NULL only counts). */
static float *carve(float *base, size_t *off, size_t n) {
    float *p = base ? base + *off : NULL;
    *off += n;
    return p;
}

/* The arena's layout for config c (base NULL: just the size in floats). */
static size_t layout(model_acts *a, const model_config *c, float *base) {
    size_t N = (size_t)a->capB * a->capT, C = c->n_embd, I = c->n_inner, V = c->vocab_size;
    size_t QD = (size_t)c->n_head * c->head_dim, KD = (size_t)c->n_kv_head * c->head_dim, W = QD + 2 * KD;
    size_t NHT = (size_t)a->capB * c->n_head * a->capT, off = 0;
    int L = c->n_layer, ln = c->norm == MODEL_NORM_LAYER, swiglu = c->act == MODEL_ACT_SWIGLU;
    size_t pre = (swiglu ? 2 : 1) * N * I;
    for (int l = 0; l <= L; l++) {
        float *r = a->infer && l >= 2 ? NULL : carve(base, &off, N * C);
        if (base) a->in[l] = a->infer && l >= 2 ? a->in[l & 1] : r; /* block l reads in[l], writes in[l+1] */
        if (l == L) break;
        if (a->infer && l >= 1) continue; /* tables() points them at layer 0's */
#define PART(field, n) do { float *p_ = carve(base, &off, (n)); if (base) a->field[l] = p_; } while (0)
        PART(sum1, N * C);
        if (c->post_norm) PART(sum2, N * C);
        if (ln) {
            PART(mean0, N);
            PART(mean1, N);
        }
        PART(rstd0, N); PART(rstd1, N);
        PART(qkv, N * W); PART(att, N * QD); PART(lse, NHT);
        PART(pre, a->pre_bf16 ? (pre + 1) / 2 : pre);
#undef PART
    }
    float *p;
#define ONE(field, n) do { p = carve(base, &off, (n)); if (base) a->field = p; } while (0)
    if (c->emb_norm) {
        ONE(emb, N * C);
        ONE(emb_mean, N);
        ONE(emb_rstd, N);
    }
    if (c->final_norm) {
        ONE(fmean, N);
        ONE(frstd, N);
    }
    ONE(h, N * C);
    if (c->head == MODEL_HEAD_LM) {
        if (!a->infer) ONE(dfinal, N * C);
        ONE(losses, N);
    } else {
        size_t BC = (size_t)a->capB * C, BL = (size_t)a->capB * c->num_labels;
        ONE(cls_in, BC); ONE(cls_d, BC); ONE(dense, BC); ONE(tanh_out, BC); ONE(tanh_d, BC);
        ONE(cls_logits, BL); ONE(dcls_logits, BL); ONE(dtanh, BC); ONE(ddense, BC); ONE(dcls, BC); ONE(scores, a->capB); ONE(cls_losses, a->capB);
    }
    /* scratch of the layers' forward (o, mlp) and backward (the rest), which the training head's
     * logits slice reuses: it lives only between the last layer's forward and the first backward */
    size_t shared = off, mlp = (swiglu && a->pre_bf16 ? 2 : 1) * N * I;
    ONE(o, N * C); ONE(mlp, mlp);
    if (swiglu && a->pre_bf16) ONE(g, N * I); /* mlp holds the widened gate and up */
    else if (base) a->g = a->mlp;
    size_t dup = swiglu ? N * I : 0, dkr = !c->fused_qkv && c->pos == MODEL_POS_ROPE ? N * KD : 0;
    if (!a->infer) { /* the backward's */
        ONE(dres, N * C); ONE(datt, N * QD); ONE(dg, N * (I > W ? I : W));
        if (dup || dkr) ONE(dup, dup > dkr ? dup : dkr);
    }
    size_t end = off;
    if (c->head == MODEL_HEAD_LM) {
        size_t R = N < LM_ROWS ? N : LM_ROWS, fit = (end - shared) / V; /* rows the scratch has room for */
        if (fit > R) R = fit < N ? fit : N;
        a->lm_rows = (int)R;
        off = shared;
        ONE(lm_chunk, R * V);
    }
#undef ONE
    return off > end ? off : end;
}

/* The per-layer pointer tables in one allocation: in (L+1) and 10 of L; with layout done, an
 * inference arena points every layer at layer 0's buffers. */
static int tables(model_acts *a, int L, int share) {
    float ***tabs[] = {&a->sum1, &a->sum2, &a->mean0, &a->rstd0, &a->mean1, &a->rstd1, &a->qkv, &a->att, &a->lse, &a->pre};
    size_t nt = sizeof tabs / sizeof tabs[0];
    for (size_t i = 0; share && i < nt; i++)
        for (int l = 1; l < L; l++) (*tabs[i])[l] = (*tabs[i])[0];
    if (share) return 0;
    a->in = calloc((size_t)(L + 1) + nt * (size_t)L, sizeof(float *));
    if (!a->in) return -1;
    for (size_t i = 0; i < nt; i++) *tabs[i] = a->in + (L + 1) + i * (size_t)L;
    return 0;
}

static int acts_alloc(const model *m, int B, int T, int infer, model_acts **out, lorac_err *err) {
    const model_config *c = &m->cfg;
    *out = NULL;
    if (B < 1 || T < 1) return lorac_fail(err, LORAC_EINVAL, "%s: batch %d x %d is empty", m->path, B, T);
    if (T > model_max_len(m))
        return lorac_fail(err, LORAC_EINVAL, "%s: sequence length %d exceeds the model's %d positions%s", m->path, T,
                          model_max_len(m), c->sliding_window > 0 ? " (or its sliding window)" : "");
    model_acts *a = calloc(1, sizeof *a);
    if (!a) return lorac_fail(err, LORAC_ENOMEM, "%s: out of memory for activations", m->path);
    a->capB = B;
    a->capT = T;
    a->n_layer = c->n_layer;
    a->infer = infer;
    /* bf16 matmuls round the MLP's next input to bf16 anyway: keeping its pre-activations as bf16
     * halves the largest activations */
    a->pre_bf16 = op_matmul_precision() == OP_PREC_BF16;
    size_t N = (size_t)B * T, n = layout(a, c, NULL), bytes;
    if (tables(a, c->n_layer, 0) || lorac_size_mul(n, sizeof(float), &bytes) || !(a->arena = malloc(bytes)) ||
        !(a->ints = malloc(4 * N * sizeof(int32_t))) || !(a->bytes = malloc(N + 2 * (size_t)B * c->n_embd))) {
        model_acts_free(a);
        return lorac_fail(err, LORAC_ENOMEM, "%s: out of memory for activations of a %d x %d batch", m->path, B, T);
    }
    layout(a, c, a->arena);
    if (infer) tables(a, c->n_layer, 1);
    a->ids = a->ints, a->type_ids = a->ids + N, a->pos = a->type_ids + N, a->targets = a->pos + N;
    a->mask = a->bytes, a->mask_cls = a->mask + N, a->mask_tanh = a->mask_cls + (size_t)B * c->n_embd;
    *out = a;
    return LORAC_OK;
}

int model_acts_alloc(const model *m, int B, int T, model_acts **out, lorac_err *err) {
    return acts_alloc(m, B, T, 0, out, err);
}

int model_acts_alloc_inference(const model *m, int B, int T, model_acts **out, lorac_err *err) {
    return acts_alloc(m, B, T, 1, out, err);
}

/* Hidden dropout needs a mask per sublayer output and one after the embeddings, made on first use. */
int model_acts_dropout(model_acts *a, const model_config *c, lorac_err *err) {
    if (a->drop_masks) return LORAC_OK;
    size_t NC = (size_t)a->capB * a->capT * c->n_embd;
    a->drop_masks = malloc((2 * (size_t)c->n_layer + 1) * NC);
    a->ddrop = malloc(NC * sizeof(float));
    if (!a->drop_masks || !a->ddrop) {
        free(a->drop_masks);
        a->drop_masks = NULL;
        return lorac_fail(err, LORAC_ENOMEM, "out of memory for dropout masks");
    }
    return LORAC_OK;
}

void model_acts_block(const model *m, model_acts *a, int l, block_bufs *b) {
    const model_config *c = &m->cfg;
    size_t NC = (size_t)a->capB * a->capT * c->n_embd;
    memset(b, 0, sizeof *b);
    b->B = a->B, b->T = a->T, b->N = a->B * a->T;
    b->mask = a->has_mask ? a->mask : NULL;
    b->x = a->in[l], b->out = a->in[l + 1], b->sum1 = a->sum1[l], b->sum2 = a->sum2[l];
    b->mean[0] = a->mean0[l], b->rstd[0] = a->rstd0[l], b->mean[1] = a->mean1[l], b->rstd[1] = a->rstd1[l];
    b->h = a->h, b->qkv = a->qkv[l], b->att = a->att[l], b->lse = a->lse[l], b->o = a->o, b->mlp = a->mlp;
    if (a->pre_bf16) b->pre16 = (uint16_t *)(void *)a->pre[l];
    else b->pre = a->pre[l];
    b->drop = a->drop;
    if (a->drop > 0.0f) b->drop_mask[0] = a->drop_masks + (1 + 2 * (size_t)l) * NC, b->drop_mask[1] = b->drop_mask[0] + NC;
    b->lacts = a->lacts + (size_t)l * ARCH_N_SITES;
    b->cap_N = a->capB * a->capT;
    b->dres = a->dres, b->datt = a->datt, b->g = a->g, b->dg = a->dg, b->dup = a->dup, b->ddrop = a->ddrop;
}
