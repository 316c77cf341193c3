/* `lorac train --task glue-<name>` and `lorac eval --task glue-<name>`: fine-tune a BERT/RoBERTa
 * encoder on a GLUE task (LoRA, head only, or full fine-tuning) and score it on a dev set. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "cli.h"
#include "lorac/glue.h"

static int is_dir(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static void print_scores(const glue_task *t, const glue_scores *s, const char *what, double secs, int json) {
    if (json) {
        printf("{\"task\": \"glue-%s\", \"split\": \"%s\", \"n\": %zu, \"loss\": %.6f", t->name, what, s->n, s->loss);
        if (t->num_labels == 1) printf(", \"pearson\": %.6f, \"spearman\": %.6f", s->pearson, s->spearman);
        else printf(", \"accuracy\": %.6f, \"f1\": %.6f, \"mcc\": %.6f", s->accuracy, s->f1, s->mcc);
        if (secs >= 0) printf(", \"seconds\": %.1f", secs);
        printf("}\n");
        return;
    }
    printf("glue-%s %s: n %zu loss %.4f", t->name, what, s->n, s->loss);
    if (t->num_labels == 1) printf(" pearson %.4f spearman %.4f", s->pearson, s->spearman);
    else if (t->metric == GLUE_M_MCC) printf(" mcc %.4f accuracy %.4f", s->mcc, s->accuracy);
    else if (t->metric == GLUE_M_ACC_F1) printf(" accuracy %.4f f1 %.4f", s->accuracy, s->f1);
    else printf(" accuracy %.4f", s->accuracy);
    if (secs >= 0) printf(" (%.1f s)", secs);
    printf("\n");
}

static int score_file(const glue_task *t, const char *model, const char *adapter, const char *data, int max_seq,
                      int batch, long max_eval, int json) {
    glue_data d;
    lorac_err err = {0};
    if (glue_read_tsv(t, data, &d, &err)) return cli_fail(&err);
    float *logits = NULL;
    double loss = 0;
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    size_t n = max_eval > 0 && (size_t)max_eval < d.n ? (size_t)max_eval : d.n;
    int rc = glue_predict(t, model, adapter, &d, max_seq, batch, n, &logits, &loss, &err);
    clock_gettime(CLOCK_MONOTONIC, &b);
    if (rc) {
        glue_data_free(&d);
        return cli_fail(&err);
    }
    glue_scores s = {0};
    s.n = n;
    s.loss = loss;
    glue_score(t, logits, &d, &s);
    print_scores(t, &s, data, (double)(b.tv_sec - a.tv_sec) + 1e-9 * (double)(b.tv_nsec - a.tv_nsec), json);
    free(logits);
    glue_data_free(&d);
    return 0;
}

int cmd_train_glue(int argc, char **argv) {
    glue_train_options o;
    glue_train_options_default(&o);
    int json = 0;
    long threads = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        long v;
        double f;
        int bad = 0;
        if (!strcmp(a, "--task")) bad = cli_opt_str(argc, argv, &i, &o.task);
        else if (!strcmp(a, "--model")) bad = cli_opt_str(argc, argv, &i, &o.model);
        else if (!strcmp(a, "--data")) bad = cli_opt_str(argc, argv, &i, &o.data);
        else if (!strcmp(a, "--eval-data")) bad = cli_opt_str(argc, argv, &i, &o.eval_data);
        else if (!strcmp(a, "--out")) bad = cli_opt_str(argc, argv, &i, &o.out);
        else if (!strcmp(a, "--targets")) bad = cli_opt_str(argc, argv, &i, &o.targets);
        else if (!strcmp(a, "--rank") || !strcmp(a, "--lora-r")) { bad = cli_opt_int(argc, argv, &i, &v); o.rank = (int)v; }
        else if (!strcmp(a, "--alpha") || !strcmp(a, "--lora-alpha")) bad = cli_opt_float(argc, argv, &i, &o.alpha);
        else if (!strcmp(a, "--lora-dropout")) bad = cli_opt_float(argc, argv, &i, &o.lora_dropout);
        else if (!strcmp(a, "--hidden-dropout")) bad = cli_opt_float(argc, argv, &i, &o.hidden_dropout);
        else if (!strcmp(a, "--lr")) bad = cli_opt_float(argc, argv, &i, &o.lr);
        else if (!strcmp(a, "--weight-decay")) bad = cli_opt_float(argc, argv, &i, &o.weight_decay);
        else if (!strcmp(a, "--warmup-ratio")) bad = cli_opt_float(argc, argv, &i, &o.warmup_ratio);
        else if (!strcmp(a, "--epochs")) { bad = cli_opt_int(argc, argv, &i, &v); o.epochs = (int)v; }
        else if (!strcmp(a, "--batch") || !strcmp(a, "--batch-size")) { bad = cli_opt_int(argc, argv, &i, &v); o.batch = (int)v; }
        else if (!strcmp(a, "--max-seq-len")) { bad = cli_opt_int(argc, argv, &i, &v); o.max_seq_len = (int)v; }
        else if (!strcmp(a, "--max-train")) bad = cli_opt_int(argc, argv, &i, &o.max_train);
        else if (!strcmp(a, "--max-eval")) bad = cli_opt_int(argc, argv, &i, &o.max_eval);
        else if (!strcmp(a, "--seed")) { bad = cli_opt_int(argc, argv, &i, &v); o.seed = (uint64_t)v; }
        else if (!strcmp(a, "--threads")) bad = cli_opt_int(argc, argv, &i, &threads);
        else if (!strcmp(a, "--head-only")) o.head_only = 1;
        else if (!strcmp(a, "--full-ft")) o.full_ft = 1;
        else if (!strcmp(a, "--json")) json = 1;
        else return cli_error("train --task glue-*: unknown option %s", a);
        if (bad) return 1;
        (void)f;
    }
    if (!o.task || !o.model || !o.data || !o.out)
        return cli_error("train --task glue-<name> needs --model DIR --data DIR_OR_TSV --out DIR");
    const glue_task *t = glue_task_find(o.task);
    if (!t) return cli_error("unknown GLUE task \"%s\" (glue-cola, -sst2, -mrpc, -stsb, -qqp, -mnli, -qnli, -rte)", o.task);
    if (o.rank < 1 || o.alpha <= 0 || o.lora_dropout < 0 || o.lora_dropout >= 1)
        return cli_error("--rank must be >= 1, --alpha > 0 and --lora-dropout in [0, 1)");
    if (o.hidden_dropout != -1 && (o.hidden_dropout < 0 || o.hidden_dropout >= 1))
        return cli_error("--hidden-dropout must be in [0, 1) (default: the model's hidden_dropout_prob)");
    if (threads > 0) lorac_set_threads((int)threads);
    char dev[4200];
    if (!o.eval_data && is_dir(o.data)) {
        snprintf(dev, sizeof dev, "%s/%s", o.data, t->dev_file);
        FILE *f = fopen(dev, "r");
        if (f) {
            fclose(f);
            o.eval_data = dev;
        }
    }
    lorac_err err = {0};
    double secs = 0;
    if (glue_train(&o, &secs, stderr, &err)) return cli_fail(&err);
    fprintf(stderr, "wrote %s (training %.1f s)\n", o.out, secs);
    if (!o.eval_data) return 0;
    return score_file(t, o.full_ft ? o.out : o.model, o.full_ft ? NULL : o.out, o.eval_data, o.max_seq_len, o.batch,
                      o.max_eval, json);
}

int cmd_eval_glue(int argc, char **argv) {
    const char *task = NULL, *model = NULL, *adapter = NULL, *data = NULL;
    long max_seq = 128, batch = 32, max_eval = 0, threads = 0;
    int json = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int bad = 0;
        if (!strcmp(a, "--task")) bad = cli_opt_str(argc, argv, &i, &task);
        else if (!strcmp(a, "--model")) bad = cli_opt_str(argc, argv, &i, &model);
        else if (!strcmp(a, "--adapter")) bad = cli_opt_str(argc, argv, &i, &adapter);
        else if (!strcmp(a, "--data")) bad = cli_opt_str(argc, argv, &i, &data);
        else if (!strcmp(a, "--max-seq-len")) bad = cli_opt_int(argc, argv, &i, &max_seq);
        else if (!strcmp(a, "--batch") || !strcmp(a, "--batch-size")) bad = cli_opt_int(argc, argv, &i, &batch);
        else if (!strcmp(a, "--max-eval")) bad = cli_opt_int(argc, argv, &i, &max_eval);
        else if (!strcmp(a, "--threads")) bad = cli_opt_int(argc, argv, &i, &threads);
        else if (!strcmp(a, "--json")) json = 1;
        else return cli_error("eval --task glue-*: unknown option %s", a);
        if (bad) return 1;
    }
    if (!task || !model || !data) return cli_error("eval --task glue-<name> needs --model DIR --data DEV_TSV_OR_DIR [--adapter DIR]");
    const glue_task *t = glue_task_find(task);
    if (!t) return cli_error("unknown GLUE task \"%s\" (glue-cola, -sst2, -mrpc, -stsb, -qqp, -mnli, -qnli, -rte)", task);
    if (max_seq < 4 || max_seq > 1 << 16 || batch < 1 || batch > 1 << 16) return cli_error("--max-seq-len must be >= 4 and --batch >= 1");
    if (threads > 0) lorac_set_threads((int)threads);
    char dev[4200];
    if (is_dir(data)) {
        snprintf(dev, sizeof dev, "%s/%s", data, t->dev_file);
        data = dev;
    }
    return score_file(t, model, adapter, data, (int)max_seq, (int)batch, max_eval, json);
}
