/* check.h — the tiny test harness every tests/test_*.c uses.
 * A test program runs its checks, then returns check_summary(): 0 all passed, 1 some failed.
 * A test that cannot run here (e.g. ../shared is absent) prints why and returns CHECK_SKIP. */
#ifndef LORAC_CHECK_H
#define LORAC_CHECK_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK_SKIP 77

static int check_passed_, check_failed_;

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (cond) {                                                                                \
            check_passed_++;                                                                       \
        } else {                                                                                   \
            check_failed_++;                                                                       \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);                       \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
        }                                                                                          \
    } while (0)

/* |a-b| <= atol + rtol*|b| */
#define CHECK_CLOSE(a, b, atol, rtol, what)                                                        \
    do {                                                                                           \
        double a_ = (double)(a), b_ = (double)(b);                                                 \
        CHECK(fabs(a_ - b_) <= (atol) + (rtol)*fabs(b_), "%s: got %.9g want %.9g", (what), a_, b_); \
    } while (0)

/* Compares two float arrays; reports the worst element once. Returns 1 if all close. */
static inline int check_arrays_close(const float *got, const float *want, size_t n, double atol,
                                     double rtol, const char *what) {
    size_t worst = 0;
    double worst_excess = 0.0;
    int ok = 1;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - (double)want[i]);
        double lim = atol + rtol * fabs((double)want[i]);
        if (!(d <= lim)) { /* also catches NaN */
            double ex = isnan(d) ? INFINITY : d - lim;
            if (ok || ex > worst_excess) { worst = i; worst_excess = ex; }
            ok = 0;
        }
    }
    if (ok) {
        check_passed_++;
    } else {
        check_failed_++;
        fprintf(stderr, "FAIL %s: element %zu of %zu: got %.9g want %.9g (atol %g rtol %g)\n", what,
                worst, n, got[worst], want[worst], atol, rtol);
    }
    return ok;
}

/* Results of sums that OpenBLAS computes may change bits with the thread count (it splits the work,
 * and with it the order of a reduction, differently; lorac promises the same bits only for the same
 * thread count). Any fp32 evaluation of a sum of K terms, in any order, lies within
 * gamma_K·Σ|terms| of the exact sum, gamma_K = K·u/(1 - K·u), u = 2^-24 (Higham, "Accuracy and
 * Stability of Numerical Algorithms", 2nd ed., §3.1); two evaluations therefore differ by at most
 * 2·gamma_K·mag, mag[i] = Σ|terms| of element i. Checks |a[i] - b[i]| <= that for every element. */
static inline int check_sum_orders(const float *a, const float *b, const double *mag, size_t n, double K,
                                   const char *what) {
    const double u = 1.0 / 16777216.0, gamma = K * u / (1.0 - K * u);
    size_t worst = 0;
    double worst_ratio = 0.0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]), lim = 2.0 * gamma * mag[i];
        double r = d <= lim ? (lim > 0 ? d / lim : 0.0) : INFINITY; /* also catches NaN */
        if (r > worst_ratio) worst_ratio = r, worst = i;
    }
    if (worst_ratio <= 1.0) {
        check_passed_++;
        return 1;
    }
    check_failed_++;
    fprintf(stderr, "FAIL %s: element %zu of %zu: %.9g vs %.9g, more than 2·gamma_%g·%.6g apart\n", what, worst, n,
            a[worst], b[worst], K, mag[worst]);
    return 0;
}

static inline int check_summary(void) {
    printf("%d passed, %d failed\n", check_passed_, check_failed_);
    return check_failed_ ? 1 : 0;
}

/* Path of ../shared/data beside the source tree, or NULL (with a message) if it is absent. */
static inline const char *check_shared_data(const char *why) {
#ifdef LORAC_SOURCE_DIR
    static char path[4096];
    snprintf(path, sizeof path, "%s/../shared/data", LORAC_SOURCE_DIR);
    FILE *f = NULL;
    char probe[4200];
    snprintf(probe, sizeof probe, "%s/README.md", path);
    f = fopen(probe, "r");
    if (f) {
        fclose(f);
        return path;
    }
#endif
    printf("SKIP: ../shared/data is absent, so %s\n", why);
    return NULL;
}

#endif
