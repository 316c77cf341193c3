/* The model's lifetime and state: loading (HF directory or GGUF), random models, the registry of
 * named tensors, training mode, gradients, counts, full fine-tuning. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "models/model_internal.h"

const model_config *model_cfg(const model *m) { return &m->cfg; }
const char *model_path(const model *m) { return m->path; }

/* ---------------------------------------------------------------- lifetime */

int model_finish_load(model *m, lorac_err *err) {
    const model_config *c = &m->cfg;
    if (c->head == MODEL_HEAD_LM && c->tie_word_embeddings) m->lm_head = m->embed;
    if (c->pos == MODEL_POS_ROPE) {
        if (!(m->inv_freq = model_store_alloc(m, (size_t)c->head_dim / 2 * sizeof(float))))
            return lorac_fail(err, LORAC_ENOMEM, "%s: out of memory", m->path);
        op_rope_inv_freq(&c->rope, c->head_dim, m->inv_freq);
        for (int i = 0; m->rope_freqs && i < c->head_dim / 2; i++) m->inv_freq[i] /= m->rope_freqs[i];
    }
    /* a classification head always trains */
    model_linear *h[2] = {&m->cls_dense, &m->cls_out};
    for (int i = 0; i < 2 && c->head != MODEL_HEAD_LM; i++) {
        h[i]->dw = model_store_alloc(m, (size_t)h[i]->C * h[i]->OC * sizeof(float));
        h[i]->db = model_store_alloc(m, (size_t)h[i]->OC * sizeof(float));
        if (!h[i]->dw || !h[i]->db) return lorac_fail(err, LORAC_ENOMEM, "%s: out of memory", m->path);
    }
    m->training = 1;
    m->hidden_dropout = c->hidden_dropout;
    lora_registry_init(&m->reg);
    return model_register_all(m, err);
}

static model *model_new(const char *path) {
    model *m = calloc(1, sizeof *m);
    if (m) snprintf(m->path, sizeof m->path, "%s", path);
    return m;
}

int model_load(const char *path, const model_load_opts *o, model **out, lorac_err *err) {
    *out = NULL;
    model *m = model_new(path);
    if (!m) return lorac_fail(err, LORAC_ENOMEM, "%s: out of memory", path);
    int rc;
    struct stat st;
    if (gguf_is_file(path)) {
        rc = model_weights_load_gguf(m, path, err);
    } else if (stat(path, &st) == 0 && S_ISREG(st.st_mode)) { /* a file can only be a GGUF */
        rc = lorac_fail(err, LORAC_EFORMAT, "%s: not a GGUF file (no GGUF magic) nor a model directory", path);
    } else {
        rc = model_config_load_dir(path, &m->cfg, &m->fam, err);
        if (!rc) rc = model_weights_load_hf(m, path, o, err);
    }
    if (!rc) rc = model_finish_load(m, err);
    if (!rc && !(o && o->no_tokenizer)) rc = model_text_load(m, path, err);
    if (rc) {
        model_free(m);
        return rc;
    }
    *out = m;
    return LORAC_OK;
}

int model_random(const model_config *cfg, uint64_t seed, model **out, lorac_err *err) {
    *out = NULL;
    const arch_family *f = arch_find(cfg->model_type);
    if (!f) return lorac_fail(err, LORAC_EUNSUPPORTED, "model_type \"%s\" is not supported (%s)", cfg->model_type,
                              arch_model_types());
    int rc = model_config_validate(cfg, "random model", err);
    if (rc) return rc;
    model *m = model_new("random model");
    if (!m) return lorac_fail(err, LORAC_ENOMEM, "out of memory");
    m->cfg = *cfg;
    m->fam = f;
    rc = model_weights_random(m, seed, err);
    if (!rc) rc = model_finish_load(m, err);
    if (rc) {
        model_free(m);
        return rc;
    }
    *out = m;
    return LORAC_OK;
}

void model_free(model *m) {
    if (!m) return;
    model_free_lora(m);
    peft_adapter_free(m->peft_extra);
    lora_registry_free(&m->reg);
    model_text_free(m->text);
    free(m->layers);
    model_store_free(&m->store);
    free(m);
}

