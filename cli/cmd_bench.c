/* lorac bench: training-step and generation throughput of a GPT-2 shape with random weights.
 *
 *   lorac bench train     forward (for backward) + backward + AdamW over the LoRA params, as
 *                         `lorac train` does a step; median tokens/s after a warm-up, peak RSS.
 *   lorac bench generate  prefill and greedy-decode tokens/s (KV cache) for the base model, a
 *                         merged adapter and an unmerged one; the time to switch adapters
 *                         (merge + unmerge of every LoRA layer).
 *
 * No checkpoint is read: gpt2_model_random gives the shape. bench/run.sh runs these beside the
 * PyTorch + loralib reference (bench/torch_train.py). The OpenBLAS kernel that ran is printed,
 * since it decides most of the speed (OPENBLAS_CORETYPE forces one). */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

/* the one place outside src/ that asks OpenBLAS which kernel it picked (lorac.h has no such query) */

#include "cli.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

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

/* Options shared by both benchmarks: the model shape and the adapter. */
typedef struct bench_opts {
    gpt2_config cfg;
    gpt2_lora_opts lora;
    const char *targets;
    const char *precision;
    long threads;
    long seed;
    int json;
} bench_opts;

static void bench_opts_default(bench_opts *o) {
    memset(o, 0, sizeof *o);
    o->cfg.n_layer = 12;
    o->cfg.n_embd = 768;
    o->cfg.n_head = 12;
    o->cfg.vocab_size = 50257;
    o->cfg.n_positions = 1024;
    o->cfg.layer_norm_epsilon = 1e-5;
    o->cfg.activation = GPT2_ACT_GELU_NEW;
    o->cfg.tie_word_embeddings = 1; /* GPT-2 (124M) and the PyTorch reference tie the LM head to wte */
    gpt2_lora_opts_default(&o->lora);
    o->targets = "q,v";
    o->precision = "auto";
    o->seed = 1234;
}

/* Parses a shared flag at argv[*i]: 1 = consumed, 0 = not ours, -1 = bad value (printed). */
static int bench_opt_parse(bench_opts *o, int argc, char **argv, int *i) {
    const char *f = argv[*i];
    long n;
    double d;
#define BINT(flag, dst) if (!strcmp(f, flag)) { if (cli_opt_int(argc, argv, i, &n)) return -1; dst = n; return 1; }
    BINT("--layers", o->cfg.n_layer)
    BINT("--embd", o->cfg.n_embd)
    BINT("--heads", o->cfg.n_head)
    BINT("--vocab", o->cfg.vocab_size)
    BINT("--positions", o->cfg.n_positions)
    BINT("--inner", o->cfg.n_inner)
    BINT("--rank", o->lora.r)
    BINT("--threads", o->threads)
    BINT("--seed", o->seed)
#undef BINT
    if (!strcmp(f, "--alpha")) {
        if (cli_opt_float(argc, argv, i, &d)) return -1;
        o->lora.alpha = (float)d;
        return 1;
    }
    if (!strcmp(f, "--targets")) return cli_opt_str(argc, argv, i, &o->targets) ? -1 : 1;
    if (!strcmp(f, "--precision")) return cli_opt_str(argc, argv, i, &o->precision) ? -1 : 1;
    if (!strcmp(f, "--json")) {
        o->json = 1;
        return 1;
    }
    return 0;
}

/* Checks the shape, sets threads and the adapter targets; max_T is the longest sequence. */
static int bench_opts_finish(bench_opts *o, int max_T) {
    gpt2_config *c = &o->cfg;
    if (c->n_layer < 1 || c->n_embd < 1 || c->n_head < 1 || c->vocab_size < 2 || c->n_embd % c->n_head)
        return cli_error("bench: --layers, --embd, --heads >= 1, --vocab >= 2 and --embd divisible by --heads");
    if (o->lora.r < 1) return cli_error("bench: --rank must be >= 1");
    if (c->n_positions < max_T) c->n_positions = max_T;
    if (c->n_inner < 0) return cli_error("bench: --inner must be >= 1");
    if (c->n_inner == 0) c->n_inner = 4 * c->n_embd; /* GPT-2's default */
    c->eos_token_id = c->bos_token_id = c->vocab_size - 1;
    lorac_err err = {0};
    if (gpt2_lora_targets_parse(o->targets, &o->lora, &err)) return cli_fail(&err);
    if (o->threads < 0) return cli_error("bench: --threads must be >= 1");
    if (o->threads > 0) lorac_set_threads((int)o->threads);
    return cli_set_precision(o->precision) ? 1 : 0;
}

