/* Llama-family base weights (single or sharded HF safetensors) and the model state around them:
 * LoRA layers on the seven projections, the registry of HF names, PEFT adapter directories. */
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "lorac/json.h"
#include "lorac/llama.h"
#include "lorac/peft.h"
#include "lorac/safetensors.h"
#include "models/hf_shards.h"
#include "models/llama_internal.h"


typedef struct llama_weights_priv {
    hf_shards sh;
    float *arena; /* tensors converted from F16/BF16 (or unaligned F32) */
} llama_weights_priv;

/* One base tensor: HF name, where its pointer goes (a vector, or a matrix's qmat), expected shape
 * (d1 == 0: 1-D). */
typedef struct llama_slot {
    char name[128];
    const float **ptr;
    qmat *mat;
    int64_t shape[2];
} llama_slot;

static void slot_set(llama_slot *s, const char *name, const float **ptr, int64_t d0, int64_t d1) {
    snprintf(s->name, sizeof s->name, "%s", name);
    s->ptr = ptr;
    s->mat = NULL;
    s->shape[0] = d0;
    s->shape[1] = d1;
}

static void slot_set_mat(llama_slot *s, const char *name, qmat *mat, int64_t d0, int64_t d1) {
    slot_set(s, name, NULL, d0, d1);
    s->mat = mat;
}

/* Points a slot at f32 data: a vector, or an F32 qmat of the slot's shape. */
static void slot_fill(const llama_slot *s, const float *data) {
    if (s->mat) *s->mat = qmat_f32(data, (int)s->shape[0], (int)s->shape[1]);
    else *s->ptr = data;
}

/* Fills slots (caller provides 3 + (2 + 2·LLAMA_N_SITES)·n_layer); returns the count. */
static int llama_slots(const llama_config *c, llama_weights *w, llama_slot *s) {
    int n = 0, C = c->n_embd;
    char nm[128];
    slot_set_mat(&s[n++], "model.embed_tokens.weight", &w->embed, c->vocab_size, C);
    for (int l = 0; l < c->n_layer; l++) {
        llama_layer_weights *L = &w->layers[l];
        snprintf(nm, sizeof nm, "model.layers.%d.input_layernorm.weight", l);
        slot_set(&s[n++], nm, &L->attn_norm, C, 0);
        snprintf(nm, sizeof nm, "model.layers.%d.post_attention_layernorm.weight", l);
        slot_set(&s[n++], nm, &L->mlp_norm, C, 0);
        for (int site = 0; site < LLAMA_N_SITES; site++) {
            int in, out;
            llama_site_shape(c, site, &in, &out);
            snprintf(nm, sizeof nm, "model.layers.%d.%s.weight", l, llama_site_name(site));
            slot_set_mat(&s[n++], nm, &L->w[site], out, in);
            int bias = site <= LLAMA_SITE_V ? c->qkv_bias : site == LLAMA_SITE_O ? c->o_bias : 0;
            if (!bias) continue;
            snprintf(nm, sizeof nm, "model.layers.%d.%s.bias", l, llama_site_name(site));
            slot_set(&s[n++], nm, &L->b[site], out, 0);
        }
    }
    slot_set(&s[n++], "model.norm.weight", &w->norm, C, 0);
    if (!c->tie_word_embeddings) slot_set_mat(&s[n++], "lm_head.weight", &w->lm_head, c->vocab_size, C);
    return n;
}

static void hf_priv_free(void *priv) {
    llama_weights_priv *p = priv;
    hf_shards_close(&p->sh);
    free(p->arena);
    free(p);
}

void llama_weights_free(llama_weights *w) {
    if (w->priv && w->priv_free) w->priv_free(w->priv);
    free(w->layers);
    memset(w, 0, sizeof *w);
}

static const st_tensor *find_tensor(const llama_weights_priv *p, const char *name, const st_file **file) {
    return hf_shards_find(&p->sh, name, file);
}

