/* The GGUF reader and writer:
 *  - metadata of every value type (tests/fixtures/gguf/quants.gguf, written by the gguf Python
 *    package) through the typed getters, with type, range and missing-key errors;
 *  - tensor infos and layout (alignment 64 there, 32 in tiny.gguf);
 *  - malformed input: every file in fixtures/gguf/bad/ fails with a one-line message naming the file
 *    and containing the fragment listed in bad/expected.txt; every truncation and many single-byte
 *    corruptions of tiny.gguf are rejected or read without touching bytes outside the file (ASan);
 *  - the writer: copying quants.gguf key by key and tensor by tensor reproduces the package's file
 *    byte for byte; f32 tensors quantized on write read back as quant_row_from_f32 made them; writer
 *    errors (duplicate key, long name, partial block) leave no file;
 *  - SmolLM2-135M-Instruct.Q4_1.gguf, when present in $LORAC_CACHE or ~/.cache/lorac: every key/value
 *    and every tensor's dequantized sum, sum of squares and first values against
 *    fixtures/gguf/smollm2_ref.txt (the gguf package's reading). */
#include "check.h"
#include "fixture.h"
#include "lorac.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FIX LORAC_SOURCE_DIR "/tests/fixtures/gguf/"

static int one_line(const char *msg) { return msg[0] && !strchr(msg, '\n'); }

