/* Training data: reading E2E and JSONL (and their errors), the LoRA paper's token layout and loss
 * mask, truncation, and the batcher's shuffle, padding and resumable order. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "lorac/tokenizer.h"
#include "lorac/train.h"

#define FIX LORAC_SOURCE_DIR "/tests/fixtures/train/"
#define EOS 256

/* A byte-level tokenizer (id = byte), so expected sequences can be written by hand. */
static int enc_bytes(void *ctx, const char *text, size_t len, int32_t **ids, size_t *n, lorac_err *err) {
    (void)ctx;
    *n = len;
    *ids = malloc(len ? len * sizeof(int32_t) : 1);
    if (!*ids) return lorac_fail(err, LORAC_ENOMEM, "out of memory");
    for (size_t i = 0; i < len; i++) (*ids)[i] = (unsigned char)text[i];
    /* a tokenizer failure, to check that its message is passed on with FILE:LINE */
    for (size_t i = 0; i + 4 <= len; i++)
        if (memcmp(text + i, "FAIL", 4) == 0) return lorac_fail(err, LORAC_EINVAL, "cannot encode \"FAIL\"");
    return LORAC_OK;
}

static char tmpdir[] = "/tmp/lorac_test_data_XXXXXX";

static const char *write_tmp(const char *name, const char *text, size_t len) {
    static char path[512];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    FILE *f = fopen(path, "wb");
    if (f) {
        fwrite(text, 1, len, f);
        fclose(f);
    }
    return path;
}

static int str_is(const char *s, size_t n, const char *want) { return n == strlen(want) && memcmp(s, want, n) == 0; }

static void test_read_e2e(void) {
    train_examples ex;
    lorac_err err = {0};
    int rc = train_examples_read(FIX "e2e_tiny.txt", TRAIN_FORMAT_AUTO, &ex, &err);
    CHECK(rc == LORAC_OK, "%s", err.msg);
    if (rc) return;
    CHECK(ex.n == 4, "%zu examples (blank line skipped)", ex.n);
    CHECK(str_is(ex.ex[0].context, ex.ex[0].context_len, "name : The Blue Door | Type : pub | near : Old Mill"),
          "context 0");
    /* the line is stripped (trailing space, CR, leading spaces), as the paper's line.strip() */
    CHECK(str_is(ex.ex[0].completion, ex.ex[0].completion_len, "The Blue Door is a pub near Old Mill ."), "completion 0");
    CHECK(str_is(ex.ex[2].context, ex.ex[2].context_len, "name : Caf\xC3\xA9 Rouge | area : riverside"), "context 2");
    CHECK(str_is(ex.ex[2].completion, ex.ex[2].completion_len, "Caf\xC3\xA9 Rouge is by the riverside ."),
          "completion 2 (CRLF)");
    CHECK(ex.ex[2].line == 4 && ex.ex[3].line == 5, "line numbers %d %d", ex.ex[2].line, ex.ex[3].line);
    train_examples_free(&ex);
}

static void test_read_jsonl(void) {
    train_examples ex;
    lorac_err err = {0};
    int rc = train_examples_read(FIX "tiny.jsonl", TRAIN_FORMAT_AUTO, &ex, &err);
    CHECK(rc == LORAC_OK, "%s", err.msg);
    if (rc) return;
    CHECK(ex.n == 4, "%zu examples", ex.n);
    CHECK(str_is(ex.ex[0].context, ex.ex[0].context_len, "Translate to French: cheese") &&
          str_is(ex.ex[0].completion, ex.ex[0].completion_len, "fromage"), "prompt/completion");
    CHECK(str_is(ex.ex[1].context, ex.ex[1].context_len, "name : Zed | food : Thai"), "context/completion");
    CHECK(ex.ex[2].context == NULL && ex.ex[2].line == 4 &&
          str_is(ex.ex[2].completion, ex.ex[2].completion_len,
                 "A whole document, every token predicted.\nSecond line with \xC3\xA9 and \xF0\x9F\x98\x80."),
          "text example (escapes decoded)");
    CHECK(ex.ex[3].context && str_is(ex.ex[3].completion, ex.ex[3].completion_len, "4"), "completion wins over text");
    train_examples_free(&ex);
}

