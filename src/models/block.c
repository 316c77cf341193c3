/* One transformer block, for every family (llm.c style: the backward quotes the forward it
 * differentiates and accumulates). With x the block's input, drop the hidden dropout:
 *   pre-norm (GPT-2, Llama):  sum1 = x + drop(O(attn(norm0(x))));  out = sum1 + drop(mlp(norm1(sum1)))
 *   post-norm (BERT):         sum1 = x + drop(O(attn(x)));  x1 = norm0(sum1);
 *                             sum2 = x1 + drop(mlp(x1));  out = norm1(sum2)
 * attn is causal or bidirectional (padding mask), over q/k/v from one fused map or three (grouped kv
 * heads), rotary or not, against the batch itself or a session's KV cache; mlp is
 * DOWN(gelu(UP(·))) or DOWN(silu(GATE(·))·UP(·)). Norm k's statistics go to mean[k], rstd[k]. The
 * norm outputs are recomputed in the backward from their inputs and statistics (the forward's own
 * arithmetic, so the same bits) instead of being kept. */
#include <string.h>

#include "lorac/ops_rope.h"
#include "models/model_internal.h"

/* ---------------------------------------------------------------- norms */

void norm_forward(const model *m, const float *w, const float *bias, float *out, float *mean, float *rstd,
                  const float *x, int N) {
    const model_config *c = &m->cfg;
    if (c->norm == MODEL_NORM_LAYER) op_layernorm_forward(out, mean, rstd, x, w, bias, N, c->n_embd, (float)c->norm_eps);
    else op_rmsnorm_forward(out, rstd, x, w, N, c->n_embd, (float)c->norm_eps);
}

void norm_backward(const model *m, const float *w, float *dw, float *db, float *dinp, const float *dout,
                   const float *x, const float *mean, const float *rstd, int N) {
    int C = m->cfg.n_embd;
    if (m->cfg.norm == MODEL_NORM_LAYER) op_layernorm_backward(dinp, dw, db, dout, x, w, mean, rstd, N, C);
    else op_rmsnorm_backward(dinp, dw, dout, x, w, rstd, N, C);
}

static void norm_k(const model *m, int l, int k, block_bufs *b, float *out, const float *x) {
    norm_forward(m, m->layers[l].norm_w[k], m->layers[l].norm_b[k], out, b->mean[k], b->rstd[k], x, b->N);
}

static void renorm_k(const model *m, int l, int k, block_bufs *b, float *out, const float *x) {
    op_norm_apply(out, x, m->cfg.norm == MODEL_NORM_LAYER ? b->mean[k] : NULL, b->rstd[k], m->layers[l].norm_w[k], m->layers[l].norm_b[k], b->N, m->cfg.n_embd);
}

static void renorm_back_k(model *m, int l, int k, block_bufs *b, float *dinp, const float *dout, const float *x) {
    model_layer *L = &m->layers[l];
    norm_backward(m, L->norm_w[k], L->dnorm_w[k], L->dnorm_b[k], dinp, dout, x, b->mean[k], b->rstd[k], b->N);
}

/* ---------------------------------------------------------------- forward */

static int site(model *m, int l, int s, block_bufs *b, float *out, const float *inp, lorac_err *err) {
    int rc = linear_forward(&m->layers[l].site[s], model_site_lora(m, l, s), &b->lacts[s], b->cap_N, out, inp, b->N,
                            b->decode, b->rng, err);
    if (!rc && b->mixed) rc = b->mixed(b->mixed_ctx, l, s, out, inp, err);
    return rc;
}

static void act_gelu(const model *m, float *out, const float *pre, const uint16_t *pre16, size_t n) {
    int erf = m->cfg.act == MODEL_ACT_GELU_ERF;
    if (pre16) (erf ? op_gelu_erf_forward_bf16 : op_gelu_tanh_forward_bf16)(out, pre16, n);
    else (erf ? op_gelu_erf_forward : op_gelu_tanh_forward)(out, pre, n);
}

static void dropout(block_bufs *b, int k, float *x, int C) {
    if (b->drop > 0.0f) op_dropout_forward(x, b->drop_mask[k], x, b->drop, (size_t)b->N * C, b->rng);
}