/* ---------------------------------------------------------------- the registry */

static int register_tensor(model *m, const model_tensor *t, lorac_err *err) {
    const float *data = model_tensor_f32(t);
    if (!data) return LORAC_OK; /* a matrix kept quantized has no f32 view */
    float *grad = t->grad ? *t->grad : NULL;
    return lora_registry_add(&m->reg, t->name, t->ndim, t->shape, (float *)data, grad, NULL, grad != NULL, 0, err);
}

int model_register_all(model *m, lorac_err *err) {
    m->reg_stale = 0;
    lora_registry_free(&m->reg);
    lora_registry_init(&m->reg);
    model_tensor *t = NULL;
    size_t n = 0;
    int rc = model_tensors(m, &t, &n, err);
    char module[192];
    for (size_t i = 0; i < n && !rc; i++) {
        int l = t[i].layer, s = t[i].site;
        const site_lora *lo = t[i].lin && s >= 0 ? model_site_lora(m, l, s) : NULL; /* registered in the base's place */
        if (t[i].q == &m->embed && m->embed_lora) {
            model_site_module(m, -1, 0, module, sizeof module);
            rc = lora_embedding_register(m->embed_lora, &m->reg, module, err);
        } else if (lo) {
            model_site_module(m, l, s, module, sizeof module);
            rc = lo->lin ? lora_linear_register(lo->lin, &m->reg, module, err) : lora_merged_register(lo->split, &m->reg, module, err);
            /* over an f32 base the layer registers the weight and bias; over a quantized one only A, B */
            int has_weight = lo->lin ? lo->lin->weight != NULL : 1;
            if (has_weight && i + 1 < n && t[i + 1].f32 == &m->layers[l].site[s].b) i++;
        } else {
            rc = register_tensor(m, &t[i], err);
        }
    }
    free(t);
    if (rc) return rc;
    /* only LoRA trains (bias "none"), and whatever has its own gradient buffer (a head, full FT) */
    lora_mark_only_lora_as_trainable(&m->reg, LORA_BIAS_NONE);
    for (size_t i = 0; i < m->reg.n; i++) {
        lora_param *p = &m->reg.params[i];
        if (p->grad && !p->lora_layer_bias && !strstr(p->name, "lora_")) lora_param_set_requires_grad(p, 1);
    }
    return LORAC_OK;
}

/* An adapter switch only marks the registry stale (see model_lora_swap): rebuilt here on demand. */
static lora_registry *fresh_registry(const model *cm) {
    model *m = (model *)cm;
    if (m->reg_stale && model_register_all(m, NULL)) return NULL;
    return &m->reg;
}

lora_registry *model_registry(model *m) { return fresh_registry(m); }

/* ---------------------------------------------------------------- training state */

int model_train_mode(model *m, int on, lorac_err *err) {
    on = on != 0;
    int rc = m->embed_lora ? lora_embedding_train(m->embed_lora, on, err) : LORAC_OK;
    for (size_t k = 0; m->lora && !rc && k < (size_t)m->cfg.n_layer * ARCH_N_SITES; k++) {
        if (m->lora[k].lin) rc = lora_linear_train(m->lora[k].lin, on, err);
        if (m->lora[k].split && !rc) rc = lora_merged_train(m->lora[k].split, on, err);
    }
    if (!rc) m->training = on;
    return rc;
}

int model_is_training(const model *m) { return m->training; }
int model_has_lora(const model *m) { return m->has_lora; }

int model_set_hidden_dropout(model *m, float p, lorac_err *err) {
    if (!(p >= 0.0f && p < 1.0f)) return lorac_fail(err, LORAC_EINVAL, "hidden dropout %g is outside [0, 1)", (double)p);
    m->hidden_dropout = p;
    return LORAC_OK;
}

void model_zero_grad(model *m) {
    const lora_registry *reg = fresh_registry(m);
    for (size_t i = 0; reg && i < reg->n; i++) {
        lora_param *p = &reg->params[i];
        if (p->grad && lora_param_requires_grad(p)) memset(p->grad, 0, p->numel * sizeof(float));
    }
}

