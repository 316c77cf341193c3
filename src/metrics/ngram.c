/* ngram.c — token ids, n-gram maps and tokenized corpora shared by the metrics. */
#include <stdlib.h>
#include <string.h>

#include "metrics_internal.h"

#define EMPTY_SLOT 0xffffffffu

static uint64_t hash_ngram(const uint32_t *ids, size_t n) {
    uint64_t h = 1469598103934665603ull ^ (uint64_t)n;
    for (size_t i = 0; i < n; i++) {
        h ^= ids[i];
        h *= 1099511628211ull;
        h ^= h >> 29;
    }
    return h * 0x9E3779B97F4A7C15ull;
}

static int alloc_slots(mt_ngram_slot **slots, size_t cap, lorac_err *err) {
    size_t bytes;
    if (lorac_size_mul(cap, sizeof(mt_ngram_slot), &bytes))
        return lorac_fail(err, LORAC_ENOMEM, "metrics: n-gram table too large");
    *slots = malloc(bytes);
    if (!*slots) return lorac_fail(err, LORAC_ENOMEM, "metrics: out of memory for the n-gram table");
    for (size_t i = 0; i < cap; i++) (*slots)[i].n = EMPTY_SLOT;
    return LORAC_OK;
}

int mt_ngram_map_init(mt_ngram_map *m, size_t expected, lorac_err *err) {
    size_t cap = 64;
    while (cap < expected * 2) {
        if (lorac_size_mul(cap, 2, &cap)) return lorac_fail(err, LORAC_ENOMEM, "metrics: n-gram table too large");
    }
    m->cap = cap;
    m->count = 0;
    return alloc_slots(&m->slots, cap, err);
}

void mt_ngram_map_free(mt_ngram_map *m) {
    free(m->slots);
    m->slots = NULL;
    m->cap = m->count = 0;
}

static mt_ngram_slot *find_slot(mt_ngram_slot *slots, size_t cap, const uint32_t *ids, size_t n) {
    size_t i = (size_t)(hash_ngram(ids, n) & (cap - 1));
    for (;;) {
        mt_ngram_slot *s = &slots[i];
        if (s->n == EMPTY_SLOT) return s;
        if (s->n == n && !memcmp(s->ids, ids, n * sizeof(uint32_t))) return s;
        i = (i + 1) & (cap - 1);
    }
}

static int grow(mt_ngram_map *m, lorac_err *err) {
    size_t cap;
    if (lorac_size_mul(m->cap, 2, &cap)) return lorac_fail(err, LORAC_ENOMEM, "metrics: n-gram table too large");
    mt_ngram_slot *slots;
    int rc = alloc_slots(&slots, cap, err);
    if (rc) return rc;
    for (size_t i = 0; i < m->cap; i++)
        if (m->slots[i].n != EMPTY_SLOT) *find_slot(slots, cap, m->slots[i].ids, m->slots[i].n) = m->slots[i];
    free(m->slots);
    m->slots = slots;
    m->cap = cap;
    return LORAC_OK;
}

int mt_ngram_map_add(mt_ngram_map *m, const uint32_t *ids, size_t n, double delta, lorac_err *err) {
    if (2 * (m->count + 1) > m->cap) {
        int rc = grow(m, err);
        if (rc) return rc;
    }
    mt_ngram_slot *s = find_slot(m->slots, m->cap, ids, n);
    if (s->n == EMPTY_SLOT) {
        memset(s->ids, 0, sizeof s->ids);
        memcpy(s->ids, ids, n * sizeof(uint32_t));
        s->n = (uint32_t)n;
        s->value = 0.0;
        m->count++;
    }
    s->value += delta;
    return LORAC_OK;
}

double mt_ngram_map_get(const mt_ngram_map *m, const uint32_t *ids, size_t n, int *found) {
    const mt_ngram_slot *s = find_slot(m->slots, m->cap, ids, n);
    if (found) *found = s->n != EMPTY_SLOT;
    return s->n == EMPTY_SLOT ? 0.0 : s->value;
}

size_t mt_count_in(const mt_sent *s, size_t n, const uint32_t *gram) {
    size_t c = 0;
    for (size_t i = 0; i + n <= s->len; i++)
        if (!memcmp(s->ids + i, gram, n * sizeof(uint32_t))) c++;
    return c;
}

int mt_first_occurrence(const mt_sent *s, size_t n, size_t pos) {
    for (size_t i = 0; i < pos; i++)
        if (!memcmp(s->ids + i, s->ids + pos, n * sizeof(uint32_t))) return 0;
    return 1;
}

/* ---------------------------------------------------------------- vocabulary and corpora */

static uint64_t hash_str(const char *s, size_t n) {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) { h ^= (unsigned char)s[i]; h *= 1099511628211ull; }
    return h;
}

static int vocab_grow_table(mt_vocab *v, lorac_err *err) {
    size_t tcap = v->tcap ? v->tcap * 2 : 1024;
    uint32_t *t = calloc(tcap, sizeof *t);
    if (!t) return lorac_fail(err, LORAC_ENOMEM, "metrics: out of memory for the vocabulary");
    for (size_t i = 0; i < v->n; i++) {
        size_t j = (size_t)(hash_str(v->words[i], strlen(v->words[i])) & (tcap - 1));
        while (t[j]) j = (j + 1) & (tcap - 1);
        t[j] = (uint32_t)(i + 1);
    }
    free(v->table);
    v->table = t;
    v->tcap = tcap;
    return LORAC_OK;
}