/* Checks one tensor against its slot: present, F32/F16/BF16, the shape config.json implies. */
static int check_slot(const llama_weights_priv *p, const char *dir, const llama_slot *s, const st_tensor **out,
                      const st_file **file, lorac_err *err) {
    const st_tensor *t = find_tensor(p, s->name, file);
    if (!t)
        return lorac_fail(err, LORAC_ENOTFOUND, "%s: missing tensor '%s'", p->sh.n == 1 ? p->sh.files[0].path : dir, s->name);
    int ndim = s->shape[1] ? 2 : 1;
    if (t->ndim != ndim || t->shape[0] != s->shape[0] || (ndim == 2 && t->shape[1] != s->shape[1])) {
        char got[128] = "", want[64];
        for (int d = 0; d < t->ndim && d < 4; d++)
            snprintf(got + strlen(got), sizeof got - strlen(got), d ? ", %lld" : "%lld", (long long)t->shape[d]);
        if (ndim == 2) snprintf(want, sizeof want, "%lld, %lld", (long long)s->shape[0], (long long)s->shape[1]);
        else snprintf(want, sizeof want, "%lld", (long long)s->shape[0]);
        return lorac_fail(err, LORAC_ESHAPE, "%s: tensor '%s' has shape [%s] but config.json implies [%s]", (*file)->path,
                          t->name, got, want);
    }
    if (t->dtype != ST_F32 && t->dtype != ST_F16 && t->dtype != ST_BF16)
        return lorac_fail(err, LORAC_EUNSUPPORTED, "%s: tensor '%s' has dtype %s (F32, F16 or BF16 expected)", (*file)->path,
                          t->name, st_dtype_name(t->dtype));
    *out = t;
    return LORAC_OK;
}

int llama_weights_load(const char *dir, const llama_config *cfg, llama_weights *w, lorac_err *err) {
    memset(w, 0, sizeof *w);
    size_t cap = 3 + (2 + 2 * (size_t)LLAMA_N_SITES) * (size_t)cfg->n_layer;
    w->layers = calloc((size_t)cfg->n_layer, sizeof *w->layers);
    w->priv = calloc(1, sizeof(llama_weights_priv));
    w->priv_free = hf_priv_free;
    llama_slot *slots = calloc(cap, sizeof *slots);
    const st_tensor **found = calloc(cap, sizeof *found);
    const st_file **files = calloc(cap, sizeof *files);
    int rc = (!w->layers || !w->priv || !slots || !found || !files) ? lorac_fail(err, LORAC_ENOMEM, "%s: out of memory", dir)
                                                                    : LORAC_OK;
    llama_weights_priv *p = w->priv;
    if (!rc) rc = hf_shards_open(dir, &p->sh, err);
    int n = rc ? 0 : llama_slots(cfg, w, slots);
    size_t convert = 0; /* floats that need a converted copy */
    for (int i = 0; i < n && !rc; i++) {
        rc = check_slot(p, dir, &slots[i], &found[i], &files[i], err);
        if (!rc && !st_f32_view(found[i]) && lorac_size_add(convert, found[i]->numel, &convert))
            rc = lorac_fail(err, LORAC_ENOMEM, "%s: weights too large", dir);
    }
    size_t bytes = 0;
    if (!rc && convert && (lorac_size_mul(convert, sizeof(float), &bytes) || !(p->arena = malloc(bytes))))
        rc = lorac_fail(err, LORAC_ENOMEM, "%s: out of memory converting weights to f32", dir);
    size_t off = 0;
    for (int i = 0; i < n && !rc; i++) {
        const float *view = st_f32_view(found[i]);
        if (view) {
            slot_fill(&slots[i], view); /* mapped, not copied */
            continue;
        }
        rc = st_read_f32(files[i], found[i], p->arena + off, err);
        slot_fill(&slots[i], p->arena + off);
        off += found[i]->numel;
    }
    if (!rc && cfg->tie_word_embeddings) w->lm_head = w->embed;
    free(slots);
    free(found);
    free(files);
    if (rc) llama_weights_free(w);
    return rc;
}

/* ---------------------------------------------------------------- model state */

static int register_base(llama_model *m, const char *name, const float *data, int64_t d0, int64_t d1, lorac_err *err) {
    int64_t shape[2] = {d0, d1};
    return lora_registry_add(&m->reg, name, d1 ? 2 : 1, shape, (float *)data, NULL, NULL, 0, 0, err);
}

/* The registry holds f32 tensors: a matrix kept quantized is not registered (it has no f32 view). */
static int register_mat(llama_model *m, const char *name, const qmat *q, lorac_err *err) {
    if (q->type != QUANT_F32) return LORAC_OK;
    return register_base(m, name, q->data, q->rows, q->cols, err);
}

