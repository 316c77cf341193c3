/* JSON reader and writer: values, escapes, UTF-8, numbers, every error with its line and column,
 * JSONL line offsets, the depth limit, large objects (speed and O(1) access), writer round trips. */
#include <math.h>
#include <stdint.h>
#include <time.h>

#include "check.h"
#include "lorac/json.h"

static json_doc *parse_ok(const char *text) {
    json_doc *d = NULL;
    lorac_err err = {0};
    int rc = json_parse(text, strlen(text), "t", 1, &d, &err);
    CHECK(rc == LORAC_OK, "parse of %s failed: %s", text, err.msg);
    return d;
}

/* Parses text (n bytes) and expects failure with exactly the message want. */
static void expect_error(const char *text, size_t n, const char *want) {
    json_doc *d = NULL;
    lorac_err err = {0};
    int rc = json_parse(text, n, "t", 1, &d, &err);
    CHECK(rc == LORAC_EFORMAT && d == NULL, "%s: expected a format error, got rc %d", want, rc);
    CHECK(!strcmp(err.msg, want), "got \"%s\" want \"%s\"", err.msg, want);
    CHECK(!strchr(err.msg, '\n'), "message has a newline: %s", err.msg);
    json_free(d);
}
#define EXPECT_ERROR(text, want) expect_error(text, sizeof(text) - 1, want)

static void test_values(void) {
    json_doc *d = parse_ok(" {\"a\": 1, \"b\": [true, false, null, \"x\"], \"c\": {\"d\": -2.5}, \"a\": 7,"
                           " \"e\": {}, \"f\": [], \"g\": \"\"}\n");
    if (!d) return;
    const json_value *r = json_root(d);
    CHECK(json_kind(r) == JSON_OBJECT, "root kind");
    CHECK(json_len(r) == 7, "members %zu", json_len(r));
    CHECK(!strcmp(json_key_at(r, 0), "a") && !strcmp(json_key_at(r, 3), "a"), "order kept");
    CHECK(json_key_len_at(r, 1) == 1 && json_key_at(r, 7) == NULL, "key_at bounds");
    CHECK(json_num(json_get(r, "a")) == 1.0, "duplicate key: json_get returns the first");
    CHECK(json_num(json_at(r, 3)) == 7.0, "second duplicate by index");
    const json_value *b = json_get(r, "b");
    CHECK(json_kind(b) == JSON_ARRAY && json_len(b) == 4, "array");
    CHECK(json_kind(json_at(b, 0)) == JSON_BOOL && json_bool(json_at(b, 0)) == 1, "true");
    CHECK(json_kind(json_at(b, 1)) == JSON_BOOL && json_bool(json_at(b, 1)) == 0, "false");
    CHECK(json_kind(json_at(b, 2)) == JSON_NULL, "null");
    CHECK(!strcmp(json_str(json_at(b, 3)), "x") && json_str_len(json_at(b, 3)) == 1, "string");
    CHECK(json_at(b, 4) == NULL && json_at(NULL, 0) == NULL, "at bounds");
    CHECK(json_num(json_get(json_get(r, "c"), "d")) == -2.5, "nested");
    CHECK(json_len(json_get(r, "e")) == 0 && json_kind(json_get(r, "e")) == JSON_OBJECT, "empty object");
    CHECK(json_len(json_get(r, "f")) == 0 && json_kind(json_get(r, "f")) == JSON_ARRAY, "empty array");
    CHECK(json_str(json_get(r, "g")) && json_str_len(json_get(r, "g")) == 0, "empty string");
    CHECK(json_get(r, "zz") == NULL && json_get(b, "a") == NULL && json_get(NULL, "a") == NULL, "absent");
    CHECK(json_str(json_get(r, "a")) == NULL && json_num(json_get(r, "b")) == 0.0, "wrong-type scalars");
    int bad = 0;
    CHECK(json_get_int(r, "a", 5, &bad) == 1 && !bad, "get_int");
    CHECK(json_get_int(r, "zz", 5, &bad) == 5 && !bad, "get_int default");
    CHECK(json_get_int(r, "b", 5, &bad) == 5 && bad, "get_int wrong type");
    bad = 0;
    CHECK(json_get_int(json_get(r, "c"), "d", 5, &bad) == 5 && bad, "get_int non-integral");
    bad = 0;
    CHECK(json_get_num(json_get(r, "c"), "d", 0, &bad) == -2.5 && !bad, "get_num");
    CHECK(!strcmp(json_get_str(r, "g", "def", &bad), "") && !bad, "get_str");
    CHECK(!strcmp(json_get_str(r, "a", "def", &bad), "def") && bad, "get_str wrong type");
    bad = 0;
    CHECK(json_get_bool(r, "a", 1, &bad) == 1 && bad, "get_bool wrong type");
    json_free(d);

    d = parse_ok("{\"n\": null, \"f\": 16.0, \"e\": 1e3, \"big\": 9223372036854775807, \"huge\": 9223372036854775808}");
    if (!d) return;
    r = json_root(d);
    bad = 0;
    CHECK(json_get_int(r, "n", 3, &bad) == 3 && !bad, "null counts as absent");
    CHECK(json_get_int(r, "f", 0, &bad) == 16 && json_get_int(r, "e", 0, &bad) == 1000 && !bad, "integral floats");
    CHECK(json_get_int(r, "big", 0, &bad) == INT64_MAX && !bad, "int64 max exact");
    long long v = 0;
    CHECK(json_int_exact(json_get(r, "big"), &v) && v == INT64_MAX, "json_int_exact");
    CHECK(!json_int_exact(json_get(r, "f"), &v) && !json_int_exact(json_get(r, "e"), &v), "exact rejects 16.0, 1e3");
    CHECK(!json_int_exact(json_get(r, "huge"), &v), "exact rejects 2^63");
    CHECK(json_num(json_get(r, "huge")) == 9223372036854775808.0, "2^63 as a double");
    json_get_int(r, "huge", 0, &bad);
    CHECK(bad, "get_int rejects 2^63");
    json_free(d);

    d = parse_ok("\xEF\xBB\xBF 42 "); /* a UTF-8 BOM is skipped */
    CHECK(d && json_num(json_root(d)) == 42.0, "BOM then scalar root");
    json_free(d);
}

