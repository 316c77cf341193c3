/* GPT-2 config.json: the fields lorac needs, validated against each other. */
#include <stdio.h>
#include <string.h>

#include "lorac/gpt2.h"
#include "lorac/json.h"

/* Reads an integer field that may appear under its GPT-2 name or the generic HF alias. */
static long long cfg_int(const json_value *root, const char *key, const char *alias, long long def,
                         const char *path, int *rc, lorac_err *err) {
    int bad = 0;
    const char *used = key;
    long long v;
    if (json_get(root, key) || !alias) {
        v = json_get_int(root, key, def, &bad);
    } else {
        used = alias;
        v = json_get_int(root, alias, def, &bad);
    }
    if (bad && *rc == LORAC_OK) *rc = lorac_fail(err, LORAC_EFORMAT, "%s: \"%s\" must be an integer", path, used);
    return v;
}

int gpt2_config_load(const char *dir, gpt2_config *cfg, lorac_err *err) {
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    json_doc *doc = NULL;
    int rc = json_parse_file(path, &doc, err);
    if (rc) return rc;
    const json_value *root = json_root(doc);
    if (json_kind(root) != JSON_OBJECT) {
        json_free(doc);
        return lorac_fail(err, LORAC_EFORMAT, "%s: expected a JSON object", path);
    }
    memset(cfg, 0, sizeof *cfg);
    const char *mt = json_get_str(root, "model_type", NULL, NULL);
    if (mt && strcmp(mt, "gpt2") != 0) {
        rc = lorac_fail(err, LORAC_EUNSUPPORTED, "%s: model_type \"%s\" is not gpt2", path, mt);
        json_free(doc);
        return rc;
    }
    cfg->n_layer = (int)cfg_int(root, "n_layer", "num_hidden_layers", -1, path, &rc, err);
    cfg->n_embd = (int)cfg_int(root, "n_embd", "hidden_size", -1, path, &rc, err);
    cfg->n_head = (int)cfg_int(root, "n_head", "num_attention_heads", -1, path, &rc, err);
    cfg->n_positions = (int)cfg_int(root, "n_positions", "max_position_embeddings", 1024, path, &rc, err);
    cfg->vocab_size = (int)cfg_int(root, "vocab_size", NULL, 50257, path, &rc, err);
    long long inner = cfg_int(root, "n_inner", NULL, -1, path, &rc, err);
    cfg->eos_token_id = (int)cfg_int(root, "eos_token_id", NULL, 50256, path, &rc, err);
    cfg->bos_token_id = (int)cfg_int(root, "bos_token_id", NULL, 50256, path, &rc, err);
    int bad = 0;
    cfg->tie_word_embeddings = json_get_bool(root, "tie_word_embeddings", 1, &bad);
    if (bad && !rc) rc = lorac_fail(err, LORAC_EFORMAT, "%s: \"tie_word_embeddings\" must be a boolean", path);
    cfg->layer_norm_epsilon = json_get_num(root, "layer_norm_epsilon", 1e-5, &bad);
    if (bad && !rc) rc = lorac_fail(err, LORAC_EFORMAT, "%s: \"layer_norm_epsilon\" must be a number", path);
    const char *act = json_get_str(root, "activation_function", "gelu_new", &bad);
    if (bad && !rc) rc = lorac_fail(err, LORAC_EFORMAT, "%s: \"activation_function\" must be a string", path);
    if (!rc) {
        if (!strcmp(act, "gelu_new") || !strcmp(act, "gelu_pytorch_tanh") || !strcmp(act, "gelu_fast"))
            cfg->activation = GPT2_ACT_GELU_NEW;
        else if (!strcmp(act, "gelu"))
            cfg->activation = GPT2_ACT_GELU;
        else
            rc = lorac_fail(err, LORAC_EUNSUPPORTED, "%s: activation_function \"%s\" is not supported (gelu_new, gelu)", path, act);
    }
    if (!rc && json_get_bool(root, "scale_attn_by_inverse_layer_idx", 0, NULL))
        rc = lorac_fail(err, LORAC_EUNSUPPORTED, "%s: scale_attn_by_inverse_layer_idx is not supported", path);
    if (!rc && json_get(root, "scale_attn_weights") && !json_get_bool(root, "scale_attn_weights", 1, NULL))
        rc = lorac_fail(err, LORAC_EUNSUPPORTED, "%s: scale_attn_weights=false is not supported", path);
    json_free(doc);
    if (rc) return rc;
    cfg->n_inner = inner > 0 ? (int)inner : 4 * cfg->n_embd;
    if (cfg->n_layer <= 0 || cfg->n_layer > 1024)
        return lorac_fail(err, LORAC_EFORMAT, "%s: n_layer %d is out of range", path, cfg->n_layer);
    if (cfg->n_embd <= 0 || cfg->n_embd > 65536)
        return lorac_fail(err, LORAC_EFORMAT, "%s: n_embd %d is out of range", path, cfg->n_embd);
    if (cfg->n_head <= 0 || cfg->n_embd % cfg->n_head)
        return lorac_fail(err, LORAC_EFORMAT, "%s: n_head %d does not divide n_embd %d", path, cfg->n_head, cfg->n_embd);
    if (cfg->n_positions <= 0 || cfg->n_positions > (1 << 20))
        return lorac_fail(err, LORAC_EFORMAT, "%s: n_positions %d is out of range", path, cfg->n_positions);
    if (cfg->vocab_size <= 0 || cfg->vocab_size > (1 << 24))
        return lorac_fail(err, LORAC_EFORMAT, "%s: vocab_size %d is out of range", path, cfg->vocab_size);
    if (cfg->n_inner <= 0 || cfg->n_inner > (1 << 20))
        return lorac_fail(err, LORAC_EFORMAT, "%s: n_inner %d is out of range", path, cfg->n_inner);
    if (!(cfg->layer_norm_epsilon > 0.0 && cfg->layer_norm_epsilon < 1.0))
        return lorac_fail(err, LORAC_EFORMAT, "%s: layer_norm_epsilon must be in (0, 1)", path);
    return LORAC_OK;
}

