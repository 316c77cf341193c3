/* test_metrics.c — the E2E metrics against the official implementations.
 *
 * Parity: tests/fixtures/metrics/expected.txt holds BLEU and NIST from e2e-metrics' pymteval rules,
 * ROUGE_L / CIDEr from pycocoevalcap 1.2 (after the Stanford PTBTokenizer) and METEOR_ES from
 * meteor-1.5.jar -l en -norm -m "exact stem" (as pycocoevalcap runs it), produced by
 * tools/metrics_ref.py on 100 inputs of the E2E test set with three hypothesis files; lorac must
 * match each to 1e-4 (absolute).
 * With ../shared present the whole test set (expected_full.txt) is checked the same way.
 * The official METEOR (all four stages) needs the data of tools/fetch_meteor.sh: with it, the
 * jar's scores of tests/fixtures/meteor (synonym- and paraphrase-laden hypotheses, corpus and per
 * input, written by tools/meteor_check.py) and the METEOR of expected_full.txt are checked to 1e-4;
 * without it those checks are skipped with a message. A tiny hand-made data set checks the stage
 * weights, the irregular forms, WordNet's morphy and multi-word paraphrases whatever is installed.
 * Tokenizer cases come from the real tokenizers (Python regexes of pymteval; the Stanford jar).
 */
#include <stdlib.h>
#include <string.h>

#include <unistd.h>
#include <zlib.h>

#include "check.h"
#include "lorac.h"
#include "metrics/metrics_internal.h"

#define FIX LORAC_SOURCE_DIR "/tests/fixtures/metrics/"
#define FIX_METEOR LORAC_SOURCE_DIR "/tests/fixtures/meteor/"
#define PARITY_TOL 1e-4

/* The value of `<case> <metric> <value>` in an expected-values file, or NAN. */
static double expected_value(const char *path, const char *name, const char *metric) {
    FILE *f = fopen(path, "r");
    if (!f) return NAN;
    char c[64], m[64];
    double v, out = NAN;
    while (fscanf(f, "%63s %63s %lf", c, m, &v) == 3)
        if (!strcmp(c, name) && !strcmp(m, metric)) out = v;
    fclose(f);
    return out;
}

static void check_scores(const char *expected_path, const char *name, const metrics_scores *s) {
    char what[128];
    const char *metrics[] = {"BLEU", "NIST", "METEOR_ES", "ROUGE_L", "CIDEr"};
    const double got[] = {s->bleu, s->nist, s->meteor_es, s->rouge_l, s->cider};
    for (int k = 0; k < 5; k++) {
        double want = expected_value(expected_path, name, metrics[k]);
        snprintf(what, sizeof what, "%s %s", name, metrics[k]);
        CHECK(!isnan(want), "%s: no expected value in %s", what, expected_path);
        CHECK_CLOSE(got[k], want, PARITY_TOL, 0.0, what);
        printf("%-9s %-9s lorac %.6f  reference %.6f  |diff| %.2e\n", name, metrics[k], got[k], want, fabs(got[k] - want));
    }
}

static void test_fixture_parity(void) {
    const char *cases[] = {"heldout", "shifted", "scrambled", "nonascii"};
    for (int k = 0; k < 4; k++) {
        char hyps[512];
        snprintf(hyps, sizeof hyps, FIX "hyp_%s.txt", cases[k]);
        metrics_corpus c;
        lorac_err err = {0};
        int rc = metrics_read_corpus(FIX "refs.txt", hyps, &c, &err);
        CHECK(rc == LORAC_OK, "read %s: %s", hyps, err.msg);
        if (rc) continue;
        CHECK(c.n == 100, "inputs: %zu", c.n);
        metrics_scores s;
        rc = metrics_score_corpus(&c, &s, &err);
        CHECK(rc == LORAC_OK, "score: %s", err.msg);
        if (!rc) check_scores(FIX "expected.txt", cases[k], &s);
        metrics_corpus_free(&c);
    }
}

static int write_text(const char *path, const char *text) {
    lorac_err err;
    return lorac_write_file(path, text, strlen(text), &err);
}

