/* PEFT adapter_config.json: read (strictly, with warnings for unknown keys) and write. */
#include <math.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "lorac/json.h"
#include "lorac/peft.h"

void peft_config_init(peft_config *c) {
    memset(c, 0, sizeof *c);
    c->r = 8;
    c->lora_alpha = 8;
    c->init_lora_weights = 1;
    snprintf(c->task_type, sizeof c->task_type, "CAUSAL_LM");
}

/* Keys PEFT writes whose value lorac either implements or knows to be harmless. */
static const char *known_keys[] = {
    "peft_type", "r", "lora_alpha", "lora_dropout", "fan_in_fan_out", "bias", "use_rslora",
    "target_modules", "rank_pattern", "alpha_pattern", "layers_to_transform", "layers_pattern",
    "modules_to_save", "init_lora_weights", "lora_bias", "task_type", "base_model_name_or_path",
    "revision", "inference_mode", "auto_mapping", "use_dora", "layer_replication", "loftq_config",
    "megatron_config", "megatron_core", "exclude_modules", "target_parameters", "eva_config",
    "corda_config", "runtime_config", "trainable_token_indices", "use_qalora", "qalora_group_size",
    "alora_invocation_tokens", "arrow_config", "ensure_weight_tying", "peft_version",
};

static int is_known(const char *k) {
    for (size_t i = 0; i < sizeof known_keys / sizeof known_keys[0]; i++)
        if (!strcmp(k, known_keys[i])) return 1;
    return 0;
}

/* A value that is absent, null, false, empty ({} / []) or "" changes nothing. */
static int is_unset(const json_value *v) {
    if (!v) return 1;
    switch (json_kind(v)) {
    case JSON_NULL: return 1;
    case JSON_BOOL: return !json_bool(v);
    case JSON_ARRAY:
    case JSON_OBJECT: return json_len(v) == 0;
    case JSON_STRING: return json_str_len(v) == 0;
    default: return 0;
    }
}

static int read_string_list(const json_value *v, char (*out)[64], int max, int *n, const char *path,
                            const char *key, lorac_err *err) {
    *n = 0;
    for (size_t i = 0; i < json_len(v); i++) {
        const char *s = json_str(json_at(v, i));
        if (!s) return lorac_fail(err, LORAC_EFORMAT, "%s: \"%s\" must be a list of strings", path, key);
        if (*n == max) return lorac_fail(err, LORAC_EUNSUPPORTED, "%s: \"%s\" has more than %d entries", path, key, max);
        if (strlen(s) >= 64) return lorac_fail(err, LORAC_EUNSUPPORTED, "%s: \"%s\" entry \"%.40s...\" is too long", path, key, s);
        snprintf(out[(*n)++], 64, "%s", s);
    }
    return LORAC_OK;
}

static int read_patterns(const json_value *v, peft_pattern *out, int *n, const char *path, const char *key,
                         int integral, lorac_err *err) {
    *n = 0;
    if (!v || json_kind(v) == JSON_NULL) return LORAC_OK;
    if (json_kind(v) != JSON_OBJECT) return lorac_fail(err, LORAC_EFORMAT, "%s: \"%s\" must be an object", path, key);
    for (size_t i = 0; i < json_len(v); i++) {
        const json_value *x = json_at(v, i);
        const char *k = json_key_at(v, i);
        if (json_kind(x) != JSON_NUMBER || (integral && (json_num(x) != floor(json_num(x)) || json_num(x) <= 0)))
            return lorac_fail(err, LORAC_EFORMAT, "%s: \"%s\" value for \"%s\" must be a %s", path, key, k,
                              integral ? "positive integer" : "number");
        if (*n == PEFT_MAX_PATTERNS || strlen(k) >= sizeof out->key)
            return lorac_fail(err, LORAC_EUNSUPPORTED, "%s: \"%s\" is too large", path, key);
        snprintf(out[*n].key, sizeof out[*n].key, "%s", k);
        out[(*n)++].value = json_num(x);
    }
    return LORAC_OK;
}

