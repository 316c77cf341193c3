/* llamacpp_probe.c — llama.cpp's own numbers for tools/llamacpp_check.sh, through its library
 * (libllama from the build that script makes; never part of lorac's build or tests).
 *
 *   llamacpp_probe logprob MODEL.gguf LORA.gguf|- SCALE LINES.txt
 *       every line as lorac's `eval` scores a {"text": line} example: the line's tokens (BOS first
 *       when the vocabulary adds one) and end-of-text after them; each token after the first is
 *       scored given those before it. Prints per line "sum_logprob n_scored" and then
 *       "mean_nll TOTAL_NLL/TOTAL_N tokens TOTAL_N".
 *   llamacpp_probe greedy MODEL.gguf LORA.gguf|- SCALE N PROMPT
 *       N greedy tokens after PROMPT (tokenized as llama-completion does, without parsing special
 *       tokens), stopping at end-of-generation; prints their text. Unlike llama-completion it also
 *       takes prompts that end in an end-of-generation token (the E2E separator).
 *
 * Build (tools/llamacpp_check.sh does it): cc -c with -I SRC/include -I SRC/ggml/include, then
 *        c++ probe.o -L BUILD/src -L BUILD/ggml/src -lllama -lggml -lggml-cpu -lggml-base -fopenmp */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llama.h"

static void quiet_log(enum ggml_log_level level, const char *text, void *user) {
    (void)user;
    if (level >= GGML_LOG_LEVEL_ERROR) fputs(text, stderr);
}

static bool no_progress(float progress, void *user) {
    (void)progress, (void)user;
    return true;
}

static int die(const char *msg, const char *what) {
    fprintf(stderr, "llamacpp_probe: %s%s%s\n", msg, what ? ": " : "", what ? what : "");
    exit(1);
}

/* The tokens of text (add_special: BOS when the vocabulary adds one). */
static llama_token *tokenize(const struct llama_vocab *v, const char *text, int *n, int extra) {
    int len = (int)strlen(text), cap = len + 8 + extra;
    llama_token *t = malloc((size_t)cap * sizeof *t);
    if (!t) die("out of memory", NULL);
    *n = llama_tokenize(v, text, len, t, cap - extra, true, false);
    if (*n < 0) die("cannot tokenize", text);
    return t;
}

/* Runs tokens [0, n) from position 0 of a cleared memory; logits for every position when all. */
static void run(struct llama_context *ctx, const llama_token *t, int n, int all) {
    llama_memory_clear(llama_get_memory(ctx), true);
    struct llama_batch b = llama_batch_init(n, 0, 1);
    for (int i = 0; i < n; i++) {
        b.token[i] = t[i];
        b.pos[i] = i;
        b.n_seq_id[i] = 1;
        b.seq_id[i][0] = 0;
        b.logits[i] = all || i == n - 1;
    }
    b.n_tokens = n;
    if (llama_decode(ctx, b)) die("llama_decode failed", NULL);
    llama_batch_free(b);
}

static double log_softmax_at(const float *x, int V, int tok) {
    double mx = x[0], s = 0.0;
    for (int j = 1; j < V; j++) mx = x[j] > mx ? x[j] : mx;
    for (int j = 0; j < V; j++) s += exp((double)x[j] - mx);
    return (double)x[tok] - mx - log(s);
}

static void logprob(struct llama_context *ctx, const struct llama_vocab *v, const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) die("cannot open", path);
    char line[65536];
    int V = llama_vocab_n_tokens(v);
    double total = 0.0;
    long count = 0;
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\r\n")] = 0;
        int n;
        llama_token *t = tokenize(v, line, &n, 1);
        t[n++] = llama_vocab_eos(v);
        run(ctx, t, n, 1);
        double sum = 0.0;
        for (int i = 0; i + 1 < n; i++) sum += log_softmax_at(llama_get_logits_ith(ctx, i), V, t[i + 1]);
        printf("%.6f %d\n", sum, n - 1);
        total += sum;
        count += n - 1;
        free(t);
    }
    fclose(f);
    printf("mean_nll %.6f tokens %ld\n", count ? -total / (double)count : 0.0, count);
}

static void greedy(struct llama_context *ctx, const struct llama_vocab *v, int steps, const char *prompt) {
    int n;
    llama_token *t = tokenize(v, prompt, &n, steps);
    int V = llama_vocab_n_tokens(v);
    for (int s = 0; s < steps; s++) {
        run(ctx, t, n, 0); /* the whole sequence again: a handful of short prompts, exactness first */
        const float *x = llama_get_logits_ith(ctx, -1);
        int best = 0;
        for (int j = 1; j < V; j++) best = x[j] > x[best] ? j : best;
        if (llama_vocab_is_eog(v, best)) break;
        t[n++] = best;
        char piece[256];
        int k = llama_token_to_piece(v, best, piece, sizeof piece, 0, false);
        if (k > 0) fwrite(piece, 1, (size_t)k, stdout);
    }
    putchar('\n');
    free(t);
}

int main(int argc, char **argv) {
    if (argc < 6 || (strcmp(argv[1], "logprob") && strcmp(argv[1], "greedy")) || (!strcmp(argv[1], "greedy") && argc < 7))
        return die("usage: llamacpp_probe logprob MODEL LORA|- SCALE FILE | greedy MODEL LORA|- SCALE N PROMPT", NULL);
    llama_log_set(quiet_log, NULL);
    llama_backend_init();
    struct llama_model_params mp = llama_model_default_params();
    mp.progress_callback = no_progress;
    struct llama_model *model = llama_model_load_from_file(argv[2], mp);
    if (!model) die("cannot load the model", argv[2]);
    struct llama_context_params cp = llama_context_default_params();
    cp.n_ctx = 4096;
    cp.n_batch = cp.n_ubatch = 4096;
    const char *threads = getenv("PROBE_THREADS");
    cp.n_threads = cp.n_threads_batch = threads ? atoi(threads) : 2;
    struct llama_context *ctx = llama_init_from_model(model, cp);
    if (!ctx) die("cannot make a context", NULL);
    if (strcmp(argv[3], "-")) {
        struct llama_adapter_lora *a = llama_adapter_lora_init(model, argv[3]);
        float scale = (float)atof(argv[4]);
        if (!a) die("cannot load the adapter", argv[3]);
        if (llama_set_adapters_lora(ctx, &a, 1, &scale)) die("cannot set the adapter", argv[3]);
    }
    const struct llama_vocab *v = llama_model_get_vocab(model);
    if (!strcmp(argv[1], "logprob")) logprob(ctx, v, argv[5]);
    else greedy(ctx, v, atoi(argv[5]), argv[6]);
    llama_free(ctx);
    llama_model_free(model);
    llama_backend_free();
    return 0;
}
