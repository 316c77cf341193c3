/* spm.c — SentencePiece-style BPE (Llama 2, TinyLlama): the text's spaces become "▁" (U+2581), a
 * "▁" is prepended, and the characters are merged pairwise into vocabulary pieces.
 *
 * Two merge orders, one loop. From GGUF (scores): the adjacent pair whose concatenation is a piece
 * with the highest score merges first, ties to the leftmost (sentencepiece's bpe_model.cc and
 * llama.cpp's llm_tokenizer_spm). From tokenizer.json (merges): the pair with the lowest merge rank
 * merges first, ties to the leftmost (HF tokenizers' Word::merge_all). A character that is not a
 * piece becomes its UTF-8 bytes' <0xXX> tokens (byte fallback) or <unk> (consecutive ones fused into
 * one when fuse_unk). Symbols are a linked list over the escaped text; a min-heap holds candidate
 * pairs, re-checked when popped.
 */
#include <stdlib.h>
#include <string.h>

#include "tok/tok_internal.h"

struct spm_model {
    float *scores;           /* [n_vocab], or NULL: merges mode */
    bpe_pair_slot *pairs;    /* merges mode: (left, right) -> rank, merged */
    size_t pair_mask;
    int32_t byte_id[256];    /* <0xXX> tokens, -1 when absent */
    int byte_fallback, fuse_unk, prepend;
};

static uint64_t hash_pair(uint64_t key) {
    key *= 0x9E3779B97F4A7C15ull;
    return key ^ (key >> 31);
}

static const bpe_pair_slot *find_pair(const spm_model *m, int32_t a, int32_t b) {
    uint64_t key = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
    for (size_t i = hash_pair(key) & m->pair_mask;; i = (i + 1) & m->pair_mask) {
        const bpe_pair_slot *p = &m->pairs[i];
        if (p->key == key) return p;
        if (p->key == BPE_EMPTY_KEY) return NULL;
    }
}

void spm_free(spm_model *m) {
    if (!m) return;
    free(m->scores);
    free(m->pairs);
    free(m);
}

int spm_build(const tok *t, const char *src, const float *scores, const int32_t (*merges)[2], size_t nmerges,
              int byte_fallback, int fuse_unk, int prepend, spm_model **out, lorac_err *err) {
    *out = NULL;
    spm_model *m = calloc(1, sizeof *m);
    if (!m) return lorac_fail(err, LORAC_ENOMEM, "%s: out of memory", src);
    m->byte_fallback = byte_fallback;
    m->fuse_unk = fuse_unk;
    m->prepend = prepend;
    for (int b = 0; b < 256; b++) {
        char name[8];
        snprintf(name, sizeof name, "<0x%02X>", b);
        m->byte_id[b] = tok_find_n(t, name, 6);
    }
    if (scores) {
        if (!(m->scores = malloc((size_t)t->n_vocab * sizeof *m->scores))) goto oom;
        memcpy(m->scores, scores, (size_t)t->n_vocab * sizeof *m->scores);
    } else {
        size_t cap = 16;
        while (cap < 2 * nmerges) cap *= 2;
        m->pair_mask = cap - 1;
        if (!(m->pairs = malloc(cap * sizeof *m->pairs))) goto oom;
        for (size_t i = 0; i < cap; i++) m->pairs[i].key = BPE_EMPTY_KEY;
        for (size_t r = nmerges; r-- > 0;) { /* backwards: a repeated pair keeps its first (best) rank */
            uint64_t key = ((uint64_t)(uint32_t)merges[r][0] << 32) | (uint32_t)merges[r][1];
            char buf[512];
            size_t la = t->spell_len[merges[r][0]], lb = t->spell_len[merges[r][1]];
            int32_t merged = -1;
            if (la + lb <= sizeof buf) {
                memcpy(buf, t->spell + t->spell_off[merges[r][0]], la);
                memcpy(buf + la, t->spell + t->spell_off[merges[r][1]], lb);
                merged = tok_find_n(t, buf, la + lb);
            }
            if (merged < 0) {
                char s1[200], s2[200];
                spm_free(m);
                return lorac_fail(err, LORAC_EFORMAT, "%s: merge %zu (\"%s\" \"%s\") gives a piece that is not in the vocabulary",
                                  src, r, tok_show(t->spell + t->spell_off[merges[r][0]], la, s1),
                                  tok_show(t->spell + t->spell_off[merges[r][1]], lb, s2));
            }
            size_t i = hash_pair(key) & m->pair_mask;
            while (m->pairs[i].key != BPE_EMPTY_KEY && m->pairs[i].key != key) i = (i + 1) & m->pair_mask;
            m->pairs[i] = (bpe_pair_slot){key, (int32_t)r, merged};
        }
    }
    *out = m;
    return LORAC_OK;
oom:
    spm_free(m);
    return lorac_fail(err, LORAC_ENOMEM, "%s: out of memory", src);
}