/* The blank-line block format must give the same groups (and scores) as context||reference. */
static void test_block_format(void) {
    metrics_corpus a, b;
    lorac_err err = {0};
    if (metrics_read_corpus(FIX "refs.txt", FIX "hyp_shifted.txt", &a, &err)) {
        CHECK(0, "%s", err.msg);
        return;
    }
    const char *blocks = LORAC_BINARY_DIR "/test_metrics_blocks.txt";
    FILE *f = fopen(blocks, "w");
    CHECK(f != NULL, "cannot write %s", blocks);
    if (!f) { metrics_corpus_free(&a); return; }
    for (size_t i = 0; i < a.n; i++) {
        for (size_t r = a.ref_start[i]; r < a.ref_start[i + 1]; r++) fprintf(f, "%s\n", a.refs[r]);
        fputs(i % 7 == 3 ? "\n\n" : "\n", f); /* runs of blank lines separate blocks too */
    }
    fclose(f);
    int rc = metrics_read_corpus(blocks, FIX "hyp_shifted.txt", &b, &err);
    CHECK(rc == LORAC_OK, "%s", err.msg);
    if (!rc) {
        CHECK(b.n == a.n && b.ref_start[b.n] == a.ref_start[a.n], "groups %zu/%zu refs %zu/%zu", b.n, a.n,
              b.ref_start[b.n], a.ref_start[a.n]);
        int same = b.n == a.n;
        for (size_t i = 0; same && i <= a.n; i++) same = a.ref_start[i] == b.ref_start[i];
        CHECK(same, "block boundaries differ from the context groups");
        metrics_scores sa, sb;
        CHECK(metrics_score_corpus(&a, &sa, &err) == LORAC_OK, "%s", err.msg);
        CHECK(metrics_score_corpus(&b, &sb, &err) == LORAC_OK, "%s", err.msg);
        CHECK(sa.bleu == sb.bleu && sa.nist == sb.nist && sa.meteor_es == sb.meteor_es && sa.rouge_l == sb.rouge_l &&
                  sa.cider == sb.cider,
              "scores differ between the two reference formats");
        metrics_corpus_free(&b);
    }
    metrics_corpus_free(&a);
    remove(blocks);
}

static void check_tok(int coco, const char *in, const char *want) {
    char *out = NULL;
    lorac_err err = {0};
    int rc = coco ? metrics_tokenize_coco(in, &out, &err) : metrics_tokenize_mteval(in, &out, &err);
    CHECK(rc == LORAC_OK && !strcmp(out, want), "%s tokenize(\"%s\") = \"%s\", want \"%s\"", coco ? "coco" : "mteval",
          in, out ? out : "(null)", want);
    free(out);
}

