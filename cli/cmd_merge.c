/* lorac merge: base + adapter -> a complete Hugging Face directory with W0 + s·BA in the weights. */
#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* Tokenizer and generation files that travel with a model directory. */
static const char *carried[] = {"vocab.json", "merges.txt", "encoder.json", "vocab.bpe", "tokenizer.json",
                                "tokenizer_config.json", "special_tokens_map.json", "generation_config.json"};

int cmd_merge(int argc, char **argv) {
    const char *model = NULL, *adapter = NULL, *out = NULL;
    for (int i = 1; i < argc; i++) {
        const char *f = argv[i];
        if (!strcmp(f, "--help") || !strcmp(f, "-h")) {
            printf("usage: lorac merge --model DIR --adapter DIR --out DIR\n"
                   "writes config.json, model.safetensors (F32, W0 + s·BA) and the tokenizer files to DIR\n");
            return 0;
        } else if (!strcmp(f, "--model")) { if (cli_opt_str(argc, argv, &i, &model)) return 2; }
        else if (!strcmp(f, "--adapter")) { if (cli_opt_str(argc, argv, &i, &adapter)) return 2; }
        else if (!strcmp(f, "--out")) { if (cli_opt_str(argc, argv, &i, &out)) return 2; }
        else {
            cli_error("merge: unknown option '%s' (see `lorac merge --help`)", f);
            return 2;
        }
    }
    if (!model || !adapter || !out) {
        cli_error("merge: --model, --adapter and --out are required");
        return 2;
    }
    gpt2_model m;
    if (cli_load_gpt2(model, adapter, &m, NULL)) return 1;
    lorac_err err = {0};
    gpt2_weights w;
    gpt2_config mc;
    int rc = gpt2_weights_merged(&m, &mc, &w, &err);
    lorac_outdir od;
    if (!rc) {
        rc = lorac_outdir_open(&od, out, &err);
        if (!rc) rc = gpt2_weights_save_files(&mc, &w, od.tmp, &err);
        for (size_t i = 0; !rc && i < sizeof carried / sizeof carried[0]; i++) {
            char src[4200], dst[4200];
            snprintf(src, sizeof src, "%s/%s", model, carried[i]);
            char *data = NULL;
            size_t n = 0;
            lorac_err ignore;
            if (lorac_read_file(src, &data, &n, &ignore)) continue; /* absent: nothing to carry */
            snprintf(dst, sizeof dst, "%s/%s", od.tmp, carried[i]);
            rc = lorac_write_file(dst, data, n, &err);
            free(data);
        }
        if (!rc) rc = lorac_outdir_commit(&od, &err);
        else lorac_outdir_abort(&od);
        gpt2_weights_free(&w);
    }
    gpt2_model_free(&m);
    if (rc) return cli_fail(&err);
    fprintf(stderr, "merged model written to %s\n", out);
    return 0;
}