typedef struct cand {
    float prio; /* lower first: -score, or the rank */
    int32_t left, right_start, right_end, merged; /* the pair as it was when queued */
} cand;

typedef struct spm_work {
    const uint8_t *s;            /* the escaped text */
    int32_t *start, *len, *id;   /* per symbol; len 0: merged away */
    int32_t *prev, *next;
    cand *heap;
    size_t hn;
} spm_work;

static int cand_less(const cand *a, const cand *b) {
    return a->prio < b->prio || (a->prio == b->prio && a->left < b->left);
}

static void heap_push(spm_work *w, cand c) {
    size_t i = w->hn++;
    while (i > 0 && cand_less(&c, &w->heap[(i - 1) / 2])) {
        w->heap[i] = w->heap[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    w->heap[i] = c;
}

static cand heap_pop(spm_work *w) {
    cand top = w->heap[0], last = w->heap[--w->hn];
    size_t i = 0, n = w->hn;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && cand_less(&w->heap[c + 1], &w->heap[c])) c++;
        if (!cand_less(&w->heap[c], &last)) break;
        w->heap[i] = w->heap[c];
        i = c;
    }
    if (n) w->heap[i] = last;
    return top;
}

/* Queues the pair of symbols l and next[l] when it can merge. */
static void try_pair(spm_work *w, const tok *t, int32_t l) {
    if (l < 0 || w->next[l] < 0) return;
    int32_t r = w->next[l];
    const spm_model *m = t->spm;
    if (m->scores) {
        int32_t id = tok_find_n(t, (const char *)w->s + w->start[l], (size_t)(w->len[l] + w->len[r]));
        /* as sentencepiece: only normal and user-defined pieces are merged into (text "<0x41>" stays text) */
        if (id >= 0 && (t->attr[id] == TOK_ATTR_NORMAL || t->attr[id] == TOK_ATTR_USER)) heap_push(w, (cand){-m->scores[id], l, w->start[r], w->start[r] + w->len[r], id});
    } else if (w->id[l] >= 0 && w->id[r] >= 0) {
        const bpe_pair_slot *p = find_pair(m, w->id[l], w->id[r]);
        if (p) heap_push(w, (cand){(float)p->rank, l, w->start[r], w->start[r] + w->len[r], p->merged});
    }
}

/* Emits symbol i: its piece, else its bytes' tokens, else <unk>. */
static int emit_symbol(const tok *t, const spm_work *w, int32_t i, int32_t **ids, size_t *n, size_t *cap) {
    const spm_model *m = t->spm;
    if (w->id[i] >= 0) return tok_push(ids, n, cap, w->id[i]);
    int all = m->byte_fallback;
    for (int32_t k = 0; all && k < w->len[i]; k++) all = m->byte_id[w->s[w->start[i] + k]] >= 0;
    if (all) {
        for (int32_t k = 0; k < w->len[i]; k++)
            if (tok_push(ids, n, cap, m->byte_id[w->s[w->start[i] + k]])) return -1;
        return 0;
    }
    if (t->unk < 0) return 1;
    if (m->fuse_unk && *n > 0 && (*ids)[*n - 1] == t->unk) return 0;
    return tok_push(ids, n, cap, t->unk);
}

