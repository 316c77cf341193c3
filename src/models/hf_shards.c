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

int hf_attach_begin(hf_attach *h, const peft_adapter *a, const char *family, lorac_err *err) {
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
    if (a->cfg.bias == PEFT_BIAS_ALL || (a->cfg.bias == PEFT_BIAS_LORA_ONLY && has_bias))
        return lorac_fail(err, LORAC_EUNSUPPORTED, "%s: bias \"%s\" adapters with trained biases are not supported for %s yet",
                          h->src, a->cfg.bias == PEFT_BIAS_ALL ? "all" : "lora_only", family);
    if (a->cfg.n_modules_to_save)
        return lorac_fail(err, LORAC_EUNSUPPORTED, "%s: modules_to_save is not supported for %s yet", h->src, family);
    if (!(h->used = calloc(a->n + 1, sizeof *h->used))) return lorac_fail(err, LORAC_ENOMEM, "%s: out of memory", h->src);
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
