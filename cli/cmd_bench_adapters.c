/* lorac bench adapters: several adapters over one base of any causal family (random weights of the
 * given shape; GPT-2 small by default).
 *   switch time  median time of model_adapter_set_activate(k, merge) cycling over the adapters,
 *                merged (W0 + s·BA into reused buffers), merged with every adapter's merged weights
 *                kept resident (model_adapter_set_keep_merged: a pointer swap, memory x K) and
 *                unmerged (pointer swap);
 *   mixed batch  S sequences, sequence i with adapter i mod K, in one KV-cache session
 *                (gathered low-rank products), prefill P + D decode steps: tokens/s;
 *   baseline     the same sequences grouped by adapter, each group a batch on the merged model
 *                (switch time included), and the base model alone for reference. */
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

typedef struct bopts {
    model_config cfg;
    const char *model_type;
    long rank, adapters, slots, prompt, gen, reps, threads, seed;
    long layers, embd, heads, vocab, positions;
    double alpha;
    const char *targets;
    char resolved_targets[256]; /* targets once the family's defaults are applied */
    int json;
} bopts;

/* K adapters written by a model of this shape (B random), read back as peft_adapters. */
static int make_adapters(model *m, bopts *o, peft_adapter **ads, lorac_err *err) {
    char root[] = "/tmp/lorac_bench_adapters_XXXXXX", dir[300];
    if (!mkdtemp(root)) return lorac_fail(err, LORAC_EIO, "bench: cannot make a temporary directory");
    model_lora_opts lo;
    model_lora_opts_init(&lo);
    lo.r = (int)o->rank;
    lo.alpha = (float)o->alpha;
    lo.dropout = 0;
    snprintf(lo.targets, sizeof lo.targets, "%s", o->targets);
    model_lora_opts_resolve(m, &lo); /* what was not given: the family's defaults, reported as used */
    o->rank = lo.r, o->alpha = lo.alpha;
    snprintf(o->resolved_targets, sizeof o->resolved_targets, "%s", lo.targets);
    o->targets = o->resolved_targets;
    int rc = LORAC_OK;
    for (long k = 0; k < o->adapters && !rc; k++) {
        if ((rc = model_add_lora(m, &lo, (uint64_t)(o->seed + k), err))) break;
        lorac_rng rng;
        lora_registry *reg = model_registry(m);
        lorac_rng_seed(&rng, (uint64_t)(o->seed + 1000 + k));
        for (size_t i = 0; i < reg->n; i++)
            if (strstr(reg->params[i].name, "lora_B"))
                for (size_t j = 0; j < reg->params[i].numel; j++) reg->params[i].data[j] = 0.02f * lorac_rng_normal(&rng);
        snprintf(dir, sizeof dir, "%s/a%ld", root, k);
        rc = model_save_adapter(m, dir, err);
        int rc2 = model_remove_lora(m, err); /* take the LoRA layers out again */
        if (!rc) rc = rc2;
        if (!rc) rc = peft_adapter_read(dir, &ads[k], NULL, 0, err);
        char p[400];
        snprintf(p, sizeof p, "%s/adapter_model.safetensors", dir);
        unlink(p);
        snprintf(p, sizeof p, "%s/adapter_config.json", dir);
        unlink(p);
        rmdir(dir);
    }
    rmdir(root);
    return rc;
}

/* Elements of the base weights the adapter's modules cover (what a merged switch writes). */
static size_t adapted_numel(const peft_adapter *a) {
    peft_module *mods = NULL;
    size_t n = 0, total = 0;
    if (peft_adapter_modules(a, &mods, &n, NULL)) return 0;
    for (size_t i = 0; i < n; i++)
        if (!mods[i].embedding) total += (size_t)mods[i].B->shape[0] * (size_t)mods[i].A->shape[1];
    free(mods);
    return total;
}