int spm_encode_append(const tok *t, const uint8_t *s, size_t n, int at_start, int32_t **ids, size_t *n_ids,
                      size_t *cap, lorac_err *err) {
    const spm_model *m = t->spm;
    int pre = m->prepend == SPM_PREPEND_ALWAYS ||
              (m->prepend == SPM_PREPEND_META_ALWAYS && s[0] != ' ') ||
              (m->prepend == SPM_PREPEND_META_FIRST && at_start && s[0] != ' ');
    size_t nsp = 0;
    for (size_t i = 0; i < n; i++) nsp += s[i] == ' ';
    if (n > (size_t)INT32_MAX / 8) return lorac_fail(err, LORAC_EUNSUPPORTED, "tok_encode: text too long");
    size_t elen = n + 2 * nsp + (pre ? 3 : 0);
    uint8_t *e = malloc(elen + 1);
    spm_work w = {0};
    int32_t *lists = malloc(5 * (elen + 1) * sizeof *lists);
    w.heap = malloc(3 * (elen + 1) * sizeof *w.heap);
    int rc = LORAC_OK;
    if (!e || !lists || !w.heap) {
        rc = lorac_fail(err, LORAC_ENOMEM, "tok_encode: out of memory");
        goto done;
    }
    size_t k = 0;
    if (pre) k += (size_t)(memcpy(e, "\xE2\x96\x81", 3), 3);
    for (size_t i = 0; i < n; i++) {
        if (s[i] == ' ') {
            memcpy(e + k, "\xE2\x96\x81", 3);
            k += 3;
        } else {
            e[k++] = s[i];
        }
    }
    w.s = e;
    w.start = lists;
    w.len = lists + (elen + 1);
    w.id = lists + 2 * (elen + 1);
    w.prev = lists + 3 * (elen + 1);
    w.next = lists + 4 * (elen + 1);
    int32_t ns = 0;
    for (size_t i = 0; i < elen;) { /* one symbol per character */
        uint32_t cp;
        size_t cl = tok_utf8_next(e + i, elen - i, &cp);
        w.start[ns] = (int32_t)i;
        w.len[ns] = (int32_t)cl;
        w.id[ns] = tok_find_n(t, (const char *)e + i, cl);
        w.prev[ns] = ns - 1;
        w.next[ns] = ns + 1;
        ns++;
        i += cl;
    }
    if (ns == 0) goto done;
    w.next[ns - 1] = -1;
    for (int32_t i = 0; i + 1 < ns; i++) try_pair(&w, t, i);
    while (w.hn) {
        cand c = heap_pop(&w);
        int32_t l = c.left, r = w.next[l];
        if (w.len[l] == 0 || r < 0 || w.start[r] != c.right_start || w.start[r] + w.len[r] != c.right_end)
            continue; /* stale: a neighbour merged since */
        w.len[l] += w.len[r];
        w.len[r] = 0;
        w.id[l] = c.merged;
        w.next[l] = w.next[r];
        if (w.next[r] >= 0) w.prev[w.next[r]] = l;
        try_pair(&w, t, w.prev[l]);
        try_pair(&w, t, l);
    }
    for (int32_t i = 0; i >= 0 && !rc; i = w.next[i]) {
        int e2 = emit_symbol(t, &w, i, ids, n_ids, cap);
        if (e2 < 0) rc = lorac_fail(err, LORAC_ENOMEM, "tok_encode: out of memory");
        else if (e2 > 0) rc = lorac_fail(err, LORAC_EINVAL, "tok_encode: a character is not in the vocabulary, which has no <unk> and no byte tokens");
    }
done:
    free(e);
    free(lists);
    free(w.heap);
    return rc;
}

/* What tok_save.c writes into a tokenizer.json. */
spm_parts spm_get_parts(const tok *t) {
    const spm_model *m = t->spm;
    return (spm_parts){m->scores, m->pairs, m->pair_mask, m->byte_fallback, m->fuse_unk, m->prepend};
}
