/* cli.h — the lorac command-line tool. Each subcommand lives in cli/cmd_<name>.c and uses only
 * the public API in include/lorac.h. Commands return the process exit status. */
#ifndef LORAC_CLI_H
#define LORAC_CLI_H

#include "lorac.h"

/* Prints "lorac: <message>" as one line on stderr; returns 1 (the exit status for errors). */
int cli_error(const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;
/* Prints err's message as one line on stderr; returns 1. */
int cli_fail(const lorac_err *err);

/* Option parsing helpers: argv[*i] is the flag; its value is argv[*i+1].
 * cli_opt_str/int/float return 0 on success and print an error (returning 1) otherwise. */
int cli_opt_str(int argc, char **argv, int *i, const char **out);
int cli_opt_int(int argc, char **argv, int *i, long *out);
int cli_opt_float(int argc, char **argv, int *i, double *out);

/* The value of `--task` among the arguments, or NULL (train and eval take their defaults from it). */
const char *cli_task_arg(int argc, char **argv);
/* The GLUE task named by --task (NULL when none is given); 1 after printing an error for an unknown one. */
int cli_glue_task(const char *name, const glue_task **out);
/* A model with its adapters ("PATH[:SCALE]" each, see model_attach_adapters); warnings printed. */
int cli_open_model(const char *path, const char *const *adapters, int n_adapters, const model_load_opts *o, model **out);
/* Seconds on the monotonic clock (for rates and ETAs). */
double cli_now_s(void);
/* The scores of a GLUE evaluation as one line (or one JSON object). */
void cli_print_glue(const glue_task *t, const ft_eval_result *r, const char *split, int json);
/* --precision fp32|bf16|auto (cli_common.c): 0, or an error already printed */
int cli_set_precision(const char *arg);
const char *cli_precision_name(void);

/* Subcommands: one line each here and in the table in main.c. */
int cmd_version(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_generate(int argc, char **argv);
int cmd_merge(int argc, char **argv);
int cmd_init_model(int argc, char **argv);
int cmd_inspect(int argc, char **argv);
int cmd_metrics(int argc, char **argv);
int cmd_gguf_info(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_bench(int argc, char **argv);
/* Added this session, each owned by one part of the work (see the file named): */
int cmd_combine(int argc, char **argv);        /* cli/cmd_combine.c: adapter arithmetic */
int cmd_analyze(int argc, char **argv);        /* cli/cmd_analyze.c: the LoRA paper's Section 7 */
int cmd_bench_adapters(int argc, char **argv); /* cli/cmd_bench_adapters.c: switch / mixed batch */
int cmd_serve(int argc, char **argv);          /* cli/cmd_serve.c: the HTTP server */

#endif
