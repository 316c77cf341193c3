/* The base tensors of a model, in checkpoint order, built from its config and its family's names:
 * one table that loading (HF and GGUF), random initialisation, saving, the registry, full
 * fine-tuning and PEFT's modules_to_save all read. Also the memory the tensors live in. */
#include <stdlib.h>
#include <string.h>

#include "models/model_internal.h"

/* ---------------------------------------------------------------- owned memory */

void *model_store_alloc(model *m, size_t bytes) { return lorac_blocks_alloc(&m->store.owned, bytes); }

void model_store_free(model_store *s) {
    lorac_blocks_free(&s->owned);
    hf_shards_close(&s->sh);
    if (s->has_gguf) gguf_close(&s->gf);
    memset(s, 0, sizeof *s);
}

/* ---------------------------------------------------------------- the table */

typedef struct tbuild {
    model *m;
    model_tensor *t;
    size_t n, cap;
    int oom;
} tbuild;

/* A new entry named after module (prefixed unless it starts with '^'; "%d" takes the layer). */
static model_tensor *entry(tbuild *b, const char *module, int layer, const char *suffix, int64_t d0, int64_t d1) {
    if (b->n == b->cap) {
        size_t cap = b->cap ? 2 * b->cap : 64;
        model_tensor *t = realloc(b->t, cap * sizeof *t);
        if (!t) {
            b->oom = 1;
            return NULL;
        }
        b->t = t;
        b->cap = cap;
    }
    model_tensor *t = &b->t[b->n++];
    memset(t, 0, sizeof *t);
    t->layer = t->site = -1;
    const arch_family *f = b->m->fam;
    char mod[128] = "";
    if (layer >= 0) snprintf(mod, sizeof mod, f->layer, layer);
    int top = module[0] == '^';
    snprintf(t->name, sizeof t->name, "%s%s%s.%s", top ? "" : f->prefix, mod, module + top, suffix);
    t->ndim = d1 ? 2 : 1;
    t->shape[0] = d0;
    t->shape[1] = d1;
    return t;
}

static void gguf_name(model_tensor *t, const char *gguf, int layer, const char *suffix) {
    if (!gguf) return;
    if (layer >= 0) snprintf(t->gguf, sizeof t->gguf, "blk.%d.%s.%s", layer, gguf, suffix);
    else snprintf(t->gguf, sizeof t->gguf, "%s.%s", gguf, suffix);
}

static void add_f32(tbuild *b, const char *module, int layer, const char *sfx, int64_t d0, int64_t d1, const float **p,
                    float **g, const char *gguf) {
    model_tensor *t = entry(b, module, layer, sfx, d0, d1);
    if (!t) return;
    t->f32 = p;
    t->grad = g;
    t->norm = d1 == 0 && !strcmp(sfx, "weight");
    gguf_name(t, gguf, layer, sfx);
}

static void add_norm(tbuild *b, const char *module, int layer, const float **w, const float **bias, float **dw,
                     float **db, const char *gguf) {
    int C = b->m->cfg.n_embd;
    add_f32(b, module, layer, "weight", C, 0, w, dw, gguf);
    if (b->m->cfg.norm == MODEL_NORM_LAYER) add_f32(b, module, layer, "bias", C, 0, bias, db, gguf);
}

static void add_linear(tbuild *b, const char *module, int layer, int site, model_linear *L, int bias, const char *gguf,
                       int permute) {
    int conv = L->layout == OP_W_IN_OUT;
    size_t first = b->n;
    model_tensor *t = entry(b, module, layer, "weight", conv ? L->C : L->OC, conv ? L->OC : L->C);
    if (!t) return;
    t->q = &L->w;
    t->grad = &L->dw;
    t->lin = L;
    gguf_name(t, gguf, layer, "weight");
    if (bias) add_f32(b, module, layer, "bias", L->OC, 0, &L->b, &L->db, gguf);
    for (size_t i = first; i < b->n; i++) {
        b->t[i].permute = permute;
        if (site >= 0) b->t[i].layer = layer, b->t[i].site = site;
    }
}

/* Whether the config gives a block's site a bias, and its in and out features. */
static int site_has_bias(const model_config *c, int site) {
    if (site <= ARCH_V) return c->qkv_bias;
    return site == ARCH_O ? c->o_bias : c->mlp_bias;
}

static void site_dims(const model_config *c, int site, int *C, int *OC) {
    int E = c->n_embd, Q = c->n_head * c->head_dim, KV = c->n_kv_head * c->head_dim, I = c->n_inner;
    switch (site) {
    case ARCH_QKV: *C = E, *OC = Q + 2 * KV; break;
    case ARCH_Q: *C = E, *OC = Q; break;
    case ARCH_K: case ARCH_V: *C = E, *OC = KV; break;
    case ARCH_O: *C = Q, *OC = E; break;
    case ARCH_DOWN: *C = I, *OC = E; break;
    default: *C = E, *OC = I; break; /* gate, up */
    }
}

