/* lorac bench: training-step and generation throughput of any family: a model's real weights
 * (--model DIR|FILE.gguf) or a random shape (a GPT-2 small shape by default).
 *
 *   lorac bench train     forward (for backward) + backward + AdamW over the LoRA params, as
 *                         `lorac train` does a step; median tokens/s after a warm-up, peak RSS.
 *   lorac bench generate  prefill and greedy-decode tokens/s (KV cache) for the base model, a
 *                         merged adapter and an unmerged one; the time to switch adapters
 *                         (merge + unmerge of every LoRA layer).
 *
 * bench/run.sh runs these beside the PyTorch + loralib / PEFT reference (bench/torch_train.py). The OpenBLAS kernel that ran is printed,
 * since it decides most of the speed (OPENBLAS_CORETYPE forces one). */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

/* the one place outside src/ that asks OpenBLAS which kernel it picked (lorac.h has no such query) */

#include "cli.h"

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median of v[0..n) (sorts v). */
static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* Peak resident set of this process in MiB (Linux reports ru_maxrss in KiB). */
static double peak_rss_mb(void) {
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0) return -1.0;
    return (double)ru.ru_maxrss / 1024.0;
}

/* s as a JSON string body (quotes and control characters escaped). */
static void bench_json_str(FILE *f, const char *s) {
    fputc('"', f);
    for (; s && *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') fprintf(f, "\\%c", c);
        else if (c < 0x20) fprintf(f, "\\u%04x", c);
        else fputc(c, f);
    }
    fputc('"', f);
}

static const char *env_or(const char *name, const char *dflt) {
    const char *v = getenv(name);
    return v ? v : dflt;
}

/* What a benchmark ran on: the BLAS kernel, its build line, threads, the OpenBLAS overrides and
 * how idle OpenMP threads wait (spinning matters on a loaded machine: bench/README.md). */
static void print_env_human(void) {
    printf("openblas: core %s | %s\n", lorac_blas_corename(), lorac_blas_config());
    printf("matmul precision %s (--precision; bf16 needs AVX512-BF16: %s)\n", cli_precision_name(),
           op_bf16_supported() ? "present" : "absent");
    printf("threads %d | OPENBLAS_CORETYPE=%s OPENBLAS_L2_SIZE=%s | OMP_WAIT_POLICY=%s GOMP_SPINCOUNT=%s\n",
           lorac_get_threads(), env_or("OPENBLAS_CORETYPE", "(unset)"), env_or("OPENBLAS_L2_SIZE", "(unset)"),
           env_or("OMP_WAIT_POLICY", "(unset)"), env_or("GOMP_SPINCOUNT", "(unset)"));
}

static void print_env_json(void) {
    printf("\"blas_core\": ");
    bench_json_str(stdout, lorac_blas_corename());
    printf(", \"blas_config\": ");
    bench_json_str(stdout, lorac_blas_config());
    printf(", \"precision\": \"%s\", \"threads\": %d, \"OPENBLAS_CORETYPE\": ", cli_precision_name(), lorac_get_threads());
    bench_json_str(stdout, env_or("OPENBLAS_CORETYPE", ""));
    printf(", \"OPENBLAS_L2_SIZE\": ");
    bench_json_str(stdout, env_or("OPENBLAS_L2_SIZE", ""));
    printf(", \"OMP_WAIT_POLICY\": ");
    bench_json_str(stdout, env_or("OMP_WAIT_POLICY", ""));
    printf(", \"GOMP_SPINCOUNT\": ");
    bench_json_str(stdout, env_or("GOMP_SPINCOUNT", ""));
}

/* Options shared by both benchmarks: the model (real, or a random shape) and the adapter. */
typedef struct bench_opts {
    const char *model_path, *model_type;
    long layers, embd, heads, kv_heads, vocab, positions, inner;
    model_lora_opts lora;
    const char *precision;
    long threads;
    long seed;
    int json;
} bench_opts;

static void bench_opts_default(bench_opts *o) {
    memset(o, 0, sizeof *o);
    o->model_type = "gpt2";
    o->layers = 12, o->embd = 768, o->heads = 12, o->vocab = 50257, o->positions = 1024;
    model_lora_opts_init(&o->lora);
    o->precision = "auto";
    o->seed = 1234;
}

