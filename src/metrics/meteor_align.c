/* meteor_align.c — METEOR 1.5's aligner (the jar's Aligner): the matches of each stage, then the
 * beam search for the best alignment, then its statistics.
 *
 * Stages, in order, each adding every match it finds (a word pair may be matched by several):
 *   exact       equal words;
 *   stem        different words with equal Snowball English stems;
 *   synonym     different words sharing a WordNet synset (their own, or their base forms');
 *   paraphrase  a phrase of the reference and a phrase of the test that the paraphrase table lists,
 *               in both directions (reference phrase -> test phrase, test phrase -> reference
 *               phrase); phrases may span several words, and are not required to differ.
 * Identical sentences get the exact stage only. Matches covering words that no other match covers,
 * alone at their reference position, are fixed; the rest is resolved by a beam search (beam 40) over
 * reference positions ranking partial alignments by the int-truncated weighted match counts of each
 * side, then fewer chunks, then smaller position distance, with the jar's quirks kept (see
 * path_take), since they change which alignment wins. */
#include <stdlib.h>
#include <string.h>

#include "meteor_internal.h"

#define MET_BEAM 40
#define OOM(err) lorac_fail(err, LORAC_ENOMEM, "metrics: out of memory in METEOR")

typedef struct met_match {
    int ref, rlen, test, tlen, module; /* reference words [ref, ref+rlen), test words [test, test+tlen) */
} met_match;

typedef struct met_path {
    int *match; /* per reference position where a match starts: index into the match list, or -1 */
    unsigned char *used_test, *used_ref;
    int m1, m2; /* weighted matched words of test and reference, int-truncated as the jar keeps them */
    int chunks, idx, last_end, distance;
} met_path;

typedef struct met_ctx {
    const met_sent *t, *r;
    met_match *m; /* grouped by reference position, in the order the stages found them */
    int nm;
    int *first, *count; /* matches starting at reference position i: m[first[i] .. first[i]+count[i]) */
    int *cov_t, *cov_r; /* how many matches cover each word */
} met_ctx;

/* ---------------------------------------------------------------- the stages */

typedef struct match_list {
    met_match *v;
    size_t n, cap;
} match_list;

static int add_match(match_list *l, met_ctx *c, int ref, int rlen, int test, int tlen, int module) {
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 64;
        met_match *q = realloc(l->v, cap * sizeof *q);
        if (!q) return -1;
        l->v = q;
        l->cap = cap;
    }
    l->v[l->n++] = (met_match){ref, rlen, test, tlen, module};
    for (int k = 0; k < rlen; k++) c->cov_r[ref + k]++;
    for (int k = 0; k < tlen; k++) c->cov_t[test + k]++;
    return 0;
}

static int sets_intersect(const uint32_t *a, size_t na, const uint32_t *b, size_t nb) {
    size_t i = 0, j = 0;
    while (i < na && j < nb) {
        if (a[i] == b[j]) return 1;
        if (a[i] < b[j]) i++; else j++;
    }
    return 0;
}

/* Does phrase ph (n ids) occur in s at position at? */
static int phrase_at(const met_sent *s, int at, const uint32_t *ph, uint32_t n) {
    for (uint32_t k = 0; k < n; k++) if (at + (int)k >= s->n || s->id[at + k] != ph[k]) return 0;
    return 1;
}

/* The paraphrase stage: for each position of `from`, every table phrase starting there whose
 * paraphrase occurs anywhere in `to`. from_is_ref says which side each one is. */
static int paraphrase_stage(match_list *l, met_ctx *c, const met_paraphrases *p, int from_is_ref) {
    const met_sent *from = from_is_ref ? c->r : c->t, *to = from_is_ref ? c->t : c->r;
    for (int a = 0; a < from->n; a++) {
        for (size_t q = from->path_off[a]; q < from->path_off[a + 1]; q += 2) {
            int len = (int)from->path[q];
            const met_para_entry *e = &p->e[from->path[q + 1]];
            for (int b = 0; b < to->n; b++) {
                if (!phrase_at(to, b, p->words + e->par_off, e->par_len)) continue;
                int bad = from_is_ref ? add_match(l, c, a, len, b, (int)e->par_len, MET_PARAPHRASE)
                                      : add_match(l, c, b, (int)e->par_len, a, len, MET_PARAPHRASE);
                if (bad) return -1;
            }
        }
    }
    return 0;
}

