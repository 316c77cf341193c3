/* test_bpe.c — GPT-2 byte-level BPE against tools/bpe_ref.py (encoder.py's algorithm on the Python
 * `regex` module). Exact: every id must match; decode(encode(x)) must give x back byte for byte.
 *
 * Self-contained (tests/fixtures/bpe): the byte alphabet, UTF-8 decoding, the character class of
 * every code point on either side of a class boundary (classes.txt), pre-token splits and ids of
 * ~360 tricky and random texts (cases.txt) with a 2,000-merge toy GPT-2 vocabulary (toy/) and a
 * hand-made one whose merges create lower-ranked pairs (adv/), and load errors.
 * With ../shared/data: the same texts with the full GPT-2 vocabulary, and every line of the E2E
 * train/valid/test sets against per-line hashes of the reference ids (plus full ids for a sample),
 * encoded from several threads at once.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "lorac.h"
#include "tok/tok_internal.h"

#define FIX LORAC_SOURCE_DIR "/tests/fixtures/bpe"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---- a growable id list ---- */
typedef struct ids {
    int32_t *v;
    size_t n, cap;
} ids;

static void ids_push(ids *a, int32_t x) {
    if (a->n == a->cap) {
        a->cap = a->cap ? 2 * a->cap : 16;
        a->v = realloc(a->v, a->cap * sizeof *a->v);
        if (!a->v) abort();
    }
    a->v[a->n++] = x;
}

/* "1 2 3" or "-" (empty) */
static void ids_parse(ids *a, const char *s) {
    a->n = 0;
    if (!strcmp(s, "-")) return;
    while (*s) {
        char *end;
        long v = strtol(s, &end, 10);
        if (end == s) break;
        ids_push(a, (int32_t)v);
        s = end;
    }
}

static int ids_equal(const int32_t *got, size_t n, const ids *want) {
    return n == want->n && (n == 0 || memcmp(got, want->v, n * sizeof *got) == 0);
}

static void ids_print(FILE *f, const char *what, const int32_t *v, size_t n) {
    fprintf(f, "  %s:", what);
    for (size_t i = 0; i < n; i++) fprintf(f, " %d", (int)v[i]);
    fputc('\n', f);
}

/* Undoes tools/bpe_ref.py's escape(): \xNN is a byte; "-" is the empty text. In place. */
static size_t unescape(char *s) {
    if (!strcmp(s, "-")) return 0;
    size_t k = 0;
    for (size_t i = 0; s[i]; k++) {
        if (s[i] == '\\' && s[i + 1] == 'x') {
            char hex[3] = {s[i + 2], s[i + 3], 0};
            s[k] = (char)strtol(hex, NULL, 16);
            i += 4;
        } else {
            s[k] = s[i++];
        }
    }
    return k;
}

/* ---- pieces that need no vocabulary ---- */

static void test_byte_alphabet(void) {
    int seen[324] = {0}, ok = 1;
    for (int b = 0; b < 256; b++) {
        uint32_t cp = tok_byte_cp((uint8_t)b);
        if (cp >= 324 || seen[cp]++ || tok_cp_byte(cp) != b) ok = 0;
    }
    CHECK(ok, "byte alphabet is a bijection onto code points below U+0144");
    CHECK(tok_byte_cp(' ') == 0x120 && tok_byte_cp('\n') == 0x10A && tok_byte_cp('A') == 'A' &&
              tok_byte_cp(0xAD) == 0x143 && tok_byte_cp(0xE9) == 0xE9,
          "known letters: space is G-dot (U+0120), newline U+010A, 0xAD U+0143");
    CHECK(tok_cp_byte(0x144) == -1 && tok_cp_byte(0xAD) == -1 && tok_cp_byte(0x20) == -1, "outside the alphabet");
}