static void test_metadata(void) {
    gguf_file f;
    lorac_err err = {0};
    if (gguf_open(FIX "quants.gguf", &f, &err)) {
        CHECK(0, "%s", err.msg);
        return;
    }
    CHECK(f.version == 3 && f.alignment == 64 && f.data_offset % 64 == 0, "v%u align %u", f.version, f.alignment);
    uint32_t u32 = 0;
    int32_t i32 = 0;
    uint64_t u64 = 0;
    float f32 = 0;
    int b = 0;
    const char *s = NULL;
    size_t len = 0;
    CHECK(gguf_get_u32(&f, "meta.u32", GGUF_REQUIRED, &u32, &err) == 0 && u32 == 4000000000u, "u32 %u", u32);
    CHECK(gguf_get_i32(&f, "meta.i32", GGUF_REQUIRED, &i32, &err) == 0 && i32 == -2000000000, "i32 %d", i32);
    CHECK(gguf_get_u32(&f, "meta.u8", GGUF_REQUIRED, &u32, &err) == 0 && u32 == 200, "u8 as u32 %u", u32);
    CHECK(gguf_get_i32(&f, "meta.i8", GGUF_REQUIRED, &i32, &err) == 0 && i32 == -100, "i8 as i32 %d", i32);
    CHECK(gguf_get_i32(&f, "meta.i16", GGUF_REQUIRED, &i32, &err) == 0 && i32 == -30000, "i16 %d", i32);
    CHECK(gguf_get_u32(&f, "meta.u16", GGUF_REQUIRED, &u32, &err) == 0 && u32 == 60000, "u16 %u", u32);
    CHECK(gguf_get_u64(&f, "meta.u64", GGUF_REQUIRED, &u64, &err) == 0 && u64 == (1ull << 40) + 3, "u64");
    CHECK(gguf_kv_int(gguf_find_key(&f, "meta.i64")) == -(1ll << 40) - 3, "i64");
    CHECK(gguf_get_f32(&f, "meta.f32", GGUF_REQUIRED, &f32, &err) == 0 && f32 == 0.1f, "f32 %g", f32);
    CHECK(gguf_kv_float(gguf_find_key(&f, "meta.f64")) == 1e-300, "f64");
    CHECK(gguf_get_bool(&f, "meta.bool", GGUF_REQUIRED, &b, &err) == 0 && b == 1, "bool");
    CHECK(gguf_get_str(&f, "meta.str", GGUF_REQUIRED, &s, &len, &err) == 0 && len == 12 && !memcmp(s, "h\xc3\xa9llo\nworld", 12),
          "str");
    /* wrong types, out-of-range values, missing keys */
    err.code = 0;
    CHECK(gguf_get_u32(&f, "meta.str", GGUF_REQUIRED, &u32, &err) == LORAC_EFORMAT && one_line(err.msg) &&
              strstr(err.msg, "quants.gguf: key 'meta.str' is str, expected u32"), "%s", err.msg);
    CHECK(gguf_get_u32(&f, "meta.i8", GGUF_REQUIRED, &u32, &err) == LORAC_EFORMAT && strstr(err.msg, "does not fit"), "%s",
          err.msg);
    CHECK(gguf_get_i32(&f, "meta.u32", GGUF_REQUIRED, &i32, &err) == LORAC_EFORMAT, "4e9 does not fit i32");
    CHECK(gguf_get_f32(&f, "meta.u32", GGUF_REQUIRED, &f32, &err) == LORAC_EFORMAT, "an integer is no f32");
    CHECK(gguf_get_bool(&f, "meta.u8", GGUF_REQUIRED, &b, &err) == LORAC_EFORMAT, "u8 is no bool");
    CHECK(gguf_get_u32(&f, "no.such", GGUF_REQUIRED, &u32, &err) == LORAC_ENOTFOUND &&
              strstr(err.msg, "missing key 'no.such'"), "%s", err.msg);
    u32 = 77;
    CHECK(gguf_get_u32(&f, "no.such", GGUF_OPTIONAL, &u32, &err) == LORAC_OK && u32 == 77, "optional keeps default");
    f32 = 1.5f;
    CHECK(gguf_get_f32(&f, "meta.f64", GGUF_OPTIONAL, &f32, &err) == LORAC_OK && f32 == 0.0f, "f64 read as f32: %g", f32);
    /* arrays */
    const gguf_kv *a = NULL;
    CHECK(gguf_get_arr(&f, "meta.arr_str", GGUF_REQUIRED, GGUF_STR, &a, &err) == 0 && gguf_arr_len(a) == 4, "arr_str");
    if (a) {
        const char *e2 = gguf_arr_str(a, 2, &len);
        CHECK(len == 5 && !memcmp(e2, "\xc3\xbc" "ber", 5), "arr_str[2]");
        CHECK(gguf_arr_str(a, 1, &len) && len == 0, "empty string element");
        CHECK(gguf_arr_str(a, 3, &len) && len == 100, "arr_str[3] length %zu", len);
        CHECK(gguf_arr_str(a, 4, &len) == NULL, "out of range");
    }
    CHECK(gguf_get_arr(&f, "meta.arr_i32", GGUF_REQUIRED, GGUF_STR, &a, &err) == LORAC_EFORMAT && a == NULL &&
              strstr(err.msg, "array of i32, expected str"), "%s", err.msg);
    CHECK(gguf_get_arr(&f, "meta.arr_i32", GGUF_REQUIRED, GGUF_I32, &a, &err) == 0 && gguf_arr_int(a, 1) == -2, "arr_i32");
    CHECK(gguf_get_arr(&f, "meta.arr_f32", GGUF_REQUIRED, GGUF_F32, &a, &err) == 0 && gguf_arr_float(a, 1) == -1.5, "arr_f32");
    CHECK(gguf_get_arr(&f, "meta.arr_u8", GGUF_REQUIRED, GGUF_VTYPE_LIMIT, &a, &err) == 0 && gguf_arr_int(a, 2) == 9, "arr_u8");
    /* formatting */
    char buf[256];
    gguf_kv_format(gguf_find_key(&f, "meta.arr_i32"), buf, sizeof buf, 8, 80);
    CHECK(!strcmp(buf, "[3] [1, -2, 3]"), "format arr_i32: %s", buf);
    gguf_kv_format(gguf_find_key(&f, "meta.arr_i32"), buf, sizeof buf, 2, 80);
    CHECK(!strcmp(buf, "[3] [1, -2, ...]"), "format arr_i32 cut: %s", buf);
    gguf_kv_format(gguf_find_key(&f, "meta.str"), buf, sizeof buf, 8, 80);
    CHECK(!strcmp(buf, "\"h\xc3\xa9llo\\nworld\""), "format str: %s", buf);
    gguf_kv_format(gguf_find_key(&f, "meta.str"), buf, sizeof buf, 8, 3);
    CHECK(!strcmp(buf, "\"h\xc3\xa9\"...(12 bytes)"), "format str cut: %s", buf);
    gguf_kv_format(gguf_find_key(&f, "meta.i64"), buf, 8, 8, 80);
    CHECK(!strcmp(buf, "-109951"), "format into a small buffer: %s", buf);
    /* tensors sit on the alignment */
    for (size_t i = 0; i < f.n_tensors; i++)
        CHECK((size_t)(f.tensors[i].data - f.base) % 64 == 0, "tensor %s at %zu", f.tensors[i].name,
              (size_t)(f.tensors[i].data - f.base));
    gguf_close(&f);
}