static void test_strings(void) {
    const char *text = "[\"q\\\" b\\\\ s\\/ \\b\\f\\n\\r\\t\", \"\\u00e9\\u20AC\\ud83d\\ude00\", \"a\\u0000b\", "
                       "\"raw \xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80\"]";
    json_doc *d = parse_ok(text);
    if (!d) return;
    const json_value *r = json_root(d);
    CHECK(!strcmp(json_str(json_at(r, 0)), "q\" b\\ s/ \b\f\n\r\t"), "simple escapes");
    CHECK(!strcmp(json_str(json_at(r, 1)), "\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80"), "\\u escapes and surrogate pair");
    CHECK(json_str_len(json_at(r, 2)) == 3 && !memcmp(json_str(json_at(r, 2)), "a\0b", 4), "\\u0000 kept, length 3");
    CHECK(!strcmp(json_str(json_at(r, 3)), "raw \xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80"), "raw UTF-8 passes");
    json_free(d);
}

static void test_numbers(void) {
    static const struct { const char *text; double want; } cases[] = {
        {"0", 0.0}, {"-0", -0.0}, {"1.5", 1.5}, {"1e3", 1000.0}, {"1E+3", 1000.0}, {"-1.25e-3", -1.25e-3},
        {"0.1", 0.1}, {"123456789012345678", 123456789012345678.0}, {"1e-400", 0.0},
        {"2.2250738585072014e-308", 2.2250738585072014e-308}, {"1.7976931348623157e308", 1.7976931348623157e308},
        {"0.30000000000000004", 0.30000000000000004}, {"5e-324", 5e-324},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        json_doc *d = parse_ok(cases[k].text);
        if (!d) continue;
        double got = json_num(json_root(d));
        CHECK(json_kind(json_root(d)) == JSON_NUMBER && memcmp(&got, &cases[k].want, sizeof got) == 0,
              "%s: got %.17g", cases[k].text, got);
        json_free(d);
    }
}

