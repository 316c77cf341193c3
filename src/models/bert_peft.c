/* BERT / RoBERTa adapters in PEFT's layout (task_type SEQ_CLS): LoRA tensors
 * "base_model.model.<module>.lora_A.weight" / ".lora_B.weight" and the head under PEFT's
 * modules_to_save names, which PEFT 0.10 writes without "modules_to_save.default":
 * "base_model.model.classifier.weight", "base_model.model.bert.pooler.dense.weight" (BERT),
 * "base_model.model.classifier.dense.weight", "...classifier.out_proj.weight" (RoBERTa).
 * Full fine-tuning saves a whole Hugging Face model directory instead. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bert_internal.h"
#include "lorac/json.h"
#include "lorac/safetensors.h"

int bert_load_adapter_layers(bert_model *m, const peft_config *pc, lorac_err *err);

int bert_save_adapter(const bert_model *m, const char *dir, lorac_err *err) {
    peft_config pc;
    if (m->has_lora) pc = m->lora_cfg;
    else peft_config_init(&pc); /* head only: a lorac adapter with no LoRA targets */
    if (!m->has_lora) pc.n_targets = 0;
    snprintf(pc.task_type, sizeof pc.task_type, "SEQ_CLS");
    pc.n_modules_to_save = 0;
    snprintf(pc.modules_to_save[pc.n_modules_to_save++], 64, "classifier");
    if (m->cfg.family == BERT_FAMILY_BERT) snprintf(pc.modules_to_save[pc.n_modules_to_save++], 64, "pooler");
    size_t n = 0;
    st_entry *e = calloc(m->n_tp + 1, sizeof *e);
    char (*names)[200] = calloc(m->n_tp + 1, sizeof *names);
    if (!e || !names) {
        free(e);
        free(names);
        return lorac_fail(err, LORAC_ENOMEM, "%s: out of memory", dir);
    }
    for (size_t i = 0; i < m->n_tp; i++) {
        const bert_param *p = &m->tp[i];
        int is_lora = !strncmp(p->name, "base_model.model.", 17);
        const bert_tensor *t = NULL;
        for (size_t j = 0; !is_lora && j < m->n_t; j++)
            if (!strcmp(m->t[j].name, p->name)) t = &m->t[j];
        if (!is_lora && (!t || !t->head)) continue; /* only the head and LoRA go in an adapter */
        e[n].name = names[n];
        e[n].dtype = e[n].out_dtype = ST_F32;
        e[n].data = p->data;
        if (is_lora) {
            snprintf(names[n], 200, "%s", p->name);
            /* A is (r, C), B is (OC, r): recover from the site */
            e[n].ndim = 2;
            for (int l = 0; l < m->cfg.n_layer; l++)
                for (int s = 0; s < BERT_N_SITES; s++) {
                    const lora_linear *L = m->layers[l].site[s].lora;
                    if (!L) continue;
                    if (p->data == L->lora_A) { e[n].shape[0] = L->cfg.r; e[n].shape[1] = L->C; }
                    if (p->data == L->lora_B) { e[n].shape[0] = L->OC; e[n].shape[1] = L->cfg.r; }
                }
        } else {
            snprintf(names[n], 200, "base_model.model.%s", t->name);
            e[n].ndim = t->ndim;
            e[n].shape[0] = t->shape[0];
            e[n].shape[1] = t->shape[1];
        }
        n++;
    }
    lorac_outdir od;
    int rc = lorac_outdir_open(&od, dir, err);
    if (rc) {
        free(e);
        free(names);
        return rc;
    }
    char path[4300];
    {
        snprintf(path, sizeof path, "%s/adapter_model.safetensors", od.tmp);
        const char *mk[] = {"format"}, *mv[] = {"pt"};
        rc = st_write(path, e, n, mk, mv, 1, err);
    }
    if (!rc) {
        snprintf(path, sizeof path, "%s/adapter_config.json", od.tmp);
        rc = peft_config_save(&pc, path, err);
    }
    if (!rc) rc = lorac_outdir_commit(&od, err);
    else lorac_outdir_abort(&od);
    free(e);
    free(names);
    return rc;
}

/* Whether a head tensor lies under a module PEFT saves (modules_to_save matches module names by
 * suffix: "pooler" wraps "bert.pooler", so "bert.pooler.dense.weight" is under it). */
