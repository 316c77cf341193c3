/* BERT / RoBERTa weights: the tensor table (HF names), one arena for the values, one for the
 * gradients of trainable tensors, the checkpoint copy and the head's initialisation. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bert_internal.h"
#include "hf_shards.h"

static int add(bert_model *m, size_t cap, const char *name, int64_t d0, int64_t d1, int decay, int head) {
    if (m->n_t >= cap) return -1;
    bert_tensor *t = &m->t[m->n_t++];
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    t->ndim = d1 > 0 ? 2 : 1;
    t->shape[0] = d0;
    t->shape[1] = d1 > 0 ? d1 : 0;
    t->numel = (size_t)d0 * (size_t)(d1 > 0 ? d1 : 1);
    t->off = m->n_floats;
    t->decay = decay;
    t->head = head;
    m->n_floats += t->numel;
    return 0;
}

/* The table in HF state-dict order; head tensors last so their gradients are one slice. */
static int build_table(bert_model *m, int num_labels) {
    const bert_config *c = &m->cfg;
    size_t cap = 5 + (size_t)c->n_layer * 16 + 4;
    m->t = calloc(cap, sizeof *m->t);
    if (!m->t) return -1;
    const char *P = m->prefix;
    char n[200];
    int C = c->hidden, FF = c->intermediate;
    snprintf(n, sizeof n, "%sembeddings.word_embeddings.weight", P);
    add(m, cap, n, c->vocab_size, C, 1, 0);
    snprintf(n, sizeof n, "%sembeddings.position_embeddings.weight", P);
    add(m, cap, n, c->max_pos, C, 1, 0);
    snprintf(n, sizeof n, "%sembeddings.token_type_embeddings.weight", P);
    add(m, cap, n, c->type_vocab, C, 1, 0);
    snprintf(n, sizeof n, "%sembeddings.LayerNorm.weight", P);
    add(m, cap, n, C, 0, 0, 0);
    snprintf(n, sizeof n, "%sembeddings.LayerNorm.bias", P);
    add(m, cap, n, C, 0, 0, 0);
    for (int l = 0; l < c->n_layer; l++) {
        for (int s = 0; s < BERT_N_SITES; s++) {
            int in = s == BERT_SITE_FO ? FF : C, out = s == BERT_SITE_FC ? FF : C;
            snprintf(n, sizeof n, "%sencoder.layer.%d.%s.weight", P, l, bert_site_name(s));
            add(m, cap, n, out, in, 1, 0);
            snprintf(n, sizeof n, "%sencoder.layer.%d.%s.bias", P, l, bert_site_name(s));
            add(m, cap, n, out, 0, 0, 0);
            if (s == BERT_SITE_AO || s == BERT_SITE_FO) {
                const char *ln = s == BERT_SITE_AO ? "attention.output.LayerNorm" : "output.LayerNorm";
                snprintf(n, sizeof n, "%sencoder.layer.%d.%s.weight", P, l, ln);
                add(m, cap, n, C, 0, 0, 0);
                snprintf(n, sizeof n, "%sencoder.layer.%d.%s.bias", P, l, ln);
                add(m, cap, n, C, 0, 0, 0);
            }
        }
    }
    m->head_off = m->n_floats;
    if (c->family == BERT_FAMILY_BERT) {
        snprintf(n, sizeof n, "%spooler.dense.weight", P);
        add(m, cap, n, C, C, 1, 1);
        snprintf(n, sizeof n, "%spooler.dense.bias", P);
        add(m, cap, n, C, 0, 0, 1);
        add(m, cap, "classifier.weight", num_labels, C, 1, 1);
        add(m, cap, "classifier.bias", num_labels, 0, 0, 1);
    } else {
        add(m, cap, "classifier.dense.weight", C, C, 1, 1);
        add(m, cap, "classifier.dense.bias", C, 0, 0, 1);
        add(m, cap, "classifier.out_proj.weight", num_labels, C, 1, 1);
        add(m, cap, "classifier.out_proj.bias", num_labels, 0, 0, 1);
    }
    return 0;
}

/* The checkpoint tensor for a table name: as is, or without the family prefix (a bare BertModel). */
static const st_tensor *find(const hf_shards *sh, const bert_model *m, const char *name, const st_file **f) {
    const st_tensor *t = hf_shards_find(sh, name, f);
    size_t pl = strlen(m->prefix);
    if (!t && !strncmp(name, m->prefix, pl)) t = hf_shards_find(sh, name + pl, f);
    return t;
}

