/* config.json, whatever the family: the shared key readers, rotary parameters in the transformers 4
 * and 5 layouts, validation, rotary frequencies, and reading/writing a directory's config.json. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "models/arch.h"

/* ---------------------------------------------------------------- key readers */

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
    if (c->pos == MODEL_POS_ROPE && !(c->rope.theta > 1.0)) return lorac_fail(err, LORAC_EFORMAT, "%s: rope_theta must be > 1", p);
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
