/* A PEFT LoRA adapter in memory, independent of any model: read (checked against its config),
 * built tensor by tensor, written atomically. Model families attach it (src/models/gpt2_peft.c, llama_peft.c). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lorac/peft.h"
#include "lorac/safetensors.h"

#define PEFT_NAME_PREFIX "base_model.model."

int peft_adapter_new(const peft_config *cfg, peft_adapter **out, lorac_err *err) {
    *out = NULL;
    peft_adapter *a = calloc(1, sizeof *a);
    if (!a) return lorac_fail(err, LORAC_ENOMEM, "peft: out of memory for an adapter");
    if (cfg) a->cfg = *cfg;
    else peft_config_init(&a->cfg);
    *out = a;
    return LORAC_OK;
}

void peft_adapter_free(peft_adapter *a) {
    if (!a) return;
    for (size_t i = 0; i < a->n; i++) free(a->t[i].data);
    free(a->t);
    free(a);
}

const peft_tensor *peft_adapter_find(const peft_adapter *a, const char *name) {
    for (size_t i = 0; i < a->n; i++)
        if (!strcmp(a->t[i].name, name)) return &a->t[i];
    return NULL;
}

const char *peft_adapter_meta(const peft_adapter *a, const char *key) {
    for (int i = 0; i < a->n_meta; i++)
        if (!strcmp(a->meta_key[i], key)) return a->meta_val[i];
    return NULL;
}

/* Takes ownership of data (d0·d1 floats) under name. */
static int adapter_push(peft_adapter *a, const char *name, int64_t d0, int64_t d1, float *data, lorac_err *err) {
    if (strlen(name) >= sizeof a->t[0].name)
        return lorac_fail(err, LORAC_EUNSUPPORTED, "peft: tensor name '%.60s...' is too long", name);
    if (peft_adapter_find(a, name)) return lorac_fail(err, LORAC_EFORMAT, "peft: duplicate tensor '%s'", name);
    if (a->n == a->cap) {
        size_t cap = a->cap ? 2 * a->cap : 16;
        peft_tensor *t = realloc(a->t, cap * sizeof *t);
        if (!t) return lorac_fail(err, LORAC_ENOMEM, "peft: out of memory for tensors");
        a->t = t;
        a->cap = cap;
    }
    peft_tensor *t = &a->t[a->n++];
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    t->ndim = d1 ? 2 : 1;
    t->shape[0] = d0;
    t->shape[1] = d1 ? d1 : 1;
    t->data = data;
    return LORAC_OK;
}

int peft_adapter_add(peft_adapter *a, const char *name, int64_t d0, int64_t d1, const float *data, lorac_err *err) {
    size_t n;
    if (d0 < 1 || d1 < 0 || lorac_size_mul((size_t)d0, (size_t)(d1 ? d1 : 1), &n) || n > ((size_t)1 << 40))
        return lorac_fail(err, LORAC_EINVAL, "peft: tensor '%s' has a bad shape", name);
    float *copy = malloc(n * sizeof(float));
    if (!copy) return lorac_fail(err, LORAC_ENOMEM, "peft: out of memory for tensor '%s'", name);
    if (data) memcpy(copy, data, n * sizeof(float));
    else memset(copy, 0, n * sizeof(float));
    int rc = adapter_push(a, name, d0, d1, copy, err);
    if (rc) free(copy);
    return rc;
}

/* Splits a PEFT tensor name into its module and kind: 'A', 'B' (lora_A/B.weight) or 'a', 'b'
 * (lora_embedding_A/B). Returns 0 when the name is not a LoRA tensor. */
static int lora_name_parse(const char *name, char *module, size_t size, char *kind) {
    static const struct { const char *sfx; char kind; } sfx[] = {
        {".lora_A.weight", 'A'}, {".lora_B.weight", 'B'}, {".lora_embedding_A", 'a'}, {".lora_embedding_B", 'b'}};
    size_t p = strlen(PEFT_NAME_PREFIX), n = strlen(name);
    if (strncmp(name, PEFT_NAME_PREFIX, p)) return 0;
    for (size_t i = 0; i < sizeof sfx / sizeof sfx[0]; i++) {
        size_t k = strlen(sfx[i].sfx);
        if (n > p + k && !strcmp(name + n - k, sfx[i].sfx) && n - k - p < size) {
            memcpy(module, name + p, n - k - p);
            module[n - k - p] = 0;
            *kind = sfx[i].kind;
            return 1;
        }
    }
    return 0;
}

