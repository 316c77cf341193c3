/* BERT / RoBERTa config.json: the fields lorac needs, validated against each other. */
#include <stdio.h>
#include <string.h>

#include "lorac/bert.h"
#include "lorac/json.h"

static const char *SITE_NAMES[BERT_N_SITES] = {
    "attention.self.query", "attention.self.key", "attention.self.value",
    "attention.output.dense", "intermediate.dense", "output.dense",
};

const char *bert_site_name(int site) {
    return site >= 0 && site < BERT_N_SITES ? SITE_NAMES[site] : "?";
}

static int get_int(const json_value *root, const char *key, long long def, long long lo, long long hi,
                   const char *path, int *out, lorac_err *err) {
    int bad = 0;
    long long v = json_get_int(root, key, def, &bad);
    if (bad) return lorac_fail(err, LORAC_EFORMAT, "%s: \"%s\" must be an integer", path, key);
    if (v < lo || v > hi)
        return lorac_fail(err, LORAC_EFORMAT, "%s: \"%s\" = %lld is out of range [%lld, %lld]", path, key, v, lo, hi);
    *out = (int)v;
    return LORAC_OK;
}

static int get_prob(const json_value *root, const char *key, double def, const char *path, float *out,
                    lorac_err *err) {
    int bad = 0;
    double v = json_get_num(root, key, def, &bad);
    if (bad || v < 0 || v >= 1)
        return lorac_fail(err, LORAC_EFORMAT, "%s: \"%s\" must be a number in [0, 1)", path, key);
    *out = (float)v;
    return LORAC_OK;
}

int bert_config_load(const char *dir, bert_config *cfg, lorac_err *err) {
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    json_doc *doc = NULL;
    int rc = json_parse_file(path, &doc, err);
    if (rc) return rc;
    const json_value *r = json_root(doc);
    memset(cfg, 0, sizeof *cfg);
    if (json_kind(r) != JSON_OBJECT) {
        rc = lorac_fail(err, LORAC_EFORMAT, "%s: expected a JSON object", path);
        goto done;
    }
    const char *mt = json_get_str(r, "model_type", NULL, NULL);
    if (!mt) {
        rc = lorac_fail(err, LORAC_EFORMAT, "%s: no \"model_type\" (expected \"bert\" or \"roberta\")", path);
        goto done;
    }
    if (!strcmp(mt, "bert")) cfg->family = BERT_FAMILY_BERT;
    else if (!strcmp(mt, "roberta")) cfg->family = BERT_FAMILY_ROBERTA;
    else {
        rc = lorac_fail(err, LORAC_EUNSUPPORTED, "%s: model_type \"%s\" is not bert or roberta", path, mt);
        goto done;
    }
    if ((rc = get_int(r, "hidden_size", -1, 1, 65536, path, &cfg->hidden, err))) goto done;
    if ((rc = get_int(r, "num_hidden_layers", -1, 1, 1024, path, &cfg->n_layer, err))) goto done;
    if ((rc = get_int(r, "num_attention_heads", -1, 1, 4096, path, &cfg->n_head, err))) goto done;
    if ((rc = get_int(r, "intermediate_size", -1, 1, 1 << 20, path, &cfg->intermediate, err))) goto done;
    if ((rc = get_int(r, "vocab_size", -1, 1, 1 << 24, path, &cfg->vocab_size, err))) goto done;
    if ((rc = get_int(r, "max_position_embeddings", 512, 1, 1 << 20, path, &cfg->max_pos, err))) goto done;
    if ((rc = get_int(r, "type_vocab_size", 2, 1, 1 << 16, path, &cfg->type_vocab, err))) goto done;
    if ((rc = get_int(r, "pad_token_id", cfg->family == BERT_FAMILY_ROBERTA ? 1 : 0, 0, cfg->vocab_size - 1,
                      path, &cfg->pad_token_id, err))) goto done;
    if (cfg->hidden % cfg->n_head) {
        rc = lorac_fail(err, LORAC_EFORMAT, "%s: num_attention_heads %d does not divide hidden_size %d", path,
                        cfg->n_head, cfg->hidden);
        goto done;
    }
    int bad = 0;
    double eps = json_get_num(r, "layer_norm_eps", 1e-12, &bad);
    if (bad || eps <= 0) {
        rc = lorac_fail(err, LORAC_EFORMAT, "%s: \"layer_norm_eps\" must be a positive number", path);
        goto done;
    }
    cfg->ln_eps = (float)eps;
    cfg->initializer_range = (float)json_get_num(r, "initializer_range", 0.02, NULL);
    const char *act = json_get_str(r, "hidden_act", "gelu", &bad);
    if (bad || !act) {
        rc = lorac_fail(err, LORAC_EFORMAT, "%s: \"hidden_act\" must be a string", path);
        goto done;
    }
    if (!strcmp(act, "gelu")) cfg->gelu_tanh = 0;
    else if (!strcmp(act, "gelu_new") || !strcmp(act, "gelu_pytorch_tanh")) cfg->gelu_tanh = 1;
    else {
        rc = lorac_fail(err, LORAC_EUNSUPPORTED, "%s: hidden_act \"%s\" is not supported (gelu, gelu_new)", path, act);
        goto done;
    }
    const char *pet = json_get_str(r, "position_embedding_type", "absolute", NULL);
    if (pet && strcmp(pet, "absolute")) {
        rc = lorac_fail(err, LORAC_EUNSUPPORTED, "%s: position_embedding_type \"%s\" is not supported (absolute)", path, pet);
        goto done;
    }
    if ((rc = get_prob(r, "hidden_dropout_prob", 0.1, path, &cfg->hidden_dropout, err))) goto done;
    if ((rc = get_prob(r, "attention_probs_dropout_prob", 0.1, path, &cfg->attn_dropout, err))) goto done;
    const json_value *cd = json_get(r, "classifier_dropout");
    if (cd && json_kind(cd) != JSON_NULL) {
        if ((rc = get_prob(r, "classifier_dropout", 0.1, path, &cfg->classifier_dropout, err))) goto done;
    } else {
        cfg->classifier_dropout = cfg->hidden_dropout;
    }
    /* num_labels: explicit, else the size of id2label, else 2 (HF's PretrainedConfig default). */
    const json_value *id2 = json_get(r, "id2label");
    int nl = id2 && json_kind(id2) == JSON_OBJECT ? (int)json_len(id2) : 2;
    if ((rc = get_int(r, "num_labels", nl, 1, 1 << 16, path, &cfg->num_labels, err))) goto done;
    if (cfg->family == BERT_FAMILY_ROBERTA && cfg->max_pos <= cfg->pad_token_id + 1) {
        rc = lorac_fail(err, LORAC_EFORMAT, "%s: max_position_embeddings %d leaves no positions after padding_idx %d",
                        path, cfg->max_pos, cfg->pad_token_id);
        goto done;
    }
done:
    json_free(doc);
    return rc;
}