/* Parses a shared flag at argv[*i]: 1 = consumed, 0 = not ours, -1 = bad value (printed). */
static int bench_opt_parse(bench_opts *o, int argc, char **argv, int *i) {
    const char *f = argv[*i];
    long n;
    double d;
#define BINT(flag, dst) if (!strcmp(f, flag)) { if (cli_opt_int(argc, argv, i, &n)) return -1; dst = n; return 1; }
    BINT("--layers", o->layers)
    BINT("--embd", o->embd)
    BINT("--heads", o->heads)
    BINT("--kv-heads", o->kv_heads)
    BINT("--vocab", o->vocab)
    BINT("--positions", o->positions)
    BINT("--inner", o->inner)
    BINT("--rank", o->lora.r)
    BINT("--threads", o->threads)
    BINT("--seed", o->seed)
#undef BINT
    if (!strcmp(f, "--alpha")) {
        if (cli_opt_float(argc, argv, i, &d)) return -1;
        o->lora.alpha = (float)d;
        return 1;
    }
    if (!strcmp(f, "--targets")) {
        const char *t;
        if (cli_opt_str(argc, argv, i, &t)) return -1;
        snprintf(o->lora.targets, sizeof o->lora.targets, "%s", t);
        return 1;
    }
    if (!strcmp(f, "--model")) return cli_opt_str(argc, argv, i, &o->model_path) ? -1 : 1;
    if (!strcmp(f, "--model-type")) return cli_opt_str(argc, argv, i, &o->model_type) ? -1 : 1;
    if (!strcmp(f, "--precision")) return cli_opt_str(argc, argv, i, &o->precision) ? -1 : 1;
    if (!strcmp(f, "--json")) {
        o->json = 1;
        return 1;
    }
    return 0;
}

/* The model: loaded, or a random one of the shape (GPT-2's head tied to wte, as GPT-2 small and the
 * PyTorch reference); then threads, precision and the checked LoRA options. max_T is the longest
 * sequence. */
static int bench_model(bench_opts *o, int max_T, model **m) {
    lorac_err err = {0};
    model_config c;
    if (o->lora.r < 0) return cli_error("bench: --rank must be >= 1");
    if (o->threads < 0) return cli_error("bench: --threads must be >= 1");
    if (o->threads > 0) lorac_set_threads((int)o->threads);
    if (cli_set_precision(o->precision)) return 1;
    if (o->model_path) {
        model_load_opts lo = {0, (uint64_t)o->seed, 1};
        if (model_load(o->model_path, &lo, m, &err)) return cli_fail(&err);
    } else {
        if (o->layers < 1 || o->embd < 1 || o->heads < 1 || o->vocab < 2 || o->embd % o->heads || o->inner < 0 || o->kv_heads < 0)
            return cli_error("bench: --layers, --embd, --heads >= 1, --vocab >= 2 and --embd divisible by --heads");
        if (model_config_default(o->model_type, &c, &err)) return cli_fail(&err);
        c.n_layer = (int)o->layers, c.n_embd = (int)o->embd, c.n_head = (int)o->heads, c.head_dim = (int)(o->embd / o->heads);
        c.n_kv_head = o->kv_heads ? (int)o->kv_heads : c.n_head, c.vocab_size = (int)o->vocab;
        c.n_positions = o->positions < max_T ? max_T : (int)o->positions;
        c.n_inner = o->inner ? (int)o->inner : 4 * c.n_embd;
        if (c.head == MODEL_HEAD_LM) c.eos_token_id = c.bos_token_id = c.vocab_size - 1;
        if (model_random(&c, (uint64_t)o->seed, m, &err)) return cli_fail(&err);
    }
    if (max_T > model_max_len(*m)) return cli_error("bench: %d tokens exceed the model's %d", max_T, model_max_len(*m));
    model_lora_opts_resolve(*m, &o->lora);
    if (model_lora_check(*m, &o->lora, &err)) return cli_fail(&err);
    return 0;
}

static void bench_shape_human(const bench_opts *o, const model *m) {
    const model_config *c = model_cfg(m);
    printf("model: %s %s, layers %d, embd %d, heads %d/%d, vocab %d | LoRA r %d alpha %g targets %s\n", c->model_type,
           o->model_path ? o->model_path : "(random)", c->n_layer, c->n_embd, c->n_head, c->n_kv_head, c->vocab_size, o->lora.r,
           (double)o->lora.alpha, o->lora.targets);
}

/* ---------------------------------------------------------------- bench train */