static void test_utf8(void) {
    static const struct {
        const char *s;
        size_t len;
        uint32_t cp;
    } cases[] = {
        {"A", 1, 'A'},          {"\xC3\xA9", 2, 0xE9},         {"\xE2\x82\xAC", 3, 0x20AC},
        {"\xF0\x9F\x98\x80", 4, 0x1F600},                       {"\xF4\x8F\xBF\xBF", 4, 0x10FFFF},
        {"\xC0\x80", 1, 0xDCC0}, /* overlong */                  {"\xE0\x80\x80", 1, 0xDCE0},
        {"\xED\xA0\x80", 1, 0xDCED}, /* surrogate */            {"\xF4\x90\x80\x80", 1, 0xDCF4},
        {"\x80", 1, 0xDC80},     {"\xFF", 1, 0xDCFF},          {"\xE2\x82", 1, 0xDCE2}, /* truncated */
        {"\xC3(", 1, 0xDCC3},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint32_t cp = 0;
        size_t len = tok_utf8_next((const uint8_t *)cases[i].s, strlen(cases[i].s), &cp);
        CHECK(len == cases[i].len && cp == cases[i].cp, "utf8 case %zu: len %zu cp U+%04X", i, len, (unsigned)cp);
    }
    CHECK(tok_class_of(0xDCFF) == TOK_OTHER && tok_class_of(0x110000) == TOK_OTHER, "escaped bytes are 'other'");
}

static void test_classes(void) {
    FILE *f = fopen(FIX "/classes.txt", "r");
    CHECK(f != NULL, "open classes.txt");
    if (!f) return;
    unsigned cp;
    int cls, n = 0, bad = 0;
    while (fscanf(f, "%x %d", &cp, &cls) == 2) {
        n++;
        if (tok_class_of(cp) != cls) {
            if (bad++ < 5) fprintf(stderr, "  U+%04X: class %d, want %d\n", cp, tok_class_of(cp), cls);
        }
    }
    fclose(f);
    CHECK(n > 2000 && bad == 0, "%d of %d boundary code points in the wrong class", bad, n);
}

/* ---- the cases file: pre-token ends and ids with toy, adv and (if present) GPT-2 ---- */

enum { F_TEXT, F_ENDS, F_TOY, F_TOY_SPECIAL, F_ADV, F_GPT2, F_COUNT };

static int check_ids(const bpe_tokenizer *tok, const char *text, size_t len, int special, const ids *want,
                     int line, const char *what) {
    int32_t *got = NULL;
    size_t n = 0;
    lorac_err err = {0};
    int rc = special ? bpe_encode_special(tok, text, len, &got, &n, &err) : bpe_encode(tok, text, len, &got, &n, &err);
    int ok = rc == LORAC_OK && ids_equal(got, n, want);
    CHECK(ok, "cases.txt:%d: %s ids differ (rc %d %s)", line, what, rc, err.msg);
    if (!ok) {
        ids_print(stderr, "got ", got, n);
        ids_print(stderr, "want", want->v, want->n);
    }
    if (!special && rc == LORAC_OK) { /* decode(encode(x)) == x */
        char *back = NULL;
        size_t blen = 0;
        rc = bpe_decode(tok, got, n, &back, &blen, &err);
        CHECK(rc == LORAC_OK && blen == len && memcmp(back, text, len) == 0, "cases.txt:%d: %s round trip", line,
              what);
        free(back);
    }
    free(got);
    return ok;
}

