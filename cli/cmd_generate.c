/* lorac generate: decode from a prompt or from every distinct context of a data file. */
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static void gen_usage(void) {
    printf("usage: lorac generate --model DIR [--adapter DIR] (--prompt TEXT | --data FILE) [options]\n"
           "  --max-new-tokens N (64)  --sample  --temperature T  --top-k K  --top-p P  --seed S\n"
           "  --beams N  --length-penalty X  --no-repeat-ngram N  --repetition-penalty X  --min-new-tokens N\n"
           "  --preset e2e   the LoRA paper's E2E decoding (its own beam search: 10 beams, length penalty 0.8,\n"
           "                 no-repeat-ngram 4, 64 tokens, stop at <|endoftext|> or \"\\n\\n\")\n"
           "  --threads N\n"
           "with --data, the prompt of each distinct context is context + <|endoftext|> (the paper's recipe),\n"
           "and one line is printed per distinct context, in order\n");
}

/* Decodes one prompt and prints the generated text (without end-of-text tokens) on one line. */
static int decode_one(const gen_model *gm, const gen_config *gc, const bpe_tokenizer *tok, const int32_t *ids,
                      size_t n, int one_line, lorac_err *err) {
    gen_result res;
    int rc = gen_generate(gm, gc, ids, (int)n, &res, err);
    if (rc) return rc;
    const gen_hyp *h = &res.hyps[0];
    int nt = h->n_tokens;
    if (h->finished && nt > 0) nt--; /* the eos itself is not text */
    char *text = NULL;
    size_t len = 0;
    rc = bpe_decode(tok, h->tokens, (size_t)nt, &text, &len, err);
    if (!rc) {
        const char *p = text;
        if (one_line) { /* the completion follows " " in the paper's recipe; keep each output on one line */
            while (len && *p == ' ') p++, len--;
            for (size_t i = 0; i < len; i++)
                if (text[(p - text) + i] == '\n') text[(p - text) + i] = ' ';
        }
        fwrite(p, 1, len, stdout);
        fputc('\n', stdout);
        fflush(stdout);
    }
    free(text);
    gen_result_free(&res);
    return rc;
}

int cmd_generate(int argc, char **argv) {
    const char *model = NULL, *adapter = NULL, *prompt = NULL, *data = NULL;
    long threads = 0;
    gen_config gc;
    gen_config_default(&gc, 50256);
    gc.max_new_tokens = 64;
    int preset = 0;
    for (int i = 1; i < argc; i++) {
        const char *f = argv[i];
        long n;
        double d;
        if (!strcmp(f, "--help") || !strcmp(f, "-h")) {
            gen_usage();
            return 0;
        }
#define STR(flag, dst) else if (!strcmp(f, flag)) { if (cli_opt_str(argc, argv, &i, &dst)) return 2; }
#define NUM(flag, dst) else if (!strcmp(f, flag)) { if (cli_opt_float(argc, argv, &i, &d)) return 2; dst = d; }
#define INT(flag, dst) else if (!strcmp(f, flag)) { if (cli_opt_int(argc, argv, &i, &n)) return 2; dst = n; }
        STR("--model", model)
        STR("--adapter", adapter)
        STR("--prompt", prompt)
        STR("--data", data)
        INT("--max-new-tokens", gc.max_new_tokens)
        INT("--min-new-tokens", gc.min_new_tokens)
        NUM("--temperature", gc.temperature)
        INT("--top-k", gc.top_k)
        NUM("--top-p", gc.top_p)
        INT("--seed", gc.seed)
        INT("--beams", gc.num_beams)
        NUM("--length-penalty", gc.length_penalty)
        INT("--no-repeat-ngram", gc.no_repeat_ngram_size)
        NUM("--repetition-penalty", gc.repetition_penalty)
        INT("--threads", threads)
#undef STR
#undef NUM
#undef INT
        else if (!strcmp(f, "--sample")) gc.do_sample = 1;
        else if (!strcmp(f, "--preset")) {
            const char *p;
            if (cli_opt_str(argc, argv, &i, &p)) return 2;
            if (strcmp(p, "e2e")) return cli_error("--preset: unknown preset '%s' (e2e)", p);
            preset = 1;
        } else {
            cli_error("generate: unknown option '%s' (see `lorac generate --help`)", f);
            return 2;
        }
    }
    if (!model || (!prompt == !data)) {
        cli_error("generate: --model and exactly one of --prompt and --data are required");
        return 2;
    }
    lorac_set_threads((int)threads);
    gpt2_model m;
    bpe_tokenizer *tok = NULL;
    if (cli_load_gpt2(model, adapter, &m, &tok)) return 1;
    lorac_err err = {0};
    if (preset) gen_config_e2e(&gc);
    if (!preset) { /* the model's own end-of-text */
        gc.n_eos = 1;
        gc.eos[0] = m.cfg.eos_token_id;
    }
    gpt2_session *sess = NULL;
    int rc = gen_config_check(&gc, m.cfg.vocab_size, &err);
    if (!rc) rc = gpt2_model_train_mode(&m, 0, &err); /* merged: decoding costs what the base costs */
    if (!rc) rc = gpt2_session_new(&m, &sess, &err);
    gen_model gm;
    if (!rc) gen_model_gpt2(&gm, &m, sess);
    int32_t *ids = NULL;
    size_t n = 0;
    if (!rc && prompt) {
        rc = bpe_encode(tok, prompt, strlen(prompt), &ids, &n, &err);
        if (!rc && n == 0) rc = lorac_fail(&err, LORAC_EINVAL, "--prompt is empty");
        if (!rc) rc = decode_one(&gm, &gc, tok, ids, n, 0, &err);
        free(ids);
    } else if (!rc) {
        train_examples ex;
        rc = train_examples_read(data, TRAIN_FORMAT_AUTO, &ex, &err);
        for (size_t i = 0; !rc && i < ex.n; i++) {
            const train_example *e = &ex.ex[i];
            const char *ctx = e->context ? e->context : e->completion;
            size_t cl = e->context ? e->context_len : e->completion_len;
            int seen = 0; /* distinct contexts, first occurrence order */
            for (size_t j = 0; j < i && !seen; j++) {
                const train_example *o = &ex.ex[j];
                const char *oc = o->context ? o->context : o->completion;
                size_t ol = o->context ? o->context_len : o->completion_len;
                seen = ol == cl && !memcmp(oc, ctx, cl);
            }
            if (seen) continue;
            rc = bpe_encode(tok, ctx, cl, &ids, &n, &err);
            int32_t *p = rc ? NULL : realloc(ids, (n + 1) * sizeof *ids);
            if (!rc && !p) rc = lorac_fail(&err, LORAC_ENOMEM, "out of memory");
            if (!rc) {
                ids = p;
                ids[n++] = m.cfg.eos_token_id;
                rc = decode_one(&gm, &gc, tok, ids, n, 1, &err);
            }
            free(ids);
            ids = NULL;
        }
        if (ex.ex || ex.text) train_examples_free(&ex);
    }
    gpt2_session_free(sess);
    bpe_free(tok);
    gpt2_model_free(&m);
    return rc ? cli_fail(&err) : 0;
}
