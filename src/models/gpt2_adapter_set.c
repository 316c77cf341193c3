/* Several adapters held over one GPT-2 base: each adapter's LoRA layers stay unmerged while
 * inactive; activating one either points the model at its layers (unmerged: a pointer swap) or
 * merges it into per-site buffers allocated once and reused by every switch, so W0 is never written
 * and comes back bit for bit. */
#include <stdlib.h>
#include <string.h>

#include "lorac/gpt2.h"
#include "lorac/peft.h"


struct gpt2_adapter_set {
    gpt2_model *m;
    int n, cap;
    gpt2_block_lora **blocks; /* (n) each adapter's layers, kept unmerged while inactive */
    lora_embedding **wte;     /* (n) or NULL entries */
    int active, merged;       /* active id (-1: none) and whether it is merged */
    float **buf;              /* (n_layer·N_SITES) merged weights, allocated once, reused by every switch */
    int *dirty;               /* c_attn buffers: mask of q/k/v slices holding a delta (7: unknown) */
    int resident;             /* keep every adapter's merged weights (gpt2_adapter_set_keep_merged) */
    float ***rbuf;            /* (cap) per adapter: n_layer·N_SITES merged weights or NULL (resident) */
    int *rvalid;              /* (cap) rbuf[id] holds adapter id's current merge */
};

int gpt2_adapter_set_new(gpt2_model *m, gpt2_adapter_set **out, lorac_err *err) {
    *out = NULL;
    if (m->has_lora) return lorac_fail(err, LORAC_EINVAL, "gpt2: an adapter set needs a model without LoRA layers");
    gpt2_adapter_set *s = calloc(1, sizeof *s);
    size_t nb = (size_t)m->cfg.n_layer * GPT2_N_SITES;
    if (!s || !(s->buf = calloc(nb, sizeof *s->buf)) || !(s->dirty = calloc(nb, sizeof *s->dirty))) {
        if (s) free(s->buf);
        free(s);
        return lorac_fail(err, LORAC_ENOMEM, "gpt2: out of memory for an adapter set");
    }
    s->m = m;
    s->active = -1;
    *out = s;
    return LORAC_OK;
}

int gpt2_adapter_set_count(const gpt2_adapter_set *s) { return s->n; }

const gpt2_model *gpt2_adapter_set_model(const gpt2_adapter_set *s) { return s->m; }

/* Every LoRA layer of one adapter back to unmerged inference (merged copies dropped; the
 * set's buffers are borrowed, so nothing is freed). */
static void set_unmerge(const gpt2_model *m, gpt2_block_lora *blocks, lora_embedding *wte) {
    if (wte) {
        lora_embedding_train(wte, 1, NULL);
        wte->cfg.merge_weights = 0;
        wte->training = 0;
    }
    for (int l = 0; blocks && l < m->cfg.n_layer; l++) {
        gpt2_block_lora *b = &blocks[l];
        if (b->qkv) {
            lora_merged_train(b->qkv, 1, NULL);
            b->qkv->cfg.merge_weights = 0;
            b->qkv->training = 0;
        }
        lora_linear *ls[4] = {b->c_attn, b->attn_proj, b->mlp_fc, b->mlp_proj};
        for (int i = 0; i < 4; i++)
            if (ls[i]) {
                lora_linear_train(ls[i], 1, NULL);
                ls[i]->cfg.merge_weights = 0;
                ls[i]->training = 0;
            }
    }
}

/* Merges the model's current LoRA layers into the set's buffers (allocated on first use). The
 * weights are merged in one parallel loop (one weight per task, dynamic schedule): a single
 * fork/join per switch instead of one per weight, which matters on a busy machine. */
