/* Training and evaluation data for every task: a causal LM's E2E / JSONL / chat files tokenized by the
 * model, or a GLUE task's TSV encoded as sentence(-pair) sequences with a class or score each. */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "lorac/finetune.h"
#include "lorac/json.h"

static int encode_cb(void *ctx, const char *text, size_t len, int32_t **ids, size_t *n, lorac_err *err) {
    return model_encode(ctx, text, len, 0, ids, n, err);
}

/* Puts bos in front of every sequence (unscored), for tokenizers that add one. */
static int prepend_bos(train_data *d, int32_t bos, lorac_err *err) {
    size_t n = d->n_tokens + d->n;
    int32_t *ids = malloc(n * sizeof *ids + 1), *tg = malloc(n * sizeof *tg + 1);
    if (!ids || !tg) {
        free(ids);
        free(tg);
        return lorac_fail(err, LORAC_ENOMEM, "train: out of memory");
    }
    size_t o = 0, start = d->off[0];
    for (size_t i = 0; i < d->n; i++) {
        size_t end = d->off[i + 1]; /* old offsets: off[i] was already rewritten */
        d->off[i] = o;
        ids[o] = bos;
        tg[o++] = TRAIN_IGNORE; /* bos predicts the first token: context, or the start of a text */
        for (size_t p = start; p < end; p++, o++) {
            ids[o] = d->ids[p];
            tg[o] = d->targets[p];
        }
        start = end;
    }
    d->off[d->n] = o;
    free(d->ids);
    free(d->targets);
    d->ids = ids;
    d->targets = tg;
    d->n_tokens = n;
    d->max_len++;
    return LORAC_OK;
}

/* ---------------------------------------------------------------- chat data */

/* Appends n tokens (scored or not) to a growing sequence. */
typedef struct seqbuf {
    int32_t *ids;
    uint8_t *scored; /* token i is a target */
    size_t n, cap;
} seqbuf;

static int seq_push(seqbuf *b, const int32_t *ids, size_t n, int scored, lorac_err *err) {
    if (b->n + n > b->cap) {
        size_t cap = (b->n + n) * 2 + 64;
        int32_t *ni = realloc(b->ids, cap * sizeof *ni);
        if (ni) b->ids = ni;
        uint8_t *ns = realloc(b->scored, cap);
        if (ns) b->scored = ns;
        if (!ni || !ns) return lorac_fail(err, LORAC_ENOMEM, "train: out of memory");
        b->cap = cap;
    }
    memcpy(b->ids + b->n, ids, n * sizeof *ids);
    memset(b->scored + b->n, scored, n);
    b->n += n;
    return LORAC_OK;
}

static int seq_push_text(seqbuf *b, model *m, const char *text, size_t len, int scored, lorac_err *err) {
    int32_t *ids = NULL;
    size_t n = 0;
    int rc = model_encode(m, text, len, 1, &ids, &n, err);
    if (!rc) rc = seq_push(b, ids, n, scored, err);
    free(ids);
    return rc;
}

/* One {"messages": [...]} line as tokens: the ChatML text, assistant turns scored. The text before
 * each assistant turn is format(messages before it, generation prompt); the turn is what
 * format(messages through it) adds to that. */