static int parse_config(const json_value *root, const char *path, peft_config *c, lorac_err *err) {
    if (json_kind(root) != JSON_OBJECT) return lorac_fail(err, LORAC_EFORMAT, "%s: expected a JSON object", path);
    const char *pt = json_get_str(root, "peft_type", NULL, NULL);
    if (!pt) return lorac_fail(err, LORAC_EFORMAT, "%s: missing \"peft_type\"", path);
    if (strcmp(pt, "LORA")) return lorac_fail(err, LORAC_EUNSUPPORTED, "%s: peft_type \"%s\" is not LORA", path, pt);
    int bad = 0;
    long long r = json_get_int(root, "r", 8, &bad);
    if (bad || r <= 0 || r > 65536) return lorac_fail(err, LORAC_EFORMAT, "%s: \"r\" must be a positive integer", path);
    c->r = (int)r;
    c->lora_alpha = json_get_num(root, "lora_alpha", 8, &bad);
    if (bad || !isfinite(c->lora_alpha)) return lorac_fail(err, LORAC_EFORMAT, "%s: \"lora_alpha\" must be a number", path);
    c->lora_dropout = json_get_num(root, "lora_dropout", 0, &bad);
    if (bad || !(c->lora_dropout >= 0 && c->lora_dropout < 1))
        return lorac_fail(err, LORAC_EFORMAT, "%s: \"lora_dropout\" must be a number in [0, 1)", path);
    c->fan_in_fan_out = json_get_bool(root, "fan_in_fan_out", 0, &bad);
    c->use_rslora = json_get_bool(root, "use_rslora", 0, &bad);
    if (bad) return lorac_fail(err, LORAC_EFORMAT, "%s: \"fan_in_fan_out\" and \"use_rslora\" must be booleans", path);
    const char *bias = json_get_str(root, "bias", "none", &bad);
    if (bad) return lorac_fail(err, LORAC_EFORMAT, "%s: \"bias\" must be a string", path);
    if (!strcmp(bias, "none")) c->bias = PEFT_BIAS_NONE;
    else if (!strcmp(bias, "all")) c->bias = PEFT_BIAS_ALL;
    else if (!strcmp(bias, "lora_only")) c->bias = PEFT_BIAS_LORA_ONLY;
    else return lorac_fail(err, LORAC_EFORMAT, "%s: \"bias\" is \"%s\" (none, all or lora_only expected)", path, bias);

    const json_value *tm = json_get(root, "target_modules");
    int rc;
    if (json_kind(tm) == JSON_STRING) {
        if (json_str_len(tm) >= sizeof c->target_regex)
            return lorac_fail(err, LORAC_EUNSUPPORTED, "%s: \"target_modules\" regex is too long", path);
        snprintf(c->target_regex, sizeof c->target_regex, "%s", json_str(tm));
        regex_t re; /* check it compiles now, so a bad pattern is a load error */
        char anchored[600];
        snprintf(anchored, sizeof anchored, "^(%s)$", c->target_regex);
        if (regcomp(&re, anchored, REG_EXTENDED | REG_NOSUB))
            return lorac_fail(err, LORAC_EUNSUPPORTED, "%s: \"target_modules\" regex \"%s\" is not a POSIX extended regex", path, c->target_regex);
        regfree(&re);
    } else if (json_kind(tm) == JSON_ARRAY) {
        if ((rc = read_string_list(tm, c->target_modules, PEFT_MAX_TARGETS, &c->n_targets, path, "target_modules", err))) return rc;
    } else if (tm && json_kind(tm) != JSON_NULL) {
        return lorac_fail(err, LORAC_EFORMAT, "%s: \"target_modules\" must be a list or a string", path);
    }
    if ((rc = read_patterns(json_get(root, "rank_pattern"), c->rank_pattern, &c->n_rank_pattern, path, "rank_pattern", 1, err))) return rc;
    if ((rc = read_patterns(json_get(root, "alpha_pattern"), c->alpha_pattern, &c->n_alpha_pattern, path, "alpha_pattern", 0, err))) return rc;
    const json_value *ltt = json_get(root, "layers_to_transform");
    if (json_kind(ltt) == JSON_NUMBER) {
        c->layers_to_transform[0] = (int)json_num(ltt);
        c->n_layers_to_transform = 1;
    } else if (json_kind(ltt) == JSON_ARRAY) {
        for (size_t i = 0; i < json_len(ltt); i++) {
            const json_value *x = json_at(ltt, i);
            if (json_kind(x) != JSON_NUMBER || json_num(x) < 0 || json_num(x) != floor(json_num(x)))
                return lorac_fail(err, LORAC_EFORMAT, "%s: \"layers_to_transform\" must hold layer indices", path);
            if (c->n_layers_to_transform == PEFT_MAX_LAYERS)
                return lorac_fail(err, LORAC_EUNSUPPORTED, "%s: \"layers_to_transform\" is too long", path);
            c->layers_to_transform[c->n_layers_to_transform++] = (int)json_num(x);
        }
    } else if (ltt && json_kind(ltt) != JSON_NULL) {
        return lorac_fail(err, LORAC_EFORMAT, "%s: \"layers_to_transform\" must be an integer or a list", path);
    }
    const json_value *mts = json_get(root, "modules_to_save");
    if (json_kind(mts) == JSON_ARRAY) {
        if ((rc = read_string_list(mts, c->modules_to_save, PEFT_MAX_TARGETS, &c->n_modules_to_save, path, "modules_to_save", err))) return rc;
    } else if (mts && json_kind(mts) != JSON_NULL) {
        return lorac_fail(err, LORAC_EFORMAT, "%s: \"modules_to_save\" must be a list", path);
    }
    const json_value *init = json_get(root, "init_lora_weights");
    c->init_lora_weights = !init || json_kind(init) != JSON_BOOL || json_bool(init);
    c->lora_bias = json_get_bool(root, "lora_bias", 0, NULL);
    const char *tt = json_get_str(root, "task_type", NULL, NULL);
    if (tt) snprintf(c->task_type, sizeof c->task_type, "%s", tt);
    const char *base = json_get_str(root, "base_model_name_or_path", NULL, NULL);
    if (base) snprintf(c->base_model_name_or_path, sizeof c->base_model_name_or_path, "%s", base);

    /* Fields that change the math and that lorac does not implement are errors. */
    static const char *unsupported[] = {"use_dora", "target_parameters", "layer_replication", "loftq_config",
                                        "eva_config", "corda_config", "trainable_token_indices", "use_qalora",
                                        "alora_invocation_tokens", "arrow_config", "exclude_modules"};
    for (size_t i = 0; i < sizeof unsupported / sizeof unsupported[0]; i++)
        if (!is_unset(json_get(root, unsupported[i])))
            return lorac_fail(err, LORAC_EUNSUPPORTED, "%s: \"%s\" is set, and lorac does not implement it", path, unsupported[i]);
    if (c->lora_bias)
        return lorac_fail(err, LORAC_EUNSUPPORTED, "%s: \"lora_bias\": true is set, and lorac does not implement it", path);
    const char *lp = json_get_str(root, "layers_pattern", NULL, NULL);
    if (lp && *lp && c->n_layers_to_transform == 0)
        return lorac_fail(err, LORAC_EUNSUPPORTED, "%s: \"layers_pattern\" without layers_to_transform is not supported", path);
    for (size_t i = 0; i < json_len(root); i++) {
        const char *k = json_key_at(root, i);
        if (!is_known(k) && c->n_warnings < PEFT_MAX_WARNINGS)
            snprintf(c->warnings[c->n_warnings++], sizeof c->warnings[0], "%s: unknown key \"%.60s\" ignored", path, k);
    }
    return LORAC_OK;
}

