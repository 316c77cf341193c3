/* test_attention_cached.c — op_attention_cached_forward (attention of new queries against a KV
 * cache, ragged, grouped-query):
 *   1. against a double-precision reference: |diff| <= 1e-5 + 1e-5·|ref|, for head sizes taking the
 *      SIMD kernels (64, 32, 128) and the plain C loop (24), GQA groups 1 and 3, sequences reading
 *      other slots (slot map) at different offsets, one to several queries each;
 *   2. the same bits at every kernel level up to the CPU's (lorac_isa_set_cap) and on 1 and 2
 *      threads (the op's stated lane model);
 *   3. a sequence's output does not depend on the other sequences of the call. */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "lorac/base.h"
#include "lorac/ops.h"

enum { NSLOT = 4, CAP = 40, S = 3 };

static float frand(uint64_t *st) {
    *st = *st * 6364136223846793005ULL + 1442695040888963407ULL;
    return (float)((*st >> 40) & 0xffffff) / 16777216.0f * 2.0f - 1.0f;
}

static void reference(double *out, const float *q, const float *kc, const float *vc, int Tq, const int *slot,
                      const int *off, int NH, int NKV, int HS) {
    const int C = NH * HS, CK = NKV * HS;
    double sc[CAP];
    for (int s = 0; s < S; s++)
        for (int h = 0; h < NH; h++)
            for (int i = 0; i < Tq; i++) {
                const float *qi = q + ((size_t)s * Tq + i) * C + h * HS;
                const size_t base = (size_t)slot[s] * CAP * CK + (size_t)(h / (NH / NKV)) * HS;
                const int n = off[s] + i + 1;
                double mx = -INFINITY, sum = 0;
                for (int j = 0; j < n; j++) {
                    double d = 0;
                    for (int e = 0; e < HS; e++) d += (double)qi[e] * kc[base + (size_t)j * CK + e];
                    sc[j] = d / sqrt((double)HS);
                    mx = sc[j] > mx ? sc[j] : mx;
                }
                for (int j = 0; j < n; j++) sum += (sc[j] = exp(sc[j] - mx));
                double *o = out + ((size_t)s * Tq + i) * C + h * HS;
                for (int e = 0; e < HS; e++) {
                    double a = 0;
                    for (int j = 0; j < n; j++) a += sc[j] / sum * vc[base + (size_t)j * CK + e];
                    o[e] = a;
                }
            }
}

static void one_case(int HS, int NH, int NKV, int Tq) {
    const int C = NH * HS, CK = NKV * HS, slot[S] = {2, 0, 3}, off[S] = {CAP - Tq - 3, 0, 17};
    const size_t nc = (size_t)NSLOT * CAP * CK, nq = (size_t)S * Tq * C;
    float *kc = malloc(nc * sizeof *kc), *vc = malloc(nc * sizeof *vc), *q = malloc(nq * sizeof *q);
    float *out = malloc(nq * sizeof *out), *ref_bits = malloc(nq * sizeof *out), *solo = malloc(nq * sizeof *out);
    float *scratch = malloc((size_t)S * NH * CAP * sizeof *scratch);
    double *ref = malloc(nq * sizeof *ref);
    uint64_t st = (uint64_t)HS * 1000 + NH * 10 + Tq;
    for (size_t i = 0; i < nc; i++) kc[i] = 2.0f * frand(&st), vc[i] = frand(&st);
    for (size_t i = 0; i < nq; i++) q[i] = 2.0f * frand(&st);
    reference(ref, q, kc, vc, Tq, slot, off, NH, NKV, HS);

    const lorac_isa top = lorac_isa_detected();
    int first = 1;
    for (int l = LORAC_ISA_GENERIC; l <= (int)top; l++)
        for (int th = 1; th <= 2; th++) {
            lorac_isa_set_cap((lorac_isa)l);
            omp_set_num_threads(th);
            memset(out, 0, nq * sizeof *out);
            op_attention_cached_forward(out, q, kc, vc, S, Tq, slot, off, CAP, NH, NKV, HS, scratch);
            if (first) {
                double worst = 0;
                for (size_t i = 0; i < nq; i++) {
                    const double d = fabs(out[i] - ref[i]) / (1e-5 + 1e-5 * fabs(ref[i]));
                    worst = d > worst ? d : worst;
                }
                CHECK(worst <= 1.0, "HS %d NH %d NKV %d Tq %d: %.3g of the tolerance vs float64", HS, NH, NKV, Tq, worst);
                memcpy(ref_bits, out, nq * sizeof *out);
                first = 0;
            } else {
                CHECK(!memcmp(out, ref_bits, nq * sizeof *out), "HS %d NH %d Tq %d: level %s, %d threads: other bits",
                      HS, NH, Tq, lorac_isa_name((lorac_isa)l), th);
            }
        }
    lorac_isa_set_cap(top);
    /* sequence 1 alone (its own slot and offset) gives the same bits as beside the others */
    op_attention_cached_forward(solo, q + (size_t)Tq * C, kc, vc, 1, Tq, &slot[1], &off[1], CAP, NH, NKV, HS, scratch);
    CHECK(!memcmp(solo, ref_bits + (size_t)Tq * C, (size_t)Tq * C * sizeof *out), "HS %d: a sequence alone differs", HS);
    free(kc), free(vc), free(q), free(out), free(ref_bits), free(solo), free(scratch), free(ref);
}

int main(void) {
    one_case(64, 9, 3, 1);  /* SmolLM2's heads, a decode step */
    one_case(64, 4, 4, 3);  /* a prefill chunk, no grouping */
    one_case(32, 6, 2, 1);  /* the narrowest SIMD head */
    one_case(128, 4, 2, 2); /* a Llama-7B-sized head */
    one_case(24, 4, 2, 2);  /* not a multiple of 16: the plain C loop at every level */
    return check_summary();
}