static int read_whole(const char *path, uint8_t **data, size_t *n) {
    lorac_err err = {0};
    char *d = NULL;
    int rc = lorac_read_file(path, &d, n, &err);
    *data = (uint8_t *)d;
    return rc;
}

static void test_tiny_and_corruption(void) {
    uint8_t *data;
    size_t n;
    if (read_whole(FIX "tiny.gguf", &data, &n)) {
        CHECK(0, "cannot read tiny.gguf");
        return;
    }
    gguf_file f;
    lorac_err err = {0};
    CHECK(gguf_open_buffer(data, n, "tiny", &f, &err) == LORAC_OK, "%s", err.msg);
    const gguf_tensor *t = gguf_find_tensor(&f, "tok.weight");
    CHECK(t && t->type == QUANT_Q8_0 && t->n_dims == 2 && t->ne[0] == 32 && t->ne[1] == 2 && t->ne[2] == 1 &&
              t->nbytes == 68 && t->offset == 0, "tok.weight info");
    t = gguf_find_tensor(&f, "norm.weight");
    CHECK(t && t->type == QUANT_F32 && t->n_dims == 1 && t->ne[0] == 8 && t->offset == 96, "norm.weight info");
    const gguf_kv *tok = NULL;
    CHECK(gguf_get_arr(&f, "tokenizer.ggml.tokens", GGUF_REQUIRED, GGUF_STR, &tok, &err) == 0 && gguf_arr_len(tok) == 4,
          "tokens");
    const float *norm = t ? gguf_tensor_f32_view(t) : NULL;
    CHECK(norm && norm[0] == 1.0f && norm[7] == 1.0f, "F32 view of norm.weight");
    CHECK(gguf_tensor_f32_view(gguf_find_tensor(&f, "tok.weight")) == NULL, "no F32 view of a Q8_0 tensor");
    gguf_close(&f);
    /* gguf_open_buffer must not trust what f held before */
    memset(&f, 0xab, sizeof f);
    CHECK(gguf_open_buffer(data, 10, "tiny-10", &f, &err) == LORAC_EFORMAT, "10 bytes are truncated");
    memset(&f, 0xab, sizeof f);
    CHECK(gguf_open_buffer(data, n, "tiny", &f, &err) == LORAC_OK, "%s", err.msg);
    gguf_close(&f);
    /* every proper prefix fails with one line naming the buffer */
    int bad_prefix = 0;
    for (size_t k = 0; k < n; k++) {
        uint8_t *copy = malloc(k ? k : 1); /* exact size, so ASan sees any read past the end */
        memcpy(copy, data, k);
        err.code = 0;
        err.msg[0] = 0;
        int rc = gguf_open_buffer(copy, k, "tiny-prefix", &f, &err);
        /* the last tensor's trailing padding is not needed */
        if (rc == LORAC_OK) {
            if (k < 384 + 96 + 32) bad_prefix++;
            gguf_close(&f);
        } else if (!one_line(err.msg) || strncmp(err.msg, "tiny-prefix: ", 13)) {
            bad_prefix++;
        }
        free(copy);
    }
    CHECK(bad_prefix == 0, "%d prefixes of tiny.gguf were accepted or badly reported", bad_prefix);
    /* single-byte corruptions of the header: rejected cleanly or accepted, never out of bounds */
    int reported = 1;
    for (size_t k = 0; k < 384; k++) {
        static const uint8_t vals[] = {0x00, 0xff, 0x7f, 0x80, 0x01};
        for (size_t v = 0; v < sizeof vals; v++) {
            uint8_t *copy = malloc(n);
            memcpy(copy, data, n);
            copy[k] = vals[v];
            err.msg[0] = 0;
            if (gguf_open_buffer(copy, n, "tiny-corrupt", &f, &err) == LORAC_OK) {
                for (size_t i = 0; i < f.n_kv; i++) {
                    char buf[512];
                    gguf_kv_format(&f.kvs[i], buf, sizeof buf, 4, 40);
                }
                gguf_close(&f);
            } else if (!one_line(err.msg)) {
                reported = 0;
            }
            free(copy);
        }
    }
    CHECK(reported, "every rejected corruption gave a one-line message");
    free(data);
}

