/* GPT-2 base weights: the name/shape table, loading from HF safetensors (single or sharded),
 * random initialisation, and saving an HF directory. */
#include <stdlib.h>
#include <string.h>

#include "lorac/gpt2.h"
#include "lorac/json.h"
#include "lorac/safetensors.h"
#include "models/hf_shards.h"

typedef struct gpt2_weights_priv {
    hf_shards sh;
    float *arena; /* converted (F16/BF16/unaligned) or random tensors */
} gpt2_weights_priv;

/* One base tensor: its checkpoint name (without "transformer."), where its pointer goes, shape. */
typedef struct gpt2_slot {
    char name[96];
    const float **ptr;
    int ndim;
    int64_t shape[2];
} gpt2_slot;

static void slot_set(gpt2_slot *s, const char *name, const float **ptr, int64_t d0, int64_t d1) {
    snprintf(s->name, sizeof s->name, "%s", name);
    s->ptr = ptr;
    s->ndim = d1 ? 2 : 1;
    s->shape[0] = d0;
    s->shape[1] = d1;
}

/* Fills slots (caller provides GPT2_MAX_SLOTS(c)); returns the count. lm_head.weight (untied configs
 * only) is the one name without the "transformer." prefix. */
#define GPT2_MAX_SLOTS(c) (5 + 12 * (size_t)(c)->n_layer)
static int gpt2_slots(const gpt2_config *c, gpt2_weights *w, gpt2_slot *s) {
    int n = 0, C = c->n_embd, I = c->n_inner;
    slot_set(&s[n++], "wte.weight", &w->wte, c->vocab_size, C);
    slot_set(&s[n++], "wpe.weight", &w->wpe, c->n_positions, C);
    for (int l = 0; l < c->n_layer; l++) {
        gpt2_layer_weights *L = &w->layers[l];
        char nm[96];
#define SLOT(sfx, field, d0, d1) (snprintf(nm, sizeof nm, "h.%d.%s", l, sfx), slot_set(&s[n++], nm, &L->field, d0, d1))
        SLOT("ln_1.weight", ln1_w, C, 0);
        SLOT("ln_1.bias", ln1_b, C, 0);
        SLOT("attn.c_attn.weight", attn_w, C, 3 * C);
        SLOT("attn.c_attn.bias", attn_b, 3 * C, 0);
        SLOT("attn.c_proj.weight", proj_w, C, C);
        SLOT("attn.c_proj.bias", proj_b, C, 0);
        SLOT("ln_2.weight", ln2_w, C, 0);
        SLOT("ln_2.bias", ln2_b, C, 0);
        SLOT("mlp.c_fc.weight", fc_w, C, I);
        SLOT("mlp.c_fc.bias", fc_b, I, 0);
        SLOT("mlp.c_proj.weight", fcproj_w, I, C);
        SLOT("mlp.c_proj.bias", fcproj_b, C, 0);
#undef SLOT
    }
    slot_set(&s[n++], "ln_f.weight", &w->lnf_w, C, 0);
    slot_set(&s[n++], "ln_f.bias", &w->lnf_b, C, 0);
    if (!c->tie_word_embeddings) slot_set(&s[n++], "lm_head.weight", &w->lm_head, c->vocab_size, C);
    return n;
}

static size_t slot_numel(const gpt2_slot *s) { return (size_t)s->shape[0] * (size_t)(s->ndim == 2 ? s->shape[1] : 1); }

size_t gpt2_param_count(const gpt2_config *c) {
    size_t C = (size_t)c->n_embd, I = (size_t)c->n_inner;
    size_t per_layer = 4 * C + (C * 3 * C + 3 * C) + (C * C + C) + (C * I + I) + (I * C + C);
    size_t head = c->tie_word_embeddings ? 0 : (size_t)c->vocab_size * C;
    return (size_t)c->vocab_size * C + (size_t)c->n_positions * C + (size_t)c->n_layer * per_layer + 2 * C + head;
}