/* Rebuilds the registry in checkpoint order (after loading and after attaching LoRA). */
static int llama_register_all(llama_model *m, lorac_err *err) {
    lora_registry_free(&m->reg);
    lora_registry_init(&m->reg);
    const llama_config *c = &m->cfg;
    int C = c->n_embd, rc;
    char nm[160];
    if ((rc = register_mat(m, "model.embed_tokens.weight", &m->w.embed, err))) return rc;
    for (int l = 0; l < c->n_layer; l++) {
        const llama_layer_weights *L = &m->w.layers[l];
        snprintf(nm, sizeof nm, "model.layers.%d.input_layernorm.weight", l);
        if ((rc = register_base(m, nm, L->attn_norm, C, 0, err))) return rc;
        for (int s = 0; s < LLAMA_N_SITES; s++) {
            lora_linear *lin = llama_model_lora(m, l, s);
            snprintf(nm, sizeof nm, "model.layers.%d.%s", l, llama_site_name(s));
            if (lin) {
                if ((rc = lora_linear_register(lin, &m->reg, nm, err))) return rc;
                /* over a quantized base the layer holds neither weight nor bias: the bias is ours */
                snprintf(nm, sizeof nm, "model.layers.%d.%s.bias", l, llama_site_name(s));
                if (!lin->weight && L->b[s] && (rc = register_base(m, nm, L->b[s], lin->OC, 0, err))) return rc;
                continue;
            }
            snprintf(nm, sizeof nm, "model.layers.%d.%s.weight", l, llama_site_name(s));
            if ((rc = register_mat(m, nm, &L->w[s], err))) return rc;
            int in, out;
            llama_site_shape(c, s, &in, &out);
            snprintf(nm, sizeof nm, "model.layers.%d.%s.bias", l, llama_site_name(s));
            if (L->b[s] && (rc = register_base(m, nm, L->b[s], out, 0, err))) return rc;
        }
        snprintf(nm, sizeof nm, "model.layers.%d.post_attention_layernorm.weight", l);
        if ((rc = register_base(m, nm, L->mlp_norm, C, 0, err))) return rc;
    }
    if ((rc = register_base(m, "model.norm.weight", m->w.norm, C, 0, err))) return rc;
    if (!c->tie_word_embeddings) rc = register_mat(m, "lm_head.weight", &m->w.lm_head, err);
    return rc;
}

int llama_path_is_gguf(const char *path) {
    FILE *f = fopen(path, "rb");
    char magic[4] = {0};
    if (!f) return 0;
    size_t n = fread(magic, 1, 4, f);
    fclose(f);
    return n == 4 && !memcmp(magic, "GGUF", 4);
}

int llama_model_load(const char *dir, llama_model *m, lorac_err *err) {
    memset(m, 0, sizeof *m);
    lora_registry_init(&m->reg);
    int rc;
    if (llama_path_is_gguf(dir)) {
        rc = llama_weights_load_gguf(dir, &m->cfg, &m->w, err);
    } else {
        rc = llama_config_load(dir, &m->cfg, err);
        if (!rc) rc = llama_weights_load(dir, &m->cfg, &m->w, err);
    }
    if (!rc && !(m->inv_freq = malloc((size_t)m->cfg.head_dim / 2 * sizeof(float))))
        rc = lorac_fail(err, LORAC_ENOMEM, "%s: out of memory", dir);
    if (!rc) llama_rope_inv_freq(&m->cfg, m->inv_freq);
    /* llama.cpp divides each frequency by its factor (how GGUF stores Llama 3.1's scaling) */
    if (!rc && m->w.rope_freqs)
        for (int i = 0; i < m->cfg.head_dim / 2; i++) m->inv_freq[i] /= m->w.rope_freqs[i];
    if (!rc) rc = llama_register_all(m, err);
    if (rc) llama_model_free(m);
    return rc;
}

int llama_model_load_gguf(const char *path, llama_model *m, lorac_err *err) {
    if (!llama_path_is_gguf(path)) {
        memset(m, 0, sizeof *m);
        return lorac_fail(err, LORAC_EFORMAT, "%s: not a GGUF file (no GGUF magic)", path);
    }
    return llama_model_load(path, m, err);
}

lora_linear *llama_model_lora(const llama_model *m, int layer, int site) {
    return m->lora ? m->lora[(size_t)layer * LLAMA_N_SITES + site] : NULL;
}

static void free_lora(llama_model *m) {
    if (!m->lora) return;
    for (size_t i = 0; i < (size_t)m->cfg.n_layer * LLAMA_N_SITES; i++)
        if (m->lora[i]) {
            lora_linear_free(m->lora[i]);
            free(m->lora[i]);
        }
    free(m->lora);
    m->lora = NULL;
    m->has_lora = 0;
}

void llama_model_free(llama_model *m) {
    free_lora(m);
    peft_adapter_free(m->peft_extra);
    lora_registry_free(&m->reg);
    llama_weights_free(&m->w);
    free(m->inv_freq);
    memset(m, 0, sizeof *m);
}

