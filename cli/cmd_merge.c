/* lorac merge: base + adapter(s) -> a complete model with W0 + s·BA in the weights: a Hugging Face
 * directory, or (Llama family) a GGUF file. Without an adapter it converts the base (a GGUF into
 * an f32 Hugging Face directory, or into a GGUF of another type). */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cli.h"

/* "same" -> -1 (the base's own type), else a ggml type name ("f16", "q8_0", ...). */
static int parse_type(const char *s, int *type) {
    if (!strcmp(s, "same")) {
        *type = -1;
        return 0;
    }
    for (int t = 0; t < QUANT_TYPE_LIMIT; t++) {
        const char *name = quant_type_name(t);
        if (name && !strcasecmp(name, s) && (t == QUANT_F32 || t == QUANT_F16 || quant_can_quantize(t))) {
            *type = t;
            return 0;
        }
    }
    return 1;
}

int cmd_merge(int argc, char **argv) {
    const char *model_arg = NULL, *adapters[16], *out = NULL, *type_s = "same";
    int n_adapters = 0;
    for (int i = 1; i < argc; i++) {
        const char *f = argv[i];
        if (!strcmp(f, "--help") || !strcmp(f, "-h")) {
            printf("usage: lorac merge --model DIR|FILE.gguf [--adapter PATH[:SCALE] ...] --out DIR|FILE.gguf "
                   "[--type same|f32|f16|q8_0|q4_0|q4_1|q4_k|q6_k]\n"
                   "DIR: config.json, model.safetensors (F32, W0 + s·BA) and the tokenizer files of a directory base;\n"
                   "no --adapter: the base converted (dequantized to F32 for a directory);\n"
                   "FILE.gguf (families with a GGUF form: Llama, Qwen2): the base's metadata and tokenizer, weights of --type (same: the base's\n"
                   "own type, re-quantized after merging)\n");
            return 0;
        } else if (!strcmp(f, "--model")) { if (cli_opt_str(argc, argv, &i, &model_arg)) return 2; }
        else if (!strcmp(f, "--adapter")) {
            if (n_adapters == 16) return cli_error("merge: at most 16 --adapter");
            if (cli_opt_str(argc, argv, &i, &adapters[n_adapters++])) return 2;
        }
        else if (!strcmp(f, "--out")) { if (cli_opt_str(argc, argv, &i, &out)) return 2; }
        else if (!strcmp(f, "--type")) { if (cli_opt_str(argc, argv, &i, &type_s)) return 2; }
        else {
            cli_error("merge: unknown option '%s' (see `lorac merge --help`)", f);
            return 2;
        }
    }
    if (!model_arg || !out) {
        cli_error("merge: --model and --out are required");
        return 2;
    }
    int type;
    if (parse_type(type_s, &type)) return cli_error("merge: --type %s is not one of same, f32, f16 or a quantizable type (q8_0, q4_0, q4_1, q4_k, q6_k)", type_s);
    size_t ol = strlen(out);
    if (type != -1 && (ol < 5 || strcmp(out + ol - 5, ".gguf")))
        return cli_error("merge: --type applies to a .gguf --out (a directory is written in F32)");
    model *m = NULL;
    lorac_err err = {0};
    model_load_opts lo = {0, 0, 1}; /* a directory's tokenizer files are copied, not read (a GGUF's: below) */
    if (cli_open_model(model_arg, adapters, n_adapters, &lo, &m)) return 1;
    size_t ml = strlen(model_arg);
    int gguf_to_dir = ml >= 5 && !strcmp(model_arg + ml - 5, ".gguf") && (ol < 5 || strcmp(out + ol - 5, ".gguf"));
    if (gguf_to_dir && model_load_tokenizer(m, NULL, &err)) /* a directory gets the GGUF's tokenizer as tokenizer.json */
        fprintf(stderr, "lorac merge: note: %s gets no tokenizer files: %s\n", out, err.msg);
    int rc = model_save_merged(m, out, type, &err);
    model_free(m);
    if (rc) return cli_fail(&err);
    fprintf(stderr, "%s written to %s\n", n_adapters ? "merged model" : "converted model", out);
    return 0;
}