static void test_cases(const bpe_tokenizer *toy, const bpe_tokenizer *adv, const bpe_tokenizer *gpt2) {
    char *data = NULL;
    size_t size = 0;
    lorac_err err = {0};
    CHECK(lorac_read_file(FIX "/cases.txt", &data, &size, &err) == LORAC_OK, "%s", err.msg);
    if (!data) return;
    ids want = {0}, ends = {0};
    int line = 0, ncase = 0;
    for (char *p = data, *nl; *p; p = nl + 1) {
        nl = strchr(p, '\n');
        if (!nl) break;
        *nl = 0;
        line++;
        if (*p == '#') continue;
        char *field[F_COUNT];
        int nf = 0;
        for (char *q = p; nf < F_COUNT; q++) {
            field[nf++] = q;
            q = strchr(q, '\t');
            if (!q) break;
            *q = 0;
        }
        CHECK(nf == F_COUNT, "cases.txt:%d: %d fields", line, nf);
        if (nf != F_COUNT) continue;
        ncase++;
        size_t len = unescape(field[F_TEXT]);
        const char *text = field[F_TEXT];
        /* pre-token ends */
        ids_parse(&ends, field[F_ENDS]);
        size_t pos = 0, k = 0;
        int ok = 1;
        while (pos < len) {
            pos = pretok_gpt2_next((const uint8_t *)text, len, pos);
            if (k >= ends.n || ends.v[k++] != (int32_t)pos) ok = 0;
        }
        CHECK(ok && k == ends.n, "cases.txt:%d: pre-token split differs", line);
        ids_parse(&want, field[F_TOY]);
        check_ids(toy, text, len, 0, &want, line, "toy");
        ids_parse(&want, field[F_TOY_SPECIAL]);
        check_ids(toy, text, len, 1, &want, line, "toy with specials");
        ids_parse(&want, field[F_ADV]);
        check_ids(adv, text, len, 0, &want, line, "adv");
        if (gpt2) {
            ids_parse(&want, field[F_GPT2]);
            check_ids(gpt2, text, len, 0, &want, line, "gpt2");
        }
    }
    printf("cases.txt: %d texts (GPT-2 vocabulary %s)\n", ncase, gpt2 ? "included" : "absent");
    CHECK(ncase > 300, "only %d cases", ncase);
    free(want.v);
    free(ends.v);
    free(data);
}

static void test_api(const bpe_tokenizer *toy) {
    CHECK(bpe_vocab_size(toy) == 2257, "toy vocab size %d", bpe_vocab_size(toy));
    CHECK(bpe_token_id(toy, "<|endoftext|>") == 2256, "toy <|endoftext|>");
    CHECK(bpe_token_id(toy, "\xC4\xA0t") == 256, "first merge: G-dot t is id 256"); /* "Ġt" */
    CHECK(bpe_token_id(toy, "no such token") == -1 && bpe_token_id(toy, "\xE4\xB8\xAD") == -1, "unknown token");
    size_t len = 0;
    const char *b = bpe_token_bytes(toy, 256, &len);
    CHECK(b && len == 2 && !memcmp(b, " t", 2), "token 256 is \" t\"");
    CHECK(bpe_token_bytes(toy, 2257, &len) == NULL && bpe_token_bytes(toy, -1, &len) == NULL, "ids out of range");
    int32_t bad[2] = {64, 99999};
    char *text = NULL;
    lorac_err err = {0};
    CHECK(bpe_decode(toy, bad, 2, &text, &len, &err) == LORAC_EINVAL && strstr(err.msg, "99999"), "decode bad id: %s",
          err.msg);
    int32_t *out = NULL;
    size_t n = 99;
    CHECK(bpe_encode(toy, "", 0, &out, &n, &err) == LORAC_OK && n == 0 && out == NULL, "empty text");
}

/* ---- load errors ---- */

static char tmpdir[64];

static void write_text(const char *name, const char *text) {
    char path[256];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    FILE *f = fopen(path, "wb");
    if (!f) abort();
    fputs(text, f);
    fclose(f);
}

/* A vocab.json with the 256 byte tokens (id = byte), then extra ("TOKEN": ID pairs, or ""). */
static void write_vocab(const char *name, const char *extra) {
    char *buf = malloc(8192), *p = buf;
    p += sprintf(p, "{");
    for (int b = 0; b < 256; b++) {
        uint32_t cp = tok_byte_cp((uint8_t)b);
        char ch[8];
        if (cp == '"' || cp == '\\') sprintf(ch, "\\%c", (char)cp);
        else if (cp < 0x80) sprintf(ch, "%c", (char)cp);
        else sprintf(ch, "%c%c", (char)(0xC0 | (cp >> 6)), (char)(0x80 | (cp & 0x3F)));
        p += sprintf(p, "%s\"%s\": %d", b ? ", " : "", ch, b);
    }
    sprintf(p, "%s%s}", *extra ? ", " : "", extra);
    write_text(name, buf);
    free(buf);
}

