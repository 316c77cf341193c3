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

int hf_take_2d(const st_file *f, const char *name, int64_t d0, int64_t d1, float *dst, int *used, lorac_err *err) {
    const st_tensor *t = st_find(f, name);
    if (!t) return lorac_fail(err, LORAC_ENOTFOUND, "%s: missing tensor '%s'", f->path, name);
    if (t->ndim != 2 || t->shape[0] != d0 || t->shape[1] != d1)
        return lorac_fail(err, LORAC_ESHAPE, "%s: tensor '%s' has shape [%lld, %lld] but the model needs [%lld, %lld]", f->path,
                          name, (long long)t->shape[0], (long long)(t->ndim > 1 ? t->shape[1] : 0), (long long)d0,
                          (long long)d1);
    used[t - f->tensors] = 1;
    return st_read_f32(f, t, dst, err);
}

int hf_adapter_open(const char *dir, const char *family, hf_adapter *a, char *warn, size_t warn_size, lorac_err *err) {
    memset(a, 0, sizeof *a);
    if (warn && warn_size) warn[0] = 0;
    a->pc = malloc(sizeof *a->pc);
    if (!a->pc) return lorac_fail(err, LORAC_ENOMEM, "%s: out of memory", dir);
    int rc = peft_config_load(dir, a->pc, err);
    for (int i = 0; !rc && warn && warn_size && i < a->pc->n_warnings; i++)
        snprintf(warn + strlen(warn), warn_size - strlen(warn), "%s\n", a->pc->warnings[i]);
    if (!rc && a->pc->bias != PEFT_BIAS_NONE)
        rc = lorac_fail(err, LORAC_EUNSUPPORTED, "%s: bias \"%s\" adapters are not supported for %s yet", dir,
                        a->pc->bias == PEFT_BIAS_ALL ? "all" : "lora_only", family);
    if (!rc && a->pc->n_modules_to_save)
        rc = lorac_fail(err, LORAC_EUNSUPPORTED, "%s: modules_to_save is not supported for %s yet", dir, family);
    snprintf(a->path, sizeof a->path, "%s/adapter_model.safetensors", dir);
    if (!rc) rc = st_open(a->path, &a->f, err);
    if (!rc && !(a->used = calloc(a->f.n_tensors + 1, sizeof *a->used)))
        rc = lorac_fail(err, LORAC_ENOMEM, "%s: out of memory", dir);
    if (rc) hf_adapter_close(a);
    return rc;
}

int hf_adapter_check_all_used(const hf_adapter *a, const char *family, lorac_err *err) {
    for (size_t i = 0; i < a->f.n_tensors; i++)
        if (!a->used[i])
            return lorac_fail(err, LORAC_EFORMAT, "%s: unexpected tensor '%s' (not a LoRA tensor of this %s model)", a->path,
                              a->f.tensors[i].name, family);
    return LORAC_OK;
}

void hf_adapter_close(hf_adapter *a) {
    free(a->used);
    if (a->f.path) st_close(&a->f);
    free(a->pc);
    a->used = NULL;
    a->pc = NULL;
}
