/* lorac metrics: the E2E challenge scores of a hypothesis file against grouped references. */
#include <string.h>

#include "cli.h"

static void metrics_usage(FILE *f) {
    fprintf(f,
            "usage: lorac metrics --refs FILE --hyps FILE [--json]\n"
            "\n"
            "Scores one hypothesis per line of --hyps against the references of the same input in --refs,\n"
            "as the E2E NLG challenge's official scorer (e2e-metrics) does.\n"
            "  --refs FILE   references grouped per input: the E2E `context||reference` file (consecutive\n"
            "                lines with the same context are one input) or blocks of references separated\n"
            "                by blank lines\n"
            "  --hyps FILE   one hypothesis per line, in the order of the inputs\n"
            "  --json        print the scores as one JSON object\n"
            "\n"
            "BLEU and NIST follow e2e-metrics' mteval-v13a port; ROUGE_L and CIDEr (CIDEr-D) pycocoevalcap.\n"
            "The official METEOR (METEOR 1.5 with WordNet synonyms and a paraphrase table) is not computed;\n"
            "lorac reports METEOR 1.5 with its exact and stem stages only, labelled as such.\n");
}

int cmd_metrics(int argc, char **argv) {
    const char *refs = NULL, *hyps = NULL;
    int json = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            metrics_usage(stdout);
            return 0;
        } else if (!strcmp(argv[i], "--refs")) {
            if (cli_opt_str(argc, argv, &i, &refs)) return 1;
        } else if (!strcmp(argv[i], "--hyps")) {
            if (cli_opt_str(argc, argv, &i, &hyps)) return 1;
        } else if (!strcmp(argv[i], "--json")) {
            json = 1;
        } else {
            return cli_error("metrics: unknown option '%s' (try `lorac metrics --help`)", argv[i]);
        }
    }
    if (!refs || !hyps) return cli_error("metrics: --refs and --hyps are required (try `lorac metrics --help`)");
    lorac_err err = {0};
    metrics_corpus c;
    if (metrics_read_corpus(refs, hyps, &c, &err)) return cli_fail(&err);
    metrics_scores s;
    int rc = metrics_score_corpus(&c, &s, &err);
    size_t n = c.n;
    metrics_corpus_free(&c);
    if (rc) return cli_fail(&err);
    if (json) {
        printf("{\"BLEU\": %.6f, \"NIST\": %.6f, \"METEOR\": null, \"METEOR_exact_stem\": %.6f, \"ROUGE_L\": %.6f, "
               "\"CIDEr\": %.6f, \"inputs\": %zu, \"METEOR_note\": \"official METEOR not computed (needs WordNet "
               "synonyms and a paraphrase table); METEOR_exact_stem is METEOR 1.5 with its exact and stem stages only\"}\n",
               s.bleu, s.nist, s.meteor_es, s.rouge_l, s.cider, n);
    } else {
        printf("SCORES (%zu inputs):\n", n);
        printf("BLEU: %.4f\n", s.bleu);
        printf("NIST: %.4f\n", s.nist);
        printf("METEOR: not computed (the official METEOR 1.5 needs WordNet synonyms and a paraphrase table)\n");
        printf("METEOR (exact+stem only, not the official score): %.4f\n", s.meteor_es);
        printf("ROUGE_L: %.4f\n", s.rouge_l);
        printf("CIDEr: %.4f\n", s.cider);
    }
    return 0;
}