static int weights_alloc(const gpt2_config *cfg, gpt2_weights *w, gpt2_slot **slots, lorac_err *err) {
    memset(w, 0, sizeof *w);
    w->layers = calloc((size_t)cfg->n_layer, sizeof *w->layers);
    w->priv = calloc(1, sizeof(gpt2_weights_priv));
    *slots = calloc(GPT2_MAX_SLOTS(cfg), sizeof **slots);
    if (!w->layers || !w->priv || !*slots) {
        free(*slots);
        *slots = NULL;
        gpt2_weights_free(w);
        return lorac_fail(err, LORAC_ENOMEM, "gpt2: out of memory");
    }
    return LORAC_OK;
}

void gpt2_weights_free(gpt2_weights *w) {
    gpt2_weights_priv *p = w->priv;
    if (p) {
        hf_shards_close(&p->sh);
        free(p->arena);
        free(p);
    }
    free(w->layers);
    memset(w, 0, sizeof *w);
}

static const st_tensor *find_tensor(const gpt2_weights_priv *p, const char *name, const st_file **file) {
    char full[160];
    snprintf(full, sizeof full, "transformer.%s", name);
    const st_tensor *t = hf_shards_find(&p->sh, full, file);
    return t ? t : hf_shards_find(&p->sh, name, file);
}

int gpt2_weights_load(const char *dir, const gpt2_config *cfg, gpt2_weights *w, lorac_err *err) {
    gpt2_slot *slots = NULL;
    int rc = weights_alloc(cfg, w, &slots, err);
    if (rc) return rc;
    gpt2_weights_priv *p = w->priv;
    rc = hf_shards_open(dir, &p->sh, err);
    int n = rc ? 0 : gpt2_slots(cfg, w, slots);
    /* first pass: find and check every tensor, and count the floats that need converting */
    size_t convert = 0;
    const st_tensor **found = calloc((size_t)n + 1, sizeof *found);
    const st_file **files = calloc((size_t)n + 1, sizeof *files);
    if (!rc && (!found || !files)) rc = lorac_fail(err, LORAC_ENOMEM, "%s: out of memory", dir);
    for (int i = 0; i < n && !rc; i++) {
        const st_tensor *t = find_tensor(p, slots[i].name, &files[i]);
        const char *fname = p->sh.n ? p->sh.files[0].path : dir;
        if (!t) {
            rc = lorac_fail(err, LORAC_ENOTFOUND, "%s: missing tensor '%s%s'", p->sh.n > 1 ? dir : fname,
                            strncmp(slots[i].name, "lm_head.", 8) ? "transformer." : "", slots[i].name);
            break;
        }
        int ok = t->ndim == slots[i].ndim && t->shape[0] == slots[i].shape[0] && (t->ndim == 1 || t->shape[1] == slots[i].shape[1]);
        if (!ok) {
            char got[128] = "", want[64];
            for (int d = 0; d < t->ndim && d < 4; d++)
                snprintf(got + strlen(got), sizeof got - strlen(got), d ? ", %lld" : "%lld", (long long)t->shape[d]);
            if (slots[i].ndim == 2)
                snprintf(want, sizeof want, "%lld, %lld", (long long)slots[i].shape[0], (long long)slots[i].shape[1]);
            else
                snprintf(want, sizeof want, "%lld", (long long)slots[i].shape[0]);
            rc = lorac_fail(err, LORAC_ESHAPE, "%s: tensor '%s' has shape [%s] but config.json implies [%s]",
                            files[i]->path, t->name, got, want);
            break;
        }
        if (t->dtype != ST_F32 && t->dtype != ST_F16 && t->dtype != ST_BF16) {
            rc = lorac_fail(err, LORAC_EUNSUPPORTED, "%s: tensor '%s' has dtype %s (F32, F16 or BF16 expected)",
                            files[i]->path, t->name, st_dtype_name(t->dtype));
            break;
        }
        found[i] = t;
        if (!st_f32_view(t)) convert += t->numel;
    }
    if (!rc && convert) {
        p->arena = malloc(convert * sizeof(float));
        if (!p->arena) rc = lorac_fail(err, LORAC_ENOMEM, "%s: out of memory converting weights to f32", dir);
    }
    size_t off = 0;
    for (int i = 0; i < n && !rc; i++) {
        const float *view = st_f32_view(found[i]);
        if (view) {
            *slots[i].ptr = view; /* mapped, not copied */
        } else {
            rc = st_read_f32(files[i], found[i], p->arena + off, err);
            *slots[i].ptr = p->arena + off;
            off += found[i]->numel;
        }
    }
    free(found);
    free(files);
    free(slots);
    if (rc) gpt2_weights_free(w);
    return rc;
}

