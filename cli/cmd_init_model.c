/* lorac init-model: a GPT-2 Hugging Face directory with random weights (GPT-2's initialisation),
 * for tests, benchmarks and trying the pipeline without a download. */
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const char *tok_files[] = {"vocab.json", "merges.txt", "encoder.json", "vocab.bpe"};

int cmd_init_model(int argc, char **argv) {
    gpt2_config c = {0};
    c.n_layer = 2;
    c.n_embd = 64;
    c.n_head = 4;
    c.n_positions = 128;
    c.vocab_size = 50257;
    c.layer_norm_epsilon = 1e-5;
    c.activation = GPT2_ACT_GELU_NEW;
    c.eos_token_id = c.bos_token_id = 50256;
    long seed = 0, v;
    const char *out = NULL, *tokdir = NULL;
    for (int i = 1; i < argc; i++) {
        const char *f = argv[i];
        if (!strcmp(f, "--help") || !strcmp(f, "-h")) {
            printf("usage: lorac init-model --out DIR [--layers 2] [--embd 64] [--heads 4] [--positions 128]\n"
                   "       [--vocab 50257] [--seed 0] [--tokenizer-from DIR]\n"
                   "writes a random GPT-2 (config.json, model.safetensors) and copies the tokenizer files\n"
                   "(vocab.json + merges.txt, or encoder.json + vocab.bpe) from --tokenizer-from\n");
            return 0;
        } else if (!strcmp(f, "--out")) { if (cli_opt_str(argc, argv, &i, &out)) return 2; }
        else if (!strcmp(f, "--tokenizer-from")) { if (cli_opt_str(argc, argv, &i, &tokdir)) return 2; }
        else if (!strcmp(f, "--seed")) { if (cli_opt_int(argc, argv, &i, &seed)) return 2; }
#define INT(flag, dst) else if (!strcmp(f, flag)) { if (cli_opt_int(argc, argv, &i, &v)) return 2; dst = (int)v; }
        INT("--layers", c.n_layer)
        INT("--embd", c.n_embd)
        INT("--heads", c.n_head)
        INT("--positions", c.n_positions)
        INT("--vocab", c.vocab_size)
#undef INT
        else {
            cli_error("init-model: unknown option '%s'", f);
            return 2;
        }
    }
    if (!out) {
        cli_error("init-model: --out is required");
        return 2;
    }
    if (c.n_layer < 1 || c.n_embd < 1 || c.n_head < 1 || c.n_embd % c.n_head || c.n_positions < 1 || c.vocab_size < 1)
        return cli_error("init-model: bad shape (layers, embd, heads dividing embd, positions and vocab must be >= 1)");
    c.n_inner = 4 * c.n_embd;
    c.eos_token_id = c.bos_token_id = c.vocab_size - 1;
    lorac_err err = {0};
    gpt2_weights w;
    if (gpt2_weights_random(&c, (uint64_t)seed, &w, &err)) return cli_fail(&err);
    lorac_outdir od;
    int rc = lorac_outdir_open(&od, out, &err);
    if (!rc) rc = gpt2_weights_save_files(&c, &w, od.tmp, &err);
    for (size_t i = 0; !rc && tokdir && i < sizeof tok_files / sizeof tok_files[0]; i++) {
        char src[4200], dst[4200], *data = NULL;
        size_t n;
        lorac_err ignore;
        snprintf(src, sizeof src, "%s/%s", tokdir, tok_files[i]);
        if (lorac_read_file(src, &data, &n, &ignore)) continue;
        snprintf(dst, sizeof dst, "%s/%s", od.tmp, tok_files[i]);
        rc = lorac_write_file(dst, data, n, &err);
        free(data);
    }
    if (!rc) rc = lorac_outdir_commit(&od, &err);
    else lorac_outdir_abort(&od);
    gpt2_weights_free(&w);
    return rc ? cli_fail(&err) : 0;
}
