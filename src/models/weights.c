/* Filling the tensor table: from a Hugging Face checkpoint (single or sharded safetensors; F32
 * mapped, F16/BF16 converted), at random, and back out as a Hugging Face directory. */
#include <cblas.h>
#include <stdlib.h>
#include <string.h>

#include "lorac/safetensors.h"
#include "models/model_internal.h"

/* The checkpoint tensor for a table name: as is, or without the family prefix (a bare model). */
static const st_tensor *find(const model *m, const char *name, const st_file **f) {
    const st_tensor *t = hf_shards_find(&m->store.sh, name, f);
    size_t pl = strlen(m->fam->prefix);
    if (!t && !strncmp(name, m->fam->prefix, pl)) t = hf_shards_find(&m->store.sh, name + pl, f);
    return t;
}

static void shape_str(char *buf, size_t size, int ndim, const int64_t *shape) {
    if (ndim == 2) snprintf(buf, size, "%lld, %lld", (long long)shape[0], (long long)shape[1]);
    else if (ndim == 1) snprintf(buf, size, "%lld", (long long)shape[0]);
    else snprintf(buf, size, "%d dims", ndim);
}

/* Checks a found tensor against its table entry: shape and dtype. */
static int check(const model_tensor *t, const st_tensor *s, const st_file *f, lorac_err *err) {
    if (s->ndim != t->ndim || s->shape[0] != t->shape[0] || (t->ndim == 2 && s->shape[1] != t->shape[1])) {
        char got[64], want[64];
        shape_str(got, sizeof got, s->ndim, s->shape);
        shape_str(want, sizeof want, t->ndim, t->shape);
        return lorac_fail(err, LORAC_ESHAPE, "%s: tensor '%s' has shape [%s] but config.json implies [%s]", f->path,
                          s->name, got, want);
    }
    if (s->dtype != ST_F32 && s->dtype != ST_F16 && s->dtype != ST_BF16)
        return lorac_fail(err, LORAC_EUNSUPPORTED, "%s: tensor '%s' has dtype %s (F32, F16 or BF16 expected)", f->path,
                          s->name, st_dtype_name(s->dtype));
    return LORAC_OK;
}

/* The classification head's size: the option, else the checkpoint's classifier, else config.json's. */
static int head_labels(model *m, const char *dir, const model_load_opts *o, lorac_err *err) {
    if (m->cfg.head == MODEL_HEAD_LM) return LORAC_OK;
    char name[160];
    const char *out = m->fam->cls[1];
    snprintf(name, sizeof name, "%s%s.weight", out[0] == '^' ? "" : m->fam->prefix, out + (out[0] == '^'));
    const st_file *f = NULL;
    const st_tensor *ct = find(m, name, &f);
    int nl = o && o->num_labels > 0 ? o->num_labels : ct ? (int)ct->shape[0] : m->cfg.num_labels;
    if (ct && (ct->ndim != 2 || ct->shape[0] != nl))
        return lorac_fail(err, LORAC_ESHAPE, "%s: %s has %lld labels but %d were asked for", f->path, name,
                          (long long)ct->shape[0], nl);
    if (nl < 1 || nl > (1 << 16)) return lorac_fail(err, LORAC_EINVAL, "%s: %d labels is out of range", dir, nl);
    m->cfg.num_labels = nl;
    return LORAC_OK;
}

/* HF's _init_weights for a head the checkpoint lacks: weights normal(0, initializer_range), bias 0. */
static void init_head(model *m, const model_tensor *t, float *w, lorac_rng *rng) {
    size_t n = (size_t)t->shape[0] * (size_t)(t->ndim == 2 ? t->shape[1] : 1);
    for (size_t j = 0; j < n; j++) w[j] = t->ndim == 2 ? m->cfg.initializer_range * lorac_rng_normal(rng) : 0.0f;
}

int model_weights_load_hf(model *m, const char *dir, const model_load_opts *o, lorac_err *err) {
    model_tensor *t = NULL;
    size_t n = 0;
    int rc = hf_shards_open(dir, &m->store.sh, err);
    if (!rc) rc = head_labels(m, dir, o, err);
    if (!rc) rc = model_shape(m, err);
    if (!rc) rc = model_tensors(m, &t, &n, err);
    const char *where = m->store.sh.n == 1 ? m->store.sh.files[0].path : dir;
    lorac_rng rng;
    lorac_rng_seed(&rng, (o ? o->seed : 0) ^ 0x68656164ULL); /* "head" */
    for (size_t i = 0; i < n && !rc; i++) {
        const st_file *f = NULL;
        const st_tensor *s = find(m, t[i].name, &f);
        size_t numel = (size_t)t[i].shape[0] * (size_t)(t[i].ndim == 2 ? t[i].shape[1] : 1);
        if (!s && !t[i].head) {
            rc = lorac_fail(err, LORAC_ENOTFOUND, "%s: missing tensor '%s'", where, t[i].name);
            break;
        }
        if (s && (rc = check(&t[i], s, f, err))) break;
        /* F32 is mapped; F16/BF16 are converted, and a head is copied (it trains) */
        const float *view = s && !t[i].head ? st_f32_view(s) : NULL;
        if (view) {
            model_tensor_set(&t[i], view);
            continue;
        }
        float *dst = model_store_alloc(m, numel * sizeof(float));
        if (!dst) rc = lorac_fail(err, LORAC_ENOMEM, "%s: out of memory converting '%s' to f32", dir, t[i].name);
        else if (s) rc = st_read_f32(f, s, dst, err);
        else init_head(m, &t[i], dst, &rng);
        if (dst) model_tensor_set(&t[i], dst);
    }
    free(t);
    return rc;
}