static int file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

int peft_config_load(const char *dir, peft_config *c, lorac_err *err) {
    peft_config_init(c);
    char path[4096];
    snprintf(path, sizeof path, "%s/adapter_config.json", dir);
    if (!file_exists(path)) {
        char st[4096], bin[4096];
        snprintf(st, sizeof st, "%s/adapter_model.safetensors", dir);
        snprintf(bin, sizeof bin, "%s/adapter_model.bin", dir);
        if (file_exists(bin) && !file_exists(st))
            return lorac_fail(err, LORAC_EUNSUPPORTED, "%s: holds a legacy adapter_model.bin (a pickle), and no adapter_config.json; re-save it "
                              "with PEFT's save_pretrained(..., safe_serialization=True) to get adapter_model.safetensors", dir);
        return lorac_fail(err, LORAC_ENOTFOUND, "%s: no adapter_config.json (not a PEFT adapter directory)", dir);
    }
    json_doc *doc = NULL;
    int rc = json_parse_file(path, &doc, err);
    if (rc) return rc;
    rc = parse_config(json_root(doc), path, c, err);
    json_free(doc);
    if (!rc) {
        char st[4096], bin[4096];
        snprintf(st, sizeof st, "%s/adapter_model.safetensors", dir);
        snprintf(bin, sizeof bin, "%s/adapter_model.bin", dir);
        if (!file_exists(st))
            rc = file_exists(bin)
                     ? lorac_fail(err, LORAC_EUNSUPPORTED, "%s: adapter_model.bin is a legacy pickle; re-save the adapter with PEFT's "
                                  "save_pretrained(..., safe_serialization=True) to get adapter_model.safetensors", bin)
                     : lorac_fail(err, LORAC_ENOTFOUND, "%s: missing adapter_model.safetensors", dir);
    }
    return rc;
}

