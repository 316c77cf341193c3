/* PEFT adapter directories for every family: the model's LoRA layers written in PEFT's layout
 * ("base_model.model.<module>.lora_A.weight" (r, in) / ".lora_B.weight" (out, r); embeddings
 * "lora_embedding_A" (r, V) / "lora_embedding_B" (D, r)) and read back, with trained biases and
 * modules_to_save (a classification head is always saved so, as PeftModelForSequenceClassification
 * does). LoRA on some q/k/v slices of a fused map (the paper's q,v split of GPT-2's c_attn) is written
 * as the exactly equivalent PEFT adapter on the whole map (rank k·r, zero blocks for the slices
 * without LoRA, alpha scaled so the scaling is unchanged) and read back into the split form. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "lorac/safetensors.h"
#include "models/model_internal.h"

#define PEFT_PREFIX "base_model.model."
#define SPLIT_KEY "lorac.c_attn_split" /* safetensors metadata: which q/k/v slices a fused map's adapter covers */

/* ---------------------------------------------------------------- base tensors an adapter may replace */

/* Every base tensor (and the head) by HF name, for trained biases and modules_to_save. */
static int extra_slots(model *m, hf_slot **out, size_t *n_out, lorac_err *err) {
    model_tensor *t = NULL;
    size_t n = 0;
    int rc = model_tensors(m, &t, &n, err);
    hf_slot *s = rc ? NULL : calloc(n + 2, sizeof *s);
    if (!rc && !s) rc = lorac_fail(err, LORAC_ENOMEM, "%s: out of memory", m->path);
    size_t k = 0;
    for (size_t i = 0; !rc && i < n; i++, k++) {
        snprintf(s[k].name, sizeof s[k].name, "%s", t[i].name);
        s[k].slot = t[i].f32;
        s[k].q = t[i].q;
        s[k].d0 = t[i].shape[0];
        s[k].d1 = t[i].ndim == 2 ? t[i].shape[1] : 0;
    }
    /* a tied LM head is a module of its own in PEFT's eyes (modules_to_save may copy it) */
    model_tensor h = !rc && m->cfg.head == MODEL_HEAD_LM && m->cfg.tie_word_embeddings ? model_tied_head(m) : (model_tensor){0};
    if (h.name[0]) {
        snprintf(s[k].name, sizeof s[k].name, "%s", h.name);
        s[k].q = h.q, s[k].d0 = h.shape[0], s[k].d1 = h.shape[1];
        k++;
    }
    free(t);
    *out = s;
    *n_out = k;
    return rc;
}

/* Points the model's tensors at the adapter's copies (old[] keeps what they were); a copy of one of
 * a tied embedding / head pair unties them, as PEFT's ModulesToSaveWrapper (a deep copy) does. */
static void point_extras(model *m, const hf_slot *slots, size_t ns, const peft_adapter *x, const float **oldf, qmat *oldq) {
    for (size_t i = 0; i < ns; i++) {
        oldf[i] = slots[i].slot ? *slots[i].slot : NULL;
        if (slots[i].q) oldq[i] = *slots[i].q;
    }
    for (size_t i = 0; i < x->n; i++) {
        const hf_slot *s = &slots[hf_slot_find(slots, ns, x->t[i].name)];
        if (s->q) *s->q = qmat_f32(x->t[i].data, (int)s->d0, (int)s->d1);
        else *s->slot = x->t[i].data;
        if (s->q == &m->embed || s->q == &m->lm_head) m->cfg.tie_word_embeddings = 0;
    }
}

static void restore_extras(model *m, const hf_slot *slots, size_t ns, const float **oldf, const qmat *oldq,
                           const model_config *cfg0) {
    for (size_t i = 0; i < ns; i++) {
        if (slots[i].slot) *slots[i].slot = oldf[i];
        if (slots[i].q) *slots[i].q = oldq[i];
    }
    m->cfg = *cfg0;
}

/* ---------------------------------------------------------------- attach */

