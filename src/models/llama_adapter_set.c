/* Several adapters held over one Llama-family base, as gpt2_adapter_set: each adapter's LoRA
 * layers stay unmerged while inactive; activating one either points the model at its layers
 * (unmerged: a pointer swap) or merges it into per-site buffers allocated once and reused by every
 * switch, so W0 is never written and comes back bit for bit. A quantized site merges nowhere: such
 * an adapter is activated unmerged only. */
#include <stdlib.h>
#include <string.h>

#include "llama_internal.h"
#include "lorac/peft.h"

struct llama_adapter_set {
    llama_model *m;
    int n, cap;
    lora_linear ***lora; /* (n) each adapter's n_layer·LLAMA_N_SITES layers, unmerged while inactive */
    int active, merged;  /* active id (-1: none) and whether it is merged */
    int resident;        /* keep every adapter's merged weights (llama_adapter_set_keep_merged) */
    float **buf;         /* (n_layer·LLAMA_N_SITES) merged weights shared by every switch */
    float ***rbuf;       /* (cap) per adapter's own merged weights, or NULL (resident mode) */
    int *rvalid;         /* (cap) rbuf[id] holds adapter id's current merge: its next merged
                            activation is a pointer swap */
};

static size_t n_sites(const llama_model *m) { return (size_t)m->cfg.n_layer * LLAMA_N_SITES; }

int llama_adapter_set_new(llama_model *m, llama_adapter_set **out, lorac_err *err) {
    *out = NULL;
    if (m->has_lora || m->peft_extra) return lorac_fail(err, LORAC_EINVAL, "llama: an adapter set needs a model without LoRA layers");
    llama_adapter_set *s = calloc(1, sizeof *s);
    if (!s || !(s->buf = calloc(n_sites(m), sizeof *s->buf))) {
        free(s);
        return lorac_fail(err, LORAC_ENOMEM, "llama: out of memory for an adapter set");
    }
    s->m = m;
    s->active = -1;
    *out = s;
    return LORAC_OK;
}

int llama_adapter_set_count(const llama_adapter_set *s) { return s->n; }

/* Every layer back to unmerged inference (a borrowed merged copy is dropped, not freed). */
static void set_unmerge(const llama_model *m, lora_linear **lora) {
    for (size_t k = 0; lora && k < n_sites(m); k++)
        if (lora[k]) {
            lora_linear_train(lora[k], 1, NULL);
            lora[k]->cfg.merge_weights = 0;
            lora[k]->training = 0;
        }
}

/* Points the model at `lora` (NULL: none) and rebuilds its registry; returns the layers it held. */
static int set_swap(llama_model *m, lora_linear ***lora, lorac_err *err) {
    lora_linear **old = m->lora;
    m->lora = *lora;
    *lora = old;
    return llama_lora_finish(m, LORAC_OK, err);
}

/* Merges the active layers into bufs (allocated on first use); quantized sites refuse. */
static int set_merge(llama_adapter_set *s, float **bufs, lorac_err *err) {
    llama_model *m = s->m;
    for (size_t k = 0; k < n_sites(m); k++)
        if (m->lora[k] && m->w.layers[k / LLAMA_N_SITES].w[k % LLAMA_N_SITES].type != QUANT_F32)
            return lorac_fail(err, LORAC_EUNSUPPORTED, "llama: layer %d %s is quantized: an adapter over it can only be "
                              "activated unmerged", (int)(k / LLAMA_N_SITES), llama_site_name((int)(k % LLAMA_N_SITES)));
    for (size_t k = 0; k < n_sites(m); k++) {
        lora_linear *L = m->lora[k];
        if (!L) continue;
        if (!bufs[k] && !(bufs[k] = malloc((size_t)L->C * L->OC * sizeof(float))))
            return lorac_fail(err, LORAC_ENOMEM, "llama: out of memory for merged weights");
        if (lora_linear_merge_to(L, bufs[k], err)) return LORAC_ENOMEM;
    }
    return LORAC_OK;
}

/* 1 if every layer is still merged into the resident copy rbuf (nothing unmerged, retrained
 * or re-merged elsewhere since the activation). */
static int still_resident(const llama_model *m, float **rbuf) {
    for (size_t k = 0; k < n_sites(m); k++)
        if (m->lora[k] && (!m->lora[k]->merged || m->lora[k]->merged_w != rbuf[k])) return 0;
    return 1;
}

/* Resident mode: the active adapter's own merged weights, computed on its first merged
 * activation, then only pointed at (what lora_linear_merge_to leaves, without recomputing). */
static int resident_merge(llama_adapter_set *s, int id, lorac_err *err) {
    llama_model *m = s->m;
    if (!s->rvalid[id]) return set_merge(s, s->rbuf[id], err);
    for (size_t k = 0; k < n_sites(m); k++) {
        lora_linear *L = m->lora[k];
        if (!L) continue;
        L->merged_w = s->rbuf[id][k];
        L->merged = L->merged_borrowed = 1;
        L->training = 0;
    }
    return LORAC_OK;
}

