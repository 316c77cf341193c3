/* LoRA on the model: which maps (--targets, as PEFT matches module names, plus the family's aliases),
 * attaching fresh or given layers, and the LoRA layout that adapter sets swap. */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "models/model_internal.h"

void model_site_module(const model *m, int layer, int site, char *buf, size_t size) {
    const arch_family *f = m->fam;
    char blk[64] = "";
    if (layer < 0) {
        snprintf(buf, size, "%s%s", f->prefix, f->embed);
        return;
    }
    snprintf(blk, sizeof blk, f->layer, layer);
    snprintf(buf, size, "%s%s%s", f->prefix, blk, f->site[site]);
}

const site_lora *model_site_lora(const model *m, int layer, int site) {
    if (!m->lora) return NULL;
    const site_lora *lo = &m->lora[(size_t)layer * ARCH_N_SITES + site];
    return lo->lin || lo->split ? lo : NULL;
}

/* ---------------------------------------------------------------- targets */

typedef struct lora_plan {
    int site[ARCH_N_SITES];
    int slices[3]; /* q, k, v of a fused map */
    int embed;
} lora_plan;

static int plan_item(const model *m, const char *t, lora_plan *p) {
    const arch_family *f = m->fam;
    char emb[192];
    int hit = 0;
    model_site_module(m, -1, 0, emb, sizeof emb);
    for (int s = 0; s < ARCH_N_SITES; s++)
        if (f->site[s] && (!strcmp(t, "all-linear") || peft_module_matches(f->site[s], t))) p->site[s] = hit = 1;
    for (int i = 0; i < 3 && f->site[ARCH_QKV]; i++)
        if (f->slice_names[i] && !strcmp(t, f->slice_names[i])) p->slices[i] = hit = 1;
    if ((f->embed_alias && !strcmp(t, f->embed_alias)) || peft_module_matches(emb, t)) p->embed = hit = 1;
    return hit;
}

static int plan_targets(const model *m, const char *spec, lora_plan *p, lorac_err *err) {
    memset(p, 0, sizeof *p);
    const char *q = spec;
    int any = 0;
    while (*q) {
        size_t n = strcspn(q, ",");
        char t[96];
        if (n == 0 || n >= sizeof t) return lorac_fail(err, LORAC_EINVAL, "targets: bad list \"%s\"", spec);
        memcpy(t, q, n);
        t[n] = 0;
        if (!plan_item(m, t, p))
            return lorac_fail(err, LORAC_EINVAL, "targets: unknown module \"%s\" for %s (%s)", t, m->fam->name,
                              m->fam->targets_help);
        any = 1;
        q += n + (q[n] == ',');
    }
    if (!any) return lorac_fail(err, LORAC_EINVAL, "targets: empty list");
    if (p->site[ARCH_QKV] && (p->slices[0] || p->slices[1] || p->slices[2]))
        return lorac_fail(err, LORAC_EINVAL, "targets: %s already covers %s, %s and %s; give one or the other",
                          m->fam->site[ARCH_QKV], m->fam->slice_names[0], m->fam->slice_names[1], m->fam->slice_names[2]);
    return LORAC_OK;
}

void model_lora_opts_init(model_lora_opts *o) {
    memset(o, 0, sizeof *o);
    o->dropout = -1.0f;
}

void model_lora_opts_resolve(const model *m, model_lora_opts *o) {
    if (o->r <= 0) o->r = m->fam->lora_r;
    if (o->alpha <= 0) o->alpha = m->fam->lora_alpha;
    if (o->dropout < 0) o->dropout = m->fam->lora_dropout;
    if (!o->targets[0]) snprintf(o->targets, sizeof o->targets, "%s", m->fam->lora_targets);
}

int model_lora_check(const model *m, const model_lora_opts *opts, lorac_err *err) {
    model_lora_opts o = *opts;
    if (o.r < 0) return lorac_fail(err, LORAC_EINVAL, "lora r %d must be >= 1", o.r);
    model_lora_opts_resolve(m, &o);
    if (!(o.dropout >= 0.0f && o.dropout < 1.0f)) return lorac_fail(err, LORAC_EINVAL, "lora dropout %g is outside [0, 1)", (double)o.dropout);
    if (!(o.alpha > 0.0f)) return lorac_fail(err, LORAC_EINVAL, "lora alpha %g must be > 0", (double)o.alpha);
    lora_plan p;
    int rc = plan_targets(m, o.targets, &p, err);
    if (!rc && p.embed && m->embed.type != QUANT_F32)
        return lorac_fail(err, LORAC_EUNSUPPORTED, "%s: LoRA on a quantized embedding is not supported", m->path);
    return rc;
}

/* ---------------------------------------------------------------- layers */

static atomic_int next_lora_gen = 1;