int gpt2_weights_random(const gpt2_config *cfg, uint64_t seed, gpt2_weights *w, lorac_err *err) {
    gpt2_slot *slots = NULL;
    int rc = weights_alloc(cfg, w, &slots, err);
    if (rc) return rc;
    gpt2_weights_priv *p = w->priv;
    int n = gpt2_slots(cfg, w, slots);
    size_t total = gpt2_param_count(cfg);
    p->arena = malloc(total * sizeof(float));
    if (!p->arena) {
        free(slots);
        gpt2_weights_free(w);
        return lorac_fail(err, LORAC_ENOMEM, "gpt2: out of memory for %zu random parameters", total);
    }
    lorac_rng rng;
    lorac_rng_seed(&rng, seed);
    size_t off = 0;
    for (int i = 0; i < n; i++) {
        float *t = p->arena + off;
        size_t k = slot_numel(&slots[i]);
        const char *nm = slots[i].name;
        size_t len = strlen(nm);
        int is_ln_w = strstr(nm, "ln_") && !strcmp(nm + len - 7, ".weight");
        if (is_ln_w)
            for (size_t j = 0; j < k; j++) t[j] = 1.0f;
        else if (slots[i].ndim == 2)
            for (size_t j = 0; j < k; j++) t[j] = 0.02f * lorac_rng_normal(&rng);
        else
            memset(t, 0, k * sizeof(float));
        *slots[i].ptr = t;
        off += k;
    }
    free(slots);
    return LORAC_OK;
}

int gpt2_weights_save_files(const gpt2_config *cfg, const gpt2_weights *w, const char *dir, lorac_err *err) {
    size_t cap = GPT2_MAX_SLOTS(cfg);
    gpt2_slot *slots = calloc(cap, sizeof *slots);
    st_entry *ents = calloc(cap, sizeof *ents);
    char (*names)[112] = calloc(cap, sizeof *names);
    int rc = LORAC_OK;
    if (!slots || !ents || !names) rc = lorac_fail(err, LORAC_ENOMEM, "%s: out of memory", dir);
    gpt2_weights tmp = *w; /* gpt2_slots wants writable pointer slots; it only reads them here */
    int n = rc ? 0 : gpt2_slots(cfg, &tmp, slots);
    for (int i = 0; i < n; i++) {
        int head = !strncmp(slots[i].name, "lm_head.", 8);
        snprintf(names[i], sizeof names[i], "%s%s", head ? "" : "transformer.", slots[i].name);
        ents[i].name = names[i];
        ents[i].dtype = ST_F32;
        ents[i].out_dtype = ST_F32;
        ents[i].ndim = slots[i].ndim;
        ents[i].shape[0] = slots[i].shape[0];
        ents[i].shape[1] = slots[i].shape[1];
        ents[i].data = *slots[i].ptr;
    }
    char path[4200];
    const char *mk[] = {"format"}, *mv[] = {"pt"};
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    if (!rc) rc = st_write(path, ents, (size_t)n, mk, mv, 1, err);
    snprintf(path, sizeof path, "%s/config.json", dir);
    if (!rc) rc = gpt2_config_save(cfg, path, err);
    free(slots);
    free(ents);
    free(names);
    return rc;
}

int gpt2_weights_save_dir(const gpt2_config *cfg, const gpt2_weights *w, const char *dir, lorac_err *err) {
    lorac_outdir od;
    int rc = lorac_outdir_open(&od, dir, err);
    if (rc) return rc;
    rc = gpt2_weights_save_files(cfg, w, od.tmp, err);
    if (!rc) return lorac_outdir_commit(&od, err);
    lorac_outdir_abort(&od);
    return rc;
}