/* One LoRA Linear on (layer, site) over the borrowed base weight and bias. */
int llama_lora_attach(llama_model *m, int l, int s, const lora_config *lc, lorac_rng *rng, lorac_err *err) {
    if (!m->lora && !(m->lora = calloc((size_t)m->cfg.n_layer * LLAMA_N_SITES, sizeof *m->lora)))
        return lorac_fail(err, LORAC_ENOMEM, "llama: out of memory for LoRA layers");
    lora_linear **slot = &m->lora[(size_t)l * LLAMA_N_SITES + s];
    if (!(*slot = calloc(1, sizeof **slot))) return lorac_fail(err, LORAC_ENOMEM, "llama: out of memory for LoRA layers");
    int in, out;
    llama_site_shape(&m->cfg, s, &in, &out);
    const llama_layer_weights *W = &m->w.layers[l];
    /* an f32 base is the layer's own (merged for inference); a quantized one is computed by the
     * model's qmat matmul, bias included, and the layer adds only its delta */
    int f32 = W->w[s].type == QUANT_F32;
    int rc = lora_linear_init(*slot, in, out, lc, f32 ? (float *)W->w[s].data : NULL, f32 ? (float *)W->b[s] : NULL,
                              rng, err);
    if (rc) {
        free(*slot);
        *slot = NULL;
    }
    return rc;
}

static atomic_int llama_next_lora_gen = 1;

/* Registers the attached layers and freezes all else; on failure drops every LoRA layer. */
int llama_lora_finish(llama_model *m, int rc, lorac_err *err) {
    m->lora_gen = atomic_fetch_add(&llama_next_lora_gen, 1);
    m->has_lora = m->lora != NULL;
    if (!rc) rc = llama_register_all(m, err);
    if (!rc) lora_mark_only_lora_as_trainable(&m->reg, LORA_BIAS_NONE);
    if (rc) {
        free_lora(m);
        llama_register_all(m, NULL);
    }
    return rc;
}

int llama_model_add_lora(llama_model *m, const llama_lora_opts *o, uint64_t seed, lorac_err *err) {
    if (m->has_lora) return lorac_fail(err, LORAC_EINVAL, "llama: the model already has LoRA layers");
    if (o->r < 1) return lorac_fail(err, LORAC_EINVAL, "--rank must be >= 1");
    if (!(o->dropout >= 0.0f && o->dropout < 1.0f)) return lorac_fail(err, LORAC_EINVAL, "--lora-dropout must be in [0, 1)");
    lora_config lc = lora_config_default(o->r, o->alpha);
    lc.lora_dropout = o->dropout;
    lc.use_rslora = o->use_rslora;
    lc.init = o->gaussian_init ? LORA_INIT_GAUSSIAN : LORA_INIT_KAIMING;
    lorac_rng rng;
    lorac_rng_seed(&rng, seed);
    int rc = LORAC_OK, any = 0;
    for (int l = 0; l < m->cfg.n_layer && !rc; l++)
        for (int s = 0; s < LLAMA_N_SITES && !rc; s++)
            if (o->sites[s]) {
                rc = llama_lora_attach(m, l, s, &lc, &rng, err);
                any = 1;
            }
    if (!rc && !any) rc = lorac_fail(err, LORAC_EINVAL, "llama: no LoRA targets");
    return llama_lora_finish(m, rc, err);
}

int llama_model_train_mode(llama_model *m, int mode, lorac_err *err) {
    for (int l = 0; l < m->cfg.n_layer; l++)
        for (int s = 0; s < LLAMA_N_SITES; s++) {
            lora_linear *L = llama_model_lora(m, l, s);
            int rc = L ? lora_linear_train(L, mode, err) : LORAC_OK;
            if (rc) return rc;
        }
    return LORAC_OK;
}

void llama_model_zero_grad(llama_model *m) {
    for (int l = 0; l < m->cfg.n_layer; l++)
        for (int s = 0; s < LLAMA_N_SITES; s++) {
            lora_linear *L = llama_model_lora(m, l, s);
            if (L) lora_linear_zero_grad(L);
        }
}

void llama_model_count_params(const llama_model *m, size_t *trainable, size_t *all) {
    size_t t = 0, a = 0;
    lora_registry_count(&m->reg, &t, &a);
    /* the registry lacks the matrices kept quantized */
    const llama_config *c = &m->cfg;
    const qmat *mats[2] = {&m->w.embed, c->tie_word_embeddings ? NULL : &m->w.lm_head};
    for (int i = 0; i < 2; i++)
        if (mats[i] && mats[i]->type != QUANT_F32) a += (size_t)mats[i]->rows * mats[i]->cols;
    for (int l = 0; l < c->n_layer; l++)
        for (int s = 0; s < LLAMA_N_SITES; s++) {
            const qmat *q = &m->w.layers[l].w[s];
            if (q->type != QUANT_F32) a += (size_t)q->rows * q->cols;
        }
    if (trainable) *trainable = t;
    if (all) *all = a;
}