static const char *bias_name(peft_bias b) {
    return b == PEFT_BIAS_ALL ? "all" : b == PEFT_BIAS_LORA_ONLY ? "lora_only" : "none";
}

int peft_config_save(const peft_config *c, const char *path, lorac_err *err) {
    lorac_out o;
    json_writer w;
    int rc = jw_file_open(&w, &o, path, err);
    if (rc) return rc;
    jw_object_begin(&w);
    jw_key(&w, "peft_type"); jw_string(&w, "LORA");
    jw_key(&w, "task_type"); jw_string(&w, c->task_type);
    jw_key(&w, "base_model_name_or_path"); jw_string(&w, c->base_model_name_or_path);
    jw_key(&w, "r"); jw_int(&w, c->r);
    jw_key(&w, "lora_alpha"); jw_double(&w, c->lora_alpha);
    jw_key(&w, "lora_dropout"); jw_double(&w, c->lora_dropout);
    jw_key(&w, "fan_in_fan_out"); jw_bool(&w, c->fan_in_fan_out);
    jw_key(&w, "bias"); jw_string(&w, bias_name(c->bias));
    jw_key(&w, "use_rslora"); jw_bool(&w, c->use_rslora);
    jw_key(&w, "use_dora"); jw_bool(&w, 0);
    jw_key(&w, "init_lora_weights"); jw_bool(&w, c->init_lora_weights);
    jw_key(&w, "inference_mode"); jw_bool(&w, 1);
    jw_key(&w, "target_modules");
    if (c->target_regex[0]) {
        jw_string(&w, c->target_regex);
    } else {
        jw_array_begin(&w);
        for (int i = 0; i < c->n_targets; i++) jw_string(&w, c->target_modules[i]);
        jw_array_end(&w);
    }
    jw_key(&w, "rank_pattern");
    jw_object_begin(&w);
    for (int i = 0; i < c->n_rank_pattern; i++) { jw_key(&w, c->rank_pattern[i].key); jw_int(&w, (long long)c->rank_pattern[i].value); }
    jw_object_end(&w);
    jw_key(&w, "alpha_pattern");
    jw_object_begin(&w);
    for (int i = 0; i < c->n_alpha_pattern; i++) { jw_key(&w, c->alpha_pattern[i].key); jw_double(&w, c->alpha_pattern[i].value); }
    jw_object_end(&w);
    jw_key(&w, "layers_to_transform");
    if (c->n_layers_to_transform) {
        jw_array_begin(&w);
        for (int i = 0; i < c->n_layers_to_transform; i++) jw_int(&w, c->layers_to_transform[i]);
        jw_array_end(&w);
    } else {
        jw_null(&w);
    }
    jw_key(&w, "modules_to_save");
    if (c->n_modules_to_save) {
        jw_array_begin(&w);
        for (int i = 0; i < c->n_modules_to_save; i++) jw_string(&w, c->modules_to_save[i]);
        jw_array_end(&w);
    } else {
        jw_null(&w);
    }
    jw_object_end(&w);
    return jw_file_commit(&w, &o, LORAC_OK, path, err);
}