/* Each bad input fails with its status and a message naming the file, the line and the problem. */
static void test_read_errors(void) {
    struct {
        const char *name, *text, *want1, *want2;
        int fmt, code;
    } cases[] = {
        {"nosep.txt", "a||b\nc||d\nno separator here\n", ":3: ", "no \"||\"", TRAIN_FORMAT_AUTO, LORAC_EFORMAT},
        {"twosep.txt", "a||b||c\n", ":1: ", "more than one", TRAIN_FORMAT_E2E, LORAC_EFORMAT},
        {"utf8.txt", "a||b\nctx||caf\xC3\x28\n", ":2:9: ", "invalid UTF-8", TRAIN_FORMAT_AUTO, LORAC_EFORMAT},
        {"surrogate.txt", "ctx||\xED\xA0\x80\n", ":1:6: ", "invalid UTF-8", TRAIN_FORMAT_E2E, LORAC_EFORMAT},
        {"empty.txt", "", "empty.txt: ", "no examples", TRAIN_FORMAT_AUTO, LORAC_EFORMAT},
        {"blank.jsonl", "\n  \n\n", "blank.jsonl: ", "no examples", TRAIN_FORMAT_AUTO, LORAC_EFORMAT},
        {"badjson.jsonl", "{\"text\": \"ok\"}\n{\"text\": \"unterminated}\n", ":2:", "", TRAIN_FORMAT_AUTO,
         LORAC_EFORMAT},
        {"keys.jsonl", "{\"text\": \"ok\"}\n{\"input\": \"x\", \"output\": \"y\"}\n", ":2: ", "expected {\"prompt\"",
         TRAIN_FORMAT_AUTO, LORAC_EFORMAT},
        {"type.jsonl", "{\"text\": 5}\n", ":1: ", "\"text\" must be a string", TRAIN_FORMAT_AUTO, LORAC_EFORMAT},
        {"both.jsonl", "{\"prompt\": \"a\", \"context\": \"b\", \"completion\": \"c\"}\n", ":1: ", "both",
         TRAIN_FORMAT_AUTO, LORAC_EFORMAT},
        {"nocontext.jsonl", "{\"completion\": \"c\"}\n", ":1: ", "no \"prompt\"", TRAIN_FORMAT_AUTO, LORAC_EFORMAT},
        {"array.jsonl", "[1, 2]\n", ":1: ", "JSON object", TRAIN_FORMAT_JSONL, LORAC_EFORMAT},
        {"badutf8.jsonl", "{\"text\": \"caf\xC3\x28\"}\n", ":1:", "", TRAIN_FORMAT_AUTO, LORAC_EFORMAT},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *path = write_tmp(cases[i].name, cases[i].text, strlen(cases[i].text));
        train_examples ex;
        lorac_err err = {0};
        int rc = train_examples_read(path, (train_format)cases[i].fmt, &ex, &err);
        CHECK(rc == cases[i].code, "%s: rc %d (%s)", cases[i].name, rc, err.msg);
        CHECK(strstr(err.msg, path) && strstr(err.msg, cases[i].want1) && strstr(err.msg, cases[i].want2),
              "%s: message \"%s\"", cases[i].name, err.msg);
        if (rc == LORAC_OK) train_examples_free(&ex);
    }
    train_examples ex;
    lorac_err err = {0};
    CHECK(train_examples_read("/nonexistent/x.txt", TRAIN_FORMAT_AUTO, &ex, &err) == LORAC_EIO, "%s", err.msg);
}

