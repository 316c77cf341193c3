/* Llama-family config.json (llama, mistral, qwen2), rotary frequencies, site table, --targets. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "lorac/json.h"
#include "lorac/llama.h"

/* An integer that config.json may give as a number or a list (eos_token_id); the first is taken. */
static int cfg_first_int(const json_value *root, const char *key, int def, const char *path, int *rc, lorac_err *err) {
    const json_value *v = json_get(root, key);
    if (!v || json_kind(v) == JSON_NULL) return def;
    if (json_kind(v) == JSON_ARRAY) v = json_len(v) ? json_at(v, 0) : NULL;
    long long x = 0;
    if (!v || !json_int_exact(v, &x) || x < -1 || x > (1 << 24)) {
        if (!*rc) *rc = lorac_fail(err, LORAC_EFORMAT, "%s: \"%s\" must be a token id or a list of them", path, key);
        return def;
    }
    return (int)x;
}

static long long cfg_int(const json_value *root, const char *key, long long def, const char *path, int *rc,
                         lorac_err *err) {
    int bad = 0;
    const json_value *v = json_get(root, key);
    if (v && json_kind(v) == JSON_NULL) return def;
    long long x = json_get_int(root, key, def, &bad);
    if (bad && !*rc) *rc = lorac_fail(err, LORAC_EFORMAT, "%s: \"%s\" must be an integer", path, key);
    return x;
}

static double cfg_num(const json_value *obj, const char *key, double def, const char *path, int *rc, lorac_err *err) {
    int bad = 0;
    const json_value *v = json_get(obj, key);
    if (v && json_kind(v) == JSON_NULL) return def;
    double x = json_get_num(obj, key, def, &bad);
    if (bad && !*rc) *rc = lorac_fail(err, LORAC_EFORMAT, "%s: \"%s\" must be a number", path, key);
    return x;
}

static int parse_rope_scaling(const json_value *rs, llama_config *c, const char *path, lorac_err *err) {
    if (!rs || json_kind(rs) == JSON_NULL) return LORAC_OK;
    if (json_kind(rs) != JSON_OBJECT) return lorac_fail(err, LORAC_EFORMAT, "%s: \"rope_scaling\" must be an object or null", path);
    const char *type = json_get_str(rs, "rope_type", NULL, NULL);
    if (!type) type = json_get_str(rs, "type", NULL, NULL);
    if (!type) return lorac_fail(err, LORAC_EFORMAT, "%s: rope_scaling has no \"rope_type\" or \"type\"", path);
    int rc = LORAC_OK;
    c->rope_factor = cfg_num(rs, "factor", 1.0, path, &rc, err);
    if (!strcmp(type, "default")) return rc;
    if (!rc && !(c->rope_factor > 0.0)) return lorac_fail(err, LORAC_EFORMAT, "%s: rope_scaling factor must be > 0", path);
    if (!strcmp(type, "linear")) {
        c->rope_scaling = LLAMA_ROPE_LINEAR;
        return rc;
    }
    if (!strcmp(type, "llama3")) {
        c->rope_scaling = LLAMA_ROPE_LLAMA3;
        c->rope_low_freq_factor = cfg_num(rs, "low_freq_factor", 1.0, path, &rc, err);
        c->rope_high_freq_factor = cfg_num(rs, "high_freq_factor", 4.0, path, &rc, err);
        c->rope_original_max_positions = (int)cfg_int(rs, "original_max_position_embeddings", 8192, path, &rc, err);
        if (!rc && !(c->rope_high_freq_factor > c->rope_low_freq_factor && c->rope_low_freq_factor > 0.0))
            rc = lorac_fail(err, LORAC_EFORMAT, "%s: rope_scaling needs 0 < low_freq_factor < high_freq_factor", path);
        if (!rc && c->rope_original_max_positions <= 0)
            rc = lorac_fail(err, LORAC_EFORMAT, "%s: rope_scaling original_max_position_embeddings must be > 0", path);
        return rc;
    }
    return lorac_fail(err, LORAC_EUNSUPPORTED, "%s: rope_scaling type \"%s\" is not supported (linear, llama3)", path, type);
}