int peft_module_matches(const char *module, const char *key) {
    size_t n = strlen(module), k = strlen(key);
    return k <= n && !strcmp(module + n - k, key) && (k == n || module[n - k - 1] == '.');
}

int peft_module_under(const char *tensor, const char *key) {
    char prefix[256];
    for (const char *d = strchr(tensor, '.'); d; d = strchr(d + 1, '.')) {
        snprintf(prefix, sizeof prefix, "%.*s", (int)(d - tensor), tensor);
        if (peft_module_matches(prefix, key)) return 1;
    }
    return 0;
}

int peft_config_module_pattern(peft_config *c, const char *module, int r, double alpha, const char *path, lorac_err *err) {
    if (c->n_rank_pattern == PEFT_MAX_PATTERNS || c->n_alpha_pattern == PEFT_MAX_PATTERNS)
        return lorac_fail(err, LORAC_EUNSUPPORTED, "%s: more than %d layers with their own rank", path, PEFT_MAX_PATTERNS);
    if (strlen(module) >= sizeof c->rank_pattern[0].key)
        return lorac_fail(err, LORAC_EUNSUPPORTED, "%s: module name %s is too long for a rank pattern", path, module);
    peft_pattern *rp = &c->rank_pattern[c->n_rank_pattern++], *ap = &c->alpha_pattern[c->n_alpha_pattern++];
    memcpy(rp->key, module, strlen(module) + 1);
    memcpy(ap->key, module, strlen(module) + 1);
    rp->value = r;
    ap->value = alpha;
    return LORAC_OK;
}

int peft_rank_for(const peft_config *c, const char *module) {
    for (int i = 0; i < c->n_rank_pattern; i++)
        if (peft_module_matches(module, c->rank_pattern[i].key)) return (int)c->rank_pattern[i].value;
    return c->r;
}

double peft_alpha_for(const peft_config *c, const char *module) {
    for (int i = 0; i < c->n_alpha_pattern; i++)
        if (peft_module_matches(module, c->alpha_pattern[i].key)) return c->alpha_pattern[i].value;
    return c->lora_alpha;
}

double peft_scaling_for(const peft_config *c, const char *module) {
    int r = peft_rank_for(c, module);
    double a = peft_alpha_for(c, module);
    return c->use_rslora ? a / sqrt((double)r) : a / (double)r;
}

/* The layer index PEFT reads from a module name: the first ".<digits>." component. */
static int layer_index(const char *module) {
    for (const char *p = module; *p; p++) {
        if (*p == '.' && p[1] >= '0' && p[1] <= '9') {
            char *end;
            long v = strtol(p + 1, &end, 10);
            if (*end == '.' || *end == 0) return (int)v;
        }
    }
    return -1;
}

int peft_targets_module(const peft_config *c, const char *module) {
    int hit = 0;
    if (c->target_regex[0]) {
        regex_t re;
        char anchored[600];
        snprintf(anchored, sizeof anchored, "^(%s)$", c->target_regex);
        if (regcomp(&re, anchored, REG_EXTENDED | REG_NOSUB)) return 0;
        hit = regexec(&re, module, 0, NULL, 0) == 0;
        regfree(&re);
        return hit; /* PEFT applies layers_to_transform only to list targets */
    }
    for (int i = 0; i < c->n_targets && !hit; i++) hit = peft_module_matches(module, c->target_modules[i]);
    if (!hit || c->n_layers_to_transform == 0) return hit;
    int l = layer_index(module);
    for (int i = 0; i < c->n_layers_to_transform; i++)
        if (c->layers_to_transform[i] == l) return 1;
    return 0;
}