/* The table slot of w[0..n): where it is, or the empty slot where it would go. */
static size_t vocab_slot(const mt_vocab *v, const char *w, size_t n) {
    size_t j = (size_t)(hash_str(w, n) & (v->tcap - 1));
    while (v->table[j]) {
        const char *x = v->words[v->table[j] - 1];
        if (strlen(x) == n && !memcmp(x, w, n)) return j;
        j = (j + 1) & (v->tcap - 1);
    }
    return j;
}

int64_t mt_vocab_find(const mt_vocab *v, const char *w, size_t n) {
    if (!v->tcap) return -1;
    size_t j = vocab_slot(v, w, n);
    return v->table[j] ? (int64_t)v->table[j] - 1 : -1;
}

int mt_vocab_id(mt_vocab *v, const char *w, size_t n, uint32_t *id, lorac_err *err) {
    if (2 * (v->n + 1) > v->tcap) {
        int rc = vocab_grow_table(v, err);
        if (rc) return rc;
    }
    size_t j = vocab_slot(v, w, n);
    if (v->table[j]) { *id = v->table[j] - 1; return LORAC_OK; }
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 1024;
        char **ws = realloc(v->words, cap * sizeof *ws);
        if (!ws) return lorac_fail(err, LORAC_ENOMEM, "metrics: out of memory for the vocabulary");
        v->words = ws;
        v->cap = cap;
    }
    char *copy = malloc(n + 1);
    if (!copy) return lorac_fail(err, LORAC_ENOMEM, "metrics: out of memory for the vocabulary");
    memcpy(copy, w, n);
    copy[n] = 0;
    v->words[v->n] = copy;
    v->table[j] = (uint32_t)(v->n + 1);
    *id = (uint32_t)v->n++;
    return LORAC_OK;
}

void mt_vocab_free(mt_vocab *v) {
    for (size_t i = 0; i < v->n; i++) free(v->words[i]);
    free(v->words);
    free(v->table);
    memset(v, 0, sizeof *v);
}

/* Tokenizes s and maps its tokens to ids. The mteval tokenizer turns an empty line into one empty
 * token (Python's ''.split(' ') == ['']); the COCO one into no tokens. */
static int sent_from_text(const char *s, mt_tok_kind kind, mt_vocab *v, mt_sent *out, lorac_err *err) {
    char *t = NULL;
    int rc = kind == MT_TOK_MTEVAL ? metrics_tokenize_mteval(s, &t, err) : metrics_tokenize_coco(s, &t, err);
    if (rc) return rc;
    size_t len = t[0] || kind == MT_TOK_MTEVAL ? 1 : 0;
    for (const char *p = t; *p; p++) len += *p == ' ';
    out->len = 0;
    out->ids = malloc((len ? len : 1) * sizeof(uint32_t));
    if (!out->ids) { free(t); return lorac_fail(err, LORAC_ENOMEM, "metrics: out of memory"); }
    if (len) {
        const char *p = t;
        for (;;) {
            const char *q = strchr(p, ' ');
            size_t n = q ? (size_t)(q - p) : strlen(p);
            rc = mt_vocab_id(v, p, n, &out->ids[out->len++], err);
            if (rc || !q) break;
            p = q + 1;
        }
    }
    free(t);
    return rc;
}

int mt_corpus_tokenize(const metrics_corpus *c, mt_tok_kind kind, mt_corpus *t, lorac_err *err) {
    memset(t, 0, sizeof *t);
    mt_vocab v = {0};
    size_t nrefs = c->ref_start[c->n];
    t->n = c->n;
    t->ref_start = c->ref_start;
    t->hyps = calloc(c->n ? c->n : 1, sizeof *t->hyps);
    t->refs = calloc(nrefs ? nrefs : 1, sizeof *t->refs);
    int rc = LORAC_OK;
    if (!t->hyps || !t->refs) rc = lorac_fail(err, LORAC_ENOMEM, "metrics: out of memory");
    for (size_t i = 0; i < c->n && !rc; i++) rc = sent_from_text(c->hyps[i], kind, &v, &t->hyps[i], err);
    for (size_t i = 0; i < nrefs && !rc; i++) rc = sent_from_text(c->refs[i], kind, &v, &t->refs[i], err);
    free(v.table);
    t->words = v.words;
    t->n_words = v.n;
    if (rc) mt_corpus_free(t);
    return rc;
}

void mt_corpus_free(mt_corpus *t) {
    if (t->hyps) for (size_t i = 0; i < t->n; i++) free(t->hyps[i].ids);
    if (t->refs && t->ref_start) for (size_t i = 0; i < t->ref_start[t->n]; i++) free(t->refs[i].ids);
    for (size_t i = 0; i < t->n_words; i++) free(t->words[i]);
    free(t->words);
    free(t->hyps);
    free(t->refs);
    memset(t, 0, sizeof *t);
}