static void test_errors(void) {
    EXPECT_ERROR("", "t:1:1: expected a value, found end of input");
    EXPECT_ERROR("  \n ", "t:2:2: expected a value, found end of input");
    EXPECT_ERROR("{\"a\":1 \"b\":2}", "t:1:8: expected ',' or '}' after object member, found '\"'");
    EXPECT_ERROR("{\"a\":1,}", "t:1:8: expected a string key, found '}'");
    EXPECT_ERROR("{\"a\" 1}", "t:1:6: expected ':' after object key, found '1'");
    EXPECT_ERROR("{1:2}", "t:1:2: expected a string key, found '1'");
    EXPECT_ERROR("{", "t:1:2: expected a string key, found end of input");
    EXPECT_ERROR("[1,2,]", "t:1:6: expected a value, found ']'");
    EXPECT_ERROR("\n\n  [1 2]", "t:3:6: expected ',' or ']' after array element, found '2'");
    EXPECT_ERROR("[", "t:1:2: expected a value, found end of input");
    EXPECT_ERROR("[1", "t:1:3: expected ',' or ']' after array element, found end of input");
    EXPECT_ERROR("[1] x", "t:1:5: unexpected 'x' after the JSON value");
    EXPECT_ERROR("{}{}", "t:1:3: unexpected '{' after the JSON value");
    EXPECT_ERROR("tru", "t:1:1: invalid literal (expected true, false or null)");
    EXPECT_ERROR("[nul]", "t:1:2: invalid literal (expected true, false or null)");
    EXPECT_ERROR("NaN", "t:1:1: expected a value, found 'N'");
    EXPECT_ERROR("// c\n1", "t:1:1: expected a value, found '/'");
    EXPECT_ERROR("'a'", "t:1:1: expected a value, found byte 0x27");
    EXPECT_ERROR("01", "t:1:1: invalid number: leading zeros are not allowed");
    EXPECT_ERROR("[-]", "t:1:2: invalid number: no digits after '-'");
    EXPECT_ERROR("1.", "t:1:1: invalid number: no digits after '.'");
    EXPECT_ERROR(".5", "t:1:1: expected a value, found '.'");
    EXPECT_ERROR("+1", "t:1:1: expected a value, found '+'");
    EXPECT_ERROR("1e+", "t:1:1: invalid number: no digits in exponent");
    EXPECT_ERROR("[1e400]", "t:1:2: number out of range");
    EXPECT_ERROR("\"abc", "t:1:1: unterminated string");
    EXPECT_ERROR("[\"ab\\\"]", "t:1:2: unterminated string");
    EXPECT_ERROR("\"a\tb\"", "t:1:3: unescaped control character 0x09 in string");
    EXPECT_ERROR("\"a\\xb\"", "t:1:3: invalid escape: backslash followed by 'x'");
    EXPECT_ERROR("\"\\u12\"", "t:1:2: invalid \\u escape (needs 4 hex digits)");
    EXPECT_ERROR("\"\\u12G4\"", "t:1:2: invalid \\u escape (needs 4 hex digits)");
    EXPECT_ERROR("\"\\ud800\"", "t:1:2: unpaired surrogate \\uD800 in string");
    EXPECT_ERROR("\"\\ud800\\u0041\"", "t:1:2: unpaired surrogate \\uD800 in string");
    EXPECT_ERROR("\"x\\udc00\"", "t:1:3: unpaired surrogate \\uDC00 in string");
    EXPECT_ERROR("\"\xff\"", "t:1:2: invalid UTF-8 in string");
    EXPECT_ERROR("\"\xC0\x80\"", "t:1:2: invalid UTF-8 in string");         /* overlong NUL */
    EXPECT_ERROR("\"\xED\xA0\x80\"", "t:1:2: invalid UTF-8 in string");     /* encoded surrogate */
    EXPECT_ERROR("\"\xF4\x90\x80\x80\"", "t:1:2: invalid UTF-8 in string"); /* past U+10FFFF */
    EXPECT_ERROR("\"ab\xE2\x82\"", "t:1:4: invalid UTF-8 in string");       /* truncated */
    EXPECT_ERROR("[1,\0]", "t:1:4: expected a value, found byte 0x00");

    /* JSONL: the name carries the file and first_line the line number within it */
    json_doc *d = NULL;
    lorac_err err = {0};
    const char *line = "{\"text\": \"ok\"} junk";
    CHECK(json_parse(line, strlen(line), "data.jsonl", 41, &d, &err) == LORAC_EFORMAT, "jsonl error");
    CHECK(!strcmp(err.msg, "data.jsonl:41:16: unexpected 'j' after the JSON value"), "got %s", err.msg);
    const char *two = "{\"a\":\n [1,\n  }";
    CHECK(json_parse(two, strlen(two), "data.jsonl", 10, &d, &err) == LORAC_EFORMAT, "jsonl error 2");
    CHECK(!strcmp(err.msg, "data.jsonl:12:3: expected a value, found '}'"), "got %s", err.msg);

    /* a missing file is an i/o error naming it */
    CHECK(json_parse_file("/nonexistent/dir/x.json", &d, &err) == LORAC_EIO && strstr(err.msg, "/nonexistent/dir/x.json"),
          "missing file: %s", err.msg);
}