static void train_usage(FILE *f) {
    fprintf(f,
            "usage: lorac bench train [options]\n"
            "  --model DIR|FILE.gguf            a real model (any family), or a random one of this shape:\n"
            "  --model-type (gpt2) --layers (12) --embd (768) --heads (12) --kv-heads (= heads) --vocab (50257)\n"
            "  --positions (1024) --inner (4 x embd)\n"
            "  --batch B (8) --seq T (128)  --rank R --alpha A --targets LIST (the family's defaults; GPT-2: 4, 32, q,v)\n"
            "  --lora-dropout P (0.1) --label-smoothing (0.1)   as lorac train's defaults\n"
            "  --steps N (5) --warmup N (2) --threads N (all cores) --seed S --json\n"
            "  --precision fp32|bf16|auto (auto)  frozen-weight matmuls in bf16 where the CPU has AVX512-BF16\n"
            "times N training steps (forward, backward, AdamW on the LoRA params) after the warm-up;\n"
            "prints the median tokens/s (B*T / median step), the phases, and the peak RSS.\n"
            "--json: {\"tokens_per_s\", \"ms_per_step\", \"peak_rss_mb\", ...}\n");
}

static int bench_train(int argc, char **argv) {
    bench_opts o;
    bench_opts_default(&o);
    long B = 8, T = 128, steps = 5, warmup = 2;
    double dropout = 0.1, smoothing = 0.1;
    for (int i = 1; i < argc; i++) {
        const char *f = argv[i];
        int r = bench_opt_parse(&o, argc, argv, &i);
        if (r < 0) return 2;
        if (r > 0) continue;
        if (!strcmp(f, "--help") || !strcmp(f, "-h")) {
            train_usage(stdout);
            return 0;
        }
        if (!strcmp(f, "--batch")) { if (cli_opt_int(argc, argv, &i, &B)) return 2; }
        else if (!strcmp(f, "--seq")) { if (cli_opt_int(argc, argv, &i, &T)) return 2; }
        else if (!strcmp(f, "--steps")) { if (cli_opt_int(argc, argv, &i, &steps)) return 2; }
        else if (!strcmp(f, "--warmup")) { if (cli_opt_int(argc, argv, &i, &warmup)) return 2; }
        else if (!strcmp(f, "--lora-dropout")) { if (cli_opt_float(argc, argv, &i, &dropout)) return 2; }
        else if (!strcmp(f, "--label-smoothing")) { if (cli_opt_float(argc, argv, &i, &smoothing)) return 2; }
        else {
            train_usage(stderr);
            cli_error("bench train: unknown option '%s'", f);
            return 2;
        }
    }
    if (B < 1 || T < 1 || B * T > (1L << 24) || steps < 1 || warmup < 0 || T > (1L << 20))
        return cli_error("bench train: --batch, --seq, --steps must be >= 1 (B*T <= 2^24) and --warmup >= 0");
    if (dropout < 0 || dropout >= 1) return cli_error("bench train: --lora-dropout must be in [0, 1)");
    o.lora.dropout = (float)dropout;
    model *m = NULL;
    if (bench_model(&o, (int)T, &m)) return 1;
    lorac_err err = {0};
    model_acts *acts = NULL;
    adamw_state opt;
    train_params fl;
    memset(&opt, 0, sizeof opt);
    memset(&fl, 0, sizeof fl);
    const model_config *c = model_cfg(m);
    size_t BT = (size_t)B * (size_t)T;
    int32_t *ids = malloc(BT * sizeof *ids), *targets = malloc(BT * sizeof *targets);
    double *t_step = calloc((size_t)steps, sizeof(double)), *t_fwd = calloc((size_t)steps, sizeof(double));
    double *t_bwd = calloc((size_t)steps, sizeof(double)), *t_opt = calloc((size_t)steps, sizeof(double));
    int rc = !ids || !targets || !t_step || !t_fwd || !t_bwd || !t_opt ? lorac_fail(&err, LORAC_ENOMEM, "out of memory") : 0;
    double t_setup = cli_now_s();
    if (!rc) rc = model_add_lora(m, &o.lora, (uint64_t)o.seed + 1, &err);
    if (!rc) rc = model_train_mode(m, 1, &err);
    if (!rc) rc = model_acts_alloc(m, (int)B, (int)T, &acts, &err);
    if (!rc) rc = train_params_init(&fl, model_registry(m), &err);
    if (!rc) rc = adamw_init(&opt, fl.total, &err);
    t_setup = cli_now_s() - t_setup;
    lorac_rng rng;
    lorac_rng_seed(&rng, (uint64_t)o.seed + 2);
    int lm = c->head == MODEL_HEAD_LM; /* a classifier gets random labels of its head */
    for (size_t i = 0; !rc && i < BT; i++) {
        ids[i] = (int32_t)(lorac_rng_u64(&rng) % (uint64_t)c->vocab_size);
        targets[i] = (int32_t)(lorac_rng_u64(&rng) % (uint64_t)(lm ? c->vocab_size : c->num_labels));
    }
    float *scores = (float *)t_opt; /* regression targets: any values (overwritten by timings after) */
    model_batch mb = {(int)B, (int)T, ids, NULL, NULL, lm ? targets : NULL, !lm && c->num_labels > 1 ? targets : NULL,
                      !lm && c->num_labels == 1 ? scores : NULL};
    adamw_config ac = {0.9, 0.999, 1e-8, 0.01};
    float loss = 0.0f;
    for (long s = 0; !rc && s < warmup + steps; s++) {
        double t0 = cli_now_s();
        model_zero_grad(m);
        rc = model_forward(m, acts, &mb, (float)smoothing, MODEL_FWD_TRAIN, &rng, &loss, NULL, &err);
        double t1 = cli_now_s();
        if (!rc) rc = model_backward(m, acts, &err);
        double t2 = cli_now_s();
        if (rc) break;
        train_params_gather(&fl, 1);
        adamw_update(&opt, &ac, 2e-4, fl.params, fl.grads, fl.decay);
        train_params_scatter(&fl);
        double t3 = cli_now_s();
        if (!o.json) fprintf(stderr, "%s %ld: %.1f ms (loss %.4f)\n", s < warmup ? "warm-up" : "step", s < warmup ? s + 1 : s - warmup + 1,
                             1e3 * (t3 - t0), (double)loss);
        if (s >= warmup) {
            t_step[s - warmup] = t3 - t0;
            t_fwd[s - warmup] = t1 - t0;
            t_bwd[s - warmup] = t2 - t1;
            t_opt[s - warmup] = t3 - t2;
        }
    }
    if (rc) cli_fail(&err);
    else if (!isfinite(loss)) rc = cli_error("bench train: the loss is not finite (%g)", (double)loss);
    if (!rc) {
        double med = median(t_step, (int)steps), fwd = median(t_fwd, (int)steps), bwd = median(t_bwd, (int)steps),
               opt_s = median(t_opt, (int)steps), rss = peak_rss_mb(), tps = (double)BT / med;
        if (o.json) {
            printf("{\"tokens_per_s\": %.2f, \"ms_per_step\": %.2f, \"peak_rss_mb\": %.1f, \"forward_ms\": %.2f, "
                   "\"backward_ms\": %.2f, \"adamw_ms\": %.3f, \"batch\": %ld, \"seq\": %ld, \"steps\": %ld, \"warmup\": %ld, "
                   "\"trainable_params\": %zu, \"loss\": %.4f, \"model_type\": \"%s\", ",
                   tps, 1e3 * med, rss, 1e3 * fwd, 1e3 * bwd, 1e3 * opt_s, B, T, steps, warmup, fl.total, (double)loss, c->model_type);
            print_env_json();
            printf("}\n");
        } else {
            bench_shape_human(&o, m);
            print_env_human();
            printf("batch %ld x seq %ld, %ld steps after %ld warm-up, %zu trainable params, setup %.2f s\n", B, T, steps,
                   warmup, fl.total, t_setup);
            printf("median step %.1f ms: forward+loss %.1f ms, backward %.1f ms, AdamW %.3f ms\n", 1e3 * med, 1e3 * fwd,
                   1e3 * bwd, 1e3 * opt_s);
            printf("tokens/s %.1f | peak RSS %.1f MiB\n", tps, rss);
        }
    }
    adamw_free(&opt);
    train_params_free(&fl);
    model_acts_free(acts);
    model_free(m);
    free(ids);
    free(targets);
    free(t_step);
    free(t_fwd);
    free(t_bwd);
    free(t_opt);
    return rc ? 1 : 0;
}