/* Every match of every stage, in the jar's order, grouped by reference position into c. */
static int find_matches(met_ctx *c, const met_resources *res, lorac_err *err) {
    const met_sent *t = c->t, *r = c->r;
    int T = t->n, R = r->n;
    int same = T == R;
    for (int i = 0; same && i < T; i++) same = !strcmp(t->w[i], r->w[i]);
    int stages = same ? 1 : res ? MET_MODULES : MET_SYNONYM;
    match_list l = {0};
    int bad = 0;
    for (int mod = 0; mod < stages && mod != MET_PARAPHRASE && !bad; mod++)
        for (int i = 0; i < R && !bad; i++)
            for (int j = 0; j < T && !bad; j++) {
                int eq = !strcmp(t->w[j], r->w[i]), hit;
                if (mod == MET_EXACT) hit = eq;
                else if (mod == MET_STEM) hit = !eq && !strcmp(t->stem[j], r->stem[i]);
                else hit = !eq && sets_intersect(t->syn + t->syn_off[j], t->syn_off[j + 1] - t->syn_off[j],
                                                 r->syn + r->syn_off[i], r->syn_off[i + 1] - r->syn_off[i]);
                if (hit) bad = add_match(&l, c, i, 1, j, 1, mod);
            }
    if (stages == MET_MODULES && !bad) bad = paraphrase_stage(&l, c, &res->para, 1);
    if (stages == MET_MODULES && !bad) bad = paraphrase_stage(&l, c, &res->para, 0);
    if (!bad) c->m = malloc((l.n + 1) * sizeof *c->m);
    if (bad || !c->m) { free(l.v); return OOM(err); }
    /* group by reference position, keeping the order within each */
    for (size_t k = 0; k < l.n; k++) c->count[l.v[k].ref]++;
    for (int i = 0; i < R; i++) c->first[i + 1] = c->first[i] + c->count[i];
    int *fill = calloc((size_t)R + 1, sizeof *fill);
    if (!fill) { free(l.v); return OOM(err); }
    for (size_t k = 0; k < l.n; k++) c->m[c->first[l.v[k].ref] + fill[l.v[k].ref]++] = l.v[k];
    c->nm = (int)l.n;
    free(fill);
    free(l.v);
    return LORAC_OK;
}

/* ---------------------------------------------------------------- the beam search */

/* The jar's partial-alignment order: more weighted matches, then fewer chunks, then less distance. */
static int path_cmp(const met_path *a, const met_path *b) {
    int wa = a->m1 + a->m2, wb = b->m1 + b->m2;
    if (wa != wb) return wa > wb ? -1 : 1;
    if (a->chunks != b->chunks) return a->chunks - b->chunks;
    return a->distance - b->distance;
}

/* Stable merge sort of path pointers (Java's Collections.sort is stable). */
static void path_sort(met_path **v, met_path **tmp, size_t n) {
    if (n < 2) return;
    size_t h = n / 2;
    path_sort(v, tmp, h);
    path_sort(v + h, tmp, n - h);
    size_t i = 0, j = h, k = 0;
    while (i < h && j < n) tmp[k++] = path_cmp(v[j], v[i]) < 0 ? v[j++] : v[i++];
    while (i < h) tmp[k++] = v[i++];
    while (j < n) tmp[k++] = v[j++];
    memcpy(v, tmp, n * sizeof *v);
}

static met_path *path_new(const met_ctx *c) {
    size_t R = (size_t)c->r->n, T = (size_t)c->t->n;
    met_path *p = calloc(1, sizeof *p + R * sizeof(int) + R + T + 2);
    if (!p) return NULL;
    p->match = (int *)(p + 1);
    p->used_ref = (unsigned char *)(p->match + R);
    p->used_test = p->used_ref + R;
    for (size_t i = 0; i < R; i++) p->match[i] = -1;
    p->last_end = -1;
    return p;
}

