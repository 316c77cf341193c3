/* lorac generate: decode from a prompt or from every distinct context of a data file. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

static void gen_usage(void) {
    printf("usage: lorac generate --model DIR|FILE.gguf [--adapter PATH[:SCALE]]... (--prompt TEXT | --data FILE) [options]\n"
           "  --chat    the prompt is a user message in the model's chat template (ChatML), answered as the\n"
           "            assistant; --system TEXT replaces the template's default system message\n"
           "  --max-new-tokens N (64)  --sample  --temperature T  --top-k K  --top-p P  --seed S\n"
           "  --beams N  --length-penalty X  --no-repeat-ngram N  --repetition-penalty X  --min-new-tokens N\n"
           "  --preset e2e   the LoRA paper's E2E decoding (its own beam search: 10 beams, length penalty 0.8,\n"
           "                 no-repeat-ngram 4 over the generated tokens only, 64 tokens, stop at end-of-text or\n"
           "                 \"\\n\\n\" when it is one token); any family (docs/e2e.md)\n"
           "  --ngram-unit tokens|words   what --no-repeat-ngram counts (tokens); words: a token starting with\n"
           "            whitespace or ASCII punctuation starts a word, the rest continue it (docs/e2e.md)\n"
           "  --threads N  --json  each output as {\"text\": ...} (JSON-escaped as `lorac serve` answers)\n"
           "  --batch-inputs N (8)   with --data and beams: N inputs decoded together, N x beams rows per model\n"
           "            step (the weights are read once per step for all); the same outputs as one at a time\n"
           "  --exact-products   quantized bases: every product through dequantized fp32 weights (the\n"
           "            reference; slower). Default: decode steps (one new token per sequence) quantize the\n"
           "            activations to 8 bits per block of 32 and dot them with the stored blocks, as llama.cpp does\n"
           "with --data, the prompt of each distinct context is context + end-of-text (the paper's recipe; with\n"
           "--chat, the context as a user message), and one line is printed per distinct context, in order\n");
}

/* --batch-inputs' default: inputs whose beams share a decode step (bench/beam.sh measures it) */
#define GENERATE_BATCH_INPUTS 8
static int json_out; /* --json */

/* Prints a hypothesis's text (without end-of-text tokens) on one line. */
static int print_hyp(const model *m, const gen_hyp *h, int one_line, lorac_err *err) {
    int nt = h->n_tokens;
    if (h->finished && nt > 0) nt--; /* the eos itself is not text */
    char *text = NULL;
    size_t len = 0;
    int rc = model_decode(m, h->tokens, (size_t)nt, 1, &text, &len, err);
    if (!rc && json_out) {
        json_writer w;
        jw_init(&w, stdout, 0);
        jw_object_begin(&w);
        jw_key(&w, "text");
        jw_string_n(&w, text, len);
        jw_key(&w, "finish_reason");
        jw_string(&w, h->finished ? "stop" : "length");
        jw_object_end(&w);
        fputc('\n', stdout);
        fflush(stdout);
    } else if (!rc) {
        const char *p = text;
        if (one_line) { /* the completion follows " " in the paper's recipe; one output per line, no blank-only line */
            for (size_t i = 0; i < len; i++)
                if (text[i] == '\n' || text[i] == '\r' || text[i] == '\t') text[i] = ' ';
            while (len && *p == ' ') p++, len--;
            while (len && p[len - 1] == ' ') len--;
        }
        fwrite(p, 1, len, stdout);
        fputc('\n', stdout);
        fflush(stdout);
    }
    free(text);
    return rc;
}

typedef struct emit_ctx {
    const model *m;
    int one_line, count, tty;
    double t0;
} emit_ctx;

/* "input 12/630 | 0.98 inputs/s | ETA 10m32s" on stderr when several prompts decode: rewritten in
 * place on a terminal, else every 50 inputs and the last */
