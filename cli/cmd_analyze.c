/* lorac analyze: Section 7 of the LoRA paper on one adapter, or two of the same base: spectra of
 * ΔW, the subspace similarity φ (Eq. 4), ΔW against W (Table 7); a table, --json, SVG figures.
 * The math is in src/lora/analyze.c (lorac/analyze.h); this file reads the inputs, and only the
 * section marked "model layer" below knows how a base model is opened. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* ---------------------------------------------------------------- model layer
 * The only code of this command that uses the model API: W for a module, and a GGUF adapter read
 * as a PEFT adapter. */

typedef struct base_ctx {
    const char *path; /* --model, or NULL */
    model *m;
    lorac_blocks bufs; /* the matrices handed out (analyze_weight borrows them) */
} base_ctx;

/* analyze_weight_fn (module NULL: close). A linear map's W as f32 (out, in), dequantized when the
 * base is quantized; an embedding's (vocab, dim) f32 table from the registry. */
static int base_weight(void *ctx, const char *module, int embedding, analyze_weight *w, lorac_err *err) {
    base_ctx *b = ctx;
    if (!module) {
        model_free(b->m);
        b->m = NULL;
        lorac_blocks_free(&b->bufs);
        return LORAC_OK;
    }
    if (!b->path) {
        snprintf(w->why, sizeof w->why, "no --model given");
        return LORAC_OK;
    }
    model_load_opts lo = {0, 0, 1};
    int rc = b->m ? LORAC_OK : model_load(b->path, &lo, &b->m, err);
    if (rc) return rc;
    if (embedding) {
        char name[300];
        snprintf(name, sizeof name, "%s.weight", module);
        const lora_param *p = lora_registry_find(model_registry(b->m), name);
        if (!p || p->ndim != 2) {
            snprintf(w->why, sizeof w->why, "quantized base");
            return LORAC_OK;
        }
        w->data = p->data, w->rows = p->shape[0], w->cols = p->shape[1], w->layout = ANALYZE_IN_OUT;
        return LORAC_OK;
    }
    float *d = NULL, *keep = NULL;
    int rows = 0, cols = 0;
    if ((rc = model_linear_f32(b->m, module, &d, &rows, &cols, err)))
        return rc == LORAC_ENOTFOUND ? lorac_fail(err, rc, "%s: the base has no matrix %s (an adapter for another model?)",
                                                  b->path, module)
                                     : rc;
    if ((keep = lorac_blocks_alloc(&b->bufs, (size_t)rows * cols * sizeof(float)))) /* lives until the close */
        memcpy(keep, d, (size_t)rows * cols * sizeof(float));
    free(d);
    if (!keep) return lorac_fail(err, LORAC_ENOMEM, "out of memory");
    w->data = keep, w->rows = rows, w->cols = cols, w->layout = ANALYZE_OUT_IN;
    return LORAC_OK;
}

/* A GGUF LoRA adapter (Llama family) as a PEFT adapter, read through its base. */
static int gguf_adapter_read(const char *model_path, const char *path, peft_adapter **out, lorac_err *err) {
    *out = NULL;
    if (!model_path) return lorac_fail(err, LORAC_EINVAL, "%s: a GGUF adapter is read through its base: give --model", path);
    model *m = NULL;
    model_load_opts lo = {0, 0, 1};
    int rc = model_load(model_path, &lo, &m, err);
    if (!rc) rc = model_adapter_read(m, path, out, NULL, 0, err);
    model_free(m);
    return rc;
}

/* ---------------------------------------------------------------- the table */

/* A number of the table, or "-" (NaN: W not available). */
static const char *num(char *buf, size_t size, double v) {
    if (isnan(v)) snprintf(buf, size, "-");
    else snprintf(buf, size, "%.4g", v);
    return buf;
}