/* Prefill P tokens then D single-token steps for n sequences (tokens from their index); seconds. */
static int run_batch(model *m, model_adapter_set *set, const int *ids, int n, const bopts *o, double *sec, lorac_err *err) {
    model_session *s = NULL;
    int P = (int)o->prompt, D = (int)o->gen, V = model_cfg(m)->vocab_size;
    int32_t *tok = malloc(sizeof(int32_t) * (size_t)n * P);
    float *logits = malloc(sizeof(float) * (size_t)n * V);
    int rc = (!tok || !logits) ? lorac_fail(err, LORAC_ENOMEM, "bench: out of memory") : model_session_new(m, &s, err);
    if (!rc) rc = model_session_begin(s, n, P + D, err);
    if (!rc && ids) rc = model_session_use_adapters(s, set, ids, n, err);
    for (int i = 0; i < n * P; i++) tok[i] = (int32_t)((i * 7919 + 13) % (V - 1));
    double t0 = cli_now_s();
    if (!rc) rc = model_session_step(s, tok, n, P, logits, err);
    for (int t = 0; t < D && !rc; t++) {
        for (int i = 0; i < n; i++) tok[i] = (int32_t)((t * 31 + i * 17 + 1) % (V - 1));
        rc = model_session_step(s, tok, n, 1, logits, err);
    }
    *sec = cli_now_s() - t0;
    model_session_free(s);
    free(tok);
    free(logits);
    return rc;
}

static int parse(int argc, char **argv, bopts *o) {
    memset(o, 0, sizeof *o);
    o->model_type = "gpt2";
    o->layers = 12, o->embd = 768, o->heads = 12, o->vocab = 50257, o->positions = 1024;
    o->targets = "", o->adapters = 4, o->slots = 8, o->prompt = 32, o->gen = 16; /* rank, alpha 0: the family's */
    o->reps = 12, o->seed = 1;
    for (int i = 1; i < argc; i++) { /* argv[0] is "adapters" (lorac bench adapters ...) */
        const char *f = argv[i];
        long v;
#define LOPT(name, field) else if (!strcmp(f, name)) { if (cli_opt_int(argc, argv, &i, &v)) return 2; field = v; }
        if (!strcmp(f, "--help") || !strcmp(f, "-h")) {
            printf("usage: lorac bench adapters [options]\n"
                   "  --model-type (gpt2) --layers (12) --embd (768) --heads (12) --vocab (50257) --positions (1024)\n"
                   "                                   shape, random weights\n"
                   "  --rank --alpha --targets (the family's defaults; GPT-2: 4, 32, q,v) --adapters K (4)\n"
                   "  --slots S (8) --prompt P (32) --gen D (16) --reps N (12) --threads N --seed S --json\n"
                   "Reports the median adapter switch time (merged and unmerged) and the tokens/s of a mixed batch\n"
                   "(sequence i uses adapter i mod K, one session) against merged single-adapter batches.\n");
            return 1;
        }
        LOPT("--layers", o->layers) LOPT("--embd", o->embd) LOPT("--heads", o->heads)
        LOPT("--vocab", o->vocab) LOPT("--positions", o->positions) LOPT("--rank", o->rank)
        LOPT("--adapters", o->adapters) LOPT("--slots", o->slots) LOPT("--prompt", o->prompt) LOPT("--gen", o->gen)
        LOPT("--reps", o->reps) LOPT("--threads", o->threads) LOPT("--seed", o->seed)
        else if (!strcmp(f, "--alpha")) { if (cli_opt_float(argc, argv, &i, &o->alpha)) return 2; }
        else if (!strcmp(f, "--targets")) { if (cli_opt_str(argc, argv, &i, &o->targets)) return 2; }
        else if (!strcmp(f, "--model-type")) { if (cli_opt_str(argc, argv, &i, &o->model_type)) return 2; }
        else if (!strcmp(f, "--json")) o->json = 1;
        else {
            cli_error("bench adapters: unknown option '%s' (see `lorac bench adapters --help`)", f);
            return 2;
        }
#undef LOPT
    }
    model_config *c = &o->cfg;
    lorac_err err = {0};
    if (model_config_default(o->model_type, c, &err)) return cli_fail(&err), 2;
    if (o->layers < 1 || o->embd < 1 || o->heads < 1 || o->embd % o->heads || o->vocab < 2 || o->rank < 0 || o->adapters < 1 ||
        o->adapters > 256 || o->slots < 1 || o->prompt < 1 || o->gen < 0 || o->reps < 1 || o->prompt + o->gen > o->positions) {
        cli_error("bench adapters: bad shape or sizes (see --help)");
        return 2;
    }
    c->n_layer = (int)o->layers, c->n_embd = (int)o->embd, c->n_head = c->n_kv_head = (int)o->heads;
    c->head_dim = (int)(o->embd / o->heads), c->n_inner = 4 * c->n_embd;
    c->vocab_size = (int)o->vocab, c->n_positions = (int)o->positions;
    c->eos_token_id = c->bos_token_id = c->vocab_size - 1;
    if (o->threads > 0) lorac_set_threads((int)o->threads);
    return 0;
}