static void bench_shape_human(const bench_opts *o) {
    const gpt2_config *c = &o->cfg;
    printf("shape: layers %d, embd %d, heads %d, vocab %d | LoRA r %d alpha %g targets %s\n", c->n_layer, c->n_embd,
           c->n_head, c->vocab_size, o->lora.r, (double)o->lora.alpha, o->targets);
}

/* ---------------------------------------------------------------- bench train */

static void train_usage(FILE *f) {
    fprintf(f,
            "usage: lorac bench train [options]\n"
            "  --layers (12) --embd (768) --heads (12) --vocab (50257) --positions (1024) --inner (4 x embd)\n"
            "                                   model shape, random weights\n"
            "  --batch B (8) --seq T (128)  --rank R (4) --alpha A (32) --targets LIST (q,v)\n"
            "  --lora-dropout P (0.1) --label-smoothing (0.1)   as lorac train's defaults\n"
            "  --steps N (5) --warmup N (2) --threads N (all cores) --seed S --json\n"
            "  --precision fp32|bf16|auto (auto)  frozen-weight matmuls in bf16 where the CPU has AVX512-BF16\n"
            "times N training steps (forward, backward, AdamW on the LoRA params) after the warm-up;\n"
            "prints the median tokens/s (B*T / median step), the phases, and the peak RSS.\n"
            "--json: {\"tokens_per_s\", \"ms_per_step\", \"peak_rss_mb\", ...}\n");
}

/* The trainable tensors, gathered into one flat buffer for AdamW as `lorac train` does. */
typedef struct flat_params {
    lora_param **p;
    int n;
    size_t total;
    float *params, *grads;
} flat_params;

static int flat_params_init(flat_params *f, gpt2_model *m) {
    memset(f, 0, sizeof *f);
    f->p = calloc(m->reg.n + 1, sizeof *f->p);
    if (!f->p) return 1;
    for (size_t i = 0; i < m->reg.n; i++)
        if (lora_param_requires_grad(&m->reg.params[i]) && m->reg.params[i].grad) {
            f->p[f->n++] = &m->reg.params[i];
            f->total += m->reg.params[i].numel;
        }
    f->params = malloc(f->total * sizeof(float) + 1);
    f->grads = malloc(f->total * sizeof(float) + 1);
    return !f->params || !f->grads;
}

static void flat_params_free(flat_params *f) {
    free(f->p);
    free(f->params);
    free(f->grads);
}

