/* Block formats against the gguf Python package (tests/fixtures/gguf/quants.gguf, written by
 * tools/gguf_fixtures.py): for every supported type, dequantization must be bit-identical to
 * gguf.quants.dequantize (which follows ggml's dequantize_row_*), from any source alignment and
 * for any run of whole rows; quant_row_dot must agree with a float64 dot of the reference to 1e-6
 * relative; and for the types lorac quantizes, quantize(T.src) must equal ggml's reference bytes
 * (gguf.quants' for Q8_0/Q4_0/Q4_1/F16/BF16, which the fixture script checks against ggml's C code,
 * and ggml's C quantize_row_q4_K_ref / q6_K_ref for Q4_K / Q6_K). */
#include "check.h"
#include "lorac.h"

#include <stdlib.h>
#include <string.h>

#define FIXTURE LORAC_SOURCE_DIR "/tests/fixtures/gguf/quants.gguf"

static const int TYPES[] = {QUANT_F32, QUANT_F16, QUANT_BF16, QUANT_Q8_0, QUANT_Q4_0, QUANT_Q4_1,
                            QUANT_Q5_0, QUANT_Q5_1, QUANT_Q4_K, QUANT_Q5_K, QUANT_Q6_K};

static const gguf_tensor *find(const gguf_file *f, const char *type, const char *suffix) {
    char name[64];
    snprintf(name, sizeof name, "%s.%s", type, suffix);
    return gguf_find_tensor(f, name);
}

/* Bitwise equality of two float arrays (tells -0 from 0); reports the first difference. */
static void check_bits(const float *got, const float *want, size_t n, const char *what) {
    for (size_t i = 0; i < n; i++) {
        if (memcmp(&got[i], &want[i], sizeof(float))) {
            CHECK(0, "%s: element %zu of %zu: got %.9g want %.9g", what, i, n, got[i], want[i]);
            return;
        }
    }
    CHECK(1, "%s", what);
}

static void check_type(const gguf_file *f, int type) {
    const char *tn = quant_type_name(type);
    const gguf_tensor *q = find(f, tn, "q"), *deq = find(f, tn, "deq"), *src = find(f, tn, "src");
    CHECK(q && deq, "%s: fixture tensors missing", tn);
    if (!q || !deq) return;
    CHECK(q->type == type && deq->type == QUANT_F32 && q->n_elem == deq->n_elem, "%s: fixture shapes", tn);
    size_t n = q->n_elem, cols = (size_t)q->ne[0], rows = n / cols, row_bytes = gguf_tensor_row_bytes(q);
    float *got = malloc(n * sizeof *got), *want = malloc(n * sizeof *want);
    uint8_t *shifted = malloc(q->nbytes + 1);
    lorac_err err = {0};
    CHECK(gguf_tensor_to_f32(f, deq, want, &err) == LORAC_OK, "%s", err.msg);
    CHECK(gguf_tensor_to_f32(f, q, got, &err) == LORAC_OK, "%s", err.msg);
    char what[96];
    snprintf(what, sizeof what, "%s dequantize vs gguf.quants", tn);
    check_bits(got, want, n, what);

    /* from an odd address, and a tile of rows 1..rows-1 on its own */
    memcpy(shifted + 1, q->data, q->nbytes);
    memset(got, 0, n * sizeof *got);
    CHECK(quant_row_to_f32(type, shifted + 1, got, n) == LORAC_OK, "%s unaligned", tn);
    snprintf(what, sizeof what, "%s dequantize from an odd address", tn);
    check_bits(got, want, n, what);
    memset(got, 0, n * sizeof *got);
    CHECK(quant_row_to_f32(type, q->data + row_bytes, got, (rows - 1) * cols) == LORAC_OK, "%s rows", tn);
    snprintf(what, sizeof what, "%s dequantize rows 1.. as one tile", tn);
    check_bits(got, want + cols, (rows - 1) * cols, what);

    /* fused dot per row against a float64 dot of the reference values */
    lorac_rng rng;
    lorac_rng_seed(&rng, 7);
    float *x = malloc(cols * sizeof *x);
    for (size_t j = 0; j < cols; j++) x[j] = lorac_rng_normal(&rng);
    for (size_t r = 0; r < rows; r++) {
        double ref = 0.0, mag = 0.0;
        for (size_t j = 0; j < cols; j++) {
            ref += (double)want[r * cols + j] * x[j];
            mag += fabs((double)want[r * cols + j] * x[j]);
        }
        float dot = 0.0f;
        CHECK(quant_row_dot(type, q->data + r * row_bytes, x, cols, &dot) == LORAC_OK, "%s dot", tn);
        snprintf(what, sizeof what, "%s quant_row_dot row %zu", tn, r);
        CHECK_CLOSE(dot, ref, 1e-6 * mag + 1e-30, 0.0, what);
    }
    free(x);

    /* quantize: byte-identical to ggml's quantize_row_*_ref, as gguf.quants.quantize (T.q) or, for
     * the K-quants, ggml's C code itself (T.qsrc) produced it from T.src */
    CHECK(quant_can_quantize(type) == (src != NULL), "%s: quantizer present iff the fixture has %s.src", tn, tn);
    const gguf_tensor *qref = find(f, tn, "qsrc") ? find(f, tn, "qsrc") : q;
    if (src && src->n_elem == qref->n_elem) {
        size_t m = src->n_elem;
        float *s = malloc(m * sizeof *s);
        uint8_t *bytes = malloc(qref->nbytes);
        CHECK(gguf_tensor_to_f32(f, src, s, &err) == LORAC_OK, "%s", err.msg);
        CHECK(quant_row_from_f32(type, s, bytes, m) == LORAC_OK, "%s quantize", tn);
        size_t diff = qref->nbytes;
        for (size_t i = 0; i < qref->nbytes && diff == qref->nbytes; i++)
            if (bytes[i] != qref->data[i]) diff = i;
        CHECK(diff == qref->nbytes, "%s quantize vs ggml's reference: first difference at byte %zu (block %zu)", tn, diff,
              diff / quant_type_size(type));
        free(s);
        free(bytes);
    } else {
        CHECK(src == NULL, "%s.src and its quantized bytes differ in size", tn);
    }
    free(got);
    free(want);
    free(shifted);
}