static void test_tokenizers(void) {
    /* expected strings: pymteval's tokenize() lowercased, and Stanford PTBTokenizer 3.4.1
     * (-preserveLines -lowerCase) minus COCO's punctuation tokens */
    check_tok(0, "Hello, world.It's \xC2\xA3" "20-25 &amp; 3.5 \"x\"", "hello , world . it's \xC2\xA3" "20 - 25 & 3.5 \" x \"");
    check_tok(0, "St. John's (A/B) 1,000 x,y", "st . john's ( a / b ) 1,000 x , y");
    check_tok(0, "", "");
    check_tok(1, "a (b) c [d] {e} f", "a -lrb- b -rrb- c -lsb- d -rsb- -lcb- e -rcb- f");
    check_tok(1, "x & y / z * w % 5 + 3 = 8 @ home # 1 $ 2", "x & y / z * w % 5 + 3 = 8 @ home # 1 $ 2");
    check_tok(1, "it's isn't they're we've i'll he'd i'm cannot gonna",
              "it 's is n't they 're we 've i 'll he 'd i 'm can not gon na");
    check_tok(1, "st. mr. e.g. u.s. etc. no. 5", "st. mr. e.g. u.s. etc. no. 5");
    check_tok(1, "\"hello\" 'world' `x'", "hello world x");
    check_tok(1, "AT&T caf\xC3\xA9 Caf\xC3\xA9 \xC3\x89" "COLE \xE2\x82\xAC" "5", "at&t caf\xC3\xA9 caf\xC3\xA9 \xC3\xA9" "cole $ 5");
    check_tok(1, "hello!? yes; no: maybe", "hello !? yes no maybe");
    check_tok(1, "word- -word --word word--", "word word word word");
    check_tok(1, "range of 20\xC2\xA3-25 , 20-\xC2\xA3" "25 , Rouge.6 , 5-star , 30.99 .Blue",
              "range of 20 # -25 20 # 25 rouge .6 5-star 30.99 blue");
    check_tok(1, "near St. John 's College", "near st. john 's college");
    /* beyond ASCII (the jar's output minus COCO punctuation): mojibake splits at the symbols PTB
     * takes apart (U+00A9), capitals of Latin-1 and Latin Extended-A lowercase, the cp1252
     * characters and dashes are rewritten, U+2019 is an apostrophe only in a clitic */
    check_tok(1, "CafÃ© Sicilia ne\xC2\xAD" "ar a‐b ‐c «x» ¿y¡ Œuvre ŁÓDŹ",
              "cafã © sicilia near a‐b c x ¿ y ¡ œuvre łódź");
    check_tok(1, "it’s don’t ‘quoted’ CafÃ©s Â£20 ©2 a©b ÃŽ 20‰ x€y €20 x…y a–b x™ x°C 5½ Ÿes İs",
              "it 's do n't quoted cafã © s â # 20 © 2 a © b ãž 20 ‰ x $ y $ 20 x y a b x ™ x ° c 5 1/2 ÿes i\xCC\x87s");
    check_tok(0, "CafÃ© ŒUVRE İs", "cafã© œuvre i\xCC\x87s");
}

/* The Snowball English stemmer against org.tartarus.snowball.ext.englishStemmer from
 * meteor-1.5.jar (pairs produced by the jar: the Porter2 examples, the region exceptions
 * gener/commun/arsen, the exception lists, apostrophes, non-ASCII letters). */
static void test_stemmer(void) {
    static const char *const pairs[][2] = {
        {"caresses", "caress"}, {"ponies", "poni"}, {"ties", "tie"}, {"cats", "cat"}, {"feed", "feed"},
        {"agreed", "agre"}, {"plastered", "plaster"}, {"motoring", "motor"}, {"sing", "sing"},
        {"conflated", "conflat"}, {"troubled", "troubl"}, {"sized", "size"}, {"hopping", "hop"},
        {"falling", "fall"}, {"filing", "file"}, {"happy", "happi"}, {"sky", "sky"}, {"relational", "relat"},
        {"conditional", "condit"}, {"valenci", "valenc"}, {"digitizer", "digit"}, {"conformabli", "conform"},
        {"radicalli", "radic"}, {"differentli", "differ"}, {"vileli", "vile"}, {"analogousli", "analog"},
        {"vietnamization", "vietnam"}, {"predication", "predic"}, {"operator", "oper"},
        {"feudalism", "feudal"}, {"decisiveness", "decis"}, {"hopefulness", "hope"},
        {"callousness", "callous"}, {"formaliti", "formal"}, {"sensitiviti", "sensit"},
        {"sensibiliti", "sensibl"}, {"triplicate", "triplic"}, {"formative", "format"},
        {"formalize", "formal"}, {"electriciti", "electr"}, {"electrical", "electr"}, {"hopeful", "hope"},
        {"goodness", "good"}, {"revival", "reviv"}, {"allowance", "allow"}, {"inference", "infer"},
        {"airliner", "airlin"}, {"gyroscopic", "gyroscop"}, {"adjustable", "adjust"}, {"defensible", "defens"},
        {"irritant", "irrit"}, {"replacement", "replac"}, {"adjustment", "adjust"}, {"dependent", "depend"},
        {"adoption", "adopt"}, {"homing", "home"}, {"communism", "communism"}, {"activate", "activ"},
        {"angulariti", "angular"}, {"homologous", "homolog"}, {"effective", "effect"},
        {"bowdlerize", "bowdler"}, {"probate", "probat"}, {"rate", "rate"}, {"cease", "ceas"},
        {"controll", "control"}, {"roll", "roll"}, {"generously", "generous"}, {"arsenals", "arsenal"},
        {"communication", "communic"}, {"skies", "sky"}, {"dying", "die"}, {"early", "earli"},
        {"news", "news"}, {"inning", "inning"}, {"proceed", "proceed"}, {"yelling", "yell"}, {"saying", "say"},
        {"'oeuvres", "oeuvr"}, {"family-friendly", "family-friend"}, {"caf\xC3\xA9s", "caf\xC3\xA9"},
        {"restaurants", "restaur"}, {"priced", "price"}, {"cheaply", "cheapli"}};
    for (size_t k = 0; k < sizeof pairs / sizeof pairs[0]; k++) {
        char out[64];
        mt_stem_english(pairs[k][0], out);
        CHECK(!strcmp(out, pairs[k][1]), "stem(%s) = %s, want %s", pairs[k][0], out, pairs[k][1]);
    }
}