static int set_merge(gpt2_adapter_set *s, lorac_err *err) {
    gpt2_model *m = s->m;
    const gpt2_config *c = &m->cfg;
    size_t C = c->n_embd, I = c->n_inner;
    size_t numel[GPT2_N_SITES] = {C * 3 * C, C * C, C * I, I * C};
    int nk = c->n_layer * GPT2_N_SITES, *todo = malloc((size_t)nk * sizeof *todo), *keep = calloc((size_t)nk, sizeof *keep);
    if (!todo || !keep) {
        free(todo);
        free(keep);
        return lorac_fail(err, LORAC_ENOMEM, "gpt2: out of memory merging");
    }
    int n = 0, rc = LORAC_OK;
    for (int k = 0; k < nk && !rc; k++) {
        int l = k / GPT2_N_SITES, site = k % GPT2_N_SITES;
        gpt2_block_lora *b = &m->blocks[l];
        lora_linear *ls[GPT2_N_SITES] = {b->c_attn, b->attn_proj, b->mlp_fc, b->mlp_proj};
        lora_merged *M = site == GPT2_SITE_C_ATTN ? b->qkv : NULL;
        if (!ls[site] && !M) continue;
        if (!s->buf[k]) {
            if (!(s->buf[k] = malloc(numel[site] * sizeof(float)))) {
                rc = lorac_fail(err, LORAC_ENOMEM, "gpt2: out of memory for merged weights");
                break;
            }
            s->dirty[k] = 7;
        }
        if (M) { /* slices without LoRA are rewritten only if an earlier merge left a delta there */
            int en = M->enable_lora[0] | M->enable_lora[1] << 1 | M->enable_lora[2] << 2;
            keep[k] = (s->dirty[k] & ~en) == 0;
            s->dirty[k] = en;
        } else {
            s->dirty[k] = 7;
        }
        todo[n++] = k;
    }
    int fail = 0;
#pragma omp parallel for schedule(dynamic, 1) reduction(| : fail)
    for (int q = 0; q < (rc ? 0 : n); q++) {
        int k = todo[q], l = k / GPT2_N_SITES, site = k % GPT2_N_SITES;
        gpt2_block_lora *b = &m->blocks[l];
        lora_linear *ls[GPT2_N_SITES] = {b->c_attn, b->attn_proj, b->mlp_fc, b->mlp_proj};
        lora_merged *M = site == GPT2_SITE_C_ATTN ? b->qkv : NULL;
        fail |= M ? lora_merged_merge_to(M, s->buf[k], keep[k], NULL) != 0 : lora_linear_merge_to(ls[site], s->buf[k], NULL) != 0;
    }
    if (!rc && fail) rc = lorac_fail(err, LORAC_ENOMEM, "gpt2: out of memory merging");
    free(todo);
    free(keep);
    return rc;
}

/* 1 if every LoRA layer of the model is merged (nothing unmerged it since activation). */
static int still_merged(const gpt2_model *m) {
    for (int l = 0; m->blocks && l < m->cfg.n_layer; l++) {
        const gpt2_block_lora *b = &m->blocks[l];
        const lora_linear *ls[GPT2_N_SITES] = {b->c_attn, b->attn_proj, b->mlp_fc, b->mlp_proj};
        if (b->qkv && !b->qkv->merged) return 0;
        for (int i = 0; i < GPT2_N_SITES; i++)
            if (ls[i] && !ls[i]->merged) return 0;
    }
    return 1;
}

/* Resident mode: adapter id's own merged weights, computed on its first merged activation and
 * then only pointed at (a switch is a pointer swap; W0 is still never written). */
static int resident_merge(gpt2_adapter_set *s, int id, lorac_err *err) {
    gpt2_model *m = s->m;
    const gpt2_config *c = &m->cfg;
    size_t C = c->n_embd, I = c->n_inner, nk = (size_t)c->n_layer * GPT2_N_SITES;
    size_t numel[GPT2_N_SITES] = {C * 3 * C, C * C, C * I, I * C};
    if (!s->rbuf[id] && !(s->rbuf[id] = calloc(nk, sizeof **s->rbuf)))
        return lorac_fail(err, LORAC_ENOMEM, "gpt2: out of memory for resident merged weights");
    float **rb = s->rbuf[id];
    int fresh = s->rvalid[id], fail = 0;
#pragma omp parallel for schedule(dynamic, 1) reduction(| : fail)
    for (size_t k = 0; k < nk; k++) {
        gpt2_block_lora *b = &m->blocks[k / GPT2_N_SITES];
        int site = (int)(k % GPT2_N_SITES);
        lora_linear *ls[GPT2_N_SITES] = {b->c_attn, b->attn_proj, b->mlp_fc, b->mlp_proj};
        lora_merged *M = site == GPT2_SITE_C_ATTN ? b->qkv : NULL;
        lora_linear *L = ls[site];
        if (!L && !M) continue;
        if (fresh && rb[k]) { /* what lora_*_merge_to leaves, without recomputing it */
            if (M) M->merged_w = rb[k], M->merged = M->merged_borrowed = 1, M->training = 0;
            else L->merged_w = rb[k], L->merged = L->merged_borrowed = 1, L->training = 0;
            continue;
        }
        if (!rb[k] && !(rb[k] = malloc(numel[site] * sizeof(float)))) {
            fail = 1;
            continue;
        }
        fail |= M ? lora_merged_merge_to(M, rb[k], 0, NULL) != 0 : lora_linear_merge_to(L, rb[k], NULL) != 0;
    }
    if (fail) return lorac_fail(err, LORAC_ENOMEM, "gpt2: out of memory for resident merged weights");
    s->rvalid[id] = 1;
    return LORAC_OK;
}

static void resident_free(gpt2_adapter_set *s) {
    for (int i = 0; s->rbuf && i < s->n; i++) {
        for (int k = 0; s->rbuf[i] && k < s->m->cfg.n_layer * GPT2_N_SITES; k++) free(s->rbuf[i][k]);
        free(s->rbuf[i]);
        s->rbuf[i] = NULL;
        s->rvalid[i] = 0;
    }
}

