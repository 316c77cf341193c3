/* meteor.c — METEOR 1.5 as the E2E scorer runs it (pycocoevalcap: meteor-1.5.jar -l en -norm),
 * corpus level. Two versions:
 *   official    all four stages (exact, stem, WordNet synonyms, paraphrases) with the jar's English
 *               parameters; needs the data of tools/fetch_meteor.sh (metrics_compute_meteor);
 *   exact+stem  the exact and stem stages only, without data: NOT the official score; it equals the
 *               jar run with -m "exact stem" -w "1.0 0.6" (metrics_compute_meteor_es).
 *
 * Per input, on the COCO tokens (as pycocoevalcap feeds the jar):
 *   1. -norm: the jar's English normalizer re-tokenizes each sentence (meteor_norm.c).
 *   2. Each reference is aligned with the hypothesis (meteor_align.c).
 *   3. Scored with alpha .85, beta .2, gamma .6, delta .75 and the stage weights 1.0 / 0.6 / 0.8 /
 *      0.6 (Constants.PARAM_RANK / WEIGHT_RANK for English, the default task); the best reference
 *      (first on ties) is kept.
 * Corpus score: the statistics summed over inputs (chunks of perfect matches not counted), scored
 * once, as the jar's EVAL does.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "meteor_internal.h"

#define MET_ALPHA 0.85
#define MET_BETA 0.2
#define MET_GAMMA 0.6
#define MET_DELTA 0.75
#define OOM(err) lorac_fail(err, LORAC_ENOMEM, "metrics: out of memory in METEOR")

const double mt_meteor_weights[MET_MODULES] = {1.0, 0.6, 0.8, 0.6};

/* ---------------------------------------------------------------- sentences */

static void met_sent_free(met_sent *s) {
    free(s->w); free(s->stem); free(s->fn); free(s->id); free(s->buf); free(s->stem_buf);
    free(s->syn_off); free(s->syn); free(s->path_off); free(s->path);
    memset(s, 0, sizeof *s);
}

/* The normalized words of text, their stems, function-word flags and ids in vocab. */
static int met_sent_make(const char *text, mt_vocab *vocab, met_sent *s, lorac_err *err) {
    memset(s, 0, sizeof *s);
    char *tok = NULL;
    size_t nw = 0;
    int rc = metrics_tokenize_coco(text, &tok, err);
    if (!rc) rc = mt_meteor_normalize(tok, &s->buf, &nw, err);
    free(tok);
    if (rc) return rc;
    size_t blen = 0;
    for (size_t k = 0; k < nw; k++) blen += strlen(s->buf + blen) + 1;
    s->n = (int)nw;
    s->w = malloc((nw + 1) * sizeof *s->w);
    s->stem = malloc((nw + 1) * sizeof *s->stem);
    s->fn = malloc((nw + 1) * sizeof *s->fn);
    s->id = malloc((nw + 1) * sizeof *s->id);
    s->stem_buf = malloc(blen + 2 * nw + 1);
    if (!s->w || !s->stem || !s->fn || !s->id || !s->stem_buf) { met_sent_free(s); return OOM(err); }
    for (size_t k = 0, off = 0, soff = 0; k < nw && !rc; k++) {
        s->w[k] = s->buf + off;
        s->fn[k] = mt_meteor_function_word(s->w[k]);
        s->stem[k] = s->stem_buf + soff;
        mt_stem_english(s->w[k], s->stem[k]);
        soff += strlen(s->stem[k]) + 1;
        off += strlen(s->w[k]) + 1;
        rc = mt_vocab_id(vocab, s->w[k], strlen(s->w[k]), &s->id[k], err);
    }
    if (rc) met_sent_free(s);
    return rc;
}

/* What the synonym and paraphrase stages need of s: each word's synsets and paraphrase paths. */
static int met_sent_resources(met_sent *s, const met_resources *res, lorac_err *err) {
    size_t n = (size_t)s->n, nsyn = 0, csyn = 0, npath = 0, cpath = 0;
    s->syn_off = malloc((n + 1) * sizeof *s->syn_off);
    s->path_off = malloc((n + 1) * sizeof *s->path_off);
    if (!s->syn_off || !s->path_off) return OOM(err);
    int rc = LORAC_OK;
    for (size_t k = 0; k < n && !rc; k++) {
        s->syn_off[k] = nsyn;
        s->path_off[k] = npath;
        rc = met_synonyms_of(&res->syn, s->w[k], &s->syn, &nsyn, &csyn, err);
        if (!rc) rc = met_paraphrase_paths(&res->para, s->id, n, k, &s->path, &npath, &cpath, err);
    }
    s->syn_off[n] = nsyn;
    s->path_off[n] = npath;
    return rc;
}

/* ---------------------------------------------------------------- scores */

static double met_score(const met_stats *s) {
    double tlen = MET_DELTA * (s->test_len - s->test_fn) + (1 - MET_DELTA) * s->test_fn;
    double rlen = MET_DELTA * (s->ref_len - s->ref_fn) + (1 - MET_DELTA) * s->ref_fn;
    double tw = 0, rw = 0;
    for (int m = 0; m < MET_MODULES; m++) tw += s->test_content[m] * mt_meteor_weights[m] * MET_DELTA;
    for (int m = 0; m < MET_MODULES; m++) rw += s->ref_content[m] * mt_meteor_weights[m] * MET_DELTA;
    for (int m = 0; m < MET_MODULES; m++) tw += s->test_function[m] * mt_meteor_weights[m] * (1 - MET_DELTA);
    for (int m = 0; m < MET_MODULES; m++) rw += s->ref_function[m] * mt_meteor_weights[m] * (1 - MET_DELTA);
    double p = tw / tlen, r = rw / rlen;
    double fmean = 1.0 / ((1 - MET_ALPHA) / p + MET_ALPHA / r);
    double frag = s->test_matches == s->test_len && s->ref_matches == s->ref_len && s->chunks == 1
                      ? 0.0 : s->chunks / ((s->test_matches + s->ref_matches) / 2.0);
    double score = fmean * (1 - MET_GAMMA * pow(frag, MET_BETA));
    return isnan(score) ? 0.0 : fmax(score, 0.0);
}

