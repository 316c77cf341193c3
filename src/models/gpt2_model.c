/* GPT-2 with LoRA: model state (base weights + adapters), per-request activations, and the
 * explicit forward and backward passes (llm.c style: read top to bottom). */
#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "lorac/gpt2.h"
#include "lorac/ops.h"
#include "lorac/peft.h" /* gpt2_model_free releases a PEFT adapter's replaced tensors */

/* ---------------------------------------------------------------- LoRA placement */

void gpt2_lora_opts_default(gpt2_lora_opts *o) {
    memset(o, 0, sizeof *o);
    o->r = 4;
    o->alpha = 32.0f;
    o->dropout = 0.1f;
    o->qkv[0] = o->qkv[2] = 1;
}

int gpt2_lora_targets_parse(const char *spec, gpt2_lora_opts *o, lorac_err *err) {
    o->c_attn_full = o->attn_proj = o->mlp_fc = o->mlp_proj = o->wte = 0;
    o->qkv[0] = o->qkv[1] = o->qkv[2] = 0;
    const char *p = spec;
    int any = 0;
    while (*p) {
        const char *e = strchr(p, ',');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        char t[64];
        if (n == 0 || n >= sizeof t) return lorac_fail(err, LORAC_EINVAL, "--targets: bad list \"%s\"", spec);
        memcpy(t, p, n);
        t[n] = 0;
        if (!strcmp(t, "q")) o->qkv[0] = 1;
        else if (!strcmp(t, "k")) o->qkv[1] = 1;
        else if (!strcmp(t, "v")) o->qkv[2] = 1;
        else if (!strcmp(t, "c_attn") || !strcmp(t, "attn.c_attn")) o->c_attn_full = 1;
        else if (!strcmp(t, "attn.c_proj")) o->attn_proj = 1;
        else if (!strcmp(t, "c_fc") || !strcmp(t, "mlp.c_fc")) o->mlp_fc = 1;
        else if (!strcmp(t, "mlp.c_proj")) o->mlp_proj = 1;
        else if (!strcmp(t, "c_proj")) o->attn_proj = o->mlp_proj = 1;
        else if (!strcmp(t, "all-linear")) o->c_attn_full = o->attn_proj = o->mlp_fc = o->mlp_proj = 1;
        else if (!strcmp(t, "wte") || !strcmp(t, "transformer.wte")) o->wte = 1;
        else
            return lorac_fail(err, LORAC_EINVAL, "--targets: unknown module \"%s\" (q, k, v, c_attn, attn.c_proj, "
                              "c_fc, mlp.c_proj, c_proj, wte, all-linear)", t);
        any = 1;
        p += n;
        if (*p == ',') p++;
    }
    if (!any) return lorac_fail(err, LORAC_EINVAL, "--targets: empty list");
    if (o->c_attn_full && (o->qkv[0] || o->qkv[1] || o->qkv[2]))
        return lorac_fail(err, LORAC_EINVAL, "--targets: c_attn already covers q, k and v; give one or the other");
    return LORAC_OK;
}

/* ---------------------------------------------------------------- model state */

static int register_base(gpt2_model *m, const char *name, const float *data, int64_t d0, int64_t d1, lorac_err *err) {
    int64_t shape[2] = {d0, d1};
    return lora_registry_add(&m->reg, name, d1 ? 2 : 1, shape, (float *)data, NULL, NULL, 0, 0, err);
}

/* Registers a linear module: through its LoRA layer when it has one, else its frozen tensors. */
static int register_linear(gpt2_model *m, const char *prefix, lora_linear *L, lora_merged *M, const float *w,
                           const float *b, int C, int OC, lorac_err *err) {
    if (L) return lora_linear_register(L, &m->reg, prefix, err);
    if (M) return lora_merged_register(M, &m->reg, prefix, err);
    char name[160];
    snprintf(name, sizeof name, "%s.weight", prefix);
    int rc = register_base(m, name, w, C, OC, err); /* Conv1D: (in, out) */
    snprintf(name, sizeof name, "%s.bias", prefix);
    return rc ? rc : register_base(m, name, b, OC, 0, err);
}