/* Small cases whose scores follow from the definitions by hand. */
static void test_by_hand(void) {
    const char *hyps[] = {"the cat sat on the mat .", "a dog runs in the park ."};
    const char *refs[] = {"the cat sat on the mat .", "a cat was sitting on the mat .", "a dog runs in the park .",
                          "the dog is running in a park ."};
    size_t per[] = {2, 2};
    metrics_corpus c;
    lorac_err err = {0};
    CHECK(metrics_corpus_from_strings(&c, 2, hyps, per, refs, &err) == LORAC_OK, "%s", err.msg);
    metrics_scores s;
    CHECK(metrics_score_corpus(&c, &s, &err) == LORAC_OK, "%s", err.msg);
    /* every hypothesis equals one of its references */
    CHECK_CLOSE(s.bleu, 1.0, 1e-12, 0, "BLEU of exact copies");
    CHECK_CLOSE(s.rouge_l, 1.0, 1e-12, 0, "ROUGE-L of exact copies");
    /* METEOR: every word matched in one chunk; perfect segments add no fragmentation */
    CHECK_CLOSE(s.meteor_es, 1.0, 1e-12, 0, "METEOR of exact copies");
    /* NIST: all hits, no brevity penalty; unigram info is log2(words / count) etc., so just bound it */
    CHECK(s.nist > 1.0 && s.nist < 20.0, "NIST %g", s.nist);
    /* CIDEr: with 2 inputs idf = log 2 - log df, n-grams in both inputs' refs weigh 0; one copy gives
     * cosine 1 per n, the other reference less, so 0 < CIDEr < 10 */
    CHECK(s.cider > 0 && s.cider < 10.0, "CIDEr %g", s.cider);
    metrics_corpus_free(&c);
}

static void check_read_error(const char *refs_text, const char *hyps_text, const char *want_sub) {
    const char *rp = LORAC_BINARY_DIR "/test_metrics_refs.txt", *hp = LORAC_BINARY_DIR "/test_metrics_hyps.txt";
    CHECK(write_text(rp, refs_text) == LORAC_OK && write_text(hp, hyps_text) == LORAC_OK, "cannot write temp files");
    metrics_corpus c;
    lorac_err err = {0};
    int rc = metrics_read_corpus(rp, hp, &c, &err);
    CHECK(rc != LORAC_OK && strstr(err.msg, want_sub) && !strchr(err.msg, '\n'), "want an error with \"%s\", got %d \"%s\"",
          want_sub, rc, err.msg);
    if (!rc) metrics_corpus_free(&c);
    remove(rp);
    remove(hp);
}