void model_count_params(const model *m, size_t *trainable, size_t *all) {
    size_t t = 0, a = 0;
    const lora_registry *reg = fresh_registry(m);
    if (reg) lora_registry_count(reg, &t, &a);
    const qmat *mats[2] = {&m->embed, m->cfg.tie_word_embeddings || m->cfg.head != MODEL_HEAD_LM ? NULL : &m->lm_head};
    for (int i = 0; i < 2; i++) /* the registry lacks matrices kept quantized */
        if (mats[i] && mats[i]->type != QUANT_F32) a += (size_t)mats[i]->rows * mats[i]->cols;
    for (int l = 0; l < m->cfg.n_layer; l++)
        for (int s = 0; s < ARCH_N_SITES; s++) {
            const qmat *q = &m->layers[l].site[s].w;
            if (q->data && q->type != QUANT_F32) a += (size_t)q->rows * q->cols;
        }
    if (trainable) *trainable = t;
    if (all) *all = a;
}

int model_set_full_ft(model *m, lorac_err *err) {
    if (m->has_lora) return lorac_fail(err, LORAC_EINVAL, "%s: full fine-tuning and LoRA exclude each other", m->path);
    model_tensor *t = NULL;
    size_t n = 0;
    int rc = model_tensors(m, &t, &n, err);
    for (size_t i = 0; i < n && !rc; i++) {
        const float *src = model_tensor_f32(&t[i]);
        size_t bytes = (size_t)t[i].shape[0] * (size_t)(t[i].ndim == 2 ? t[i].shape[1] : 1) * sizeof(float);
        if (!src) {
            rc = lorac_fail(err, LORAC_EUNSUPPORTED, "%s: tensor '%s' is quantized: full fine-tuning needs f32 weights",
                            m->path, t[i].name);
            break;
        }
        if (t[i].head) continue; /* already owned and trained */
        /* mapped weights are read-only: train an owned copy */
        float *w = model_store_alloc(m, bytes), *g = model_store_alloc(m, bytes);
        if (!w || !g) {
            rc = lorac_fail(err, LORAC_ENOMEM, "%s: out of memory for full fine-tuning", m->path);
            break;
        }
        memcpy(w, src, bytes);
        memset(g, 0, bytes);
        model_tensor_set(&t[i], w);
        *t[i].grad = g;
    }
    free(t);
    if (!rc && m->cfg.head == MODEL_HEAD_LM && m->cfg.tie_word_embeddings) m->lm_head = m->embed;
    if (!rc) m->full_ft = 1;
    return rc ? rc : model_register_all(m, err);
}

int model_linear_f32(const model *m, const char *module, float **out, int *rows, int *cols, lorac_err *err) {
    char name[192];
    *out = NULL;
    for (int l = 0; l < m->cfg.n_layer; l++)
        for (int s = 0; s < ARCH_N_SITES; s++) {
            const model_linear *L = &m->layers[l].site[s];
            model_site_module(m, l, s, name, sizeof name);
            if (!m->fam->site[s] || strcmp(name, module)) continue;
            float *w = malloc((size_t)L->C * L->OC * sizeof(float)), *d = malloc((size_t)L->C * L->OC * sizeof(float));
            int rc = w && d ? linear_weight_f32(L, NULL, w, err) : lorac_fail(err, LORAC_ENOMEM, "%s: out of memory", module);
            if (!rc && L->layout == OP_W_IN_OUT) /* Conv1D (in, out) to (out, in) */
                for (int i = 0; i < L->C; i++)
                    for (int o = 0; o < L->OC; o++) d[(size_t)o * L->C + i] = w[(size_t)i * L->OC + o];
            else if (!rc) memcpy(d, w, (size_t)L->C * L->OC * sizeof(float));
            free(w);
            if (rc) {
                free(d);
                return rc;
            }
            *out = d, *rows = L->OC, *cols = L->C;
            return LORAC_OK;
        }
    return lorac_fail(err, LORAC_ENOTFOUND, "%s: no linear map '%s'", m->path, module);
}