int llama_adapter_set_activate(llama_adapter_set *s, int id, int merge, lorac_err *err) {
    if (id < -1 || id >= s->n) return lorac_fail(err, LORAC_EINVAL, "llama: no adapter %d in the set (%d held)", id, s->n);
    llama_model *m = s->m;
    if (s->active >= 0) { /* the active adapter's layers go back to the set, unmerged */
        lora_linear **none = NULL;
        int a = s->active;
        if (s->rvalid[a] && !(s->merged && s->rbuf[a] && still_resident(m, s->rbuf[a]))) s->rvalid[a] = 0;
        set_unmerge(m, m->lora);
        int rc = set_swap(m, &none, err);
        if (rc) return rc;
        s->active = -1;
        s->merged = 0;
    }
    if (id < 0) return LORAC_OK;
    lora_linear **l = s->lora[id];
    int rc = set_swap(m, &l, err); /* l comes back NULL: the model held none */
    if (rc) return rc;
    s->active = id;
    if (merge && s->resident && !s->rbuf[id] && !(s->rbuf[id] = calloc(n_sites(m), sizeof **s->rbuf)))
        rc = lorac_fail(err, LORAC_ENOMEM, "llama: out of memory for resident merged weights");
    if (!rc && merge) rc = s->resident ? resident_merge(s, id, err) : set_merge(s, s->buf, err);
    if (!merge) s->rvalid[id] = 0; /* unmerged, its A and B may be trained: the copy may go stale */
    if (rc) {
        set_unmerge(m, m->lora); /* stay usable, unmerged */
        s->rvalid[id] = 0;
        return rc;
    }
    if (merge && s->resident) s->rvalid[id] = 1;
    s->merged = merge != 0;
    return LORAC_OK;
}

static void free_bufs(const llama_model *m, float **b) {
    for (size_t k = 0; b && k < n_sites(m); k++) free(b[k]);
    free(b);
}

int llama_adapter_set_keep_merged(llama_adapter_set *s, int on, lorac_err *err) {
    if (!on && s->resident) { /* the active adapter must not point into buffers about to go */
        int id = s->active, merged = s->merged, rc = llama_adapter_set_activate(s, -1, 0, err);
        if (rc) return rc;
        for (int i = 0; i < s->n; i++) {
            free_bufs(s->m, s->rbuf[i]);
            s->rbuf[i] = NULL;
            s->rvalid[i] = 0;
        }
        s->resident = 0;
        return id >= 0 ? llama_adapter_set_activate(s, id, merged, err) : LORAC_OK;
    }
    s->resident = on != 0;
    return LORAC_OK;
}

static void free_layers(const llama_model *m, lora_linear **lora) {
    for (size_t k = 0; lora && k < n_sites(m); k++)
        if (lora[k]) {
            lora_linear_free(lora[k]);
            free(lora[k]);
        }
    free(lora);
}

int llama_adapter_set_add(llama_adapter_set *s, const struct peft_adapter *a, int *id, lorac_err *err) {
    int prev = s->active, prev_merged = s->merged, rc;
    if (s->n == s->cap) {
        int cap = s->cap ? 2 * s->cap : 4;
        lora_linear ***nl = realloc(s->lora, (size_t)cap * sizeof *nl);
        if (nl) s->lora = nl;
        float ***nr = nl ? realloc(s->rbuf, (size_t)cap * sizeof *nr) : NULL;
        if (nr) s->rbuf = nr;
        int *nv = nr ? realloc(s->rvalid, (size_t)cap * sizeof *nv) : NULL;
        if (nv) s->rvalid = nv;
        if (!nl || !nr || !nv) return lorac_fail(err, LORAC_ENOMEM, "llama: out of memory for another adapter");
        for (int i = s->cap; i < cap; i++) {
            s->rbuf[i] = NULL;
            s->rvalid[i] = 0;
        }
        s->cap = cap;
    }
    if ((rc = peft_adapter_check_lora_only(a, err))) return rc;
    if ((rc = llama_adapter_set_activate(s, -1, 0, err))) return rc;
    rc = llama_peft_attach(s->m, a, err); /* on failure the model is left without LoRA */
    if (!rc) {
        lora_linear **l = NULL;
        set_unmerge(s->m, s->m->lora);
        rc = set_swap(s->m, &l, err);
        if (!rc) {
            s->lora[s->n] = l;
            if (id) *id = s->n;
            s->n++;
        } else {
            free_layers(s->m, l);
        }
    }
    if (prev >= 0) { /* the previously active adapter comes back as it was */
        int rc2 = llama_adapter_set_activate(s, prev, prev_merged, rc ? NULL : err);
        if (!rc) rc = rc2;
    }
    return rc;
}

void llama_adapter_set_free(llama_adapter_set *s) {
    if (!s) return;
    llama_adapter_set_activate(s, -1, 0, NULL);
    for (int i = 0; i < s->n; i++) {
        free_layers(s->m, s->lora[i]);
        free_bufs(s->m, s->rbuf[i]);
    }
    free_bufs(s->m, s->buf);
    free(s->lora);
    free(s->rbuf);
    free(s->rvalid);
    free(s);
}

const lora_linear *const *llama_adapter_set_layers(const llama_adapter_set *s, int id) {
    if (id < 0 || id >= s->n) return NULL;
    return (const lora_linear *const *)(s->active == id ? s->m->lora : s->lora[id]);
}

const llama_model *llama_adapter_set_model(const llama_adapter_set *s) { return s->m; }

int llama_adapter_set_active(const llama_adapter_set *s, int *merged) {
    if (merged) *merged = s->merged;
    return s->active;
}