/* One site's LoRA from the adapter (module's lora_A / lora_B), as a split when the adapter says so. */
static int attach_site(model *m, hf_attach *h, int l, int s, const char *module, const int *split, int k, lorac_rng *rng,
                       lorac_err *err) {
    const peft_config *pc = &h->a->cfg;
    const model_linear *L = &m->layers[l].site[s];
    int r = peft_rank_for(pc, module), as_split = s == ARCH_QKV && k > 0 && r % k == 0;
    lora_config lc = lora_config_default(as_split ? r / k : r, 1.0f);
    lc.lora_dropout = (float)pc->lora_dropout;
    lc.lora_alpha = (float)(peft_scaling_for(pc, module) * lc.r); /* PEFT's exact scaling, whatever made it */
    int rc = model_lora_attach(m, l, s, &lc, as_split ? split : NULL, rng, err);
    char na[256], nb[256];
    snprintf(na, sizeof na, PEFT_PREFIX "%s.lora_A.weight", module);
    snprintf(nb, sizeof nb, PEFT_PREFIX "%s.lora_B.weight", module);
    const site_lora *lo = rc ? NULL : model_site_lora(m, l, s);
    if (!lo) return rc;
    if (!as_split) {
        rc = hf_attach_take(h, na, r, L->C, lo->lin->lora_A, err);
        return rc ? rc : hf_attach_take(h, nb, L->OC, r, lo->lin->lora_B, err);
    }
    float *Bx = malloc((size_t)L->OC * r * sizeof(float));
    if (!Bx) return lorac_fail(err, LORAC_ENOMEM, "%s: out of memory", h->src);
    rc = hf_attach_take(h, na, r, L->C, lo->split->lora_A, err);
    if (!rc) rc = hf_attach_take(h, nb, L->OC, r, Bx, err);
    char what[4500];
    snprintf(what, sizeof what, "%s: '%s'", h->src, nb);
    if (!rc) rc = lora_merged_set_fused_B(lo->split, Bx, what, err);
    free(Bx);
    return rc;
}

/* Every LoRA layer the adapter's config targets; *any says whether there was one. */
static int attach_layers(model *m, hf_attach *h, int *any, lorac_err *err) {
    const peft_config *pc = &h->a->cfg;
    int split[3] = {0, 0, 0}, k = 0, rc = LORAC_OK;
    const char *sv = peft_adapter_meta(h->a, SPLIT_KEY);
    if (sv && sscanf(sv, "%d,%d,%d", &split[0], &split[1], &split[2]) == 3) k = !!split[0] + !!split[1] + !!split[2];
    lorac_rng rng;
    lorac_rng_seed(&rng, 0);
    char module[192];
    for (int l = 0; l < m->cfg.n_layer && !rc; l++)
        for (int s = 0; s < ARCH_N_SITES && !rc; s++) {
            if (!m->fam->site[s]) continue;
            model_site_module(m, l, s, module, sizeof module);
            if (!peft_targets_module(pc, module)) continue;
            rc = attach_site(m, h, l, s, module, split, k, &rng, err);
            *any = 1;
        }
    model_site_module(m, -1, 0, module, sizeof module);
    if (!rc && peft_targets_module(pc, module)) {
        int r = peft_rank_for(pc, module);
        lora_config lc = lora_config_default(r, (float)(peft_scaling_for(pc, module) * r));
        char na[256], nb[256];
        snprintf(na, sizeof na, PEFT_PREFIX "%s.lora_embedding_A", module);
        snprintf(nb, sizeof nb, PEFT_PREFIX "%s.lora_embedding_B", module);
        if (!(rc = model_lora_attach_embed(m, &lc, &rng, err)) && !(rc = hf_attach_take(h, na, r, m->cfg.vocab_size, m->embed_lora->lora_A, err)))
            rc = hf_attach_take(h, nb, m->cfg.n_embd, r, m->embed_lora->lora_B, err);
        *any = 1;
    }
    return rc;
}

/* A classifier's adapter carries its head under modules_to_save: the first n of the family's
 * cls_save (PeftModelForSequenceClassification adds the classifier, and writes null in the config
 * when the user gave none; lorac's saved adapters also hold the pooler). */
static void classifier_saved(const model *m, peft_config *pc, int n) {
    for (int i = 0; i < n && m->cfg.head != MODEL_HEAD_LM && m->fam->cls_save[i]; i++) {
        int dup = 0;
        for (int j = 0; j < pc->n_modules_to_save; j++) dup |= !strcmp(pc->modules_to_save[j], m->fam->cls_save[i]);
        if (!dup && pc->n_modules_to_save < PEFT_MAX_TARGETS)
            snprintf(pc->modules_to_save[pc->n_modules_to_save++], sizeof pc->modules_to_save[0], "%s", m->fam->cls_save[i]);
    }
}

