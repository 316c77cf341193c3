/* BERT / RoBERTa forward and backward: embeddings, post-LN blocks, the classification head and
 * its loss. The backward quotes the forward line it differentiates and accumulates (+=). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bert_internal.h"
#include "lorac/ops.h"

/* Per-layer slices of the activation block, for the current batch of N tokens. */
#define LAY(base, l, width) ((base) + (size_t)(l) * (size_t)N * (size_t)(width))

static void gelu_fwd(const bert_model *m, float *out, const float *inp, size_t n) {
    if (m->cfg.gelu_tanh) op_gelu_tanh_forward(out, inp, n);
    else op_gelu_erf_forward(out, inp, n);
}
static void gelu_bwd(const bert_model *m, float *dinp, const float *dout, const float *inp, size_t n) {
    if (m->cfg.gelu_tanh) op_gelu_tanh_backward(dinp, dout, inp, n);
    else op_gelu_erf_backward(dinp, dout, inp, n);
}

/* RoBERTa's create_position_ids_from_input_ids: real tokens count up from padding_idx + 1, padding
 * keeps padding_idx. BERT: 0..T-1. */
static void positions(bert_model *m, int B, int T) {
    int pad = m->cfg.pad_token_id;
    for (int b = 0; b < B; b++) {
        int run = 0;
        for (int t = 0; t < T; t++) {
            int i = b * T + t;
            if (m->cfg.family == BERT_FAMILY_BERT) m->a.pos[i] = t;
            else m->a.pos[i] = m->ids[i] != pad ? pad + (++run) : pad;
        }
    }
}

static int check_batch(bert_model *m, const bert_batch *b, lorac_err *err) {
    if (b->B < 1 || b->B > m->opt.max_batch || b->T < 1 || b->T > m->opt.max_seq)
        return lorac_fail(err, LORAC_EINVAL, "bert: batch %dx%d exceeds %dx%d", b->B, b->T, m->opt.max_batch, m->opt.max_seq);
    size_t N = (size_t)b->B * b->T;
    for (size_t i = 0; i < N; i++) {
        if (b->ids[i] < 0 || b->ids[i] >= m->cfg.vocab_size)
            return lorac_fail(err, LORAC_EINVAL, "bert: token id %d is outside the vocabulary (%d)", b->ids[i], m->cfg.vocab_size);
        if (b->type_ids && (b->type_ids[i] < 0 || b->type_ids[i] >= m->cfg.type_vocab))
            return lorac_fail(err, LORAC_EINVAL, "bert: token type %d is outside type_vocab_size %d", b->type_ids[i], m->cfg.type_vocab);
    }
    if (b->labels)
        for (int i = 0; i < b->B; i++)
            if (b->labels[i] < 0 || b->labels[i] >= m->cfg.num_labels)
                return lorac_fail(err, LORAC_EINVAL, "bert: label %d is outside [0, %d)", b->labels[i], m->cfg.num_labels);
    return LORAC_OK;
}

static int head_forward(bert_model *m, int B, int T, lorac_rng *rng, lorac_err *err) {
    bert_acts *a = &m->a;
    const int C = m->cfg.hidden, L = m->cfg.n_layer;
    float p = m->training ? m->cfg.classifier_dropout : 0.0f;
    for (int b = 0; b < B; b++) memcpy(a->cls + (size_t)b * C, a->x[L] + (size_t)b * T * C, (size_t)C * sizeof(float));
    const float *din = a->cls;
    if (m->cfg.family == BERT_FAMILY_ROBERTA) { /* x = dropout(features[:, 0, :]) */
        op_dropout_forward(a->cls_d, a->mask_cls, a->cls, p, (size_t)B * C, rng);
        din = a->cls_d;
    }
    int rc = bert_lin_forward(&m->dense, a->dense, din, B, rng, err); /* dense(x) */
    if (rc) return rc;
    for (size_t i = 0; i < (size_t)B * C; i++) a->tanh_out[i] = tanhf(a->dense[i]);
    op_dropout_forward(a->tanh_d, a->mask_tanh, a->tanh_out, p, (size_t)B * C, rng);
    return bert_lin_forward(&m->cls, a->logits, a->tanh_d, B, rng, err);
}

