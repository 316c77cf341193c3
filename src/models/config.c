/* config.json, whatever the family: the shared key readers, rotary parameters in the transformers 4
 * and 5 layouts, validation, rotary frequencies, and reading/writing a directory's config.json. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "models/arch.h"

/* ---------------------------------------------------------------- key readers */

static int cfg_fail(int *rc, lorac_err *err, const char *path, const char *key, const char *what) {
    if (!*rc) *rc = lorac_fail(err, LORAC_EFORMAT, "%s: \"%s\" must be %s", path, key, what);
    return 0;
}

int cfg_token(const json_value *o, const char *key, int def, const char *path, int *rc, lorac_err *err) {
    const json_value *v = json_get(o, key);
    if (!v || json_kind(v) == JSON_NULL) return def;
    if (json_kind(v) == JSON_ARRAY) v = json_len(v) ? json_at(v, 0) : NULL;
    long long x = 0;
    if (!v || !json_int_exact(v, &x) || x < -1 || x > (1 << 24))
        return cfg_fail(rc, err, path, key, "a token id or a list of them"), def;
    return (int)x;
}

/* HF's activation names; which of them a family takes is its allowed mask (1 << model_act). */
static const struct { const char *name; model_act act; } acts[] = {
    {"gelu_new", MODEL_ACT_GELU_TANH}, {"gelu_pytorch_tanh", MODEL_ACT_GELU_TANH}, {"gelu_fast", MODEL_ACT_GELU_TANH},
    {"gelu", MODEL_ACT_GELU_ERF}, {"silu", MODEL_ACT_SWIGLU}};

int cfg_act(const json_value *o, const char *key, const char *def, unsigned allowed, const char *path, model_config *c,
            lorac_err *err) {
    const char *name = json_get_str(o, key, def, NULL);
    if (!name) return lorac_fail(err, LORAC_EFORMAT, "%s: \"%s\" must be a string", path, key);
    for (size_t i = 0; i < sizeof acts / sizeof acts[0]; i++)
        if (!strcmp(name, acts[i].name) && (allowed >> acts[i].act & 1)) return c->act = acts[i].act, LORAC_OK;
    return lorac_fail(err, LORAC_EUNSUPPORTED, "%s: %s \"%s\" is not supported (%s)", path, key, name,
                      allowed >> MODEL_ACT_SWIGLU & 1 ? "silu" : "gelu_new, gelu_pytorch_tanh, gelu_fast, gelu");
}

void cfg_write_class(json_writer *w, const char *architecture, const char *act_key, const model_config *c) {
    jw_key(w, "architectures");
    jw_array_begin(w);
    jw_string(w, architecture);
    jw_array_end(w);
    jw_key(w, act_key);
    jw_string(w, c->act == MODEL_ACT_GELU_ERF ? "gelu" : c->act == MODEL_ACT_SWIGLU ? "silu" : "gelu_new");
}

/* ---------------------------------------------------------------- rotary parameters */

/* Keys a rope dict may hold that lorac implements, per type; anything else changes the arithmetic. */
static int rope_key_known(const char *k) {
    static const char *const known[] = {"rope_type", "type", "rope_theta", "factor", "low_freq_factor",
                                        "high_freq_factor", "original_max_position_embeddings", NULL};
    for (int i = 0; known[i]; i++)
        if (!strcmp(k, known[i])) return 1;
    return 0;
}