static void print_table(const analyze_report *r, const char *const *labels) {
    printf("%-40s %-3s %4s %9s %7s %7s %9s %9s %9s %9s %9s %7s\n", "module", "ad", "r", "sigma_1", "eff.rk",
           "top-1 E", "||dW||_F", "||W||_F", "|UtWVt|", "W top-r", "random", "amplif");
    for (size_t i = 0; i < r->n; i++) {
        const analyze_module *m = &r->mods[i];
        char name[260];
        snprintf(name, sizeof name, "%s%s%c", m->name, m->slice ? "." : "", m->slice);
        for (int a = 0; a < (r->two ? 2 : 1); a++) {
            const analyze_delta *d = &m->d[a];
            char b[5][32];
            printf("%-40s %-3d %4d %9.4g %7.3f %7.4f %9.4g %9s %9s %9s %9s %7s\n", a ? "" : name, a + 1, d->rank,
                   d->n_sv ? d->sv[0] : 0.0, d->effective_rank, d->n_sv ? d->energy[0] : 0.0, d->norm_delta,
                   num(b[0], 32, m->norm_weight), num(b[1], 32, d->proj_delta), num(b[2], 32, d->proj_weight),
                   num(b[3], 32, d->proj_random), num(b[4], 32, d->amplification));
        }
        if (!m->has_weight) printf("%-40s W not available (%s)\n", "", m->weight_why);
    }
    if (!r->two) return;
    printf("\nsubspace similarity phi(A1, A2, i, j) (Section 7.2, Eq. 4), 1 = %s, 2 = %s; random = Gaussian baseline\n",
           labels[0], labels[1]);
    printf("%-40s %7s %7s %9s %9s %9s %9s\n", "module", "r1", "r2", "phi(1,1)", "random", "phi(k,k)", "random");
    for (size_t i = 0; i < r->n; i++) {
        const analyze_module *m = &r->mods[i];
        int k = m->phi_rows < m->phi_cols ? m->phi_rows : m->phi_cols;
        size_t kk = (size_t)(k - 1) * m->phi_cols + (k - 1);
        char name[260];
        snprintf(name, sizeof name, "%s%s%c", m->name, m->slice ? "." : "", m->slice);
        printf("%-40s %7d %7d %9.4f %9.4f %9.4f %9.4f\n", name, m->d[0].rank, m->d[1].rank, m->phi[0],
               m->phi_random[0], m->phi[kk], m->phi_random[kk]);
    }
    printf("(k = min(r1, r2); the full heatmaps are in --json and the --out figures)\n");
}

/* ---------------------------------------------------------------- the command */

static int usage(void) {
    printf("usage: lorac analyze --adapter DIR [--adapter DIR2] [--model BASE] [--targets LIST] [--layers LIST]\n"
           "                     [--out FIGDIR] [--json] [--seed N] [--threads N]\n"
           "Section 7 of the LoRA paper (Hu et al. 2021) on a PEFT adapter (or a GGUF adapter, with --model):\n"
           "  spectrum   singular values of dW = s*B*A per module (from QR of B and A^T, never the full matrix),\n"
           "             effective rank exp(H(p)), p_i = sigma_i / sum(sigma), and the energy of the top k\n"
           "             (sum of the top-k sigma^2 over sum sigma^2)\n"
           "  phi        with two adapters: subspace similarity (Section 7.2, Eq. 4)\n"
           "             phi(A1,A2,i,j) = ||U1_i^T U2_j||_F^2 / min(i,j), U the right-singular vectors of A\n"
           "             (phi_b in --json: left-singular vectors of B, footnote 7), i <= r1, j <= r2, beside the\n"
           "             same for two random Gaussian matrices (Figure 4's baseline)\n"
           "  dW vs W    with --model (Section 7.3, Table 7): ||U^T W V^T||_F for U, V the top-r singular vectors\n"
           "             of dW, of W and of a random matrix; amplification = ||dW||_F / ||U^T W V^T||_F (dW's U, V)\n"
           "  --targets  modules whose name ends with an item (c_attn, q_proj, attn.c_proj; q, v for lorac's split)\n"
           "  --layers   layer numbers: 0,2,4-7\n"
           "  --out      SVG figures (spectra, phi heatmaps) and analysis.json into FIGDIR (replaced as a whole)\n"
           "  --json     all numbers as one JSON object on stdout instead of the table\n"
           "  --seed     for the random baselines (default 0)\n"
           "  --threads  OpenBLAS/LAPACK threads (default 1: the matrices are small; 0 = all cores)\n"
           "docs/analysis.md describes every number.\n");
    return 0;
}

