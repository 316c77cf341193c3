/* safetensors: read a file written by the Python library and compare with its expected values;
 * write-then-read round trips (F32 -> F16/BF16 on write); every kind of broken file is rejected with
 * one line naming the file; a failed write leaves neither a temp file nor a half-written output. */
#include <dirent.h>
#include <signal.h>
#include <stdint.h>
#include <sys/resource.h>
#include <unistd.h>

#include "check.h"
#include "lorac/safetensors.h"

static char tmpdir[256];

static void fixture_path(char *buf, size_t cap, const char *name) {
    snprintf(buf, cap, "%s/tests/fixtures/safetensors/%s", LORAC_SOURCE_DIR, name);
}

static void test_fixture(void) {
    char path[4096], epath[4096];
    fixture_path(path, sizeof path, "small.safetensors");
    fixture_path(epath, sizeof epath, "small.expected.txt");
    st_file f;
    lorac_err err = {0};
    int rc = st_open(path, &f, &err);
    CHECK(rc == LORAC_OK, "open fixture: %s", err.msg);
    if (rc) return;
    FILE *e = fopen(epath, "r");
    CHECK(e != NULL, "cannot open %s", epath);
    if (!e) {
        st_close(&f);
        return;
    }
    char line[8192];
    size_t n_tensors = 0, n_meta = 0;
    while (fgets(line, sizeof line, e)) {
        line[strcspn(line, "\n")] = 0;
        if (!strncmp(line, "meta ", 5)) {
            char *key = line + 5, *val = strchr(key, ' ');
            *val++ = 0;
            const char *got = st_meta(&f, key);
            CHECK(got && !strcmp(got, val), "meta %s: got %s want %s", key, got ? got : "(none)", val);
            n_meta++;
            continue;
        }
        char *tok = strtok(line, " ");
        CHECK(tok && !strcmp(tok, "tensor"), "bad expected line");
        const char *name = strtok(NULL, " "), *dtype = strtok(NULL, " ");
        int ndim = atoi(strtok(NULL, " "));
        const st_tensor *t = st_find(&f, name);
        CHECK(t != NULL, "tensor %s missing", name);
        if (!t) continue;
        n_tensors++;
        CHECK(!strcmp(st_dtype_name(t->dtype), dtype) && t->ndim == ndim, "%s: dtype %s ndim %d", name,
              st_dtype_name(t->dtype), t->ndim);
        for (int d = 0; d < ndim; d++) {
            long long want = atoll(strtok(NULL, " "));
            CHECK(t->shape[d] == want, "%s: dim %d is %lld want %lld", name, d, (long long)t->shape[d], want);
        }
        size_t numel = (size_t)atoll(strtok(NULL, " "));
        CHECK(t->numel == numel, "%s: numel %zu want %zu", name, t->numel, numel);
        float *got = malloc((numel + 1) * sizeof *got), *want = malloc((numel + 1) * sizeof *want);
        long long *want_i = malloc((numel + 1) * sizeof *want_i);
        for (size_t i = 0; i < numel; i++) {
            const char *v = strtok(NULL, " ");
            want[i] = strtof(v, NULL);
            want_i[i] = atoll(v);
        }
        if (t->dtype == ST_I64) {
            CHECK(!memcmp(t->data, want_i, numel * 8), "%s: int64 values differ", name);
            lorac_err e2 = {0};
            CHECK(st_read_f32(&f, t, got, &e2) == LORAC_EUNSUPPORTED && strstr(e2.msg, path) &&
                      strstr(e2.msg, "dtype I64, not a float type"),
                  "I64 to f32 must fail: %s", e2.msg);
        } else {
            CHECK(st_read_f32(&f, t, got, &err) == LORAC_OK, "%s: %s", name, err.msg);
            check_arrays_close(got, want, numel, 0.0, 0.0, name); /* exact: conversions are exact */
            const float *view = st_f32_view(t);
            if (t->dtype == ST_F32 && numel)
                CHECK(view && !memcmp(view, want, numel * 4), "%s: f32 view", name);
            if (t->dtype != ST_F32) CHECK(view == NULL, "%s: no view of a %s tensor", name, dtype);
        }
        free(got);
        free(want);
        free(want_i);
    }
    fclose(e);
    CHECK(n_tensors == 6 && f.n_tensors == 6 && n_meta == 2 && f.n_meta == 2, "counts %zu %zu", f.n_tensors, f.n_meta);
    CHECK(!strcmp(f.tensors[0].name, "ids") && !strcmp(f.tensors[5].name, "weight.f16"), "header order kept");
    CHECK(st_find(&f, "nope") == NULL && st_meta(&f, "nope") == NULL, "absent names");
    CHECK(!strcmp(f.path, path), "path kept");
    st_close(&f);
}