/* Mean loss over the batch: cross-entropy (torch's CrossEntropyLoss) or MSE for one label. */
static float head_loss(bert_model *m, int B, float *dlogits, float scale) {
    const int NL = m->cfg.num_labels;
    double sum = 0;
    for (int b = 0; b < B; b++) {
        const float *z = m->a.logits + (size_t)b * NL;
        if (NL == 1) {
            double d = (double)z[0] - m->targets[b];
            sum += d * d;
            if (dlogits) dlogits[b] += (float)(2.0 * d / B * scale);
            continue;
        }
        double mx = z[0];
        for (int j = 1; j < NL; j++) mx = z[j] > mx ? z[j] : mx;
        double se = 0;
        for (int j = 0; j < NL; j++) se += exp((double)z[j] - mx);
        double lse = mx + log(se);
        sum += lse - z[m->labels[b]];
        if (dlogits)
            for (int j = 0; j < NL; j++)
                dlogits[(size_t)b * NL + j] += (float)((exp((double)z[j] - lse) - (j == m->labels[b])) / B * scale);
    }
    return (float)(sum / B);
}

int bert_forward(bert_model *m, const bert_batch *bt, float *logits, float *loss, lorac_rng *rng, lorac_err *err) {
    int rc = check_batch(m, bt, err);
    if (rc) return rc;
    const int B = bt->B, T = bt->T, N = B * T, C = m->cfg.hidden, FF = m->cfg.intermediate;
    const int NH = m->cfg.n_head, HS = C / NH, L = m->cfg.n_layer;
    bert_acts *a = &m->a;
    m->B = B;
    m->T = T;
    memcpy(m->ids, bt->ids, (size_t)N * sizeof(int32_t));
    if (bt->type_ids) memcpy(m->type_ids, bt->type_ids, (size_t)N * sizeof(int32_t));
    else memset(m->type_ids, 0, (size_t)N * sizeof(int32_t));
    memcpy(m->mask, bt->mask, (size_t)N);
    positions(m, B, T);
    /* hidden dropout (HF BertSelfOutput / BertOutput / BertEmbeddings); p == 0 keeps the exact
     * inference path, so eval mode is bit-identical to a model without dropout */
    const float hp = m->training ? m->cfg.hidden_dropout : 0.0f;
    if (!rng && (hp > 0.0f || (m->training && m->cfg.classifier_dropout > 0.0f)))
        return lorac_fail(err, LORAC_EINVAL, "bert: training with dropout needs an rng");
    m->hid_p = hp;
    for (int i = 0; i < N; i++)
        if (a->pos[i] >= m->cfg.max_pos)
            return lorac_fail(err, LORAC_EINVAL, "bert: position %d exceeds max_position_embeddings %d", a->pos[i], m->cfg.max_pos);
    /* emb = LN(wte[ids] + wpe[pos] + wtt[type]) */
    op_embedding_forward(a->emb_in, m->ids, m->wte, N, C, m->cfg.vocab_size);
    op_embedding_forward(a->dtmp, a->pos, m->wpe, N, C, m->cfg.max_pos);
    for (size_t i = 0; i < (size_t)N * C; i++) a->emb_in[i] += a->dtmp[i];
    op_embedding_forward(a->dtmp, m->type_ids, m->wtt, N, C, m->cfg.type_vocab);
    for (size_t i = 0; i < (size_t)N * C; i++) a->emb_in[i] += a->dtmp[i];
    /* x[0] = dropout(LN(emb_in)) */
    float *emb_ln = hp > 0.0f ? a->dtmp : a->x[0];
    op_layernorm_forward(emb_ln, a->emb_mean, a->emb_rstd, a->emb_in, m->emb_ln_g, m->emb_ln_b, N, C, m->cfg.ln_eps);
    if (hp > 0.0f) op_dropout_forward(a->x[0], a->mask_emb, emb_ln, hp, (size_t)N * C, rng);
    for (int l = 0; l < L; l++) {
        bert_layer *Ly = &m->layers[l];
        const float *xin = a->x[l];
        float *q = LAY(a->q, l, C), *k = LAY(a->k, l, C), *v = LAY(a->v, l, C), *att = LAY(a->att, l, C);
        float *ln1_in = LAY(a->ln1_in, l, C), *x1 = LAY(a->x1, l, C), *fc = LAY(a->fc, l, FF), *ge = LAY(a->ge, l, FF);
        float *ln2_in = LAY(a->ln2_in, l, C);
        if ((rc = bert_lin_forward(&Ly->site[BERT_SITE_Q], q, xin, N, rng, err))) return rc;
        if ((rc = bert_lin_forward(&Ly->site[BERT_SITE_K], k, xin, N, rng, err))) return rc;
        if ((rc = bert_lin_forward(&Ly->site[BERT_SITE_V], v, xin, N, rng, err))) return rc;
        op_attention_forward(att, LAY(a->lse, l, NH), q, k, v, m->mask, B, T, NH, NH, HS, 0);
        /* x1 = LN(x + dropout(dense(att))) */
        if ((rc = bert_lin_forward(&Ly->site[BERT_SITE_AO], hp > 0.0f ? a->dtmp : ln1_in, att, N, rng, err))) return rc;
        if (hp > 0.0f) op_dropout_forward(ln1_in, LAY(a->mask_ao, l, C), a->dtmp, hp, (size_t)N * C, rng);
        for (size_t i = 0; i < (size_t)N * C; i++) ln1_in[i] += xin[i];
        op_layernorm_forward(x1, LAY(a->ln1_mean, l, 1), LAY(a->ln1_rstd, l, 1), ln1_in, Ly->ln1_g, Ly->ln1_b, N, C, m->cfg.ln_eps);
        /* out = LN(x1 + dropout(dense(gelu(dense(x1))))) */
        if ((rc = bert_lin_forward(&Ly->site[BERT_SITE_FC], fc, x1, N, rng, err))) return rc;
        gelu_fwd(m, ge, fc, (size_t)N * FF);
        if ((rc = bert_lin_forward(&Ly->site[BERT_SITE_FO], hp > 0.0f ? a->dtmp : ln2_in, ge, N, rng, err))) return rc;
        if (hp > 0.0f) op_dropout_forward(ln2_in, LAY(a->mask_fo, l, C), a->dtmp, hp, (size_t)N * C, rng);
        for (size_t i = 0; i < (size_t)N * C; i++) ln2_in[i] += x1[i];
        op_layernorm_forward(a->x[l + 1], LAY(a->ln2_mean, l, 1), LAY(a->ln2_rstd, l, 1), ln2_in, Ly->ln2_g, Ly->ln2_b, N, C,
                             m->cfg.ln_eps);
    }
    if ((rc = head_forward(m, B, T, rng, err))) return rc;
    if (logits) memcpy(logits, a->logits, (size_t)B * m->cfg.num_labels * sizeof(float));
    m->have_labels = 0;
    if (bt->labels || bt->targets) {
        if (m->cfg.num_labels == 1 && !bt->targets)
            return lorac_fail(err, LORAC_EINVAL, "bert: a regression model (num_labels 1) needs float targets");
        if (m->cfg.num_labels > 1 && !bt->labels)
            return lorac_fail(err, LORAC_EINVAL, "bert: a classifier needs integer labels");
        if (bt->labels) memcpy(m->labels, bt->labels, (size_t)B * sizeof(int32_t));
        if (bt->targets) memcpy(m->targets, bt->targets, (size_t)B * sizeof(float));
        m->have_labels = 1;
        m->loss = head_loss(m, B, NULL, 0);
        if (loss) *loss = m->loss;
    }
    return LORAC_OK;
}