static met_path *path_copy(const met_ctx *c, const met_path *q) {
    met_path *p = path_new(c);
    if (!p) return NULL;
    size_t R = (size_t)c->r->n, T = (size_t)c->t->n;
    int *match = p->match;
    unsigned char *ur = p->used_ref, *ut = p->used_test;
    *p = *q;
    p->match = match; p->used_ref = ur; p->used_test = ut;
    memcpy(p->match, q->match, R * sizeof(int));
    memcpy(p->used_ref, q->used_ref, R);
    memcpy(p->used_test, q->used_test, T);
    return p;
}

static int path_uses(const met_path *p, const met_match *m) {
    for (int k = 0; k < m->rlen; k++) if (p->used_ref[m->ref + k]) return 1;
    for (int k = 0; k < m->tlen; k++) if (p->used_test[m->test + k]) return 1;
    return 0;
}

static void path_mark(met_path *p, const met_match *m) {
    for (int k = 0; k < m->rlen; k++) p->used_ref[m->ref + k] = 1;
    for (int k = 0; k < m->tlen; k++) p->used_test[m->test + k] = 1;
}

/* Extends p by match m. The distance goes to dist_to: the jar adds a new branch's distance to the
 * path it branched from (so to later siblings and the skip path), not to the branch itself. */
static void path_take(met_path *p, const met_match *m, met_path *dist_to) {
    p->m1 = (int)((double)p->m1 + m->tlen * mt_meteor_weights[m->module]); /* int += double: truncated */
    p->m2 = (int)((double)p->m2 + m->rlen * mt_meteor_weights[m->module]);
    if (p->last_end != -1 && m->test != p->last_end) p->chunks++;
    p->idx = m->ref + m->rlen;
    p->last_end = m->test + m->tlen;
    dist_to->distance += abs(m->ref - m->test);
}

/* The start: matches alone at their reference position whose words no other match covers. */
static met_path *start_path(const met_ctx *c) {
    met_path *p = path_new(c);
    if (!p) return NULL;
    for (int i = 0; i < c->r->n; i++) {
        if (c->count[i] != 1) continue;
        const met_match *m = &c->m[c->first[i]];
        int overlap = 0;
        for (int k = 0; k < m->rlen; k++) overlap |= c->cov_r[m->ref + k] != 1;
        for (int k = 0; k < m->tlen; k++) overlap |= c->cov_t[m->test + k] != 1;
        if (overlap) continue;
        p->match[i] = c->first[i];
        path_mark(p, m);
    }
    return p;
}

/* One step of the search at reference position i: the beam's paths, extended, go to next. A path
 * dropped (a used word with no match where it stands) stays in cur for the jar's fallback. */
static int beam_step(const met_ctx *c, int i, met_path **cur, size_t beam, met_path **next, size_t *nnext, lorac_err *err) {
    int R = c->r->n;
    for (size_t b = 0; b < beam; b++) {
        met_path *p = cur[b];
        if (i == R) {
            if (p->last_end != -1) p->chunks++;
        } else if (p->used_ref[i]) {
            if (i >= p->idx) {
                if (p->match[p->idx] < 0) continue;
                path_take(p, &c->m[p->match[p->idx]], p);
            }
        } else {
            for (int k = c->first[i]; k < c->first[i] + c->count[i]; k++) {
                const met_match *m = &c->m[k];
                if (path_uses(p, m)) continue;
                met_path *q = path_copy(c, p);
                if (!q) return OOM(err);
                path_mark(q, m);
                q->match[i] = k;
                path_take(q, m, p);
                next[(*nnext)++] = q;
            }
            /* or leave reference word i unmatched, which ends the current chunk */
            if (p->last_end != -1) { p->chunks++; p->last_end = -1; }
            p->idx++;
        }
        cur[b] = NULL;
        next[(*nnext)++] = p;
    }
    return LORAC_OK;
}

