/* Several adapters held over one base: each adapter's LoRA layers stay unmerged while inactive;
 * activating one either points the model at its layout (unmerged: a pointer swap) or merges it
 * into per-site buffers allocated once and reused by every switch, so W0 is never written and comes
 * back bit for bit. A quantized site merges nowhere: an adapter over one is activated unmerged. */
#include <stdlib.h>
#include <string.h>

#include "models/model_internal.h"

struct model_adapter_set {
    model *m;
    int n, cap;
    site_lora **sites;        /* (cap) each adapter's layout, unmerged while inactive (the active one: NULLs) */
    lora_embedding **embed;   /* (cap) or NULL entries */
    int active, merged;       /* active id (-1: none) and whether it is merged */
    float **buf;              /* (n_layer·ARCH_N_SITES) merged weights shared by every switch */
    int *dirty;               /* fused q/k/v buffers: mask of slices holding a delta (7: unknown) */
    int resident;             /* keep every adapter's merged weights (keep_merged) */
    float ***rbuf;            /* (cap) per adapter: its own merged weights, or NULL */
    int *rvalid;              /* (cap) rbuf[id] holds adapter id's current merge */
};

static size_t n_sites(const model *m) { return (size_t)m->cfg.n_layer * ARCH_N_SITES; }

int model_adapter_set_new(model *m, model_adapter_set **out, lorac_err *err) {
    *out = NULL;
    if (m->has_lora || m->peft_extra)
        return lorac_fail(err, LORAC_EINVAL, "%s: an adapter set needs a model without LoRA layers", m->path);
    model_adapter_set *s = calloc(1, sizeof *s);
    if (!s || !(s->buf = calloc(n_sites(m), sizeof *s->buf)) || !(s->dirty = calloc(n_sites(m), sizeof *s->dirty))) {
        if (s) free(s->buf);
        free(s);
        return lorac_fail(err, LORAC_ENOMEM, "%s: out of memory for an adapter set", m->path);
    }
    s->m = m;
    s->active = -1;
    *out = s;
    return LORAC_OK;
}

int model_adapter_set_count(const model_adapter_set *s) { return s->n; }
const model *model_adapter_set_model(const model_adapter_set *s) { return s->m; }

int model_adapter_set_active(const model_adapter_set *s, int *merged) {
    if (merged) *merged = s->merged;
    return s->active;
}

const site_lora *model_adapter_set_layout(const model_adapter_set *s, int id, const lora_embedding **embed) {
    if (id < 0 || id >= s->n || (id != s->active && !s->sites[id])) return NULL; /* removed */
    if (embed) *embed = s->active == id ? s->m->embed_lora : s->embed[id];
    return s->active == id ? s->m->lora : s->sites[id];
}

/* Every layer back to unmerged inference (a borrowed merged copy is dropped, not freed). */
static void set_unmerge(const model *m, site_lora *sites, lora_embedding *embed) {
    if (embed) {
        lora_embedding_train(embed, 1, NULL);
        embed->cfg.merge_weights = 0;
        embed->training = 0;
    }
    for (size_t k = 0; sites && k < n_sites(m); k++) {
        if (sites[k].lin) {
            lora_linear_train(sites[k].lin, 1, NULL);
            sites[k].lin->cfg.merge_weights = 0;
            sites[k].lin->training = 0;
        }
        if (sites[k].split) {
            lora_merged_train(sites[k].split, 1, NULL);
            sites[k].split->cfg.merge_weights = 0;
            sites[k].split->training = 0;
        }
    }
}

/* Merges the active layout into bufs (allocated on first use), one weight per task in one parallel
 * loop: a single fork/join per switch. The shared buffers (dirty != NULL) rewrite a fused map's
 * slices without LoRA only if an earlier merge left a delta there. */
