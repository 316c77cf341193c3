/* Helpers shared by several commands. */
#include <string.h>

#include "cli.h"

/* `--task glue-<name>`: the GLUE runs on BERT/RoBERTa encoders (cli/cmd_glue.c) take over. */
int cli_is_glue_task(int argc, char **argv) {
    for (int i = 1; i + 1 < argc; i++)
        if (!strcmp(argv[i], "--task")) return !strncmp(argv[i + 1], "glue-", 5);
    return 0;
}