static void test_bad_files(void) {
    FILE *list = fopen(FIX "bad/expected.txt", "r");
    CHECK(list != NULL, "bad/expected.txt");
    if (!list) return;
    char line[512];
    int n = 0;
    while (fgets(line, sizeof line, list)) {
        if (line[0] == '#') continue;
        char *tab = strchr(line, '\t'), *nl = strchr(line, '\n');
        if (!tab) continue;
        *tab = 0;
        if (nl) *nl = 0;
        char path[1024];
        snprintf(path, sizeof path, FIX "bad/%s", line);
        gguf_file f;
        lorac_err err = {0};
        int rc = gguf_open(path, &f, &err);
        CHECK(rc != LORAC_OK && one_line(err.msg) && !strncmp(err.msg, path, strlen(path)) && strstr(err.msg, tab + 1),
              "%s: rc %d, message '%s' should contain '%s'", line, rc, err.msg, tab + 1);
        if (rc == LORAC_OK) gguf_close(&f);
        n++;
    }
    fclose(list);
    CHECK(n >= 15, "%d malformed files checked", n);
    lorac_err err = {0};
    gguf_file f;
    CHECK(gguf_open(FIX "bad/no-such-file.gguf", &f, &err) == LORAC_EIO && strstr(err.msg, "no-such-file.gguf"), "%s",
          err.msg);
}

/* Copies every key/value and tensor of quants.gguf through the writer: the result must be the
 * gguf package's file byte for byte (same order, same packed, padded layout). */
static void test_writer_copy(void) {
    const char *out = LORAC_BINARY_DIR "/test_gguf_copy.gguf";
    gguf_file f;
    lorac_err err = {0};
    if (gguf_open(FIX "quants.gguf", &f, &err)) {
        CHECK(0, "%s", err.msg);
        return;
    }
    gguf_writer *w = gguf_writer_new();
    for (size_t i = 0; i < f.n_kv; i++) gguf_writer_copy_kv(w, &f.kvs[i]);
    for (size_t i = 0; i < f.n_tensors; i++) {
        const gguf_tensor *t = &f.tensors[i];
        gguf_writer_add_tensor(w, t->name, t->type, t->n_dims, t->ne, t->data);
    }
    CHECK(gguf_writer_write(w, out, &err) == LORAC_OK, "%s", err.msg);
    gguf_writer_free(w);
    uint8_t *got;
    size_t n;
    CHECK(read_whole(out, &got, &n) == 0 && n == f.size && !memcmp(got, f.base, n), "copy is byte-identical (%zu vs %zu bytes)",
          n, f.size);
    free(got);
    unlink(out);
    gguf_close(&f);
}