int model_peft_attach(model *m, const peft_adapter *a0, lorac_err *err) {
    const char *src = a0->source[0] ? a0->source : "adapter";
    if (m->has_lora || m->peft_extra) return lorac_fail(err, LORAC_EINVAL, "%s: the model already has LoRA layers", src);
    if (m->full_ft) return lorac_fail(err, LORAC_EINVAL, "%s: a fully fine-tuned model takes no adapter", src);
    if (m->cfg.head == MODEL_HEAD_LM && !strcmp(a0->cfg.task_type, "SEQ_CLS"))
        return lorac_fail(err, LORAC_EUNSUPPORTED, "%s: a SEQ_CLS adapter needs a sequence classifier, not %s", src, m->path);
    if (a0->cfg.fan_in_fan_out && !m->cfg.conv1d)
        return lorac_fail(err, LORAC_EFORMAT, "%s: fan_in_fan_out is true but %s's maps are nn.Linear", src, m->fam->name);
    peft_adapter a = *a0; /* the config may gain the classifier; the tensors are the caller's */
    classifier_saved(m, &a.cfg, 1);
    hf_attach h;
    hf_slot *slots = NULL;
    size_t ns = 0;
    peft_adapter *extra = NULL;
    const float **oldf = NULL;
    qmat *oldq = NULL;
    model_config cfg0 = m->cfg;
    int rc = hf_attach_begin(&h, &a, m->fam->name, err), any = 0;
    /* trained biases and modules_to_save copies first, so LoRA layers wrap the adapter's biases */
    if (!rc) rc = extra_slots(m, &slots, &ns, err);
    if (!rc) rc = hf_attach_extras(&h, slots, ns, &extra, err);
    if (!rc && extra && (!(oldf = calloc(ns, sizeof *oldf)) || !(oldq = calloc(ns, sizeof *oldq))))
        rc = lorac_fail(err, LORAC_ENOMEM, "%s: out of memory", src);
    if (!rc && extra) point_extras(m, slots, ns, extra, oldf, oldq);
    int pointed = !rc && extra;
    if (!rc) rc = attach_layers(m, &h, &any, err);
    if (!rc && !any && !extra) rc = lorac_fail(err, LORAC_EFORMAT, "%s: target_modules match no %s module", src, m->fam->name);
    if (!rc) rc = hf_attach_check_all_used(&h, err);
    hf_attach_end(&h);
    if (rc && pointed) restore_extras(m, slots, ns, oldf, oldq, &cfg0); /* nothing half-loaded */
    rc = model_lora_finish(m, rc, err);
    if (!rc) m->peft_extra = extra;
    else peft_adapter_free(extra);
    free(slots);
    free(oldf);
    free(oldq);
    if (!rc && !m->training) rc = model_train_mode(m, 0, err); /* merged for inference, as the model was */
    return rc;
}

/* ---------------------------------------------------------------- save */

/* The shortest dotted suffix of site s's name that PEFT matches against no other map of the block or
 * head, unless that map is used too: "q_proj", "c_proj" (both projections), "attn.c_proj". */
static const char *target_name(const model *m, int s, const int *used) {
    const char *name = m->fam->site[s];
    for (const char *p = name + strlen(name) - 1; p >= name; p--) {
        if (p != name && p[-1] != '.') continue;
        int clash = 0;
        for (int o = 0; o < ARCH_N_SITES && !clash; o++)
            clash = m->fam->site[o] && o != s && !used[o] && peft_module_matches(m->fam->site[o], p);
        for (int i = 0; i < 2 && !clash && m->fam->cls[i]; i++) clash = peft_module_matches(m->fam->cls[i] + (m->fam->cls[i][0] == '^'), p);
        if (!clash) return p;
    }
    return name;
}

/* The adapter config: one r, alpha and rsLoRA for every layer (the first one's), the targets, the
 * fused map's split as a rank/alpha pattern, trained biases and modules_to_save. */