static void test_bad_input(void) {
    check_read_error("m1||a b .\nm1||a c .\nm2||d e .\n", "a b .\n", "test_metrics_hyps.txt has 1 lines but");
    check_read_error("m1||a b .\nm1||a c .\nm2||d e .\n", "a b .\n", "has 2 reference groups");
    check_read_error("", "a b .\n", "test_metrics_refs.txt: empty file");
    check_read_error("a\n\nb\n", "", "test_metrics_hyps.txt: empty file");
    check_read_error("a\n\nb\n\nc\n", " \n\n", "has 2 lines but"); /* blank lines are hypotheses */
    check_read_error("a\n\nb\n", "ok\nbad \xC3\x28 byte\n", "test_metrics_hyps.txt: line 2: invalid UTF-8");
    check_read_error("m1||a\nm2 no separator\n", "x\ny\n", "test_metrics_refs.txt: line 2: no '||'");
    /* trailing blank lines in the hypothesis file do not count as hypotheses */
    const char *rp = LORAC_BINARY_DIR "/test_metrics_refs.txt", *hp = LORAC_BINARY_DIR "/test_metrics_hyps.txt";
    write_text(rp, "a b\n\nc d\n\n\n");
    write_text(hp, "a b\nc\n\n\n");
    metrics_corpus c;
    lorac_err err = {0};
    CHECK(metrics_read_corpus(rp, hp, &c, &err) == LORAC_OK && c.n == 2, "%s", err.msg);
    if (c.hyps) metrics_corpus_free(&c);
    /* ... but blank hypotheses of the last inputs do (a model that ends at once), and score 0 */
    write_text(hp, "a b\n \n");
    metrics_scores sc;
    CHECK(metrics_read_corpus(rp, hp, &c, &err) == LORAC_OK && c.n == 2 && !c.hyps[1][0], "%s", err.msg);
    if (c.hyps) {
        CHECK(metrics_score_corpus(&c, &sc, &err) == LORAC_OK && sc.bleu > 0 && sc.bleu < 1, "a blank hypothesis: %s", err.msg);
        metrics_corpus_free(&c);
    }
    write_text(hp, "\n\n");
    CHECK(metrics_read_corpus(rp, hp, &c, &err) == LORAC_OK && c.n == 2, "two blank hypotheses: %s", err.msg);
    if (c.hyps) {
        CHECK(metrics_score_corpus(&c, &sc, &err) == LORAC_OK && sc.bleu < 1e-6 && sc.cider == 0 && sc.rouge_l == 0,
              "blank hypotheses score 0: BLEU %g CIDEr %g ROUGE_L %g %s", sc.bleu, sc.cider, sc.rouge_l, err.msg);
        metrics_corpus_free(&c);
    }
    remove(rp);
    remove(hp);
}

/* The whole E2E test set: hypothesis = each input's first reference, references = the rest. */
static void test_full_test_set(void) {
    const char *data = check_shared_data("the full E2E test-set parity check is skipped");
    if (!data) return;
    char path[4200];
    snprintf(path, sizeof path, "%s/e2e/test.txt", data);
    char *text;
    size_t n;
    lorac_err err = {0};
    if (lorac_read_file(path, &text, &n, &err)) { CHECK(0, "%s", err.msg); return; }
    /* split into (context, reference) lines, group, and hold out the first reference */
    size_t cap = 8192, nl = 0;
    char **ctx = malloc(cap * sizeof *ctx), **ref = malloc(cap * sizeof *ref);
    for (char *p = strtok(text, "\n"); p && nl < cap; p = strtok(NULL, "\n")) {
        char *sep = strstr(p, "||");
        if (!sep) continue;
        *sep = 0;
        ctx[nl] = p;
        ref[nl++] = sep + 2;
    }
    const char **hyps = malloc(nl * sizeof *hyps), **refs = malloc(nl * sizeof *refs);
    size_t *per = malloc(nl * sizeof *per), ni = 0, nr = 0;
    for (size_t i = 0; i < nl;) {
        size_t j = i + 1;
        while (j < nl && !strcmp(ctx[j], ctx[i])) j++;
        if (j - i >= 2) {
            hyps[ni] = ref[i];
            per[ni++] = j - i - 1;
            for (size_t k = i + 1; k < j; k++) refs[nr++] = ref[k];
        }
        i = j;
    }
    metrics_corpus c;
    metrics_scores s;
    CHECK(metrics_corpus_from_strings(&c, ni, hyps, per, refs, &err) == LORAC_OK, "%s", err.msg);
    CHECK(metrics_score_corpus(&c, &s, &err) == LORAC_OK, "%s", err.msg);
    check_scores(FIX "expected_full.txt", "full", &s);
    char dir[4096];
    if (metrics_meteor_data_dir(NULL, dir, sizeof dir)) {
        double m = 0, want = expected_value(FIX "expected_full.txt", "full", "METEOR");
        CHECK(metrics_compute_meteor(&c, dir, &m, NULL, &err) == LORAC_OK, "%s", err.msg);
        CHECK_CLOSE(m, want, PARITY_TOL, 0.0, "full METEOR (official)");
        printf("%-9s %-9s lorac %.6f  reference %.6f  |diff| %.2e\n", "full", "METEOR", m, want, fabs(m - want));
    }
    metrics_corpus_free(&c);
    free(hyps); free(refs); free(per); free(ctx); free(ref); free(text);
}