/* The paper's layout: enc(ctx) + eos + enc(" " + completion) + eos; loss on the completion. */
static void test_build(void) {
    const char *path = write_tmp("build.jsonl",
                                 "{\"context\":\"ab\",\"completion\":\"cd\"}\n{\"text\":\"xyz\"}\n"
                                 "{\"context\":\"abcdef\",\"completion\":\"g\"}\n",
                                 strlen("{\"context\":\"ab\",\"completion\":\"cd\"}\n{\"text\":\"xyz\"}\n"
                                        "{\"context\":\"abcdef\",\"completion\":\"g\"}\n"));
    train_examples ex;
    lorac_err err = {0};
    if (train_examples_read(path, TRAIN_FORMAT_AUTO, &ex, &err)) { CHECK(0, "%s", err.msg); return; }
    train_data d;
    int rc = train_data_build(&ex, enc_bytes, NULL, EOS, 100, &d, &err);
    CHECK(rc == LORAC_OK, "%s", err.msg);
    if (!rc) {
        const int32_t ids0[] = {'a', 'b', EOS, ' ', 'c', 'd', EOS};
        const int32_t tg0[] = {-100, -100, ' ', 'c', 'd', EOS, -100};
        const int32_t ids1[] = {'x', 'y', 'z', EOS};
        const int32_t tg1[] = {'y', 'z', EOS, -100};
        CHECK(d.n == 3 && d.off[1] == 7 && d.off[2] == 11, "offsets");
        CHECK(memcmp(d.ids, ids0, sizeof ids0) == 0 && memcmp(d.targets, tg0, sizeof tg0) == 0, "sequence 0");
        CHECK(memcmp(d.ids + 7, ids1, sizeof ids1) == 0 && memcmp(d.targets + 7, tg1, sizeof tg1) == 0, "sequence 1");
        CHECK(d.n_targets == 4 + 3 + 3 && d.max_len == 10 && d.n_truncated == 0 && d.n_dropped == 0 && d.pad_id == EOS,
              "counts %zu %zu", d.n_targets, d.max_len);
        train_data_free(&d);
    }
    /* max 5: sequence 0 keeps its start [a b eos ' ' c] and scores ' ' and c; sequence 2
     * (abcdef eos ' ' g eos) keeps only context and is dropped */
    rc = train_data_build(&ex, enc_bytes, NULL, EOS, 5, &d, &err);
    CHECK(rc == LORAC_OK, "%s", err.msg);
    if (!rc) {
        const int32_t tg0[] = {-100, -100, ' ', 'c', -100};
        CHECK(d.n == 2 && d.off[1] == 5 && memcmp(d.targets, tg0, sizeof tg0) == 0, "truncated sequence 0");
        CHECK(d.n_truncated == 2 && d.n_dropped == 1 && d.max_len == 5, "truncated %zu dropped %zu", d.n_truncated,
              d.n_dropped);
        train_data_free(&d);
    }
    train_examples_free(&ex);
    /* nothing left to score at all */
    path = write_tmp("long.txt", "abcdefgh||i\n", 12);
    train_examples_read(path, TRAIN_FORMAT_AUTO, &ex, &err);
    CHECK(train_data_build(&ex, enc_bytes, NULL, EOS, 4, &d, &err) == LORAC_EFORMAT && strstr(err.msg, "long.txt"),
          "%s", err.msg);
    train_examples_free(&ex);
    /* tokenizer errors carry the example's file and line */
    path = write_tmp("fail.txt", "ok||fine\n\nctx||FAIL here\n", 25);
    train_examples_read(path, TRAIN_FORMAT_AUTO, &ex, &err);
    CHECK(train_data_build(&ex, enc_bytes, NULL, EOS, 64, &d, &err) == LORAC_EINVAL && strstr(err.msg, "fail.txt:3: ") &&
          strstr(err.msg, "cannot encode"), "%s", err.msg);
    train_examples_free(&ex);
}

/* 10 sequences of lengths 2..11 (the i-th: i+2 tokens, all scored but the last). */
static void make_data(train_data *d) {
    memset(d, 0, sizeof *d);
    d->n = 10;
    d->off = malloc(11 * sizeof(size_t));
    d->off[0] = 0;
    for (size_t i = 0; i < 10; i++) d->off[i + 1] = d->off[i] + i + 2;
    d->n_tokens = d->off[10];
    d->ids = malloc(d->n_tokens * sizeof(int32_t));
    d->targets = malloc(d->n_tokens * sizeof(int32_t));
    for (size_t i = 0; i < 10; i++)
        for (size_t p = d->off[i]; p < d->off[i + 1]; p++) {
            d->ids[p] = (int32_t)(1000 * i + (p - d->off[i]));
            d->targets[p] = p + 1 < d->off[i + 1] ? d->ids[p + 1] : TRAIN_IGNORE;
        }
    d->max_len = 11;
    d->pad_id = EOS;
}

