/* Helpers shared by several commands. */
#include <string.h>

#include "cli.h"

/* `--task glue-<name>`: the GLUE runs on BERT/RoBERTa encoders (cli/cmd_glue.c) take over. */
int cli_is_glue_task(int argc, char **argv) {
    for (int i = 1; i + 1 < argc; i++)
        if (!strcmp(argv[i], "--task")) return !strncmp(argv[i + 1], "glue-", 5);
    return 0;
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
