/* http_internal.h — shared by the HTTP files of src/serve (not public). */
#ifndef LORAC_HTTP_INTERNAL_H
#define LORAC_HTTP_INTERNAL_H

#include <microhttpd.h>
#include <stdio.h>

#include "lorac/json.h"
#include "lorac/serve_http.h"

struct serve_http {
    struct MHD_Daemon *d;
    serve_engine *e;
    char name[256];           /* the base model's name */
    long long created;        /* unix time the server started */
    pthread_mutex_t id_mu;
    long long next_id;
};

/* JSON written to memory (open_memstream); jb_close leaves p (n bytes, malloc'd). */
typedef struct jbuf {
    char *p;
    size_t n;
    FILE *f;
    json_writer w;
} jbuf;
int jb_open(jbuf *b);
void jb_close(jbuf *b);

/* A response of b's JSON (taken over) / of an OpenAI error body. */
enum MHD_Result http_send_json(struct MHD_Connection *c, unsigned status, jbuf *b);
enum MHD_Result http_send_error(struct MHD_Connection *c, unsigned status, const char *type, const char *code,
                                const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 5, 6)))
#endif
    ;
/* The HTTP status for a lorac status from the engine. */
unsigned http_status_of(int rc);
long long http_next_id(serve_http *h);

/* POST /v1/completions (chat 0) and /v1/chat/completions (chat 1) with the request body. */
enum MHD_Result http_generate(serve_http *h, struct MHD_Connection *c, const char *body, size_t len, int chat);

#endif
