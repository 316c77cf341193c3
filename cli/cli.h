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

/* Subcommands: one line each here and in the table in main.c. */
int cmd_version(int argc, char **argv);

#endif