/* Accept/reject cases in the spirit of JSONTestSuite (y_ must parse, n_ must not). */
static void test_conformance(void) {
    static const char *const yes[] = {
        "[1E22]", "[1e-0]", "[-0]", "[0e+1]", "[0.0e-1]", "{\"\":0}", "[\"\"]", "[[] ]", " [1] ", "[\"\\u0000\"]",
        "[\"\\uDBFF\\uDFFF\"]", "[123e65]", "[1E+2]", "{\"a\":\"b\",\"a\":\"c\"}", "[-123]", "[ 4]", "[1\n]",
        "\t\r\n [\r\n1\t]", "[\"\xf4\x8f\xbf\xbf\"]", "[\"\xe2\x80\xa8\"]", "\"\\/\"", "[-1e-10]", "false", "null",
        "[1.5e+9999999999999999999999999]" /* overflow is rejected, so the next line checks that */,
    };
    static const char *const no[] = {
        "[1.]", "[.123]", "[-]", "[+1]", "[0x1]", "[1e]", "[1e+]", "[01]", "[-01]", "[\"\\x\"]", "[\\u0020\"asd\"]",
        "[\"a\"", "{\"a\" \"b\"}", "{\"a\":\"b\",}", "[1,,2]", "[,1]", "[1]]", "[\"\\uD800\\u\"]", "[True]",
        "[\"\t\"]", "[1 true]", "[\"\\u00A\"]", "{\"a\":1}#", "[-Infinity]", "[Infinity]", "[-1.0.]", "[1.5e+-2]",
        "[1e1.0]", "[\xc2\xa0" "1]", "[0e]", "[-.123]", "[2.e3]", "{a:1}", "{\"a\":}", "[\"\\a\"]", "\"\xed\xbf\xbf\"",
        "[\"\xc1\xbf\"]", "[\"\xe0\x80\x80\"]", "[\"\xf0\x80\x80\x80\"]", "[\"\xf8\x88\x80\x80\x80\"]", "[1]\x1a",
        "\xef\xbb[]", "[\"a\xe9\"]", "{\"a\":1 /* c */}", "[1]\n[2]", "[\"\\\"]", "{\"a\"\n:\n}", "[1e400]",
    };
    for (size_t k = 0; k < sizeof yes / sizeof yes[0] - 1; k++) {
        json_doc *d = NULL;
        lorac_err err = {0};
        CHECK(json_parse(yes[k], strlen(yes[k]), "y", 1, &d, &err) == LORAC_OK, "should parse: %s (%s)", yes[k], err.msg);
        json_free(d);
    }
    const char *last = yes[sizeof yes / sizeof yes[0] - 1];
    json_doc *d = NULL;
    CHECK(json_parse(last, strlen(last), "y", 1, &d, NULL) == LORAC_EFORMAT, "huge exponent is out of range");
    for (size_t k = 0; k < sizeof no / sizeof no[0]; k++) {
        lorac_err err = {0};
        d = NULL;
        CHECK(json_parse(no[k], strlen(no[k]), "n", 1, &d, &err) == LORAC_EFORMAT && !d && !strncmp(err.msg, "n:", 2),
              "should fail: %s", no[k]);
        json_free(d);
    }
}

