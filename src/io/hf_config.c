/* Keys of a Hugging Face config.json that every family reads alike (lorac/hf_config.h). */
#include <stdio.h>
#include <string.h>

#include "lorac/hf_config.h"

static int cfg_fail(int *rc, lorac_err *err, const char *path, const char *key, const char *what) {
    if (!*rc) *rc = lorac_fail(err, LORAC_EFORMAT, "%s: \"%s\" must be %s", path, key, what);
    return 0;
}

int hf_config_token(const json_value *o, const char *key, int def, const char *path, int *rc, lorac_err *err) {
    const json_value *v = json_get(o, key);
    if (!v || json_kind(v) == JSON_NULL) return def;
    if (json_kind(v) == JSON_ARRAY) v = json_len(v) ? json_at(v, 0) : NULL;
    long long x = 0;
    if (!v || !json_int_exact(v, &x) || x < -1 || x > (1 << 24))
        return cfg_fail(rc, err, path, key, "a token id or a list of them"), def;
    return (int)x;
}


/* Keys a rope dict may hold that lorac implements, per type; anything else changes the arithmetic. */
static int rope_key_known(const char *k) {
    static const char *const known[] = {"rope_type", "type", "rope_theta", "factor", "low_freq_factor",
                                        "high_freq_factor", "original_max_position_embeddings", NULL};
    for (int i = 0; known[i]; i++)
        if (!strcmp(k, known[i])) return 1;
    return 0;
}

static int rope_dict(const json_value *rs, const char *what, const char *path, rope_params *c, lorac_err *err) {
    int rc = LORAC_OK;
    for (size_t i = 0; i < json_len(rs); i++) {
        const char *k = json_key_at(rs, i);
        if (!strcmp(k, "partial_rotary_factor") && json_field_num(rs, k, 1.0, path, &rc, err) == 1.0) continue;
        if (!rope_key_known(k))
            return lorac_fail(err, LORAC_EUNSUPPORTED, "%s: %s key \"%s\" is not supported", path, what, k);
    }
    const char *type = json_get_str(rs, "rope_type", NULL, NULL);
    if (!type) type = json_get_str(rs, "type", "default", NULL);
    c->theta = json_field_num(rs, "rope_theta", c->theta, path, &rc, err);
    c->factor = json_field_num(rs, "factor", 1.0, path, &rc, err);
    if (rc) return rc;
    if (!strcmp(type, "default")) return LORAC_OK;
    if (!(c->factor > 0.0)) return lorac_fail(err, LORAC_EFORMAT, "%s: %s factor must be > 0", path, what);
    if (!strcmp(type, "linear")) {
        c->scaling = ROPE_SCALING_LINEAR;
        return LORAC_OK;
    }
    if (strcmp(type, "llama3"))
        return lorac_fail(err, LORAC_EUNSUPPORTED, "%s: %s type \"%s\" is not supported (default, linear, llama3)", path,
                          what, type);
    c->scaling = ROPE_SCALING_LLAMA3;
    c->low_freq_factor = json_field_num(rs, "low_freq_factor", 1.0, path, &rc, err);
    c->high_freq_factor = json_field_num(rs, "high_freq_factor", 4.0, path, &rc, err);
    c->original_max_positions = (int)json_field_int(rs, "original_max_position_embeddings", NULL, 8192, path, &rc, err);
    if (!rc && !(c->high_freq_factor > c->low_freq_factor && c->low_freq_factor > 0.0))
        rc = lorac_fail(err, LORAC_EFORMAT, "%s: %s needs 0 < low_freq_factor < high_freq_factor", path, what);
    if (!rc && c->original_max_positions <= 0)
        rc = lorac_fail(err, LORAC_EFORMAT, "%s: %s original_max_position_embeddings must be > 0", path, what);
    return rc;
}

int hf_config_rope(const json_value *root, const char *path, rope_params *c, lorac_err *err) {
    int rc = LORAC_OK;
    c->scaling = ROPE_SCALING_NONE;
    c->factor = 1.0;
    c->theta = json_field_num(root, "rope_theta", 10000.0, path, &rc, err);
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

int hf_config_layer_types(const json_value *root, const char *path, int *sliding, lorac_err *err) {
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

void hf_config_write_rope(json_writer *w, const rope_params *c) {
    jw_key_double(w, "rope_theta", c->theta);
    jw_key(w, "rope_scaling");
    if (c->scaling == ROPE_SCALING_NONE) {
        jw_null(w);
        return;
    }
    jw_object_begin(w);
    jw_key(w, "rope_type");
    jw_string(w, c->scaling == ROPE_SCALING_LINEAR ? "linear" : "llama3");
    jw_key_double(w, "factor", c->factor);
    if (c->scaling == ROPE_SCALING_LLAMA3) {
        jw_key_double(w, "low_freq_factor", c->low_freq_factor);
        jw_key_double(w, "high_freq_factor", c->high_freq_factor);
        jw_key_int(w, "original_max_position_embeddings", c->original_max_positions);
    }
    jw_object_end(w);
}