int peft_adapter_modules(const peft_adapter *a, peft_module **mods, size_t *n_out, lorac_err *err) {
    *mods = NULL;
    *n_out = 0;
    peft_module *m = calloc(a->n + 1, sizeof *m);
    if (!m) return lorac_fail(err, LORAC_ENOMEM, "peft: out of memory");
    size_t n = 0;
    char src[4200];
    if (a->source[0]) snprintf(src, sizeof src, "%s/adapter_model.safetensors", a->source);
    else snprintf(src, sizeof src, "adapter");
    for (size_t i = 0; i < a->n; i++) {
        char module[224], kind;
        const peft_tensor *t = &a->t[i];
        if (!lora_name_parse(t->name, module, sizeof module, &kind)) {
            free(m);
            return lorac_fail(err, LORAC_EFORMAT, "%s: tensor '%s' is not a LoRA tensor (trained biases and modules_to_save "
                              "copies cannot be combined or weighted)", src, t->name);
        }
        size_t j = 0;
        while (j < n && strcmp(m[j].module, module)) j++;
        if (j == n) {
            snprintf(m[n].module, sizeof m[n].module, "%s", module);
            m[n].embedding = kind == 'a' || kind == 'b';
            m[n].scaling = peft_scaling_for(&a->cfg, module);
            n++;
        }
        int emb = kind == 'a' || kind == 'b';
        if (m[j].embedding != emb) {
            free(m);
            return lorac_fail(err, LORAC_EFORMAT, "%s: module '%s' mixes lora_A/B and lora_embedding_A/B tensors", src, module);
        }
        if (kind == 'A' || kind == 'a') m[j].A = t;
        else m[j].B = t;
    }
    for (size_t j = 0; j < n; j++) {
        const peft_module *x = &m[j];
        const char *miss = !x->A ? (x->embedding ? "lora_embedding_A" : "lora_A") : !x->B ? (x->embedding ? "lora_embedding_B" : "lora_B") : NULL;
        int bad = miss ? 0 : (x->A->ndim != 2 || x->B->ndim != 2 || x->A->shape[0] != x->B->shape[1]);
        if (miss || bad) {
            int rc = miss ? lorac_fail(err, LORAC_EFORMAT, "%s: module '%s' has no %s tensor", src, x->module, miss)
                          : lorac_fail(err, LORAC_ESHAPE, "%s: module '%s': lora_A [%lld, %lld] and lora_B [%lld, %lld] do not "
                                       "share a rank", src, x->module, (long long)x->A->shape[0], (long long)x->A->shape[1],
                                       (long long)x->B->shape[0], (long long)x->B->shape[1]);
            free(m);
            return rc;
        }
    }
    *mods = m;
    *n_out = n;
    return LORAC_OK;
}

/* The tensor set against the config, for the modules it targets: paired, 2-D, of the rank the
 * config gives the module. (Tensors of modules it does not target are reported when a model family
 * attaches the adapter, where "matches no module of this model" can be said.) */
static int check_against_config(const peft_adapter *a, const char *path, lorac_err *err) {
    size_t n_lora = 0;
    for (size_t i = 0; i < a->n; i++) {
        char module[224], kind, m2[224], k2;
        const peft_tensor *t = &a->t[i], *pair = NULL;
        if (!lora_name_parse(t->name, module, sizeof module, &kind)) continue;
        n_lora++;
        if (!peft_targets_module(&a->cfg, module)) continue;
        char want = kind == 'A' ? 'B' : kind == 'B' ? 'A' : kind == 'a' ? 'b' : 'a';
        for (size_t j = 0; j < a->n && !pair; j++)
            if (lora_name_parse(a->t[j].name, m2, sizeof m2, &k2) && k2 == want && !strcmp(m2, module)) pair = &a->t[j];
        if (!pair)
            return lorac_fail(err, LORAC_EFORMAT, "%s: '%s' has no %s partner", path, t->name,
                              want == 'A' || want == 'a' ? "lora_A" : "lora_B");
        const peft_tensor *A = kind == 'A' || kind == 'a' ? t : pair, *B = A == t ? pair : t;
        int r = peft_rank_for(&a->cfg, module);
        if (A->ndim != 2 || B->ndim != 2 || A->shape[0] != r || B->shape[1] != r)
            return lorac_fail(err, LORAC_ESHAPE, "%s: module '%s' has lora_A shape [%lld, %lld] and lora_B shape [%lld, %lld], "
                              "but adapter_config.json gives it rank %d", path, module, (long long)A->shape[0],
                              (long long)(A->ndim == 2 ? A->shape[1] : 0), (long long)B->shape[0],
                              (long long)(B->ndim == 2 ? B->shape[1] : 0), r);
    }
    if (n_lora == 0) return lorac_fail(err, LORAC_EFORMAT, "%s: holds no LoRA tensors", path);
    return LORAC_OK;
}