static void test_batcher(void) {
    train_data d;
    make_data(&d);
    lorac_err err = {0};
    train_batcher b, b2;
    train_batch bt, bt2;
    CHECK(train_batcher_init(&b, &d, 3, 0, 1, 110, &err) == LORAC_OK && b.n_batches == 4, "%s", err.msg);
    train_batch_init(&bt, 3, d.max_len, &err);
    train_batch_init(&bt2, 3, d.max_len, &err);
    /* 3 epochs: each a permutation; rows, padding and counts right */
    size_t orders[3][10];
    for (int e = 0; e < 3; e++) {
        int seen[10] = {0};
        size_t k = 0;
        for (int j = 0; j < 4; j++) {
            CHECK(train_batcher_next(&b, &bt, &err) == LORAC_OK, "%s", err.msg);
            CHECK(bt.epoch == e && bt.batch == (size_t)j && bt.B == (j < 3 ? 3 : 1), "batch %d.%d: B %d", e, j, bt.B);
            size_t tokens = 0, targets = 0;
            int T = 0;
            for (int r = 0; r < bt.B; r++) {
                size_t s = bt.index[r], len = d.off[s + 1] - d.off[s];
                seen[s]++;
                orders[e][k++] = s;
                if ((int)len > T) T = (int)len;
                tokens += len;
                targets += len - 1;
                CHECK(bt.lens[r] == (int32_t)len, "len");
            }
            CHECK(bt.T == T && bt.n_tokens == tokens && bt.n_targets == targets, "T %d tokens %zu", bt.T, bt.n_tokens);
            int ok = 1;
            for (int r = 0; r < bt.B; r++) {
                size_t s = bt.index[r], o = d.off[s];
                for (int t = 0; t < bt.T; t++) {
                    size_t i = (size_t)r * (size_t)bt.T + (size_t)t;
                    if (t < bt.lens[r]) ok &= bt.ids[i] == d.ids[o + t] && bt.targets[i] == d.targets[o + t] && bt.mask[i] == 1;
                    else ok &= bt.ids[i] == EOS && bt.targets[i] == TRAIN_IGNORE && bt.mask[i] == 0;
                }
            }
            CHECK(ok, "rows or padding of batch %d.%d", e, j);
        }
        for (int s = 0; s < 10; s++) CHECK(seen[s] == 1, "epoch %d visits sequence %d %d times", e, s, seen[s]);
    }
    CHECK(memcmp(orders[0], orders[1], sizeof orders[0]) != 0 && memcmp(orders[1], orders[2], sizeof orders[0]) != 0,
          "epochs are shuffled differently");
    /* resume: a fresh batcher seeked to (epoch 1, batch 2) continues exactly like the first */
    train_batcher_seek(&b, 1, 2, &err);
    train_batcher_init(&b2, &d, 3, 0, 1, 110, &err);
    CHECK(train_batcher_seek(&b2, 1, 2, &err) == LORAC_OK, "%s", err.msg);
    for (int j = 0; j < 7; j++) {
        train_batcher_next(&b, &bt, &err);
        train_batcher_next(&b2, &bt2, &err);
        CHECK(bt.B == bt2.B && bt.T == bt2.T && bt.epoch == bt2.epoch && bt.batch == bt2.batch &&
              memcmp(bt.ids, bt2.ids, (size_t)bt.B * (size_t)bt.T * sizeof(int32_t)) == 0 &&
              memcmp(bt.index, bt2.index, (size_t)bt.B * sizeof(size_t)) == 0, "resumed batch %d differs", j);
    }
    CHECK(train_batcher_seek(&b2, 0, 4, &err) == LORAC_EINVAL, "seek past the epoch");
    train_batcher_free(&b2);
    /* another seed, another order; drop_last; no shuffle = file order */
    train_batcher_init(&b2, &d, 3, 1, 1, 111, &err);
    CHECK(b2.n_batches == 3, "drop_last: %zu batches", b2.n_batches);
    size_t other[9];
    for (int j = 0; j < 3; j++) {
        train_batcher_next(&b2, &bt2, &err);
        memcpy(other + 3 * j, bt2.index, 3 * sizeof(size_t));
    }
    CHECK(memcmp(other, orders[0], sizeof other) != 0, "seed 111 gives seed 110's order");
    CHECK(b2.epoch == 1 && b2.batch == 0, "drop_last wraps after 3 batches");
    train_batcher_free(&b2);
    train_batcher_init(&b2, &d, 4, 0, 0, 110, &err);
    train_batch four;
    train_batch_init(&four, 4, d.max_len, &err);
    int in_order = 1;
    for (int j = 0; j < 3; j++) {
        in_order &= train_batcher_next(&b2, &four, &err) == LORAC_OK && four.B == (j < 2 ? 4 : 2);
        for (int r = 0; r < four.B; r++) in_order &= four.index[r] == (size_t)(4 * j + r);
    }
    CHECK(in_order, "shuffle 0 keeps file order");
    train_batcher_free(&b2);
    /* length order: every sequence once, non-increasing lengths, ties in file order */
    train_batcher_init(&b2, &d, 4, 0, TRAIN_ORDER_LENGTH, 0, &err);
    size_t seen = 0, prev_len = (size_t)-1, prev_s = 0;
    int by_len = 1;
    for (int j = 0; j < 3; j++) {
        by_len &= train_batcher_next(&b2, &four, &err) == LORAC_OK;
        for (int r = 0; r < four.B; r++) {
            size_t s = four.index[r], len = d.off[s + 1] - d.off[s];
            by_len &= (size_t)four.lens[r] == len && len <= prev_len && (len < prev_len || s > prev_s || seen == 0);
            seen |= (size_t)1 << s, prev_len = len, prev_s = s;
        }
    }
    CHECK(by_len && seen == ((size_t)1 << d.n) - 1 && d.n == 10, "length order (%zu sequences)", d.n);
    train_batch_free(&four);
    train_batcher_free(&b2);
    /* a batch buffer too small is refused, not overrun */
    train_batch small;
    train_batch_init(&small, 3, 4, &err);
    CHECK(train_batcher_next(&b, &small, &err) == LORAC_EINVAL, "small batch accepted");
    train_batch_free(&small);
    CHECK(train_batcher_init(&b2, &d, 11, 1, 1, 1, &err) == LORAC_EINVAL && strstr(err.msg, "--batch-size"), "%s", err.msg);
    train_batch_free(&bt);
    train_batch_free(&bt2);
    train_batcher_free(&b);
    train_data_free(&d);
}

