/* lorac metrics: the E2E challenge scores of a hypothesis file against grouped references. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

static void metrics_usage(FILE *f) {
    fprintf(f,
            "usage: lorac metrics --refs FILE --hyps FILE [--meteor-data DIR] [--meteor-per-input FILE] [--json]\n"
            "\n"
            "Scores one hypothesis per line of --hyps against the references of the same input in --refs,\n"
            "as the E2E NLG challenge's official scorer (e2e-metrics) does.\n"
            "  --refs FILE              references grouped per input: the E2E `context||reference` file\n"
            "                           (consecutive lines with the same context are one input) or blocks\n"
            "                           of references separated by blank lines\n"
            "  --hyps FILE              one hypothesis per line, in the order of the inputs\n"
            "  --meteor-data DIR        the official METEOR's data (WordNet synonyms, paraphrase table);\n"
            "                           default $LORAC_METEOR_DATA, else ~/.cache/lorac/meteor (honouring\n"
            "                           $LORAC_CACHE and $XDG_CACHE_HOME); tools/fetch_meteor.sh fetches it\n"
            "  --meteor-per-input FILE  also write each input's METEOR (the one reported), one per line\n"
            "  --json                   print the scores as one JSON object\n"
            "\n"
            "BLEU and NIST follow e2e-metrics' mteval-v13a port; ROUGE_L and CIDEr (CIDEr-D) pycocoevalcap;\n"
            "METEOR is METEOR 1.5 as pycocoevalcap runs it (exact, stem, synonym and paraphrase stages)\n"
            "when its data is found. Without the data lorac reports METEOR 1.5 with its exact and stem\n"
            "stages only, labelled as such: that is not the official score.\n");
}

/* One value per line, written to a temporary name and renamed. */
static int write_per_input(const char *path, const double *v, size_t n) {
    size_t len = strlen(path) + 32;
    char *tmp = malloc(len);
    if (!tmp) return cli_error("metrics: out of memory");
    snprintf(tmp, len, "%s.tmp.%ld", path, (long)getpid());
    FILE *f = fopen(tmp, "w");
    int bad = !f;
    for (size_t i = 0; i < n && !bad; i++) bad = fprintf(f, "%.17g\n", v[i]) < 0;
    if (f && fclose(f)) bad = 1;
    if (!bad && rename(tmp, path)) bad = 1;
    if (bad) remove(tmp);
    free(tmp);
    return bad ? cli_error("metrics: cannot write %s", path) : 0;
}

int cmd_metrics(int argc, char **argv) {
    const char *refs = NULL, *hyps = NULL, *meteor_dir = NULL, *per_input_path = NULL;
    int json = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            metrics_usage(stdout);
            return 0;
        } else if (!strcmp(argv[i], "--refs")) {
            if (cli_opt_str(argc, argv, &i, &refs)) return 1;
        } else if (!strcmp(argv[i], "--hyps")) {
            if (cli_opt_str(argc, argv, &i, &hyps)) return 1;
        } else if (!strcmp(argv[i], "--meteor-data")) {
            if (cli_opt_str(argc, argv, &i, &meteor_dir)) return 1;
        } else if (!strcmp(argv[i], "--meteor-per-input")) {
            if (cli_opt_str(argc, argv, &i, &per_input_path)) return 1;
        } else if (!strcmp(argv[i], "--json")) {
            json = 1;
        } else {
            return cli_error("metrics: unknown option '%s' (try `lorac metrics --help`)", argv[i]);
        }
    }
    if (!refs || !hyps) return cli_error("metrics: --refs and --hyps are required (try `lorac metrics --help`)");
    char dir[4096];
    int official = metrics_meteor_data_dir(meteor_dir, dir, sizeof dir);
    if (meteor_dir && !official)
        return cli_error("metrics: --meteor-data %s lacks english.synsets, english.exceptions or paraphrase-en.gz "
                         "(tools/fetch_meteor.sh fetches them)", meteor_dir);
    lorac_err err = {0};
    metrics_corpus c;
    if (metrics_read_corpus(refs, hyps, &c, &err)) return cli_fail(&err);
    metrics_scores s;
    double meteor = 0, *per_input = calloc(c.n ? c.n : 1, sizeof *per_input);
    int rc = per_input ? metrics_score_corpus(&c, &s, &err) : lorac_fail(&err, LORAC_ENOMEM, "metrics: out of memory");
    if (!rc && official) rc = metrics_compute_meteor(&c, dir, &meteor, per_input, &err);
    else if (!rc && per_input_path) rc = metrics_compute_meteor_es(&c, &s.meteor_es, per_input, &err);
    size_t n = c.n;
    metrics_corpus_free(&c);
    if (!rc && per_input_path && write_per_input(per_input_path, per_input, n)) rc = -1;
    free(per_input);
    if (rc) return rc < 0 ? 1 : cli_fail(&err);
    if (!official)
        fprintf(stderr, "metrics: METEOR data not found in %s: METEOR is exact+stem only, not the official score "
                        "(run tools/fetch_meteor.sh, or pass --meteor-data DIR)\n", dir);
    if (json) {
        printf("{\"BLEU\": %.6f, \"NIST\": %.6f, ", s.bleu, s.nist);
        if (official) printf("\"METEOR\": %.17g, \"METEOR_version\": \"official METEOR 1.5 (exact stem synonym paraphrase)\", ", meteor);
        else printf("\"METEOR\": null, \"METEOR_version\": \"exact+stem only, not the official METEOR 1.5\", ");
        printf("\"METEOR_exact_stem\": %.6f, \"ROUGE_L\": %.6f, \"CIDEr\": %.6f, \"inputs\": %zu}\n", s.meteor_es,
               s.rouge_l, s.cider, n);
    } else {
        printf("SCORES (%zu inputs):\n", n);
        printf("BLEU: %.4f\n", s.bleu);
        printf("NIST: %.4f\n", s.nist);
        if (official) printf("METEOR: %.4f (official METEOR 1.5: exact, stem, synonym and paraphrase stages)\n", meteor);
        else printf("METEOR: not computed (the official METEOR 1.5 needs its data: tools/fetch_meteor.sh)\n");
        printf("METEOR (exact+stem only, not the official score): %.4f\n", s.meteor_es);
        printf("ROUGE_L: %.4f\n", s.rouge_l);
        printf("CIDEr: %.4f\n", s.cider);
    }
    return 0;
}
