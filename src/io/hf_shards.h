/* hf_shards.h — a Hugging Face checkpoint's safetensors files: one, or an index's shards (internal). */
#ifndef LORAC_IO_HF_SHARDS_H
#define LORAC_IO_HF_SHARDS_H

#include "lorac/safetensors.h"

#define HF_MAX_SHARDS 256

typedef struct hf_shards {
    st_file *files; /* n mapped files */
    int n;
} hf_shards;

/* Opens DIR/model.safetensors, or every distinct file named by DIR/model.safetensors.index.json.
 * A directory with only pytorch_model.bin gets a message that says how to convert it. */
int hf_shards_open(const char *dir, hf_shards *s, lorac_err *err);
void hf_shards_close(hf_shards *s);
/* The tensor called name in any shard (and that shard), or NULL. */
const st_tensor *hf_shards_find(const hf_shards *s, const char *name, const st_file **file);

#endif