/* ---------------------------------------------------------------- the official METEOR */

static void write_gz(const char *path, const char *text) {
    gzFile f = gzopen(path, "wb");
    CHECK(f != NULL, "cannot write %s", path);
    if (f) { gzputs(f, text); gzclose(f); }
}

/* A hand-made data set, so each stage's rule and weight is checked on numbers worked out by hand. */
static void test_meteor_stages(void) {
    char dir[] = "/tmp/lorac_meteor_XXXXXX", path[256], found[4096];
    CHECK(mkdtemp(dir) != NULL, "mkdtemp");
    CHECK(!metrics_meteor_data_dir(dir, found, sizeof found), "an empty folder is not METEOR data");
    snprintf(path, sizeof path, "%s/english.synsets", dir);
    write_text(path, "big\n101\nlarge\n101 102\ngo\n200\nproceed\n200\n");
    snprintf(path, sizeof path, "%s/english.exceptions", dir);
    write_text(path, "go\nwent gone\n");
    snprintf(path, sizeof path, "%s/paraphrase-en.gz", dir);
    write_gz(path, "0.5\nfled\nran off\n0.25\nnever seen\nphrase\n");
    CHECK(metrics_meteor_data_dir(dir, found, sizeof found) && !strcmp(found, dir), "data folder not found");
    const double a = 0.85, d = 0.75, w_syn = 0.8, w_para = 0.6;
    struct { const char *hyp, *ref; double p_num, p_den, r_num, r_den; } cases[] = {
        /* synonym (shared synset): 'the' is a function word; one chunk, all matched: no penalty */
        {"the big dog", "the large dog", (1 - d) + d + w_syn * d, (1 - d) + 2 * d, (1 - d) + d + w_syn * d, (1 - d) + 2 * d},
        /* an irregular form (went -> go) and morphy (proceeds -> proceed) */
        {"went home", "proceeds home", w_syn * d + d, 2 * d, w_syn * d + d, 2 * d},
        /* a paraphrase of one reference word by two test words */
        {"a dog ran off", "a dog fled", (1 - d) + d + 2 * w_para * d, (1 - d) + 3 * d, (1 - d) + d + w_para * d, (1 - d) + 2 * d},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        metrics_corpus c;
        lorac_err err = {0};
        size_t one = 1;
        CHECK(metrics_corpus_from_strings(&c, 1, &cases[k].hyp, &one, &cases[k].ref, &err) == LORAC_OK, "%s", err.msg);
        double m = -1, es = -1, per = -1;
        CHECK(metrics_compute_meteor(&c, dir, &m, &per, &err) == LORAC_OK, "%s", err.msg);
        CHECK(metrics_compute_meteor_es(&c, &es, NULL, &err) == LORAC_OK, "%s", err.msg);
        double p = cases[k].p_num / cases[k].p_den, r = cases[k].r_num / cases[k].r_den;
        double want = 1.0 / ((1 - a) / p + a / r);
        char what[128];
        snprintf(what, sizeof what, "METEOR of '%s' vs '%s'", cases[k].hyp, cases[k].ref);
        CHECK_CLOSE(m, want, 1e-12, 0, what);
        CHECK(m == per, "per-input METEOR %.12f differs from the corpus one %.12f", per, m);
        CHECK(es < m, "%s: exact+stem %.6f is not below the official %.6f", what, es, m);
        metrics_corpus_free(&c);
    }
    /* malformed data: a one-line error, no crash */
    snprintf(path, sizeof path, "%s/english.synsets", dir);
    write_text(path, "big\n101\nlarge\n");
    {
        metrics_corpus c;
        lorac_err err = {0};
        size_t one = 1;
        const char *h = "big", *r = "large";
        CHECK(metrics_corpus_from_strings(&c, 1, &h, &one, &r, &err) == LORAC_OK, "%s", err.msg);
        double m;
        CHECK(metrics_compute_meteor(&c, dir, &m, NULL, &err) == LORAC_EFORMAT && strstr(err.msg, "english.synsets") &&
                  !strchr(err.msg, '\n'), "truncated synsets: %s", err.msg);
        metrics_corpus_free(&c);
    }
    const char *names[] = {"english.synsets", "english.exceptions", "paraphrase-en.gz"};
    for (int k = 0; k < 3; k++) { snprintf(path, sizeof path, "%s/%s", dir, names[k]); remove(path); }
    rmdir(dir);
}