static void progress(const emit_ctx *e, int done) {
    if (e->count < 2 || (!e->tty && done != e->count && done % 50)) return;
    const double rate = done / (cli_now_s() - e->t0), eta = (e->count - done) / rate;
    fprintf(stderr, "%sinput %d/%d | %.2f inputs/s | ETA %dm%02ds%s", e->tty ? "\r\033[K" : "", done, e->count, rate,
            (int)(eta / 60), (int)eta % 60, e->tty && done != e->count ? "" : "\n");
}

/* gen_generate_many's results arrive in input order: one line each */
static int emit_line(void *user, int i, gen_result *r, lorac_err *err) {
    const emit_ctx *e = user;
    int rc = print_hyp(e->m, &r->hyps[0], e->one_line, err);
    if (!rc) fflush(stdout), progress(e, i + 1);
    return rc;
}

/* Decodes n prompts, batch of them in flight (beam search), and prints one line per prompt. */
static int decode_many(const model *m, model_session *s, const gen_config *gc, const int32_t *const *ids, const int *n,
                       int count, int batch, int one_line, lorac_err *err) {
    gen_model gm;
    gen_model_session(&gm, m, s);
    emit_ctx e = {m, one_line, count, isatty(2), cli_now_s()};
    return gen_generate_many(&gm, gc, ids, n, count, batch, emit_line, &e, err);
}

/* The prompt's tokens: bos (when the tokenizer adds one), then the text, or with chat the template
 * around it as a user message; plain prompts of the paper's recipe end with end-of-text (eos). */
static int prompt_ids(const model *m, const char *text, size_t len, int chat, const char *system, int add_eos, int32_t **ids,
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
        model_chat_msg msgs[2] = {{"system", system}, {"user", buf}};
        rc = model_chat_format(m, system ? msgs : msgs + 1, system ? 2 : 1, 1, &chat_text, &cl, err);
        text = chat_text;
        len = cl;
    }
    int32_t *body = NULL;
    size_t nb = 0;
    if (!rc) rc = model_encode(m, text, len, chat, &body, &nb, err);
    const model_tokens *k = model_tok(m);
    int bos = k->add_bos && k->bos >= 0, eos = add_eos && !chat;
    int32_t *all = rc ? NULL : malloc((nb + 2) * sizeof *all);
    if (!rc && !all) rc = lorac_fail(err, LORAC_ENOMEM, "out of memory");
    if (!rc) {
        if (bos) all[0] = k->bos;
        if (nb) memcpy(all + bos, body, nb * sizeof *body);
        if (eos) all[bos + nb] = k->eos;
        *ids = all;
        *n = (size_t)bos + nb + (size_t)eos;
    }
    free(body);
    free(buf);
    free(chat_text);
    return rc;
}

static int generate_prompt(const model *m, model_session *s, const gen_config *gc, const char *prompt, int chat,
                           const char *system, lorac_err *err) {
    int32_t *ids = NULL;
    size_t n = 0;
    int rc = prompt[0] ? LORAC_OK : lorac_fail(err, LORAC_EINVAL, "--prompt is empty");
    if (!rc) rc = prompt_ids(m, prompt, strlen(prompt), chat, system, 0, &ids, &n, err);
    if (!rc && n == 0) rc = lorac_fail(err, LORAC_EINVAL, "--prompt is empty");
    int ni = (int)n;
    if (!rc) rc = decode_many(m, s, gc, (const int32_t *const *)&ids, &ni, 1, 1, 0, err);
    free(ids);
    return rc;
}