/* The real E2E files (the paper's train/valid splits), when ../shared/data is present. */
static void test_real_e2e(void) {
    const char *data = check_shared_data("the real E2E files are not read");
    if (!data) return;
    char path[4200];
    snprintf(path, sizeof path, "%s/e2e/train.txt", data);
    train_examples ex;
    lorac_err err = {0};
    int rc = train_examples_read(path, TRAIN_FORMAT_AUTO, &ex, &err);
    CHECK(rc == LORAC_OK, "%s", err.msg);
    if (rc) return;
    CHECK(ex.n == 42061, "%zu training examples", ex.n);
    CHECK(str_is(ex.ex[0].context, ex.ex[0].context_len,
                 "name : The Vaults | Type : pub | price : more than \xC2\xA3 30 | customer rating : 5 out of 5 | "
                 "near : Caf\xC3\xA9 Adriatic"), "first context");
    CHECK(str_is(ex.ex[0].completion, ex.ex[0].completion_len,
                 "The Vaults pub near Caf\xC3\xA9 Adriatic has a 5 star rating . Prices start at \xC2\xA3 30 ."),
          "first completion (trailing space stripped)");
    train_data d;
    rc = train_data_build(&ex, enc_bytes, NULL, EOS, 512, &d, &err);
    CHECK(rc == LORAC_OK && d.n == 42061 && d.n_dropped == 0, "%s", err.msg);
    if (!rc) train_data_free(&d);
    train_examples_free(&ex);
}