static void stats_add(met_stats *sum, const met_stats *s) {
    sum->test_len += s->test_len;
    sum->ref_len += s->ref_len;
    sum->test_fn += s->test_fn;
    sum->ref_fn += s->ref_fn;
    for (int m = 0; m < MET_MODULES; m++) {
        sum->test_content[m] += s->test_content[m];
        sum->ref_content[m] += s->ref_content[m];
        sum->test_function[m] += s->test_function[m];
        sum->ref_function[m] += s->ref_function[m];
    }
    sum->test_matches += s->test_matches;
    sum->ref_matches += s->ref_matches;
    /* a perfect match adds no chunks, as in the jar's MeteorStats.addStats */
    if (!(s->test_matches == s->test_len && s->ref_matches == s->ref_len && s->chunks == 1)) sum->chunks += s->chunks;
}

/* ---------------------------------------------------------------- the corpus */

/* The corpus as normalized sentences: hyps then refs. */
typedef struct met_corpus {
    met_sent *s;
    size_t n;
    mt_vocab vocab;
} met_corpus;

static void met_corpus_free(met_corpus *mc) {
    if (mc->s) for (size_t k = 0; k < mc->n; k++) met_sent_free(&mc->s[k]);
    free(mc->s);
    mt_vocab_free(&mc->vocab);
    memset(mc, 0, sizeof *mc);
}

static int met_corpus_make(const metrics_corpus *c, met_corpus *mc, lorac_err *err) {
    memset(mc, 0, sizeof *mc);
    size_t n = c->n + c->ref_start[c->n];
    mc->s = calloc(n ? n : 1, sizeof *mc->s);
    if (!mc->s) return OOM(err);
    mc->n = n;
    int rc = LORAC_OK;
    for (size_t k = 0; k < n && !rc; k++)
        rc = met_sent_make(k < c->n ? c->hyps[k] : c->refs[k - c->n], &mc->vocab, &mc->s[k], err);
    return rc;
}

/* METEOR of the corpus, with res (all four stages) or without (exact and stem). */
static int meteor_corpus(const metrics_corpus *c, const met_corpus *mc, const met_resources *res, double *meteor,
                         double *per_input, lorac_err *err) {
    met_stats total;
    memset(&total, 0, sizeof total);
    int rc = LORAC_OK;
    for (size_t i = 0; i < c->n && !rc; i++) {
        met_stats best;
        double best_score = -1.0;
        memset(&best, 0, sizeof best);
        for (size_t k = c->ref_start[i]; k < c->ref_start[i + 1] && !rc; k++) {
            met_stats s;
            rc = met_align(&mc->s[i], &mc->s[c->n + k], res, &s, err);
            double sc = rc ? 0.0 : met_score(&s);
            if (!rc && sc > best_score) { best_score = sc; best = s; }
        }
        if (!rc) stats_add(&total, &best);
        if (!rc && per_input) per_input[i] = met_score(&best);
    }
    if (!rc) *meteor = met_score(&total);
    return rc;
}

int metrics_compute_meteor_es(const metrics_corpus *c, double *meteor, double *per_input, lorac_err *err) {
    met_corpus mc;
    int rc = met_corpus_make(c, &mc, err);
    if (!rc) rc = meteor_corpus(c, &mc, NULL, meteor, per_input, err);
    met_corpus_free(&mc);
    return rc;
}

int metrics_compute_meteor(const metrics_corpus *c, const char *data_dir, double *meteor, double *per_input,
                           lorac_err *err) {
    met_corpus mc;
    met_resources res;
    memset(&res, 0, sizeof res);
    int rc = met_corpus_make(c, &mc, err);
    if (!rc) rc = met_synonyms_load(&res.syn, data_dir, err);
    /* only the table's phrases made of corpus words can match: the rest is not kept */
    if (!rc) rc = met_paraphrases_load(&res.para, data_dir, &mc.vocab, err);
    for (size_t k = 0; k < mc.n && !rc; k++) rc = met_sent_resources(&mc.s[k], &res, err);
    if (!rc) rc = meteor_corpus(c, &mc, &res, meteor, per_input, err);
    met_synonyms_free(&res.syn);
    met_paraphrases_free(&res.para);
    met_corpus_free(&mc);
    return rc;
}

/* ---------------------------------------------------------------- where the data is */

static int is_file(const char *dir, const char *name) {
    char path[4096];
    struct stat st;
    if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, name) >= sizeof path) return 0;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0;
}

int metrics_meteor_data_dir(const char *dir, char *buf, size_t cap) {
    const char *env = getenv("LORAC_METEOR_DATA"), *cache = getenv("LORAC_CACHE");
    const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
    int n;
    if (dir && *dir) n = snprintf(buf, cap, "%s", dir);
    else if (env && *env) n = snprintf(buf, cap, "%s", env);
    else if (cache && *cache) n = snprintf(buf, cap, "%s/meteor", cache);
    else if (xdg && *xdg) n = snprintf(buf, cap, "%s/lorac/meteor", xdg);
    else n = snprintf(buf, cap, "%s/.cache/lorac/meteor", home ? home : ".");
    if (n < 0 || (size_t)n >= cap) return 0;
    return is_file(buf, "english.synsets") && is_file(buf, "english.exceptions") && is_file(buf, "paraphrase-en.gz");
}
