/* libFuzzer target for the training-data reader (E2E `context||completion` lines and JSONL): any file
 * must be read or rejected with one line naming it, without crashing or leaking. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lorac/train.h"

static int write_tmp(char *path, size_t cap, const char *ext, const uint8_t *data, size_t size) {
    snprintf(path, cap, "/tmp/lorac_fuzz_%d%s", (int)getpid(), ext);
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    fwrite(data, 1, size, f);
    fclose(f);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static const char *ext[] = {".txt", ".jsonl"};
    for (int k = 0; k < 2; k++) {
        char path[128];
        if (write_tmp(path, sizeof path, ext[k], data, size)) return 0;
        train_examples ex;
        lorac_err err;
        memset(&err, 0, sizeof err);
        int rc = train_examples_read(path, TRAIN_FORMAT_AUTO, &ex, &err);
        if (rc == 0) {
            for (size_t i = 0; i < ex.n; i++) /* every string lies inside the owned text */
                if (ex.ex[i].completion_len && !ex.ex[i].completion) abort();
            train_examples_free(&ex);
        } else if (!strstr(err.msg, path) || strchr(err.msg, '\n')) {
            abort(); /* errors are one line naming the file */
        }
        unlink(path);
    }
    return 0;
}