int gpt2_adapter_set_keep_merged(gpt2_adapter_set *s, int on, lorac_err *err) {
    if (!on && s->resident) { /* the active adapter must not point into buffers about to go */
        int id = s->active, merged = s->merged, rc = gpt2_adapter_set_activate(s, -1, 0, err);
        if (rc) return rc;
        resident_free(s);
        s->resident = 0;
        return id >= 0 ? gpt2_adapter_set_activate(s, id, merged, err) : LORAC_OK;
    }
    s->resident = on != 0;
    return LORAC_OK;
}

int gpt2_adapter_set_activate(gpt2_adapter_set *s, int id, int merge, lorac_err *err) {
    if (id < -1 || id >= s->n) return lorac_fail(err, LORAC_EINVAL, "gpt2: no adapter %d in the set (%d held)", id, s->n);
    gpt2_model *m = s->m;
    if (s->active >= 0) { /* take the active one out of the model */
        gpt2_block_lora *none = NULL;
        lora_embedding *nw = NULL;
        if (s->resident && !still_merged(m)) s->rvalid[s->active] = 0; /* unmerged meanwhile (training?) */
        set_unmerge(m, m->blocks, m->wte_lora);
        int rc = gpt2_lora_swap(m, &none, &nw, err);
        if (rc) return rc;
        s->active = -1;
        s->merged = 0;
    }
    if (id < 0) return LORAC_OK;
    gpt2_block_lora *b = s->blocks[id];
    lora_embedding *w = s->wte[id];
    int rc = gpt2_lora_swap(m, &b, &w, err); /* b, w come back NULL: the model held none */
    if (rc) return rc;
    s->active = id;
    if (merge && s->resident) rc = resident_merge(s, id, err);
    else if (merge) rc = set_merge(s, err);
    else if (s->resident) s->rvalid[id] = 0; /* unmerged, its A and B may be trained: the copy may go stale */
    if (rc) {
        set_unmerge(m, m->blocks, m->wte_lora); /* stay usable, unmerged */
        return rc;
    }
    s->merged = merge;
    return LORAC_OK;
}

int gpt2_adapter_set_add(gpt2_adapter_set *s, const peft_adapter *a, int *id, lorac_err *err) {
    int prev = s->active, prev_merged = s->merged, rc;
    if (s->n == s->cap) {
        int cap = s->cap ? 2 * s->cap : 4;
        gpt2_block_lora **nb = realloc(s->blocks, (size_t)cap * sizeof *nb);
        if (nb) s->blocks = nb;
        lora_embedding **nw = nb ? realloc(s->wte, (size_t)cap * sizeof *nw) : NULL;
        if (nw) s->wte = nw;
        float ***nr = nw ? realloc(s->rbuf, (size_t)cap * sizeof *nr) : NULL;
        if (nr) s->rbuf = nr;
        int *nv = nr ? realloc(s->rvalid, (size_t)cap * sizeof *nv) : NULL;
        if (nv) s->rvalid = nv;
        if (!nb || !nw || !nr || !nv) return lorac_fail(err, LORAC_ENOMEM, "gpt2: out of memory for another adapter");
        for (int i = s->cap; i < cap; i++) {
            s->rbuf[i] = NULL;
            s->rvalid[i] = 0;
        }
        s->cap = cap;
    }
    if ((rc = peft_adapter_check_lora_only(a, err))) return rc;
    if ((rc = gpt2_adapter_set_activate(s, -1, 0, err))) return rc;
    rc = gpt2_peft_attach(s->m, a, err); /* on failure the model is left without LoRA */
    if (!rc) {
        gpt2_block_lora *b = NULL;
        lora_embedding *w = NULL;
        set_unmerge(s->m, s->m->blocks, s->m->wte_lora);
        rc = gpt2_lora_swap(s->m, &b, &w, err);
        if (!rc) {
            s->blocks[s->n] = b;
            s->wte[s->n] = w;
            if (id) *id = s->n;
            s->n++;
        } else {
            gpt2_lora_free_layers(&s->m->cfg, b, w);
        }
    }
    if (prev >= 0) { /* the previously active adapter comes back as it was */
        int rc2 = gpt2_adapter_set_activate(s, prev, prev_merged, rc ? NULL : err);
        if (!rc) rc = rc2;
    }
    return rc;
}

void gpt2_adapter_set_free(gpt2_adapter_set *s) {
    if (!s) return;
    gpt2_adapter_set_activate(s, -1, 0, NULL);
    for (int i = 0; i < s->n; i++) gpt2_lora_free_layers(&s->m->cfg, s->blocks[i], s->wte[i]);
    for (int i = 0; i < s->m->cfg.n_layer * GPT2_N_SITES; i++) free(s->buf[i]);
    resident_free(s);
    free(s->rbuf);
    free(s->rvalid);
    free(s->buf);
    free(s->dirty);
    free(s->blocks);
    free(s->wte);
    free(s);
}

const gpt2_block_lora *gpt2_adapter_set_layers(const gpt2_adapter_set *s, int id, const lora_embedding **wte) {
    if (id < 0 || id >= s->n) return NULL;
    if (wte) *wte = s->active == id ? s->m->wte_lora : s->wte[id];
    return s->active == id ? s->m->blocks : s->blocks[id];
}
