/* metrics_internal.h — shared pieces of src/metrics: token ids, n-gram maps, tokenized corpora. */
#ifndef LORAC_METRICS_INTERNAL_H
#define LORAC_METRICS_INTERNAL_H

#include <stdint.h>

#include "lorac/metrics.h"

#define MT_MAX_N 5 /* longest n-gram any metric uses (NIST-5) */

/* A sentence as token ids. */
typedef struct mt_sent {
    uint32_t *ids;
    size_t len;
} mt_sent;

/* Open-addressing map from an n-gram (1..MT_MAX_N ids; n == 0 is the empty n-gram) to a double. */
typedef struct mt_ngram_slot {
    uint32_t ids[MT_MAX_N];
    uint32_t n; /* 0xffffffff marks an empty slot */
    double value;
} mt_ngram_slot;
typedef struct mt_ngram_map {
    mt_ngram_slot *slots;
    size_t cap, count;
} mt_ngram_map;

int mt_ngram_map_init(mt_ngram_map *m, size_t expected, lorac_err *err);
void mt_ngram_map_free(mt_ngram_map *m);
/* Adds delta to the value of ids[0..n) (inserting 0 first if absent). */
int mt_ngram_map_add(mt_ngram_map *m, const uint32_t *ids, size_t n, double delta, lorac_err *err);
/* The value of ids[0..n), or 0 with *found = 0 when absent (found may be NULL). */
double mt_ngram_map_get(const mt_ngram_map *m, const uint32_t *ids, size_t n, int *found);

/* Words <-> dense ids (open addressing over FNV-1a hashes). Zero-initialize; words are copied. */
typedef struct mt_vocab {
    char **words; /* id -> word */
    size_t n, cap;
    uint32_t *table; /* ids + 1; 0 = empty */
    size_t tcap;
} mt_vocab;
/* The id of w[0..n), added if new. */
int mt_vocab_id(mt_vocab *v, const char *w, size_t n, uint32_t *id, lorac_err *err);
/* The id of w[0..n), or -1. */
int64_t mt_vocab_find(const mt_vocab *v, const char *w, size_t n);
void mt_vocab_free(mt_vocab *v);

/* A tokenized corpus: hyps[i] and refs[c->ref_start[i] ..] as id sequences over one vocabulary. */
typedef enum mt_tok_kind { MT_TOK_MTEVAL, MT_TOK_COCO } mt_tok_kind;
typedef struct mt_corpus {
    size_t n;
    const size_t *ref_start; /* borrowed from the metrics_corpus */
    mt_sent *hyps;
    mt_sent *refs;
    char **words; /* id -> word */
    size_t n_words;
} mt_corpus;
int mt_corpus_tokenize(const metrics_corpus *c, mt_tok_kind kind, mt_corpus *t, lorac_err *err);
void mt_corpus_free(mt_corpus *t);

/* Counts of the n-gram at s[pos..pos+n) inside s (brute force; sentences are short). */
size_t mt_count_in(const mt_sent *s, size_t n, const uint32_t *gram);
/* True if the n-gram at s->ids+pos first occurs at pos (so each distinct n-gram is visited once). */
int mt_first_occurrence(const mt_sent *s, size_t n, size_t pos);

/* Snowball English (Porter2) stem of a lowercase word, as METEOR 1.5's stem module computes it.
 * out needs room for strlen(in) + 2 bytes (a stem is at most one byte longer than its word). */
void mt_stem_english(const char *in, char *out);

#endif
