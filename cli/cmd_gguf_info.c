/* lorac gguf-info FILE: a GGUF file's header, key/values and tensor infos. */
#include "cli.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

static const char USAGE[] =
    "usage: lorac gguf-info FILE [--items N] [--chars N]\n"
    "Prints the header, every key/value (type and value; arrays as their length and first N items,\n"
    "default 8; strings cut after N bytes, default 120) and every tensor (name, type, ggml ne[],\n"
    "offset in the data area, bytes), then a count of tensors per type.\n";

int cmd_gguf_info(int argc, char **argv) {
    const char *path = NULL;
    long items = 8, chars = 120;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(USAGE, stdout);
            return 0;
        } else if (!strcmp(argv[i], "--items")) {
            if (cli_opt_int(argc, argv, &i, &items)) return 1;
        } else if (!strcmp(argv[i], "--chars")) {
            if (cli_opt_int(argc, argv, &i, &chars)) return 1;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            return cli_error("gguf-info: unknown option '%s'", argv[i]);
        } else if (path) {
            return cli_error("gguf-info: one FILE only (got '%s' and '%s')", path, argv[i]);
        } else {
            path = argv[i];
        }
    }
    if (!path) {
        fputs(USAGE, stderr);
        return 1;
    }
    if (items < 0 || chars < 0) return cli_error("gguf-info: --items and --chars must be >= 0");

    gguf_file f;
    lorac_err err = {0};
    if (gguf_open(path, &f, &err)) return cli_fail(&err);
    printf("%s: GGUF v%" PRIu32 ", %zu key/values, %zu tensors, alignment %" PRIu32 ", data at byte %zu of %zu\n",
           path, f.version, f.n_kv, f.n_tensors, f.alignment, f.data_offset, f.size);

    /* room for the items shown (an escape takes up to 4 bytes), at most 16 MiB: past that the
     * line is cut */
    double want = 256.0 + ((double)items + 1) * ((double)chars * 4 + 48);
    size_t cap = want < 16777216.0 ? (size_t)want : 16777216;
    char *buf = malloc(cap);
    if (!buf) {
        gguf_close(&f);
        return cli_error("gguf-info: out of memory");
    }
    printf("key/values:\n");
    for (size_t i = 0; i < f.n_kv; i++) {
        const gguf_kv *kv = &f.kvs[i];
        gguf_kv_format(kv, buf, cap, (size_t)items, (size_t)chars);
        if (kv->type == GGUF_ARR)
            printf("  %-40s arr[%s] %s\n", kv->key, gguf_vtype_name(kv->arr_type), buf);
        else
            printf("  %-40s %-8s %s\n", kv->key, gguf_vtype_name(kv->type), buf);
    }
    free(buf);

    printf("tensors (name, type, ne, offset, bytes):\n");
    size_t per_type[QUANT_TYPE_LIMIT] = {0}, n_elem = 0, n_bytes = 0;
    for (size_t i = 0; i < f.n_tensors; i++) {
        const gguf_tensor *t = &f.tensors[i];
        char shape[128];
        int k = snprintf(shape, sizeof shape, "[");
        for (int d = 0; d < t->n_dims; d++)
            k += snprintf(shape + k, sizeof shape - (size_t)k, "%s%" PRId64, d ? ", " : "", t->ne[d]);
        snprintf(shape + k, sizeof shape - (size_t)k, "]");
        printf("  %-40s %-6s %-22s %12" PRIu64 " %12zu\n", t->name, quant_type_name(t->type), shape, t->offset, t->nbytes);
        per_type[t->type]++;
        n_elem += t->n_elem;
        n_bytes += t->nbytes;
    }
    printf("tensor types:");
    for (int t = 0; t < QUANT_TYPE_LIMIT; t++)
        if (per_type[t]) printf(" %s %zu", quant_type_name(t), per_type[t]);
    printf("; %zu elements in %zu bytes\n", n_elem, n_bytes);
    gguf_close(&f);
    return 0;
}