/* Rebuilds the registry in checkpoint order; called after loading and after adding LoRA. */
static int gpt2_register_all(gpt2_model *m, lorac_err *err) {
    lora_registry_free(&m->reg);
    lora_registry_init(&m->reg);
    const gpt2_config *c = &m->cfg;
    int C = c->n_embd, I = c->n_inner, rc;
    if (m->wte_lora) rc = lora_embedding_register(m->wte_lora, &m->reg, "transformer.wte", err);
    else rc = register_base(m, "transformer.wte.weight", m->w.wte, c->vocab_size, C, err);
    if (rc) return rc;
    if ((rc = register_base(m, "transformer.wpe.weight", m->w.wpe, c->n_positions, C, err))) return rc;
    for (int l = 0; l < c->n_layer; l++) {
        const gpt2_layer_weights *L = &m->w.layers[l];
        gpt2_block_lora none = {0};
        const gpt2_block_lora *bl = m->has_lora ? &m->blocks[l] : &none;
        char p[128], n[160];
#define BASE(sfx, ptr, d0, d1) (snprintf(n, sizeof n, "transformer.h.%d.%s", l, sfx), register_base(m, n, ptr, d0, d1, err))
#define LIN(sfx, lin, mer, w, b, cin, cout) (snprintf(p, sizeof p, "transformer.h.%d.%s", l, sfx), register_linear(m, p, lin, mer, w, b, cin, cout, err))
        if ((rc = BASE("ln_1.weight", L->ln1_w, C, 0)) || (rc = BASE("ln_1.bias", L->ln1_b, C, 0)) ||
            (rc = LIN("attn.c_attn", bl->c_attn, bl->qkv, L->attn_w, L->attn_b, C, 3 * C)) ||
            (rc = LIN("attn.c_proj", bl->attn_proj, NULL, L->proj_w, L->proj_b, C, C)) ||
            (rc = BASE("ln_2.weight", L->ln2_w, C, 0)) || (rc = BASE("ln_2.bias", L->ln2_b, C, 0)) ||
            (rc = LIN("mlp.c_fc", bl->mlp_fc, NULL, L->fc_w, L->fc_b, C, I)) ||
            (rc = LIN("mlp.c_proj", bl->mlp_proj, NULL, L->fcproj_w, L->fcproj_b, I, C)))
            return rc;
#undef BASE
#undef LIN
    }
    if ((rc = register_base(m, "transformer.ln_f.weight", m->w.lnf_w, C, 0, err))) return rc;
    if ((rc = register_base(m, "transformer.ln_f.bias", m->w.lnf_b, C, 0, err))) return rc;
    return m->w.lm_head ? register_base(m, "lm_head.weight", m->w.lm_head, c->vocab_size, C, err) : LORAC_OK;
}

int gpt2_model_load(const char *dir, gpt2_model *m, lorac_err *err) {
    memset(m, 0, sizeof *m);
    lora_registry_init(&m->reg);
    int rc = gpt2_config_load(dir, &m->cfg, err);
    if (!rc) rc = gpt2_weights_load(dir, &m->cfg, &m->w, err);
    if (!rc) rc = gpt2_register_all(m, err);
    if (rc) gpt2_model_free(m);
    return rc;
}

int gpt2_model_random(const gpt2_config *cfg, uint64_t seed, gpt2_model *m, lorac_err *err) {
    memset(m, 0, sizeof *m);
    lora_registry_init(&m->reg);
    m->cfg = *cfg;
    int rc = gpt2_weights_random(cfg, seed, &m->w, err);
    if (!rc) rc = gpt2_register_all(m, err);
    if (rc) gpt2_model_free(m);
    return rc;
}

void gpt2_lora_free_layers(const gpt2_config *c, gpt2_block_lora *blocks, lora_embedding *wte) {
    if (wte) {
        lora_embedding_free(wte);
        free(wte);
    }
    if (!blocks) return;
    for (int l = 0; l < c->n_layer; l++) {
        gpt2_block_lora *b = &blocks[l];
        if (b->qkv) lora_merged_free(b->qkv);
        lora_linear *ls[4] = {b->c_attn, b->attn_proj, b->mlp_fc, b->mlp_proj};
        for (int i = 0; i < 4; i++)
            if (ls[i]) lora_linear_free(ls[i]);
        free(b->qkv);
        for (int i = 0; i < 4; i++) free(ls[i]);
    }
    free(blocks);
}

static void free_blocks(gpt2_model *m) {
    gpt2_lora_free_layers(&m->cfg, m->blocks, m->wte_lora);
    m->blocks = NULL;
    m->wte_lora = NULL;
    m->has_lora = 0;
}

void gpt2_model_free(gpt2_model *m) {
    free_blocks(m);
    peft_adapter_free(m->peft_extra);
    lora_registry_free(&m->reg);
    gpt2_weights_free(&m->w);
    memset(m, 0, sizeof *m);
}

