/* A Hugging Face checkpoint's safetensors files: one, or the shards of model.safetensors.index.json. */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "lorac/json.h"
#include "io/hf_shards.h"

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