static int chat_tokens(model *m, const json_value *msgs, const char *where, seqbuf *b, lorac_err *err) {
    size_t n = json_len(msgs);
    if (json_kind(msgs) != JSON_ARRAY || n == 0)
        return lorac_fail(err, LORAC_EFORMAT, "%s: \"messages\" must be a non-empty array", where);
    model_chat_msg *cm = calloc(n, sizeof *cm);
    if (!cm) return lorac_fail(err, LORAC_ENOMEM, "train: out of memory");
    int rc = LORAC_OK;
    for (size_t i = 0; i < n && !rc; i++) {
        const json_value *v = json_at(msgs, i);
        const json_value *r = json_get(v, "role"), *c = json_get(v, "content");
        if (!r || !c || json_kind(r) != JSON_STRING || json_kind(c) != JSON_STRING)
            rc = lorac_fail(err, LORAC_EFORMAT, "%s: message %zu needs string \"role\" and \"content\"", where, i + 1);
        else if (strcmp(json_str(r), "system") && strcmp(json_str(r), "user") && strcmp(json_str(r), "assistant"))
            rc = lorac_fail(err, LORAC_EFORMAT, "%s: message %zu has role \"%s\" (system, user, assistant)", where, i + 1,
                            json_str(r));
        else if (strlen(json_str(c)) != json_str_len(c))
            rc = lorac_fail(err, LORAC_EFORMAT, "%s: message %zu contains a NUL character", where, i + 1);
        else {
            cm[i].role = json_str(r);
            cm[i].content = json_str(c);
        }
    }
    size_t done = 0; /* bytes of the formatted text already turned into tokens */
    const model_tokens *k = model_tok(m);
    if (!rc && k->add_bos) rc = seq_push(b, &k->bos, 1, 0, err);
    for (size_t k = 0; k < n && !rc; k++) {
        if (strcmp(cm[k].role, "assistant")) continue;
        char *pre = NULL, *full = NULL;
        size_t pl = 0, fl = 0;
        rc = model_chat_format(m, cm, (int)k, 1, &pre, &pl, err);
        if (!rc) rc = model_chat_format(m, cm, (int)k + 1, 0, &full, &fl, err);
        if (!rc && (pl < done || fl < pl || memcmp(full, pre, pl)))
            rc = lorac_fail(err, LORAC_EFORMAT, "%s: the chat template does not grow by appending turns", where);
        if (!rc) rc = seq_push_text(b, m, pre + done, pl - done, 0, err);
        if (!rc) rc = seq_push_text(b, m, full + pl, fl - pl, 1, err);
        done = fl;
        free(pre);
        free(full);
    }
    if (!rc && done == 0) rc = lorac_fail(err, LORAC_EFORMAT, "%s: no assistant message to learn from", where);
    free(cm);
    return rc;
}

/* Whether the first non-blank line of PATH is a JSON object with "messages". */
static int is_chat_file(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    char line[4096];
    int chat = 0;
    while (fgets(line, sizeof line, f)) {
        const char *p = line;
        while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n') p++;
        if (!*p) continue;
        chat = *p == '{' && strstr(p, "\"messages\"") != NULL;
        break;
    }
    fclose(f);
    return chat;
}

static int load_chat(model *m, const char *path, size_t max_len, train_data *d, lorac_err *err) {
    char *text = NULL;
    size_t len = 0;
    int rc = lorac_read_file(path, &text, &len, err);
    if (rc) return rc;
    memset(d, 0, sizeof *d);
    d->pad_id = model_tok(m)->eos >= 0 ? model_tok(m)->eos : 0;
    seqbuf b = {0};
    size_t cap_seq = 0, cap_tok = 0;
    int line = 0;
    for (char *p = text; !rc && p < text + len;) {
        char *e = memchr(p, '\n', (size_t)(text + len - p));
        size_t ll = e ? (size_t)(e - p) : (size_t)(text + len - p);
        line++;
        char *q = p;
        p += ll + 1;
        while (ll && (*q == ' ' || *q == '\t' || *q == '\r')) q++, ll--;
        if (!ll) continue;
        char where[1200];
        snprintf(where, sizeof where, "%s:%d", path, line);
        json_doc *doc = NULL;
        if ((rc = json_parse(q, ll, path, line, &doc, err))) break;
        const json_value *msgs = json_get(json_root(doc), "messages");
        b.n = 0;
        if (!msgs) rc = lorac_fail(err, LORAC_EFORMAT, "%s: no \"messages\" (every line of a chat file needs one)", where);
        if (!rc) rc = chat_tokens(m, msgs, where, &b, err);
        json_free(doc);
        if (rc) break;
        size_t n = b.n;
        if (n > max_len) {
            n = max_len;
            d->n_truncated++;
        }
        size_t scored = 0;
        for (size_t i = 1; i < n; i++) scored += b.scored[i];
        if (n < 2 || !scored) {
            d->n_dropped++;
            continue;
        }
        if (d->n + 2 > cap_seq || d->n_tokens + n > cap_tok) { /* grow */
            cap_seq = cap_seq * 2 + 64;
            cap_tok = (d->n_tokens + n) * 2 + 1024;
            size_t *no = realloc(d->off, cap_seq * sizeof *no);
            if (no) d->off = no;
            int32_t *ni = realloc(d->ids, cap_tok * sizeof *ni);
            if (ni) d->ids = ni;
            int32_t *nt = realloc(d->targets, cap_tok * sizeof *nt);
            if (nt) d->targets = nt;
            if (!no || !ni || !nt) {
                rc = lorac_fail(err, LORAC_ENOMEM, "train: out of memory");
                break;
            }
        }
        size_t o = d->n_tokens;
        d->off[d->n] = o;
        for (size_t i = 0; i < n; i++) {
            d->ids[o + i] = b.ids[i];
            d->targets[o + i] = i + 1 < n && b.scored[i + 1] ? b.ids[i + 1] : TRAIN_IGNORE;
        }
        d->n++;
        d->n_tokens += n;
        d->off[d->n] = d->n_tokens;
        d->n_targets += scored;
        if (n > d->max_len) d->max_len = n;
    }
    free(b.ids);
    free(b.scored);
    free(text);
    if (!rc && d->n == 0) rc = lorac_fail(err, LORAC_EFORMAT, "%s: no conversation with an assistant turn to learn from", path);
    if (rc) train_data_free(d);
    return rc;
}

