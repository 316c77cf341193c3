/* A Hugging Face checkpoint's safetensors files: one, or the shards of model.safetensors.index.json. */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "lorac/json.h"
#include "models/hf_shards.h"

static int file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

void hf_shards_close(hf_shards *s) {
    for (int i = 0; i < s->n; i++) st_close(&s->files[i]);
    free(s->files);
    s->files = NULL;
    s->n = 0;
}

int hf_shards_open(const char *dir, hf_shards *s, lorac_err *err) {
    char path[4096];
    s->n = 0;
    s->files = calloc(HF_MAX_SHARDS, sizeof *s->files);
    if (!s->files) return lorac_fail(err, LORAC_ENOMEM, "%s: out of memory", dir);
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    if (file_exists(path)) {
        int rc = st_open(path, &s->files[0], err);
        if (!rc) s->n = 1;
        return rc;
    }
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
    if (!file_exists(path)) {
        char bin[4200];
        snprintf(bin, sizeof bin, "%s/pytorch_model.bin", dir);
        if (file_exists(bin))
            return lorac_fail(err, LORAC_EUNSUPPORTED, "%s: only PyTorch pickle weights; convert them to safetensors "
                              "(e.g. transformers' save_pretrained(..., safe_serialization=True))", dir);
        return lorac_fail(err, LORAC_ENOTFOUND, "%s: no model.safetensors or model.safetensors.index.json", dir);
    }
    json_doc *doc = NULL;
    int rc = json_parse_file(path, &doc, err);
    if (rc) return rc;
    const json_value *map = json_get(json_root(doc), "weight_map");
    if (json_kind(map) != JSON_OBJECT) rc = lorac_fail(err, LORAC_EFORMAT, "%s: no \"weight_map\" object", path);
    for (size_t i = 0; !rc && i < json_len(map); i++) {
        const char *file = json_str(json_at(map, i));
        if (!file || !*file || strchr(file, '/')) {
            rc = lorac_fail(err, LORAC_EFORMAT, "%s: weight_map entry \"%s\" is not a file name", path, json_key_at(map, i));
            break;
        }
        char shard[4200];
        snprintf(shard, sizeof shard, "%s/%s", dir, file);
        int seen = 0;
        for (int k = 0; k < s->n && !seen; k++) seen = !strcmp(s->files[k].path, shard);
        if (seen) continue;
        if (s->n == HF_MAX_SHARDS) {
            rc = lorac_fail(err, LORAC_EUNSUPPORTED, "%s: more than %d shards", path, HF_MAX_SHARDS);
            break;
        }
        rc = st_open(shard, &s->files[s->n], err);
        if (!rc) s->n++;
    }
    json_free(doc);
    return rc;
}

const st_tensor *hf_shards_find(const hf_shards *s, const char *name, const st_file **file) {
    for (int k = 0; k < s->n; k++) {
        const st_tensor *t = st_find(&s->files[k], name);
        if (t) {
            *file = &s->files[k];
            return t;
        }
    }
    return NULL;
}

static int attach_begin(hf_attach *h, const peft_adapter *a, const char *family, int extras_ok, lorac_err *err) {
    memset(h, 0, sizeof *h);
    h->a = a;
    h->family = family;
    if (a->source[0]) snprintf(h->src, sizeof h->src, "%s/adapter_model.safetensors", a->source);
    else snprintf(h->src, sizeof h->src, "adapter");
    /* bias "lora_only": PEFT 0.10 saves no bias tensor for it (its state-dict filter looks for
     * "<module>.bias" where the wrapped layer has "<module>.base_layer.bias"), so such an adapter
     * is plain LoRA; one that does hold biases is refused like "all". */
    int has_bias = 0;
    for (size_t i = 0; i < a->n && !has_bias; i++) {
        size_t len = strlen(a->t[i].name);
        has_bias = len >= 5 && !strcmp(a->t[i].name + len - 5, ".bias");
    }
    if (!extras_ok && (a->cfg.bias == PEFT_BIAS_ALL || (a->cfg.bias == PEFT_BIAS_LORA_ONLY && has_bias)))
        return lorac_fail(err, LORAC_EUNSUPPORTED, "%s: bias \"%s\" adapters with trained biases are not supported for %s yet",
                          h->src, a->cfg.bias == PEFT_BIAS_ALL ? "all" : "lora_only", family);
    if (!extras_ok && a->cfg.n_modules_to_save)
        return lorac_fail(err, LORAC_EUNSUPPORTED, "%s: modules_to_save is not supported for %s yet", h->src, family);
    if (!(h->used = calloc(a->n + 1, sizeof *h->used))) return lorac_fail(err, LORAC_ENOMEM, "%s: out of memory", h->src);
    return LORAC_OK;
}

