/* lorac/json.h — a small JSON reader (DOM) and streaming writer.
 *
 * Enough for config.json, adapter_config.json, tokenizer.json, safetensors headers and JSONL data.
 * The reader is strict RFC 8259 (no comments, no trailing commas), decodes \uXXXX escapes (with
 * surrogate pairs) to UTF-8, rejects invalid UTF-8, limits nesting depth, and reports errors as
 * "NAME:LINE:COL: what is wrong" (COL counts bytes from 1). Object members keep their file order;
 * duplicate keys are kept and json_get returns the first.
 * Cost: parsing is linear in the input; json_len, json_at and json_key_at are O(1), and json_get
 * is O(1) on large objects (hashed) and a short scan on small ones. The document copies every
 * string, so the input text may be freed once json_parse returns. Numbers go through strtod with
 * '.' whatever the C locale; integer literals are also kept exactly (json_int_exact).
 */
#ifndef LORAC_JSON_H
#define LORAC_JSON_H

#include <stddef.h>
#include <stdio.h>

#include "lorac/base.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum json_type {
    JSON_NULL = 0,
    JSON_BOOL,
    JSON_NUMBER,
    JSON_STRING,
    JSON_ARRAY,
    JSON_OBJECT,
} json_type;

typedef struct json_value json_value; /* a node; owned by its json_doc */
typedef struct json_doc json_doc;     /* owns every node and string of one parse */

/* Parses text[0..len). name is used in error messages (a file name, or "file:LINE" for JSONL).
 * first_line is the line number of text's first line (1 for a whole file). */
int json_parse(const char *text, size_t len, const char *name, int first_line, json_doc **out,
               lorac_err *err);
int json_parse_file(const char *path, json_doc **out, lorac_err *err);
void json_free(json_doc *doc);
const json_value *json_root(const json_doc *doc);

json_type json_kind(const json_value *v);
/* Object member by key, or NULL (also when v is NULL or not an object). */
const json_value *json_get(const json_value *obj, const char *key);
/* Items of an array, or members of an object; 0 for anything else. */
size_t json_len(const json_value *v);
const json_value *json_at(const json_value *arr_or_obj, size_t i); /* i-th item / member value */
const char *json_key_at(const json_value *obj, size_t i);          /* i-th member key */
size_t json_key_len_at(const json_value *obj, size_t i);
/* Scalars. json_str returns NULL for non-strings; strings are NUL-terminated UTF-8 and may contain
 * NUL (from \u0000), so json_str_len gives the byte length. */
const char *json_str(const json_value *v);
size_t json_str_len(const json_value *v);
double json_num(const json_value *v); /* 0 for non-numbers */
int json_bool(const json_value *v);   /* 0 for non-bools */
/* Exact integers: returns 1 and sets *out when v is a number written as an integer literal (no
 * fraction or exponent) that fits in a long long; 0 otherwise (where json_get_int would accept
 * 16.0 or 1e3). For file formats whose integers must be exact (safetensors offsets and shapes). */
int json_int_exact(const json_value *v, long long *out);
/* Typed lookups with defaults: return def when the key is absent or null; set *bad=1 (if bad is
 * non-NULL) when it is present with the wrong type (or, for ints, a non-integral value). */
double json_get_num(const json_value *obj, const char *key, double def, int *bad);
long long json_get_int(const json_value *obj, const char *key, long long def, int *bad);
const char *json_get_str(const json_value *obj, const char *key, const char *def, int *bad);
int json_get_bool(const json_value *obj, const char *key, int def, int *bad);
/* The same for config files, with one-line errors naming the file and key ("PATH: \"key\" must be
 * an integer"): the first error goes to *rc / err and later ones are left alone, so a reader can
 * read every key and check *rc once. alias: a second name for the key, or NULL. json_field_prob
 * takes a number in [0, 1) (a dropout). */
long long json_field_int(const json_value *o, const char *key, const char *alias, long long def, const char *path, int *rc,
                         lorac_err *err);
double json_field_num(const json_value *o, const char *key, double def, const char *path, int *rc, lorac_err *err);
int json_field_bool(const json_value *o, const char *key, int def, const char *path, int *rc, lorac_err *err);
float json_field_prob(const json_value *o, const char *key, double def, const char *path, int *rc, lorac_err *err);

/* Streaming writer. Keys and values are emitted in call order; commas and (if pretty) indentation
 * are handled here. Numbers are written so they read back to the same float/double. */
typedef struct json_writer {
    FILE *f;
    int pretty;
    int depth;
    int first[64];  /* no element written yet at this depth */
    int after_key;  /* the next value follows a key */
    int error;      /* set on misuse (too deep, value without key in object, ...) */
    char in_object[64]; /* the container at this depth is an object (else an array) */
} json_writer;
/* Top-level values written one after another are separated by a newline (JSONL when pretty is 0).
 * Strings are escaped (control characters as \u00XX); invalid UTF-8 bytes are written as \ufffd,
 * so the output is always valid JSON. Nesting is limited to 63 levels. */
void jw_init(json_writer *w, FILE *f, int pretty);
/* A JSON file written whole: jw_file_open opens PATH's temporary (lorac_out) and a pretty writer on
 * it; jw_file_commit ends the line and renames it into place, or removes it when the writer failed
 * or rc (the caller's status) is an error, returning the first error. */
int jw_file_open(json_writer *w, lorac_out *o, const char *path, lorac_err *err);
int jw_file_commit(json_writer *w, lorac_out *o, int rc, const char *path, lorac_err *err);
void jw_object_begin(json_writer *w);
void jw_object_end(json_writer *w);
void jw_array_begin(json_writer *w);
void jw_array_end(json_writer *w);
void jw_key(json_writer *w, const char *key);
void jw_string(json_writer *w, const char *s);
void jw_string_n(json_writer *w, const char *s, size_t n);
void jw_double(json_writer *w, double v); /* shortest repr that round-trips; NaN/inf -> null */
void jw_int(json_writer *w, long long v);
/* A key and its value in one call. */
void jw_key_int(json_writer *w, const char *key, long long v);
void jw_key_double(json_writer *w, const char *key, double v);
void jw_bool(json_writer *w, int v);
void jw_null(json_writer *w);

#ifdef __cplusplus
}
#endif
#endif
