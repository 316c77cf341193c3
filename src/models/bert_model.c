/* BERT / RoBERTa model: loading, LoRA sites, activations, the trainable-tensor list. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bert_internal.h"
#include "lorac/ops.h"

int bert_lin_forward(bert_lin *s, float *out, const float *inp, int N, lorac_rng *rng, lorac_err *err) {
    if (s->lora) return lora_linear_forward(s->lora, &s->act, out, inp, N, rng, err);
    op_matmul_forward(out, inp, s->w, s->b, N, s->C, s->OC, OP_W_OUT_IN);
    return LORAC_OK;
}

int bert_lin_backward(bert_lin *s, float *dinp, const float *dout, const float *inp, int N, lorac_err *err) {
    if (s->lora) return lora_linear_backward(s->lora, &s->act, dinp, dout, inp, err);
    if (dinp || s->dw || s->db) op_matmul_backward(dinp, s->dw, s->db, dout, inp, s->w, 1.0f, N, s->C, s->OC, OP_W_OUT_IN);
    return LORAC_OK;
}

int bert_attach_lora(bert_model *m, const peft_config *pc, lorac_rng *rng, lorac_err *err) {
    int cap_N = m->opt.max_batch * m->opt.max_seq;
    m->lora_cfg = *pc;
    for (int l = 0; l < m->cfg.n_layer; l++) {
        for (int s = 0; s < BERT_N_SITES; s++) {
            bert_lin *S = &m->layers[l].site[s];
            if (!peft_targets_module(pc, S->module)) continue;
            lora_config lc = lora_config_default(peft_rank_for(pc, S->module), (float)peft_alpha_for(pc, S->module));
            lc.lora_dropout = (float)pc->lora_dropout;
            lc.use_rslora = pc->use_rslora;
            S->lora = calloc(1, sizeof *S->lora);
            if (!S->lora) return lorac_fail(err, LORAC_ENOMEM, "out of memory for LoRA layers");
            int rc = lora_linear_init(S->lora, S->C, S->OC, &lc, S->w, S->b, rng, err);
            if (!rc) rc = lora_linear_act_init(&S->act, S->lora, cap_N, err);
            if (rc) return rc;
            S->lora->train_bias = 0; /* PEFT bias "none" */
            if (!m->training) lora_linear_train(S->lora, 0, err);
            m->has_lora = 1;
        }
    }
    if (!m->has_lora)
        return lorac_fail(err, LORAC_EINVAL, "the LoRA target modules match no module of the encoder (query, key, value, "
                                             "attention.output.dense, intermediate.dense, output.dense)");
    return LORAC_OK;
}

/* The optimizer's list: LoRA A/B of every site, then every tensor that has a gradient buffer. */
static int build_trainable(bert_model *m, lorac_err *err) {
    free(m->tp);
    free(m->tp_names);
    size_t cap = m->n_t + 2 * (size_t)m->cfg.n_layer * BERT_N_SITES;
    m->tp = calloc(cap, sizeof *m->tp);
    m->tp_names = calloc(cap, 200);
    if (!m->tp || !m->tp_names) return lorac_fail(err, LORAC_ENOMEM, "out of memory");
    m->n_tp = 0;
    m->n_all = 0;
    for (size_t i = 0; i < m->n_t; i++) m->n_all += m->t[i].numel;
    for (int l = 0; l < m->cfg.n_layer; l++)
        for (int s = 0; s < BERT_N_SITES; s++) {
            bert_lin *S = &m->layers[l].site[s];
            if (!S->lora) continue;
            lora_linear *L = S->lora;
            for (int ab = 0; ab < 2; ab++) {
                char *nm = m->tp_names + 200 * m->n_tp;
                snprintf(nm, 200, "base_model.model.%s.lora_%c.weight", S->module, ab ? 'B' : 'A');
                size_t numel = ab ? (size_t)L->OC * L->cfg.r : (size_t)L->cfg.r * L->C;
                m->tp[m->n_tp++] = (bert_param){nm, ab ? L->lora_B : L->lora_A, ab ? L->grad_B : L->grad_A, numel, 1};
                m->n_all += numel;
            }
        }
    for (size_t i = 0; i < m->n_t; i++) {
        bert_tensor *t = &m->t[i];
        if (!t->g) continue;
        char *nm = m->tp_names + 200 * m->n_tp;
        snprintf(nm, 200, "%s", t->name);
        m->tp[m->n_tp++] = (bert_param){nm, t->w, t->g, t->numel, t->decay};
    }
    return LORAC_OK;
}

