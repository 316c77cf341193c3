/* lorac: the command-line tool. Dispatches to cli/cmd_*.c. */
#include "cli.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define LORAC_VERSION "0.1.0"

static const struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} commands[] = {
    {"version", cmd_version, "print the version"},
    {"train", cmd_train, "fine-tune LoRA, a head or all weights: causal LMs on E2E/JSONL/chat data, encoders on GLUE (--task)"},
    {"eval", cmd_eval, "loss and perplexity of a causal LM, or a GLUE task's metrics (--task), with adapters"},
    {"generate", cmd_generate, "greedy, sampling or beam-search decoding (+ adapters; --chat for chat models)"},
    {"init-model", cmd_init_model, "write a model directory of any family with random weights (tests, benchmarks)"},
    {"merge", cmd_merge, "merge adapters into the base weights; write a Hugging Face directory or a GGUF"},
    {"inspect", cmd_inspect, "print a safetensors file's metadata and tensors (name, dtype, shape)"},
    {"metrics", cmd_metrics, "score outputs with the E2E metrics (BLEU, NIST, METEOR, ROUGE-L, CIDEr)"},
    {"gguf-info", cmd_gguf_info, "print a GGUF file's metadata and tensor infos"},
    {"tokenize", cmd_tokenize, "token ids of a text with a model's tokenizer or GPT-2 BPE (or --decode ids to text)"},
    {"bench", cmd_bench, "throughput: train, generate (a real model or a random shape), adapter switching"},
    {"combine", cmd_combine, "adapter arithmetic as PEFT's add_weighted_adapter (cat, svd, linear): a new adapter"},
    {"analyze", cmd_analyze, "the LoRA paper's Section 7 on adapters: spectra of dW, subspace similarity, dW vs W"},
    {"serve", cmd_serve, "an OpenAI-compatible HTTP server: many adapters over one base, batched together"},
};

int cli_error(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("lorac: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return 1;
}

int cli_fail(const lorac_err *err) { return cli_error("%s", err->msg[0] ? err->msg : lorac_status_str(err->code)); }

int cli_opt_str(int argc, char **argv, int *i, const char **out) {
    if (*i + 1 >= argc) return cli_error("%s needs a value", argv[*i]);
    *out = argv[++*i];
    return 0;
}

int cli_opt_int(int argc, char **argv, int *i, long *out) {
    const char *s = NULL;
    if (cli_opt_str(argc, argv, i, &s)) return 1;
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end) return cli_error("%s: '%s' is not an integer", argv[*i - 1], s);
    *out = v;
    return 0;
}

int cli_opt_float(int argc, char **argv, int *i, double *out) {
    const char *s = NULL;
    if (cli_opt_str(argc, argv, i, &s)) return 1;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end) return cli_error("%s: '%s' is not a number", argv[*i - 1], s);
    *out = v;
    return 0;
}

/* The version, then what runs: the kernel level of lorac's own kernels (and what capped it), the
 * CPU's level, and OpenBLAS's kernel. */
int cmd_version(int argc, char **argv) {
    (void)argc;
    (void)argv;
    const char *cap = getenv("LORAC_ISA");
    printf("lorac %s\n", LORAC_VERSION);
    printf("kernels: %s", lorac_isa_name(lorac_isa_active()));
    if (cap && *cap) printf(" (LORAC_ISA=%s)", cap);
    printf("\ncpu: %s\n", lorac_isa_name(lorac_isa_detected()));
    printf("openblas: %s (%s)\n", lorac_blas_corename(), lorac_blas_config());
    printf("mpi: %s\n", dist_mpi_version());
    const char *chosen = getenv("LORAC_BLAS_CORE_CHOSEN");
    if (chosen && *chosen) printf("note: OpenBLAS chose %s for this CPU; lorac set OPENBLAS_CORETYPE=%s\n", chosen,
                                  lorac_blas_corename());
    else if (lorac_blas_core_for_cpu()) /* LORAC_BLAS_CORE=keep */
        printf("note: OpenBLAS did not recognise this CPU; OPENBLAS_CORETYPE=%s selects faster kernels\n",
               lorac_blas_core_for_cpu());
    return 0;
}

/* When OpenBLAS fell back to kernels older than the CPU (it does not know the CPU) and the user set no
 * OPENBLAS_CORETYPE, lorac runs itself again with the kernel the CPU supports: OpenBLAS reads the
 * variable only when it is loaded. LORAC_BLAS_CORE=keep keeps OpenBLAS's own choice. On any failure
 * this process goes on as it is. */
static void blas_core_rerun(char **argv) {
    const char *keep = getenv("LORAC_BLAS_CORE"), *set = getenv("OPENBLAS_CORETYPE");
    const char *core = lorac_blas_core_for_cpu();
    if ((keep && !strcmp(keep, "keep")) || (set && *set) || !core || getenv("LORAC_BLAS_CORE_CHOSEN")) return;
    if (setenv("LORAC_BLAS_CORE_CHOSEN", lorac_blas_corename(), 1) || setenv("OPENBLAS_CORETYPE", core, 1)) return;
    execv("/proc/self/exe", argv);
    unsetenv("OPENBLAS_CORETYPE");
    unsetenv("LORAC_BLAS_CORE_CHOSEN");
}

/* LORAC_ISA, when set, must name a kernel level: a misspelt cap would silently run other kernels */
static int check_isa_env(void) {
    const char *cap = getenv("LORAC_ISA");
    lorac_isa isa;
    if (!cap || !*cap || lorac_isa_parse(cap, &isa) == 0) return 0;
    return cli_error("LORAC_ISA=%s: not a kernel level (avx512bf16, avx512, avx2 or generic)", cap);
}

static void usage(FILE *f) {
    fprintf(f, "usage: lorac COMMAND [options]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fprintf(f, "\n`lorac COMMAND --help` describes a command.\n");
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    if (check_isa_env()) return 2;
    blas_core_rerun(argv);
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[1], commands[i].name)) return commands[i].run(argc - 1, argv + 1);
    cli_error("unknown command '%s' (try `lorac --help`)", argv[1]);
    return 2;
}