static int count_temp_files(void) {
    DIR *d = opendir(tmpdir);
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)))
        if (strstr(e->d_name, ".tmp")) n++;
    if (d) closedir(d);
    return n;
}

static void test_roundtrip(void) {
    float a[6] = {1.5f, -2.25f, 3.0e-8f, 65504.0f, 1.0e6f, -0.0f};
    float h[5] = {0.1f, -1.0f / 3.0f, 70000.0f, 6.0e-8f, 1.0f};
    float b[6] = {3.14159265f, -1.0e30f, 1.0e-30f, 0.0f, 2.5f, -7.75f};
    int64_t ids[2] = {-5, INT64_MAX};
    uint8_t flag = 200;
    st_entry e[] = {
        {"a.f32", ST_F32, ST_F32, 2, {2, 3}, a},
        {"h.as_f16", ST_F32, ST_F16, 1, {5}, h},
        {"b.as_bf16", ST_F32, ST_BF16, 2, {3, 2}, b},
        {"ids", ST_I64, ST_I64, 1, {2}, ids},
        {"flag", ST_U8, ST_U8, 0, {0}, &flag},
        {"nothing", ST_F32, ST_F32, 1, {0}, NULL},
    };
    const char *mk[] = {"format", "quote \"x\"\n"}, *mv[] = {"pt", "line1\nline2 \xC3\xA9"};
    char path[512];
    snprintf(path, sizeof path, "%s/rt.safetensors", tmpdir);
    lorac_err err = {0};
    int rc = st_write(path, e, 6, mk, mv, 2, &err);
    CHECK(rc == LORAC_OK, "write: %s", err.msg);
    st_file f;
    rc = st_open(path, &f, &err);
    CHECK(rc == LORAC_OK, "read back: %s", err.msg);
    if (rc) return;
    CHECK(f.n_tensors == 6 && f.n_meta == 2, "counts");
    for (size_t k = 0; k < 6; k++) CHECK(!strcmp(f.tensors[k].name, e[k].name), "order: %zu", k);
    CHECK(!strcmp(st_meta(&f, "quote \"x\"\n"), "line1\nline2 \xC3\xA9"), "metadata escapes round-trip");
    uint64_t hl = 0;
    memcpy(&hl, f.map.data, 8);
    CHECK(hl % 8 == 0 && f.map.data[8] == '{' && f.map.data[8 + hl - 1] == ' ', "header padded to 8 bytes (%llu)",
          (unsigned long long)hl);
    CHECK(!memcmp(f.map.data + 8, "{\"__metadata__\":", 16), "metadata first");
    float got[6], want[6];
    const st_tensor *t = st_find(&f, "a.f32");
    CHECK(t && t->ndim == 2 && t->shape[0] == 2 && t->shape[1] == 3 && st_f32_view(t), "a.f32 shape and view");
    if (t && !st_read_f32(&f, t, got, &err)) CHECK(!memcmp(got, a, sizeof a), "F32 bit-exact");
    t = st_find(&f, "h.as_f16");
    CHECK(t && t->dtype == ST_F16 && t->numel == 5, "converted to F16");
    for (int i = 0; i < 5; i++) want[i] = lorac_f16_to_f32(lorac_f32_to_f16(h[i]));
    if (t && !st_read_f32(&f, t, got, &err)) CHECK(!memcmp(got, want, 5 * sizeof *got), "F16 round trip (bit-exact)");
    CHECK(isinf(want[2]) && want[4] == 1.0f, "F16 overflow goes to inf, 1 stays exact");
    t = st_find(&f, "b.as_bf16");
    CHECK(t && t->dtype == ST_BF16 && t->numel == 6, "converted to BF16");
    for (int i = 0; i < 6; i++) want[i] = lorac_bf16_to_f32(lorac_f32_to_bf16(b[i]));
    if (t && !st_read_f32(&f, t, got, &err)) check_arrays_close(got, want, 6, 0, 0, "BF16 round trip");
    check_arrays_close(got, b, 6, 0, 1.0 / 256, "BF16 within its precision");
    t = st_find(&f, "ids");
    CHECK(t && t->dtype == ST_I64 && !memcmp(t->data, ids, 16), "I64 raw");
    t = st_find(&f, "flag");
    CHECK(t && t->ndim == 0 && t->numel == 1 && t->data[0] == 200, "U8 scalar");
    t = st_find(&f, "nothing");
    CHECK(t && t->numel == 0, "empty tensor");
    st_close(&f);
    CHECK(count_temp_files() == 0, "temp files left after a good write");

    /* failed writes leave the previous file as it was and no temp file */
    char before[4096];
    FILE *pf = fopen(path, "rb");
    size_t before_n = fread(before, 1, sizeof before, pf);
    fclose(pf);
    const char *dup_k[] = {"k", "k"}, *dup_v[] = {"1", "2"};
    st_entry bad_dup[] = {e[0], e[0]};
    st_entry bad_conv[] = {{"x", ST_I64, ST_F16, 1, {2}, ids}};
    st_entry bad_dims[] = {{"x", ST_F32, ST_F32, 9, {1, 1, 1, 1, 1, 1, 1, 1}, a}};
    st_entry bad_neg[] = {{"x", ST_F32, ST_F32, 1, {-1}, a}};
    st_entry bad_null[] = {{"x", ST_F32, ST_F32, 1, {2}, NULL}};
    st_entry bad_name[] = {{"__metadata__", ST_F32, ST_F32, 1, {2}, a}};
    st_entry bad_huge[] = {{"x", ST_F32, ST_F32, 2, {INT64_C(1) << 62, INT64_C(1) << 62}, a}};
    st_entry bad_utf8[] = {{"x\xff", ST_F32, ST_F32, 1, {2}, a}};
    const char *bad_mv[] = {"\xc0\x80"};
    struct { const st_entry *e; size_t n; const char *const *mk, *const *mv; size_t nm; const char *want; } cases[] = {
        {bad_dup, 2, NULL, NULL, 0, "tensor name 'a.f32' given twice"},
        {e, 1, dup_k, dup_v, 2, "metadata key 'k' given twice"},
        {bad_conv, 1, NULL, NULL, 0, "cannot convert I64 to F16"},
        {bad_dims, 1, NULL, NULL, 0, "9 dimensions (at most 8)"},
        {bad_neg, 1, NULL, NULL, 0, "negative dimension"},
        {bad_null, 1, NULL, NULL, 0, "no data"},
        {bad_name, 1, NULL, NULL, 0, "no usable name"},
        {bad_huge, 1, NULL, NULL, 0, "shape too large"},
        {bad_utf8, 1, NULL, NULL, 0, "tensor 0: name is not valid UTF-8"},
        {e, 1, mk, bad_mv, 1, "metadata entry 0 is not valid UTF-8"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        lorac_err e2 = {0};
        rc = st_write(path, cases[k].e, cases[k].n, cases[k].mk, cases[k].mv, cases[k].nm, &e2);
        CHECK(rc != LORAC_OK && strstr(e2.msg, path) && strstr(e2.msg, cases[k].want), "case %zu: %s", k, e2.msg);
    }
    /* an I/O failure part-way through the data (file size limit) */
    static float big[1 << 16];
    st_entry e_big[] = {{"big", ST_F32, ST_F32, 1, {1 << 16}, big}};
    struct rlimit old;
    getrlimit(RLIMIT_FSIZE, &old);
    struct rlimit lim = old;
    lim.rlim_cur = 4096;
    void (*prev)(int) = signal(SIGXFSZ, SIG_IGN);
    if (setrlimit(RLIMIT_FSIZE, &lim) == 0) {
        lorac_err e2 = {0};
        rc = st_write(path, e_big, 1, NULL, NULL, 0, &e2);
        setrlimit(RLIMIT_FSIZE, &old);
        CHECK(rc == LORAC_EIO && strstr(e2.msg, path), "write past the size limit must fail: %d %s", rc, e2.msg);
    }
    signal(SIGXFSZ, prev);
    char after[4096];
    pf = fopen(path, "rb");
    size_t after_n = fread(after, 1, sizeof after, pf);
    fclose(pf);
    CHECK(before_n == after_n && !memcmp(before, after, before_n), "failed writes left the old file intact");
    CHECK(count_temp_files() == 0, "temp files left after failed writes");
    /* a missing directory */
    lorac_err e3 = {0};
    CHECK(st_write("/nonexistent/dir/x.safetensors", e, 1, NULL, NULL, 0, &e3) == LORAC_EIO &&
              strstr(e3.msg, "/nonexistent/dir/x.safetensors"),
          "missing directory: %s", e3.msg);
    unlink(path);
}

/* Writes u64 header length + header + data_size zero bytes to path. hl overrides the length if non-zero. */
static void make_file(const char *path, const char *header, size_t data_size, uint64_t hl) {
    FILE *f = fopen(path, "wb");
    uint64_t n = hl ? hl : strlen(header);
    uint8_t len8[8];
    for (int k = 0; k < 8; k++) len8[k] = (uint8_t)(n >> (8 * k));
    fwrite(len8, 1, 8, f);
    fwrite(header, 1, strlen(header), f);
    for (size_t k = 0; k < data_size; k++) fputc(0, f);
    fclose(f);
}

static void expect_reject(const char *path, int want_rc, const char *want_msg) {
    st_file f;
    lorac_err err = {0};
    int rc = st_open(path, &f, &err);
    char full[4200];
    snprintf(full, sizeof full, "%s: %s", path, want_msg);
    CHECK(rc == want_rc, "%s: rc %d want %d (%s)", want_msg, rc, want_rc, err.msg);
    CHECK(!strcmp(err.msg, full), "got  \"%s\"\n     want \"%s\"", err.msg, full);
    CHECK(!strchr(err.msg, '\n'), "one line: %s", err.msg);
    CHECK(f.tensors == NULL && f.priv == NULL && f.map.data == NULL, "st_file cleared after failure");
    st_close(&f); /* harmless on a cleared st_file */
}

static void test_broken(void) {
    char path[512], src[4096];
    snprintf(path, sizeof path, "%s/bad.safetensors", tmpdir);
    fixture_path(src, sizeof src, "small.safetensors");
    char *good = NULL;
    size_t good_n = 0;
    CHECK(lorac_read_file(src, &good, &good_n, NULL) == LORAC_OK, "read fixture");
    uint64_t hl = 0;
    memcpy(&hl, good, 8);

    /* truncations of the real file */
    lorac_write_file(path, good, 0, NULL);
    expect_reject(path, LORAC_EFORMAT, "truncated: 0 bytes, too short for the 8-byte header length");
    lorac_write_file(path, good, 5, NULL);
    expect_reject(path, LORAC_EFORMAT, "truncated: 5 bytes, too short for the 8-byte header length");
    lorac_write_file(path, good, 300, NULL);
    char want[1024];
    snprintf(want, sizeof want, "header length %llu is past the end of the file (300 bytes)", (unsigned long long)hl);
    expect_reject(path, LORAC_EFORMAT, want);
    lorac_write_file(path, good, 8 + hl + 100, NULL); /* data area cut to 100 bytes: weight.f16 is first past it */
    expect_reject(path, LORAC_EFORMAT, "tensor 'weight.f16': data_offsets [94, 118] past the end of the data area (100 bytes)");
    free(good);

    /* made-up headers */
    struct { const char *header; size_t data; int rc; const char *msg; } cases[] = {
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,999]}}", 512, LORAC_EFORMAT,
         "tensor 'a': data_offsets [0, 999] past the end of the data area (512 bytes)"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},\"b\":{\"dtype\":\"F32\",\"shape\":[4],"
         "\"data_offsets\":[8,24]}}", 24, LORAC_EFORMAT, "tensors 'a' [0, 16] and 'b' [8, 24] overlap"},
        {"{\"b\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[12,16]},\"a\":{\"dtype\":\"F32\",\"shape\":[4],"
         "\"data_offsets\":[0,16]}}", 16, LORAC_EFORMAT, "tensors 'a' [0, 16] and 'b' [12, 16] overlap"},
        {"{\"a\": {\"dtype\": \"F32\",, }}", 0, LORAC_EFORMAT, "header:1:23: expected a string key, found ','"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[4611686018427387904,4611686018427387904],\"data_offsets\":[0,16]}}", 16,
         LORAC_EFORMAT, "tensor 'a': shape [4611686018427387904, 4611686018427387904] is too large (its size overflows)"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[4611686018427387904],\"data_offsets\":[0,16]}}", 16, LORAC_EFORMAT,
         "tensor 'a': shape [4611686018427387904] is too large (its size overflows)"},
        {"{\"a\":{\"dtype\":\"F8_Q\",\"shape\":[2],\"data_offsets\":[0,2]}}", 2, LORAC_EFORMAT, "tensor 'a': unknown dtype 'F8_Q'"},
        {"{\"a\":{\"dtype\":\"F8_E4M3\",\"shape\":[2],\"data_offsets\":[0,2]}}", 2, LORAC_EUNSUPPORTED,
         "tensor 'a': dtype 'F8_E4M3' is not supported"},
        {"{\"a\":{\"dtype\":7,\"shape\":[2],\"data_offsets\":[0,2]}}", 2, LORAC_EFORMAT, "tensor 'a': dtype is missing or not a string"},
        {"{\"a\":{\"shape\":[2],\"data_offsets\":[0,2]}}", 2, LORAC_EFORMAT, "tensor 'a': dtype is missing or not a string"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8, LORAC_EFORMAT,
         "tensor 'a': data_offsets [0, 8] hold 8 bytes but F32 shape [3] needs 12"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},\"a\":{\"dtype\":\"F32\",\"shape\":[1],"
         "\"data_offsets\":[4,8]}}", 8, LORAC_EFORMAT, "tensor 'a' appears twice in the header"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,4]}}", 8, LORAC_EFORMAT,
         "tensor 'a': data_offsets [8, 4] end before they begin"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 8, LORAC_EFORMAT,
         "tensor 'a': shape must hold non-negative integers"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2.0],\"data_offsets\":[0,8]}}", 8, LORAC_EFORMAT,
         "tensor 'a': shape must hold non-negative integers"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}", 8, LORAC_EFORMAT,
         "tensor 'a': shape has 9 dimensions (at most 8)"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":{},\"data_offsets\":[0,4]}}", 8, LORAC_EFORMAT,
         "tensor 'a': shape is missing or not an array"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4,8]}}", 8, LORAC_EFORMAT,
         "tensor 'a': data_offsets must be [begin, end], two non-negative integers"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[-4,0]}}", 8, LORAC_EFORMAT,
         "tensor 'a': data_offsets must be [begin, end], two non-negative integers"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,18446744073709551620]}}", 8, LORAC_EFORMAT,
         "tensor 'a': data_offsets must be [begin, end], two non-negative integers"},
        {"{\"a\":[1]}", 0, LORAC_EFORMAT, "tensor 'a': entry is not a JSON object"},
        {"[]", 0, LORAC_EFORMAT, "header is not a JSON object"},
        {"{\"__metadata__\":{\"k\":1}}", 0, LORAC_EFORMAT, "__metadata__ value for 'k' is not a string"},
        {"{\"__metadata__\":[]}", 0, LORAC_EFORMAT, "__metadata__ is not a JSON object"},
        {"{\"__metadata__\":{},\"__metadata__\":{}}", 0, LORAC_EFORMAT, "__metadata__ appears twice"},
        {"{\"__metadata__\":{\"k\":\"a\\u0000\"}}", 0, LORAC_EFORMAT, "__metadata__ entry 'k' contains a NUL character"},
        {"{\"a\\u0000b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, LORAC_EFORMAT,
         "a tensor name contains a NUL character"},
        {"{\"a\":\"\xff\"}", 0, LORAC_EFORMAT, "header:1:7: invalid UTF-8 in string"},
        {"", 0, LORAC_EFORMAT, "header:1:1: expected a value, found end of input"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        make_file(path, cases[k].header, cases[k].data, 0);
        expect_reject(path, cases[k].rc, cases[k].msg);
    }
    /* header length far past the file, and one past the 100 MB limit (sparse file) */
    make_file(path, "{}", 0, UINT64_C(1) << 40);
    expect_reject(path, LORAC_EFORMAT, "header length 1099511627776 is past the end of the file (10 bytes)");
    make_file(path, "{}", 0, UINT64_C(150) << 20);
    if (truncate(path, (off_t)(8 + (150 << 20))) == 0)
        expect_reject(path, LORAC_EFORMAT, "header length 157286400 exceeds the 104857600-byte limit");
    unlink(path);
    /* missing file */
    st_file f;
    lorac_err err = {0};
    CHECK(st_open("/nonexistent/x.safetensors", &f, &err) == LORAC_EIO && strstr(err.msg, "/nonexistent/x.safetensors"),
          "missing: %s", err.msg);

    /* valid oddities: empty tensors anywhere, holes, trailing bytes, and F32 data that is not 4-byte
     * aligned (the header is padded so the data area starts at an offset of 2 mod 4) */
    char odd[512];
    snprintf(odd, sizeof odd, "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},\"e\":{\"dtype\":\"F32\","
             "\"shape\":[0],\"data_offsets\":[8,8]},\"c\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[20,22]}}");
    while ((8 + strlen(odd)) % 4 != 2) strcat(odd, " ");
    make_file(path, odd, 30, 0);
    int rc = st_open(path, &f, &err);
    CHECK(rc == LORAC_OK, "valid oddities: %s", err.msg);
    if (!rc) {
        CHECK(f.n_tensors == 3 && st_find(&f, "e")->numel == 0, "three tensors");
        const st_tensor *ta = st_find(&f, "a");
        CHECK(((uintptr_t)ta->data & 3) == 2 && st_f32_view(ta) == NULL, "no view of unaligned F32 data");
        float out[4] = {1, 1, 1, 1};
        CHECK(st_read_f32(&f, ta, out, &err) == LORAC_OK && out[0] == 0.0f && out[3] == 0.0f, "unaligned read");
        st_close(&f);
    }
    make_file(path, "{}", 0, 0);
    CHECK(st_open(path, &f, &err) == LORAC_OK && f.n_tensors == 0, "empty header is a valid file");
    st_close(&f);
    unlink(path);
}

/* st_open_memory: the same checks, no file. */
static void test_memory(void) {
    const char *header = "{\"__metadata__\":{\"k\":\"v\"}}";
    size_t n = strlen(header);
    char img[64] = {(char)n};
    memcpy(img + 8, header, n);
    st_file f;
    lorac_err err = {0};
    CHECK(st_open_memory(img, 8 + n, "mem", &f, &err) == LORAC_OK && f.n_tensors == 0 && !strcmp(st_meta(&f, "k"), "v"),
          "%s", err.msg);
    CHECK(f.map.data == NULL, "nothing mapped");
    st_close(&f);
    char want[128];
    snprintf(want, sizeof want, "mem: header length %zu is past the end of the file (12 bytes)", n);
    CHECK(st_open_memory(img, 12, "mem", &f, &err) == LORAC_EFORMAT && !strcmp(err.msg, want), "memory truncated: %s", err.msg);
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/lorac_st_XXXXXX");
    if (!mkdtemp(tmpdir)) {
        printf("cannot create a temp directory\n");
        return 1;
    }
    test_fixture();
    test_roundtrip();
    test_broken();
    test_memory();
    lorac_remove_flat_dir(tmpdir);
    return check_summary();
}