int model_lora_attach(model *m, int l, int s, const lora_config *lc0, const int *slices, lorac_rng *rng, lorac_err *err) {
    if (!m->lora && !(m->lora = calloc((size_t)m->cfg.n_layer * ARCH_N_SITES, sizeof *m->lora)))
        return lorac_fail(err, LORAC_ENOMEM, "%s: out of memory for LoRA layers", m->path);
    const model_linear *L = &m->layers[l].site[s];
    site_lora *lo = &m->lora[(size_t)l * ARCH_N_SITES + s];
    lora_config lc = *lc0;
    lc.fan_in_fan_out = L->layout == OP_W_IN_OUT;
    /* an f32 base is the layer's own (merged for inference); a quantized one is computed by the
     * frozen product, bias included, and the layer adds its delta */
    int f32 = L->w.type == QUANT_F32;
    float *w = f32 ? (float *)L->w.data : NULL, *b = f32 ? (float *)L->b : NULL;
    int rc;
    if (slices) {
        if (!f32) return lorac_fail(err, LORAC_EUNSUPPORTED, "%s: q/k/v slices of a quantized map", m->path);
        if (!(lo->split = calloc(1, sizeof *lo->split))) return lorac_fail(err, LORAC_ENOMEM, "out of memory");
        if ((rc = lora_merged_init(lo->split, L->C, L->OC, slices, 3, &lc, w, b, rng, err))) free(lo->split), lo->split = NULL;
        return rc;
    }
    if (!(lo->lin = calloc(1, sizeof *lo->lin))) return lorac_fail(err, LORAC_ENOMEM, "out of memory");
    if ((rc = lora_linear_init(lo->lin, L->C, L->OC, &lc, w, b, rng, err))) free(lo->lin), lo->lin = NULL;
    return rc;
}

/* A LoRA Embedding on the token lookup (loralib's: A (r,V) zero, B (C,r) normal; no dropout). The
 * tied LM head keeps W0, as PEFT's. */
int model_lora_attach_embed(model *m, const lora_config *lc, lorac_rng *rng, lorac_err *err) {
    if (m->embed.type != QUANT_F32)
        return lorac_fail(err, LORAC_EUNSUPPORTED, "%s: LoRA on a quantized embedding is not supported", m->path);
    lora_config ec = *lc;
    ec.lora_dropout = 0.0f;
    ec.fan_in_fan_out = 0;
    if (!(m->embed_lora = calloc(1, sizeof *m->embed_lora))) return lorac_fail(err, LORAC_ENOMEM, "out of memory");
    int pad = m->cfg.pad_token_id < m->cfg.vocab_size ? m->cfg.pad_token_id : -1; /* nn.Embedding(padding_idx): no gradient */
    int rc = lora_embedding_init(m->embed_lora, m->cfg.vocab_size, m->cfg.n_embd, pad, &ec, (float *)m->embed.data, rng, err);
    if (rc) free(m->embed_lora), m->embed_lora = NULL;
    return rc;
}

void model_lora_free_layout(const model *m, site_lora *sites, lora_embedding *embed) {
    if (embed) lora_embedding_free(embed), free(embed);
    for (size_t k = 0; sites && k < (size_t)m->cfg.n_layer * ARCH_N_SITES; k++) {
        if (sites[k].lin) lora_linear_free(sites[k].lin), free(sites[k].lin);
        if (sites[k].split) lora_merged_free(sites[k].split), free(sites[k].split);
    }
    free(sites);
}

void model_free_lora(model *m) {
    model_lora_free_layout(m, m->lora, m->embed_lora);
    m->lora = NULL;
    m->embed_lora = NULL;
    m->has_lora = 0;
}

int model_remove_lora(model *m, lorac_err *err) {
    if (m->peft_extra) return lorac_fail(err, LORAC_EUNSUPPORTED, "%s: the adapter replaced base tensors; reload the model", m->path);
    model_free_lora(m);
    return model_lora_finish(m, LORAC_OK, err);
}

int model_lora_finish(model *m, int rc, lorac_err *err) {
    m->lora_gen = atomic_fetch_add(&next_lora_gen, 1);
    m->has_lora = m->lora != NULL || m->embed_lora != NULL;
    if (!rc) rc = model_register_all(m, err);
    if (rc) {
        model_free_lora(m);
        model_register_all(m, NULL);
    }
    return rc;
}

void model_lora_swap(model *m, site_lora **sites, lora_embedding **embed) {
    site_lora *s = m->lora;
    lora_embedding *e = m->embed_lora;
    m->lora = *sites;
    m->embed_lora = *embed;
    *sites = s;
    *embed = e;
    m->lora_gen = atomic_fetch_add(&next_lora_gen, 1);
    m->has_lora = m->lora != NULL || m->embed_lora != NULL;
    m->reg_stale = 1; /* a switch stays a pointer swap; model_registry rebuilds when asked */
}

int model_add_lora(model *m, const model_lora_opts *opts, uint64_t seed, lorac_err *err) {
    if (m->has_lora || m->peft_extra) return lorac_fail(err, LORAC_EINVAL, "%s: the model already has LoRA layers", m->path);
    if (m->full_ft) return lorac_fail(err, LORAC_EINVAL, "%s: full fine-tuning and LoRA exclude each other", m->path);
    int rc = model_lora_check(m, opts, err);
    if (rc) return rc;
    model_lora_opts o = *opts;
    model_lora_opts_resolve(m, &o);
    lora_plan p;
    plan_targets(m, o.targets, &p, NULL);
    lora_config lc = lora_config_default(o.r, o.alpha);
    lc.lora_dropout = o.dropout;
    lc.use_rslora = o.use_rslora;
    lc.init = o.gaussian_init ? LORA_INIT_GAUSSIAN : LORA_INIT_KAIMING;
    lorac_rng rng;
    lorac_rng_seed(&rng, seed);
    int split = p.slices[0] || p.slices[1] || p.slices[2];
    for (int l = 0; l < m->cfg.n_layer && !rc; l++)
        for (int s = 0; s < ARCH_N_SITES && !rc; s++) {
            if (s == ARCH_QKV && split) rc = model_lora_attach(m, l, s, &lc, p.slices, &rng, err);
            else if (p.site[s]) rc = model_lora_attach(m, l, s, &lc, NULL, &rng, err);
        }
    if (!rc && p.embed) rc = model_lora_attach_embed(m, &lc, &rng, err);
    if (!rc) m->lora_opts = o;
    return model_lora_finish(m, rc, err);
}