/* The `<case> <index> <value>` lines of fixtures/meteor/expected.txt: the jar's per-input scores. */
static size_t expected_per_input(const char *name, double *v, size_t cap) {
    FILE *f = fopen(FIX_METEOR "expected.txt", "r");
    if (!f) return 0;
    char c[64], m[64];
    double x;
    size_t n = 0;
    while (fscanf(f, "%63s %63s %lf", c, m, &x) == 3)
        if (!strcmp(c, name) && strcmp(m, "METEOR") && n < cap) v[n++] = x;
    fclose(f);
    return n;
}

/* The jar's official METEOR of hypotheses full of synonyms and paraphrases (tools/meteor_check.py). */
static void test_meteor_fixture(void) {
    char dir[4096];
    if (!metrics_meteor_data_dir(NULL, dir, sizeof dir)) {
        printf("SKIP: no METEOR data in %s (tools/fetch_meteor.sh), so the official METEOR is not checked\n", dir);
        return;
    }
    const char *cases[] = {"heldout", "synonym", "paraphrase", "mixed"};
    for (int k = 0; k < 4; k++) {
        char hyps[512];
        snprintf(hyps, sizeof hyps, FIX_METEOR "hyp_%s.txt", cases[k]);
        metrics_corpus c;
        lorac_err err = {0};
        int rc = metrics_read_corpus(FIX_METEOR "refs.txt", hyps, &c, &err);
        CHECK(rc == LORAC_OK, "read %s: %s", hyps, err.msg);
        if (rc) continue;
        double want_per[64], got_per[64], m = 0, want = expected_value(FIX_METEOR "expected.txt", cases[k], "METEOR");
        size_t n = expected_per_input(cases[k], want_per, 64);
        CHECK(n == c.n && n <= 64, "%s: %zu expected per-input scores for %zu inputs", cases[k], n, c.n);
        rc = metrics_compute_meteor(&c, dir, &m, got_per, &err);
        CHECK(rc == LORAC_OK, "%s: %s", cases[k], err.msg);
        char what[128];
        snprintf(what, sizeof what, "%s METEOR (official)", cases[k]);
        CHECK_CLOSE(m, want, PARITY_TOL, 0.0, what);
        double worst = 0;
        for (size_t i = 0; !rc && i < n && i < c.n; i++) {
            snprintf(what, sizeof what, "%s METEOR of input %zu", cases[k], i);
            CHECK_CLOSE(got_per[i], want_per[i], PARITY_TOL, 0.0, what);
            worst = fmax(worst, fabs(got_per[i] - want_per[i]));
        }
        printf("%-10s METEOR    lorac %.6f  jar %.6f  |diff| %.2e, per input max |diff| %.2e\n", cases[k], m, want,
               fabs(m - want), worst);
        metrics_corpus_free(&c);
    }
}

int main(void) {
    test_tokenizers();
    test_stemmer();
    test_by_hand();
    test_bad_input();
    test_block_format();
    test_fixture_parity();
    test_full_test_set();
    test_meteor_stages();
    test_meteor_fixture();
    return check_summary();
}