/* A session step's keys and values go to the cache at each row's position (pos) in its sequence's
 * slot (slots); a fused map's q rows are gathered for the cached attention. */
static const float *cache_append(const model_config *c, block_bufs *b, const float *q, const float *k, const float *v) {
    int QD = c->n_head * c->head_dim, KD = c->n_kv_head * c->head_dim, W = c->fused_qkv ? QD + 2 * KD : 0;
    for (int sl = 0; sl < b->B; sl++)
        for (int i = 0; i < b->T; i++) {
            size_t r = (size_t)sl * b->T + i, dst = ((size_t)b->slots[sl] * b->cap + b->pos[r]) * KD;
            const float *ks = W ? q + r * W + QD : k + r * KD, *vs = W ? q + r * W + QD + KD : v + r * KD;
            if (W) memcpy(b->qg + r * QD, q + r * W, QD * sizeof(float));
            memcpy(b->kc + dst, ks, KD * sizeof(float));
            memcpy(b->vc + dst, vs, KD * sizeof(float));
        }
    return W ? b->qg : q;
}

static int attention_forward(model *m, int l, block_bufs *b, const float *in, lorac_err *err) {
    const model_config *c = &m->cfg;
    int N = b->N, NH = c->n_head, NKV = c->n_kv_head, HS = c->head_dim, rc;
    float *q = b->qkv, *k = q + (size_t)N * NH * HS, *v = k + (size_t)N * NKV * HS;
    if (c->fused_qkv) rc = site(m, l, ARCH_QKV, b, b->qkv, in, err);
    else if (!(rc = site(m, l, ARCH_Q, b, q, in, err)) && !(rc = site(m, l, ARCH_K, b, k, in, err)))
        rc = site(m, l, ARCH_V, b, v, in, err);
    if (rc) return rc;
    if (c->pos == MODEL_POS_ROPE) {
        op_rope_freqs_forward(q, q, b->pos, b->pos0, b->B, b->T, NH, HS, m->inv_freq);
        op_rope_freqs_forward(k, k, b->pos, b->pos0, b->B, b->T, NKV, HS, m->inv_freq);
    }
    if (b->kc) {
        const float *qq = cache_append(c, b, q, k, v);
        op_attention_cached_forward(b->att, qq, b->kc, b->vc, b->B, b->T, b->slots, b->seq_pos, b->cap, NH, NKV, HS,
                                    b->scores);
    } else if (c->fused_qkv) {
        op_attention_qkv_forward(b->att, b->lse, b->qkv, b->mask, b->B, b->T, NH, NKV, HS, c->causal);
    } else {
        op_attention_forward(b->att, b->lse, q, k, v, b->mask, b->B, b->T, NH, NKV, HS, c->causal);
    }
    return LORAC_OK;
}

/* o = DOWN(act(pre)), pre = UP(in) (and GATE(in)), kept in f32 or bf16 for the backward. */
static int mlp_forward(model *m, int l, block_bufs *b, const float *in, lorac_err *err) {
    size_t NI = (size_t)b->N * m->cfg.n_inner;
    float *pre = b->pre16 ? b->mlp : b->pre;
    int rc, swiglu = m->cfg.act == MODEL_ACT_SWIGLU;
    if (swiglu) {
        if ((rc = site(m, l, ARCH_GATE, b, pre, in, err)) || (rc = site(m, l, ARCH_UP, b, pre + NI, in, err))) return rc;
        if (b->pre16) { /* kept rounded; the activation sees what the backward will */
            op_f32_to_bf16(b->pre16, pre, 2 * NI);
            op_bf16_to_f32(pre, b->pre16, 2 * NI);
        }
        op_swiglu_forward(b->mlp, pre, pre + NI, b->N, m->cfg.n_inner);
    } else {
        if ((rc = site(m, l, ARCH_UP, b, pre, in, err))) return rc;
        if (b->pre16) op_f32_to_bf16(b->pre16, pre, NI);
        act_gelu(m, b->mlp, b->pre, b->pre16, NI);
    }
    return site(m, l, ARCH_DOWN, b, b->o, b->mlp, err);
}