int cmd_bench_adapters(int argc, char **argv) {
    bopts o;
    int prc = parse(argc, argv, &o);
    if (prc) return prc == 1 ? 0 : prc;
    lorac_err err = {0};
    model *m = NULL;
    model_adapter_set *set = NULL;
    int K = (int)o.adapters, S = (int)o.slots, reps = (int)o.reps;
    peft_adapter **ads = calloc((size_t)K, sizeof *ads);
    double *t_m = calloc((size_t)reps, sizeof(double)), *t_u = calloc((size_t)reps, sizeof(double));
    double *t_r = calloc((size_t)reps, sizeof(double));
    int *ids = calloc((size_t)S, sizeof(int));
    if (!ads || !t_m || !t_u || !t_r || !ids) return cli_error("bench adapters: out of memory");
    int rc = model_random(&o.cfg, (uint64_t)o.seed, &m, &err);
    if (!rc) rc = make_adapters(m, &o, ads, &err);
    if (!rc) rc = model_adapter_set_new(m, &set, &err);
    for (int k = 0; k < K && !rc; k++) rc = model_adapter_set_add(set, ads[k], NULL, &err);
    double first = 0;
    if (!rc) { /* the first merged activation allocates the buffers; then a warm round */
        double t0 = cli_now_s();
        rc = model_adapter_set_activate(set, 0, 1, &err);
        first = cli_now_s() - t0;
        for (int k = 1; k < K && !rc; k++) rc = model_adapter_set_activate(set, k, 1, &err);
    }
    for (int i = 0; i < reps && !rc; i++) {
        double t0 = cli_now_s();
        rc = model_adapter_set_activate(set, (i + 1) % K, 1, &err);
        t_m[i] = cli_now_s() - t0;
    }
    for (int i = 0; i < reps && !rc; i++) {
        double t0 = cli_now_s();
        rc = model_adapter_set_activate(set, i % K, 0, &err);
        t_u[i] = cli_now_s() - t0;
    }
    /* resident: each adapter's merge computed once (a warm round), then switches only point at it */
    if (!rc) rc = model_adapter_set_keep_merged(set, 1, &err);
    for (int k = 0; k < K && !rc; k++) rc = model_adapter_set_activate(set, k, 1, &err);
    for (int i = 0; i < reps && !rc; i++) {
        double t0 = cli_now_s();
        rc = model_adapter_set_activate(set, i % K, 1, &err);
        t_r[i] = cli_now_s() - t0;
    }
    if (!rc) rc = model_adapter_set_keep_merged(set, 0, &err); /* the batches below as before */
    double resident_mb = 0;
    /* the memory floor: memcpy of as many bytes as a merged switch writes (same process, same moment) */
    double floor_ms = 0;
    if (!rc) {
        size_t whole = adapted_numel(ads[0]), n = whole; /* each adapter keeps whole weights (all of c_attn even for q,v) */
        float *x = malloc(n * sizeof(float) + 1), *y = malloc(n * sizeof(float) + 1);
        if (x && y) {
            memset(x, 1, n * sizeof(float));
            memset(y, 0, n * sizeof(float));
            double best = 1e30;
            for (int i = 0; i < 5; i++) {
                double t0 = cli_now_s();
                memcpy(y, x, n * sizeof(float));
                double t = cli_now_s() - t0;
                if (t < best) best = t;
            }
            floor_ms = 1e3 * best;
        }
        resident_mb = (double)K * (double)whole * sizeof(float) / 1048576.0;
        free(x);
        free(y);
    }
    double mixed = 0, grouped = 0, base = 0;
    for (int i = 0; i < S; i++) ids[i] = i % K;
    if (!rc) rc = model_adapter_set_activate(set, -1, 0, &err);
    if (!rc) rc = run_batch(m, set, NULL, S, &o, &base, &err); /* warm-up and the base reference */
    if (!rc) rc = run_batch(m, set, ids, S, &o, &mixed, &err);
    for (int k = 0; k < K && !rc; k++) { /* merged single-adapter batches, switch included */
        int n = 0;
        for (int i = 0; i < S; i++) n += ids[i] == k;
        if (!n) continue;
        double t0 = cli_now_s(), sec = 0;
        rc = model_adapter_set_activate(set, k, 1, &err);
        if (!rc) rc = run_batch(m, set, NULL, n, &o, &sec, &err);
        grouped += cli_now_s() - t0;
    }
    model_adapter_set_free(set);
    for (int k = 0; k < K; k++) peft_adapter_free(ads[k]);
    model_free(m);
    free(ads);
    free(ids);
    if (rc) {
        free(t_m);
        free(t_u);
        free(t_r);
        return cli_fail(&err);
    }
    qsort(t_m, (size_t)reps, sizeof(double), cmp_d);
    qsort(t_u, (size_t)reps, sizeof(double), cmp_d);
    qsort(t_r, (size_t)reps, sizeof(double), cmp_d);
    double sw_m = 1e3 * t_m[reps / 2], sw_u = 1e3 * t_u[reps / 2], sw_r = 1e3 * t_r[reps / 2];
    double ntok = (double)S * (double)(o.prompt + o.gen);
    free(t_m);
    free(t_u);
    free(t_r);
    if (o.json) {
        printf("{\"layers\": %d, \"embd\": %d, \"rank\": %ld, \"targets\": \"%s\", \"adapters\": %d, \"slots\": %d, "
               "\"prompt\": %ld, \"gen\": %ld, \"threads\": %d, \"switch_merged_ms\": %.3f, \"first_merge_ms\": %.3f, "
               "\"switch_merged_resident_ms\": %.4f, \"resident_mb\": %.1f, \"switch_unmerged_ms\": %.4f, \"memcpy_floor_ms\": %.3f, \"mixed_tok_s\": %.1f, \"merged_grouped_tok_s\": %.1f, \"base_tok_s\": %.1f}\n",
               o.cfg.n_layer, o.cfg.n_embd, o.rank, o.targets, K, S, o.prompt, o.gen, lorac_get_threads(), sw_m,
               1e3 * first, sw_r, resident_mb, sw_u, floor_ms, ntok / mixed, ntok / grouped, ntok / base);
    } else {
        printf("%s shape %d layers x %d, %d adapters (r %ld on %s), threads %d\n", o.cfg.model_type, o.cfg.n_layer, o.cfg.n_embd,
               K, o.rank, o.targets, lorac_get_threads());
        printf("adapter switch, merged: %.3f ms median of %d (first merge, allocating: %.3f ms); unmerged: %.4f ms\n", sw_m,
               reps, 1e3 * first, sw_u);
        printf("adapter switch, merged, kept resident: %.4f ms median (%.1f MB of merged weights for %d adapters)\n", sw_r,
               resident_mb, K);
        printf("  (memory floor: memcpy of the bytes a merged switch writes: %.3f ms)\n", floor_ms);
        printf("%d sequences x (%ld prompt + %ld generated) tokens:\n", S, o.prompt, o.gen);
        printf("  mixed batch (each its own adapter, one session): %.1f tok/s\n", ntok / mixed);
        printf("  merged single-adapter batches (switches included): %.1f tok/s\n", ntok / grouped);
        printf("  base model, one batch (no adapter): %.1f tok/s\n", ntok / base);
    }
    return 0;
}