int hf_attach_begin(hf_attach *h, const peft_adapter *a, const char *family, lorac_err *err) {
    return attach_begin(h, a, family, 0, err);
}

int hf_attach_begin_extras(hf_attach *h, const peft_adapter *a, const char *family, lorac_err *err) {
    return attach_begin(h, a, family, 1, err);
}

/* "base_model.model.X.base_layer.bias" -> "X.bias" (PEFT 0.10 names a LoRA-wrapped layer's bias so). */
static int extra_key(const char *peft_name, char *key, size_t size) {
    static const char pfx[] = "base_model.model.";
    if (strncmp(peft_name, pfx, sizeof pfx - 1) || strstr(peft_name, ".lora_")) return 0;
    const char *s = peft_name + sizeof pfx - 1, *bl = strstr(s, ".base_layer.");
    if (strlen(s) >= size) return 0;
    if (bl) snprintf(key, size, "%.*s%s", (int)(bl - s), s, bl + strlen(".base_layer"));
    else snprintf(key, size, "%s", s);
    return 1;
}

long hf_slot_find(const hf_slot *slots, size_t n_slots, const char *peft_name) {
    char key[256];
    if (!extra_key(peft_name, key, sizeof key)) return -1;
    for (size_t i = 0; i < n_slots; i++)
        if (!strcmp(slots[i].name, key)) return (long)i;
    return -1;
}

/* 1 if tensor key ("bert.pooler.dense.weight") lies under a module that entry names: some dotted
 * prefix of key's module ("bert", "bert.pooler", "bert.pooler.dense") is entry or ends with
 * ".entry", as PEFT's modules_to_save wraps a whole module. */
static int module_is(const char *key, const char *entry) {
    size_t e = strlen(entry);
    for (const char *d = strchr(key, '.'); d; d = strchr(d + 1, '.')) {
        size_t m = (size_t)(d - key);
        if (e <= m && !strncmp(key + m - e, entry, e) && (e == m || key[m - e - 1] == '.')) return 1;
    }
    return 0;
}

static int in_modules_to_save(const peft_config *c, const char *key) {
    for (int i = 0; i < c->n_modules_to_save; i++)
        if (module_is(key, c->modules_to_save[i])) return 1;
    return 0;
}