static int head_backward(bert_model *m, float scale, lorac_err *err) {
    bert_acts *a = &m->a;
    const int B = m->B, C = m->cfg.hidden, NL = m->cfg.num_labels;
    const size_t BC = (size_t)B * C;
    float p = m->training ? m->cfg.classifier_dropout : 0.0f;
    memset(a->dlogits, 0, (size_t)B * NL * sizeof(float));
    head_loss(m, B, a->dlogits, scale);
    /* logits = out_proj(tanh_d) */
    memset(a->dtanh, 0, BC * sizeof(float));
    int rc = bert_lin_backward(&m->cls, a->dtanh, a->dlogits, a->tanh_d, B, err);
    if (rc) return rc;
    /* tanh_d = dropout(tanh_out); tanh_out = tanh(dense) */
    memset(a->ddense, 0, BC * sizeof(float));
    op_dropout_backward(a->ddense, a->dtanh, a->mask_tanh, p, BC);
    for (size_t i = 0; i < BC; i++) a->ddense[i] *= 1.0f - a->tanh_out[i] * a->tanh_out[i];
    /* dense = dense(cls_d or cls) */
    memset(a->dcls, 0, BC * sizeof(float));
    if (m->cfg.family == BERT_FAMILY_ROBERTA) {
        memset(a->dtanh, 0, BC * sizeof(float));
        if ((rc = bert_lin_backward(&m->dense, a->dtanh, a->ddense, a->cls_d, B, err))) return rc;
        op_dropout_backward(a->dcls, a->dtanh, a->mask_cls, p, BC);
    } else {
        if ((rc = bert_lin_backward(&m->dense, a->dcls, a->ddense, a->cls, B, err))) return rc;
    }
    return LORAC_OK;
}

