/* POST /v1/completions and /v1/chat/completions: the request's fields checked (a wrong type or range
 * is a 400 naming the field), its prompt made as `lorac generate` makes it (bos when the tokenizer
 * adds one; a chat's messages through the model's template), submitted to the engine, and answered
 * whole or as server-sent events. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "serve/http_internal.h"

typedef struct gen_request {
    int chat, stream, n_lora;
    char model[256];
    serve_lora lora[SERVE_MAX_LORA];
    serve_params p;
    int32_t *ids;
    int n_ids;
} gen_request;

#define BAD(...) (snprintf(why, why_size, __VA_ARGS__), LORAC_EINVAL)

/* "stop": a string or up to 4 non-empty strings of at most 63 bytes. */
static int parse_stop(const json_value *v, serve_params *p, char *why, size_t why_size) {
    if (!v || json_kind(v) == JSON_NULL) return 0;
    int arr = json_kind(v) == JSON_ARRAY;
    size_t n = arr ? json_len(v) : 1;
    if (!arr && json_kind(v) != JSON_STRING) return BAD("\"stop\" must be a string or an array of strings");
    if (n > SERVE_MAX_STOP) return BAD("\"stop\" takes at most %d strings", SERVE_MAX_STOP);
    for (size_t i = 0; i < n; i++) {
        const json_value *s = arr ? json_at(v, i) : v;
        if (json_kind(s) != JSON_STRING || !json_str_len(s) || json_str_len(s) >= sizeof p->stop[0] ||
            strlen(json_str(s)) != json_str_len(s))
            return BAD("\"stop\" strings must be 1 to %zu bytes", sizeof p->stop[0] - 1);
        memcpy(p->stop[p->n_stop++], json_str(s), json_str_len(s) + 1);
    }
    return 0;
}

/* "lora": [{"name": string, "scale": number}] (llama.cpp's "id" is not a name here). */
static int parse_lora(const json_value *v, gen_request *g, char *why, size_t why_size) {
    if (!v || json_kind(v) == JSON_NULL) return 0;
    if (json_kind(v) != JSON_ARRAY) return BAD("\"lora\" must be an array of {\"name\", \"scale\"}");
    for (size_t i = 0; i < json_len(v); i++) {
        const json_value *o = json_at(v, i);
        int bad = json_kind(o) != JSON_OBJECT;
        const char *name = json_get_str(o, "name", NULL, &bad);
        double scale = json_get_num(o, "scale", 1.0, &bad);
        if (bad || !name) return BAD("\"lora\"[%zu] must be {\"name\": string, \"scale\": number}", i);
        if (g->n_lora == SERVE_MAX_LORA) return BAD("at most %d adapters per request", SERVE_MAX_LORA);
        g->lora[g->n_lora++] = (serve_lora){name, (float)scale};
    }
    return 0;
}

/* The sampling fields, each checked for its type and range. */
static int parse_params(const json_value *root, gen_request *g, int ctx, char *why, size_t why_size) {
    int bad = 0;
    serve_params *p = &g->p;
    serve_params_init(p);
    long long mt = json_get_int(root, "max_tokens", g->chat ? -1 : 16, &bad);
    if (bad || mt == 0 || mt < -1 || mt > ctx) return BAD("\"max_tokens\" must be an integer in [1, %d]", ctx);
    p->max_tokens = (int)mt;
    double t = json_get_num(root, "temperature", 1.0, &bad);
    if (bad || !(t >= 0.0 && t <= 2.0)) return BAD("\"temperature\" must be a number in [0, 2]");
    double tp = json_get_num(root, "top_p", 1.0, &bad);
    if (bad || !(tp > 0.0 && tp <= 1.0)) return BAD("\"top_p\" must be a number in (0, 1]");
    long long tk = json_get_int(root, "top_k", 0, &bad);
    if (bad || tk < -1 || tk > 1000000) return BAD("\"top_k\" must be an integer >= 0 (-1: off)");
    long long seed = json_get_int(root, "seed", 0, &bad);
    if (bad) return BAD("\"seed\" must be an integer");
    long long n = json_get_int(root, "n", 1, &bad);
    if (bad || n != 1) return BAD("\"n\" must be 1");
    g->stream = json_get_bool(root, "stream", 0, &bad);
    if (bad) return BAD("\"stream\" must be a boolean");
    p->ignore_eos = json_get_bool(root, "ignore_eos", 0, &bad);
    if (bad) return BAD("\"ignore_eos\" must be a boolean");
    p->temperature = (float)t, p->top_p = (float)tp, p->top_k = tk < 0 ? 0 : (int)tk, p->seed = (uint64_t)seed;
    return parse_stop(json_get(root, "stop"), p, why, why_size);
}