static int save_config(const model *m, const lora_config *first, const int *used, const int *split, peft_config *pc,
                       const char *dir, lorac_err *err) {
    peft_config_init(pc);
    snprintf(pc->task_type, sizeof pc->task_type, "%s", m->cfg.head == MODEL_HEAD_LM ? "CAUSAL_LM" : "SEQ_CLS");
    pc->fan_in_fan_out = m->cfg.conv1d;
    pc->n_targets = 0;
    if (first) {
        char num[32]; /* the float settings as the short decimals a user typed (0.1, not 0.10000000149011612) */
        pc->r = first->r;
        snprintf(num, sizeof num, "%.7g", first->lora_alpha);
        pc->lora_alpha = strtod(num, NULL);
        snprintf(num, sizeof num, "%.7g", first->lora_dropout);
        pc->lora_dropout = strtod(num, NULL);
        pc->use_rslora = first->use_rslora;
    }
    for (int s = 0; s < ARCH_N_SITES; s++) {
        const char *t = used[s] ? target_name(m, s, used) : NULL;
        int dup = 0;
        for (int i = 0; t && i < pc->n_targets; i++) dup |= !strcmp(pc->target_modules[i], t);
        if (t && !dup) snprintf(pc->target_modules[pc->n_targets++], 64, "%s", t);
    }
    if (m->embed_lora) snprintf(pc->target_modules[pc->n_targets++], 64, "%s", m->fam->embed_alias ? m->fam->embed_alias : m->fam->embed);
    int k = split[0] + split[1] + split[2];
    if (k) { /* rank k·r on the fused map with alpha chosen so that PEFT's scaling equals ours */
        double sc = pc->use_rslora ? pc->lora_alpha / sqrt((double)pc->r) : pc->lora_alpha / pc->r;
        int rk = pc->r * k;
        snprintf(pc->rank_pattern[0].key, sizeof pc->rank_pattern[0].key, "%s", target_name(m, ARCH_QKV, used));
        pc->rank_pattern[0].value = rk;
        pc->alpha_pattern[0] = pc->rank_pattern[0];
        pc->alpha_pattern[0].value = pc->use_rslora ? sc * sqrt((double)rk) : sc * rk;
        pc->n_rank_pattern = pc->n_alpha_pattern = 1;
    }
    const peft_adapter *x = m->peft_extra;
    if (x) {
        pc->bias = x->cfg.bias;
        pc->n_modules_to_save = x->cfg.n_modules_to_save;
        memcpy(pc->modules_to_save, x->cfg.modules_to_save, sizeof pc->modules_to_save);
    }
    classifier_saved(m, pc, 2);
    if (!first && !x && m->cfg.head == MODEL_HEAD_LM)
        return lorac_fail(err, LORAC_EINVAL, "%s: the model has no LoRA layers to save", dir);
    return LORAC_OK;
}

/* The tensors of the adapter file. */
typedef struct save_list {
    st_entry *e;
    char (*names)[256];
    lorac_blocks owned;   /* the fused B' of q/k/v splits */
    size_t n, cap;
} save_list;

static void add_entry(save_list *l, const char *name, int ndim, int64_t d0, int64_t d1, const float *data) {
    snprintf(l->names[l->n], sizeof l->names[0], "%s", name);
    l->e[l->n] = st_entry_f32(l->names[l->n], ndim, d0, d1, data);
    l->n++;
}

static int collect(model *m, save_list *l, int k, lorac_err *err) {
    char module[192], name[256];
    for (int ly = 0; ly < m->cfg.n_layer; ly++)
        for (int s = 0; s < ARCH_N_SITES; s++) {
            const site_lora *lo = model_site_lora(m, ly, s);
            if (!lo) continue;
            const model_linear *L = &m->layers[ly].site[s];
            model_site_module(m, ly, s, module, sizeof module);
            int r = lo->lin ? lo->lin->cfg.r : lo->split->cfg.r * k;
            float *B = lo->lin ? lo->lin->lora_B : lorac_blocks_alloc(&l->owned, (size_t)L->OC * r * sizeof(float));
            if (!B) return lorac_fail(err, LORAC_ENOMEM, "out of memory");
            if (lo->split) lora_merged_fused_B(lo->split, B);
            snprintf(name, sizeof name, PEFT_PREFIX "%s.lora_A.weight", module);
            add_entry(l, name, 2, r, L->C, lo->lin ? lo->lin->lora_A : lo->split->lora_A);
            snprintf(name, sizeof name, PEFT_PREFIX "%s.lora_B.weight", module);
            add_entry(l, name, 2, L->OC, r, B);
        }
    if (m->embed_lora) { /* PEFT's embedding names carry no ".weight" */
        const lora_embedding *E = m->embed_lora;
        model_site_module(m, -1, 0, module, sizeof module);
        snprintf(name, sizeof name, PEFT_PREFIX "%s.lora_embedding_A", module);
        add_entry(l, name, 2, E->cfg.r, E->V, E->lora_A);
        snprintf(name, sizeof name, PEFT_PREFIX "%s.lora_embedding_B", module);
        add_entry(l, name, 2, E->D, E->cfg.r, E->lora_B);
    }
    return LORAC_OK;
}