static void expect_error(const char *what, int code, const char *want1, const char *want2) {
    char vocab[128], merges[128];
    snprintf(vocab, sizeof vocab, "%s/vocab.json", tmpdir);
    snprintf(merges, sizeof merges, "%s/merges.txt", tmpdir);
    bpe_tokenizer *tok = (bpe_tokenizer *)1;
    lorac_err err = {0};
    int rc = bpe_load(vocab, merges, &tok, &err);
    CHECK(rc == code && (tok == NULL) == (code != LORAC_OK) && strstr(err.msg, want1) && strstr(err.msg, want2) &&
              !strchr(err.msg, '\n'),
          "%s: rc %d, message '%s'", what, rc, err.msg);
    bpe_free(tok);
}

static void test_errors(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/lorac_test_bpe_XXXXXX");
    if (!mkdtemp(tmpdir)) {
        CHECK(0, "mkdtemp");
        return;
    }
    bpe_tokenizer *tok = NULL;
    lorac_err err = {0};
    CHECK(bpe_load_dir(tmpdir, &tok, &err) == LORAC_ENOTFOUND && strstr(err.msg, "vocab.json + merges.txt"),
          "empty dir: %s", err.msg);
    write_vocab("vocab.json", "\"ab\": 256, \"abc\": 257");
    CHECK(bpe_load_dir(tmpdir, &tok, &err) == LORAC_ENOTFOUND && strstr(err.msg, "merges.txt"), "no merges: %s",
          err.msg);

    write_text("merges.txt", "#version: 0.2\na b\nab c\n");
    CHECK(bpe_load_dir(tmpdir, &tok, &err) == LORAC_OK, "good files: %s", err.msg);
    int32_t *out = NULL;
    size_t n = 0;
    CHECK(tok && bpe_encode(tok, "abcab", 5, &out, &n, &err) == LORAC_OK && n == 2 && out[0] == 257 && out[1] == 256,
          "abcab -> abc ab");
    free(out);
    bpe_free(tok);

    write_text("merges.txt", "#version: 0.2\na b\nab\n");
    expect_error("one token", LORAC_EFORMAT, "merges.txt:3:", "two tokens");
    write_text("merges.txt", "a b\nab  c\n");
    expect_error("two spaces", LORAC_EFORMAT, "merges.txt:2:", "two tokens");
    write_text("merges.txt", "a b\n\nab c\n");
    expect_error("empty line", LORAC_EFORMAT, "merges.txt:2:", "two tokens");
    write_text("merges.txt", "a b\nab zz\n");
    expect_error("unknown part", LORAC_EFORMAT, "merges.txt:2:", "\"zz\" is not in");
    write_text("merges.txt", "a b\nb c\n");
    expect_error("unknown result", LORAC_EFORMAT, "merges.txt:2:", "merging \"b c\"");
    write_text("merges.txt", "a b\na \xE4\xB8\xAD\n");
    expect_error("outside alphabet", LORAC_EFORMAT, "merges.txt:2:", "U+4E2D");
    write_text("merges.txt", "a b\r\nab c\r\n");
    expect_error("CRLF is fine", LORAC_OK, "", "");

    write_text("vocab.json", "[1, 2]");
    expect_error("not an object", LORAC_EFORMAT, "vocab.json", "JSON object");
    write_text("vocab.json", "{\"a\": 1,}");
    expect_error("bad JSON", LORAC_EFORMAT, "vocab.json:1:", "");
    write_vocab("vocab.json", "\"ab\": -1");
    expect_error("negative id", LORAC_EFORMAT, "vocab.json", "\"ab\"");
    write_vocab("vocab.json", "\"ab\": 2.5");
    expect_error("fractional id", LORAC_EFORMAT, "vocab.json", "\"ab\"");
    write_vocab("vocab.json", "\"ab\": 256, \"abc\": 256");
    expect_error("repeated id", LORAC_EFORMAT, "vocab.json", "id 256");
    write_vocab("vocab.json", "\"ab\": 256, \"ab\": 257");
    expect_error("repeated token", LORAC_EFORMAT, "vocab.json", "appears twice");
    write_vocab("vocab.json", "\"a\\u4e2d\": 256");
    expect_error("outside alphabet", LORAC_EFORMAT, "vocab.json", "U+4E2D");
    write_text("vocab.json", "{\"a\": 0, \"b\": 1}");
    expect_error("missing bytes", LORAC_EFORMAT, "vocab.json", "no token for byte 0x00");

    char path[128];
    snprintf(path, sizeof path, "%s/vocab.json", tmpdir);
    unlink(path);
    snprintf(path, sizeof path, "%s/merges.txt", tmpdir);
    unlink(path);
    rmdir(tmpdir);
    CHECK(bpe_load(FIX "/none.json", FIX "/toy/merges.txt", &tok, &err) == LORAC_EIO && strstr(err.msg, "none.json"),
          "missing vocab: %s", err.msg);
}

