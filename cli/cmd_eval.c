/* lorac eval: a causal LM's teacher-forced loss and perplexity on the completion tokens of a data
 * file, or a classifier's loss and metrics on a GLUE task's dev set. */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"

static void eval_usage(void) {
    printf("usage: lorac eval --model DIR|FILE.gguf [--adapter PATH[:SCALE]]... --data FILE [--task glue-NAME] [--json]\n"
           "       [--batch-size N] [--max-seq-len N] [--max-eval N] [--threads N]\n"
           "a causal LM: the mean negative log-likelihood per scored token (E2E `context||completion`: the\n"
           "completion; JSONL {\"text\"}: every token; {\"messages\"}: the assistant turns) and the perplexity;\n"
           "--task glue-NAME: a classifier's loss and the task's metrics on a TSV (or the task's folder: its dev\n"
           "set); several --adapter add their scaled deltas\n");
}

int cmd_eval(int argc, char **argv) {
    const char *model_arg = NULL, *adapters[16], *data = NULL, *task_name = NULL;
    int n_adapters = 0, json = 0;
    long batch = 0, max_len = 0, threads = 0, max_eval = 0;
    for (int i = 1; i < argc; i++) {
        const char *f = argv[i];
        int bad = 0;
        if (!strcmp(f, "--help") || !strcmp(f, "-h")) {
            eval_usage();
            return 0;
        } else if (!strcmp(f, "--model")) bad = cli_opt_str(argc, argv, &i, &model_arg);
        else if (!strcmp(f, "--adapter")) {
            if (n_adapters == 16) return cli_error("eval: at most 16 --adapter");
            bad = cli_opt_str(argc, argv, &i, &adapters[n_adapters++]);
        } else if (!strcmp(f, "--data")) bad = cli_opt_str(argc, argv, &i, &data);
        else if (!strcmp(f, "--task")) bad = cli_opt_str(argc, argv, &i, &task_name);
        else if (!strcmp(f, "--batch-size") || !strcmp(f, "--batch")) bad = cli_opt_int(argc, argv, &i, &batch);
        else if (!strcmp(f, "--max-seq-len")) bad = cli_opt_int(argc, argv, &i, &max_len);
        else if (!strcmp(f, "--max-eval")) bad = cli_opt_int(argc, argv, &i, &max_eval);
        else if (!strcmp(f, "--threads")) bad = cli_opt_int(argc, argv, &i, &threads);
        else if (!strcmp(f, "--json")) json = 1;
        else return cli_error("eval: unknown option '%s' (see `lorac eval --help`)", f), 2;
        if (bad) return 2;
    }
    const glue_task *task = NULL;
    if (!model_arg || !data) return cli_error("eval: --model and --data are required"), 2;
    if (cli_glue_task(task_name, &task)) return 2;
    if (batch < 0 || max_len < 0 || max_eval < 0 || threads < 0)
        return cli_error("eval: --batch-size, --max-seq-len, --max-eval and --threads must be >= 0"), 2;
    lorac_set_threads((int)threads);
    char dev[4200];
    struct stat st;
    if (task && !stat(data, &st) && S_ISDIR(st.st_mode)) {
        snprintf(dev, sizeof dev, "%s/%s", data, task->dev_file);
        data = dev;
    }
    model *m = NULL;
    model_load_opts lo = {task ? task->num_labels : 0, 0, 0};
    if (cli_open_model(model_arg, adapters, n_adapters, &lo, &m)) return 1;
    ft_eval_result r;
    lorac_err err = {0};
    int rc = ft_eval(m, task, data, batch ? (int)batch : task ? 32 : 8, (int)max_len, max_eval, &r, &err);
    model_free(m);
    if (rc) return cli_fail(&err);
    if (task) cli_print_glue(task, &r, data, json);
    else if (json) printf("{\"loss\": %.9g, \"ppl\": %.9g, \"tokens\": %zu}\n", r.loss, r.ppl, r.tokens);
    else printf("loss %.6f  ppl %.4f  tokens %zu\n", r.loss, r.ppl, r.tokens);
    return 0;
}