/* One line per distinct context of a data file, in the order of first occurrence. */
static int generate_data(const model *m, model_session *s, const gen_config *gc, const char *data, int chat,
                         const char *system, int batch, lorac_err *err) {
    train_examples ex;
    int rc = train_examples_read(data, TRAIN_FORMAT_AUTO, &ex, err), read = !rc, count = 0;
    int32_t **ids = read ? calloc(ex.n ? ex.n : 1, sizeof *ids) : NULL;
    int *n = read ? calloc(ex.n ? ex.n : 1, sizeof *n) : NULL;
    if (read && (!ids || !n)) rc = lorac_fail(err, LORAC_ENOMEM, "%s: out of memory for %zu prompts", data, ex.n);
    for (size_t i = 0; !rc && i < ex.n; i++) {
        const train_example *e = &ex.ex[i];
        const char *ctx = e->context ? e->context : e->completion;
        size_t cl = e->context ? e->context_len : e->completion_len;
        int seen = 0;
        for (size_t j = 0; j < i && !seen; j++) {
            const train_example *o = &ex.ex[j];
            size_t ol = o->context ? o->context_len : o->completion_len;
            seen = ol == cl && !memcmp(o->context ? o->context : o->completion, ctx, cl);
        }
        if (seen) continue;
        size_t len = 0;
        rc = prompt_ids(m, ctx, cl, chat, system, model_tok(m)->eos >= 0, &ids[count], &len, err);
        n[count++] = (int)len;
    }
    if (!rc) rc = decode_many(m, s, gc, (const int32_t *const *)ids, n, count, batch, 1, err);
    for (int i = 0; ids && i < count; i++) free(ids[i]);
    free(ids);
    free(n);
    if (read) train_examples_free(&ex);
    return rc;
}

int cmd_generate(int argc, char **argv) {
    const char *model_arg = NULL, *adapters[16], *prompt = NULL, *data = NULL, *system = NULL;
    int n_adapters = 0, chat = 0;
    long threads = 0, batch = -1;
    gen_config gc;
    gen_config_default(&gc, 50256);
    gc.max_new_tokens = 64;
    int preset = 0, ngram_unit = 0; /* 0 tokens, 1 words */
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
        STR("--model", model_arg)
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
        INT("--batch-inputs", batch)
#undef STR
#undef NUM
#undef INT
        else if (!strcmp(f, "--adapter")) {
            if (n_adapters == 16) return cli_error("generate: at most 16 --adapter");
            if (cli_opt_str(argc, argv, &i, &adapters[n_adapters++])) return 2;
        } else if (!strcmp(f, "--ngram-unit")) {
            const char *u;
            if (cli_opt_str(argc, argv, &i, &u)) return 2;
            if (strcmp(u, "tokens") && strcmp(u, "words")) return cli_error("--ngram-unit: '%s' is not tokens or words", u);
            ngram_unit = !strcmp(u, "words");
        } else if (!strcmp(f, "--sample")) gc.do_sample = 1;
        else if (!strcmp(f, "--exact-products")) qmat_set_direct(0);
        else if (!strcmp(f, "--chat")) chat = 1;
        else if (!strcmp(f, "--json")) json_out = 1;
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
    if (!model_arg || (!prompt == !data)) {
        cli_error("generate: --model and exactly one of --prompt and --data are required");
        return 2;
    }
    if (system && !chat) return cli_error("generate: --system needs --chat");
    if (batch == 0 || batch < -1 || batch > 1024) return cli_error("generate: --batch-inputs %ld is not in 1..1024", batch);
    lorac_set_threads((int)threads);
    model *m = NULL;
    model_session *sess = NULL;
    lorac_err err = {0};
    if (cli_open_model(model_arg, adapters, n_adapters, NULL, &m)) return 1;
    int rc = model_session_new(m, &sess, &err);
    uint8_t *word_start = NULL;
    if (!rc && preset) gen_model_e2e(m, &gc);
    if (!rc && ngram_unit == 1 && !(rc = gen_model_word_starts(m, &word_start, &err))) gc.ngram_word_start = word_start;
    if (!preset) gen_model_eos(m, &gc); /* the model's own end-of-text (and end of turn) */
    if (!rc) rc = gen_config_check(&gc, model_cfg(m)->vocab_size, &err);
    if (!rc) rc = model_train_mode(m, 0, &err); /* merged: decoding costs what the base costs */
    if (!rc && prompt) rc = generate_prompt(m, sess, &gc, prompt, chat, system, &err);
    else if (!rc) rc = generate_data(m, sess, &gc, data, chat, system, batch > 0 ? (int)batch : GENERATE_BATCH_INPUTS, &err);
    free(word_start);
    model_session_free(sess);
    model_free(m);
    return rc ? cli_fail(&err) : 0;
}