/* The prompt's text: "prompt" (a string, or an array of one), or the chat template over "messages". */
static int prompt_text(const model *m, const json_value *root, int chat, char **text, size_t *len, char *why, size_t why_size) {
    lorac_err err = {0};
    if (!chat) {
        const json_value *v = json_get(root, "prompt");
        if (v && json_kind(v) == JSON_ARRAY && json_len(v) == 1) v = json_at(v, 0);
        if (!v || json_kind(v) != JSON_STRING) return BAD("\"prompt\" must be a string (or an array of one string)");
        *len = json_str_len(v);
        if (!(*text = malloc(*len + 1))) return LORAC_ENOMEM;
        memcpy(*text, json_str(v), *len + 1);
        return 0;
    }
    const json_value *msgs = json_get(root, "messages");
    size_t n = json_len(msgs);
    if (!msgs || json_kind(msgs) != JSON_ARRAY || n == 0 || n > 256) return BAD("\"messages\" must be an array of 1 to 256 messages");
    model_chat_msg *mm = calloc(n, sizeof *mm);
    if (!mm) return LORAC_ENOMEM;
    int rc = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        const json_value *o = json_at(msgs, i);
        int bad = json_kind(o) != JSON_OBJECT;
        mm[i].role = json_get_str(o, "role", NULL, &bad);
        mm[i].content = json_get_str(o, "content", NULL, &bad);
        if (bad || !mm[i].role || !mm[i].content || (strcmp(mm[i].role, "system") && strcmp(mm[i].role, "user") && strcmp(mm[i].role, "assistant")))
            rc = BAD("\"messages\"[%zu] must be {\"role\": \"system\"|\"user\"|\"assistant\", \"content\": string}", i);
    }
    if (!rc && model_chat_format(m, mm, (int)n, 1, text, len, &err)) rc = BAD("%s", err.msg);
    free(mm);
    return rc;
}

/* The tokens: bos when the tokenizer adds one, then the text (special tokens parsed in a chat). */
static int prompt_ids(const model *m, const char *text, size_t len, int chat, gen_request *g, char *why, size_t why_size) {
    lorac_err err = {0};
    int32_t *body = NULL;
    size_t nb = 0;
    if (model_encode(m, text, len, chat, &body, &nb, &err)) return BAD("%s", err.msg);
    const model_tokens *k = model_tok(m);
    int bos = k->add_bos && k->bos >= 0;
    if (!(g->ids = malloc((nb + 1) * sizeof *g->ids))) {
        free(body);
        return LORAC_ENOMEM;
    }
    if (bos) g->ids[0] = k->bos;
    if (nb) memcpy(g->ids + bos, body, nb * sizeof *body);
    g->n_ids = (int)nb + bos;
    free(body);
    return g->n_ids ? 0 : BAD("the prompt is empty");
}

/* Fills g from the body; a 400's message goes to why. */
static int parse_request(serve_http *h, const char *body, size_t len, gen_request *g, char *why, size_t why_size) {
    json_doc *doc = NULL;
    lorac_err err = {0};
    if (json_parse(body, len, "request body", 1, &doc, &err)) return BAD("%s", err.msg);
    const json_value *root = json_root(doc);
    int bad = json_kind(root) != JSON_OBJECT, rc = 0, ctx = serve_engine_ctx(h->e);
    const char *model = json_get_str(root, "model", h->name, &bad);
    if (bad) rc = BAD("the body must be a JSON object whose \"model\" is a string");
    if (!rc) snprintf(g->model, sizeof g->model, "%s", model ? model : h->name);
    if (!rc && strcmp(g->model, h->name)) g->lora[g->n_lora++] = (serve_lora){g->model, 1.0f};
    if (!rc) rc = parse_lora(json_get(root, "lora"), g, why, why_size);
    if (!rc) rc = parse_params(root, g, ctx, why, why_size);
    char *text = NULL;
    size_t tl = 0;
    if (!rc) rc = prompt_text(serve_engine_model(h->e), root, g->chat, &text, &tl, why, why_size);
    if (!rc) rc = prompt_ids(serve_engine_model(h->e), text, tl, g->chat, g, why, why_size);
    if (!rc && g->n_ids + (g->p.max_tokens > 0 ? g->p.max_tokens : 1) > ctx)
        rc = BAD("this model's maximum context length is %d tokens; the prompt has %d and max_tokens is %d", ctx, g->n_ids,
                 g->p.max_tokens > 0 ? g->p.max_tokens : 1);
    if (!rc && g->p.max_tokens < 0) g->p.max_tokens = ctx - g->n_ids; /* a chat's default: the rest of the context */
    /* the names point into the document: copy them before it goes */
    static const char none[] = "";
    for (int i = 0; i < g->n_lora; i++) {
        char *dup = rc ? NULL : strdup(g->lora[i].name);
        if (!rc && !dup) rc = LORAC_ENOMEM;
        g->lora[i].name = dup ? dup : none;
    }
    free(text);
    json_free(doc);
    return rc;
}