/* The statistics of the best alignment. */
static void best_stats(const met_ctx *c, const met_path *best, met_stats *st) {
    const met_sent *t = c->t, *r = c->r;
    memset(st, 0, sizeof *st);
    st->test_len = t->n;
    st->ref_len = r->n;
    for (int j = 0; j < t->n; j++) st->test_fn += t->fn[j];
    for (int i = 0; i < r->n; i++) st->ref_fn += r->fn[i];
    int last = -1, chunks = 0;
    for (int i = 0; i < r->n;) {
        if (best->match[i] < 0) {
            if (last != -1) { chunks++; last = -1; }
            i++;
            continue;
        }
        const met_match *m = &c->m[best->match[i]];
        for (int k = 0; k < m->tlen; k++) {
            if (t->fn[m->test + k]) st->test_function[m->module]++; else st->test_content[m->module]++;
        }
        for (int k = 0; k < m->rlen; k++) {
            if (r->fn[m->ref + k]) st->ref_function[m->module]++; else st->ref_content[m->module]++;
        }
        st->test_matches += m->tlen;
        st->ref_matches += m->rlen;
        if (last != -1 && m->test != last) chunks++;
        last = m->test + m->tlen;
        i = m->ref + m->rlen;
    }
    if (last != -1) chunks++;
    st->chunks = chunks;
}

int met_align(const met_sent *t, const met_sent *r, const met_resources *res, met_stats *st, lorac_err *err) {
    int R = r->n, rc = LORAC_OK;
    met_ctx c = {t, r, NULL, 0, NULL, NULL, NULL, NULL};
    c.first = calloc((size_t)R + 2, sizeof(int));
    c.count = calloc((size_t)R + 1, sizeof(int));
    c.cov_t = calloc((size_t)t->n + 1, sizeof(int));
    c.cov_r = calloc((size_t)R + 1, sizeof(int));
    met_path **cur = NULL, **next = NULL, **tmp = NULL;
    size_t ncur = 0, cap = 64;
    if (!c.first || !c.count || !c.cov_t || !c.cov_r) { rc = OOM(err); goto done; }
    rc = find_matches(&c, res, err);
    if (rc) goto done;
    cur = malloc(cap * sizeof *cur);
    next = malloc(cap * sizeof *next);
    tmp = malloc(cap * sizeof *tmp);
    if (!cur || !next || !tmp || !(cur[0] = start_path(&c))) { rc = OOM(err); goto done; }
    ncur = 1;
    for (int i = 0; i <= R && !rc; i++) {
        path_sort(cur, tmp, ncur);
        size_t beam = ncur < MET_BEAM ? ncur : MET_BEAM, nnext = 0;
        size_t need = beam * ((size_t)(i < R ? c.count[i] : 0) + 1) + 1; /* every expansion of the beam */
        if (need > cap) {
            size_t nc = need * 2;
            met_path **a = realloc(next, nc * sizeof *a);
            if (a) next = a;
            met_path **b = a ? realloc(tmp, nc * sizeof *b) : NULL;
            if (b) tmp = b;
            met_path **d = b ? realloc(cur, nc * sizeof *d) : NULL;
            if (d) cur = d;
            if (!d) { rc = OOM(err); break; }
            cap = nc;
        }
        rc = beam_step(&c, i, cur, beam, next, &nnext, err);
        if (!rc && nnext == 0) { next[nnext++] = cur[0]; cur[0] = NULL; } /* the jar's "unexpected conditions" */
        for (size_t b = 0; b < ncur; b++) free(cur[b]); /* paths that fell out of the beam or were dropped */
        met_path **sw = cur; cur = next; next = sw;
        ncur = nnext;
    }
    if (!rc) {
        path_sort(cur, tmp, ncur);
        best_stats(&c, cur[0], st);
    }
done:
    if (cur) for (size_t b = 0; b < ncur; b++) free(cur[b]);
    free(cur); free(next); free(tmp);
    free(c.m); free(c.first); free(c.count); free(c.cov_t); free(c.cov_r);
    return rc;
}