/* ---------------------------------------------------------------- bench generate */

static void generate_usage(FILE *f) {
    fprintf(f,
            "usage: lorac bench generate [options]\n"
            "  --model DIR|FILE.gguf            a real causal LM, or a random one of this shape:\n"
            "  --model-type (gpt2) --layers (12) --embd (768) --heads (12) --kv-heads (= heads) --vocab (50257)\n"
            "  --positions (1024) --inner (4 x embd)\n"
            "  --prompt N (128) --new N (32) --batch B (1)  --rank R --alpha A --targets LIST (the family's defaults)\n"
            "  --reps N (3) --threads N (all cores) --seed S --json --precision fp32|bf16|auto (auto)\n"
            "  --exact-products  quantized bases: decode through dequantized fp32 products, not the direct\n"
            "                    int8 kernels (qmat_set_direct(0))\n"
            "  --adapters K      also a mixed batch: K different adapters (random B), sequence i with adapter\n"
            "                    i mod K, unmerged in one session (the server's batches)\n"
            "median prefill tokens/s (the prompt in one step) and greedy decode tokens/s (one token per step,\n"
            "KV cache; B sequences decode together, tokens/s counts all of them) for the base model, the\n"
            "adapter merged into the weights and the adapter unmerged (training mode, dropout 0); and the\n"
            "adapter switch time: median merge + unmerge of every layer; with --adapters, the mixed batch.\n");
}