static int acts_alloc(bert_model *m, lorac_err *err) {
    const bert_config *c = &m->cfg;
    size_t B = (size_t)m->opt.max_batch, N = B * (size_t)m->opt.max_seq, C = (size_t)c->hidden;
    size_t FF = (size_t)c->intermediate, L = (size_t)c->n_layer, NL = (size_t)c->num_labels;
    bert_acts *a = &m->a;
    size_t per_layer = N * C * 8 + N * FF * 2 + N * (size_t)c->n_head + N * 4;
    /* one block: embeddings, L+1 layer inputs, L layers, head, backward scratch */
    size_t total = N * C + 2 * N + (L + 1) * N * C + L * per_layer + B * C * 6 + B * NL * 2 + N * C * 7 + N * FF * 2 +
                   B * C * 3 + N * C;
    float *p = calloc(total, sizeof(float));
    a->x = calloc(L + 1, sizeof(float *));
    a->mask_cls = calloc(B * C, 1);
    a->mask_tanh = calloc(B * C, 1);
    a->mask_emb = calloc((2 * L + 1) * N * C, 1); /* one block: mask_emb, mask_ao, mask_fo */
    a->pos = calloc(N, sizeof(int32_t));
    m->ids = calloc(N, sizeof(int32_t));
    m->type_ids = calloc(N, sizeof(int32_t));
    m->mask = calloc(N, 1);
    m->labels = calloc(B, sizeof(int32_t));
    m->targets = calloc(B, sizeof(float));
    if (!p || !a->x || !a->mask_cls || !a->mask_tanh || !a->mask_emb || !a->pos || !m->ids || !m->type_ids || !m->mask ||
        !m->labels || !m->targets) {
        free(p);
        return lorac_fail(err, LORAC_ENOMEM, "out of memory for activations of %zu tokens", N);
    }
    a->mask_ao = a->mask_emb + N * C;
    a->mask_fo = a->mask_ao + L * N * C;
#define TAKE(dst, n) do { dst = p; p += (n); } while (0)
    TAKE(a->emb_in, N * C); TAKE(a->emb_mean, N); TAKE(a->emb_rstd, N);
    for (size_t l = 0; l <= L; l++) TAKE(a->x[l], N * C);
    TAKE(a->q, L * N * C); TAKE(a->k, L * N * C); TAKE(a->v, L * N * C); TAKE(a->att, L * N * C);
    TAKE(a->lse, L * N * c->n_head);
    TAKE(a->ln1_in, L * N * C); TAKE(a->ln1_mean, L * N); TAKE(a->ln1_rstd, L * N); TAKE(a->x1, L * N * C);
    TAKE(a->fc, L * N * FF); TAKE(a->ge, L * N * FF);
    TAKE(a->ln2_in, L * N * C); TAKE(a->ln2_mean, L * N); TAKE(a->ln2_rstd, L * N);
    TAKE(a->cls, B * C); TAKE(a->cls_d, B * C); TAKE(a->dense, B * C); TAKE(a->tanh_out, B * C);
    TAKE(a->tanh_d, B * C); TAKE(a->logits, B * NL);
    TAKE(a->dx, N * C); TAKE(a->dx1, N * C); TAKE(a->dtmp, N * C); TAKE(a->dq, N * C); TAKE(a->dk, N * C);
    TAKE(a->dv, N * C); TAKE(a->datt, N * C); TAKE(a->dfc, N * FF); TAKE(a->dge, N * FF);
    TAKE(a->dcls, B * C); TAKE(a->dtanh, B * C); TAKE(a->ddense, B * C); TAKE(a->dlogits, B * NL);
    TAKE(a->ddrop, N * C);
#undef TAKE
    return LORAC_OK;
}