static void test_depth(void) {
    enum { LIMIT = 512 };
    char *buf = malloc(2 * (LIMIT + 1) + 1);
    for (int extra = 0; extra <= 1; extra++) {
        int n = LIMIT + extra;
        for (int i = 0; i < n; i++) {
            buf[i] = '[';
            buf[n + i] = ']';
        }
        json_doc *d = NULL;
        lorac_err err = {0};
        int rc = json_parse(buf, 2 * (size_t)n, "deep", 1, &d, &err);
        if (!extra) {
            CHECK(rc == LORAC_OK, "%d levels should parse: %s", n, err.msg);
            const json_value *v = json_root(d);
            int depth = 0;
            while (json_kind(v) == JSON_ARRAY && json_len(v) == 1) {
                v = json_at(v, 0);
                depth++;
            }
            CHECK(depth == LIMIT - 1 && json_len(v) == 0, "depth %d", depth);
        } else {
            CHECK(rc == LORAC_EFORMAT && !strcmp(err.msg, "deep:1:513: nesting deeper than 512 levels"), "got %s", err.msg);
        }
        json_free(d);
    }
    free(buf);
}

/* A tokenizer.json-shaped document: a vocab object with many members and a long merges array. */
static void test_large(void) {
    enum { NV = 150000, NM = 300000 };
    size_t cap = 16u << 20, n = 0;
    char *buf = malloc(cap);
    n += (size_t)snprintf(buf + n, cap - n, "{\"model\": {\"type\": \"BPE\", \"vocab\": {");
    for (int i = 0; i < NV; i++)
        n += (size_t)snprintf(buf + n, cap - n, "%s\"\xC4\xA0tok%d_\\u00e9\": %d", i ? ", " : "", i, i);
    n += (size_t)snprintf(buf + n, cap - n, "}, \"merges\": [");
    for (int i = 0; i < NM; i++) n += (size_t)snprintf(buf + n, cap - n, "%s\"\xC4\xA0t ok%d\"", i ? ", " : "", i);
    n += (size_t)snprintf(buf + n, cap - n, "]}}");
    json_doc *d = NULL;
    lorac_err err = {0};
    clock_t t0 = clock();
    int rc = json_parse(buf, n, "tokenizer.json", 1, &d, &err);
    double secs = (double)(clock() - t0) / CLOCKS_PER_SEC;
    CHECK(rc == LORAC_OK, "large parse: %s", err.msg);
    printf("parsed %.1f MB tokenizer-shaped JSON in %.3f s\n", n / 1e6, secs);
#ifdef NDEBUG
    /* the brief: a 10 MB tokenizer.json well under a second (optimized builds only) */
    CHECK(secs < 1.0 * (n / 10e6) + 0.2, "too slow: %.3f s", secs);
#endif
    const json_value *vocab = json_get(json_get(json_root(d), "model"), "vocab");
    CHECK(json_len(vocab) == NV, "vocab size %zu", json_len(vocab));
    int ok = 1;
    char key[64];
    for (int i = 0; i < NV && ok; i++) {
        snprintf(key, sizeof key, "\xC4\xA0tok%d_\xC3\xA9", i);
        ok = !strcmp(json_key_at(vocab, i), key) && json_num(json_at(vocab, i)) == i &&
             json_get(vocab, key) == json_at(vocab, i);
    }
    CHECK(ok, "vocab member order and hashed json_get");
    CHECK(json_get(vocab, "\xC4\xA0tok") == NULL, "absent key in a hashed object");
    const json_value *merges = json_get(json_get(json_root(d), "model"), "merges");
    CHECK(json_len(merges) == NM && !strcmp(json_str(json_at(merges, NM - 1)), "\xC4\xA0t ok299999"), "merges");
    json_free(d);
    free(buf);
}