/* ---- GPT-2: facts, specials and every E2E line ---- */

static uint32_t fnv32(const int32_t *v, size_t n) {
    uint32_t h = 0x811C9DC5u;
    for (size_t i = 0; i < n; i++) {
        uint32_t x = (uint32_t)v[i];
        for (int b = 0; b < 4; b++) h = (h ^ ((x >> (8 * b)) & 0xFF)) * 0x01000193u;
    }
    return h;
}

static void test_gpt2_facts(const bpe_tokenizer *gpt2) {
    int32_t *out = NULL;
    size_t n = 0;
    lorac_err err = {0};
    CHECK(bpe_encode(gpt2, "Hello world", 11, &out, &n, &err) == LORAC_OK && n == 2 && out[0] == 15496 &&
              out[1] == 995,
          "Hello world -> 15496 995");
    free(out);
    CHECK(bpe_vocab_size(gpt2) == 50257 && bpe_token_id(gpt2, "<|endoftext|>") == 50256, "vocab size, eot");
    const char *t = "a<|endoftext|>";
    CHECK(bpe_encode(gpt2, t, strlen(t), &out, &n, &err) == LORAC_OK && n > 2 && out[n - 1] != 50256,
          "plain encode leaves <|endoftext|> as text");
    free(out);
    CHECK(bpe_encode_special(gpt2, t, strlen(t), &out, &n, &err) == LORAC_OK && n == 2 && out[0] == 64 &&
              out[1] == 50256,
          "encode_special maps it to 50256");
    free(out);
}

typedef struct e2e_split {
    char *data;
    size_t size;
    char **line;
    size_t *len;
    size_t nlines;
} e2e_split;