int bert_model_load(const char *dir, const bert_options *opt, bert_model **out, lorac_err *err) {
    *out = NULL;
    if (opt->max_batch < 1 || opt->max_seq < 2)
        return lorac_fail(err, LORAC_EINVAL, "bert: max_batch must be >= 1 and max_seq >= 2");
    if (opt->full_ft && opt->lora) return lorac_fail(err, LORAC_EINVAL, "bert: full fine-tuning and LoRA exclude each other");
    bert_model *m = calloc(1, sizeof *m);
    if (!m) return lorac_fail(err, LORAC_ENOMEM, "out of memory");
    m->opt = *opt;
    m->opt.lora = NULL;
    int rc = bert_config_load(dir, &m->cfg, err);
    if (rc) goto fail;
    snprintf(m->prefix, sizeof m->prefix, "%s", m->cfg.family == BERT_FAMILY_BERT ? "bert." : "roberta.");
    int max_seq = m->cfg.family == BERT_FAMILY_ROBERTA ? m->cfg.max_pos - m->cfg.pad_token_id - 1 : m->cfg.max_pos;
    if (opt->max_seq > max_seq) {
        rc = lorac_fail(err, LORAC_EINVAL, "%s/config.json: --max-seq-len %d exceeds the model's %d positions", dir,
                        opt->max_seq, max_seq);
        goto fail;
    }
    if ((rc = bert_weights_load(m, dir, err))) goto fail;
    if ((rc = acts_alloc(m, err))) goto fail;
    m->training = 1;
    if (opt->lora) {
        lorac_rng rng;
        lorac_rng_seed(&rng, opt->seed);
        if ((rc = bert_attach_lora(m, opt->lora, &rng, err))) goto fail;
    }
    if ((rc = build_trainable(m, err))) goto fail;
    *out = m;
    return LORAC_OK;
fail:
    bert_model_free(m);
    return rc;
}

int bert_load_adapter_layers(bert_model *m, const peft_config *pc, lorac_err *err);
int bert_load_adapter_layers(bert_model *m, const peft_config *pc, lorac_err *err) {
    lorac_rng rng;
    lorac_rng_seed(&rng, m->opt.seed);
    int rc = bert_attach_lora(m, pc, &rng, err);
    if (!rc) rc = build_trainable(m, err);
    return rc;
}

void bert_model_free(bert_model *m) {
    if (!m) return;
    for (int l = 0; m->layers && l < m->cfg.n_layer; l++)
        for (int s = 0; s < BERT_N_SITES; s++) {
            bert_lin *S = &m->layers[l].site[s];
            if (S->lora) {
                lora_linear_free(S->lora);
                free(S->lora);
                lora_act_free(&S->act);
            }
        }
    free(m->layers);
    free(m->t);
    free(m->arena);
    free(m->garena);
    free(m->a.emb_in); /* the head of the activation block */
    free(m->a.x);
    free(m->a.mask_cls);
    free(m->a.mask_tanh);
    free(m->a.mask_emb);
    free(m->a.pos);
    free(m->ids);
    free(m->type_ids);
    free(m->mask);
    free(m->labels);
    free(m->targets);
    free(m->tp);
    free(m->tp_names);
    free(m);
}

const bert_config *bert_model_config(const bert_model *m) { return &m->cfg; }

void bert_model_train_mode(bert_model *m, int on) {
    m->training = on ? 1 : 0;
    for (int l = 0; l < m->cfg.n_layer; l++)
        for (int s = 0; s < BERT_N_SITES; s++)
            if (m->layers[l].site[s].lora) lora_linear_train(m->layers[l].site[s].lora, m->training, NULL);
}

int bert_model_set_hidden_dropout(bert_model *m, float p, lorac_err *err) {
    if (!(p >= 0.0f && p < 1.0f)) return lorac_fail(err, LORAC_EINVAL, "bert: hidden dropout %g is outside [0, 1)", (double)p);
    m->cfg.hidden_dropout = p;
    return LORAC_OK;
}

void bert_zero_grad(bert_model *m) {
    for (size_t i = 0; i < m->n_tp; i++) memset(m->tp[i].grad, 0, m->tp[i].numel * sizeof(float));
}

size_t bert_n_trainable(const bert_model *m) { return m->n_tp; }
bert_param bert_trainable(const bert_model *m, size_t i) { return m->tp[i]; }

void bert_report(const bert_model *m, char *buf, size_t size) {
    size_t tr = 0;
    for (size_t i = 0; i < m->n_tp; i++) tr += m->tp[i].numel;
    lora_format_trainable(buf, size, tr, m->n_all);
}