static int load_lm(model *m, const char *path, size_t max_len, train_data *d, lorac_err *err) {
    const model_tokens *k = model_tok(m);
    if (is_chat_file(path)) return load_chat(m, path, max_len, d, err);
    if (k->eos < 0) return lorac_fail(err, LORAC_EFORMAT, "%s: the model has no end-of-text token for this data format", model_path(m));
    train_examples ex;
    int rc = train_examples_read(path, TRAIN_FORMAT_AUTO, &ex, err);
    if (rc) return rc;
    int bos = k->add_bos && max_len > 2;
    rc = train_data_build(&ex, encode_cb, m, k->eos, max_len - (size_t)bos, d, err);
    train_examples_free(&ex);
    if (!rc && bos && (rc = prepend_bos(d, k->bos, err))) train_data_free(d);
    return rc;
}

/* ---------------------------------------------------------------- GLUE */

/* Every example of d encoded as one sequence: ids and token types, its class or score; nothing is
 * scored per token. */
static int encode_glue(const model *m, const glue_task *t, const glue_data *g, size_t max_len, train_data *d, lorac_err *err) {
    glue_encoder *e = NULL;
    int rc = glue_encoder_for_model(m, &e, err);
    size_t cap = g->n * max_len;
    if (!rc && (!(d->off = malloc((g->n + 1) * sizeof *d->off)) || !(d->ids = malloc(cap * sizeof *d->ids + 1)) ||
                !(d->targets = malloc(cap * sizeof *d->targets + 1)) || !(d->type_ids = malloc(cap * sizeof *d->type_ids + 1)) ||
                !(t->num_labels > 1 ? (void *)(d->labels = malloc(g->n * sizeof *d->labels + 1))
                                    : (void *)(d->scores = malloc(g->n * sizeof *d->scores + 1)))))
        rc = lorac_fail(err, LORAC_ENOMEM, "%s: out of memory", g->path);
    for (size_t i = 0; i < g->n && !rc; i++) {
        int len = 0;
        d->off[i] = d->n_tokens;
        rc = glue_encode(e, g->ex[i].a, g->ex[i].b, (int)max_len, d->ids + d->n_tokens, d->type_ids + d->n_tokens, &len, err);
        for (int k = 0; k < len; k++) d->targets[d->n_tokens + k] = TRAIN_IGNORE;
        if (d->labels) d->labels[i] = g->ex[i].label;
        if (d->scores) d->scores[i] = g->ex[i].score;
        d->n_tokens += (size_t)len;
        d->max_len = (size_t)len > d->max_len ? (size_t)len : d->max_len;
    }
    d->n = g->n;
    if (d->off) d->off[d->n] = d->n_tokens;
    d->pad_id = e ? glue_encoder_pad(e) : 0;
    glue_encoder_free(e);
    return rc;
}

static int is_dir(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static int load_glue(model *m, const glue_task *t, const char *path, size_t max_len, train_data *d, lorac_err *err) {
    char file[4200];
    snprintf(file, sizeof file, is_dir(path) ? "%s/train.tsv" : "%s", path);
    glue_data g;
    int rc = glue_read_tsv(t, file, &g, err);
    if (rc) return rc;
    rc = encode_glue(m, t, &g, max_len, d, err);
    glue_data_free(&g);
    return rc;
}

int ft_load_data(model *m, const glue_task *task, const char *path, size_t max_len, train_data *d, lorac_err *err) {
    memset(d, 0, sizeof *d);
    int rc = task ? load_glue(m, task, path, max_len, d, err) : load_lm(m, path, max_len, d, err);
    if (rc) train_data_free(d);
    return rc;
}