int block_forward(model *m, int l, block_bufs *b, lorac_err *err) {
    int post = m->cfg.post_norm, C = m->cfg.n_embd, rc;
    size_t NC = (size_t)b->N * C;
    const float *ain = b->x;
    if (!post) {
        norm_k(m, l, 0, b, b->h, b->x);
        ain = b->h;
    }
    if ((rc = attention_forward(m, l, b, ain, err)) || (rc = site(m, l, ARCH_O, b, b->o, b->att, err))) return rc;
    dropout(b, 0, b->o, C);
    op_add(b->sum1, b->x, b->o, NC);
    norm_k(m, l, post ? 0 : 1, b, b->h, b->sum1);
    if ((rc = mlp_forward(m, l, b, b->h, err))) return rc;
    dropout(b, 1, b->o, C);
    if (!post) {
        op_add(b->out, b->sum1, b->o, NC);
        return LORAC_OK;
    }
    op_add(b->sum2, b->h, b->o, NC); /* h is x1 */
    norm_k(m, l, 1, b, b->out, b->sum2);
    return LORAC_OK;
}

/* ---------------------------------------------------------------- backward */

static int site_back(model *m, int l, int s, block_bufs *b, float *dinp, const float *dout, const float *inp,
                     lorac_err *err) {
    return linear_backward(&m->layers[l].site[s], model_site_lora(m, l, s), &b->lacts[s], dinp, dout, inp, b->N, err);
}

static int site_reads(const model *m, int l, int s) {
    return linear_reads_input(&m->layers[l].site[s], model_site_lora(m, l, s));
}

/* The gradient through dropout k (dout itself when there is none). */
static const float *undrop(block_bufs *b, int k, const float *dout, int C) {
    if (!(b->drop > 0.0f)) return dout;
    size_t n = (size_t)b->N * C;
    op_zero(b->ddrop, n);
    op_dropout_backward(b->ddrop, dout, b->drop_mask[k], b->drop, n);
    return b->ddrop;
}

/* SwiGLU's gate and up in f32: kept so, or widened from bf16 into mlp. */
static const float *swiglu_inputs(const model *m, block_bufs *b) {
    if (!b->pre16) return b->pre;
    op_bf16_to_f32(b->mlp, b->pre16, 2 * (size_t)b->N * m->cfg.n_inner);
    return b->mlp;
}

/* dh += ∂/∂in of mlp(in), from dO at its output; in is recomputed into h by the caller when read. */
static int mlp_backward(model *m, int l, block_bufs *b, const float *dO, float *dh, lorac_err *err) {
    int N = b->N, I = m->cfg.n_inner, swiglu = m->cfg.act == MODEL_ACT_SWIGLU, erf = m->cfg.act == MODEL_ACT_GELU_ERF;
    size_t NI = (size_t)N * I;
    const float *gu = NULL;
    int rc;
    if (site_reads(m, l, ARCH_DOWN)) { /* o = DOWN(g): its LoRA reads g, recomputed */
        if (swiglu) {
            gu = swiglu_inputs(m, b);
            op_swiglu_forward(b->g, gu, gu + NI, N, I);
        } else {
            act_gelu(m, b->g, b->pre, b->pre16, NI);
        }
    }
    op_zero(b->dg, NI);
    if ((rc = site_back(m, l, ARCH_DOWN, b, b->dg, dO, b->g, err))) return rc;
    op_zero(b->g, NI); /* g is dead: it takes the gradient at the pre-activation (gate) */
    if (swiglu) { /* g = silu(gate)·up */
        if (!gu) gu = swiglu_inputs(m, b);
        op_zero(b->dup, NI);
        op_swiglu_backward(b->g, b->dup, b->dg, gu, gu + NI, N, I);
        if ((rc = site_back(m, l, ARCH_GATE, b, dh, b->g, b->h, err))) return rc;
        return site_back(m, l, ARCH_UP, b, dh, b->dup, b->h, err);
    }
    if (b->pre16) (erf ? op_gelu_erf_backward_bf16 : op_gelu_tanh_backward_bf16)(b->g, b->dg, b->pre16, NI);
    else (erf ? op_gelu_erf_backward : op_gelu_tanh_backward)(b->g, b->dg, b->pre, NI);
    return site_back(m, l, ARCH_UP, b, dh, b->g, b->h, err);
}