static int set_merge(model_adapter_set *s, float **bufs, int *dirty, lorac_err *err) {
    model *m = s->m;
    size_t nk = n_sites(m), work = 0; /* weights to rewrite: a small model merges faster than a fork/join */
    for (size_t k = 0; k < nk; k++) {
        const qmat *w = &m->layers[k / ARCH_N_SITES].site[k % ARCH_N_SITES].w;
        if (!m->lora[k].lin && !m->lora[k].split) continue;
        if (w->type != QUANT_F32)
            return lorac_fail(err, LORAC_EUNSUPPORTED, "%s: layer %d %s is quantized: an adapter over it can only be "
                              "activated unmerged", m->path, (int)(k / ARCH_N_SITES), m->fam->site[k % ARCH_N_SITES]);
        work += (size_t)w->rows * (size_t)w->cols;
    }
    int fail = 0;
#pragma omp parallel for schedule(dynamic, 1) reduction(| : fail) if (work >= ((size_t)1 << 18))
    for (size_t k = 0; k < nk; k++) {
        lora_linear *L = m->lora[k].lin;
        lora_merged *M = m->lora[k].split;
        if (!L && !M) continue;
        const model_linear *W = &m->layers[k / ARCH_N_SITES].site[k % ARCH_N_SITES];
        if (!bufs[k]) {
            if (!(bufs[k] = malloc((size_t)W->C * W->OC * sizeof(float)))) {
                fail = 1;
                continue;
            }
            if (dirty) dirty[k] = 7;
        }
        int keep = 0;
        if (M && dirty) {
            int en = M->enable_lora[0] | M->enable_lora[1] << 1 | M->enable_lora[2] << 2;
            keep = (dirty[k] & ~en) == 0;
            dirty[k] = en;
        } else if (dirty) {
            dirty[k] = 7;
        }
        fail |= M ? lora_merged_merge_to(M, bufs[k], keep, NULL) != 0 : lora_linear_merge_to(L, bufs[k], NULL) != 0;
    }
    return fail ? lorac_fail(err, LORAC_ENOMEM, "%s: out of memory for merged weights", m->path) : LORAC_OK;
}

/* 1 if every layer is still merged into the resident copy (nothing unmerged or retrained it). */
static int still_resident(const model *m, float **rbuf) {
    for (size_t k = 0; k < n_sites(m); k++) {
        const lora_linear *L = m->lora[k].lin;
        const lora_merged *M = m->lora[k].split;
        if ((L && (!L->merged || L->merged_w != rbuf[k])) || (M && (!M->merged || M->merged_w != rbuf[k]))) return 0;
    }
    return 1;
}

/* Resident mode: the adapter's own merged weights, computed on its first merged activation, then
 * only pointed at (what lora_*_merge_to leaves, without recomputing it). */
static int resident_merge(model_adapter_set *s, int id, lorac_err *err) {
    model *m = s->m;
    if (!s->rbuf[id] && !(s->rbuf[id] = calloc(n_sites(m), sizeof **s->rbuf)))
        return lorac_fail(err, LORAC_ENOMEM, "%s: out of memory for resident merged weights", m->path);
    if (!s->rvalid[id]) return set_merge(s, s->rbuf[id], NULL, err);
    for (size_t k = 0; k < n_sites(m); k++) {
        lora_linear *L = m->lora[k].lin;
        lora_merged *M = m->lora[k].split;
        if (L) L->merged_w = s->rbuf[id][k], L->merged = L->merged_borrowed = 1, L->training = 0;
        if (M) M->merged_w = s->rbuf[id][k], M->merged = M->merged_borrowed = 1, M->training = 0;
    }
    return LORAC_OK;
}

int model_adapter_set_activate(model_adapter_set *s, int id, int merge, lorac_err *err) {
    if (id < -1 || id >= s->n || (id >= 0 && id != s->active && !s->sites[id]))
        return lorac_fail(err, LORAC_EINVAL, "%s: no adapter %d in the set (%d held)", s->m->path, id, s->n);
    model *m = s->m;
    int rc = LORAC_OK;
    if (s->active >= 0) { /* the active adapter's layers go back to the set, unmerged */
        int a = s->active;
        if (s->rvalid[a] && !(s->merged && s->rbuf[a] && still_resident(m, s->rbuf[a]))) s->rvalid[a] = 0;
        set_unmerge(m, m->lora, m->embed_lora);
        model_lora_swap(m, &s->sites[a], &s->embed[a]);
        s->active = -1;
        s->merged = 0;
    }
    if (id < 0) return LORAC_OK;
    model_lora_swap(m, &s->sites[id], &s->embed[id]); /* they come back NULL */
    s->active = id;
    if (merge) rc = s->resident ? resident_merge(s, id, err) : set_merge(s, s->buf, s->dirty, err);
    else s->rvalid[id] = 0; /* unmerged, its A and B may be trained: the copy may go stale */
    if (rc) {
        set_unmerge(m, m->lora, m->embed_lora); /* stay usable, unmerged */
        s->rvalid[id] = 0;
        return rc;
    }
    if (merge && s->resident) s->rvalid[id] = 1;
    s->merged = merge != 0;
    return LORAC_OK;
}

