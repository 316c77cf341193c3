/* Shared by eval, generate and merge: a GPT-2 model with its adapter and tokenizer. */
#include <string.h>

#include "cli.h"

int cli_load_gpt2(const char *model_dir, const char *adapter_dir, gpt2_model *m, bpe_tokenizer **tok) {
    lorac_err err = {0};
    if (gpt2_model_load(model_dir, m, &err)) return cli_fail(&err);
    if (adapter_dir) {
        char warn[2048] = "";
        if (gpt2_peft_load(m, adapter_dir, warn, sizeof warn, &err)) {
            gpt2_model_free(m);
            return cli_fail(&err);
        }
        if (warn[0]) fprintf(stderr, "lorac: warning: %s", warn);
    }
    if (tok && bpe_load_dir(model_dir, tok, &err)) {
        gpt2_model_free(m);
        return cli_fail(&err);
    }
    return 0;
}