static void test_writer_new(void) {
    const char *out = LORAC_BINARY_DIR "/test_gguf_new.gguf";
    lorac_rng rng;
    lorac_rng_seed(&rng, 3);
    float x[3 * 64];
    for (int i = 0; i < 3 * 64; i++) x[i] = lorac_rng_normal(&rng);
    gguf_writer *w = gguf_writer_new();
    gguf_writer_add_str(w, "general.architecture", "llama");
    gguf_writer_add_str(w, "general.type", "adapter");
    gguf_writer_add_str(w, "adapter.type", "lora");
    gguf_writer_add_f32(w, "adapter.lora.alpha", 16.0f);
    gguf_writer_add_bool(w, "x.flag", 0);
    gguf_writer_add_u64(w, "x.u64", 1ull << 50);
    gguf_writer_add_i32(w, "x.i32", -5);
    const char *strs[] = {"one", "", "three"};
    gguf_writer_add_arr_str(w, "x.strs", strs, 3);
    const float fa[] = {1.0f, -2.0f};
    gguf_writer_add_arr(w, "x.f32s", GGUF_F32, fa, 2);
    int64_t ne[2] = {64, 3};
    gguf_writer_add_tensor_f32(w, "a.q8", QUANT_Q8_0, 2, ne, x);
    gguf_writer_add_tensor_f32(w, "a.f16", QUANT_F16, 2, ne, x);
    gguf_writer_add_tensor(w, "a.f32", QUANT_F32, 2, ne, x);
    int64_t ne1[1] = {5};
    gguf_writer_add_tensor_f32(w, "a.odd", QUANT_F32, 1, ne1, x); /* 20 bytes: padding follows */
    lorac_err err = {0};
    CHECK(gguf_writer_write(w, out, &err) == LORAC_OK, "%s", err.msg);
    gguf_writer_free(w);

    gguf_file f;
    if (gguf_open(out, &f, &err)) {
        CHECK(0, "%s", err.msg);
        return;
    }
    const char *s;
    size_t len;
    float alpha = 0;
    int flag = 1;
    uint64_t u64 = 0;
    int32_t i32 = 0;
    CHECK(gguf_get_str(&f, "general.type", GGUF_REQUIRED, &s, &len, &err) == 0 && len == 7 && !memcmp(s, "adapter", 7), "type");
    CHECK(gguf_get_f32(&f, "adapter.lora.alpha", GGUF_REQUIRED, &alpha, &err) == 0 && alpha == 16.0f, "alpha");
    CHECK(gguf_get_bool(&f, "x.flag", GGUF_REQUIRED, &flag, &err) == 0 && flag == 0, "bool");
    CHECK(gguf_get_u64(&f, "x.u64", GGUF_REQUIRED, &u64, &err) == 0 && u64 == 1ull << 50, "u64");
    CHECK(gguf_get_i32(&f, "x.i32", GGUF_REQUIRED, &i32, &err) == 0 && i32 == -5, "i32");
    const gguf_kv *a = NULL;
    CHECK(gguf_get_arr(&f, "x.strs", GGUF_REQUIRED, GGUF_STR, &a, &err) == 0 && gguf_arr_len(a) == 3, "strs");
    if (a) CHECK(gguf_arr_str(a, 2, &len) && len == 5 && !memcmp(gguf_arr_str(a, 2, &len), "three", 5), "strs[2]");
    CHECK(gguf_get_arr(&f, "x.f32s", GGUF_REQUIRED, GGUF_F32, &a, &err) == 0 && gguf_arr_float(a, 1) == -2.0, "f32s");
    const gguf_tensor *q8 = gguf_find_tensor(&f, "a.q8"), *h = gguf_find_tensor(&f, "a.f16"),
                      *full = gguf_find_tensor(&f, "a.f32"), *odd = gguf_find_tensor(&f, "a.odd");
    CHECK(q8 && h && full && odd, "tensors present");
    if (q8 && h && full && odd) {
        uint8_t want[3 * 2 * 34];
        quant_row_from_f32(QUANT_Q8_0, x, want, 3 * 64);
        CHECK(q8->type == QUANT_Q8_0 && q8->nbytes == sizeof want && !memcmp(q8->data, want, sizeof want), "q8 bytes");
        float back[3 * 64];
        CHECK(gguf_tensor_to_f32(&f, h, back, &err) == 0, "%s", err.msg);
        check_arrays_close(back, x, 3 * 64, 0.0, 1.0 / 1024, "f16 round trip (half an f16 ulp)");
        CHECK(gguf_tensor_to_f32(&f, full, back, &err) == 0 && !memcmp(back, x, sizeof back), "f32 exact");
        /* packed in order, each padded to 32: what llama.cpp requires */
        CHECK(q8->offset == 0 && h->offset == 224 && full->offset == 224 + 384 && odd->offset == 224 + 384 + 768,
              "offsets %llu %llu %llu %llu", (unsigned long long)q8->offset, (unsigned long long)h->offset,
              (unsigned long long)full->offset, (unsigned long long)odd->offset);
        CHECK(f.size == f.data_offset + odd->offset + 32, "file ends with the last tensor's padding");
    }
    gguf_close(&f);
    unlink(out);

    /* errors are sticky, reported by write, and leave no file */
    const char *long_name = "a.very.long.tensor.name.that.goes.on.and.on.past.sixty.three.bytes";
    struct {
        const char *what, *frag;
        int kind;
    } cases[] = {{"duplicate key", "duplicate key 'k'", 0}, {"long name", "1 to 63 bytes", 1},
                 {"partial block", "block size 32", 2}, {"bad alignment", "power of two", 3},
                 {"no Q5_K quantizer", "cannot quantize to Q5_K", 4}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        w = gguf_writer_new();
        int64_t ne40[1] = {40};
        if (cases[i].kind == 0) {
            gguf_writer_add_u32(w, "k", 1);
            gguf_writer_add_u32(w, "k", 2);
        } else if (cases[i].kind == 1) {
            gguf_writer_add_tensor(w, long_name, QUANT_F32, 1, ne1, x);
        } else if (cases[i].kind == 2) {
            gguf_writer_add_tensor_f32(w, "t", QUANT_Q8_0, 1, ne40, x);
        } else if (cases[i].kind == 3) {
            gguf_writer_set_alignment(w, 48);
        } else {
            int64_t ne256[1] = {256};
            gguf_writer_add_tensor_f32(w, "t", QUANT_Q5_K, 1, ne256, x);
        }
        gguf_writer_add_str(w, "after", "the error"); /* ignored once an error is recorded */
        err.msg[0] = 0;
        int rc = gguf_writer_write(w, out, &err);
        CHECK(rc != LORAC_OK && one_line(err.msg) && strstr(err.msg, out) && strstr(err.msg, cases[i].frag),
              "%s: '%s'", cases[i].what, err.msg);
        CHECK(access(out, F_OK) != 0, "%s: no file left behind", cases[i].what);
        gguf_writer_free(w);
    }
}