static void gen_request_free(gen_request *g) {
    for (int i = 0; i < g->n_lora; i++)
        if (g->lora[i].name[0]) free((char *)g->lora[i].name);
    free(g->ids);
}

/* ---------------------------------------------------------------- replies */

typedef struct reply {
    serve_http *h;
    serve_req *r;
    int chat;
    char id[48], model[256];
    long long created;
} reply;

/* The choice's text: "text", or a chat's "message" / streamed "delta" (role on the first). */
static void write_choice(json_writer *w, const reply *rp, const char *text, size_t len, const char *finish, int stream,
                         int first) {
    jw_object_begin(w);
    jw_key_int(w, "index", 0);
    if (!rp->chat) {
        jw_key(w, "text");
        jw_string_n(w, text, len);
        jw_key(w, "logprobs");
        jw_null(w);
    } else {
        jw_key(w, stream ? "delta" : "message");
        jw_object_begin(w);
        if (first || !stream) {
            jw_key(w, "role");
            jw_string(w, "assistant");
        }
        if (len || !stream || first) {
            jw_key(w, "content");
            jw_string_n(w, text, len);
        }
        jw_object_end(w);
    }
    jw_key(w, "finish_reason");
    if (finish) jw_string(w, finish);
    else jw_null(w);
    jw_object_end(w);
}

static void write_head(json_writer *w, const reply *rp, int stream) {
    jw_object_begin(w);
    jw_key(w, "id");
    jw_string(w, rp->id);
    jw_key(w, "object");
    jw_string(w, rp->chat ? (stream ? "chat.completion.chunk" : "chat.completion") : "text_completion");
    jw_key_int(w, "created", rp->created);
    jw_key(w, "model");
    jw_string(w, rp->model);
    jw_key(w, "choices");
    jw_array_begin(w);
}

static void write_usage(json_writer *w, serve_req *r) {
    int pt, ct;
    serve_req_usage(r, &pt, &ct);
    jw_key(w, "usage");
    jw_object_begin(w);
    jw_key_int(w, "prompt_tokens", pt);
    jw_key_int(w, "completion_tokens", ct);
    jw_key_int(w, "total_tokens", pt + ct);
    jw_object_end(w);
}

/* The whole answer once the request has ended. */
static enum MHD_Result reply_whole(reply *rp, struct MHD_Connection *c) {
    char *all = NULL, *d = NULL;
    size_t n = 0, dl = 0;
    const char *finish = NULL;
    lorac_err err = {0};
    int rc = 0;
    while (!finish && !(rc = serve_req_read(rp->r, &d, &dl, &finish, &err))) {
        char *p = realloc(all, n + dl + 1);
        if (!p) {
            free(d);
            rc = lorac_fail(&err, LORAC_ENOMEM, "out of memory");
            break;
        }
        all = p;
        memcpy(all + n, d, dl);
        n += dl;
        free(d);
    }
    jbuf b;
    if (rc || jb_open(&b)) {
        free(all);
        return http_send_error(c, 500, "server_error", NULL, "%s", err.msg[0] ? err.msg : "out of memory");
    }
    write_head(&b.w, rp, 0);
    write_choice(&b.w, rp, all ? all : "", n, finish, 0, 0);
    jw_array_end(&b.w);
    write_usage(&b.w, rp->r);
    jw_object_end(&b.w);
    free(all);
    return http_send_json(c, MHD_HTTP_OK, &b);
}

/* ---------------------------------------------------------------- streaming */

typedef struct stream {
    reply rp;
    char *buf;          /* the events not yet sent */
    size_t len, off;
    int first, done;
} stream;