static int read_adapter(const char *model_path, const char *path, peft_adapter **out, lorac_err *err) {
    if (lorac_has_suffix(path, ".gguf")) return gguf_adapter_read(model_path, path, out, err);
    char warn[4096] = "";
    int rc = peft_adapter_read(path, out, warn, sizeof warn, err);
    if (!rc && warn[0]) fprintf(stderr, "lorac: warning: %s", warn);
    return rc;
}

/* The figures and analysis.json into FIGDIR, built under a temporary name and renamed into place. */
static int write_outdir(const analyze_report *r, const char *dir, const char *const *labels, lorac_err *err) {
    lorac_outdir od;
    int rc = lorac_outdir_open(&od, dir, err);
    if (rc) return rc;
    rc = analyze_write_svgs(r, od.tmp, labels, err);
    char path[4200];
    snprintf(path, sizeof path, "%s/analysis.json", od.tmp);
    lorac_out o;
    if (!rc && !(rc = lorac_out_open(&o, path, err))) {
        rc = analyze_write_json(r, o.f, err);
        if (rc) lorac_out_abort(&o);
        else rc = lorac_out_commit(&o, err);
    }
    if (!rc) rc = lorac_outdir_commit(&od, err);
    else lorac_outdir_abort(&od);
    return rc;
}

int cmd_analyze(int argc, char **argv) {
    const char *model_path = NULL, *paths[2] = {NULL, NULL}, *figdir = NULL;
    analyze_opts o = {NULL, NULL, 0};
    int n = 0, json = 0;
    long seed = 0, threads = 1;
    for (int i = 1; i < argc; i++) {
        const char *f = argv[i];
        if (!strcmp(f, "--help") || !strcmp(f, "-h")) return usage();
        else if (!strcmp(f, "--adapter")) {
            if (n == 2) return cli_error("analyze: at most two --adapter");
            if (cli_opt_str(argc, argv, &i, &paths[n++])) return 2;
        } else if (!strcmp(f, "--model")) { if (cli_opt_str(argc, argv, &i, &model_path)) return 2; }
        else if (!strcmp(f, "--targets")) { if (cli_opt_str(argc, argv, &i, &o.targets)) return 2; }
        else if (!strcmp(f, "--layers")) { if (cli_opt_str(argc, argv, &i, &o.layers)) return 2; }
        else if (!strcmp(f, "--out")) { if (cli_opt_str(argc, argv, &i, &figdir)) return 2; }
        else if (!strcmp(f, "--seed")) { if (cli_opt_int(argc, argv, &i, &seed)) return 2; }
        else if (!strcmp(f, "--threads")) { if (cli_opt_int(argc, argv, &i, &threads)) return 2; }
        else if (!strcmp(f, "--json")) json = 1;
        else {
            cli_error("analyze: unknown option '%s' (see `lorac analyze --help`)", f);
            return 2;
        }
    }
    if (!n) {
        cli_error("analyze: --adapter is required (see `lorac analyze --help`)");
        return 2;
    }
    if (threads < 0 || threads > 1024) return cli_error("analyze: --threads takes 0 (all cores) .. 1024");
    lorac_set_threads((int)threads);
    o.seed = (uint64_t)seed;
    lorac_err err = {0};
    peft_adapter *ads[2] = {NULL, NULL};
    analyze_report *r = NULL;
    base_ctx base = {model_path, NULL, {0}};
    int rc = LORAC_OK;
    for (int i = 0; i < n && !rc; i++) rc = read_adapter(model_path, paths[i], &ads[i], &err);
    if (!rc) rc = analyze_run(ads[0], ads[1], &o, base_weight, &base, &r, &err);
    base_weight(&base, NULL, 0, NULL, NULL);
    peft_adapter_free(ads[0]);
    peft_adapter_free(ads[1]);
    for (int i = 0; !rc && i < n; i++)
        if (r->ignored[i])
            fprintf(stderr, "lorac: note: %s: %zu tensor(s) that are not LoRA A/B (trained biases, modules_to_save) "
                    "are not analysed\n", paths[i], r->ignored[i]);
    if (!rc && figdir) rc = write_outdir(r, figdir, paths, &err);
    if (!rc && json) rc = analyze_write_json(r, stdout, &err);
    else if (!rc) print_table(r, paths);
    if (!rc && figdir) fprintf(stderr, "figures written to %s\n", figdir);
    analyze_report_free(r);
    return rc ? cli_fail(&err) : 0;
}