static void free_bufs(const model *m, float **b) {
    for (size_t k = 0; b && k < n_sites(m); k++) free(b[k]);
    free(b);
}

int model_adapter_set_keep_merged(model_adapter_set *s, int on, lorac_err *err) {
    if (!on && s->resident) { /* the active adapter must not point into buffers about to go */
        int id = s->active, merged = s->merged, rc = model_adapter_set_activate(s, -1, 0, err);
        if (rc) return rc;
        for (int i = 0; i < s->n; i++) {
            free_bufs(s->m, s->rbuf[i]);
            s->rbuf[i] = NULL;
            s->rvalid[i] = 0;
        }
        s->resident = 0;
        return id >= 0 ? model_adapter_set_activate(s, id, merged, err) : LORAC_OK;
    }
    s->resident = on != 0;
    return LORAC_OK;
}

static int grow(model_adapter_set *s, lorac_err *err) {
    int cap = s->cap ? 2 * s->cap : 4;
    site_lora **ns = realloc(s->sites, (size_t)cap * sizeof *ns);
    if (ns) s->sites = ns;
    lora_embedding **ne = ns ? realloc(s->embed, (size_t)cap * sizeof *ne) : NULL;
    if (ne) s->embed = ne;
    float ***nr = ne ? realloc(s->rbuf, (size_t)cap * sizeof *nr) : NULL;
    if (nr) s->rbuf = nr;
    int *nv = nr ? realloc(s->rvalid, (size_t)cap * sizeof *nv) : NULL;
    if (nv) s->rvalid = nv;
    if (!nv) return lorac_fail(err, LORAC_ENOMEM, "%s: out of memory for another adapter", s->m->path);
    for (int i = s->cap; i < cap; i++) s->rbuf[i] = NULL, s->rvalid[i] = 0;
    s->cap = cap;
    return LORAC_OK;
}

int model_adapter_set_add(model_adapter_set *s, const peft_adapter *a, int *id, lorac_err *err) {
    int prev = s->active, prev_merged = s->merged, rc;
    if (s->n == s->cap && (rc = grow(s, err))) return rc;
    if ((rc = peft_adapter_check_lora_only(a, err)) || (rc = model_adapter_set_activate(s, -1, 0, err))) return rc;
    rc = model_peft_attach(s->m, a, err); /* on failure the model is left without LoRA */
    if (!rc) {
        site_lora *l = NULL;
        lora_embedding *e = NULL;
        set_unmerge(s->m, s->m->lora, s->m->embed_lora);
        model_lora_swap(s->m, &l, &e);
        s->sites[s->n] = l;
        s->embed[s->n] = e;
        if (id) *id = s->n;
        s->n++;
    }
    if (prev >= 0) { /* the previously active adapter comes back as it was */
        int rc2 = model_adapter_set_activate(s, prev, prev_merged, rc ? NULL : err);
        if (!rc) rc = rc2;
    }
    return rc;
}

int model_adapter_set_remove(model_adapter_set *s, int id, lorac_err *err) {
    if (id < 0 || id >= s->n || id == s->active || !s->sites[id])
        return lorac_fail(err, LORAC_EINVAL, "%s: adapter %d cannot be removed (%s)", s->m->path, id,
                          id == s->active ? "it is active" : "no such adapter");
    model_lora_free_layout(s->m, s->sites[id], s->embed[id]);
    free_bufs(s->m, s->rbuf[id]);
    s->sites[id] = NULL, s->embed[id] = NULL, s->rbuf[id] = NULL, s->rvalid[id] = 0;
    return LORAC_OK;
}

void model_adapter_set_free(model_adapter_set *s) {
    if (!s) return;
    model_adapter_set_activate(s, -1, 0, NULL);
    for (int i = 0; i < s->n; i++) {
        model_lora_free_layout(s->m, s->sites[i], s->embed[i]);
        free_bufs(s->m, s->rbuf[i]);
    }
    free_bufs(s->m, s->buf);
    free(s->sites);
    free(s->embed);
    free(s->rbuf);
    free(s->rvalid);
    free(s->dirty);
    free(s);
}