/* The head (under the family's modules_to_save) and an attached adapter's extras, each name once. */
static int collect_saved(model *m, save_list *l, lorac_err *err) {
    model_tensor *t = NULL;
    size_t n = 0, first = l->n;
    int rc = model_tensors(m, &t, &n, err);
    char name[256];
    for (size_t i = 0; i < n && !rc; i++) {
        int saved = 0;
        for (int j = 0; j < 2 && t[i].head; j++) saved |= m->fam->cls_save[j] && peft_module_under(t[i].name, m->fam->cls_save[j]);
        if (!saved) continue;
        snprintf(name, sizeof name, PEFT_PREFIX "%s", t[i].name);
        add_entry(l, name, t[i].ndim, t[i].shape[0], t[i].shape[1], model_tensor_f32(&t[i]));
    }
    free(t);
    const peft_adapter *x = m->peft_extra;
    for (size_t i = 0; !rc && x && i < x->n; i++) {
        int dup = 0;
        for (size_t j = first; j < l->n && !dup; j++) dup = !strcmp(l->names[j], x->t[i].name);
        if (!dup) add_entry(l, x->t[i].name, x->t[i].ndim, x->t[i].shape[0], x->t[i].shape[1], x->t[i].data);
    }
    return rc;
}

/* The first layer's config (the file's r and alpha; others go to rank/alpha patterns), which sites
 * are used, and the q/k/v slices of a fused map's split (whose layers must share r and alpha). */
static int survey(const model *m, const lora_config **first, int *used, int *split, const char *dir, lorac_err *err) {
    *first = m->embed_lora ? &m->embed_lora->cfg : NULL;
    const lora_config *first_split = NULL;
    for (int l = 0; l < m->cfg.n_layer; l++)
        for (int s = 0; s < ARCH_N_SITES; s++) {
            const site_lora *lo = model_site_lora(m, l, s);
            if (!lo) continue;
            const lora_config *lc = lo->lin ? &lo->lin->cfg : &lo->split->cfg;
            if (!*first) *first = lc;
            if (lo->split && !first_split) first_split = lc;
            if (lc->use_rslora != (*first)->use_rslora)
                return lorac_fail(err, LORAC_EUNSUPPORTED, "%s: layers with and without rsLoRA have no one PEFT config", dir);
            if (lo->split && (lc->r != first_split->r || lc->lora_alpha != first_split->lora_alpha))
                return lorac_fail(err, LORAC_EUNSUPPORTED, "%s: q/k/v splits with different ranks have no PEFT form", dir);
            used[s] = 1;
            for (int g = 0; lo->split && g < 3; g++) split[g] = lo->split->enable_lora[g];
        }
    return LORAC_OK;
}

/* A module whose r or alpha differs from the file's gets its own rank_pattern / alpha_pattern entry
 * (its full name: PEFT's suffix match then takes that module alone). */
static int layer_patterns(const model *m, const lora_config *first, peft_config *pc, const char *dir, lorac_err *err) {
    char module[192];
    for (int l = -1; l < m->cfg.n_layer; l++)
        for (int s = 0; s < (l < 0 ? 1 : ARCH_N_SITES); s++) {
            const site_lora *lo = l >= 0 ? model_site_lora(m, l, s) : NULL;
            const lora_config *lc = l < 0 ? (m->embed_lora ? &m->embed_lora->cfg : NULL) : lo && lo->lin ? &lo->lin->cfg : NULL;
            if (!lc || (lc->r == first->r && lc->lora_alpha == first->lora_alpha)) continue;
            model_site_module(m, l, s, module, sizeof module);
            char num[32]; /* the short decimal of the float alpha, as save_config writes the file's */
            snprintf(num, sizeof num, "%.7g", lc->lora_alpha);
            int rc = peft_config_module_pattern(pc, module, lc->r, strtod(num, NULL), dir, err);
            if (rc) return rc;
        }
    return LORAC_OK;
}