int hf_attach_extras(hf_attach *h, const hf_slot *slots, size_t n_slots, peft_adapter **extra, lorac_err *err) {
    *extra = NULL;
    const peft_config *c = &h->a->cfg;
    peft_adapter *x = NULL;
    int rc = LORAC_OK;
    for (size_t i = 0; i < h->a->n && !rc; i++) {
        const peft_tensor *t = &h->a->t[i];
        char key[256];
        if (!extra_key(t->name, key, sizeof key)) continue;
        long k = hf_slot_find(slots, n_slots, t->name);
        if (k < 0) {
            rc = lorac_fail(err, LORAC_EFORMAT, "%s: unexpected tensor '%s' (no such tensor in this %s model)", h->src, t->name,
                            h->family);
            break;
        }
        size_t len = strlen(key);
        int bias = len > 5 && !strcmp(key + len - 5, ".bias");
        char module[256];
        snprintf(module, sizeof module, "%.*s", (int)(len - (bias ? 5 : 0)), key);
        int ok = in_modules_to_save(c, key) || (bias && (c->bias == PEFT_BIAS_ALL ||
                                                         (c->bias == PEFT_BIAS_LORA_ONLY && peft_targets_module(c, module))));
        const hf_slot *s = &slots[k];
        if (!ok)
            rc = lorac_fail(err, LORAC_EFORMAT, "%s: tensor '%s' is not a LoRA tensor and adapter_config.json's bias and "
                            "modules_to_save do not account for it", h->src, t->name);
        else if (t->ndim != (s->d1 ? 2 : 1) || t->shape[0] != s->d0 || (s->d1 && t->shape[1] != s->d1))
            rc = lorac_fail(err, LORAC_ESHAPE, "%s: tensor '%s' has shape [%lld, %lld] but this %s model needs [%lld, %lld] "
                            "(an adapter for another base?)", h->src, t->name, (long long)t->shape[0],
                            (long long)(t->ndim > 1 ? t->shape[1] : 0), h->family, (long long)s->d0, (long long)s->d1);
        for (size_t q = 0; !rc && x && q < x->n; q++) /* "X.bias" and "X.base_layer.bias" both */
            if (hf_slot_find(slots, n_slots, x->t[q].name) == k)
                rc = lorac_fail(err, LORAC_EFORMAT, "%s: tensors '%s' and '%s' replace the same tensor", h->src, x->t[q].name,
                                t->name);
        if (!rc && !x) rc = peft_adapter_new(c, &x, err);
        if (!rc) rc = peft_adapter_add(x, t->name, t->shape[0], t->ndim > 1 ? t->shape[1] : 0, t->data, err);
        if (!rc) h->used[i] = 1;
    }
    /* PEFT saves every tensor of a modules_to_save module: one missing means a damaged file */
    for (int j = 0; !rc && j < c->n_modules_to_save; j++) {
        int found = 0;
        for (size_t i = 0; i < n_slots && !rc; i++) {
            if (!module_is(slots[i].name, c->modules_to_save[j])) continue;
            found = 1;
            int have = 0;
            for (size_t q = 0; x && q < x->n && !have; q++) have = hf_slot_find(slots, n_slots, x->t[q].name) == (long)i;
            if (!have)
                rc = lorac_fail(err, LORAC_ENOTFOUND, "%s: modules_to_save '%s' but tensor 'base_model.model.%s' is missing",
                                h->src, c->modules_to_save[j], slots[i].name);
        }
        if (!rc && !found)
            rc = lorac_fail(err, LORAC_EFORMAT, "%s: modules_to_save '%s' names no module of this %s model", h->src,
                            c->modules_to_save[j], h->family);
    }
    if (rc) {
        peft_adapter_free(x);
        return rc;
    }
    *extra = x;
    return LORAC_OK;
}

int hf_attach_take(hf_attach *h, const char *name, int64_t d0, int64_t d1, float *dst, lorac_err *err) {
    const peft_tensor *t = peft_adapter_find(h->a, name);
    if (!t) return lorac_fail(err, LORAC_ENOTFOUND, "%s: missing tensor '%s'", h->src, name);
    if (t->ndim != 2 || t->shape[0] != d0 || t->shape[1] != d1)
        return lorac_fail(err, LORAC_ESHAPE, "%s: tensor '%s' has shape [%lld, %lld] but this %s model needs [%lld, %lld] "
                          "(an adapter for another base?)", h->src, name, (long long)t->shape[0],
                          (long long)(t->ndim > 1 ? t->shape[1] : 0), h->family, (long long)d0, (long long)d1);
    h->used[t - h->a->t] = 1;
    memcpy(dst, t->data, (size_t)d0 * (size_t)d1 * sizeof(float));
    return LORAC_OK;
}

int hf_attach_check_all_used(const hf_attach *h, lorac_err *err) {
    for (size_t i = 0; i < h->a->n; i++)
        if (!h->used[i])
            return lorac_fail(err, LORAC_EFORMAT, "%s: unexpected tensor '%s' (not a LoRA tensor of this %s model)", h->src,
                              h->a->t[i].name, h->family);
    return LORAC_OK;
}

void hf_attach_end(hf_attach *h) {
    free(h->used);
    h->used = NULL;
}