/* The next events: a chunk of new text (or the role first), the last chunk, "data: [DONE]". */
static int stream_refill(stream *s) {
    char *d = NULL;
    size_t dl = 0;
    const char *finish = NULL;
    lorac_err err = {0};
    jbuf b;
    if (jb_open(&b)) return -1;
    fputs("data: ", b.f);
    if (s->first && s->rp.chat) {
        write_head(&b.w, &s->rp, 1);
        write_choice(&b.w, &s->rp, "", 0, NULL, 1, 1);
        s->first = 0;
    } else if (serve_req_read(s->rp.r, &d, &dl, &finish, &err)) {
        jw_object_begin(&b.w);
        jw_key(&b.w, "error");
        jw_object_begin(&b.w);
        jw_key(&b.w, "message");
        jw_string(&b.w, err.msg);
        jw_key(&b.w, "type");
        jw_string(&b.w, "server_error");
        jw_object_end(&b.w);
        finish = "error";
    } else {
        write_head(&b.w, &s->rp, 1);
        write_choice(&b.w, &s->rp, d, dl, finish, 1, s->first);
        s->first = 0;
    }
    if (!(finish && !strcmp(finish, "error"))) {
        jw_array_end(&b.w);
        if (finish) write_usage(&b.w, s->rp.r);
    }
    jw_object_end(&b.w);
    fputs("\n\n", b.f);
    if (finish) fputs("data: [DONE]\n\n", b.f), s->done = 1;
    free(d);
    jb_close(&b);
    free(s->buf);
    s->buf = b.p, s->len = b.n, s->off = 0;
    return b.p ? 0 : -1;
}

static ssize_t stream_read(void *cls, uint64_t pos, char *out, size_t max) {
    (void)pos;
    stream *s = cls;
    while (s->off == s->len) {
        if (s->done) return MHD_CONTENT_READER_END_OF_STREAM;
        if (stream_refill(s)) return MHD_CONTENT_READER_END_WITH_ERROR;
    }
    size_t n = s->len - s->off < max ? s->len - s->off : max;
    memcpy(out, s->buf + s->off, n);
    s->off += n;
    return (ssize_t)n;
}

/* The connection is over (sent, or the client went away): the engine frees the slot. */
static void stream_free(void *cls) {
    stream *s = cls;
    serve_req_cancel(s->rp.r);
    serve_req_release(s->rp.r);
    free(s->buf);
    free(s);
}

static enum MHD_Result reply_stream(reply *rp, struct MHD_Connection *c) {
    stream *s = calloc(1, sizeof *s);
    if (!s) {
        serve_req_cancel(rp->r);
        serve_req_release(rp->r);
        return http_send_error(c, 500, "server_error", NULL, "out of memory");
    }
    s->rp = *rp;
    s->first = 1;
    struct MHD_Response *r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, stream_read, s, stream_free);
    if (!r) {
        stream_free(s);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", "text/event-stream");
    MHD_add_response_header(r, "Cache-Control", "no-cache");
    enum MHD_Result ret = MHD_queue_response(c, MHD_HTTP_OK, r);
    MHD_destroy_response(r);
    return ret;
}

enum MHD_Result http_generate(serve_http *h, struct MHD_Connection *c, const char *body, size_t len, int chat) {
    gen_request g;
    memset(&g, 0, sizeof g);
    g.chat = chat;
    char why[1100] = "";
    int rc = parse_request(h, body, len, &g, why, sizeof why);
    if (rc) {
        gen_request_free(&g);
        return rc == LORAC_ENOMEM ? http_send_error(c, 500, "server_error", NULL, "out of memory")
                                  : http_send_error(c, 400, "invalid_request_error", NULL, "%s", why);
    }
    reply rp = {h, NULL, chat, "", "", (long long)time(NULL)};
    snprintf(rp.id, sizeof rp.id, "%s-%lld", chat ? "chatcmpl" : "cmpl", http_next_id(h));
    snprintf(rp.model, sizeof rp.model, "%s", g.model);
    lorac_err err = {0};
    rc = serve_submit(h->e, g.lora, g.n_lora, g.ids, g.n_ids, &g.p, &rp.r, &err);
    int stream = g.stream;
    gen_request_free(&g);
    if (rc)
        return http_send_error(c, http_status_of(rc), rc == LORAC_EBUSY || rc == LORAC_ECLOSED ? "server_error" : "invalid_request_error",
                               rc == LORAC_ENOTFOUND ? "model_not_found" : NULL, "%s", err.msg);
    if (stream) return reply_stream(&rp, c);
    enum MHD_Result ret = reply_whole(&rp, c);
    serve_req_release(rp.r);
    return ret;
}
