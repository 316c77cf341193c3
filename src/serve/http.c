/* The HTTP side of `lorac serve` on libmicrohttpd: a thread per connection (a streaming response
 * blocks in its reader until the engine has new text), bodies of at most 1 MiB gathered here, routes
 * dispatched to the engine. No HTTP is parsed by lorac itself. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "serve/http_internal.h"

#define MAX_BODY (1u << 20)

/* ---------------------------------------------------------------- responses */

int jb_open(jbuf *b) {
    b->p = NULL;
    b->n = 0;
    if (!(b->f = open_memstream(&b->p, &b->n))) return -1;
    jw_init(&b->w, b->f, 0);
    return 0;
}

void jb_close(jbuf *b) {
    if (b->f) fclose(b->f);
    b->f = NULL;
}

enum MHD_Result http_send_json(struct MHD_Connection *c, unsigned status, jbuf *b) {
    jb_close(b);
    if (!b->p) return MHD_NO;
    struct MHD_Response *r = MHD_create_response_from_buffer(b->n, b->p, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(b->p);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", "application/json");
    enum MHD_Result ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

enum MHD_Result http_send_error(struct MHD_Connection *c, unsigned status, const char *type, const char *code,
                                const char *fmt, ...) {
    char msg[1200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    jbuf b;
    if (jb_open(&b)) return MHD_NO;
    jw_object_begin(&b.w);
    jw_key(&b.w, "error");
    jw_object_begin(&b.w);
    jw_key(&b.w, "message");
    jw_string(&b.w, msg);
    jw_key(&b.w, "type");
    jw_string(&b.w, type);
    jw_key(&b.w, "param");
    jw_null(&b.w);
    jw_key(&b.w, "code");
    if (code) jw_string(&b.w, code);
    else jw_null(&b.w);
    jw_object_end(&b.w);
    jw_object_end(&b.w);
    return http_send_json(c, status, &b);
}

unsigned http_status_of(int rc) {
    switch (rc) {
    case LORAC_EINVAL: return MHD_HTTP_BAD_REQUEST;
    case LORAC_ENOTFOUND: return MHD_HTTP_NOT_FOUND;
    case LORAC_EBUSY: return MHD_HTTP_TOO_MANY_REQUESTS;
    case LORAC_ECLOSED: return MHD_HTTP_SERVICE_UNAVAILABLE;
    case LORAC_EIO: case LORAC_EFORMAT: case LORAC_ESHAPE: case LORAC_EUNSUPPORTED: return MHD_HTTP_BAD_REQUEST;
    default: return MHD_HTTP_INTERNAL_SERVER_ERROR;
    }
}

long long http_next_id(serve_http *h) {
    pthread_mutex_lock(&h->id_mu);
    long long id = ++h->next_id;
    pthread_mutex_unlock(&h->id_mu);
    return id;
}

/* ---------------------------------------------------------------- small routes */

static enum MHD_Result get_health(serve_http *h, struct MHD_Connection *c) {
    serve_stats st;
    serve_engine_stats(h->e, &st);
    jbuf b;
    if (jb_open(&b)) return MHD_NO;
    jw_object_begin(&b.w);
    jw_key(&b.w, "status");
    jw_string(&b.w, "ok");
    jw_key_int(&b.w, "running", st.running);
    jw_key_int(&b.w, "queued", st.queued);
    jw_key_int(&b.w, "adapters", st.adapters);
    jw_key_int(&b.w, "steps", st.steps);
    jw_key_int(&b.w, "tokens", st.tokens);
    jw_key_int(&b.w, "requests_done", st.requests_done);
    jw_key_int(&b.w, "max_step_rows", st.max_step_rows);
    jw_key_int(&b.w, "max_decode_seqs", st.max_decode_seqs);
    jw_object_end(&b.w);
    return http_send_json(c, MHD_HTTP_OK, &b);
}

static void model_entry(serve_http *h, json_writer *w, const char *id, const char *parent) {
    jw_object_begin(w);
    jw_key(w, "id");
    jw_string(w, id);
    jw_key(w, "object");
    jw_string(w, "model");
    jw_key_int(w, "created", h->created);
    jw_key(w, "owned_by");
    jw_string(w, "lorac");
    jw_key(w, "parent");
    if (parent) jw_string(w, parent);
    else jw_null(w);
    jw_object_end(w);
}

static enum MHD_Result get_models(serve_http *h, struct MHD_Connection *c) {
    char **names = NULL;
    int n = 0;
    jbuf b;
    if (serve_adapter_names(h->e, &names, &n) || jb_open(&b)) {
        serve_names_free(names, n);
        return http_send_error(c, 500, "server_error", NULL, "out of memory");
    }
    jw_object_begin(&b.w);
    jw_key(&b.w, "object");
    jw_string(&b.w, "list");
    jw_key(&b.w, "data");
    jw_array_begin(&b.w);
    model_entry(h, &b.w, h->name, NULL);
    for (int i = 0; i < n; i++) model_entry(h, &b.w, names[i], h->name);
    jw_array_end(&b.w);
    jw_object_end(&b.w);
    serve_names_free(names, n);
    return http_send_json(c, MHD_HTTP_OK, &b);
}

static enum MHD_Result adapter_reply(struct MHD_Connection *c, const char *name, const char *path) {
    jbuf b;
    if (jb_open(&b)) return MHD_NO;
    jw_object_begin(&b.w);
    jw_key(&b.w, "object");
    jw_string(&b.w, "adapter");
    jw_key(&b.w, "name");
    jw_string(&b.w, name);
    if (path) {
        jw_key(&b.w, "path");
        jw_string(&b.w, path);
    } else {
        jw_key(&b.w, "deleted");
        jw_bool(&b.w, 1);
    }
    jw_object_end(&b.w);
    return http_send_json(c, MHD_HTTP_OK, &b);
}

static int name_taken(serve_http *h, const char *name) {
    char **names = NULL;
    int n = 0, taken = 0;
    if (!strcmp(name, h->name)) return 1;
    if (serve_adapter_names(h->e, &names, &n)) return 0;
    for (int i = 0; i < n; i++) taken |= !strcmp(names[i], name);
    serve_names_free(names, n);
    return taken;
}

static enum MHD_Result post_adapter(serve_http *h, struct MHD_Connection *c, const char *body, size_t len) {
    json_doc *doc = NULL;
    lorac_err err = {0};
    if (json_parse(body, len, "request body", 1, &doc, &err))
        return http_send_error(c, 400, "invalid_request_error", NULL, "%s", err.msg);
    const json_value *root = json_root(doc);
    int bad = json_kind(root) != JSON_OBJECT;
    const char *name = json_get_str(root, "name", NULL, &bad), *path = json_get_str(root, "path", NULL, &bad);
    enum MHD_Result ret;
    if (bad || !name || !path)
        ret = http_send_error(c, 400, "invalid_request_error", NULL, "the body must be {\"name\": string, \"path\": string}");
    else if (name_taken(h, name))
        ret = http_send_error(c, 409, "invalid_request_error", NULL, "an adapter or model named '%s' exists already", name);
    else if (serve_adapter_load(h->e, name, path, &err)) /* a path that is not an adapter for this base: 400 */
        ret = http_send_error(c, err.code == LORAC_ENOMEM ? 500 : 400, "invalid_request_error", NULL, "%s", err.msg);
    else
        ret = adapter_reply(c, name, path);
    json_free(doc);
    return ret;
}

static enum MHD_Result delete_adapter(serve_http *h, struct MHD_Connection *c, const char *name) {
    lorac_err err = {0};
    if (serve_adapter_unload(h->e, name, &err)) return http_send_error(c, 404, "invalid_request_error", NULL, "%s", err.msg);
    return adapter_reply(c, name, NULL);
}

/* ---------------------------------------------------------------- dispatch */

typedef struct conn_body {
    char *p;
    size_t n, cap;
    int too_big;
} conn_body;

/* Gathers the upload; 1 while more is to come. */
static int gather(conn_body *b, const char *data, size_t *size) {
    if (!*size) return 0;
    if (!b->too_big && b->n + *size > MAX_BODY) b->too_big = 1, free(b->p), b->p = NULL, b->n = b->cap = 0;
    if (!b->too_big) {
        if (b->n + *size + 1 > b->cap) {
            size_t cap = (b->n + *size + 1) * 2;
            char *p = realloc(b->p, cap < MAX_BODY + 1 ? cap : MAX_BODY + 1);
            if (!p) b->too_big = 1;
            else b->p = p, b->cap = cap < MAX_BODY + 1 ? cap : MAX_BODY + 1;
        }
        if (!b->too_big) memcpy(b->p + b->n, data, *size), b->n += *size, b->p[b->n] = 0;
    }
    *size = 0;
    return 1;
}

static enum MHD_Result route(serve_http *h, struct MHD_Connection *c, const char *url, const char *method, conn_body *b) {
    int get = !strcmp(method, "GET"), post = !strcmp(method, "POST"), del = !strcmp(method, "DELETE");
    const char *body = b->p ? b->p : "";
    if (b->too_big) return http_send_error(c, 413, "invalid_request_error", NULL, "the request body exceeds %u bytes", MAX_BODY);
    if (!strcmp(url, "/health") || !strcmp(url, "/v1/health")) return get ? get_health(h, c) : http_send_error(c, 405, "invalid_request_error", NULL, "use GET");
    if (!strcmp(url, "/v1/models")) return get ? get_models(h, c) : http_send_error(c, 405, "invalid_request_error", NULL, "use GET");
    if (!strcmp(url, "/v1/completions") || !strcmp(url, "/v1/chat/completions")) {
        if (!post) return http_send_error(c, 405, "invalid_request_error", NULL, "use POST");
        return http_generate(h, c, body, b->n, url[4] == 'c' && url[5] == 'h');
    }
    if (!strcmp(url, "/v1/adapters")) return post ? post_adapter(h, c, body, b->n) : http_send_error(c, 405, "invalid_request_error", NULL, "use POST");
    if (!strncmp(url, "/v1/adapters/", 13) && url[13])
        return del ? delete_adapter(h, c, url + 13) : http_send_error(c, 405, "invalid_request_error", NULL, "use DELETE");
    return http_send_error(c, 404, "invalid_request_error", NULL, "no route %s %s", method, url);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method, const char *version,
                                  const char *upload, size_t *upload_size, void **con_cls) {
    (void)version;
    conn_body *b = *con_cls;
    if (!b) {
        if (!(b = calloc(1, sizeof *b))) return MHD_NO;
        *con_cls = b;
        return MHD_YES;
    }
    if (gather(b, upload, upload_size)) return MHD_YES;
    return route(cls, c, url, method, b);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe) {
    (void)cls, (void)c, (void)toe;
    conn_body *b = *con_cls;
    if (b) free(b->p);
    free(b);
    *con_cls = NULL;
}

int serve_http_start(serve_engine *e, const serve_http_opts *o, serve_http **out, lorac_err *err) {
    *out = NULL;
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)o->port);
    const char *host = !o->host || !strcmp(o->host, "localhost") ? "127.0.0.1" : o->host;
    if (o->port < 0 || o->port > 65535 || inet_pton(AF_INET, host, &addr.sin_addr) != 1)
        return lorac_fail(err, LORAC_EINVAL, "--host %s --port %d: an IPv4 address and a port in [0, 65535]", host, o->port);
    serve_http *h = calloc(1, sizeof *h);
    if (!h) return lorac_fail(err, LORAC_ENOMEM, "out of memory");
    h->e = e;
    snprintf(h->name, sizeof h->name, "%s", o->name ? o->name : "base");
    h->created = (long long)time(NULL);
    pthread_mutex_init(&h->id_mu, NULL);
    unsigned limit = o->max_connections > 0 ? (unsigned)o->max_connections : 128;
    h->d = MHD_start_daemon(MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ITC | MHD_USE_ERROR_LOG,
                            0, NULL, NULL, on_request, h, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
                            MHD_OPTION_CONNECTION_LIMIT, limit, MHD_OPTION_NOTIFY_COMPLETED, on_completed, h, MHD_OPTION_END);
    if (!h->d) {
        pthread_mutex_destroy(&h->id_mu);
        free(h);
        return lorac_fail(err, LORAC_EIO, "cannot listen on %s:%d (in use, or not an address of this machine)", host, o->port);
    }
    *out = h;
    return LORAC_OK;
}

int serve_http_port(const serve_http *h) {
    const union MHD_DaemonInfo *i = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_BIND_PORT);
    return i ? i->port : -1;
}

void serve_http_quiesce(serve_http *h) {
    MHD_socket s = MHD_quiesce_daemon(h->d);
    if (s != MHD_INVALID_SOCKET) close(s);
}

void serve_http_stop(serve_http *h) {
    if (!h) return;
    MHD_stop_daemon(h->d);
    pthread_mutex_destroy(&h->id_mu);
    free(h);
}