static int new_linear(lora_linear **out, int C, int OC, const lora_config *lc, const float *w, const float *b,
                      lorac_rng *rng, lorac_err *err) {
    *out = calloc(1, sizeof **out);
    if (!*out) return lorac_fail(err, LORAC_ENOMEM, "gpt2: out of memory for LoRA layers");
    int rc = lora_linear_init(*out, C, OC, lc, (float *)w, (float *)b, rng, err);
    if (rc) {
        free(*out);
        *out = NULL;
    }
    return rc;
}

/* Puts a LoRA layer with config lc on one linear map of block l: a MergedLinear over the slices
 * in qkv when site is c_attn and qkv is given, else a LoRA Linear. */
int gpt2_lora_attach(gpt2_model *m, int l, int site, const lora_config *lc, const int *qkv, lorac_rng *rng,
                     lorac_err *err) {
    const gpt2_config *c = &m->cfg;
    int C = c->n_embd, I = c->n_inner;
    if (!m->blocks) {
        m->blocks = calloc((size_t)c->n_layer, sizeof *m->blocks);
        if (!m->blocks) return lorac_fail(err, LORAC_ENOMEM, "gpt2: out of memory for LoRA layers");
        m->has_lora = 1;
    }
    const gpt2_layer_weights *W = &m->w.layers[l];
    gpt2_block_lora *b = &m->blocks[l];
    switch (site) {
    case GPT2_SITE_C_ATTN:
        if (!qkv) return new_linear(&b->c_attn, C, 3 * C, lc, W->attn_w, W->attn_b, rng, err);
        b->qkv = calloc(1, sizeof *b->qkv);
        if (!b->qkv) return lorac_fail(err, LORAC_ENOMEM, "gpt2: out of memory for LoRA layers");
        int rc = lora_merged_init(b->qkv, C, 3 * C, qkv, 3, lc, (float *)W->attn_w, (float *)W->attn_b, rng, err);
        if (rc) {
            free(b->qkv);
            b->qkv = NULL;
        }
        return rc;
    case GPT2_SITE_ATTN_PROJ: return new_linear(&b->attn_proj, C, C, lc, W->proj_w, W->proj_b, rng, err);
    case GPT2_SITE_MLP_FC: return new_linear(&b->mlp_fc, C, I, lc, W->fc_w, W->fc_b, rng, err);
    default: return new_linear(&b->mlp_proj, I, C, lc, W->fcproj_w, W->fcproj_b, rng, err);
    }
}

/* A LoRA Embedding on wte (loralib's: A (r,V) zero, B (C,r) normal; no dropout, no fan_in_fan_out). */
int gpt2_lora_attach_wte(gpt2_model *m, const lora_config *lc, lorac_rng *rng, lorac_err *err) {
    const gpt2_config *c = &m->cfg;
    if (!m->blocks) {
        m->blocks = calloc((size_t)c->n_layer, sizeof *m->blocks);
        if (!m->blocks) return lorac_fail(err, LORAC_ENOMEM, "gpt2: out of memory for LoRA layers");
        m->has_lora = 1;
    }
    lora_config ec = *lc;
    ec.lora_dropout = 0.0f;
    ec.fan_in_fan_out = 0;
    m->wte_lora = calloc(1, sizeof *m->wte_lora);
    if (!m->wte_lora) return lorac_fail(err, LORAC_ENOMEM, "gpt2: out of memory for LoRA layers");
    int rc = lora_embedding_init(m->wte_lora, c->vocab_size, c->n_embd, -1, &ec, (float *)m->w.wte, rng, err);
    if (rc) {
        free(m->wte_lora);
        m->wte_lora = NULL;
    }
    return rc;
}

/* Registers the attached layers, marks only LoRA trainable; on failure drops every LoRA layer. */
/* A process-wide counter, so that no two LoRA layouts (even of models reusing an address) share an id. */
static atomic_int gpt2_next_lora_gen = 1;

int gpt2_lora_finish(gpt2_model *m, int rc, lorac_err *err) {
    m->lora_gen = atomic_fetch_add(&gpt2_next_lora_gen, 1);
    if (!rc) rc = gpt2_register_all(m, err);
    if (!rc) lora_mark_only_lora_as_trainable(&m->reg, LORA_BIAS_NONE);
    if (rc) {
        free_blocks(m);
        gpt2_register_all(m, NULL);
    }
    return rc;
}

