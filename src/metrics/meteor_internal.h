/* meteor_internal.h — the pieces of METEOR 1.5 (src/metrics/meteor*.c): normalized sentences, the
 * synonym and paraphrase resources, matches, alignment statistics. */
#ifndef LORAC_METEOR_INTERNAL_H
#define LORAC_METEOR_INTERNAL_H

#include "metrics_internal.h"

/* The stages, in the jar's order for -l en; their default weights (Constants.WEIGHT_RANK, English). */
enum { MET_EXACT = 0, MET_STEM, MET_SYNONYM, MET_PARAPHRASE, MET_MODULES };
extern const double mt_meteor_weights[MET_MODULES];

/* Normalizes s as meteor-1.5.jar -l en -norm does and splits it into words: out receives the words
 * as one malloc'd buffer of NUL-separated strings, *n_words their count. */
int mt_meteor_normalize(const char *s, char **out, size_t *n_words, lorac_err *err);
/* METEOR's English function words (function/english.words in meteor-1.5.jar). */
int mt_meteor_function_word(const char *w);

/* ---------------------------------------------------------------- resources (meteor_data.c) */

/* WordNet synsets as the jar's SynonymDictionary holds them: word -> synset ids, and the irregular
 * forms (english.exceptions): form -> base words. */
typedef struct met_synonyms {
    mt_vocab words;          /* words of english.synsets */
    size_t *set_start;       /* synsets of word k: sets[set_start[k] .. + set_count[k]) */
    uint32_t *set_count, *sets;
    mt_vocab forms;          /* forms of english.exceptions */
    size_t *base_off;        /* bases of form k: bases[base_off[k] .. base_off[k+1]) (ids in words, */
    int64_t *bases;          /* -1 for a base without synsets) */
} met_synonyms;

/* The paraphrase table restricted to phrases whose words all occur in the scored corpus (the others
 * cannot match), in the file's order; phrases are ids of the corpus vocabulary. */
typedef struct met_para_entry {
    size_t ref_off, par_off; /* into words */
    uint32_t ref_len, par_len;
} met_para_entry;
typedef struct met_paraphrases {
    met_para_entry *e;
    size_t n;
    uint32_t *words;
    size_t *sorted; /* entries ordered by reference phrase (shorter first on a common prefix), then file order */
} met_paraphrases;

/* Both resources; NULL resources mean the exact and stem stages only. */
typedef struct met_resources {
    met_synonyms syn;
    met_paraphrases para;
} met_resources;

int met_synonyms_load(met_synonyms *s, const char *dir, lorac_err *err);
void met_synonyms_free(met_synonyms *s);
/* The synsets of word w (SynonymMatcher: its own synsets and those of its base forms), sorted and
 * without repeats, appended to *out (grown with realloc; *n its count, *cap its room). */
int met_synonyms_of(const met_synonyms *s, const char *w, uint32_t **out, size_t *n, size_t *cap, lorac_err *err);

/* Loads dir/paraphrase-en.gz keeping the entries whose words all are in vocab. */
int met_paraphrases_load(met_paraphrases *p, const char *dir, const mt_vocab *vocab, lorac_err *err);
void met_paraphrases_free(met_paraphrases *p);
/* The jar's ParaphraseTransducer.getReferencePaths: the entries whose reference phrase starts at
 * ids[start], as (phrase length, entry) pairs, shorter phrases first, then in file order;
 * appended to *out as in met_synonyms_of (2 values per entry). */
int met_paraphrase_paths(const met_paraphrases *p, const uint32_t *ids, size_t n, size_t start, uint32_t **out,
                         size_t *len, size_t *cap, lorac_err *err);

/* ---------------------------------------------------------------- sentences and alignment */

typedef struct met_sent {
    char **w;      /* normalized words (pointers into buf) */
    char **stem;   /* Snowball English stems */
    int *fn;       /* function word? */
    uint32_t *id;  /* corpus vocabulary ids (only with resources) */
    size_t *syn_off; /* synsets of word k: syn[syn_off[k] .. syn_off[k+1]) (only with resources) */
    uint32_t *syn;
    size_t *path_off; /* paraphrase paths from word k: path[path_off[k] .. path_off[k+1]), pairs */
    uint32_t *path;
    int n;
    char *buf, *stem_buf;
} met_sent;

/* Sufficient statistics of one alignment (or a sum of them). */
typedef struct met_stats {
    double test_len, ref_len, test_fn, ref_fn;
    double test_content[MET_MODULES], ref_content[MET_MODULES], test_function[MET_MODULES], ref_function[MET_MODULES];
    double test_matches, ref_matches, chunks;
} met_stats;

/* Aligns test t with reference r (all four stages with resources, else exact and stem) by the
 * jar's beam search and fills the statistics of the best alignment. */
int met_align(const met_sent *t, const met_sent *r, const met_resources *res, met_stats *st, lorac_err *err);

#endif
