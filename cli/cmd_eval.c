/* lorac eval: teacher-forced loss and perplexity on the completion tokens of a data file. */
#include <string.h>

#include "cli.h"

int cmd_eval(int argc, char **argv) {
    if (cli_is_glue_task(argc, argv)) return cmd_eval_glue(argc, argv);
    const char *model = NULL, *adapters[16], *data = NULL;
    int n_adapters = 0;
    long batch = 8, max_len = 0, threads = 0;
    int json = 0;
    for (int i = 1; i < argc; i++) {
        const char *f = argv[i];
        if (!strcmp(f, "--help") || !strcmp(f, "-h")) {
            printf("usage: lorac eval --model DIR|FILE.gguf [--adapter DIR[:SCALE]]... --data FILE [--json] [--batch-size N] "
                   "[--max-seq-len N] [--threads N]\n"
                   "mean negative log-likelihood per scored token (E2E `context||completion`: the completion; JSONL\n"
                   "{\"text\"}: every token; {\"messages\"}: the assistant turns), and perplexity; several --adapter\n"
                   "add their scaled deltas\n");
            return 0;
        } else if (!strcmp(f, "--model")) { if (cli_opt_str(argc, argv, &i, &model)) return 2; }
        else if (!strcmp(f, "--adapter")) {
            if (n_adapters == 16) return cli_error("eval: at most 16 --adapter");
            if (cli_opt_str(argc, argv, &i, &adapters[n_adapters++])) return 2;
        }
        else if (!strcmp(f, "--data")) { if (cli_opt_str(argc, argv, &i, &data)) return 2; }
        else if (!strcmp(f, "--batch-size")) { if (cli_opt_int(argc, argv, &i, &batch)) return 2; }
        else if (!strcmp(f, "--max-seq-len")) { if (cli_opt_int(argc, argv, &i, &max_len)) return 2; }
        else if (!strcmp(f, "--threads")) { if (cli_opt_int(argc, argv, &i, &threads)) return 2; }
        else if (!strcmp(f, "--json")) json = 1;
        else {
            cli_error("eval: unknown option '%s' (see `lorac eval --help`)", f);
            return 2;
        }
    }
    if (!model || !data) {
        cli_error("eval: --model and --data are required");
        return 2;
    }
    lorac_set_threads((int)threads);
    lm m;
    lorac_err err = {0};
    char warn[2048] = "";
    if (lm_open(model, adapters, n_adapters, 1, &m, warn, sizeof warn, &err)) return cli_fail(&err);
    if (warn[0]) fprintf(stderr, "lorac: warning: %s", warn);
    ft_eval_result r;
    int rc = ft_eval(&m, data, (int)batch, (int)max_len, &r, &err);
    lm_free(&m);
    if (rc) return cli_fail(&err);
    if (json) printf("{\"loss\": %.9g, \"ppl\": %.9g, \"tokens\": %zu}\n", r.loss, r.ppl, r.tokens);
    else printf("loss %.6f  ppl %.4f  tokens %zu\n", r.loss, r.ppl, r.tokens);
    return 0;
}