static void flat_params_copy(flat_params *f, int to_flat) {
    size_t off = 0;
    for (int i = 0; i < f->n; i++) {
        size_t bytes = f->p[i]->numel * sizeof(float);
        if (to_flat) {
            memcpy(f->params + off, f->p[i]->data, bytes);
            memcpy(f->grads + off, f->p[i]->grad, bytes);
        } else {
            memcpy(f->p[i]->data, f->params + off, bytes);
        }
        off += f->p[i]->numel;
    }
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
    if (bench_opts_finish(&o, (int)T)) return 1;
    o.lora.dropout = (float)dropout;

    lorac_err err = {0};
    gpt2_model m;
    memset(&m, 0, sizeof m);
    gpt2_acts *acts = NULL;
    adamw_state opt;
    memset(&opt, 0, sizeof opt);
    flat_params fl;
    memset(&fl, 0, sizeof fl);
    size_t BT = (size_t)B * (size_t)T;
    int32_t *ids = malloc(BT * sizeof *ids), *targets = malloc(BT * sizeof *targets);
    double *t_step = calloc((size_t)steps, sizeof(double)), *t_fwd = calloc((size_t)steps, sizeof(double));
    double *t_bwd = calloc((size_t)steps, sizeof(double)), *t_opt = calloc((size_t)steps, sizeof(double));
    int rc = !ids || !targets || !t_step || !t_fwd || !t_bwd || !t_opt;
    if (rc) cli_error("bench train: out of memory");
    double t_setup = now_s();
    if (!rc && (rc = gpt2_model_random(&o.cfg, (uint64_t)o.seed, &m, &err))) cli_fail(&err);
    if (!rc && (rc = gpt2_model_add_lora(&m, &o.lora, (uint64_t)o.seed + 1, &err))) cli_fail(&err);
    if (!rc && (rc = gpt2_model_train_mode(&m, 1, &err))) cli_fail(&err);
    if (!rc && (rc = gpt2_acts_alloc(&m, (int)B, (int)T, &acts, &err))) cli_fail(&err);
    if (!rc && (rc = flat_params_init(&fl, &m))) cli_error("bench train: out of memory");
    if (!rc && (rc = adamw_init(&opt, fl.total, &err))) cli_fail(&err);
    t_setup = now_s() - t_setup;
    lorac_rng rng;
    lorac_rng_seed(&rng, (uint64_t)o.seed + 2);
    for (size_t i = 0; !rc && i < BT; i++) {
        ids[i] = (int32_t)(lorac_rng_u64(&rng) % (uint64_t)o.cfg.vocab_size);
        targets[i] = (int32_t)(lorac_rng_u64(&rng) % (uint64_t)o.cfg.vocab_size);
    }
    adamw_config ac = {0.9, 0.999, 1e-8, 0.01};
    float loss = 0.0f;
    for (long s = 0; !rc && s < warmup + steps; s++) {
        double t0 = now_s();
        gpt2_model_zero_grad(&m);
        rc = gpt2_forward(&m, acts, ids, targets, (int)B, (int)T, (float)smoothing, 1, &rng, &loss, NULL, &err);
        double t1 = now_s();
        if (!rc) rc = gpt2_backward(&m, acts, &err);
        double t2 = now_s();
        if (rc) {
            cli_fail(&err);
            break;
        }
        flat_params_copy(&fl, 1);
        adamw_update(&opt, &ac, 2e-4, fl.params, fl.grads, NULL);
        flat_params_copy(&fl, 0);
        double t3 = now_s();
        if (!o.json) fprintf(stderr, "%s %ld: %.1f ms (loss %.4f)\n", s < warmup ? "warm-up" : "step", s < warmup ? s + 1 : s - warmup + 1,
                             1e3 * (t3 - t0), (double)loss);
        if (s >= warmup) {
            t_step[s - warmup] = t3 - t0;
            t_fwd[s - warmup] = t1 - t0;
            t_bwd[s - warmup] = t2 - t1;
            t_opt[s - warmup] = t3 - t2;
        }
    }
    if (!rc && !isfinite(loss)) rc = cli_error("bench train: the loss is not finite (%g)", (double)loss);
    if (!rc) {
        double med = median(t_step, (int)steps), fwd = median(t_fwd, (int)steps), bwd = median(t_bwd, (int)steps),
               opt_s = median(t_opt, (int)steps), rss = peak_rss_mb(), tps = (double)BT / med;
        if (o.json) {
            printf("{\"tokens_per_s\": %.2f, \"ms_per_step\": %.2f, \"peak_rss_mb\": %.1f, \"forward_ms\": %.2f, "
                   "\"backward_ms\": %.2f, \"adamw_ms\": %.3f, \"batch\": %ld, \"seq\": %ld, \"steps\": %ld, \"warmup\": %ld, "
                   "\"trainable_params\": %zu, \"loss\": %.4f, ",
                   tps, 1e3 * med, rss, 1e3 * fwd, 1e3 * bwd, 1e3 * opt_s, B, T, steps, warmup, fl.total, (double)loss);
            print_env_json();
            printf("}\n");
        } else {
            bench_shape_human(&o);
            print_env_human();
            printf("batch %ld x seq %ld, %ld steps after %ld warm-up, %zu trainable params, setup %.2f s\n", B, T, steps,
                   warmup, fl.total, t_setup);
            printf("median step %.1f ms: forward+loss %.1f ms, backward %.1f ms, AdamW %.3f ms\n", 1e3 * med, 1e3 * fwd,
                   1e3 * bwd, 1e3 * opt_s);
            printf("tokens/s %.1f | peak RSS %.1f MiB\n", tps, rss);
        }
    }
    adamw_free(&opt);
    flat_params_free(&fl);
    gpt2_acts_free(acts);
    gpt2_model_free(&m);
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
            "  --layers (12) --embd (768) --heads (12) --vocab (50257) --positions (1024) --inner (4 x embd)\n"
            "                                   model shape, random weights\n"
            "  --prompt N (128) --new N (32)  --rank R (4) --alpha A (32) --targets LIST (q,v)\n"
            "  --reps N (3) --threads N (all cores) --seed S --json --precision fp32|bf16|auto (auto)\n"
            "median prefill tokens/s (the prompt in one step) and greedy decode tokens/s (one token per step,\n"
            "KV cache) for the base model, the adapter merged into the weights and the adapter unmerged\n"
            "(training mode, dropout 0); and the adapter switch time: median merge + unmerge of every layer.\n");
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