/* The real GPT-2 vocabulary: 50,257 members, ids in file order. */
static void test_gpt2_vocab(void) {
    const char *dir = check_shared_data("the GPT-2 encoder.json check is skipped");
    if (!dir) return;
    char path[4200];
    snprintf(path, sizeof path, "%s/gpt2-vocab/encoder.json", dir);
    json_doc *d = NULL;
    lorac_err err = {0};
    CHECK(json_parse_file(path, &d, &err) == LORAC_OK, "%s", err.msg);
    const json_value *r = json_root(d);
    CHECK(json_len(r) == 50257, "members %zu", json_len(r));
    int in_order = 1;
    for (size_t i = 0; i < json_len(r); i++) in_order &= json_num(json_at(r, i)) == (double)i;
    CHECK(in_order, "ids follow file order");
    CHECK(json_get_int(r, "<|endoftext|>", -1, NULL) == 50256, "endoftext id");
    CHECK(json_get_int(r, "\"", -1, NULL) == 1, "escaped quote key");
    CHECK(json_get_int(r, "\xC4\xA0l", -1, NULL) == 300, "\\u0120l is id 300");
    json_free(d);
}

/* Writes with the writer into memory, returns a malloc'd NUL-terminated copy. */
typedef void (*write_fn)(json_writer *w);
static char *write_to_string(write_fn fn, int pretty, int *error) {
    FILE *f = tmpfile();
    json_writer w;
    jw_init(&w, f, pretty);
    fn(&w);
    *error = w.error;
    long n = ftell(f);
    rewind(f);
    char *s = calloc((size_t)n + 1, 1);
    if (fread(s, 1, (size_t)n, f) != (size_t)n) s[0] = 0;
    fclose(f);
    return s;
}

static void write_sample(json_writer *w) {
    jw_object_begin(w);
    jw_key(w, "name");
    jw_string(w, "a\"b\\c\n\x01\x1f\x7f \xC3\xA9");
    jw_key(w, "list");
    jw_array_begin(w);
    jw_int(w, -3);
    jw_double(w, 0.1);
    jw_double(w, 16.0);
    jw_double(w, NAN);
    jw_bool(w, 1);
    jw_null(w);
    jw_array_end(w);
    jw_key(w, "empty");
    jw_object_begin(w);
    jw_object_end(w);
    jw_key(w, "none");
    jw_array_begin(w);
    jw_array_end(w);
    jw_object_end(w);
}

static void write_bad_utf8(json_writer *w) { jw_string_n(w, "a\xff" "b\0c", 5); }
static void write_two_lines(json_writer *w) {
    jw_object_begin(w);
    jw_key(w, "x");
    jw_int(w, 1);
    jw_object_end(w);
    jw_int(w, 2);
}
static void misuse_value_without_key(json_writer *w) {
    jw_object_begin(w);
    jw_int(w, 1);
    jw_object_end(w);
}
static void misuse_mismatched_end(json_writer *w) {
    jw_array_begin(w);
    jw_object_end(w);
}
static void misuse_key_in_array(json_writer *w) {
    jw_array_begin(w);
    jw_key(w, "k");
}
static void misuse_too_deep(json_writer *w) {
    for (int i = 0; i < 64; i++) jw_array_begin(w);
}
static void fine_deep(json_writer *w) {
    for (int i = 0; i < 63; i++) jw_array_begin(w);
    for (int i = 0; i < 63; i++) jw_array_end(w);
}