int gpt2_lora_swap(gpt2_model *m, gpt2_block_lora **blocks, lora_embedding **wte, lorac_err *err) {
    gpt2_block_lora *b = m->blocks;
    lora_embedding *e = m->wte_lora;
    m->blocks = *blocks;
    m->wte_lora = *wte;
    m->has_lora = m->blocks != NULL || m->wte_lora != NULL;
    if (m->wte_lora && !m->blocks) { /* the forward reads blocks whenever has_lora: give it empty ones */
        lorac_fail(err, LORAC_EINVAL, "gpt2: a LoRA layout with wte but no blocks");
        m->blocks = b, m->wte_lora = e, m->has_lora = b || e;
        return LORAC_EINVAL;
    }
    *blocks = b;
    *wte = e;
    m->lora_gen = atomic_fetch_add(&gpt2_next_lora_gen, 1);
    int rc = gpt2_register_all(m, err);
    if (!rc) lora_mark_only_lora_as_trainable(&m->reg, LORA_BIAS_NONE);
    return rc;
}

int gpt2_model_add_lora(gpt2_model *m, const gpt2_lora_opts *o, uint64_t seed, lorac_err *err) {
    if (m->has_lora) return lorac_fail(err, LORAC_EINVAL, "gpt2: the model already has LoRA layers");
    if (o->r < 1) return lorac_fail(err, LORAC_EINVAL, "--rank must be >= 1");
    if (!(o->dropout >= 0.0f && o->dropout < 1.0f)) return lorac_fail(err, LORAC_EINVAL, "--lora-dropout must be in [0, 1)");
    lora_config lc = lora_config_default(o->r, o->alpha);
    lc.lora_dropout = o->dropout;
    lc.fan_in_fan_out = 1; /* GPT-2's Conv1D stores (in, out) */
    lc.use_rslora = o->use_rslora;
    lc.init = o->gaussian_init ? LORA_INIT_GAUSSIAN : LORA_INIT_KAIMING;
    lorac_rng rng;
    lorac_rng_seed(&rng, seed);
    int rc = LORAC_OK, split = o->qkv[0] || o->qkv[1] || o->qkv[2];
    for (int l = 0; l < m->cfg.n_layer && !rc; l++) {
        if (o->c_attn_full || split) rc = gpt2_lora_attach(m, l, GPT2_SITE_C_ATTN, &lc, o->c_attn_full ? NULL : o->qkv, &rng, err);
        if (!rc && o->attn_proj) rc = gpt2_lora_attach(m, l, GPT2_SITE_ATTN_PROJ, &lc, NULL, &rng, err);
        if (!rc && o->mlp_fc) rc = gpt2_lora_attach(m, l, GPT2_SITE_MLP_FC, &lc, NULL, &rng, err);
        if (!rc && o->mlp_proj) rc = gpt2_lora_attach(m, l, GPT2_SITE_MLP_PROJ, &lc, NULL, &rng, err);
    }
    if (!rc && o->wte) rc = gpt2_lora_attach_wte(m, &lc, &rng, err);
    if (!rc) {
        m->has_lora = 1;
        m->lora = *o;
    }
    return gpt2_lora_finish(m, rc, err);
}

int gpt2_model_train_mode(gpt2_model *m, int mode, lorac_err *err) {
    if (!m->has_lora) return LORAC_OK;
    if (m->wte_lora) {
        int rc = lora_embedding_train(m->wte_lora, mode, err);
        if (rc) return rc;
    }
    for (int l = 0; l < m->cfg.n_layer; l++) {
        gpt2_block_lora *b = &m->blocks[l];
        int rc = LORAC_OK;
        if (b->qkv) rc = lora_merged_train(b->qkv, mode, err);
        lora_linear *ls[4] = {b->c_attn, b->attn_proj, b->mlp_fc, b->mlp_proj};
        for (int i = 0; i < 4 && !rc; i++)
            if (ls[i]) rc = lora_linear_train(ls[i], mode, err);
        if (rc) return rc;
    }
    return LORAC_OK;
}

void gpt2_model_zero_grad(gpt2_model *m) {
    if (!m->has_lora) return;
    if (m->wte_lora) lora_embedding_zero_grad(m->wte_lora);
    for (int l = 0; l < m->cfg.n_layer; l++) {
        gpt2_block_lora *b = &m->blocks[l];
        if (b->qkv) lora_merged_zero_grad(b->qkv);
        lora_linear *ls[4] = {b->c_attn, b->attn_proj, b->mlp_fc, b->mlp_proj};
        for (int i = 0; i < 4; i++)
            if (ls[i]) lora_linear_zero_grad(ls[i]);
    }
}