/* Median prefill and decode speed of m as it is now (base, merged or unmerged). */
static int bench_decode(gpt2_model *m, const int32_t *prompt, int P, int N, int reps, bench_speed *out, lorac_err *err) {
    gpt2_session *s = NULL;
    float *logits = malloc((size_t)m->cfg.vocab_size * sizeof(float));
    double *tp = calloc((size_t)reps, sizeof(double)), *td = calloc((size_t)reps, sizeof(double));
    int rc = !logits || !tp || !td ? lorac_fail(err, LORAC_ENOMEM, "bench: out of memory") : LORAC_OK;
    if (!rc) rc = gpt2_session_new(m, &s, err);
    for (int r = 0; !rc && r < reps; r++) {
        rc = gpt2_session_begin(s, 1, P + N, err);
        double t0 = now_s();
        if (!rc) rc = gpt2_session_step(s, prompt, 1, P, logits, err);
        double t1 = now_s();
        for (int i = 0; !rc && i < N; i++) {
            int32_t tok = argmax(logits, m->cfg.vocab_size);
            rc = gpt2_session_step(s, &tok, 1, 1, logits, err);
        }
        double t2 = now_s();
        tp[r] = t1 - t0;
        td[r] = t2 - t1;
    }
    if (!rc) {
        out->prefill_tps = (double)P / median(tp, reps);
        out->decode_tps = (double)N / median(td, reps);
    }
    gpt2_session_free(s);
    free(logits);
    free(tp);
    free(td);
    return rc;
}

/* Gives every lora_B a small random value, so that the adapter changes the output and merging it
 * is real work (fresh adapters have B = 0). */
static void randomize_lora_B(gpt2_model *m, lorac_rng *rng) {
    for (size_t i = 0; i < m->reg.n; i++) {
        lora_param *p = &m->reg.params[i];
        size_t len = strlen(p->name);
        if (len >= 6 && !strcmp(p->name + len - 6, "lora_B"))
            for (size_t j = 0; j < p->numel; j++) p->data[j] = 0.02f * lorac_rng_normal(rng);
    }
}