int gpt2_config_save(const gpt2_config *cfg, const char *path, lorac_err *err) {
    lorac_out o;
    int rc = lorac_out_open(&o, path, err);
    if (rc) return rc;
    json_writer w;
    jw_init(&w, o.f, 1);
    jw_object_begin(&w);
    jw_key(&w, "architectures");
    jw_array_begin(&w);
    jw_string(&w, "GPT2LMHeadModel");
    jw_array_end(&w);
    jw_key(&w, "model_type");
    jw_string(&w, "gpt2");
    jw_key(&w, "activation_function");
    jw_string(&w, cfg->activation == GPT2_ACT_GELU ? "gelu" : "gelu_new");
    jw_key(&w, "n_layer");
    jw_int(&w, cfg->n_layer);
    jw_key(&w, "n_embd");
    jw_int(&w, cfg->n_embd);
    jw_key(&w, "n_head");
    jw_int(&w, cfg->n_head);
    jw_key(&w, "n_positions");
    jw_int(&w, cfg->n_positions);
    jw_key(&w, "n_ctx");
    jw_int(&w, cfg->n_positions);
    jw_key(&w, "n_inner");
    jw_int(&w, cfg->n_inner);
    jw_key(&w, "vocab_size");
    jw_int(&w, cfg->vocab_size);
    jw_key(&w, "layer_norm_epsilon");
    jw_double(&w, cfg->layer_norm_epsilon);
    jw_key(&w, "bos_token_id");
    jw_int(&w, cfg->bos_token_id);
    jw_key(&w, "eos_token_id");
    jw_int(&w, cfg->eos_token_id);
    jw_key(&w, "tie_word_embeddings");
    jw_bool(&w, cfg->tie_word_embeddings);
    jw_object_end(&w);
    fputc('\n', o.f);
    if (w.error) {
        lorac_out_abort(&o);
        return lorac_fail(err, LORAC_EINVAL, "%s: internal JSON writer error", path);
    }
    return lorac_out_commit(&o, err);
}