/* Encodes every line (in parallel: the tokenizer is shared, read-only) and compares its hash. */
static size_t test_e2e_split(const bpe_tokenizer *gpt2, const char *shared, const char *split, double *secs) {
    char path[4200];
    e2e_split s = {0};
    lorac_err err = {0};
    snprintf(path, sizeof path, "%s/e2e/%s.txt", shared, split);
    CHECK(lorac_read_file(path, &s.data, &s.size, &err) == LORAC_OK, "%s", err.msg);
    char hpath[256];
    snprintf(hpath, sizeof hpath, FIX "/e2e_%s.fnv32", split);
    char *hashes = NULL;
    size_t hsize = 0;
    CHECK(lorac_read_file(hpath, &hashes, &hsize, &err) == LORAC_OK, "%s", err.msg);
    if (!s.data || !hashes) {
        free(s.data);
        free(hashes);
        return 0;
    }
    for (size_t i = 0; i < s.size; i++) s.nlines += s.data[i] == '\n';
    if (s.size && s.data[s.size - 1] != '\n') s.nlines++;
    s.line = malloc(s.nlines * sizeof *s.line);
    s.len = malloc(s.nlines * sizeof *s.len);
    size_t k = 0;
    for (char *p = s.data; p < s.data + s.size; k++) {
        char *nl = memchr(p, '\n', (size_t)(s.data + s.size - p));
        s.line[k] = p;
        s.len[k] = nl ? (size_t)(nl - p) : (size_t)(s.data + s.size - p);
        p += s.len[k] + 1;
    }
    CHECK(hsize == 4 * s.nlines, "%s: %zu lines but %zu hashes", split, s.nlines, hsize / 4);
    uint32_t *got_hash = calloc(s.nlines, sizeof *got_hash);
    long nbad_round = 0, nfail = 0;
    double t0 = now_s();
#pragma omp parallel for schedule(dynamic, 256) reduction(+ : nbad_round, nfail)
    for (long i = 0; i < (long)s.nlines; i++) {
        int32_t *ids = NULL;
        size_t n = 0;
        char *back = NULL;
        size_t blen = 0;
        if (bpe_encode(gpt2, s.line[i], s.len[i], &ids, &n, NULL) != LORAC_OK) {
            nfail++;
            continue;
        }
        got_hash[i] = fnv32(ids, n);
        if (bpe_decode(gpt2, ids, n, &back, &blen, NULL) != LORAC_OK || blen != s.len[i] ||
            memcmp(back, s.line[i], blen) != 0)
            nbad_round++;
        free(back);
        free(ids);
    }
    *secs += now_s() - t0;
    size_t nbad = 0;
    for (size_t i = 0; i < s.nlines && hsize == 4 * s.nlines; i++) {
        const uint8_t *h = (const uint8_t *)hashes + 4 * i;
        uint32_t want = (uint32_t)h[0] | (uint32_t)h[1] << 8 | (uint32_t)h[2] << 16 | (uint32_t)h[3] << 24;
        if (got_hash[i] != want && nbad++ < 5) fprintf(stderr, "  %s.txt line %zu: ids differ\n", split, i + 1);
    }
    CHECK(nfail == 0 && nbad == 0 && nbad_round == 0, "%s: %ld failed, %zu of %zu lines differ, %ld round trips bad",
          split, nfail, nbad, s.nlines, nbad_round);

    /* the sampled lines, id by id */
    FILE *f = fopen(FIX "/e2e_sample.txt", "r");
    char *buf = malloc(1 << 16);
    ids want = {0};
    size_t nsample = 0;
    while (f && fgets(buf, 1 << 16, f)) {
        char sname[16];
        size_t lineno;
        int off = 0;
        if (sscanf(buf, "%15s %zu %n", sname, &lineno, &off) != 2 || strcmp(sname, split)) continue;
        ids_parse(&want, buf + off);
        int32_t *got = NULL;
        size_t n = 0;
        int ok = lineno >= 1 && lineno <= s.nlines &&
                 bpe_encode(gpt2, s.line[lineno - 1], s.len[lineno - 1], &got, &n, NULL) == LORAC_OK &&
                 ids_equal(got, n, &want);
        CHECK(ok, "%s.txt line %zu: ids differ from e2e_sample.txt", split, lineno);
        if (!ok) {
            ids_print(stderr, "got ", got, n);
            ids_print(stderr, "want", want.v, want.n);
        }
        free(got);
        nsample++;
    }
    CHECK(nsample > 5, "%s: %zu sampled lines", split, nsample);
    if (f) fclose(f);
    free(buf);
    free(want.v);
    free(got_hash);
    free(s.line);
    free(s.len);
    free(s.data);
    free(hashes);
    return s.nlines;
}

int main(void) {
    test_byte_alphabet();
    test_utf8();
    test_classes();

    bpe_tokenizer *toy = NULL, *adv = NULL, *gpt2 = NULL;
    lorac_err err = {0};
    CHECK(bpe_load_dir(FIX "/toy", &toy, &err) == LORAC_OK, "toy (vocab.json + merges.txt): %s", err.msg);
    CHECK(bpe_load_dir(FIX "/adv", &adv, &err) == LORAC_OK, "adv (encoder.json + vocab.bpe): %s", err.msg);
    const char *shared = check_shared_data("the GPT-2 vocabulary and E2E checks are skipped");
    if (shared) {
        char dir[4200];
        snprintf(dir, sizeof dir, "%s/gpt2-vocab", shared);
        CHECK(bpe_load_dir(dir, &gpt2, &err) == LORAC_OK, "gpt2: %s", err.msg);
    }
    if (toy && adv) {
        test_cases(toy, adv, gpt2);
        test_api(toy);
    }
    test_errors();
    if (gpt2) {
        test_gpt2_facts(gpt2);
        static const char *splits[] = {"train", "valid", "test"};
        size_t total = 0;
        double secs = 0;
        for (int i = 0; i < 3; i++) total += test_e2e_split(gpt2, shared, splits[i], &secs);
        printf("e2e: %zu lines compared with the reference ids (encode+decode %.2f s, %d threads)\n", total, secs,
               lorac_get_threads());
    }
    bpe_free(toy);
    bpe_free(adv);
    bpe_free(gpt2);
    return check_summary();
}