typedef struct bench_speed {
    double prefill_tps, decode_tps;
} bench_speed;

static int argmax(const float *x, int n) {
    int best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

/* Median prefill and decode speed of m as it is now (base, merged or unmerged), or with sequence b
 * running adapter ids[b] of set (set non-NULL: a mixed batch); prompts (B, P). */
static int bench_decode(model *m, const model_adapter_set *set, const int *ids, const int32_t *prompt, int B, int P, int N,
                        int reps, bench_speed *out, lorac_err *err) {
    model_session *s = NULL;
    int V = model_cfg(m)->vocab_size;
    float *logits = malloc((size_t)B * V * sizeof(float));
    int32_t *tok = malloc((size_t)B * sizeof *tok);
    double *tp = calloc((size_t)reps, sizeof(double)), *td = calloc((size_t)reps, sizeof(double));
    int rc = !logits || !tok || !tp || !td ? lorac_fail(err, LORAC_ENOMEM, "bench: out of memory") : LORAC_OK;
    if (!rc) rc = model_session_new(m, &s, err);
    for (int r = 0; !rc && r < reps; r++) {
        rc = model_session_begin(s, B, P + N, err);
        if (!rc && set) rc = model_session_use_adapters(s, set, ids, B, err);
        double t0 = cli_now_s();
        if (!rc) rc = model_session_step(s, prompt, B, P, logits, err);
        double t1 = cli_now_s();
        for (int i = 0; !rc && i < N; i++) {
            for (int b = 0; b < B; b++) tok[b] = argmax(logits + (size_t)b * V, V);
            rc = model_session_step(s, tok, B, 1, logits, err);
        }
        double t2 = cli_now_s();
        tp[r] = t1 - t0;
        td[r] = t2 - t1;
    }
    if (!rc) {
        out->prefill_tps = (double)B * P / median(tp, reps);
        out->decode_tps = (double)B * N / median(td, reps);
    }
    model_session_free(s);
    free(logits);
    free(tok);
    free(tp);
    free(td);
    return rc;
}

/* Gives every lora_B a small random value, so that the adapter changes the output and merging it
 * is real work (fresh adapters have B = 0). */
static void randomize_lora_B(model *m, lorac_rng *rng) {
    lora_registry *reg = model_registry(m);
    for (size_t i = 0; i < reg->n; i++) {
        lora_param *p = &reg->params[i];
        size_t len = strlen(p->name);
        if (len >= 6 && !strcmp(p->name + len - 6, "lora_B"))
            for (size_t j = 0; j < p->numel; j++) p->data[j] = 0.02f * lorac_rng_normal(rng);
    }
}

/* K adapters of o's LoRA shape with random B, read back from PEFT directories into a set on m
 * (which keeps no LoRA of its own); ids[b] = b mod K. */
static int make_adapter_set(model *m, const bench_opts *o, int K, int B, lorac_rng *rng, model_adapter_set **set,
                            int *ids, lorac_err *err) {
    char root[] = "/tmp/lorac_bench_mixed_XXXXXX", dir[320];
    peft_adapter **ads = calloc((size_t)K, sizeof *ads);
    if (!ads) return lorac_fail(err, LORAC_ENOMEM, "bench: out of memory");
    int rc = mkdtemp(root) ? LORAC_OK : lorac_fail(err, LORAC_EIO, "bench: cannot make a temporary directory");
    for (int k = 0; k < K && !rc; k++) { /* each adapter written by the model, then taken out of it */
        snprintf(dir, sizeof dir, "%s/a%d", root, k);
        if ((rc = model_add_lora(m, &o->lora, (uint64_t)o->seed + 100 + (uint64_t)k, err))) break;
        if (!(rc = model_train_mode(m, 1, err))) randomize_lora_B(m, rng);
        if (!rc) rc = model_save_adapter(m, dir, err);
        int rc2 = model_remove_lora(m, err);
        if (!rc) rc = rc2;
        if (!rc) rc = peft_adapter_read(dir, &ads[k], NULL, 0, err);
        lorac_remove_flat_dir(dir);
    }
    rmdir(root);
    if (!rc) rc = model_adapter_set_new(m, set, err);
    for (int k = 0; k < K && !rc; k++) rc = model_adapter_set_add(*set, ads[k], NULL, err);
    for (int k = 0; k < K; k++) peft_adapter_free(ads[k]);
    free(ads);
    for (int b = 0; b < B; b++) ids[b] = b % K;
    return rc;
}

static int bench_generate(int argc, char **argv) {
    bench_opts o;
    bench_opts_default(&o);
    long P = 128, N = 32, reps = 3, B = 1, K = 0;
    for (int i = 1; i < argc; i++) {
        const char *f = argv[i];
        int r = bench_opt_parse(&o, argc, argv, &i);
        if (r < 0) return 2;
        if (r > 0) continue;
        if (!strcmp(f, "--help") || !strcmp(f, "-h")) {
            generate_usage(stdout);
            return 0;
        }
        if (!strcmp(f, "--prompt")) { if (cli_opt_int(argc, argv, &i, &P)) return 2; }
        else if (!strcmp(f, "--new")) { if (cli_opt_int(argc, argv, &i, &N)) return 2; }
        else if (!strcmp(f, "--reps")) { if (cli_opt_int(argc, argv, &i, &reps)) return 2; }
        else if (!strcmp(f, "--batch")) { if (cli_opt_int(argc, argv, &i, &B)) return 2; }
        else if (!strcmp(f, "--adapters")) { if (cli_opt_int(argc, argv, &i, &K)) return 2; }
        else if (!strcmp(f, "--exact-products")) qmat_set_direct(0);
        else {
            generate_usage(stderr);
            cli_error("bench generate: unknown option '%s'", f);
            return 2;
        }
    }
    if (P < 1 || N < 1 || reps < 1 || B < 1 || B > 4096 || P + N > (1L << 20) || K < 0 || K > 256)
        return cli_error("bench generate: --prompt, --new, --reps and --batch must be >= 1 (batch <= 4096), --adapters 0..256");
    o.lora.dropout = 0.0f; /* the unmerged adapter runs in training mode: no dropout there */
    model *m = NULL;
    if (bench_model(&o, (int)(P + N), &m)) return 1;
    lorac_err err = {0};
    int32_t *prompt = malloc((size_t)B * P * sizeof *prompt);
    double *tsw = calloc((size_t)reps, sizeof(double));
    bench_speed base = {0, 0}, merged = {0, 0}, unmerged = {0, 0}, mixed = {0, 0};
    model_adapter_set *set = NULL;
    int *ids = calloc((size_t)B, sizeof *ids);
    double switch_ms = 0.0;
    lorac_rng rng;
    lorac_rng_seed(&rng, (uint64_t)o.seed + 3);
    int rc = !prompt || !tsw || !ids ? lorac_fail(&err, LORAC_ENOMEM, "out of memory") : 0;
    for (long i = 0; !rc && i < B * P; i++) prompt[i] = (int32_t)(lorac_rng_u64(&rng) % (uint64_t)model_cfg(m)->vocab_size);
    if (!rc) rc = bench_decode(m, NULL, NULL, prompt, (int)B, (int)P, (int)N, (int)reps, &base, &err);
    if (!rc && K > 0) rc = make_adapter_set(m, &o, (int)K, (int)B, &rng, &set, ids, &err);
    if (!rc && K > 0) rc = bench_decode(m, set, ids, prompt, (int)B, (int)P, (int)N, (int)reps, &mixed, &err);
    model_adapter_set_free(set); /* the model's own LoRA below */
    if (!rc) rc = model_add_lora(m, &o.lora, (uint64_t)o.seed + 1, &err);
    if (!rc) {
        rc = model_train_mode(m, 1, &err); /* B is changed only while unmerged */
        randomize_lora_B(m, &rng);
    }
    if (!rc) rc = model_train_mode(m, 0, &err);
    if (!rc) rc = bench_decode(m, NULL, NULL, prompt, (int)B, (int)P, (int)N, (int)reps, &merged, &err);
    if (!rc) rc = model_train_mode(m, 1, &err);
    if (!rc) rc = bench_decode(m, NULL, NULL, prompt, (int)B, (int)P, (int)N, (int)reps, &unmerged, &err);
    for (long r = 0; !rc && r < reps; r++) {
        double t0 = cli_now_s();
        rc = model_train_mode(m, 0, &err);
        if (!rc) rc = model_train_mode(m, 1, &err);
        tsw[r] = cli_now_s() - t0;
    }
    if (rc) {
        cli_fail(&err);
    } else {
        switch_ms = 1e3 * median(tsw, (int)reps);
        double rss = peak_rss_mb();
        if (o.json) {
            printf("{\"prompt\": %ld, \"new\": %ld, \"batch\": %ld, \"reps\": %ld, \"direct_products\": %s, ", P, N, B,
                   reps, qmat_get_direct() ? "true" : "false");
            printf("\"base\": {\"prefill_tokens_per_s\": %.2f, \"decode_tokens_per_s\": %.2f}, ", base.prefill_tps,
                   base.decode_tps);
            printf("\"merged\": {\"prefill_tokens_per_s\": %.2f, \"decode_tokens_per_s\": %.2f}, ", merged.prefill_tps,
                   merged.decode_tps);
            printf("\"unmerged\": {\"prefill_tokens_per_s\": %.2f, \"decode_tokens_per_s\": %.2f}, ", unmerged.prefill_tps,
                   unmerged.decode_tps);
            if (K > 0)
                printf("\"adapters\": %ld, \"mixed\": {\"prefill_tokens_per_s\": %.2f, \"decode_tokens_per_s\": %.2f}, ", K,
                       mixed.prefill_tps, mixed.decode_tps);
            printf("\"switch_ms\": %.3f, \"peak_rss_mb\": %.1f, ", switch_ms, rss);
            print_env_json();
            printf("}\n");
        } else {
            bench_shape_human(&o, m);
            print_env_human();
            printf("prompt %ld tokens, %ld new tokens (greedy, %ld sequence%s), median of %ld; quantized products: %s\n", P,
                   N, B, B > 1 ? "s" : "", reps,
                   qmat_get_direct() ? "direct int8 in decode steps" : "dequantized fp32");
            printf("%-10s %16s %16s\n", "model", "prefill tok/s", "decode tok/s");
            printf("%-10s %16.1f %16.1f\n", "base", base.prefill_tps, base.decode_tps);
            printf("%-10s %16.1f %16.1f\n", "merged", merged.prefill_tps, merged.decode_tps);
            printf("%-10s %16.1f %16.1f\n", "unmerged", unmerged.prefill_tps, unmerged.decode_tps);
            if (K > 0) printf("%-10s %16.1f %16.1f   (%ld adapters, sequence i with adapter i mod %ld)\n", "mixed", mixed.prefill_tps,
                              mixed.decode_tps, K, K);
            printf("adapter switch (merge + unmerge, every layer): %.3f ms | peak RSS %.1f MiB\n", switch_ms, rss);
        }
    }
    model_free(m);
    free(prompt);
    free(tsw);
    free(ids);
    return rc ? 1 : 0;
}

int cmd_bench(int argc, char **argv) {
    if (argc >= 2 && !strcmp(argv[1], "train")) return bench_train(argc - 1, argv + 1);
    if (argc >= 2 && !strcmp(argv[1], "generate")) return bench_generate(argc - 1, argv + 1);
    if (argc >= 2 && !strcmp(argv[1], "adapters")) return cmd_bench_adapters(argc - 1, argv + 1);
    FILE *f = argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) ? stdout : stderr;
    fprintf(f, "usage: lorac bench train|generate|adapters [options]   (`lorac bench train --help`)\n");
    return f == stdout ? 0 : 2;
}