static void set_views(bert_model *m) {
    for (size_t i = 0; i < m->n_t; i++) {
        bert_tensor *t = &m->t[i];
        t->w = m->arena + t->off;
        int trained = m->opt.full_ft || t->head;
        t->g = !trained ? NULL : m->opt.full_ft ? m->garena + t->off : m->garena + (t->off - m->head_off);
    }
    size_t i = 0;
    bert_tensor *T = m->t;
    m->wte = T[0].w; m->dwte = T[0].g;
    m->wpe = T[1].w; m->dwpe = T[1].g;
    m->wtt = T[2].w; m->dwtt = T[2].g;
    m->emb_ln_g = T[3].w; m->demb_ln_g = T[3].g;
    m->emb_ln_b = T[4].w; m->demb_ln_b = T[4].g;
    i = 5;
    const int C = m->cfg.hidden, FF = m->cfg.intermediate;
    for (int l = 0; l < m->cfg.n_layer; l++) {
        bert_layer *L = &m->layers[l];
        for (int s = 0; s < BERT_N_SITES; s++) {
            bert_lin *S = &L->site[s];
            S->C = s == BERT_SITE_FO ? FF : C;
            S->OC = s == BERT_SITE_FC ? FF : C;
            S->w = T[i].w; S->dw = T[i].g; i++;
            S->b = T[i].w; S->db = T[i].g; i++;
            snprintf(S->module, sizeof S->module, "%sencoder.layer.%d.%s", m->prefix, l, bert_site_name(s));
            if (s == BERT_SITE_AO) {
                L->ln1_g = T[i].w; L->dln1_g = T[i].g; i++;
                L->ln1_b = T[i].w; L->dln1_b = T[i].g; i++;
            } else if (s == BERT_SITE_FO) {
                L->ln2_g = T[i].w; L->dln2_g = T[i].g; i++;
                L->ln2_b = T[i].w; L->dln2_b = T[i].g; i++;
            }
        }
    }
    bert_lin *hd[2] = {&m->dense, &m->cls};
    for (int h = 0; h < 2; h++) {
        hd[h]->C = C;
        hd[h]->OC = (int)T[i].shape[0];
        hd[h]->w = T[i].w; hd[h]->dw = T[i].g; i++;
        hd[h]->b = T[i].w; hd[h]->db = T[i].g; i++;
    }
}

static void shape_str(char *buf, size_t size, int ndim, const int64_t *shape) {
    if (ndim == 1) snprintf(buf, size, "[%lld]", (long long)shape[0]);
    else if (ndim == 2) snprintf(buf, size, "[%lld, %lld]", (long long)shape[0], (long long)shape[1]);
    else snprintf(buf, size, "(%d dims)", ndim);
}

int bert_weights_load(bert_model *m, const char *dir, lorac_err *err) {
    hf_shards sh;
    memset(&sh, 0, sizeof sh);
    int rc = hf_shards_open(dir, &sh, err);
    if (rc) return rc;
    m->layers = calloc((size_t)m->cfg.n_layer, sizeof *m->layers);
    /* The number of labels: the option, else the checkpoint's classifier, else config.json's. */
    const char *cls_name = m->cfg.family == BERT_FAMILY_BERT ? "classifier.weight" : "classifier.out_proj.weight";
    const st_file *f = NULL;
    const st_tensor *ct = hf_shards_find(&sh, cls_name, &f);
    int nl = m->opt.num_labels > 0 ? m->opt.num_labels : ct ? (int)ct->shape[0] : m->cfg.num_labels;
    if (ct && (ct->ndim != 2 || ct->shape[0] != nl)) {
        rc = lorac_fail(err, LORAC_ESHAPE, "%s: %s has %lld labels but %d were asked for", f->path, cls_name,
                        (long long)ct->shape[0], nl);
        goto done;
    }
    m->cfg.num_labels = nl;
    if (!m->layers || build_table(m, nl)) {
        rc = lorac_fail(err, LORAC_ENOMEM, "%s: out of memory for the tensor table", dir);
        goto done;
    }
    size_t gn = m->opt.full_ft ? m->n_floats : m->n_floats - m->head_off;
    m->arena = malloc(m->n_floats * sizeof(float));
    m->garena = calloc(gn, sizeof(float));
    if (!m->arena || !m->garena) {
        rc = lorac_fail(err, LORAC_ENOMEM, "%s: out of memory for %zu weights", dir, m->n_floats);
        goto done;
    }
    set_views(m);
    lorac_rng rng;
    lorac_rng_seed(&rng, m->opt.seed ^ 0x68656164ULL); /* "head" */
    for (size_t i = 0; i < m->n_t && !rc; i++) {
        bert_tensor *t = &m->t[i];
        const st_tensor *s = find(&sh, m, t->name, &f);
        if (!s) {
            if (!t->head) {
                rc = lorac_fail(err, LORAC_ENOTFOUND, "%s: the checkpoint has no tensor %s", dir, t->name);
                break;
            }
            /* HF _init_weights: Linear weight ~ N(0, initializer_range), bias 0. */
            for (size_t j = 0; j < t->numel; j++)
                t->w[j] = t->ndim == 2 ? m->cfg.initializer_range * lorac_rng_normal(&rng) : 0.0f;
            continue;
        }
        int ok = s->ndim == t->ndim && s->shape[0] == t->shape[0] && (t->ndim == 1 || s->shape[1] == t->shape[1]);
        if (!ok) {
            char a[64], b[64];
            shape_str(a, sizeof a, s->ndim, s->shape);
            shape_str(b, sizeof b, t->ndim, t->shape);
            rc = lorac_fail(err, LORAC_ESHAPE, "%s: tensor %s has shape %s, expected %s from config.json", f->path,
                            s->name, a, b);
            break;
        }
        rc = st_read_f32(f, s, t->w, err);
    }
done:
    hf_shards_close(&sh);
    return rc;
}