int bert_backward(bert_model *m, float scale, lorac_err *err) {
    if (!m->have_labels) return lorac_fail(err, LORAC_EINVAL, "bert: backward needs a forward with labels");
    if (!m->training) return lorac_fail(err, LORAC_EINVAL, "bert: backward needs training mode");
    bert_acts *a = &m->a;
    const int B = m->B, T = m->T, N = B * T, C = m->cfg.hidden, FF = m->cfg.intermediate;
    const int NH = m->cfg.n_head, HS = C / NH, L = m->cfg.n_layer;
    const size_t NC = (size_t)N * C;
    const float hp = m->hid_p;
    int rc = head_backward(m, scale, err);
    if (rc) return rc;
    if (!m->has_lora && !m->opt.full_ft) return LORAC_OK; /* head only: the encoder is frozen */
    /* cls[b] = x[L][b, 0] */
    memset(a->dx, 0, NC * sizeof(float));
    for (int b = 0; b < B; b++) memcpy(a->dx + (size_t)b * T * C, a->dcls + (size_t)b * C, (size_t)C * sizeof(float));
    for (int l = L - 1; l >= 0; l--) {
        bert_layer *Ly = &m->layers[l];
        const float *xin = a->x[l];
        float *q = LAY(a->q, l, C), *k = LAY(a->k, l, C), *v = LAY(a->v, l, C), *att = LAY(a->att, l, C);
        float *ln1_in = LAY(a->ln1_in, l, C), *x1 = LAY(a->x1, l, C), *fc = LAY(a->fc, l, FF), *ge = LAY(a->ge, l, FF);
        float *ln2_in = LAY(a->ln2_in, l, C);
        /* out = LN(ln2_in), ln2_in = x1 + dropout(FO(ge)) */
        memset(a->dtmp, 0, NC * sizeof(float));
        op_layernorm_backward(a->dtmp, Ly->dln2_g, Ly->dln2_b, a->dx, ln2_in, Ly->ln2_g, LAY(a->ln2_mean, l, 1),
                              LAY(a->ln2_rstd, l, 1), N, C);
        memcpy(a->dx1, a->dtmp, NC * sizeof(float));
        memset(a->dge, 0, (size_t)N * FF * sizeof(float));
        const float *dfo = a->dtmp;
        if (hp > 0.0f) {
            memset(a->ddrop, 0, NC * sizeof(float));
            op_dropout_backward(a->ddrop, a->dtmp, LAY(a->mask_fo, l, C), hp, NC);
            dfo = a->ddrop;
        }
        if ((rc = bert_lin_backward(&Ly->site[BERT_SITE_FO], a->dge, dfo, ge, N, err))) return rc;
        /* ge = gelu(fc), fc = FC(x1) */
        memset(a->dfc, 0, (size_t)N * FF * sizeof(float));
        gelu_bwd(m, a->dfc, a->dge, fc, (size_t)N * FF);
        if ((rc = bert_lin_backward(&Ly->site[BERT_SITE_FC], a->dx1, a->dfc, x1, N, err))) return rc;
        /* x1 = LN(ln1_in), ln1_in = x + dropout(AO(att)) */
        memset(a->dtmp, 0, NC * sizeof(float));
        op_layernorm_backward(a->dtmp, Ly->dln1_g, Ly->dln1_b, a->dx1, ln1_in, Ly->ln1_g, LAY(a->ln1_mean, l, 1),
                              LAY(a->ln1_rstd, l, 1), N, C);
        int need_dx = l > 0 || m->opt.full_ft; /* layer 0's input gradient only feeds the embeddings */
        if (need_dx) memcpy(a->dx, a->dtmp, NC * sizeof(float));
        memset(a->datt, 0, NC * sizeof(float));
        const float *dao = a->dtmp;
        if (hp > 0.0f) {
            memset(a->ddrop, 0, NC * sizeof(float));
            op_dropout_backward(a->ddrop, a->dtmp, LAY(a->mask_ao, l, C), hp, NC);
            dao = a->ddrop;
        }
        if ((rc = bert_lin_backward(&Ly->site[BERT_SITE_AO], a->datt, dao, att, N, err))) return rc;
        /* att = attention(q, k, v) */
        memset(a->dq, 0, NC * sizeof(float));
        memset(a->dk, 0, NC * sizeof(float));
        memset(a->dv, 0, NC * sizeof(float));
        op_attention_backward(a->dq, a->dk, a->dv, a->datt, att, LAY(a->lse, l, NH), q, k, v, m->mask, B, T, NH, NH, HS, 0);
        float *dxin = need_dx ? a->dx : NULL;
        if ((rc = bert_lin_backward(&Ly->site[BERT_SITE_Q], dxin, a->dq, xin, N, err))) return rc;
        if ((rc = bert_lin_backward(&Ly->site[BERT_SITE_K], dxin, a->dk, xin, N, err))) return rc;
        if ((rc = bert_lin_backward(&Ly->site[BERT_SITE_V], dxin, a->dv, xin, N, err))) return rc;
    }
    if (!m->opt.full_ft) return LORAC_OK;
    /* x[0] = dropout(LN(emb_in)), emb_in = wte[ids] + wpe[pos] + wtt[type] */
    const float *dln = a->dx;
    if (hp > 0.0f) {
        memset(a->ddrop, 0, NC * sizeof(float));
        op_dropout_backward(a->ddrop, a->dx, a->mask_emb, hp, NC);
        dln = a->ddrop;
    }
    memset(a->dtmp, 0, NC * sizeof(float));
    op_layernorm_backward(a->dtmp, m->demb_ln_g, m->demb_ln_b, dln, a->emb_in, m->emb_ln_g, a->emb_mean, a->emb_rstd, N, C);
    op_embedding_backward(m->dwte, a->dtmp, m->ids, N, C);
    op_embedding_backward(m->dwpe, a->dtmp, a->pos, N, C);
    op_embedding_backward(m->dwtt, a->dtmp, m->type_ids, N, C);
    /* nn.Embedding(padding_idx=pad) never gets a gradient in that row (RoBERTa's positions too) */
    int pad = m->cfg.pad_token_id;
    memset(m->dwte + (size_t)pad * C, 0, (size_t)C * sizeof(float));
    if (m->cfg.family == BERT_FAMILY_ROBERTA) memset(m->dwpe + (size_t)pad * C, 0, (size_t)C * sizeof(float));
    return LORAC_OK;
}