static int saved_by_peft(const peft_config *pc, const char *tensor) {
    for (int i = 0; i < pc->n_modules_to_save; i++) {
        const char *key = pc->modules_to_save[i];
        size_t k = strlen(key);
        for (const char *p = tensor; p; p = strchr(p, '.') ? strchr(p, '.') + 1 : NULL)
            if (!strncmp(p, key, k) && p[k] == '.') return 1;
    }
    return 0;
}

int bert_load_adapter(bert_model *m, const char *dir, lorac_err *err) {
    peft_config pc;
    int rc = peft_config_load(dir, &pc, err);
    if (rc) return rc;
    char path[4300];
    snprintf(path, sizeof path, "%s/adapter_config.json", dir);
    if (pc.task_type[0] && strcmp(pc.task_type, "SEQ_CLS"))
        return lorac_fail(err, LORAC_EUNSUPPORTED, "%s: task_type \"%s\" is not SEQ_CLS", path, pc.task_type);
    if (pc.bias != PEFT_BIAS_NONE || pc.lora_bias)
        return lorac_fail(err, LORAC_EUNSUPPORTED, "%s: only bias \"none\" is supported for encoders", path);
    if (m->has_lora) return lorac_fail(err, LORAC_EINVAL, "%s: the model already has LoRA layers", dir);
    /* PeftModelForSequenceClassification always adds the classifier to modules_to_save (and writes
     * null in the config when the user gave none) */
    int has_cls = 0;
    for (int i = 0; i < pc.n_modules_to_save; i++) has_cls |= !strcmp(pc.modules_to_save[i], "classifier");
    if (!has_cls && pc.n_modules_to_save < PEFT_MAX_TARGETS)
        snprintf(pc.modules_to_save[pc.n_modules_to_save++], sizeof pc.modules_to_save[0], "classifier");
    if ((pc.n_targets > 0 || pc.target_regex[0]) && (rc = bert_load_adapter_layers(m, &pc, err))) return rc;
    snprintf(path, sizeof path, "%s/adapter_model.safetensors", dir);
    st_file f;
    if ((rc = st_open(path, &f, err))) return rc;
    int *used = calloc(f.n_tensors + 1, sizeof(int));
    if (!used) {
        st_close(&f);
        return lorac_fail(err, LORAC_ENOMEM, "%s: out of memory", path);
    }
    char name[300];
    for (size_t i = 0; i < m->n_tp && !rc; i++) {
        const bert_param *p = &m->tp[i];
        int is_lora = !strncmp(p->name, "base_model.model.", 17);
        const bert_tensor *t = NULL;
        for (size_t j = 0; !is_lora && j < m->n_t; j++)
            if (!strcmp(m->t[j].name, p->name)) t = &m->t[j];
        if (!is_lora && (!t || !t->head)) continue;
        /* PEFT's default SEQ_CLS adapter saves the classifier only: the pooler stays the base's */
        if (!is_lora && !saved_by_peft(&pc, t->name)) continue;
        if (is_lora) snprintf(name, sizeof name, "%s", p->name);
        else snprintf(name, sizeof name, "base_model.model.%s", t->name);
        const st_tensor *s = st_find(&f, name);
        if (!s) {
            rc = lorac_fail(err, LORAC_ENOTFOUND, "%s: missing tensor %s", path, name);
            break;
        }
        if (s->numel != p->numel) {
            rc = lorac_fail(err, LORAC_ESHAPE, "%s: tensor %s has %zu values, the model expects %zu", path, name, s->numel, p->numel);
            break;
        }
        used[s - f.tensors] = 1;
        rc = st_read_f32(&f, s, p->data, err);
    }
    for (size_t i = 0; i < f.n_tensors && !rc; i++)
        if (!used[i]) rc = lorac_fail(err, LORAC_EFORMAT, "%s: tensor %s belongs to no module of this model", path, f.tensors[i].name);
    free(used);
    st_close(&f);
    /* reload the LoRA layers' merged copies if they were merged for inference */
    if (!rc && !m->training) {
        bert_model_train_mode(m, 1);
        bert_model_train_mode(m, 0);
    }
    return rc;
}