int llama_config_load(const char *dir, llama_config *cfg, lorac_err *err) {
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    json_doc *doc = NULL;
    int rc = json_parse_file(path, &doc, err);
    if (rc) return rc;
    const json_value *root = json_root(doc);
    memset(cfg, 0, sizeof *cfg);
    if (json_kind(root) != JSON_OBJECT) rc = lorac_fail(err, LORAC_EFORMAT, "%s: expected a JSON object", path);
    const char *mt = rc ? NULL : json_get_str(root, "model_type", NULL, NULL);
    if (!rc && !mt) rc = lorac_fail(err, LORAC_EFORMAT, "%s: no \"model_type\"", path);
    if (!rc && strcmp(mt, "llama") && strcmp(mt, "mistral") && strcmp(mt, "qwen2"))
        rc = lorac_fail(err, LORAC_EUNSUPPORTED, "%s: model_type \"%s\" is not a Llama-family model (llama, mistral, qwen2)",
                        path, mt);
    if (rc) {
        json_free(doc);
        return rc;
    }
    snprintf(cfg->model_type, sizeof cfg->model_type, "%s", mt);
    cfg->n_layer = (int)cfg_int(root, "num_hidden_layers", -1, path, &rc, err);
    cfg->n_embd = (int)cfg_int(root, "hidden_size", -1, path, &rc, err);
    cfg->n_inner = (int)cfg_int(root, "intermediate_size", -1, path, &rc, err);
    cfg->n_head = (int)cfg_int(root, "num_attention_heads", -1, path, &rc, err);
    cfg->n_kv_head = (int)cfg_int(root, "num_key_value_heads", cfg->n_head, path, &rc, err);
    cfg->head_dim = (int)cfg_int(root, "head_dim", cfg->n_head > 0 ? cfg->n_embd / cfg->n_head : -1, path, &rc, err);
    cfg->n_positions = (int)cfg_int(root, "max_position_embeddings", 2048, path, &rc, err);
    cfg->vocab_size = (int)cfg_int(root, "vocab_size", 32000, path, &rc, err);
    cfg->rms_norm_eps = cfg_num(root, "rms_norm_eps", 1e-6, path, &rc, err);
    cfg->rope_theta = cfg_num(root, "rope_theta", 10000.0, path, &rc, err);
    cfg->tie_word_embeddings = json_get_bool(root, "tie_word_embeddings", 0, NULL);
    int attention_bias = json_get_bool(root, "attention_bias", 0, NULL);
    int qwen2 = !strcmp(mt, "qwen2");
    cfg->qkv_bias = qwen2 || attention_bias;
    cfg->o_bias = !qwen2 && attention_bias;
    cfg->bos_token_id = cfg_first_int(root, "bos_token_id", -1, path, &rc, err);
    cfg->eos_token_id = cfg_first_int(root, "eos_token_id", -1, path, &rc, err);
    const char *act = json_get_str(root, "hidden_act", "silu", NULL);
    if (!rc && strcmp(act, "silu"))
        rc = lorac_fail(err, LORAC_EUNSUPPORTED, "%s: hidden_act \"%s\" is not supported (silu)", path, act);
    if (!rc && json_get_bool(root, "mlp_bias", 0, NULL))
        rc = lorac_fail(err, LORAC_EUNSUPPORTED, "%s: mlp_bias is not supported", path);
    if (!rc && qwen2 && json_get_bool(root, "use_sliding_window", 0, NULL))
        rc = lorac_fail(err, LORAC_EUNSUPPORTED, "%s: use_sliding_window is not supported", path);
    if (!rc) rc = parse_rope_scaling(json_get(root, "rope_scaling"), cfg, path, err);
    json_free(doc);
    if (rc) return rc;
    return llama_config_validate(cfg, path, err);
}

int llama_config_validate(const llama_config *cfg, const char *path, lorac_err *err) {
    if (cfg->n_layer <= 0 || cfg->n_layer > 1024)
        return lorac_fail(err, LORAC_EFORMAT, "%s: num_hidden_layers %d is out of range", path, cfg->n_layer);
    if (cfg->n_embd <= 0 || cfg->n_embd > 65536)
        return lorac_fail(err, LORAC_EFORMAT, "%s: hidden_size %d is out of range", path, cfg->n_embd);
    if (cfg->n_inner <= 0 || cfg->n_inner > (1 << 20))
        return lorac_fail(err, LORAC_EFORMAT, "%s: intermediate_size %d is out of range", path, cfg->n_inner);
    if (cfg->n_head <= 0 || cfg->n_head > 1024 || cfg->n_kv_head <= 0 || cfg->n_head % cfg->n_kv_head)
        return lorac_fail(err, LORAC_EFORMAT, "%s: num_key_value_heads %d does not divide num_attention_heads %d", path,
                          cfg->n_kv_head, cfg->n_head);
    if (cfg->head_dim <= 0 || cfg->head_dim % 2 || cfg->head_dim > 4096)
        return lorac_fail(err, LORAC_EFORMAT, "%s: head_dim %d must be even and positive", path, cfg->head_dim);
    if (cfg->n_positions <= 0 || cfg->n_positions > (1 << 24))
        return lorac_fail(err, LORAC_EFORMAT, "%s: max_position_embeddings %d is out of range", path, cfg->n_positions);
    if (cfg->vocab_size <= 0 || cfg->vocab_size > (1 << 24))
        return lorac_fail(err, LORAC_EFORMAT, "%s: vocab_size %d is out of range", path, cfg->vocab_size);
    if (!(cfg->rms_norm_eps > 0.0 && cfg->rms_norm_eps < 1.0))
        return lorac_fail(err, LORAC_EFORMAT, "%s: rms_norm_eps must be in (0, 1)", path);
    if (!(cfg->rope_theta > 1.0))
        return lorac_fail(err, LORAC_EFORMAT, "%s: rope_theta must be > 1", path);
    return LORAC_OK;
}