static int rope_dict(const json_value *rs, const char *what, const char *path, model_config *c, lorac_err *err) {
    int rc = LORAC_OK;
    for (size_t i = 0; i < json_len(rs); i++) {
        const char *k = json_key_at(rs, i);
        if (!strcmp(k, "partial_rotary_factor") && json_field_num(rs, k, 1.0, path, &rc, err) == 1.0) continue;
        if (!rope_key_known(k))
            return lorac_fail(err, LORAC_EUNSUPPORTED, "%s: %s key \"%s\" is not supported", path, what, k);
    }
    const char *type = json_get_str(rs, "rope_type", NULL, NULL);
    if (!type) type = json_get_str(rs, "type", "default", NULL);
    c->rope_theta = json_field_num(rs, "rope_theta", c->rope_theta, path, &rc, err);
    c->rope_factor = json_field_num(rs, "factor", 1.0, path, &rc, err);
    if (rc) return rc;
    if (!strcmp(type, "default")) return LORAC_OK;
    if (!(c->rope_factor > 0.0)) return lorac_fail(err, LORAC_EFORMAT, "%s: %s factor must be > 0", path, what);
    if (!strcmp(type, "linear")) {
        c->rope_scaling = MODEL_ROPE_LINEAR;
        return LORAC_OK;
    }
    if (strcmp(type, "llama3"))
        return lorac_fail(err, LORAC_EUNSUPPORTED, "%s: %s type \"%s\" is not supported (default, linear, llama3)", path,
                          what, type);
    c->rope_scaling = MODEL_ROPE_LLAMA3;
    c->rope_low_freq_factor = json_field_num(rs, "low_freq_factor", 1.0, path, &rc, err);
    c->rope_high_freq_factor = json_field_num(rs, "high_freq_factor", 4.0, path, &rc, err);
    c->rope_original_max_positions = (int)json_field_int(rs, "original_max_position_embeddings", NULL, 8192, path, &rc, err);
    if (!rc && !(c->rope_high_freq_factor > c->rope_low_freq_factor && c->rope_low_freq_factor > 0.0))
        rc = lorac_fail(err, LORAC_EFORMAT, "%s: %s needs 0 < low_freq_factor < high_freq_factor", path, what);
    if (!rc && c->rope_original_max_positions <= 0)
        rc = lorac_fail(err, LORAC_EFORMAT, "%s: %s original_max_position_embeddings must be > 0", path, what);
    return rc;
}

int cfg_rope(const json_value *root, const char *path, model_config *c, lorac_err *err) {
    int rc = LORAC_OK;
    c->rope_scaling = MODEL_ROPE_DEFAULT;
    c->rope_factor = 1.0;
    c->rope_theta = json_field_num(root, "rope_theta", 10000.0, path, &rc, err);
    if (!rc && json_field_num(root, "partial_rotary_factor", 1.0, path, &rc, err) != 1.0)
        return lorac_fail(err, LORAC_EUNSUPPORTED, "%s: partial_rotary_factor is not supported", path);
    if (rc) return rc;
    const json_value *rp = json_get(root, "rope_parameters"); /* transformers >= 5 */
    if (rp && json_kind(rp) != JSON_NULL) {
        if (json_kind(rp) != JSON_OBJECT)
            return lorac_fail(err, LORAC_EFORMAT, "%s: \"rope_parameters\" must be an object", path);
        if (!json_get(rp, "rope_type") && !json_get(rp, "rope_theta"))
            return lorac_fail(err, LORAC_EUNSUPPORTED, "%s: rope_parameters per attention type are not supported", path);
        return rope_dict(rp, "rope_parameters", path, c, err);
    }
    const json_value *rs = json_get(root, "rope_scaling"); /* transformers 4 */
    if (!rs || json_kind(rs) == JSON_NULL) return LORAC_OK;
    if (json_kind(rs) != JSON_OBJECT) return lorac_fail(err, LORAC_EFORMAT, "%s: \"rope_scaling\" must be an object or null", path);
    if (!json_get(rs, "rope_type") && !json_get(rs, "type"))
        return lorac_fail(err, LORAC_EFORMAT, "%s: rope_scaling has no \"rope_type\" or \"type\"", path);
    return rope_dict(rs, "rope_scaling", path, c, err);
}

int cfg_layer_types(const json_value *root, const char *path, int *sliding, lorac_err *err) {
    const json_value *lt = json_get(root, "layer_types");
    *sliding = 0;
    if (!lt || json_kind(lt) == JSON_NULL) return LORAC_OK;
    for (size_t i = 0; i < json_len(lt); i++) {
        const json_value *v = json_at(lt, i);
        const char *t = json_kind(v) == JSON_STRING ? json_str(v) : "";
        if (!strcmp(t, "sliding_attention")) *sliding = 1;
        else if (strcmp(t, "full_attention"))
            return lorac_fail(err, LORAC_EUNSUPPORTED, "%s: layer_types[%zu] \"%s\" is not supported (full_attention, "
                              "sliding_attention)", path, i, t);
    }
    return LORAC_OK;
}