static void test_writer(void) {
    int error = 0;
    char *s = write_to_string(write_sample, 0, &error);
    const char *want = "{\"name\":\"a\\\"b\\\\c\\n\\u0001\\u001f\x7f \xC3\xA9\",\"list\":[-3,0.1,16.0,null,true,null],"
                       "\"empty\":{},\"none\":[]}";
    CHECK(!error && !strcmp(s, want), "compact: %s", s);
    json_doc *d = parse_ok(s);
    CHECK(d && !strcmp(json_get_str(json_root(d), "name", "", NULL), "a\"b\\c\n\x01\x1f\x7f \xC3\xA9"), "read back");
    json_free(d);
    free(s);
    s = write_to_string(write_sample, 1, &error);
    want = "{\n  \"name\": \"a\\\"b\\\\c\\n\\u0001\\u001f\x7f \xC3\xA9\",\n  \"list\": [\n    -3,\n    0.1,\n    16.0,\n"
           "    null,\n    true,\n    null\n  ],\n  \"empty\": {},\n  \"none\": []\n}";
    CHECK(!error && !strcmp(s, want), "pretty: %s", s);
    free(s);
    s = write_to_string(write_bad_utf8, 0, &error);
    CHECK(!error && !strcmp(s, "\"a\\ufffdb\\u0000c\""), "invalid UTF-8 and NUL: %s", s);
    free(s);
    s = write_to_string(write_two_lines, 0, &error);
    CHECK(!error && !strcmp(s, "{\"x\":1}\n2"), "JSONL: %s", s);
    free(s);
    write_fn bad[] = {misuse_value_without_key, misuse_mismatched_end, misuse_key_in_array, misuse_too_deep};
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        s = write_to_string(bad[k], 0, &error);
        CHECK(error, "misuse %zu not flagged", k);
        free(s);
    }
    s = write_to_string(fine_deep, 0, &error);
    CHECK(!error && strlen(s) == 126, "63 levels are fine");
    free(s);

    /* every string of bytes 1..255 survives write then read (invalid bytes become U+FFFD) */
    char all[256];
    for (int i = 0; i < 255; i++) all[i] = (char)(i + 1);
    FILE *f = tmpfile();
    json_writer w;
    jw_init(&w, f, 0);
    jw_string_n(&w, all, 127); /* ASCII 1..127 */
    long n = ftell(f);
    rewind(f);
    char *text = calloc((size_t)n + 1, 1);
    CHECK(fread(text, 1, (size_t)n, f) == (size_t)n, "read back");
    fclose(f);
    d = parse_ok(text);
    CHECK(d && json_str_len(json_root(d)) == 127 && !memcmp(json_str(json_root(d)), all, 127), "ASCII round trip");
    json_free(d);
    free(text);
}

static void double_case(double v, const char *want_text) {
    FILE *f = tmpfile();
    json_writer w;
    jw_init(&w, f, 0);
    jw_double(&w, v);
    char buf[64] = {0};
    rewind(f);
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    json_doc *d = NULL;
    int rc = json_parse(buf, n, "num", 1, &d, NULL);
    double back = rc ? NAN : json_num(json_root(d));
    CHECK(rc == LORAC_OK && memcmp(&back, &v, sizeof v) == 0, "%.17g written as %s reads back %.17g", v, buf, back);
    if (want_text) CHECK(!strcmp(buf, want_text), "%.17g: got %s want %s", v, buf, want_text);
    json_free(d);
}

static void test_doubles(void) {
    double_case(0.1, "0.1");
    double_case(1e-5, "1e-05");
    double_case(16.0, "16.0");
    double_case(-0.0, "-0.0");
    double_case(1.0 / 3.0, "0.3333333333333333");
    double_case(5e-324, "5e-324");
    double_case(1e300, "1e+300");
    double_case(123456.789, "123456.789");
    double_case(2e-3, "0.002");
    double_case(1.7976931348623157e308, "1.7976931348623157e+308");
    /* random finite bit patterns round-trip */
    lorac_rng rng;
    lorac_rng_seed(&rng, 7);
    int ok = 1;
    for (int i = 0; i < 5000 && ok; i++) {
        uint64_t bits = lorac_rng_u64(&rng);
        double v;
        memcpy(&v, &bits, sizeof v);
        if (!isfinite(v)) continue;
        int before = check_failed_;
        double_case(v, NULL);
        ok = check_failed_ == before;
    }
    CHECK(ok, "random doubles round-trip");
}

int main(void) {
    test_values();
    test_strings();
    test_numbers();
    test_errors();
    test_conformance();
    test_depth();
    test_large();
    test_gpt2_vocab();
    test_writer();
    test_doubles();
    return check_summary();
}