/* dx += ∂/∂x of attention(q, k, v of x) from datt (dx NULL: LoRA gradients only). */
static int attention_backward(model *m, int l, block_bufs *b, const float *x, float *dx, lorac_err *err) {
    const model_config *c = &m->cfg;
    int N = b->N, NH = c->n_head, NKV = c->n_kv_head, HS = c->head_dim, rc;
    size_t NQ = (size_t)N * NH * HS, NK = (size_t)N * NKV * HS;
    float *dq = b->dg, *dk = dq + NQ, *dv = dk + NK;
    const float *q = b->qkv, *k = q + NQ, *v = k + NK;
    op_zero(b->dg, NQ + 2 * NK);
    if (c->fused_qkv) {
        op_attention_qkv_backward(b->dg, b->datt, b->att, b->lse, b->qkv, b->mask, b->B, b->T, NH, NKV, HS, c->causal);
        return site_back(m, l, ARCH_QKV, b, dx, b->dg, x, err);
    }
    op_attention_backward(dq, dk, dv, b->datt, b->att, b->lse, q, k, v, b->mask, b->B, b->T, NH, NKV, HS, c->causal);
    if (c->pos == MODEL_POS_ROPE) { /* the rotation's inverse: into datt (dead) and dup */
        op_zero(b->datt, NQ);
        op_zero(b->dup, NK);
        op_rope_freqs_backward(b->datt, dq, NULL, 0, b->B, b->T, NH, HS, m->inv_freq);
        op_rope_freqs_backward(b->dup, dk, NULL, 0, b->B, b->T, NKV, HS, m->inv_freq);
        dq = b->datt;
        dk = b->dup;
    }
    if ((rc = site_back(m, l, ARCH_Q, b, dx, dq, x, err)) || (rc = site_back(m, l, ARCH_K, b, dx, dk, x, err)))
        return rc;
    return site_back(m, l, ARCH_V, b, dx, dv, x, err);
}

int block_backward(model *m, int l, block_bufs *b, int need_dx, lorac_err *err) {
    int post = m->cfg.post_norm, C = m->cfg.n_embd, QD = m->cfg.n_head * m->cfg.head_dim, rc;
    size_t NC = (size_t)b->N * C;
    const float *dO;
    float *dh = b->o; /* the gradient at a norm's output */
    /* MLP. pre: out = sum1 + drop(mlp(h = norm1(sum1))). post: out = norm1(sum2), sum2 = x1 + drop(mlp(x1)) */
    if (post) {
        op_zero(dh, NC);
        renorm_back_k(m, l, 1, b, dh, b->dres, b->sum2); /* dh: at sum2, then at x1 */
        dO = undrop(b, 1, dh, C);
    } else {
        dO = undrop(b, 1, b->dres, C);
    }
    if (site_reads(m, l, ARCH_UP) || site_reads(m, l, ARCH_GATE)) renorm_k(m, l, post ? 0 : 1, b, b->h, b->sum1);
    if (!post) op_zero(dh, NC);
    if ((rc = mlp_backward(m, l, b, dO, dh, err))) return rc;
    /* pre: dres becomes the gradient at sum1 (the residual carries it; norm1 adds its part).
     * post: x1 = norm0(sum1), so the gradient at sum1 goes to dres. */
    if (post) op_zero(b->dres, NC);
    renorm_back_k(m, l, post ? 0 : 1, b, b->dres, dh, b->sum1);
    /* attention: sum1 = x + drop(O(att)) */
    dO = undrop(b, 0, b->dres, C);
    op_zero(b->datt, (size_t)b->N * QD);
    if ((rc = site_back(m, l, ARCH_O, b, b->datt, dO, b->att, err))) return rc;
    if (post) return attention_backward(m, l, b, b->x, need_dx ? b->dres : NULL, err);
    int reads = m->cfg.fused_qkv ? site_reads(m, l, ARCH_QKV)
                                 : site_reads(m, l, ARCH_Q) || site_reads(m, l, ARCH_K) || site_reads(m, l, ARCH_V);
    if (reads) renorm_k(m, l, 0, b, b->h, b->x);
    if (need_dx) op_zero(dh, NC);
    if ((rc = attention_backward(m, l, b, b->h, need_dx ? dh : NULL, err))) return rc;
    if (need_dx) renorm_back_k(m, l, 0, b, b->dres, dh, b->x);
    return LORAC_OK;
}