int model_shape(model *m, lorac_err *err) {
    const model_config *c = &m->cfg;
    if (!m->layers && !(m->layers = calloc((size_t)c->n_layer, sizeof *m->layers)))
        return lorac_fail(err, LORAC_ENOMEM, "%s: out of memory", m->path);
    for (int l = 0; l < c->n_layer; l++)
        for (int s = 0; s < ARCH_N_SITES; s++) {
            model_linear *L = &m->layers[l].site[s];
            if (!m->fam->site[s]) continue;
            site_dims(c, s, &L->C, &L->OC);
            L->layout = c->conv1d ? OP_W_IN_OUT : OP_W_OUT_IN;
        }
    model_linear *h[2] = {&m->cls_dense, &m->cls_out};
    for (int i = 0; i < 2 && c->head != MODEL_HEAD_LM; i++) {
        h[i]->C = c->n_embd;
        h[i]->OC = i ? c->num_labels : c->n_embd;
        h[i]->layout = OP_W_OUT_IN;
    }
    return LORAC_OK;
}

/* The sites of a block before (attention: pass 0) or after (MLP: pass 1) its middle norm. */
static void add_sites(tbuild *b, int l, int pass, int permute) {
    model *m = b->m;
    const arch_family *f = m->fam;
    for (int s = pass ? ARCH_GATE : ARCH_QKV; s <= (pass ? ARCH_DOWN : ARCH_O); s++)
        if (f->site[s])
            add_linear(b, f->site[s], l, s, &m->layers[l].site[s], site_has_bias(&m->cfg, s), f->gguf_site[s],
                       permute && (s == ARCH_Q || s == ARCH_K));
}

static void add_lm_head(tbuild *b, int gguf) {
    const model_config *c = &b->m->cfg;
    add_f32(b, b->m->fam->lm_head, -1, "weight", c->vocab_size, c->n_embd, NULL, NULL, gguf ? "output" : NULL);
    if (b->n) b->t[b->n - 1].f32 = NULL, b->t[b->n - 1].q = &b->m->lm_head;
}

model_tensor model_tied_head(model *m) {
    tbuild b = {m, NULL, 0, 0, 0};
    int perm;
    model_tensor h = {.layer = -1, .site = -1};
    add_lm_head(&b, m->fam->gguf_arch && m->fam->gguf_arch(&m->cfg, &perm));
    if (b.n) h = b.t[0];
    free(b.t);
    return h;
}

int model_tensors(model *m, model_tensor **out, size_t *n, lorac_err *err) {
    tbuild b = {m, NULL, 0, 0, 0};
    const model_config *c = &m->cfg;
    const arch_family *f = m->fam;
    int perm = 0, post = c->post_norm;
    const char *ga = f->gguf_arch ? f->gguf_arch(c, &perm) : NULL;
    add_f32(&b, f->embed, -1, "weight", c->vocab_size, c->n_embd, NULL, &m->dembed, ga ? "token_embd" : NULL);
    if (b.n) b.t[0].f32 = NULL, b.t[0].q = &m->embed;
    if (f->pos_embed && c->pos == MODEL_POS_LEARNED)
        add_f32(&b, f->pos_embed, -1, "weight", c->n_positions, c->n_embd, &m->pos_embed, &m->dpos_embed, NULL);
    if (f->type_embed && c->type_vocab > 0)
        add_f32(&b, f->type_embed, -1, "weight", c->type_vocab, c->n_embd, &m->type_embed, &m->dtype_embed, NULL);
    if (c->emb_norm) add_norm(&b, f->emb_norm, -1, &m->emb_norm_w, &m->emb_norm_b, &m->demb_norm_w, &m->demb_norm_b, NULL);
    for (int l = 0; l < c->n_layer; l++) {
        model_layer *L = &m->layers[l];
        for (int k = 0; k < 2; k++) { /* k 0: attention, k 1: MLP */
            const char *g = ga ? f->gguf_norm[k] : NULL;
            if (!post) add_norm(&b, f->norm[k], l, &L->norm_w[k], &L->norm_b[k], &L->dnorm_w[k], &L->dnorm_b[k], g);
            add_sites(&b, l, k, perm);
            if (post) add_norm(&b, f->norm[k], l, &L->norm_w[k], &L->norm_b[k], &L->dnorm_w[k], &L->dnorm_b[k], g);
        }
    }
    if (c->final_norm)
        add_norm(&b, f->final_norm, -1, &m->final_norm_w, &m->final_norm_b, &m->dfinal_norm_w, &m->dfinal_norm_b,
                 ga ? "output_norm" : NULL);
    if (c->head == MODEL_HEAD_LM && !c->tie_word_embeddings) add_lm_head(&b, ga != NULL);
    size_t head0 = b.n;
    if (c->head != MODEL_HEAD_LM) {
        add_linear(&b, f->cls[0], -1, -1, &m->cls_dense, 1, NULL, 0);
        add_linear(&b, f->cls[1], -1, -1, &m->cls_out, 1, NULL, 0);
    }
    for (size_t i = head0; i < b.n; i++) b.t[i].head = 1;
    if (b.oom) {
        free(b.t);
        return lorac_fail(err, LORAC_ENOMEM, "%s: out of memory for the tensor table", m->path);
    }
    *out = b.t;
    *n = b.n;
    return LORAC_OK;
}

const float *model_tensor_f32(const model_tensor *t) {
    if (t->f32) return *t->f32;
    return t->q->type == QUANT_F32 ? t->q->data : NULL;
}

void model_tensor_set(const model_tensor *t, const float *data) {
    if (t->f32) *t->f32 = data;
    else *t->q = qmat_f32(data, (int)t->shape[0], (int)t->shape[1]);
}
