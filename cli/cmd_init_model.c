/* lorac init-model: a Hugging Face directory with random weights, of any family (GPT-2 by default),
 * for tests, benchmarks and trying the pipeline without a download. */
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const char *tok_files[] = {"vocab.json", "merges.txt", "encoder.json", "vocab.bpe", "tokenizer.json",
                                  "tokenizer_config.json", "vocab.txt"};

static void init_usage(void) {
    printf("usage: lorac init-model --out DIR [--model-type gpt2|llama|mistral|qwen2|bert|roberta] [--layers 2]\n"
           "       [--embd 64] [--heads 4] [--kv-heads HEADS] [--inner 4 x embd] [--positions 128] [--vocab 50257]\n"
           "       [--labels N] [--seed 0] [--tokenizer-from DIR]\n"
           "writes a random model of the family (config.json, model.safetensors; matrices normal(0, 0.02), norms 1,\n"
           "biases 0) and copies the tokenizer files (vocab.json + merges.txt, tokenizer.json, vocab.txt) from\n"
           "--tokenizer-from\n");
}

/* Copies whichever tokenizer files DIR has into TO. */
static int copy_tokenizer(const char *dir, const char *to, lorac_err *err) {
    for (size_t i = 0; dir && i < sizeof tok_files / sizeof tok_files[0]; i++) {
        char src[4200], dst[4200], *data = NULL;
        size_t n;
        lorac_err ignore;
        snprintf(src, sizeof src, "%s/%s", dir, tok_files[i]);
        if (lorac_read_file(src, &data, &n, &ignore)) continue;
        snprintf(dst, sizeof dst, "%s/%s", to, tok_files[i]);
        int rc = lorac_write_file(dst, data, n, err);
        free(data);
        if (rc) return rc;
    }
    return LORAC_OK;
}

int cmd_init_model(int argc, char **argv) {
    const char *out = NULL, *tokdir = NULL, *type = "gpt2";
    long layers = 2, embd = 64, heads = 4, kv = 0, inner = 0, positions = 128, vocab = 50257, labels = 0, seed = 0;
    for (int i = 1; i < argc; i++) {
        const char *f = argv[i];
        int bad = 0;
        if (!strcmp(f, "--help") || !strcmp(f, "-h")) {
            init_usage();
            return 0;
        }
#define INT(flag, dst) else if (!strcmp(f, flag)) bad = cli_opt_int(argc, argv, &i, &dst);
        else if (!strcmp(f, "--out")) bad = cli_opt_str(argc, argv, &i, &out);
        else if (!strcmp(f, "--tokenizer-from")) bad = cli_opt_str(argc, argv, &i, &tokdir);
        else if (!strcmp(f, "--model-type")) bad = cli_opt_str(argc, argv, &i, &type);
        INT("--seed", seed) INT("--layers", layers) INT("--embd", embd) INT("--heads", heads) INT("--kv-heads", kv)
        INT("--inner", inner) INT("--positions", positions) INT("--vocab", vocab) INT("--labels", labels)
#undef INT
        else return cli_error("init-model: unknown option '%s'", f), 2;
        if (bad) return 2;
    }
    if (!out) return cli_error("init-model: --out is required"), 2;
    if (layers < 1 || embd < 1 || heads < 1 || embd % heads || positions < 1 || vocab < 2 || kv < 0 || inner < 0 || labels < 0)
        return cli_error("init-model: bad shape (layers, embd, heads dividing embd, positions >= 1, vocab >= 2)");
    model_config c;
    lorac_err err = {0};
    if (model_config_default(type, &c, &err)) return cli_fail(&err);
    c.n_layer = (int)layers, c.n_embd = (int)embd, c.n_head = (int)heads, c.n_kv_head = kv ? (int)kv : (int)heads;
    c.head_dim = (int)(embd / heads), c.n_inner = inner ? (int)inner : 4 * (int)embd;
    c.n_positions = (int)positions, c.vocab_size = (int)vocab;
    if (labels) c.num_labels = (int)labels;
    if (c.head == MODEL_HEAD_LM) c.eos_token_id = c.bos_token_id = (int)vocab - 1;
    model *m = NULL;
    if (model_random(&c, (uint64_t)seed, &m, &err)) return cli_fail(&err);
    lorac_outdir od;
    int rc = lorac_outdir_open(&od, out, &err);
    if (!rc) rc = model_save_files(m, od.tmp, &err);
    if (!rc) rc = copy_tokenizer(tokdir, od.tmp, &err);
    if (!rc) rc = lorac_outdir_commit(&od, &err);
    else lorac_outdir_abort(&od);
    model_free(m);
    return rc ? cli_fail(&err) : 0;
}
