/* lorac combine: PEFT's add_weighted_adapter (cat, svd, linear) on adapter directories; writes a
 * new adapter directory. */
#include <stdlib.h>
#include <string.h>

#include "cli.h"

#define COMBINE_MAX 64

int cmd_combine(int argc, char **argv) {
    const char *specs[COMBINE_MAX], *out = NULL, *mode_s = "cat";
    int n = 0;
    long rank = 0;
    for (int i = 1; i < argc; i++) {
        const char *f = argv[i];
        if (!strcmp(f, "--help") || !strcmp(f, "-h")) {
            printf("usage: lorac combine --adapter DIR[:WEIGHT] --adapter DIR[:WEIGHT] ... --mode cat|svd|linear "
                   "[--rank R] --out DIR\n"
                   "  cat     exact: A = [w_i*s_i*A_i] stacked, B = [B_i] side by side (ranks add)\n"
                   "  svd     the exact sum of w_i*s_i*B_i*A_i truncated to --rank (default: the largest input\n"
                   "          rank) by an SVD; prints the fraction of the energy (sum of squared singular values) kept\n"
                   "  linear  PEFT's rule A = sum sqrt(w_i*s_i)*A_i, B = sum sqrt(w_i*s_i)*B_i: not the sum of the\n"
                   "          deltas (cross terms), equal ranks and non-negative weights only\n"
                   "WEIGHT defaults to 1. The result has scaling 1 (lora_alpha = r), as PEFT's.\n");
            return 0;
        } else if (!strcmp(f, "--adapter")) {
            if (n == COMBINE_MAX) return cli_error("combine: at most %d --adapter", COMBINE_MAX);
            if (cli_opt_str(argc, argv, &i, &specs[n++])) return 2;
        } else if (!strcmp(f, "--mode")) {
            if (cli_opt_str(argc, argv, &i, &mode_s)) return 2;
        } else if (!strcmp(f, "--rank")) {
            if (cli_opt_int(argc, argv, &i, &rank)) return 2;
        } else if (!strcmp(f, "--out")) {
            if (cli_opt_str(argc, argv, &i, &out)) return 2;
        } else {
            cli_error("combine: unknown option '%s' (see `lorac combine --help`)", f);
            return 2;
        }
    }
    if (!n || !out) {
        cli_error("combine: --adapter (one or more) and --out are required");
        return 2;
    }
    int mode = peft_combine_mode_parse(mode_s);
    if (mode < 0) return cli_error("combine: --mode %s is not cat, svd or linear", mode_s);
    if (rank < 0 || rank > 65536 || (rank && mode != PEFT_COMBINE_SVD))
        return cli_error("combine: --rank takes 1..65536 and applies to --mode svd only");
    lorac_err err = {0};
    peft_adapter *ads[COMBINE_MAX] = {0}, *res = NULL;
    float w[COMBINE_MAX];
    char dir[4096], warn[4096];
    int rc = 0;
    for (int i = 0; i < n && !rc; i++) rc = peft_adapter_spec_parse(specs[i], dir, sizeof dir, &w[i], &err);
    for (int i = 0; i < n && !rc; i++) {
        peft_adapter_spec_parse(specs[i], dir, sizeof dir, &w[i], NULL);
        rc = peft_adapter_read(dir, &ads[i], warn, sizeof warn, &err);
        if (!rc && warn[0]) fprintf(stderr, "lorac: warning: %s", warn);
    }
    double energy = 1.0;
    if (!rc) rc = peft_adapter_combine(ads, w, n, (peft_combine_mode)mode, (int)rank, &res, &energy, &err);
    if (!rc) rc = peft_adapter_write(res, out, &err);
    for (int i = 0; i < n; i++) peft_adapter_free(ads[i]);
    if (rc) return cli_fail(&err);
    fprintf(stderr, "combined %d adapter(s) with %s: rank %d", n, mode_s, res->cfg.r);
    if (mode == PEFT_COMBINE_SVD) fprintf(stderr, ", energy kept %.6f", energy);
    fprintf(stderr, "; written to %s\n", out);
    if (mode == PEFT_COMBINE_SVD) printf("{\"energy_kept\": %.9g, \"rank\": %d}\n", energy, res->cfg.r);
    peft_adapter_free(res);
    return 0;
}