int model_weights_random(model *m, uint64_t seed, lorac_err *err) {
    model_tensor *t = NULL;
    size_t n = 0, total = 0;
    int rc = model_shape(m, err);
    if (!rc) rc = model_tensors(m, &t, &n, err);
    for (size_t i = 0; i < n; i++) total += (size_t)t[i].shape[0] * (size_t)(t[i].ndim == 2 ? t[i].shape[1] : 1);
    float *arena = rc ? NULL : model_store_alloc(m, total * sizeof(float));
    if (!rc && !arena) rc = lorac_fail(err, LORAC_ENOMEM, "%s: out of memory for %zu random parameters", m->path, total);
    lorac_rng rng;
    lorac_rng_seed(&rng, seed);
    for (size_t i = 0, off = 0; i < n && !rc; i++) {
        size_t k = (size_t)t[i].shape[0] * (size_t)(t[i].ndim == 2 ? t[i].shape[1] : 1);
        float *p = arena + off;
        for (size_t j = 0; j < k; j++)
            p[j] = t[i].norm ? 1.0f : t[i].ndim == 2 ? m->cfg.initializer_range * lorac_rng_normal(&rng) : 0.0f;
        model_tensor_set(&t[i], p);
        off += k;
    }
    free(t);
    return rc;
}

/* ---------------------------------------------------------------- saving */

/* w (V,D) += s·Aᵀ·Bᵀ: the embedding LoRA's delta on every row (loralib's merge of Embedding). */
static void embed_delta(const lora_embedding *E, float *w) {
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasTrans, E->V, E->D, E->cfg.r, E->scaling, E->lora_A, E->V, E->lora_B,
                E->cfg.r, 1.0f, w, E->D);
}

/* The LoRA layer merging changes this matrix by: a site's, or (1) the embedding's; NULL/0 if none. */
static const site_lora *merged_lora(const model *m, const model_tensor *t, int *embed) {
    *embed = t->q == &m->embed && m->embed_lora;
    return t->lin && t->site >= 0 ? model_site_lora(m, t->layer, t->site) : NULL;
}

int model_tensor_matrix_f32(const model *m, const model_tensor *t, int merge, float *out, lorac_err *err) {
    int embed = 0;
    const site_lora *lo = merge ? merged_lora(m, t, &embed) : NULL;
    int rc = LORAC_OK;
    if (t->lin) rc = linear_weight_f32(t->lin, lo, out, err);
    else qmat_to_f32(t->q, out);
    if (merge && embed) embed_delta(m->embed_lora, out);
    return rc;
}

/* One tensor as f32 for a checkpoint: as it is, dequantized, or merged with its LoRA layer. */
static int tensor_out(model *m, const model_tensor *t, int merge, float **owned, const float **data, lorac_err *err) {
    int embed = 0;
    *owned = NULL;
    *data = model_tensor_f32(t);
    if (*data && !(merge && (merged_lora(m, t, &embed) || embed))) return LORAC_OK;
    float *buf = malloc((size_t)t->shape[0] * (size_t)t->shape[1] * sizeof(float));
    if (!buf) return lorac_fail(err, LORAC_ENOMEM, "%s: out of memory", t->name);
    *owned = buf;
    *data = buf;
    return model_tensor_matrix_f32(m, t, merge, buf, err);
}

int model_weights_save_files(model *m, const char *dir, int merge, lorac_err *err) {
    model_tensor *t = NULL;
    size_t n = 0;
    int rc = model_tensors(m, &t, &n, err);
    /* a merged embedding LoRA changes the lookup only: the head keeps W0, untied */
    int untie = !rc && merge && m->embed_lora && m->cfg.head == MODEL_HEAD_LM && m->cfg.tie_word_embeddings;
    st_entry *e = rc ? NULL : calloc(n + 1, sizeof *e);
    float **owned = rc ? NULL : calloc(n + 1, sizeof *owned);
    if (!rc && (!e || !owned)) rc = lorac_fail(err, LORAC_ENOMEM, "%s: out of memory", dir);
    size_t k = 0;
    for (size_t i = 0; i < n && !rc; i++, k++) {
        const float *data;
        rc = tensor_out(m, &t[i], merge, &owned[i], &data, err);
        e[k] = st_entry_f32(t[i].name, t[i].ndim, t[i].shape[0], t[i].shape[1], data);
    }
    model_tensor head = untie ? model_tied_head(m) : (model_tensor){0};
    float *head_owned = NULL;
    if (!rc && untie) { /* lm_head.weight = W0 of the embedding */
        const float *data;
        rc = head.name[0] ? tensor_out(m, &head, 0, &head_owned, &data, err) : lorac_fail(err, LORAC_ENOMEM, "out of memory");
        e[k++] = st_entry_f32(head.name, 2, head.shape[0], head.shape[1], data);
    }
    char path[4200];
    const char *mk[] = {"format"}, *mv[] = {"pt"};
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    if (!rc) rc = st_write(path, e, k, mk, mv, 1, err);
    model_config c = m->cfg;
    if (untie) c.tie_word_embeddings = 0;
    snprintf(path, sizeof path, "%s/config.json", dir);
    if (!rc) rc = model_config_save(&c, path, err);
    for (size_t i = 0; owned && i < n; i++) free(owned[i]);
    free(owned);
    free(head_owned);
    free(e);
    free(t);
    return rc;
}