static int hexeq(const char *s, size_t len, const char *hex) {
    if (strlen(hex) != 2 * len) return 0;
    for (size_t i = 0; i < len; i++) {
        unsigned v;
        if (sscanf(hex + 2 * i, "%2x", &v) != 1 || v != (unsigned char)s[i]) return 0;
    }
    return 1;
}

static void test_smollm2(void) {
    char path[4096];
    fx_smollm2_path(path, sizeof path);
    if (access(path, R_OK) != 0) {
        printf("SKIP (part): %s is absent, so the real-model check does not run "
               "(fetch it with tools/fetch_smollm2.sh)\n", path);
        return;
    }
    gguf_file f;
    lorac_err err = {0};
    if (gguf_open(path, &f, &err)) {
        CHECK(0, "%s", err.msg);
        return;
    }
    FILE *ref = fopen(FIX "smollm2_ref.txt", "r");
    CHECK(ref != NULL, "smollm2_ref.txt");
    char *line = NULL;
    size_t cap = 0, n_kv = 0, n_t = 0;
    float *buf = NULL;
    size_t buf_n = 0;
    while (ref && getline(&line, &cap, ref) > 0) {
        char kind[8], key[256], a[1024], b[256], c[256];
        if (line[0] == '#' || sscanf(line, "%7s %255s", kind, key) != 2) continue;
        const gguf_kv *kv = gguf_find_key(&f, key);
        if (!strcmp(kind, "kv") && sscanf(line, "%*s %*s %1023s", a) == 1) {
            n_kv++;
            double want = atof(a);
            CHECK(kv && (kv->type == GGUF_F32 ? fabs(gguf_kv_float(kv) - want) <= 1e-7 * fabs(want)
                                              : (double)gguf_kv_int(kv) == want), "%s", key);
        } else if (!strcmp(kind, "kvs") && sscanf(line, "%*s %*s %1023s", a) == 1) {
            n_kv++;
            const char *s = NULL;
            size_t len = 0;
            /* the reference hex is cut to 1023 chars for the long chat template: compare a prefix */
            CHECK(kv && gguf_get_str(&f, key, GGUF_REQUIRED, &s, &len, &err) == 0 &&
                      hexeq(s, strlen(a) / 2 < len ? strlen(a) / 2 : len, a), "%s", key);
        } else if (!strcmp(kind, "kva") && sscanf(line, "%*s %*s %255s %255s %255s", a, b, c) == 3) {
            n_kv++;
            uint64_t len = strtoull(a, NULL, 10);
            CHECK(kv && gguf_arr_len(kv) == len, "%s length", key);
            if (kv && len && kv->arr_type == GGUF_STR) {
                size_t l0, l1;
                const char *s0 = gguf_arr_str(kv, 0, &l0), *s1 = gguf_arr_str(kv, len - 1, &l1);
                CHECK(hexeq(s0, l0, b) && hexeq(s1, l1, c), "%s first/last", key);
            } else if (kv && len) {
                CHECK(gguf_arr_int(kv, 0) == atoll(b) && gguf_arr_int(kv, len - 1) == atoll(c), "%s first/last", key);
            }
        } else if (!strcmp(kind, "t")) {
            char type[16];
            long long ne0, ne1;
            double sum, sumsq, v[4];
            if (sscanf(line, "%*s %*s %15s %lld %lld %lf %lf %lf %lf %lf %lf", type, &ne0, &ne1, &sum, &sumsq, &v[0], &v[1],
                       &v[2], &v[3]) != 9)
                continue;
            n_t++;
            const gguf_tensor *t = gguf_find_tensor(&f, key);
            CHECK(t && !strcmp(quant_type_name(t->type), type) && t->ne[0] == ne0 && t->ne[1] == ne1, "%s info", key);
            if (!t) continue;
            if (t->n_elem > buf_n) {
                free(buf);
                buf_n = t->n_elem;
                buf = malloc(buf_n * sizeof *buf);
            }
            CHECK(gguf_tensor_to_f32(&f, t, buf, &err) == 0, "%s", err.msg);
            double s = 0, s2 = 0;
            for (size_t i = 0; i < t->n_elem; i++) {
                s += buf[i];
                s2 += (double)buf[i] * buf[i];
            }
            /* float64 sums of identical float32 values: differences come only from summation order */
            int ok = fabs(s - sum) <= 1e-9 * s2 + 1e-9 && fabs(s2 - sumsq) <= 1e-9 * sumsq;
            for (int i = 0; i < 4; i++) ok = ok && (float)v[i] == buf[i];
            CHECK(ok, "%s: sum %.17g vs %.17g, sumsq %.17g vs %.17g", key, s, sum, s2, sumsq);
        }
    }
    free(line);
    free(buf);
    if (ref) fclose(ref);
    CHECK(n_kv == f.n_kv && n_t == f.n_tensors, "checked %zu/%zu keys and %zu/%zu tensors", n_kv, f.n_kv, n_t, f.n_tensors);
    gguf_close(&f);
}

int main(void) {
    test_metadata();
    test_tiny_and_corruption();
    test_bad_files();
    test_writer_copy();
    test_writer_new();
    test_smollm2();
    return check_summary();
}