void cfg_write_rope(json_writer *w, const model_config *c) {
    jw_key_double(w, "rope_theta", c->rope_theta);
    jw_key(w, "rope_scaling");
    if (c->rope_scaling == MODEL_ROPE_DEFAULT) {
        jw_null(w);
        return;
    }
    jw_object_begin(w);
    jw_key(w, "rope_type");
    jw_string(w, c->rope_scaling == MODEL_ROPE_LINEAR ? "linear" : "llama3");
    jw_key_double(w, "factor", c->rope_factor);
    if (c->rope_scaling == MODEL_ROPE_LLAMA3) {
        jw_key_double(w, "low_freq_factor", c->rope_low_freq_factor);
        jw_key_double(w, "high_freq_factor", c->rope_high_freq_factor);
        jw_key_int(w, "original_max_position_embeddings", c->rope_original_max_positions);
    }
    jw_object_end(w);
}

void model_rope_inv_freq(const model_config *c, float *inv_freq) {
    int HS = c->head_dim;
    for (int i = 0; i < HS / 2; i++) {
        /* float32 as transformers: 1 / theta^(2i/HS) */
        float e = (float)(2 * i) / (float)HS;
        float f = (float)(1.0 / pow(c->rope_theta, (double)e));
        if (c->rope_scaling == MODEL_ROPE_LINEAR) {
            f = (float)(f / c->rope_factor); /* pos/factor · f, folded into the frequency */
        } else if (c->rope_scaling == MODEL_ROPE_LLAMA3) {
            /* wavelengths longer than orig/low_freq_factor are slowed by factor, shorter than
             * orig/high_freq_factor kept, and the band between interpolated smoothly */
            double L = c->rope_original_max_positions, lo = c->rope_low_freq_factor, hi = c->rope_high_freq_factor;
            double wavelen = 6.283185307179586 / f, low_wl = L / lo, high_wl = L / hi, g = f;
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

/* ---------------------------------------------------------------- validation */

static int out_of_range(const char *path, const char *what, long long v, long long lo, long long hi, lorac_err *err) {
    if (v >= lo && v <= hi) return 0;
    lorac_fail(err, LORAC_EFORMAT, "%s: %s %lld is out of range [%lld, %lld]", path, what, v, lo, hi);
    return 1;
}

int model_config_validate(const model_config *c, const char *p, lorac_err *err) {
    if (out_of_range(p, "the layer count", c->n_layer, 1, 1024, err) ||
        out_of_range(p, "the hidden size", c->n_embd, 1, 65536, err) ||
        out_of_range(p, "the MLP width", c->n_inner, 1, 1 << 20, err) ||
        out_of_range(p, "the head count", c->n_head, 1, 4096, err) ||
        out_of_range(p, "the position count", c->n_positions, 1, 1 << 24, err) ||
        out_of_range(p, "the vocabulary size", c->vocab_size, 1, 1 << 24, err) ||
        out_of_range(p, "the token-type count", c->type_vocab, 0, 1 << 16, err) ||
        out_of_range(p, "the label count", c->num_labels, 1, 1 << 16, err))
        return LORAC_EFORMAT;
    if (c->n_kv_head <= 0 || c->n_head % c->n_kv_head)
        return lorac_fail(err, LORAC_EFORMAT, "%s: %d key/value heads do not divide %d attention heads", p, c->n_kv_head,
                          c->n_head);
    if (c->head_dim <= 0 || c->head_dim > 4096 || (c->pos == MODEL_POS_ROPE && c->head_dim % 2))
        return lorac_fail(err, LORAC_EFORMAT, "%s: head size %d must be positive%s", p, c->head_dim,
                          c->pos == MODEL_POS_ROPE ? " and even (rotary positions)" : "");
    if (c->fused_qkv && (c->head_dim * c->n_head != c->n_embd || c->n_kv_head != c->n_head))
        return lorac_fail(err, LORAC_EFORMAT, "%s: a fused q/k/v projection needs %d heads of %d = the hidden size %d", p,
                          c->n_head, c->head_dim, c->n_embd);
    if (!(c->norm_eps > 0.0 && c->norm_eps < 1.0)) return lorac_fail(err, LORAC_EFORMAT, "%s: the norm epsilon must be in (0, 1)", p);
    if (c->pos == MODEL_POS_ROPE && !(c->rope_theta > 1.0)) return lorac_fail(err, LORAC_EFORMAT, "%s: rope_theta must be > 1", p);
    if (c->pos_padding_idx >= 0 && c->n_positions <= c->pos_padding_idx + 1)
        return lorac_fail(err, LORAC_EFORMAT, "%s: %d positions leave none after padding_idx %d", p, c->n_positions,
                          c->pos_padding_idx);
    if (c->head != MODEL_HEAD_LM && c->causal)
        return lorac_fail(err, LORAC_EUNSUPPORTED, "%s: a classification head needs a bidirectional encoder", p);
    return LORAC_OK;
}

int model_max_len(const model *m) {
    const model_config *c = model_cfg(m);
    int n = c->pos_padding_idx >= 0 ? c->n_positions - c->pos_padding_idx - 1 : c->n_positions;
    return c->sliding_window > 0 && c->sliding_window < n ? c->sliding_window : n;
}

/* ---------------------------------------------------------------- a directory's config.json */

int model_config_load_dir(const char *dir, model_config *c, const arch_family **fam, lorac_err *err) {
    char path[4200];
    snprintf(path, sizeof path, "%s/config.json", dir);
    json_doc *doc = NULL;
    int rc = json_parse_file(path, &doc, err);
    if (rc) return rc;
    const json_value *root = json_root(doc);
    const char *mt = json_kind(root) == JSON_OBJECT ? json_get_str(root, "model_type", NULL, NULL) : NULL;
    *fam = mt ? arch_find(mt) : NULL;
    if (!mt) rc = lorac_fail(err, LORAC_EFORMAT, "%s: no \"model_type\" string", path);
    else if (!*fam)
        rc = lorac_fail(err, LORAC_EUNSUPPORTED, "%s: model_type \"%s\" is not supported (%s)", path, mt, arch_model_types());
    if (!rc) {
        memset(c, 0, sizeof *c);
        snprintf(c->model_type, sizeof c->model_type, "%s", mt);
        (*fam)->defaults(c);
        rc = (*fam)->read_config(root, path, c, err);
    }
    json_free(doc);
    return rc ? rc : model_config_validate(c, path, err);
}

int model_config_load(const char *dir, model_config *c, lorac_err *err) {
    const arch_family *f;
    return model_config_load_dir(dir, c, &f, err);
}

int model_config_default(const char *model_type, model_config *c, lorac_err *err) {
    const arch_family *f = arch_find(model_type);
    if (!f) return lorac_fail(err, LORAC_EUNSUPPORTED, "model_type \"%s\" is not supported (%s)", model_type, arch_model_types());
    memset(c, 0, sizeof *c);
    snprintf(c->model_type, sizeof c->model_type, "%s", model_type);
    f->defaults(c);
    return LORAC_OK;
}

int model_config_save(const model_config *c, const char *path, lorac_err *err) {
    const arch_family *f = arch_find(c->model_type);
    if (!f) return lorac_fail(err, LORAC_EUNSUPPORTED, "%s: model_type \"%s\" has no config.json form", path, c->model_type);
    lorac_out o;
    json_writer w;
    int rc = jw_file_open(&w, &o, path, err);
    if (rc) return rc;
    jw_object_begin(&w);
    jw_key(&w, "model_type");
    jw_string(&w, c->model_type);
    rc = f->write_config(&w, c, path, err);
    if (c->bos_token_id >= 0) jw_key_int(&w, "bos_token_id", c->bos_token_id);
    if (c->eos_token_id >= 0) jw_key_int(&w, "eos_token_id", c->eos_token_id);
    jw_key(&w, "tie_word_embeddings");
    jw_bool(&w, c->tie_word_embeddings);
    jw_key(&w, "torch_dtype");
    jw_string(&w, "float32");
    jw_object_end(&w);
    return jw_file_commit(&w, &o, rc, path, err);
}