static int bench_generate(int argc, char **argv) {
    bench_opts o;
    bench_opts_default(&o);
    long P = 128, N = 32, reps = 3;
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
        else {
            generate_usage(stderr);
            cli_error("bench generate: unknown option '%s'", f);
            return 2;
        }
    }
    if (P < 1 || N < 1 || reps < 1 || P + N > (1L << 20))
        return cli_error("bench generate: --prompt, --new and --reps must be >= 1");
    if (bench_opts_finish(&o, (int)(P + N))) return 1;
    o.lora.dropout = 0.0f; /* the unmerged adapter runs in training mode: no dropout there */

    lorac_err err = {0};
    gpt2_model m;
    memset(&m, 0, sizeof m);
    int32_t *prompt = malloc((size_t)P * sizeof *prompt);
    double *tsw = calloc((size_t)reps, sizeof(double));
    bench_speed base = {0, 0}, merged = {0, 0}, unmerged = {0, 0};
    double switch_ms = 0.0;
    lorac_rng rng;
    lorac_rng_seed(&rng, (uint64_t)o.seed + 3);
    int rc = !prompt || !tsw;
    if (rc) cli_error("bench generate: out of memory");
    for (long i = 0; !rc && i < P; i++) prompt[i] = (int32_t)(lorac_rng_u64(&rng) % (uint64_t)o.cfg.vocab_size);
    if (!rc) rc = gpt2_model_random(&o.cfg, (uint64_t)o.seed, &m, &err);
    if (!rc) rc = bench_decode(&m, prompt, (int)P, (int)N, (int)reps, &base, &err);
    if (!rc) rc = gpt2_model_add_lora(&m, &o.lora, (uint64_t)o.seed + 1, &err);
    if (!rc) {
        rc = gpt2_model_train_mode(&m, 1, &err); /* B is changed only while unmerged */
        randomize_lora_B(&m, &rng);
    }
    if (!rc) rc = gpt2_model_train_mode(&m, 0, &err);
    if (!rc) rc = bench_decode(&m, prompt, (int)P, (int)N, (int)reps, &merged, &err);
    if (!rc) rc = gpt2_model_train_mode(&m, 1, &err);
    if (!rc) rc = bench_decode(&m, prompt, (int)P, (int)N, (int)reps, &unmerged, &err);
    for (long r = 0; !rc && r < reps; r++) {
        double t0 = now_s();
        rc = gpt2_model_train_mode(&m, 0, &err);
        if (!rc) rc = gpt2_model_train_mode(&m, 1, &err);
        tsw[r] = now_s() - t0;
    }
    if (rc) {
        if (prompt && tsw) cli_fail(&err);
    } else {
        switch_ms = 1e3 * median(tsw, (int)reps);
        double rss = peak_rss_mb();
        if (o.json) {
            printf("{\"prompt\": %ld, \"new\": %ld, \"reps\": %ld, ", P, N, reps);
            printf("\"base\": {\"prefill_tokens_per_s\": %.2f, \"decode_tokens_per_s\": %.2f}, ", base.prefill_tps,
                   base.decode_tps);
            printf("\"merged\": {\"prefill_tokens_per_s\": %.2f, \"decode_tokens_per_s\": %.2f}, ", merged.prefill_tps,
                   merged.decode_tps);
            printf("\"unmerged\": {\"prefill_tokens_per_s\": %.2f, \"decode_tokens_per_s\": %.2f}, ", unmerged.prefill_tps,
                   unmerged.decode_tps);
            printf("\"switch_ms\": %.3f, \"peak_rss_mb\": %.1f, ", switch_ms, rss);
            print_env_json();
            printf("}\n");
        } else {
            bench_shape_human(&o);
            print_env_human();
            printf("prompt %ld tokens, %ld new tokens (greedy, 1 sequence), median of %ld\n", P, N, reps);
            printf("%-10s %16s %16s\n", "model", "prefill tok/s", "decode tok/s");
            printf("%-10s %16.1f %16.1f\n", "base", base.prefill_tps, base.decode_tps);
            printf("%-10s %16.1f %16.1f\n", "merged", merged.prefill_tps, merged.decode_tps);
            printf("%-10s %16.1f %16.1f\n", "unmerged", unmerged.prefill_tps, unmerged.decode_tps);
            printf("adapter switch (merge + unmerge, every layer): %.3f ms | peak RSS %.1f MiB\n", switch_ms, rss);
        }
    }
    gpt2_model_free(&m);
    free(prompt);
    free(tsw);
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
