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

/* 1 when the arguments hold `--task glue-<name>` (train and eval hand those to cmd_train_glue /
 * cmd_eval_glue). */
int cli_is_glue_task(int argc, char **argv);
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
int cmd_train_glue(int argc, char **argv);     /* cli/cmd_glue.c: `lorac train --task glue-*` */
int cmd_eval_glue(int argc, char **argv);      /* cli/cmd_glue.c: `lorac eval --task glue-*` */

#endif