static void check_table(void) {
    size_t bytes = 0;
    CHECK(quant_row_size(QUANT_Q4_K, 512, &bytes) == LORAC_OK && bytes == 288, "Q4_K row of 512: %zu", bytes);
    CHECK(quant_row_size(QUANT_Q6_K, 256, &bytes) == LORAC_OK && bytes == 210, "Q6_K row of 256: %zu", bytes);
    CHECK(quant_row_size(QUANT_Q8_0, 40, &bytes) == LORAC_EINVAL, "Q8_0 row of 40 is not whole blocks");
    CHECK(quant_row_size(QUANT_F32, SIZE_MAX / 2, &bytes) == LORAC_ENOMEM, "overflow is caught");
    CHECK(quant_type_name(4) == NULL && quant_type_name(-1) == NULL && quant_type_name(QUANT_TYPE_LIMIT) == NULL,
          "4, -1 and the limit are no types");
    CHECK(quant_block_size(4) == 0 && quant_type_size(99) == 0, "unknown types have no sizes");
    CHECK(!strcmp(quant_type_name(QUANT_BF16), "BF16") && !strcmp(quant_type_name(QUANT_IQ4_XS), "IQ4_XS"), "names");
    float v[32] = {0};
    uint8_t b[256];
    CHECK(quant_row_to_f32(QUANT_IQ2_XS, b, v, 256) == LORAC_EUNSUPPORTED, "IQ2_XS has no dequantizer");
    CHECK(quant_row_to_f32(QUANT_Q8_0, b, v, 31) == LORAC_EINVAL, "partial block");
    CHECK(quant_row_from_f32(QUANT_Q5_K, v, b, 256) == LORAC_EUNSUPPORTED, "no Q5_K quantizer");
    CHECK(quant_row_from_f32(QUANT_Q8_0, v, b, 16) == LORAC_EINVAL, "partial block");
}

/* Every one of the 65,536 F16 and BF16 bit patterns (zeros, subnormals, inf, NaN included)
 * dequantizes to exactly lorac_f16_to_f32 / lorac_bf16_to_f32's value (the row functions take a
 * fast path for normal numbers). */
static void check_all_halves(void) {
    uint8_t *raw = malloc(2 * 65536);
    float *got = malloc(65536 * sizeof *got), *want = malloc(65536 * sizeof *want);
    for (int t = 0; t < 2; t++) {
        for (uint32_t h = 0; h < 65536; h++) {
            raw[2 * h] = (uint8_t)h;
            raw[2 * h + 1] = (uint8_t)(h >> 8);
            want[h] = t ? lorac_bf16_to_f32((uint16_t)h) : lorac_f16_to_f32((uint16_t)h);
        }
        CHECK(quant_row_to_f32(t ? QUANT_BF16 : QUANT_F16, raw, got, 65536) == LORAC_OK, "row");
        check_bits(got, want, 65536, t ? "every BF16 pattern" : "every F16 pattern");
    }
    free(raw);
    free(got);
    free(want);
}

int main(void) {
    check_table();
    check_all_halves();
    gguf_file f;
    lorac_err err = {0};
    if (gguf_open(FIXTURE, &f, &err)) {
        fprintf(stderr, "FAIL: %s\n", err.msg);
        return 1;
    }
    for (size_t i = 0; i < sizeof TYPES / sizeof TYPES[0]; i++) {
        CHECK(quant_can_dequantize(TYPES[i]), "%s dequantizable", quant_type_name(TYPES[i]));
        check_type(&f, TYPES[i]);
    }
    gguf_close(&f);
    return check_summary();
}
