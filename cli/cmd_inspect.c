/* lorac inspect FILE: a safetensors file's metadata and tensors (name, dtype, shape), with totals. */
#include "cli.h"

#include <string.h>

static const char USAGE[] =
    "usage: lorac inspect FILE [--json]\n"
    "Validates a safetensors file and prints its __metadata__ (key = value), every tensor in header\n"
    "order (name, dtype, shape, parameters, data offsets) and the total parameter count and bytes.\n"
    "--json prints the same as one JSON object.\n";

/* Names and metadata come from the file: control characters are escaped to keep one item a line. */
static void print_escaped(const char *s) {
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '\n') fputs("\\n", stdout);
        else if (*p == '\t') fputs("\\t", stdout);
        else if (*p == '\\') fputs("\\\\", stdout);
        else if (*p < 0x20 || *p == 0x7f) printf("\\x%02x", *p);
        else putchar(*p);
    }
}

static size_t data_offset(const st_file *f, const st_tensor *t) {
    uint64_t hl = 0;
    for (int k = 7; k >= 0; k--) hl = hl << 8 | f->map.data[k];
    return (size_t)(t->data - (f->map.data + 8 + hl));
}

static void print_text(const st_file *f, const char *path) {
    size_t n_params = 0, n_bytes = 0;
    printf("%s: safetensors, %zu tensors, %zu metadata entries\n", path, f->n_tensors, f->n_meta);
    printf("metadata:%s\n", f->n_meta ? "" : " (none)");
    for (size_t i = 0; i < f->n_meta; i++) {
        fputs("  ", stdout);
        print_escaped(f->meta_keys[i]);
        fputs(" = ", stdout);
        print_escaped(f->meta_values[i]);
        putchar('\n');
    }
    printf("tensors (name, dtype, shape, parameters, data offsets):\n");
    for (size_t i = 0; i < f->n_tensors; i++) {
        const st_tensor *t = &f->tensors[i];
        char shape[256];
        size_t k = (size_t)snprintf(shape, sizeof shape, "[");
        for (int d = 0; d < t->ndim && k < sizeof shape; d++)
            k += (size_t)snprintf(shape + k, sizeof shape - k, "%s%lld", d ? ", " : "", (long long)t->shape[d]);
        if (k < sizeof shape) snprintf(shape + k, sizeof shape - k, "]");
        size_t bytes = t->numel * st_dtype_size(t->dtype), off = data_offset(f, t);
        fputs("  ", stdout);
        print_escaped(t->name);
        int pad = 40 - (int)strlen(t->name);
        printf("%*s %-5s %-24s %12zu  [%zu, %zu]\n", pad > 0 ? pad : 0, "", st_dtype_name(t->dtype), shape, t->numel,
               off, off + bytes);
        n_params += t->numel;
        n_bytes += bytes;
    }
    printf("total: %zu tensors, %zu parameters, %zu bytes of tensor data\n", f->n_tensors, n_params, n_bytes);
}

static void print_json(const st_file *f, const char *path) {
    size_t n_params = 0, n_bytes = 0;
    json_writer w;
    jw_init(&w, stdout, 1);
    jw_object_begin(&w);
    jw_key(&w, "path");
    jw_string(&w, path);
    jw_key(&w, "metadata");
    jw_object_begin(&w);
    for (size_t i = 0; i < f->n_meta; i++) {
        jw_key(&w, f->meta_keys[i]);
        jw_string(&w, f->meta_values[i]);
    }
    jw_object_end(&w);
    jw_key(&w, "tensors");
    jw_array_begin(&w);
    for (size_t i = 0; i < f->n_tensors; i++) {
        const st_tensor *t = &f->tensors[i];
        size_t bytes = t->numel * st_dtype_size(t->dtype), off = data_offset(f, t);
        jw_object_begin(&w);
        jw_key(&w, "name");
        jw_string(&w, t->name);
        jw_key(&w, "dtype");
        jw_string(&w, st_dtype_name(t->dtype));
        jw_key(&w, "shape");
        jw_array_begin(&w);
        for (int d = 0; d < t->ndim; d++) jw_int(&w, (long long)t->shape[d]);
        jw_array_end(&w);
        jw_key(&w, "parameters");
        jw_int(&w, (long long)t->numel);
        jw_key(&w, "data_offsets");
        jw_array_begin(&w);
        jw_int(&w, (long long)off);
        jw_int(&w, (long long)(off + bytes));
        jw_array_end(&w);
        jw_object_end(&w);
        n_params += t->numel;
        n_bytes += bytes;
    }
    jw_array_end(&w);
    jw_key(&w, "parameters");
    jw_int(&w, (long long)n_params);
    jw_key(&w, "bytes");
    jw_int(&w, (long long)n_bytes);
    jw_object_end(&w);
    putchar('\n');
}

int cmd_inspect(int argc, char **argv) {
    const char *path = NULL;
    int as_json = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(USAGE, stdout);
            return 0;
        } else if (!strcmp(argv[i], "--json")) {
            as_json = 1;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            return cli_error("inspect: unknown option '%s'", argv[i]);
        } else if (path) {
            return cli_error("inspect: one FILE only (got '%s' and '%s')", path, argv[i]);
        } else {
            path = argv[i];
        }
    }
    if (!path) {
        fputs(USAGE, stderr);
        return 1;
    }
    st_file f;
    lorac_err err = {0};
    if (st_open(path, &f, &err)) return cli_fail(&err);
    if (as_json) print_json(&f, path);
    else print_text(&f, path);
    st_close(&f);
    if (fflush(stdout) != 0 || ferror(stdout)) return cli_error("inspect: cannot write the output");
    return 0;
}