static int read_tensors(peft_adapter *a, const st_file *f, lorac_err *err) {
    for (size_t i = 0; i < f->n_tensors; i++) {
        const st_tensor *t = &f->tensors[i];
        if (t->dtype != ST_F32 && t->dtype != ST_F16 && t->dtype != ST_BF16)
            return lorac_fail(err, LORAC_EUNSUPPORTED, "%s: tensor '%s' is %s (F32, F16 or BF16 expected)", f->path, t->name,
                              st_dtype_name(t->dtype));
        if (t->ndim < 1 || t->ndim > 2 || t->numel == 0)
            return lorac_fail(err, LORAC_ESHAPE, "%s: tensor '%s' must be 1-D or 2-D and non-empty", f->path, t->name);
        if (peft_adapter_find(a, t->name)) return lorac_fail(err, LORAC_EFORMAT, "%s: duplicate tensor '%s'", f->path, t->name);
        float *buf = malloc(t->numel * sizeof(float));
        if (!buf) return lorac_fail(err, LORAC_ENOMEM, "%s: out of memory for tensor '%s'", f->path, t->name);
        int rc = st_read_f32(f, t, buf, err);
        for (size_t k = 0; !rc && k < t->numel; k++)
            if (!isfinite(buf[k])) rc = lorac_fail(err, LORAC_EFORMAT, "%s: tensor '%s' holds a NaN or infinity", f->path, t->name);
        if (!rc) rc = adapter_push(a, t->name, t->shape[0], t->ndim == 2 ? t->shape[1] : 0, buf, err);
        if (rc) {
            free(buf);
            return rc;
        }
    }
    for (size_t i = 0; i < f->n_meta && a->n_meta < PEFT_MAX_META; i++) {
        if (!strcmp(f->meta_keys[i], "format") || strlen(f->meta_keys[i]) >= sizeof a->meta_key[0] ||
            strlen(f->meta_values[i]) >= sizeof a->meta_val[0])
            continue;
        snprintf(a->meta_key[a->n_meta], sizeof a->meta_key[0], "%s", f->meta_keys[i]);
        snprintf(a->meta_val[a->n_meta], sizeof a->meta_val[0], "%s", f->meta_values[i]);
        a->n_meta++;
    }
    return LORAC_OK;
}

int peft_adapter_read(const char *dir, peft_adapter **out, char *warn, size_t warn_size, lorac_err *err) {
    *out = NULL;
    if (warn && warn_size) warn[0] = 0;
    peft_adapter *a;
    int rc = peft_adapter_new(NULL, &a, err);
    if (rc) return rc;
    snprintf(a->source, sizeof a->source, "%s", dir);
    rc = peft_config_load(dir, &a->cfg, err);
    char path[4200];
    snprintf(path, sizeof path, "%s/adapter_model.safetensors", dir);
    st_file f;
    memset(&f, 0, sizeof f);
    if (!rc) rc = st_open(path, &f, err);
    if (!rc) {
        rc = read_tensors(a, &f, err);
        st_close(&f);
    }
    if (!rc) rc = check_against_config(a, path, err);
    if (rc) {
        peft_adapter_free(a);
        return rc;
    }
    for (int i = 0; warn && warn_size && i < a->cfg.n_warnings; i++)
        snprintf(warn + strlen(warn), warn_size - strlen(warn), "%s\n", a->cfg.warnings[i]);
    *out = a;
    return LORAC_OK;
}

int peft_adapter_write(const peft_adapter *a, const char *dir, lorac_err *err) {
    st_entry *ents = calloc(a->n + 1, sizeof *ents);
    if (!ents) return lorac_fail(err, LORAC_ENOMEM, "%s: out of memory", dir);
    for (size_t i = 0; i < a->n; i++) {
        ents[i].name = a->t[i].name;
        ents[i].dtype = ents[i].out_dtype = ST_F32;
        ents[i].ndim = a->t[i].ndim;
        ents[i].shape[0] = a->t[i].shape[0];
        ents[i].shape[1] = a->t[i].shape[1];
        ents[i].data = a->t[i].data;
    }
    const char *mk[PEFT_MAX_META + 1], *mv[PEFT_MAX_META + 1];
    mk[0] = "format";
    mv[0] = "pt";
    for (int i = 0; i < a->n_meta; i++) {
        mk[i + 1] = a->meta_key[i];
        mv[i + 1] = a->meta_val[i];
    }
    lorac_outdir od;
    int rc = lorac_outdir_open(&od, dir, err);
    if (!rc) {
        char path[4200];
        snprintf(path, sizeof path, "%s/adapter_model.safetensors", od.tmp);
        rc = st_write(path, ents, a->n, mk, mv, (size_t)a->n_meta + 1, err);
        snprintf(path, sizeof path, "%s/adapter_config.json", od.tmp);
        if (!rc) rc = peft_config_save(&a->cfg, path, err);
        if (!rc) rc = lorac_outdir_commit(&od, err);
        else lorac_outdir_abort(&od);
    }
    free(ents);
    return rc;
}

int peft_adapter_check_lora_only(const peft_adapter *a, lorac_err *err) {
    for (size_t i = 0; i < a->n; i++)
        if (!strstr(a->t[i].name, ".lora_"))
            return lorac_fail(err, LORAC_EUNSUPPORTED, "%s: tensor '%s' is a trained bias or modules_to_save copy; adapter "
                              "sets hold LoRA-only adapters (load this one on its own model)",
                              a->source[0] ? a->source : "adapter", a->t[i].name);
    return LORAC_OK;
}