const char *gpt2_site_name(int site) {
    static const char *names[GPT2_N_SITES] = {"attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj"};
    return site >= 0 && site < GPT2_N_SITES ? names[site] : "?";
}

/* W0 + s·BA of one LoRA layer into a new buffer (the layer's own merge, copied out and undone). */
static int merged_copy(lora_linear *L, lora_merged *M, size_t numel, float **out, lorac_err *err) {
    int was_training = L ? L->training : M->training, rc;
    rc = L ? lora_linear_train(L, 0, err) : lora_merged_train(M, 0, err);
    if (rc) return rc;
    const float *src = L ? (L->merged_w ? L->merged_w : L->weight) : (M->merged_w ? M->merged_w : M->weight);
    *out = malloc(numel * sizeof(float));
    if (*out) memcpy(*out, src, numel * sizeof(float));
    if (was_training) rc = L ? lora_linear_train(L, 1, err) : lora_merged_train(M, 1, err);
    if (!*out) return lorac_fail(err, LORAC_ENOMEM, "gpt2: out of memory merging");
    return rc;
}


int gpt2_weights_merged(gpt2_model *m, gpt2_config *out_cfg, gpt2_weights *out, lorac_err *err) {
    *out_cfg = m->cfg;
    if (m->wte_lora) out_cfg->tie_word_embeddings = 0; /* the lookup changes, the head keeps W0 */
    const gpt2_config *c = out_cfg;
    int L = c->n_layer, C = c->n_embd, I = c->n_inner, rc = LORAC_OK;
    int rc2 = gpt2_weights_random(c, 0, out, err); /* allocates a full owned arena with the right layout */
    if (rc2) return rc2;
    /* copy every base tensor, then overwrite the merged ones */
    memcpy((float *)out->wte, m->w.wte, (size_t)c->vocab_size * C * sizeof(float));
    memcpy((float *)out->wpe, m->w.wpe, (size_t)c->n_positions * C * sizeof(float));
    memcpy((float *)out->lnf_w, m->w.lnf_w, C * sizeof(float));
    memcpy((float *)out->lnf_b, m->w.lnf_b, C * sizeof(float));
    if (out->lm_head)
        memcpy((float *)out->lm_head, m->w.lm_head ? m->w.lm_head : m->w.wte, (size_t)c->vocab_size * C * sizeof(float));
    if (m->wte_lora) {
        lora_embedding *E = m->wte_lora;
        int was = E->training;
        rc = lora_embedding_train(E, 0, err);
        if (!rc) memcpy((float *)out->wte, E->merged_w ? E->merged_w : E->weight, (size_t)c->vocab_size * C * sizeof(float));
        if (!rc && was) rc = lora_embedding_train(E, 1, err);
    }
    for (int l = 0; l < L && !rc; l++) {
        const gpt2_layer_weights *s = &m->w.layers[l];
        gpt2_layer_weights *d = &out->layers[l];
#define CP(f, n) memcpy((float *)d->f, s->f, (size_t)(n) * sizeof(float))
        CP(ln1_w, C); CP(ln1_b, C); CP(attn_w, (size_t)C * 3 * C); CP(attn_b, 3 * C); CP(proj_w, (size_t)C * C);
        CP(proj_b, C); CP(ln2_w, C); CP(ln2_b, C); CP(fc_w, (size_t)C * I); CP(fc_b, I); CP(fcproj_w, (size_t)I * C);
        CP(fcproj_b, C);
#undef CP
        if (!m->has_lora) continue;
        gpt2_block_lora *b = &m->blocks[l];
        lora_linear *ls[4] = {b->c_attn, b->attn_proj, b->mlp_fc, b->mlp_proj};
        const float *dst[4] = {d->attn_w, d->proj_w, d->fc_w, d->fcproj_w};
        size_t numel[4] = {(size_t)C * 3 * C, (size_t)C * C, (size_t)C * I, (size_t)I * C};
        for (int site = 0; site < 4 && !rc; site++) {
            lora_merged *M = site == 0 ? b->qkv : NULL;
            if (!ls[site] && !M) continue;
            float *buf = NULL;
            rc = merged_copy(ls[site], M, numel[site], &buf, err);
            if (buf) memcpy((float *)dst[site], buf, numel[site] * sizeof(float));
            free(buf);
        }
    }
    if (rc) gpt2_weights_free(out);
    return rc;
}