static int model_peft_save(model *m, const char *dir, lorac_err *err) {
    const lora_config *first = NULL;
    int used[ARCH_N_SITES] = {0}, split[3] = {0, 0, 0}, k;
    peft_config *pc = malloc(sizeof *pc);
    if (!pc) return lorac_fail(err, LORAC_ENOMEM, "%s: out of memory", dir);
    int rc = survey(m, &first, used, split, dir, err);
    if (!rc) rc = save_config(m, first, used, split, pc, dir, err);
    if (!rc && first) rc = layer_patterns(m, first, pc, dir, err);
    k = split[0] + split[1] + split[2];
    size_t cap = (size_t)m->cfg.n_layer * ARCH_N_SITES * 2 + 8 + (m->peft_extra ? m->peft_extra->n : 0);
    save_list l = {calloc(cap, sizeof(st_entry)), calloc(cap, 256), {0}, 0, cap};
    if (!rc && (!l.e || !l.names)) rc = lorac_fail(err, LORAC_ENOMEM, "%s: out of memory", dir);
    if (!rc) rc = collect(m, &l, k, err);
    if (!rc) rc = collect_saved(m, &l, err);
    /* each file is written whole (temporary name + rename) into DIR, created if needed, so a training
     * run can refresh its adapter beside its log and checkpoint */
    if (!rc && mkdir(dir, 0777) != 0 && errno != EEXIST)
        rc = lorac_fail(err, LORAC_EIO, "%s: cannot create directory: %s", dir, strerror(errno));
    char path[4200], split_val[16];
    snprintf(split_val, sizeof split_val, "%d,%d,%d", split[0], split[1], split[2]);
    const char *mk[2] = {"format", SPLIT_KEY}, *mv[2] = {"pt", split_val};
    snprintf(path, sizeof path, "%s/adapter_model.safetensors", dir);
    if (!rc) rc = st_write(path, l.e, l.n, mk, mv, k ? 2 : 1, err);
    snprintf(path, sizeof path, "%s/adapter_config.json", dir);
    if (!rc) rc = peft_config_save(pc, path, err);
    lorac_blocks_free(&l.owned);
    free(l.names);
    free(l.e);
    free(pc);
    return rc;
}

int model_save_adapter_check(const model *m, const char *path, lorac_err *err) {
    const lora_config *first = NULL;
    int used[ARCH_N_SITES] = {0}, split[3] = {0, 0, 0};
    if (lorac_has_suffix(path, ".gguf")) return model_gguf_adapter_check(m, path, err);
    int rc = survey(m, &first, used, split, path, err);
    if (!rc && !first && !m->peft_extra && m->cfg.head == MODEL_HEAD_LM)
        rc = lorac_fail(err, LORAC_EINVAL, "%s: the model has no LoRA layers to save", path);
    return rc;
}

int model_save_adapter(model *m, const char *path, lorac_err *err) {
    return lorac_has_suffix(path, ".gguf") ? model_gguf_adapter_save(m, path, err) : model_peft_save(m, path, err);
}

int model_adapter_read(const model *m, const char *path, peft_adapter **out, char *warn, size_t warn_size, lorac_err *err) {
    return gguf_is_file(path) ? model_gguf_adapter_read(m, path, out, err) : peft_adapter_read(path, out, warn, warn_size, err);
}

static int read_for(const void *m, const char *path, peft_adapter **out, char *warn, size_t warn_size, lorac_err *err) {
    return model_adapter_read(m, path, out, warn, warn_size, err);
}

int model_attach_adapters(model *m, const char *const *specs, int n, char *warn, size_t warn_size, lorac_err *err) {
    if (n < 1) return LORAC_OK;
    peft_adapter *a = NULL;
    int rc = peft_adapters_load_weighted_with(specs, n, read_for, m, &a, warn, warn_size, err); /* one at scale 1: as read */
    if (!rc) rc = model_peft_attach(m, a, err);
    peft_adapter_free(a);
    return rc;
}
