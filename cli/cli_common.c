/* Helpers shared by several commands. */
#include <string.h>
#include <time.h>

#include "cli.h"

double cli_now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

const char *cli_task_arg(int argc, char **argv) {
    for (int i = 1; i + 1 < argc; i++)
        if (!strcmp(argv[i], "--task")) return argv[i + 1];
    return NULL;
}

int cli_glue_task(const char *name, const glue_task **out) {
    *out = name ? glue_task_find(name) : NULL;
    if (name && !*out)
        return cli_error("--task: unknown GLUE task \"%s\" (glue-cola, -sst2, -mrpc, -stsb, -qqp, -mnli, -mnli-mm, -qnli, -rte)", name);
    return 0;
}

int cli_open_model(const char *path, const char *const *adapters, int n_adapters, const model_load_opts *o, model **out) {
    lorac_err err = {0};
    char warn[2048] = "";
    model_load_opts lo = o ? *o : (model_load_opts){0, 0, 0};
    int tokenizer = !lo.no_tokenizer;
    lo.no_tokenizer = 1; /* the adapters first: their errors are the ones to report */
    if (model_load(path, &lo, out, &err)) return cli_fail(&err);
    if (model_attach_adapters(*out, adapters, n_adapters, warn, sizeof warn, &err) ||
        (tokenizer && model_load_tokenizer(*out, NULL, &err))) {
        model_free(*out);
        *out = NULL;
        return cli_fail(&err);
    }
    if (warn[0]) fprintf(stderr, "lorac: warning: %s", warn);
    return 0;
}

void cli_print_glue(const glue_task *t, const ft_eval_result *r, const char *split, int json) {
    double secs = r->seconds;
    const glue_scores *s = &r->scores;
    if (json) {
        printf("{\"task\": \"glue-%s\", \"split\": \"%s\", \"n\": %zu, \"loss\": %.6f", t->name, split, s->n, s->loss);
        if (t->num_labels == 1) printf(", \"pearson\": %.6f, \"spearman\": %.6f", s->pearson, s->spearman);
        else printf(", \"accuracy\": %.6f, \"f1\": %.6f, \"mcc\": %.6f", s->accuracy, s->f1, s->mcc);
        if (secs >= 0) printf(", \"seconds\": %.1f", secs);
        printf("}\n");
        return;
    }
    printf("glue-%s %s: n %zu loss %.4f", t->name, split, s->n, s->loss);
    if (t->num_labels == 1) printf(" pearson %.4f spearman %.4f", s->pearson, s->spearman);
    else if (t->metric == GLUE_M_MCC) printf(" mcc %.4f accuracy %.4f", s->mcc, s->accuracy);
    else if (t->metric == GLUE_M_ACC_F1) printf(" accuracy %.4f f1 %.4f", s->accuracy, s->f1);
    else printf(" accuracy %.4f", s->accuracy);
    if (secs >= 0) printf(" (%.1f s)", secs);
    printf("\n");
}

/* `--precision fp32|bf16|auto` for the frozen-weight matmuls; auto is bf16 where the CPU has
 * AVX512-BF16 (twice the GEMM speed, weights' gradients and the adapter stay fp32). */
int cli_set_precision(const char *arg) {
    if (!strcmp(arg, "fp32")) return op_set_matmul_precision(OP_PREC_FP32);
    if (!strcmp(arg, "auto"))
        return op_set_matmul_precision(op_bf16_supported() ? OP_PREC_BF16 : OP_PREC_FP32);
    if (!strcmp(arg, "bf16")) {
        if (op_set_matmul_precision(OP_PREC_BF16))
            return cli_error("--precision bf16: this CPU (or build) has no AVX512-BF16; use fp32 or auto");
        return 0;
    }
    return cli_error("--precision: expected fp32, bf16 or auto, not \"%s\"", arg);
}

const char *cli_precision_name(void) { return op_matmul_precision() == OP_PREC_BF16 ? "bf16" : "fp32"; }