/* config.json of the source with num_labels (and the architecture) set. */
static int write_config(const bert_model *m, const char *src_dir, const char *path, lorac_err *err) {
    char src[4300];
    snprintf(src, sizeof src, "%s/config.json", src_dir);
    json_doc *doc = NULL;
    int rc = json_parse_file(src, &doc, err);
    if (rc) return rc;
    const json_value *r = json_root(doc);
    lorac_out o;
    if ((rc = lorac_out_open(&o, path, err))) {
        json_free(doc);
        return rc;
    }
    json_writer w;
    jw_init(&w, o.f, 1);
    jw_object_begin(&w);
    for (size_t i = 0; i < json_len(r); i++) {
        const char *k = json_key_at(r, i);
        const json_value *v = json_at(r, i);
        if (!strcmp(k, "num_labels") || !strcmp(k, "id2label") || !strcmp(k, "label2id") || !strcmp(k, "architectures"))
            continue;
        /* copy scalars and flat values; nested objects/arrays are copied as scalars where possible */
        json_type ty = json_kind(v);
        jw_key(&w, k);
        if (ty == JSON_STRING) jw_string_n(&w, json_str(v), json_str_len(v));
        else if (ty == JSON_NUMBER) {
            long long iv;
            if (json_int_exact(v, &iv)) jw_int(&w, iv);
            else jw_double(&w, json_num(v));
        } else if (ty == JSON_BOOL) jw_bool(&w, json_bool(v));
        else jw_null(&w);
    }
    jw_key(&w, "architectures");
    jw_array_begin(&w);
    jw_string(&w, m->cfg.family == BERT_FAMILY_BERT ? "BertForSequenceClassification" : "RobertaForSequenceClassification");
    jw_array_end(&w);
    jw_key(&w, "num_labels");
    jw_int(&w, m->cfg.num_labels);
    jw_object_end(&w);
    fputc('\n', o.f);
    json_free(doc);
    if (w.error) {
        lorac_out_abort(&o);
        return lorac_fail(err, LORAC_EINVAL, "%s: internal JSON writer error", path);
    }
    return lorac_out_commit(&o, err);
}

/* Copies the tokenizer files of the source directory that exist, so OUT is a complete model dir. */
static int copy_tokenizer(const char *src_dir, const char *dst_dir, lorac_err *err) {
    static const char *files[] = {"vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                                  "vocab.json", "merges.txt"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char src[4300], dst[4300];
        snprintf(src, sizeof src, "%s/%s", src_dir, files[i]);
        FILE *f = fopen(src, "rb");
        if (!f) continue;
        fclose(f);
        char *data = NULL;
        size_t n = 0;
        int rc = lorac_read_file(src, &data, &n, err);
        snprintf(dst, sizeof dst, "%s/%s", dst_dir, files[i]);
        if (!rc) rc = lorac_write_file(dst, data, n, err);
        free(data);
        if (rc) return rc;
    }
    return LORAC_OK;
}

int bert_save_full(const bert_model *m, const char *src_dir, const char *dir, lorac_err *err) {
    if (m->has_lora) return lorac_fail(err, LORAC_EINVAL, "%s: save a LoRA model as an adapter", dir);
    st_entry *e = calloc(m->n_t, sizeof *e);
    if (!e) return lorac_fail(err, LORAC_ENOMEM, "%s: out of memory", dir);
    for (size_t i = 0; i < m->n_t; i++) {
        e[i].name = m->t[i].name;
        e[i].dtype = e[i].out_dtype = ST_F32;
        e[i].ndim = m->t[i].ndim;
        e[i].shape[0] = m->t[i].shape[0];
        e[i].shape[1] = m->t[i].shape[1];
        e[i].data = m->t[i].w;
    }
    lorac_outdir od;
    int rc = lorac_outdir_open(&od, dir, err);
    if (rc) {
        free(e);
        return rc;
    }
    char path[4300];
    {
        snprintf(path, sizeof path, "%s/model.safetensors", od.tmp);
        const char *mk[] = {"format"}, *mv[] = {"pt"};
        rc = st_write(path, e, m->n_t, mk, mv, 1, err);
    }
    if (!rc) {
        snprintf(path, sizeof path, "%s/config.json", od.tmp);
        rc = write_config(m, src_dir, path, err);
    }
    if (!rc) rc = copy_tokenizer(src_dir, od.tmp, err);
    if (!rc) rc = lorac_outdir_commit(&od, err);
    else lorac_outdir_abort(&od);
    free(e);
    return rc;
}
