/* lorac generate: decode from a prompt or from every distinct context of a data file. */
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static void gen_usage(void) {
    printf("usage: lorac generate --model DIR|FILE.gguf [--adapter DIR[:SCALE]]... (--prompt TEXT | --data FILE) [options]\n"
           "  --chat    the prompt is a user message in the model's chat template (ChatML), answered as the\n"
           "            assistant; --system TEXT replaces the template's default system message\n"
           "  --max-new-tokens N (64)  --sample  --temperature T  --top-k K  --top-p P  --seed S\n"
           "  --beams N  --length-penalty X  --no-repeat-ngram N  --repetition-penalty X  --min-new-tokens N\n"
           "  --preset e2e   the LoRA paper's E2E decoding (its own beam search: 10 beams, length penalty 0.8,\n"
           "                 no-repeat-ngram 4, 64 tokens, stop at <|endoftext|> or \"\\n\\n\")\n"
           "  --threads N\n"
           "with --data, the prompt of each distinct context is context + end-of-text (the paper's recipe; with\n"
           "--chat, the context as a user message), and one line is printed per distinct context, in order\n");
}

/* Decodes one prompt and prints the generated text (without end-of-text tokens) on one line. */
static int decode_one(lm *m, const gen_config *gc, const int32_t *ids, size_t n, int one_line, lorac_err *err) {
    gen_model gm;
    gen_result res;
    int rc = lm_gen_model(m, &gm, err);
    if (!rc) rc = gen_generate(&gm, gc, ids, (int)n, &res, err);
    if (rc) return rc;
    const gen_hyp *h = &res.hyps[0];
    int nt = h->n_tokens;
    if (h->finished && nt > 0) nt--; /* the eos itself is not text */
    char *text = NULL;
    size_t len = 0;
    rc = lm_decode(m, h->tokens, (size_t)nt, 1, &text, &len, err);
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

/* The prompt's tokens: bos (when the tokenizer adds one), then the text, or with chat the template
 * around it as a user message; plain prompts of the paper's recipe end with end-of-text (eos). */
static int prompt_ids(lm *m, const char *text, size_t len, int chat, const char *system, int add_eos, int32_t **ids,
                      size_t *n, lorac_err *err) {
    char *buf = NULL, *chat_text = NULL;
    size_t cl = 0;
    int rc = LORAC_OK;
    *ids = NULL;
    *n = 0;
    if (chat) {
        if (!(buf = malloc(len + 1))) return lorac_fail(err, LORAC_ENOMEM, "out of memory");
        memcpy(buf, text, len);
        buf[len] = 0;
        lm_chat_msg msgs[2] = {{"system", system}, {"user", buf}};
        rc = system ? lm_chat_format(m, msgs, 2, 1, &chat_text, &cl, err) : lm_chat_format(m, msgs + 1, 1, 1, &chat_text, &cl, err);
        text = chat_text;
        len = cl;
    }
    int32_t *body = NULL;
    size_t nb = 0;
    if (!rc) rc = lm_encode(m, text, len, chat, &body, &nb, err);
    int bos = m->add_bos && m->bos_id >= 0, eos = add_eos && !chat;
    int32_t *all = rc ? NULL : malloc((nb + 2) * sizeof *all);
    if (!rc && !all) rc = lorac_fail(err, LORAC_ENOMEM, "out of memory");
    if (!rc) {
        if (bos) all[0] = m->bos_id;
        if (nb) memcpy(all + bos, body, nb * sizeof *body);
        if (eos) all[bos + nb] = m->eos_id;
        *ids = all;
        *n = (size_t)bos + nb + (size_t)eos;
    }
    free(body);
    free(buf);
    free(chat_text);
    return rc;
}

int cmd_generate(int argc, char **argv) {
    const char *model = NULL, *adapters[16], *prompt = NULL, *data = NULL, *system = NULL;
    int n_adapters = 0, chat = 0;
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
        STR("--prompt", prompt)
        STR("--data", data)
        STR("--system", system)
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
        else if (!strcmp(f, "--adapter")) {
            if (n_adapters == 16) return cli_error("generate: at most 16 --adapter");
            if (cli_opt_str(argc, argv, &i, &adapters[n_adapters++])) return 2;
        } else if (!strcmp(f, "--sample")) gc.do_sample = 1;
        else if (!strcmp(f, "--chat")) chat = 1;
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
    if (system && !chat) return cli_error("generate: --system needs --chat");
    lorac_set_threads((int)threads);
    lm m;
    lorac_err err = {0};
    char warn[2048] = "";
    if (lm_open(model, adapters, n_adapters, 1, &m, warn, sizeof warn, &err)) return cli_fail(&err);
    if (warn[0]) fprintf(stderr, "lorac: warning: %s", warn);
    int rc = LORAC_OK;
    if (preset && m.arch != LM_GPT2) rc = lorac_fail(&err, LORAC_EINVAL, "--preset e2e is GPT-2's decoding (its vocabulary)");
    if (!rc && preset) gen_config_e2e(&gc);
    if (!preset) lm_gen_eos(&m, &gc); /* the model's own end-of-text (and end of turn) */
    if (!rc) rc = gen_config_check(&gc, m.vocab_size, &err);
    if (!rc) rc = lm_train_mode(&m, 0, &err); /* merged: decoding costs what the base costs */
    int32_t *ids = NULL;
    size_t n = 0;
    if (!rc && prompt) {
        if (!prompt[0]) rc = lorac_fail(&err, LORAC_EINVAL, "--prompt is empty");
        if (!rc) rc = prompt_ids(&m, prompt, strlen(prompt), chat, system, 0, &ids, &n, &err);
        if (!rc && n == 0) rc = lorac_fail(&err, LORAC_EINVAL, "--prompt is empty");
        if (!rc) rc = decode_one(&m, &gc, ids, n, 0, &err);
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
            rc = prompt_ids(&m, ctx, cl, chat, system, m.eos_id >= 0, &ids, &n, &err);
            if (!rc) rc = decode_one(&m, &gc, ids, n, 1, &err);
            free(ids);
            ids = NULL;
        }
        if (ex.ex || ex.text) train_examples_free(&ex);
    }
    lm_free(&m);
    return rc ? cli_fail(&err) : 0;
}