static int enc_gpt2(void *ctx, const char *text, size_t len, int32_t **ids, size_t *n, lorac_err *err) {
    return bpe_encode((const bpe_tokenizer *)ctx, text, len, ids, n, err);
}

/* Parses "v0 v1 ..." integers into out (cap); returns the count. */
static size_t parse_ints(const char *s, int32_t *out, size_t cap) {
    size_t k = 0;
    char *end;
    while (k < cap) {
        long v = strtol(s, &end, 10);
        if (end == s) break;
        out[k++] = (int32_t)v;
        s = end;
    }
    return k;
}

/* The paper's E2E pipeline with the GPT-2 tokenizer: tests/fixtures/train/e2e_ref.txt holds the
 * input ids and targets that microsoft/LoRA's gpt2_encode.py + FT_Dataset make of a few lines
 * (tools/train_data_ref.py); lorac's reader + recipe + lorac's BPE must give the same, exactly. */
static void test_e2e_recipe_gpt2(void) {
    const char *data = check_shared_data("the E2E recipe is not checked with the GPT-2 vocabulary");
    if (!data) return;
    char dir[4200];
    snprintf(dir, sizeof dir, "%s/gpt2-vocab", data);
    bpe_tokenizer *tok = NULL;
    lorac_err err = {0};
    if (bpe_load_dir(dir, &tok, &err)) { CHECK(0, "%s", err.msg); return; }
    char *ref = NULL;
    size_t ref_n = 0;
    if (lorac_read_file(FIX "e2e_ref.txt", &ref, &ref_n, &err)) { CHECK(0, "%s", err.msg); bpe_free(tok); return; }
    static int32_t want_ids[1024], want_tg[1024];
    int cases = 0;
    for (char *line = strtok(ref, "\n"); line; line = strtok(NULL, "\n")) {
        if (strncmp(line, "line ", 5) != 0) continue;
        int idx = 0, max_len = 0, used = 0;
        if (sscanf(line, "line %d %d %n", &idx, &max_len, &used) != 2) { CHECK(0, "bad fixture line"); break; }
        const char *text = line + used;
        char *ids_line = strtok(NULL, "\n"), *tg_line = strtok(NULL, "\n");
        if (!ids_line || !tg_line || strncmp(ids_line, "ids ", 4) || strncmp(tg_line, "targets ", 8)) {
            CHECK(0, "bad fixture case %d", idx);
            break;
        }
        size_t n_ids = parse_ints(ids_line + 4, want_ids, 1024), n_tg = parse_ints(tg_line + 8, want_tg, 1024);
        const char *path = write_tmp("e2e_case.txt", text, strlen(text));
        train_examples ex;
        train_data d;
        int rc = train_examples_read(path, TRAIN_FORMAT_E2E, &ex, &err);
        if (!rc) rc = train_data_build(&ex, enc_gpt2, tok, 50256, (size_t)max_len, &d, &err);
        CHECK(rc == LORAC_OK, "case %d: %s", idx, err.msg);
        if (!rc) {
            CHECK(n_ids == n_tg && d.n == 1 && d.n_tokens == n_ids, "case %d: %zu tokens, want %zu", idx, d.n_tokens, n_ids);
            CHECK(d.n_tokens == n_ids && memcmp(d.ids, want_ids, n_ids * sizeof(int32_t)) == 0, "case %d: ids differ", idx);
            CHECK(d.n_tokens == n_tg && memcmp(d.targets, want_tg, n_tg * sizeof(int32_t)) == 0, "case %d: targets differ",
                  idx);
            train_data_free(&d);
        }
        if (ex.ex) train_examples_free(&ex);
        cases++;
    }
    CHECK(cases == 7, "%d fixture cases", cases);
    free(ref);
    bpe_free(tok);
}

int main(void) {
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    test_read_e2e();
    test_read_jsonl();
    test_read_errors();
    test_build();
    test_batcher();
    test_real_e2e();
    test_e2e_recipe_gpt2();
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    return check_summary();
}