void llama_rope_inv_freq(const llama_config *c, float *inv_freq) {
    int HS = c->head_dim;
    for (int i = 0; i < HS / 2; i++) {
        /* float32 as transformers: 1 / theta^(2i/HS) */
        float e = (float)(2 * i) / (float)HS;
        float f = (float)(1.0 / pow(c->rope_theta, (double)e));
        if (c->rope_scaling == LLAMA_ROPE_LINEAR) {
            f = (float)(f / c->rope_factor); /* pos/factor · f, folded into the frequency */
        } else if (c->rope_scaling == LLAMA_ROPE_LLAMA3) {
            /* wavelengths longer than orig/low_freq_factor are slowed by factor, shorter than
             * orig/high_freq_factor kept, and the band between interpolated smoothly */
            double L = c->rope_original_max_positions, lo = c->rope_low_freq_factor, hi = c->rope_high_freq_factor;
            double wavelen = 6.283185307179586 / f, low_wl = L / lo, high_wl = L / hi;
            double g = f;
            if (wavelen > low_wl) g = f / c->rope_factor;
            else if (wavelen >= high_wl) {
                double s = (L / wavelen - lo) / (hi - lo);
                g = (1.0 - s) * f / c->rope_factor + s * f;
            }
            f = (float)g;
        }
        inv_freq[i] = f;
    }
}

const char *llama_site_name(int site) {
    static const char *names[LLAMA_N_SITES] = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
                                               "self_attn.o_proj", "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"};
    return site >= 0 && site < LLAMA_N_SITES ? names[site] : "?";
}

void llama_site_shape(const llama_config *c, int site, int *C, int *OC) {
    int E = c->n_embd, Q = c->n_head * c->head_dim, KV = c->n_kv_head * c->head_dim, I = c->n_inner;
    static const int in_is[LLAMA_N_SITES] = {0, 0, 0, 1, 0, 0, 2}, out_is[LLAMA_N_SITES] = {1, 3, 3, 0, 2, 2, 0};
    int dims[4] = {E, Q, I, KV};
    *C = dims[in_is[site]];
    *OC = dims[out_is[site]];
}

void llama_lora_opts_default(llama_lora_opts *o) {
    memset(o, 0, sizeof *o);
    o->r = 8;
    o->alpha = 16.0f;
    o->dropout = 0.05f;
    o->sites[LLAMA_SITE_Q] = o->sites[LLAMA_SITE_V] = 1;
}

int llama_lora_targets_parse(const char *spec, llama_lora_opts *o, lorac_err *err) {
    memset(o->sites, 0, sizeof o->sites);
    const char *p = spec;
    int any = 0;
    while (*p) {
        const char *e = strchr(p, ',');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        char t[64];
        if (n == 0 || n >= sizeof t) return lorac_fail(err, LORAC_EINVAL, "--targets: bad list \"%s\"", spec);
        memcpy(t, p, n);
        t[n] = 0;
        int hit = 0;
        if (!strcmp(t, "all-linear")) {
            for (int s = 0; s < LLAMA_N_SITES; s++) o->sites[s] = 1;
            hit = 1;
        }
        for (int s = 0; s < LLAMA_N_SITES && !hit; s++) {
            const char *full = llama_site_name(s), *dot = strchr(full, '.');
            if (!strcmp(t, full) || !strcmp(t, dot + 1)) {
                o->sites[s] = 1;
                hit = 1;
            }
        }
        if (!hit)
            return lorac_fail(err, LORAC_EINVAL, "--targets: unknown module \"%s\" (q_proj, k_proj, v_proj, o_proj, "
                              "gate_proj, up_proj, down_proj, all-linear)", t);
        any = 1;
        p += n;
        if (*p == ',') p++;
    }
    if (!any) return lorac_fail(err, LORAC_EINVAL, "--targets: empty list");
    return LORAC_OK;
}
